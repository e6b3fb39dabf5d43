//! The poll loop: once per `poll.interval`, read every endpoint concurrently into a
//! [`Snapshot`] and publish it on a `tokio::sync::watch` channel. Polls never overlap; a poll
//! that overruns the interval delays the next one. Failures are logged here, one line per
//! failed endpoint, and counted in the snapshot's [`PollTotals`].
//!
//! Queue and node figures come from the management statistics or, as [`choose_source`]
//! decides from `rabbitmq.source` and the last overview, from every member's
//! rabbitmq_prometheus ([`crate::rabbitmq::prometheus`]), merged into the same listings.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::{QueuesConfig, Source};
use crate::rabbitmq::client::BindingsReads;
use crate::rabbitmq::health::{Health, Reader as HealthReader};
use crate::rabbitmq::members::{MemberViews, Reader};
use crate::rabbitmq::model::{
    DeadLetterTargets, Overview, Queue, add_dead_letter_target, has_detailed_queues,
};
use crate::rabbitmq::prometheus::{self, Reader as PrometheusReader};
use crate::rabbitmq::{Body, Client, Endpoint, Error, FigureSource};
use crate::selection::{Selection, Selector};
use crate::snapshot::{Fetched, PollTotals, Snapshot, SnapshotSender};
use crate::util::Updates;

/// Reads the management API on a fixed interval and publishes snapshots.
#[derive(Debug)]
pub struct Poller {
    /// The management API client.
    client: Client,
    /// Time between the starts of two polls (`poll.interval`).
    interval: Duration,
    /// Which queues to read and export (`queues.*`).
    queues: QueuesConfig,
    /// Reads every member's own view (`cluster.*`); `None`: only `rabbitmq.url`'s view.
    cluster: Option<Reader>,
    /// Whether to read the bindings of the queues' dead-letter exchanges
    /// (`alerting.backlog.discover_dead_letter_queues`).
    discover_dead_letters: bool,
    /// `rabbitmq.source`.
    source: Source,
    /// Reads every member's rabbitmq_prometheus when the prometheus source is used; `None`:
    /// the management source only.
    prometheus: Option<PrometheusReader>,
    /// The longest a whole poll may take (`poll.deadline`): reads still running then fail
    /// as timed out.
    deadline: Duration,
    /// Reads every member's health checks ([`crate::rabbitmq::health`]).
    health: HealthReader,
}

/// A reloaded configuration's poller ([`Poller::run`] takes it in place of its own).
#[derive(Debug)]
pub struct Replacement {
    /// The poller built from the new configuration (client, interval, filters, readers).
    pub poller: Poller,
    /// Whether `rabbitmq.url` changed: what was learnt of the old cluster (members, version)
    /// is then forgotten.
    pub new_target: bool,
}

/// What the poller learns from one poll for the next.
#[derive(Debug, Clone, Default)]
pub struct PollState {
    /// Lifetime counters.
    pub totals: PollTotals,
    /// Whether queues are read from `/api/queues/detailed` (RabbitMQ 3.13+); `None` until an
    /// overview has told the version.
    pub detailed_queues: Option<bool>,
    /// Every cluster member listed so far (by `rabbitmq.url` or any member's view), for
    /// `cluster.url_template` discovery.
    pub members: BTreeSet<String>,
    /// The figure source chosen from the last overview (see [`choose_source`]); `None` until
    /// an overview has been read.
    pub source: Option<FigureSource>,
}

impl Poller {
    /// A poller reading through `client` every `interval`, exporting the queues `queues`
    /// selects, and finding the dead-letter queues when `discover_dead_letters`.
    pub fn new(
        client: Client,
        interval: Duration,
        queues: QueuesConfig,
        discover_dead_letters: bool,
    ) -> Self {
        Self {
            client,
            interval,
            queues,
            cluster: None,
            discover_dead_letters,
            source: Source::Management,
            prometheus: None,
            deadline: Duration::from_secs(60),
            health: HealthReader::default(),
        }
    }

    /// The same poller, reading queue and node figures as `source` says, from every member's
    /// rabbitmq_prometheus through `reader` when that source is chosen.
    pub fn with_prometheus(mut self, source: Source, reader: PrometheusReader) -> Self {
        self.source = source;
        self.prometheus = Some(reader);
        self
    }

    /// The source a poll uses given the broker's `overview`; without a prometheus reader,
    /// always the management statistics.
    fn choose(&self, overview: Option<&Overview>) -> FigureSource {
        if self.prometheus.is_none() {
            return FigureSource::Management;
        }
        choose_source(self.source, overview)
    }

    /// The management API client this poller reads through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The same poller, ending every read still running `deadline` after a poll started
    /// (`poll.deadline`; default 60 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The same poller, also checking the listeners of `protocols` on every member
    /// (`cluster.expected_protocols`; see [`crate::rabbitmq::listeners`]).
    pub fn with_expected_protocols(mut self, protocols: Vec<String>) -> Self {
        self.health = HealthReader::new(protocols);
        self
    }

    /// The same poller, also reading every cluster member's own view through `reader`
    /// (concurrently with the other reads; see [`crate::rabbitmq::members`]).
    pub fn with_cluster(mut self, reader: Reader) -> Self {
        self.cluster = Some(reader);
        self
    }

    /// The clients of the members whose own API answered in `views` (none without a cluster
    /// reader): where cluster-wide reads fail over to.
    fn answering_members(&self, views: &MemberViews) -> Vec<(String, Client)> {
        let Some(reader) = &self.cluster else {
            return Vec::new();
        };
        let answering: BTreeSet<&str> = views
            .views
            .iter()
            .filter(|v| v.nodes.ok().is_some())
            .map(|v| v.node.as_str())
            .collect();
        reader
            .clients()
            .into_iter()
            .filter(|(name, _)| answering.contains(name.as_str()))
            .collect()
    }

    /// `attempt` (read through member `name`) when it succeeded, else the original failure.
    fn failover<T>(name: &str, attempt: Fetched<T>, failed: Fetched<T>) -> Fetched<T> {
        match (&attempt.result, &failed.result) {
            (Ok(_), Err(e)) => {
                tracing::info!(
                    endpoint = %e.endpoint(),
                    member = %name,
                    error = %e,
                    "rabbitmq.url failed; read through a cluster member instead"
                );
                attempt
            }
            _ => failed,
        }
    }

    /// Polls until `shutdown` is cancelled, publishing each snapshot on `tx`. The first poll
    /// starts at once. A poll in progress is abandoned on shutdown.
    ///
    /// A reloaded configuration's poller arrives on `updates` ([`Replacement`]) and is taken
    /// at once, or after the poll in progress: the next poll uses it, keeping the sequence
    /// numbers, the lifetime counters and, unless the management URL changed, what was learnt
    /// of the cluster. A changed interval counts from the reload.
    pub async fn run(
        mut self,
        tx: SnapshotSender,
        mut updates: Updates<Replacement>,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut state = PollState::default();
        let mut was_up = true;
        let mut last_dropped = 0;
        let mut staged: Option<Replacement> = None;
        'polls: for seq in 1.. {
            loop {
                if let Some(next) = staged.take() {
                    self.take(next, &mut ticker, &mut state);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break 'polls,
                    _ = ticker.tick() => break,
                    Some(update) = updates.recv() => {
                        staged = Some(update.value);
                        let _ = update.taken.send(());
                    }
                }
            }
            let snapshot = {
                let poll = self.poll(seq, &state);
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'polls,
                        s = &mut poll => break s,
                        Some(update) = updates.recv() => {
                            staged = Some(update.value);
                            let _ = update.taken.send(());
                        }
                    }
                }
            };
            state = snapshot_state(&snapshot, &state);
            if let Some(overview) = snapshot.overview.ok() {
                let source = self.choose(Some(overview));
                if state.source.is_some_and(|s| s != source) {
                    tracing::info!(
                        source = source.label(),
                        "queue and node figures: source changed"
                    );
                }
                state.source = Some(source);
            }
            log_outcome(&snapshot, &mut was_up);
            log_caps(&snapshot, &mut last_dropped);
            tx.send_replace(Some(Arc::new(snapshot)));
        }
        tracing::debug!("poller stopped");
    }

    /// Takes `next` in place of `self`: a new ticker when the interval changed (its first
    /// tick one interval from now), and a fresh [`PollState`] but for the counters when the
    /// management URL changed.
    fn take(
        &mut self,
        next: Replacement,
        ticker: &mut tokio::time::Interval,
        state: &mut PollState,
    ) {
        if next.poller.interval != self.interval {
            *ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + next.poller.interval,
                next.poller.interval,
            );
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        if next.new_target {
            *state = PollState {
                totals: state.totals.clone(),
                ..PollState::default()
            };
        } else {
            next.poller.health.adopt(&self.health);
        }
        *self = next.poller;
    }

    /// Reads every endpoint once and returns the snapshot numbered `seq`, with the totals of
    /// `previous` updated by this poll. Endpoints are read concurrently; only while the broker
    /// version is unknown is the overview read first (it decides how queues are listed).
    pub async fn poll(&self, seq: u64, previous: &PollState) -> Snapshot {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + self.deadline);
        let main = async {
            match (previous.detailed_queues, previous.source) {
                (Some(detailed), Some(source)) => {
                    let settings_only = source == FigureSource::Prometheus;
                    let (overview, nodes, queues, alarms, prom) = tokio::join!(
                        self.by_deadline(Endpoint::Overview, deadline, self.client.overview()),
                        self.by_deadline(Endpoint::Nodes, deadline, self.client.nodes()),
                        self.read_queues(&self.client, deadline, detailed, settings_only),
                        self.by_deadline(Endpoint::Alarms, deadline, self.client.alarms()),
                        self.read_prometheus(source, &previous.members, deadline),
                    );
                    (overview, nodes, queues, alarms, source, prom)
                }
                _ => {
                    let overview = self
                        .by_deadline(Endpoint::Overview, deadline, self.client.overview())
                        .await;
                    let detailed = overview.ok().is_some_and(detailed_queues);
                    let source = self.choose(overview.ok());
                    let settings_only = source == FigureSource::Prometheus;
                    let (nodes, queues, alarms, prom) = tokio::join!(
                        self.by_deadline(Endpoint::Nodes, deadline, self.client.nodes()),
                        self.read_queues(&self.client, deadline, detailed, settings_only),
                        self.by_deadline(Endpoint::Alarms, deadline, self.client.alarms()),
                        self.read_prometheus(source, &previous.members, deadline),
                    );
                    (overview, nodes, queues, alarms, source, prom)
                }
            }
        };
        let views = async {
            match &self.cluster {
                Some(reader) => reader.read(&previous.members).await,
                None => MemberViews::default(),
            }
        };
        let health = self.read_health(deadline);
        let (
            (
                mut overview,
                mut nodes,
                (mut queues, mut selection, mut targets),
                mut alarms,
                source,
                prom,
            ),
            member_views,
            mut health,
        ) = tokio::join!(main, views, health);
        // Without member clients the checks were read through `rabbitmq.url`: they are the
        // answering node's, named by its overview (dropped when that is unknown).
        let answering = overview.ok().and_then(|o| o.node.clone());
        health.members.retain_mut(|m| {
            if m.node.is_empty() {
                match &answering {
                    Some(name) => m.node.clone_from(name),
                    None => return false,
                }
            }
            true
        });
        // `rabbitmq.url` is not a single point of failure: the cluster-wide reads that failed
        // through it are read through a member whose API answered this poll.
        let members = self.answering_members(&member_views);
        for (name, client) in &members {
            if overview.result.is_err() {
                overview = Self::failover(name, Fetched::timed(client.overview()).await, overview);
            }
            if nodes.result.is_err() {
                nodes = Self::failover(name, Fetched::timed(client.nodes()).await, nodes);
            }
            if queues.result.is_err() {
                let detailed = previous
                    .detailed_queues
                    .or_else(|| overview.ok().map(detailed_queues))
                    .unwrap_or(false);
                let settings_only = source == FigureSource::Prometheus;
                let (read, read_selection, read_targets) = self
                    .read_queues(client, deadline, detailed, settings_only)
                    .await;
                if read.result.is_ok() {
                    selection = read_selection;
                    targets = read_targets;
                }
                queues = Self::failover(name, read, queues);
            }
            if alarms.result.is_err() {
                alarms = Self::failover(name, Fetched::timed(client.alarms()).await, alarms);
            }
        }
        // The protocols each member serves, for the next polls' listener checks.
        if let Some(o) = overview.ok() {
            self.health.learn(o);
        }
        if let Some(read) = &prom {
            if let Ok(listed) = &mut queues.result {
                prometheus::apply_queues(listed, read);
            }
            if let Ok(listed) = &mut nodes.result {
                prometheus::apply_nodes(listed, read);
            }
            if let (Ok(o), Some(listed)) = (&mut overview.result, nodes.ok()) {
                prometheus::apply_overview(o, read, listed.len());
            }
        }
        // Which queues receive dead letters depends on every listed queue's settings (also
        // those not exported): the targets were gathered while the listing was decoded.
        let mut dead_letter_reads = BindingsReads::default();
        let dead_letter_queues = match targets {
            Some((exchanges, direct)) => {
                let mut fetched = self
                    .read_bound(&self.client, &exchanges, deadline, &mut dead_letter_reads)
                    .await;
                for (name, client) in &members {
                    if fetched.result.is_ok() {
                        break;
                    }
                    let attempt = self
                        .read_bound(client, &exchanges, deadline, &mut dead_letter_reads)
                        .await;
                    fetched = Self::failover(name, attempt, fetched);
                }
                if let Ok(bound) = &mut fetched.result {
                    bound.extend(direct);
                    bound.sort_unstable();
                    bound.dedup();
                }
                Some(fetched)
            }
            None => None,
        };
        let mut snapshot = Snapshot {
            seq,
            started_at,
            duration: start.elapsed(),
            overview,
            nodes,
            queues,
            alarms,
            dead_letter_queues,
            dead_letter_reads,
            selection,
            totals: previous.totals.clone(),
            member_views,
            source,
            prometheus: prom,
            health,
        };
        let mut totals = previous.totals.clone();
        totals.record_poll(&snapshot);
        snapshot.totals = totals;
        snapshot
    }
}

impl Poller {
    /// Reads every member's health checks through its own API (the configured or discovered
    /// members' clients), or, without member clients, through `rabbitmq.url` (the member is
    /// then named `""` until the overview names it). Bounded by the poll's `deadline`.
    async fn read_health(&self, deadline: tokio::time::Instant) -> Health {
        let mut members = self
            .cluster
            .as_ref()
            .map(Reader::clients)
            .unwrap_or_default();
        if members.is_empty() {
            members.push((String::new(), self.client.clone()));
        }
        tokio::time::timeout_at(deadline, self.health.read(members))
            .await
            .unwrap_or_default()
    }

    /// Reads every member's rabbitmq_prometheus when `source` is prometheus, bounded by the
    /// poll's `deadline` (members still unread then are left out: their figures unknown).
    async fn read_prometheus(
        &self,
        source: FigureSource,
        members: &BTreeSet<String>,
        deadline: tokio::time::Instant,
    ) -> Option<prometheus::Read> {
        match (&self.prometheus, source) {
            (Some(reader), FigureSource::Prometheus) => {
                tokio::time::timeout_at(deadline, reader.read(members))
                    .await
                    .ok()
            }
            _ => None,
        }
    }

    /// The queues bound to the dead-letter `exchanges`, read through `client` by the poll's
    /// `deadline`; each bindings read is counted in `reads` as it ends, and those cut off by
    /// the deadline as skipped.
    async fn read_bound(
        &self,
        client: &Client,
        exchanges: &BTreeSet<(String, String)>,
        deadline: tokio::time::Instant,
        reads: &mut BindingsReads,
    ) -> Fetched<Vec<(String, String)>> {
        let fetched = self
            .by_deadline(Endpoint::Bindings, deadline, async {
                client
                    .bound_queues(exchanges, reads)
                    .await
                    .map(|body| Body {
                        value: body.value.queues,
                        bytes: body.bytes,
                    })
            })
            .await;
        reads.cut_off();
        fetched
    }

    /// `read`, timed, failing as [`Error::Timeout`] if it is still running at `deadline`.
    async fn by_deadline<T>(
        &self,
        endpoint: Endpoint,
        deadline: tokio::time::Instant,
        read: impl Future<Output = Result<Body<T>, Error>>,
    ) -> Fetched<T> {
        let timeout_ms = self.deadline.as_millis();
        Fetched::timed(async {
            tokio::time::timeout_at(deadline, read)
                .await
                .unwrap_or(Err(Error::Timeout {
                    endpoint,
                    timeout_ms,
                }))
        })
        .await
    }

    /// The streamed queue listing, selected as it is decoded: the exported queues (sorted by
    /// vhost, name), how they were selected, and, when discovery is on and the listing
    /// succeeded, the dead-letter targets named by every listed queue.
    async fn read_queues(
        &self,
        client: &Client,
        deadline: tokio::time::Instant,
        detailed: bool,
        settings_only: bool,
    ) -> (Fetched<Vec<Queue>>, Selection, Option<DeadLetterTargets>) {
        let mut selector = Selector::new(&self.queues);
        let mut targets = DeadLetterTargets::default();
        let discover = self.discover_dead_letters;
        let read = client.queues(&self.queues, detailed, settings_only, |queue| {
            if discover {
                add_dead_letter_target(&mut targets, &queue);
            }
            selector.push(queue);
        });
        let fetched = self
            .by_deadline(Endpoint::Queues, deadline, async {
                read.await.map(|bytes| Body { value: (), bytes })
            })
            .await;
        match fetched.result {
            Ok(()) => {
                let (kept, selection) = selector.finish();
                let fetched = Fetched {
                    result: Ok(kept),
                    duration: fetched.duration,
                    bytes: fetched.bytes,
                };
                (fetched, selection, discover.then_some(targets))
            }
            Err(e) => (
                Fetched {
                    result: Err(e),
                    duration: fetched.duration,
                    bytes: 0,
                },
                Selection::default(),
                None,
            ),
        }
    }
}

/// Which source a poll reads queue and node figures from, given `rabbitmq.source` and the
/// broker's last overview (`None` when it could not be read).
///
/// `auto` chooses rabbitmq_prometheus whenever the broker collects no management statistics
/// (`disable_stats: true`, or the field missing), else the management statistics. Measured
/// (`bench/sources.sh`, 4.0.5 with 10,000 queues): where statistics are on, a poll costs the
/// broker about the same with either source, and only the management statistics give the
/// per-queue publish counter and the backlog detector's rates, so `auto` keeps them there
/// (docs/operations.md, "How `auto` chooses").
pub fn choose_source(configured: Source, overview: Option<&Overview>) -> FigureSource {
    match configured {
        Source::Management => FigureSource::Management,
        Source::Prometheus => FigureSource::Prometheus,
        Source::Auto => match overview {
            Some(o) if !o.stats_enabled() => FigureSource::Prometheus,
            _ => FigureSource::Management,
        },
    }
}

/// The members known after `snapshot` (for discovery): those of `previous`, plus every member
/// listed by `rabbitmq.url` or by a member's own view.
fn known_members(snapshot: &Snapshot, previous: &BTreeSet<String>) -> BTreeSet<String> {
    let mut members = previous.clone();
    let main = snapshot
        .nodes
        .ok()
        .into_iter()
        .flatten()
        .map(|n| n.name.as_str());
    for name in snapshot.member_views.listed_members().chain(main) {
        if !members.contains(name) {
            members.insert(name.to_owned());
        }
    }
    members
}

fn detailed_queues(overview: &Overview) -> bool {
    overview
        .management_version
        .as_deref()
        .or(overview.rabbitmq_version.as_deref())
        .is_some_and(has_detailed_queues)
}

/// The state carried to the next poll: this poll's totals, and the queue listing style from
/// this poll's overview (or the previous one's, when this overview failed).
fn snapshot_state(snapshot: &Snapshot, previous: &PollState) -> PollState {
    PollState {
        totals: snapshot.totals.clone(),
        detailed_queues: snapshot
            .overview
            .ok()
            .map(detailed_queues)
            .or(previous.detailed_queues),
        members: known_members(snapshot, &previous.members),
        // Re-chosen from this poll's overview by the poller (`Poller::run`).
        source: previous.source,
    }
}

/// One warning when the queue caps start (or change) dropping queues, one info when they stop.
fn log_caps(snapshot: &Snapshot, last_dropped: &mut u64) {
    let s = &snapshot.selection;
    let dropped = s.dropped_total + s.dropped_per_vhost;
    if snapshot.queues.ok().is_none() || dropped == *last_dropped {
        return;
    }
    if dropped > 0 {
        tracing::warn!(
            dropped_max_total = s.dropped_total,
            dropped_max_per_vhost = s.dropped_per_vhost,
            exported = s.exported,
            "queue caps hit: some queues are not exported (raise queues.max_total / queues.max_per_vhost or narrow the filters)"
        );
    } else {
        tracing::info!(exported = s.exported, "queue caps no longer hit");
    }
    *last_dropped = dropped;
}

/// One warning per failed endpoint, and for rabbitmq_prometheus's endpoints (read on every
/// member) one per failed member, naming it; one info line when a failing sidecar recovers.
fn log_outcome(snapshot: &Snapshot, was_up: &mut bool) {
    for endpoint in Endpoint::ALL {
        let members = snapshot
            .prometheus
            .as_ref()
            .map(|read| read.failures(endpoint))
            .unwrap_or_default();
        for (member, e) in &members {
            tracing::warn!(
                endpoint = endpoint.path(),
                member = %member,
                reason = e.reason(),
                error = %e,
                seq = snapshot.seq,
                "poll failed on this member"
            );
        }
        if !members.is_empty() {
            continue;
        }
        if let Some(e) = snapshot.error(endpoint) {
            tracing::warn!(
                endpoint = endpoint.path(),
                reason = e.reason(),
                error = %e,
                seq = snapshot.seq,
                "poll failed"
            );
        }
    }
    let up = snapshot.is_up();
    if up && !*was_up {
        tracing::info!(
            seq = snapshot.seq,
            "poll recovered: every endpoint answered"
        );
    }
    tracing::debug!(
        seq = snapshot.seq,
        up,
        duration_ms = snapshot.duration.as_millis() as u64,
        queues = snapshot.queues.ok().map(Vec::len),
        "poll finished"
    );
    *was_up = up;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview(disable_stats: Option<bool>) -> Overview {
        Overview {
            disable_stats,
            ..Overview::default()
        }
    }

    #[test]
    fn auto_chooses_prometheus_only_without_management_statistics() {
        let auto = |o: Option<Overview>| choose_source(Source::Auto, o.as_ref());
        assert_eq!(auto(Some(overview(Some(false)))), FigureSource::Management);
        assert_eq!(auto(Some(overview(Some(true)))), FigureSource::Prometheus);
        assert_eq!(
            auto(Some(overview(None))),
            FigureSource::Prometheus,
            "field missing"
        );
        assert_eq!(auto(None), FigureSource::Management, "overview unknown");
        let stats_off = overview(Some(true));
        assert_eq!(
            choose_source(Source::Management, Some(&stats_off)),
            FigureSource::Management
        );
        assert_eq!(
            choose_source(Source::Prometheus, None),
            FigureSource::Prometheus
        );
    }
}
