//! Node limits, predictions and traffic health: the rule fields of issue #16's capacity
//! catalogue, and the two judgements here that need history ([`Tracker`]): the free-disk
//! trend ([`DiskTrend`]) and the cluster-wide rates over a window ([`RateWindow`]).
//!
//! - Node fields: `cluster_links` (established Erlang distribution links, `/api/nodes`
//!   `cluster_links`) and `time_to_disk_alarm` (seconds until `disk_free` reaches
//!   `disk_free_limit` at the least-squares slope of the last [`DISK_WINDOW`]). File
//!   descriptors and Erlang processes need no field of their own: `fd_used / fd_total` and
//!   `proc_used / proc_total` are ratios of existing fields.
//! - Cluster fields: `connection_churn` / `channel_churn` (opened + closed per second,
//!   `/api/overview` `churn_rates`), `unroutable_rate` (returned + dropped per second,
//!   `message_stats.return_unroutable` + `drop_unroutable`), `publish_rate`
//!   (`message_stats.publish`), each over the window of [`RateWindow`];
//!   `cluster_links` / `expected_cluster_links` / `missing_cluster_links` (among the members
//!   seen running: n(n−1) links expected), `rabbitmq_versions` / `erlang_versions` (distinct
//!   versions among running members, `/api/nodes` `applications`: `rabbit` and `kernel`).
//! - Queue field: `latency` ([`queue_latency`]).
//!
//! A field whose data was not read is unknown (`None`), never 0.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, UNIX_EPOCH};

use super::backlog::Analysis;
use crate::rabbitmq::model::{CpuCounters, Node, Queue};
use crate::snapshot::Snapshot;

/// How far back the free-disk trend reaches: 1 hour.
pub const DISK_WINDOW: Duration = Duration::from_secs(3600);

/// The span of samples the free-disk trend needs before it predicts: a quarter of
/// [`DISK_WINDOW`] (15 minutes).
pub const DISK_MIN_SPAN: Duration = Duration::from_secs(900);

/// Samples closer together than this replace each other (bounds memory at about 120 samples
/// of 16 bytes per node).
const DISK_MIN_STEP: Duration = Duration::from_secs(30);

/// A node's free-disk prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskForecast {
    /// Least-squares slope of `disk_free` over the window, bytes per second (negative: falling).
    pub slope: f64,
    /// Seconds until `disk_free` reaches `disk_free_limit` along that line (0 when already
    /// below; infinite when not falling).
    pub time_to_alarm: f64,
}

/// The free-disk trend of every node: `(seconds since the Unix epoch, disk_free)` samples
/// over [`DISK_WINDOW`].
#[derive(Debug, Default)]
pub struct DiskTrend {
    /// Samples per node, oldest first.
    samples: BTreeMap<String, VecDeque<(f64, f64)>>,
}

impl DiskTrend {
    /// Adds the `disk_free` of every node of `s` (nodes without it add nothing; nodes gone
    /// from a successful listing are forgotten) and predicts for every node whose samples span
    /// at least [`DISK_MIN_SPAN`] and who reports `disk_free_limit`.
    pub fn observe(&mut self, s: &Snapshot) -> BTreeMap<String, DiskForecast> {
        let Some(nodes) = s.nodes.ok() else {
            return BTreeMap::new();
        };
        let now = s.started_at_secs();
        let listed: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        self.samples
            .retain(|name, _| listed.contains(name.as_str()));
        let mut out = BTreeMap::new();
        for n in nodes {
            let Some(free) = n.disk_free else { continue };
            let window = self.samples.entry(n.name.clone()).or_default();
            // A sample too close to the previous one replaces it.
            if window
                .back()
                .is_some_and(|(t, _)| now - t < DISK_MIN_STEP.as_secs_f64() && window.len() > 1)
            {
                window.pop_back();
            }
            window.push_back((now, free as f64));
            while window
                .front()
                .is_some_and(|(t, _)| now - t > DISK_WINDOW.as_secs_f64())
            {
                window.pop_front();
            }
            if let (Some(limit), Some(f)) = (n.disk_free_limit, forecast(window, now)) {
                let (slope, at_now) = f;
                let headroom = at_now - limit as f64;
                let time_to_alarm = if headroom <= 0.0 {
                    0.0
                } else if slope < 0.0 {
                    headroom / -slope
                } else {
                    f64::INFINITY
                };
                out.insert(
                    n.name.clone(),
                    DiskForecast {
                        slope,
                        time_to_alarm,
                    },
                );
            }
        }
        out
    }
}

/// The least-squares line through `samples`: `(slope, value at now)`, or `None` when they
/// span less than [`DISK_MIN_SPAN`].
fn forecast(samples: &VecDeque<(f64, f64)>, now: f64) -> Option<(f64, f64)> {
    let (first, last) = (samples.front()?.0, samples.back()?.0);
    if last - first < DISK_MIN_SPAN.as_secs_f64() {
        return None;
    }
    let n = samples.len() as f64;
    // Times relative to the first sample keep the sums small.
    let mean_t = samples.iter().map(|(t, _)| t - first).sum::<f64>() / n;
    let mean_y = samples.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, y) in samples {
        let dt = t - first - mean_t;
        sxy += dt * (y - mean_y);
        sxx += dt * dt;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, mean_y + slope * (now - first - mean_t)))
}

/// A capacity field of node `n`: `Some(value)` when `field` is one of this module's node
/// fields (the value `None` when unknown), `None` when it is not.
pub fn node_field(n: &Node, field: &str, report: &Report) -> Option<Option<f64>> {
    match field {
        "cluster_links" => Some(n.cluster_links.as_ref().map(|l| l.len() as f64)),
        "time_to_disk_alarm" => Some(report.disk.get(&n.name).map(|f| f.time_to_alarm)),
        "cpu_utilisation" => Some(report.cpu.get(&n.name).copied()),
        _ => None,
    }
}

/// A capacity field of the cluster: `Some(value)` when `field` is one of this module's
/// cluster fields (the value `None` when unknown), `None` when it is not. `rates` are the
/// [`RateWindow`]'s on the same snapshot.
pub fn cluster_field(s: &Snapshot, field: &str, rates: &Rates) -> Option<Option<f64>> {
    Some(match field {
        "connection_churn" => rates.connection_churn,
        "channel_churn" => rates.channel_churn,
        "publish_rate" => rates.publish,
        "unroutable_rate" => rates.unroutable,
        "cluster_links" => links(s).map(|(established, _)| established as f64),
        "expected_cluster_links" => links(s).map(|(_, expected)| expected as f64),
        "missing_cluster_links" => {
            links(s).map(|(established, expected)| expected.saturating_sub(established) as f64)
        }
        "rabbitmq_versions" => versions(s, "rabbit"),
        "erlang_versions" => versions(s, "kernel"),
        _ => return None,
    })
}

/// Cluster-wide rates per second over the [`RateWindow`]; `None` while unknown (statistics
/// disabled, `/api/overview` not read, or fewer than two samples in the window).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Connections opened + closed per second (`churn_rates.connection_created` +
    /// `connection_closed`).
    pub connection_churn: Option<f64>,
    /// Channels opened + closed per second (`churn_rates.channel_created` + `channel_closed`).
    pub channel_churn: Option<f64>,
    /// Messages published per second (`message_stats.publish`).
    pub publish: Option<f64>,
    /// Unroutable messages returned + dropped per second (`message_stats.return_unroutable` +
    /// `drop_unroutable`).
    pub unroutable: Option<f64>,
}

/// The counters a [`RateWindow`] sample holds: connection_created, connection_closed,
/// channel_created, channel_closed, publish, return_unroutable, drop_unroutable.
type Counters = [Option<u64>; 7];

/// Samples of `/api/overview`'s cluster-wide counters over `alerting.backlog.window`, for
/// rates that do not jump between the management plugin's samples as its `*_details.rate`
/// do. A counter that goes back (statistics reset, node restart) starts the window again.
#[derive(Debug, Default)]
pub struct RateWindow {
    /// How far back the window reaches.
    window: Duration,
    /// `(seconds since the Unix epoch, counters)`, oldest first.
    samples: VecDeque<(f64, Counters)>,
}

impl RateWindow {
    /// An empty window reaching `window` back.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Adds the counters of `s` (nothing when `/api/overview` failed: the rates are then
    /// unknown, the window kept) and returns the rates over the window.
    pub fn observe(&mut self, s: &Snapshot) -> Rates {
        let Some(o) = s.overview.ok() else {
            return Rates::default();
        };
        let now = s.started_at_secs();
        // With statistics on, a counter RabbitMQ has not started (nothing counted yet) is 0.
        let zero = o.stats_enabled().then_some(0);
        let churn = o.churn_rates.clone().unwrap_or_default();
        let stats = o.message_stats.clone().unwrap_or_default();
        let counters: Counters = [
            churn.connection_created,
            churn.connection_closed,
            churn.channel_created,
            churn.channel_closed,
            stats.publish,
            stats.return_unroutable,
            stats.drop_unroutable,
        ]
        .map(|c| c.or(zero));
        let went_back = self.samples.back().is_some_and(|(t, last)| {
            *t >= now
                || last
                    .iter()
                    .zip(&counters)
                    .any(|(a, b)| matches!((a, b), (Some(a), Some(b)) if b < a))
        });
        if went_back {
            self.samples.clear();
        }
        self.samples.push_back((now, counters));
        // Keep one sample at or beyond the window's start, so the rate spans the whole window.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now - t >= self.window.as_secs_f64())
        {
            self.samples.pop_front();
        }
        let (Some((t0, first)), Some((t1, last))) = (self.samples.front(), self.samples.back())
        else {
            return Rates::default();
        };
        let span = t1 - t0;
        let rate = |i: usize| -> Option<f64> {
            (span > 0.0).then_some(())?;
            Some(last[i]?.saturating_sub(first[i]?) as f64 / span)
        };
        let sum = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        Rates {
            connection_churn: sum(rate(0), rate(1)),
            channel_churn: sum(rate(2), rate(3)),
            publish: rate(4),
            unroutable: sum(rate(5), rate(6)),
        }
    }
}

/// What the capacity judgements found in one snapshot (kept in the cluster verdict,
/// [`super::cluster::ClusterStatus::capacity`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Free-disk forecasts per node ([`DiskTrend`]); empty until a node's samples span
    /// [`DISK_MIN_SPAN`].
    pub disk: BTreeMap<String, DiskForecast>,
    /// Cluster-wide rates over the window ([`RateWindow`]).
    pub rates: Rates,
    /// CPU utilisation per node over the window ([`CpuWindow`]): only where the node's
    /// Erlang runtime counters were read (rabbitmq_prometheus `/metrics`).
    pub cpu: BTreeMap<String, f64>,
}

/// Each node's Erlang runtime CPU counters ([`CpuCounters`], from rabbitmq_prometheus) over
/// `alerting.backlog.window`: utilisation = Δruntime ÷ (Δwall time × online schedulers), the
/// share of the schedulers' capacity the runtime's threads used (it can pass 1 briefly, since
/// dirty and async threads count too). A counter going back (a restart) starts again.
#[derive(Debug, Default)]
pub struct CpuWindow {
    /// How far back the window reaches.
    window: Duration,
    /// Per node: `(seconds since the Unix epoch, counters)`, oldest first.
    samples: BTreeMap<String, VecDeque<(f64, CpuCounters)>>,
}

impl CpuWindow {
    /// An empty window reaching `window` back.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: BTreeMap::new(),
        }
    }

    /// Adds the counters of the nodes of `s` and returns the utilisation of every node with
    /// two samples whose wall time advanced. Nodes without counters are forgotten.
    pub fn observe(&mut self, s: &Snapshot) -> BTreeMap<String, f64> {
        let Some(nodes) = s.nodes.ok() else {
            return BTreeMap::new();
        };
        let now = s.started_at_secs();
        self.samples
            .retain(|name, _| nodes.iter().any(|n| &n.name == name && n.cpu.is_some()));
        let mut out = BTreeMap::new();
        for n in nodes {
            let Some(c) = n.cpu else { continue };
            let window = self.samples.entry(n.name.clone()).or_default();
            if window.back().is_some_and(|(t, last)| {
                *t >= now || c.runtime_ms < last.runtime_ms || c.wallclock_ms < last.wallclock_ms
            }) {
                window.clear();
            }
            window.push_back((now, c));
            while window.len() > 2
                && window
                    .get(1)
                    .is_some_and(|(t, _)| now - t >= self.window.as_secs_f64())
            {
                window.pop_front();
            }
            let (Some((_, first)), Some((_, last))) = (window.front(), window.back()) else {
                continue;
            };
            let wall = last.wallclock_ms.saturating_sub(first.wallclock_ms) as f64;
            if wall > 0.0 && last.schedulers > 0 {
                let busy = last.runtime_ms.saturating_sub(first.runtime_ms) as f64;
                out.insert(n.name.clone(), busy / (wall * last.schedulers as f64));
            }
        }
        out
    }
}

/// The capacity judgements' history: the free-disk trend and the rate window.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Free disk per node over [`DISK_WINDOW`].
    disk: DiskTrend,
    /// Cluster-wide counters over `alerting.backlog.window`.
    rates: RateWindow,
    /// Each node's CPU counters over `alerting.backlog.window`.
    cpu: CpuWindow,
}

impl Tracker {
    /// A tracker whose rates reach `window` back (`alerting.backlog.window`).
    pub fn new(window: Duration) -> Self {
        Self {
            disk: DiskTrend::default(),
            rates: RateWindow::new(window),
            cpu: CpuWindow::new(window),
        }
    }

    /// Makes the rates reach `window` back from now on (a configuration reload), keeping the
    /// samples taken so far.
    pub fn set_window(&mut self, window: Duration) {
        self.rates.window = window;
        self.cpu.window = window;
    }

    /// Adds `s` and judges it.
    pub fn observe(&mut self, s: &Snapshot) -> Report {
        Report {
            disk: self.disk.observe(s),
            rates: self.rates.observe(s),
            cpu: self.cpu.observe(s),
        }
    }
}

/// Established distribution links among the members seen running, and n(n−1) for their
/// number n; `None` without `/api/nodes` or when a running member's `cluster_links` is
/// missing.
pub fn links(s: &Snapshot) -> Option<(u64, u64)> {
    let nodes = s.nodes.ok()?;
    let running: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.running == Some(true))
        .map(|n| n.name.as_str())
        .collect();
    let mut established = 0u64;
    for n in nodes.iter().filter(|n| running.contains(n.name.as_str())) {
        let peers = n.cluster_links.as_ref()?;
        established += peers
            .iter()
            .filter(|l| l.name != n.name && running.contains(l.name.as_str()))
            .map(|l| l.name.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64;
    }
    let n = running.len() as u64;
    Some((established, n * n.saturating_sub(1)))
}

/// The number of distinct versions of OTP application `app` among the running members that
/// report it; `None` when none does.
fn versions(s: &Snapshot, app: &str) -> Option<f64> {
    let nodes = s.nodes.ok()?;
    let seen: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.running == Some(true))
        .filter_map(|n| n.application_version(app))
        .collect();
    (!seen.is_empty()).then_some(seen.len() as f64)
}

/// A queue's latency in seconds: the age of its head message where the publisher set the
/// `timestamp` property (`head_message_timestamp`, exact), else 0 without ready messages,
/// else Little's law: ready ÷ the egress rate over the backlog window (needs the queue's
/// delivery counters and a complete window), else the backlog detector's age estimate of the
/// oldest message; `None` when none of these is known.
pub fn queue_latency(
    q: &Queue,
    poll_time: std::time::SystemTime,
    analysis: Option<&Analysis>,
) -> Option<f64> {
    if let Some(ts) = q.head_message_timestamp {
        let now = poll_time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        return Some((now - ts).max(0.0));
    }
    let ready = q.messages_ready?;
    if ready == 0 {
        return Some(0.0);
    }
    let counted = analysis.filter(|a| a.counters);
    if let Some(a) = counted.filter(|a| a.egress_rate > 0.0) {
        return Some(ready as f64 / a.egress_rate);
    }
    analysis.and_then(|a| a.oldest_age_estimate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::model::{Application, ClusterLink, Overview};
    use std::time::SystemTime;

    fn node(name: &str, links: &[&str], version: &str) -> Node {
        Node {
            name: name.into(),
            running: Some(true),
            cluster_links: Some(
                links
                    .iter()
                    .map(|l| ClusterLink { name: (*l).into() })
                    .collect(),
            ),
            applications: Some(vec![Application {
                name: "rabbit".into(),
                version: version.into(),
            }]),
            ..Node::default()
        }
    }

    fn snapshot(nodes: Vec<Node>, at: u64) -> Snapshot {
        Snapshot::builder()
            .started_at(UNIX_EPOCH + Duration::from_secs(at))
            .nodes(nodes)
            .build()
    }

    #[test]
    fn counts_links_among_running_members_and_versions() {
        let none = Rates::default();
        let full = snapshot(
            vec![
                node("a", &["b", "c"], "3.10.8"),
                node("b", &["a", "c"], "3.10.8"),
                node("c", &["a", "b"], "3.10.7"),
            ],
            0,
        );
        assert_eq!(links(&full), Some((6, 6)));
        assert_eq!(
            cluster_field(&full, "missing_cluster_links", &none),
            Some(Some(0.0))
        );
        assert_eq!(
            cluster_field(&full, "rabbitmq_versions", &none),
            Some(Some(2.0))
        );
        // c lost its link to a (and a to c): 4 of 6.
        let cut = snapshot(
            vec![
                node("a", &["b"], "3.10.8"),
                node("b", &["a", "c"], "3.10.8"),
                node("c", &["b"], "3.10.8"),
            ],
            0,
        );
        assert_eq!(
            cluster_field(&cut, "missing_cluster_links", &none),
            Some(Some(2.0))
        );
        assert_eq!(
            cluster_field(&cut, "rabbitmq_versions", &none),
            Some(Some(1.0))
        );
        // A single node: none expected, none missing.
        let single = snapshot(vec![node("a", &[], "3.10.8")], 0);
        assert_eq!(links(&single), Some((0, 0)));
        // Statistics disabled: the field is missing, so the links are unknown.
        let mut blind = node("a", &[], "3.10.8");
        blind.cluster_links = None;
        assert_eq!(links(&snapshot(vec![blind], 0)), None);
        assert_eq!(cluster_field(&single, "no_such_field", &none), None);
        assert_eq!(cluster_field(&single, "erlang_versions", &none), Some(None));
    }

    #[test]
    fn rates_over_the_window_are_unknown_without_statistics_and_restart_on_a_reset() {
        let at = |secs: u64, o: &str| {
            let o: Overview = serde_json::from_str(o).unwrap();
            Snapshot::builder()
                .started_at(UNIX_EPOCH + Duration::from_secs(secs))
                .overview(o)
                .build()
        };
        let counts = |conn: u64, returned: u64, publish: u64| {
            format!(
                r#"{{"disable_stats":false,"message_stats":{{"publish":{publish},"return_unroutable":{returned}}},
                "churn_rates":{{"connection_created":{conn},"connection_closed":{conn},"channel_created":0}}}}"#
            )
        };
        let mut w = RateWindow::new(Duration::from_secs(10));
        // One sample: no rate yet.
        assert_eq!(w.observe(&at(0, &counts(0, 0, 0))), Rates::default());
        w.observe(&at(5, &counts(10, 5, 50)));
        let r = w.observe(&at(10, &counts(20, 10, 100)));
        // 20 opened + 20 closed in 10 s; drop_unroutable and channel_closed never counted: 0.
        assert_eq!(r.connection_churn, Some(4.0));
        assert_eq!(r.channel_churn, Some(0.0));
        assert_eq!(r.unroutable, Some(1.0));
        assert_eq!(r.publish, Some(10.0));
        // The window slides: 10..20 s, nothing new.
        let r = w.observe(&at(20, &counts(20, 10, 100)));
        assert_eq!(r.connection_churn, Some(0.0));
        // A counter going back (statistics reset) starts again: no rate from one sample.
        assert_eq!(w.observe(&at(25, &counts(1, 0, 0))).unroutable, None);
        // Statistics disabled: unknown.
        let mut w = RateWindow::new(Duration::from_secs(10));
        w.observe(&at(0, r#"{"disable_stats":true}"#));
        assert_eq!(
            w.observe(&at(5, r#"{"disable_stats":true}"#)),
            Rates::default()
        );
        let fields = Snapshot::builder().build();
        let rates = Rates {
            unroutable: Some(2.0),
            ..Rates::default()
        };
        assert_eq!(
            cluster_field(&fields, "unroutable_rate", &rates),
            Some(Some(2.0))
        );
        assert_eq!(
            cluster_field(&fields, "connection_churn", &rates),
            Some(None)
        );
    }

    #[test]
    fn predicts_when_free_disk_reaches_its_limit() {
        let mut trend = DiskTrend::default();
        let disk = |free: u64| Node {
            name: "a".into(),
            disk_free: Some(free),
            disk_free_limit: Some(1_000),
            ..Node::default()
        };
        // Falling by 1 byte per second from 10,000: the limit is 9,000 bytes ahead.
        let mut last = BTreeMap::new();
        for i in 0..=20u64 {
            last = trend.observe(&snapshot(vec![disk(10_000 - i * 60)], i * 60));
            if i * 60 < DISK_MIN_SPAN.as_secs() {
                assert!(last.is_empty(), "no prediction before the span at {i}");
            }
        }
        let f = last["a"];
        assert!((f.slope + 1.0).abs() < 1e-9, "{f:?}");
        // 10,000 − 1,200 = 8,800 free now, 7,800 above the limit.
        assert!((f.time_to_alarm - 7_800.0).abs() < 1e-6, "{f:?}");
        // Rising: never.
        let mut trend = DiskTrend::default();
        for i in 0..=20u64 {
            last = trend.observe(&snapshot(vec![disk(10_000 + i)], i * 60));
        }
        assert_eq!(last["a"].time_to_alarm, f64::INFINITY);
        let s = snapshot(vec![disk(1)], 0);
        let report = Report {
            disk: last,
            ..Report::default()
        };
        assert_eq!(
            node_field(&s.nodes.ok().unwrap()[0], "time_to_disk_alarm", &report),
            Some(Some(f64::INFINITY))
        );
    }

    #[test]
    fn cpu_is_runtime_over_wall_time_and_schedulers_and_absent_without_counters() {
        let cpu = |runtime_ms: u64, wallclock_ms: u64| Node {
            name: "a".into(),
            cpu: Some(CpuCounters {
                runtime_ms,
                wallclock_ms,
                schedulers: 2,
            }),
            ..Node::default()
        };
        let mut w = CpuWindow::new(Duration::from_secs(10));
        assert!(w.observe(&snapshot(vec![cpu(1_000, 10_000)], 0)).is_empty());
        // 3 s of CPU in 5 s of wall time on 2 schedulers: 30 %.
        let u = w.observe(&snapshot(vec![cpu(4_000, 15_000)], 5));
        assert!((u["a"] - 0.3).abs() < 1e-9, "{u:?}");
        // A restart (counters back) starts again.
        assert!(w.observe(&snapshot(vec![cpu(10, 100)], 6)).is_empty());
        // Without counters (the management source): no figure, never 0.
        let plain = Node {
            name: "a".into(),
            ..Node::default()
        };
        assert!(w.observe(&snapshot(vec![plain.clone()], 7)).is_empty());
        assert_eq!(
            node_field(&plain, "cpu_utilisation", &Report::default()),
            Some(None)
        );
    }

    #[test]
    fn latency_prefers_the_head_timestamp() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let q = Queue {
            head_message_timestamp: Some(990.0),
            messages_ready: Some(5),
            ..Queue::default()
        };
        assert_eq!(queue_latency(&q, now, None), Some(10.0));
        let empty = Queue {
            messages_ready: Some(0),
            ..Queue::default()
        };
        assert_eq!(queue_latency(&empty, now, None), Some(0.0));
        let waiting = Queue {
            messages_ready: Some(5),
            ..Queue::default()
        };
        assert_eq!(queue_latency(&waiting, now, None), None);
        assert_eq!(
            queue_latency(&Queue::default(), SystemTime::now(), None),
            None
        );
    }
}
