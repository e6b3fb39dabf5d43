//! [`Snapshot`]: one immutable record per poll of what was read from the management API,
//! when, and how each endpoint's read went; the channel that carries it ([`SnapshotSender`],
//! [`SnapshotReceiver`]); the lifetime counters copied into it ([`PollTotals`]).
//!
//! A snapshot holds only what was read: judgements (the backlog and cluster detectors) are the
//! alert engine's. Everything downstream (alerting, metrics, the status page) is a function of
//! the latest snapshot; nothing downstream calls the broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

pub use crate::rabbitmq::Fetched;
use crate::rabbitmq::client::BindingsReads;
use crate::rabbitmq::health::Health;
use crate::rabbitmq::members::MemberViews;
use crate::rabbitmq::model::{Alarms, Node, Overview, Queue};
use crate::rabbitmq::prometheus::Read as PrometheusRead;
use crate::rabbitmq::{Endpoint, Error, FigureSource};
use crate::selection::Selection;

/// The receiving side of the snapshot channel: `None` until the first poll has finished.
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;
/// The sending side of the snapshot channel, owned by the poller ([`crate::poller::Poller`]).
pub type SnapshotSender = watch::Sender<Option<Arc<Snapshot>>>;

/// One poll of the management API. Published as `Arc<Snapshot>`; never mutated.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Poll number, from 1, increasing by one per poll.
    pub seq: u64,
    /// When the poll started (wall clock).
    pub started_at: SystemTime,
    /// Wall time of the whole poll (endpoints are read concurrently).
    pub duration: Duration,
    /// `GET /api/overview`.
    pub overview: Fetched<Overview>,
    /// `GET /api/nodes`.
    pub nodes: Fetched<Vec<Node>>,
    /// `GET /api/queues`, all pages, sorted by (vhost, name), narrowed down to the exported
    /// queues by [`crate::selection::select`].
    pub queues: Fetched<Vec<Queue>>,
    /// `GET /api/health/checks/alarms`.
    pub alarms: Fetched<Alarms>,
    /// Queues that receive dead-lettered messages, as (vhost, queue) sorted: the queues bound
    /// to the dead-letter exchanges the listed queues name (`/api/exchanges/{vhost}/{name}/
    /// bindings/source`), plus the queues named by `x-dead-letter-routing-key` through the
    /// default exchange. `None` when not read (discovery off, or the queue listing failed);
    /// an error when a bindings read failed.
    pub dead_letter_queues: Option<Fetched<Vec<(String, String)>>>,
    /// How this poll's reads of the dead-letter exchanges' bindings went (all 0 when
    /// discovery did not run): a failed read of one exchange leaves the poll up but is
    /// counted here.
    pub dead_letter_reads: BindingsReads,
    /// How the queue listing was narrowed down (all 0 when `/api/queues` failed).
    pub selection: Selection,
    /// Counters over the sidecar's lifetime, as of this poll.
    pub totals: PollTotals,
    /// Every cluster member's own `GET /api/nodes`, read through its own management API
    /// ([`crate::rabbitmq::members`]); no views without `cluster.nodes` /
    /// `cluster.url_template` (the poll's own `nodes` is then the only view). Judged by the
    /// alert engine ([`crate::alerting::cluster`]).
    pub member_views: MemberViews,
    /// Where this poll's queue and node figures come from (`rabbitmq.source`, `auto`
    /// resolved): with [`FigureSource::Prometheus`] the figure fields of `queues` and `nodes`
    /// were filled from `prometheus`, the listings from the management API.
    pub source: FigureSource,
    /// Every member's rabbitmq_prometheus as read in this poll; `None` with the management
    /// source.
    pub prometheus: Option<PrometheusRead>,
    /// Every member's health checks (`/api/health/checks/...` on its own API:
    /// [`crate::rabbitmq::health`]); empty when none was read.
    pub health: Health,
}

impl Snapshot {
    /// The error of `endpoint` in this poll, if its read failed (`None` for the audit's
    /// endpoints, which the poll does not read).
    pub fn error(&self, endpoint: Endpoint) -> Option<&Error> {
        match endpoint {
            Endpoint::Overview => self.overview.err(),
            Endpoint::Nodes => self.nodes.err(),
            Endpoint::Queues => self.queues.err(),
            Endpoint::Alarms => self.alarms.err(),
            Endpoint::Bindings => self.dead_letter_queues.as_ref().and_then(Fetched::err),
            Endpoint::PrometheusQueues => self.prometheus.as_ref().and_then(|p| p.queues.err()),
            Endpoint::PrometheusNodes => self.prometheus.as_ref().and_then(|p| p.nodes.err()),
            // Read by the audit (`crate::audit`), never by the poll.
            Endpoint::Consumers
            | Endpoint::Channels
            | Endpoint::Exchanges
            | Endpoint::AllBindings
            | Endpoint::HealthChecks => None,
        }
    }

    /// Body bytes received from `endpoint` in this poll (0 when the read failed).
    pub fn bytes_of(&self, endpoint: Endpoint) -> u64 {
        match endpoint {
            Endpoint::Overview => self.overview.bytes,
            Endpoint::Nodes => self.nodes.bytes,
            Endpoint::Queues => self.queues.bytes,
            Endpoint::Alarms => self.alarms.bytes,
            Endpoint::Bindings => self.dead_letter_queues.as_ref().map_or(0, |f| f.bytes),
            Endpoint::PrometheusQueues => self.prometheus.as_ref().map_or(0, |p| p.queues.bytes),
            Endpoint::PrometheusNodes => self.prometheus.as_ref().map_or(0, |p| p.nodes.bytes),
            Endpoint::Consumers
            | Endpoint::Channels
            | Endpoint::Exchanges
            | Endpoint::AllBindings
            | Endpoint::HealthChecks => 0,
        }
    }

    /// How long reading `endpoint` took in this poll.
    pub fn duration_of(&self, endpoint: Endpoint) -> Duration {
        match endpoint {
            Endpoint::Overview => self.overview.duration,
            Endpoint::Nodes => self.nodes.duration,
            Endpoint::Queues => self.queues.duration,
            Endpoint::Alarms => self.alarms.duration,
            Endpoint::Bindings => self
                .dead_letter_queues
                .as_ref()
                .map_or(Duration::ZERO, |f| f.duration),
            Endpoint::PrometheusQueues => self
                .prometheus
                .as_ref()
                .map_or(Duration::ZERO, |p| p.queues.duration),
            Endpoint::PrometheusNodes => self
                .prometheus
                .as_ref()
                .map_or(Duration::ZERO, |p| p.nodes.duration),
            Endpoint::Consumers
            | Endpoint::Channels
            | Endpoint::Exchanges
            | Endpoint::AllBindings
            | Endpoint::HealthChecks => Duration::ZERO,
        }
    }

    /// Whether every endpoint was read successfully: the value of `rabbitmq_up`.
    pub fn is_up(&self) -> bool {
        Endpoint::ALL.iter().all(|e| self.error(*e).is_none())
    }

    /// When this poll started, in seconds since the Unix epoch (0 for a clock before it): the
    /// time axis of the detectors' windows and of age figures.
    pub fn started_at_secs(&self) -> f64 {
        self.started_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    }

    /// When this poll ended.
    pub fn finished_at(&self) -> SystemTime {
        self.started_at + self.duration
    }

    /// A [`SnapshotBuilder`] for a snapshot built by hand (tests, benchmarks).
    pub fn builder() -> SnapshotBuilder {
        SnapshotBuilder::default()
    }
}

/// Builds a [`Snapshot`] by hand (unit and integration tests, benchmarks; the poller builds
/// its own). Starts as poll 1, at the Unix epoch, taking no time, in which every endpoint
/// answered with nothing: a default overview, no nodes, no queues, the alarm check `ok`; no
/// dead-letter discovery, no member views, zero totals.
#[derive(Debug, Clone)]
pub struct SnapshotBuilder {
    /// The snapshot so far.
    snapshot: Snapshot,
    /// Totals before this poll, to which [`SnapshotBuilder::build`] adds this poll.
    counted_after: Option<PollTotals>,
}

impl Default for SnapshotBuilder {
    fn default() -> Self {
        Self {
            snapshot: Snapshot {
                seq: 1,
                started_at: SystemTime::UNIX_EPOCH,
                duration: Duration::ZERO,
                overview: Fetched::answered(Overview::default()),
                nodes: Fetched::answered(Vec::new()),
                queues: Fetched::answered(Vec::new()),
                alarms: Fetched::answered(Alarms {
                    status: "ok".to_owned(),
                    alarms: Vec::new(),
                }),
                dead_letter_queues: None,
                dead_letter_reads: BindingsReads::default(),
                selection: Selection::default(),
                totals: PollTotals::default(),
                member_views: MemberViews::default(),
                source: FigureSource::Management,
                prometheus: None,
                health: Health::default(),
            },
            counted_after: None,
        }
    }
}

impl SnapshotBuilder {
    /// [`Snapshot::seq`].
    #[must_use]
    pub fn seq(mut self, seq: u64) -> Self {
        self.snapshot.seq = seq;
        self
    }

    /// [`Snapshot::started_at`].
    #[must_use]
    pub fn started_at(mut self, at: SystemTime) -> Self {
        self.snapshot.started_at = at;
        self
    }

    /// [`Snapshot::duration`].
    #[must_use]
    pub fn duration(mut self, duration: Duration) -> Self {
        self.snapshot.duration = duration;
        self
    }

    /// [`Snapshot::overview`]: a value (answered) or a [`Fetched`].
    #[must_use]
    pub fn overview(mut self, overview: impl Into<Fetched<Overview>>) -> Self {
        self.snapshot.overview = overview.into();
        self
    }

    /// [`Snapshot::nodes`]: a value (answered) or a [`Fetched`].
    #[must_use]
    pub fn nodes(mut self, nodes: impl Into<Fetched<Vec<Node>>>) -> Self {
        self.snapshot.nodes = nodes.into();
        self
    }

    /// [`Snapshot::queues`] (already selected): a value (answered) or a [`Fetched`].
    #[must_use]
    pub fn queues(mut self, queues: impl Into<Fetched<Vec<Queue>>>) -> Self {
        self.snapshot.queues = queues.into();
        self
    }

    /// [`Snapshot::alarms`]: a value (answered) or a [`Fetched`].
    #[must_use]
    pub fn alarms(mut self, alarms: impl Into<Fetched<Alarms>>) -> Self {
        self.snapshot.alarms = alarms.into();
        self
    }

    /// [`Snapshot::dead_letter_queues`]: discovery ran and read these (a value or a
    /// [`Fetched`]).
    #[must_use]
    pub fn dead_letter_queues(mut self, queues: impl Into<Fetched<Vec<(String, String)>>>) -> Self {
        self.snapshot.dead_letter_queues = Some(queues.into());
        self
    }

    /// [`Snapshot::dead_letter_reads`].
    #[must_use]
    pub fn dead_letter_reads(mut self, reads: BindingsReads) -> Self {
        self.snapshot.dead_letter_reads = reads;
        self
    }

    /// [`Snapshot::selection`].
    #[must_use]
    pub fn selection(mut self, selection: Selection) -> Self {
        self.snapshot.selection = selection;
        self
    }

    /// [`Snapshot::totals`], as given.
    #[must_use]
    pub fn totals(mut self, totals: PollTotals) -> Self {
        self.snapshot.totals = totals;
        self.counted_after = None;
        self
    }

    /// [`Snapshot::totals`]: `previous` with this poll counted, as the poller does.
    #[must_use]
    pub fn counted_after(mut self, previous: PollTotals) -> Self {
        self.counted_after = Some(previous);
        self
    }

    /// [`Snapshot::member_views`].
    #[must_use]
    pub fn member_views(mut self, views: MemberViews) -> Self {
        self.snapshot.member_views = views;
        self
    }

    /// [`Snapshot::source`] and [`Snapshot::prometheus`]: the figures were read from
    /// rabbitmq_prometheus as `read` says.
    #[must_use]
    pub fn prometheus(mut self, read: PrometheusRead) -> Self {
        self.snapshot.source = FigureSource::Prometheus;
        self.snapshot.prometheus = Some(read);
        self
    }

    /// [`Snapshot::health`].
    #[must_use]
    pub fn health(mut self, health: Health) -> Self {
        self.snapshot.health = health;
        self
    }

    /// The snapshot.
    pub fn build(self) -> Snapshot {
        let mut snapshot = self.snapshot;
        if let Some(mut totals) = self.counted_after {
            totals.record_poll(&snapshot);
            snapshot.totals = totals;
        }
        snapshot
    }
}

/// Counters over the sidecar's lifetime, carried from poll to poll by the poller and copied
/// into each [`Snapshot`], so that metrics stay a function of the latest snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollTotals {
    /// Polls completed.
    pub polls: u64,
    /// Failed endpoint reads by (endpoint, [`Error::reason`]).
    pub failures: BTreeMap<(Endpoint, &'static str), u64>,
    /// When the last poll that read every endpoint successfully ended; `None` before the first.
    pub last_success: Option<SystemTime>,
    /// Reads of dead-letter exchanges' bindings: every poll's
    /// [`Snapshot::dead_letter_reads`] added up.
    pub dead_letter_reads: BindingsReads,
}

impl PollTotals {
    /// Counts a finished poll: one more poll, one more failure per failed endpoint, and the
    /// success time if every endpoint succeeded.
    pub fn record_poll(&mut self, snapshot: &Snapshot) {
        self.polls += 1;
        self.dead_letter_reads.add(&snapshot.dead_letter_reads);
        for endpoint in Endpoint::ALL {
            if let Some(e) = snapshot.error(endpoint) {
                *self.failures.entry((endpoint, e.reason())).or_default() += 1;
            }
        }
        if snapshot.is_up() {
            self.last_success = Some(snapshot.finished_at());
        }
    }

    /// Failed reads of `endpoint` for `reason` so far (0 when none).
    pub fn failures_of(&self, endpoint: Endpoint, reason: &str) -> u64 {
        self.failures
            .iter()
            .find(|((e, r), _)| *e == endpoint && *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}
