//! [`Snapshot`]: one immutable record per poll of what was read from the management API,
//! when, and how each endpoint's read went. Everything downstream (metrics, the status page,
//! later the alert rules) is a function of the latest snapshot; nothing downstream calls the
//! broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::rabbitmq::model::{Alarms, Node, Overview, Queue};
use crate::rabbitmq::{Endpoint, Error};
use crate::selection::Selection;

/// The receiving side of the snapshot channel: `None` until the first poll has finished.
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;
/// The sending side of the snapshot channel, owned by the poller ([`crate::poller::Poller`]).
pub type SnapshotSender = watch::Sender<Option<Arc<Snapshot>>>;

/// The outcome of reading one endpoint during one poll.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The decoded answer, or why there is none. An `Err` means "unknown", not "empty".
    pub result: Result<T, Error>,
    /// Wall time of the read (all pages, for `/api/queues`).
    pub duration: Duration,
    /// Response body bytes received by a successful read (all pages); 0 for a failed one.
    pub bytes: u64,
}

impl<T> Fetched<T> {
    /// The value when the read succeeded.
    pub fn ok(&self) -> Option<&T> {
        self.result.as_ref().ok()
    }

    /// The error when the read failed.
    pub fn err(&self) -> Option<&Error> {
        self.result.as_ref().err()
    }
}

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
    /// How the queue listing was narrowed down (all 0 when `/api/queues` failed).
    pub selection: Selection,
    /// Counters over the sidecar's lifetime, as of this poll.
    pub totals: PollTotals,
    /// Every cluster member's own view and the cluster detector's judgement
    /// ([`crate::cluster`]); `Default` (nothing read) in snapshots built by hand.
    pub cluster: crate::cluster::ClusterStatus,
}

impl Snapshot {
    /// The error of `endpoint` in this poll, if its read failed.
    pub fn error(&self, endpoint: Endpoint) -> Option<&Error> {
        match endpoint {
            Endpoint::Overview => self.overview.err(),
            Endpoint::Nodes => self.nodes.err(),
            Endpoint::Queues => self.queues.err(),
            Endpoint::Alarms => self.alarms.err(),
            Endpoint::Bindings => self.dead_letter_queues.as_ref().and_then(Fetched::err),
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
        }
    }

    /// Whether every endpoint was read successfully: the value of `rabbitmq_up`.
    pub fn is_up(&self) -> bool {
        Endpoint::ALL.iter().all(|e| self.error(*e).is_none())
    }

    /// When this poll ended.
    pub fn finished_at(&self) -> SystemTime {
        self.started_at + self.duration
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
}

impl PollTotals {
    /// Counts a finished poll: one more poll, one more failure per failed endpoint, and the
    /// success time if every endpoint succeeded.
    pub fn record_poll(&mut self, snapshot: &Snapshot) {
        self.polls += 1;
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
