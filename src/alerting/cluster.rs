//! The cluster detector's judgement: every member's own view of the cluster (read by
//! [`crate::rabbitmq::members`] into the snapshot) merged into one verdict per poll
//! ([`ClusterStatus`], published in the [`crate::alerting::Assessment`]), and the fields of
//! `kind: cluster` rules read from it ([`field`]).
//!
//! Each member's management API answers `/api/nodes` with *its* view: which members it sees
//! running and which it is partitioned from. During a network partition the views disagree
//! (each side lists the other as `running: false`) long before `partitions` is filled (only
//! after the link heals on RabbitMQ 3.x; always empty on 4.3+), a node paused by
//! `pause_minority` refuses connections like a stopped one, and every API may hang until
//! `net_ticktime` expires. So the detector ([`assess`]) merges the views: running members
//! per view against the expected size (`cluster.expected_nodes`, or the largest member list
//! seen), *split views* (two members whose APIs both answer and that each report the other
//! not running), the union of every view's `partitions` lists (they are asymmetric), members
//! whose API fails while another member's answers (down, or paused as a minority), uptime
//! resets (VM restarts) and alarms. Without `cluster.nodes` / `cluster.url_template` the one
//! view is that of the node behind `rabbitmq.url`.
//!
//! Pure, like the backlog detector: the little history it needs ([`History`]: largest size
//! seen, last uptimes, restart counts) is kept by the [`Detector`], which the alert engine
//! owns. A read that failed is unknown, never "not running"; a missing field is unknown, never
//! 0. Each rule field is unknown (`None`) when no member's API answered, so a hanging cluster
//! holds alert state instead of resolving it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::rabbitmq::members::{Source, View};
use crate::rabbitmq::model::Alarms;
use crate::snapshot::Snapshot;

/// What the detector carries from one poll to the next (owned by the [`Detector`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The largest number of members any view has listed so far.
    pub largest_seen: u64,
    /// Each member's last known `uptime` in milliseconds.
    pub uptimes: BTreeMap<String, u64>,
    /// Each member's last known `mnesia_disk_tx_count` (resets with the RabbitMQ application).
    pub app_counters: BTreeMap<String, u64>,
    /// Restarts (uptime or application counter resets) observed per member since the sidecar
    /// started.
    pub restarts: BTreeMap<String, u64>,
    /// Members seen stopped (their own API refuses connections while a peer lists them not
    /// running) and not seen running since: when they are, that is a restart.
    pub stopped: BTreeSet<String>,
    /// The name of the node behind `rabbitmq.url` (from `/api/overview` `node`), last known.
    pub main_node: Option<String>,
}

/// The cluster as read in one poll, judged against [`History`]: the detector's verdict,
/// published in the [`crate::alerting::Assessment`]. `Default` is "nothing read".
#[derive(Debug, Clone, Default)]
pub struct ClusterStatus {
    /// Where the views come from.
    pub source: Source,
    /// Each member's own view, sorted by member name (one view with [`Source::Single`]).
    pub views: Vec<View>,
    /// Expected cluster size: `cluster.expected_nodes`, else the largest member list seen
    /// (`None` before any view answered).
    pub expected_nodes: Option<u64>,
    /// Every member listed by any answering view, sorted.
    pub members: Vec<String>,
    /// Split views, as `(view, member)`: both APIs answered, `view` reports `member` not
    /// running and `member` reports `view` not running. `None` when no view answered.
    pub split: Option<Vec<(String, String)>>,
    /// The union of the `partitions` lists of every member in every answering view:
    /// member → the members it is partitioned from. `None` when no answering view reported a
    /// `partitions` field (RabbitMQ 4.x with statistics disabled).
    pub partitions: Option<BTreeMap<String, BTreeSet<String>>>,
    /// Members whose own API could not be read while another member's could, with the
    /// failure reason (`connect`, `timeout`, …). `None` when no view answered.
    pub unreachable: Option<Vec<(String, &'static str)>>,
    /// Members some answering view reports not running, with the views that say so.
    pub down: BTreeMap<String, Vec<String>>,
    /// Uptime resets observed per member since the sidecar started (`rabbitmq_node_restarts_total`).
    pub restarts: BTreeMap<String, u64>,
    /// Members whose uptime reset in this poll.
    pub restarted: Vec<String>,
    /// Resource alarms in effect, as (member, resource) with resource `memory` or
    /// `disk space`: the alarm check of `rabbitmq.url` merged with the `mem_alarm` /
    /// `disk_free_alarm` flags of every view. `None` when neither could be read.
    pub alarms: Option<BTreeSet<(String, String)>>,
    /// The capacity judgements of the same snapshot (free-disk forecasts per member, rates
    /// over the window: [`super::capacity::Tracker`]), set by the engine.
    pub capacity: super::capacity::Report,
}

impl ClusterStatus {
    /// The views whose read succeeded.
    pub fn answering(&self) -> impl Iterator<Item = &View> {
        self.views.iter().filter(|v| v.nodes.ok().is_some())
    }

    /// The largest number of running members any answering view sees (`None`: no view
    /// answered or none could tell).
    pub fn running_nodes(&self) -> Option<u64> {
        self.answering().filter_map(View::running).max()
    }

    /// Whether views disagree (a partition in progress). `None` when no view answered.
    pub fn views_disagree(&self) -> Option<bool> {
        self.split.as_ref().map(|s| !s.is_empty())
    }

    /// The members named in any merged `partitions` list (as key or value).
    pub fn partition_members(&self) -> Option<BTreeSet<&str>> {
        let p = self.partitions.as_ref()?;
        let mut set = BTreeSet::new();
        for (node, peers) in p {
            if !peers.is_empty() {
                set.insert(node.as_str());
                set.extend(peers.iter().map(String::as_str));
            }
        }
        Some(set)
    }

    /// Whether the cluster is partitioned: views disagree, or a `partitions` list is
    /// non-empty. `None` when no view answered.
    pub fn partitioned(&self) -> Option<bool> {
        let disagree = self.views_disagree()?;
        let listed = self
            .partition_members()
            .is_some_and(|members| !members.is_empty());
        Some(disagree || listed)
    }

    /// How many members have `resource` (`memory` or `disk space`) in alarm.
    pub fn alarm_count(&self, resource: &str) -> Option<u64> {
        let alarms = self.alarms.as_ref()?;
        Some(alarms.iter().filter(|(_, r)| r == resource).count() as u64)
    }

    /// Texts for alert annotations, usable as `{{ $cluster.NAME }}`: `sides`, `views`,
    /// `partitions`, `down`, `unreachable`, `expected`, `restarted`.
    pub fn template_vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        vars.insert("sides".to_owned(), self.sides_text());
        vars.insert("views".to_owned(), self.views_text());
        vars.insert("partitions".to_owned(), self.partitions_text());
        vars.insert("down".to_owned(), self.down_text());
        vars.insert("unreachable".to_owned(), self.unreachable_text());
        vars.insert(
            "expected".to_owned(),
            self.expected_nodes
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        );
        vars.insert(
            "restarted".to_owned(),
            list_or(&self.restarted, "none this poll"),
        );
        vars
    }

    /// `[rabbit@n1 rabbit@n2] as seen by rabbit@n1, rabbit@n2 | [rabbit@n3] as seen by rabbit@n3`.
    fn sides_text(&self) -> String {
        let mut sides: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
        for v in self.answering() {
            if let Some(set) = v.running_set() {
                sides.entry(set).or_default().push(&v.node);
            }
        }
        let mut text = sides
            .iter()
            .map(|(set, seen_by)| format!("[{}] as seen by {}", set.join(" "), seen_by.join(", ")))
            .collect::<Vec<_>>()
            .join(" | ");
        if let Some(u) = self.unreachable.as_ref().filter(|u| !u.is_empty()) {
            let names: Vec<&str> = u.iter().map(|(n, _)| n.as_str()).collect();
            let _ = write!(text, "; API unreachable: {}", names.join(", "));
        }
        if text.is_empty() {
            "unknown (no member's API answered)".to_owned()
        } else {
            text
        }
    }

    /// `rabbit@n1 sees running: rabbit@n1, rabbit@n2; rabbit@n3: API failed (timeout)`.
    fn views_text(&self) -> String {
        let parts: Vec<String> = self
            .views
            .iter()
            .map(|v| match (&v.nodes.result, v.running_set()) {
                (Err(e), _) => format!("{}: API failed ({})", v.node, e.describe()),
                (Ok(_), Some(set)) => format!("{} sees running: {}", v.node, set.join(", ")),
                (Ok(_), None) => format!("{}: no answer", v.node),
            })
            .collect();
        list_or(&parts, "no view read")
    }

    fn partitions_text(&self) -> String {
        match &self.partitions {
            None => "unknown (no view reports `partitions`)".to_owned(),
            Some(p) => {
                let parts: Vec<String> = p
                    .iter()
                    .filter(|(_, peers)| !peers.is_empty())
                    .map(|(n, peers)| {
                        format!(
                            "{n} partitioned from {}",
                            peers.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect();
                if parts.is_empty() && self.views_disagree() == Some(true) {
                    // The nodes fill `partitions` only after the link heals (3.x).
                    "none listed by the nodes yet (the split is seen from their views)".to_owned()
                } else {
                    list_or(&parts, "none reported")
                }
            }
        }
    }

    fn down_text(&self) -> String {
        let parts: Vec<String> = self
            .down
            .iter()
            .map(|(n, by)| format!("{n} (not running as seen by {})", by.join(", ")))
            .collect();
        list_or(&parts, "none")
    }

    fn unreachable_text(&self) -> String {
        match &self.unreachable {
            None => "unknown (no member's API answered)".to_owned(),
            Some(u) => {
                // The failure in words (`connection refused`, `timed out`, `connection
                // closed`), not the metric's short reason.
                let parts: Vec<String> = u
                    .iter()
                    .map(|(n, reason)| {
                        let words = self
                            .views
                            .iter()
                            .find(|v| &v.node == n)
                            .and_then(|v| v.nodes.err())
                            .map_or_else(|| (*reason).to_owned(), crate::rabbitmq::Error::describe);
                        format!("{n} ({words})")
                    })
                    .collect();
                list_or(&parts, "none")
            }
        }
    }
}

fn list_or(parts: &[String], empty: &str) -> String {
    if parts.is_empty() {
        empty.to_owned()
    } else {
        parts.join("; ")
    }
}

/// Merges the views of one poll into a [`ClusterStatus`] and the history for the next poll.
///
/// `alarms` is the alarm check of `rabbitmq.url` (if it was read); `expected` is
/// `cluster.expected_nodes` (`None`: the largest member list seen).
pub fn assess(
    source: Source,
    mut views: Vec<View>,
    alarms: Option<&Alarms>,
    expected: Option<u64>,
    history: &History,
) -> (ClusterStatus, History) {
    views.sort_by(|a, b| a.node.cmp(&b.node));
    let mut next = history.clone();
    let answering: Vec<&View> = views.iter().filter(|v| v.nodes.ok().is_some()).collect();

    let mut members = BTreeSet::new();
    let mut partitions: Option<BTreeMap<String, BTreeSet<String>>> = None;
    let mut down: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uptimes: BTreeMap<String, u64> = BTreeMap::new();
    let mut app_counters: BTreeMap<String, u64> = BTreeMap::new();
    let mut flagged = BTreeSet::new();
    for v in &answering {
        let listed = v.listed().unwrap_or_default();
        next.largest_seen = next.largest_seen.max(listed.len() as u64);
        for n in listed {
            members.insert(n.name.clone());
            if let Some(p) = &n.partitions {
                partitions
                    .get_or_insert_with(BTreeMap::new)
                    .entry(n.name.clone())
                    .or_default()
                    .extend(p.iter().cloned());
            }
            if n.running == Some(false) {
                down.entry(n.name.clone()).or_default().push(v.node.clone());
            }
            if let Some(u) = n.uptime {
                let e = uptimes.entry(n.name.clone()).or_default();
                *e = (*e).max(u);
            }
            if let Some(c) = n.mnesia_disk_tx_count {
                let e = app_counters.entry(n.name.clone()).or_default();
                *e = (*e).max(c);
            }
            if n.mem_alarm == Some(true) {
                flagged.insert((n.name.clone(), "memory".to_owned()));
            }
            if n.disk_free_alarm == Some(true) {
                flagged.insert((n.name.clone(), "disk space".to_owned()));
            }
        }
    }

    let split = (!answering.is_empty()).then(|| {
        let mut pairs = Vec::new();
        for a in &answering {
            for b in &answering {
                if a.node != b.node
                    && a.sees_running(&b.node) == Some(false)
                    && b.sees_running(&a.node) == Some(false)
                {
                    pairs.push((a.node.clone(), b.node.clone()));
                }
            }
        }
        pairs
    });
    let unreachable = (!answering.is_empty()).then(|| {
        views
            .iter()
            .filter_map(|v| v.nodes.err().map(|e| (v.node.clone(), e.reason())))
            .collect::<Vec<_>>()
    });

    // A restart of the VM resets `uptime`; a restart of the RabbitMQ application alone
    // (autoheal, pause_minority recovery, stop_app/start_app) resets Mnesia's counter while
    // the VM's uptime goes on. Either counts once.
    let mut restarted: BTreeSet<String> = BTreeSet::new();
    for (node, uptime) in &uptimes {
        if history
            .uptimes
            .get(node)
            .is_some_and(|previous| uptime < previous)
        {
            restarted.insert(node.clone());
        }
        next.uptimes.insert(node.clone(), *uptime);
    }
    for (node, count) in &app_counters {
        if history
            .app_counters
            .get(node)
            .is_some_and(|previous| count < previous)
        {
            restarted.insert(node.clone());
        }
        next.app_counters.insert(node.clone(), *count);
    }
    // A joined member writes nothing to disk, so its counter stays 0 across application
    // restarts (seen on the 3-node cluster). An application seen stopped, then running again,
    // is a restart too: stopped means its API refuses connections (the listener is closed, the
    // host answers: not a network cut, which times out) while a peer lists it not running
    // (pause_minority, autoheal's losing side, stop_app).
    for v in &views {
        let refused = v
            .nodes
            .err()
            .is_some_and(|e| e.describe() == "connection refused");
        if refused && down.contains_key(&v.node) {
            next.stopped.insert(v.node.clone());
        }
    }
    let running_again: Vec<String> = next
        .stopped
        .iter()
        .filter(|n| {
            !down.contains_key(*n) && answering.iter().any(|v| v.sees_running(n) == Some(true))
        })
        .cloned()
        .collect();
    for node in running_again {
        next.stopped.remove(&node);
        restarted.insert(node);
    }
    for node in &restarted {
        *next.restarts.entry(node.clone()).or_default() += 1;
    }
    let restarted: Vec<String> = restarted.into_iter().collect();

    let alarms = match (alarms, answering.is_empty()) {
        (None, true) => None,
        (check, _) => {
            let mut set = flagged;
            if let Some(c) = check {
                set.extend(
                    c.alarms
                        .iter()
                        .map(|a| (a.node.clone(), a.resource.clone())),
                );
            }
            Some(set)
        }
    };

    let expected_nodes = expected.or((next.largest_seen > 0).then_some(next.largest_seen));
    let status = ClusterStatus {
        source,
        expected_nodes,
        members: members.into_iter().collect(),
        split,
        partitions,
        unreachable,
        down,
        restarts: next.restarts.clone(),
        restarted,
        alarms,
        views,
        capacity: super::capacity::Report::default(),
    };
    (status, next)
}

/// The cluster detector: judges each snapshot's views against the history of earlier polls.
/// Owned by the alert engine (like [`crate::alerting::backlog::Tracker`]).
#[derive(Debug, Clone, Default)]
pub struct Detector {
    /// `cluster.expected_nodes` (`None`: the largest member list seen).
    expected: Option<u64>,
    /// What earlier polls left.
    history: History,
}

impl Detector {
    /// A detector expecting `expected` members (`cluster.expected_nodes`; `None`: the largest
    /// member list seen), with no history.
    pub fn new(expected: Option<u64>) -> Self {
        Self {
            expected,
            history: History::default(),
        }
    }

    /// Expects `expected` members from now on (a configuration reload), keeping the history.
    pub fn set_expected(&mut self, expected: Option<u64>) {
        self.expected = expected;
    }

    /// What earlier polls left.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Judges the views of `snapshot` (with [`Source::Single`], the snapshot's own
    /// `/api/nodes`, named after the node behind `rabbitmq.url`) and keeps the history for
    /// the next poll.
    pub fn observe(&mut self, snapshot: &Snapshot) -> ClusterStatus {
        let read = &snapshot.member_views;
        let main_node = snapshot
            .overview
            .ok()
            .and_then(|o| o.node.clone())
            .or_else(|| self.history.main_node.clone());
        let views = if read.source == Source::Single {
            vec![View {
                node: main_node.clone().unwrap_or_else(|| "unknown".to_owned()),
                nodes: snapshot.nodes.clone(),
            }]
        } else {
            read.views.clone()
        };
        let (status, mut next) = assess(
            read.source,
            views,
            snapshot.alarms.ok(),
            self.expected,
            &self.history,
        );
        next.main_node = main_node;
        self.history = next;
        status
    }
}

/// The value of cluster-detector field `name`: `None` when `name` is not one of its fields,
/// `Some(None)` when it is but the value is unknown this poll.
///
/// - `expected_nodes`: `cluster.expected_nodes`, else the largest member list seen.
/// - `running_nodes`: the most members any answering view sees running.
/// - `missing_nodes`: `expected_nodes - running_nodes` (0 when more run than expected).
/// - `views_disagree`: 1 when two members' APIs answer and each reports the other not running.
/// - `partitioned`: 1 when views disagree or a merged `partitions` list is non-empty.
/// - `partition_nodes`: members named in the merged `partitions` lists.
/// - `unreachable_nodes`: members whose own API fails while another member's answers.
/// - `restarted_nodes`: members whose uptime reset in this poll.
/// - `memory_alarms`, `disk_alarms`: members with that resource alarm in effect.
pub fn field(c: &ClusterStatus, name: &str) -> Option<Option<f64>> {
    let num = |v: Option<u64>| v.map(|n| n as f64);
    let bit = |v: Option<bool>| v.map(|b| if b { 1.0 } else { 0.0 });
    let any_answer = c.answering().next().is_some();
    Some(match name {
        "expected_nodes" => num(c.expected_nodes),
        "running_nodes" => num(c.running_nodes()),
        "missing_nodes" => c
            .expected_nodes
            .zip(c.running_nodes())
            .map(|(e, r)| e.saturating_sub(r) as f64),
        "views_disagree" => bit(c.views_disagree()),
        "partitioned" => bit(c.partitioned()),
        "partition_nodes" => num(c.partition_members().map(|m| m.len() as u64)),
        "unreachable_nodes" => num(c.unreachable.as_ref().map(|u| u.len() as u64)),
        "restarted_nodes" => any_answer.then_some(c.restarted.len() as f64),
        "memory_alarms" => num(c.alarm_count("memory")),
        "disk_alarms" => num(c.alarm_count("disk space")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rabbitmq::model::Node;
    use crate::rabbitmq::{Endpoint, Error};
    use crate::snapshot::Fetched;

    fn fixture(name: &str) -> Vec<Node> {
        let path = format!(
            "{}/tests/fixtures/cluster/3.10/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn view(node: &str, nodes: Vec<Node>) -> View {
        View {
            node: node.to_owned(),
            nodes: Fetched {
                result: Ok(nodes),
                duration: Duration::ZERO,
                bytes: 0,
            },
        }
    }

    fn recorded(state: &str) -> Vec<View> {
        (1..=3)
            .map(|i| view(&format!("rabbit@n{i}"), fixture(&format!("{state}-n{i}"))))
            .collect()
    }

    fn refused(node: &str) -> View {
        View::failed(
            node,
            Error::Connect {
                endpoint: Endpoint::Nodes,
                detail: "Connection refused".into(),
            },
        )
    }

    fn timed_out(node: &str) -> View {
        View::failed(
            node,
            Error::Timeout {
                endpoint: Endpoint::Nodes,
                timeout_ms: 2000,
            },
        )
    }

    /// 4.x shapes: no `partitions` field (4.3+ always `[]`, missing with the metrics
    /// collector disabled) and no memory/disk/uptime fields.
    fn as_4x(views: Vec<View>) -> Vec<View> {
        views
            .into_iter()
            .map(|mut v| {
                if let Ok(nodes) = &mut v.nodes.result {
                    for n in nodes {
                        n.partitions = None;
                        n.mem_used = None;
                        n.mem_limit = None;
                        n.mem_alarm = None;
                        n.disk_free_alarm = None;
                        n.uptime = None;
                    }
                }
                v
            })
            .collect()
    }

    fn assess_views(views: Vec<View>) -> ClusterStatus {
        assess(Source::Configured, views, None, None, &History::default()).0
    }

    #[test]
    fn healthy_cluster_is_whole() {
        let s = assess_views(recorded("healthy"));
        assert_eq!(s.expected_nodes, Some(3));
        assert_eq!(s.running_nodes(), Some(3));
        assert_eq!(s.views_disagree(), Some(false));
        assert_eq!(s.partitioned(), Some(false));
        assert_eq!(s.unreachable, Some(vec![]));
        assert!(s.down.is_empty());
        assert_eq!(s.members, ["rabbit@n1", "rabbit@n2", "rabbit@n3"]);
    }

    #[test]
    fn a_cut_shows_as_split_views_before_partitions_fill() {
        let s = assess_views(recorded("cut"));
        assert_eq!(
            s.partition_members().map(|m| m.len()),
            Some(0),
            "not filled during the cut"
        );
        assert_eq!(s.views_disagree(), Some(true));
        assert_eq!(s.partitioned(), Some(true));
        let split = s.split.clone().unwrap();
        assert!(split.contains(&("rabbit@n1".into(), "rabbit@n3".into())));
        assert!(split.contains(&("rabbit@n3".into(), "rabbit@n2".into())));
        assert!(
            !split
                .iter()
                .any(|(a, b)| a == "rabbit@n1" && b == "rabbit@n2")
        );
        assert_eq!(s.running_nodes(), Some(2));
        let vars = s.template_vars();
        assert_eq!(
            vars["sides"],
            "[rabbit@n1 rabbit@n2] as seen by rabbit@n1, rabbit@n2 | [rabbit@n3] as seen by rabbit@n3"
        );
        assert_eq!(
            vars["down"],
            "rabbit@n1 (not running as seen by rabbit@n3); rabbit@n2 (not running as seen by rabbit@n3); rabbit@n3 (not running as seen by rabbit@n1, rabbit@n2)"
        );
        assert_eq!(
            vars["partitions"], "none listed by the nodes yet (the split is seen from their views)",
            "not 'none reported' next to 'partitioned'"
        );
    }

    #[test]
    fn asymmetric_partition_lists_are_merged() {
        let s = assess_views(recorded("healed"));
        let p = s.partitions.clone().unwrap();
        assert_eq!(p["rabbit@n1"], BTreeSet::from(["rabbit@n3".to_owned()]));
        assert_eq!(
            p["rabbit@n3"],
            BTreeSet::from(["rabbit@n1".to_owned(), "rabbit@n2".to_owned()])
        );
        assert_eq!(s.partition_members().unwrap().len(), 3);
        assert_eq!(s.partitioned(), Some(true));
        // One side only (the other side's API not read): still a partition, from the lists.
        let views = vec![
            view("rabbit@n1", fixture("healed-n1")),
            timed_out("rabbit@n3"),
        ];
        let s = assess_views(views);
        assert_eq!(s.views_disagree(), Some(false));
        assert_eq!(s.partitioned(), Some(true));
        assert!(
            s.template_vars()["partitions"]
                .contains("rabbit@n3 partitioned from rabbit@n1, rabbit@n2")
        );
    }

    #[test]
    fn without_partitions_field_split_views_still_tell_4x() {
        let s = assess_views(as_4x(recorded("cut")));
        assert_eq!(s.partitions, None, "unknown, not empty");
        assert_eq!(s.partitioned(), Some(true));
        let s = assess_views(as_4x(recorded("healthy")));
        assert_eq!(s.partitioned(), Some(false));
        assert_eq!(s.alarm_count("memory"), Some(0));
        assert_eq!(
            s.template_vars()["partitions"],
            "unknown (no view reports `partitions`)"
        );
    }

    #[test]
    fn a_refusing_member_seen_down_by_peers_is_unreachable_not_a_partition() {
        let mut views = recorded("cut");
        views[2] = refused("rabbit@n3");
        let s = assess_views(views);
        assert_eq!(s.partitioned(), Some(false));
        assert_eq!(
            s.unreachable,
            Some(vec![("rabbit@n3".to_owned(), "connect")])
        );
        assert_eq!(s.running_nodes(), Some(2));
        assert_eq!(s.expected_nodes, Some(3));
        assert_eq!(
            s.template_vars()["unreachable"],
            "rabbit@n3 (connection refused)"
        );
        let mut views = recorded("cut");
        views[2] = timed_out("rabbit@n3");
        let vars = assess_views(views).template_vars();
        assert_eq!(vars["unreachable"], "rabbit@n3 (timed out)");
        assert!(
            vars["views"].ends_with("rabbit@n3: API failed (timed out)"),
            "{}",
            vars["views"]
        );
        let mut views = recorded("cut");
        views[2] = View::failed(
            "rabbit@n3",
            Error::Request {
                endpoint: Endpoint::Nodes,
                detail: "error sending request: connection closed before message completed".into(),
            },
        );
        let vars = assess_views(views).template_vars();
        assert_eq!(vars["unreachable"], "rabbit@n3 (connection closed)");
    }

    #[test]
    fn every_api_hanging_is_unknown_not_healthy() {
        let s = assess_views(vec![
            timed_out("rabbit@n1"),
            timed_out("rabbit@n2"),
            timed_out("rabbit@n3"),
        ]);
        assert_eq!(s.partitioned(), None);
        assert_eq!(s.views_disagree(), None);
        assert_eq!(s.unreachable, None);
        assert_eq!(s.running_nodes(), None);
        assert_eq!(s.expected_nodes, None);
        assert_eq!(s.alarms, None);
    }

    #[test]
    fn missing_running_flags_are_unknown() {
        let mut nodes = fixture("healthy-n1");
        nodes[1].running = None;
        let s = assess_views(vec![view("rabbit@n1", nodes)]);
        assert_eq!(s.running_nodes(), None);
    }

    #[test]
    fn alarms_merge_flags_and_the_check() {
        let s = assess_views(recorded("alarms"));
        let alarms = s.alarms.clone().unwrap();
        assert!(alarms.contains(&("rabbit@n2".to_owned(), "memory".to_owned())));
        assert!(alarms.contains(&("rabbit@n3".to_owned(), "disk space".to_owned())));
        assert_eq!(s.alarm_count("memory"), Some(1));
        let check: Alarms = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/cluster/3.10/alarms-check-n1.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        // 4.x without node flags: the check alone still tells.
        let (s, _) = assess(
            Source::Configured,
            as_4x(recorded("healthy")),
            Some(&check),
            None,
            &History::default(),
        );
        assert_eq!(s.alarm_count("memory"), Some(1));
        assert_eq!(s.alarm_count("disk space"), Some(1));
    }

    #[test]
    fn uptime_resets_count_as_restarts_and_the_largest_size_is_kept() {
        let (_, h) = assess(
            Source::Configured,
            recorded("healthy"),
            None,
            None,
            &History::default(),
        );
        assert_eq!(h.largest_seen, 3);
        assert_eq!(h.uptimes["rabbit@n3"], 32358);
        let mut later = fixture("healthy-n1");
        for n in &mut later {
            n.uptime = n.uptime.map(|u| u + 5000);
        }
        later[2].uptime = Some(1200);
        let (s, h2) = assess(
            Source::Configured,
            vec![view("rabbit@n1", later.clone())],
            None,
            None,
            &h,
        );
        assert_eq!(s.restarted, ["rabbit@n3"]);
        assert_eq!(s.restarts["rabbit@n3"], 1);
        assert_eq!(s.expected_nodes, Some(3));
        // Same uptime later, or a member without uptime: no new restart.
        later[2].uptime = None;
        let (s, h3) = assess(
            Source::Configured,
            vec![view("rabbit@n1", later)],
            None,
            None,
            &h2,
        );
        assert!(s.restarted.is_empty());
        assert_eq!(h3.restarts["rabbit@n3"], 1);
        assert_eq!(h3.uptimes["rabbit@n3"], 1200);
        // A configured size wins.
        let (s, _) = assess(Source::Configured, vec![], None, Some(5), &h3);
        assert_eq!(s.expected_nodes, Some(5));
    }

    #[test]
    fn a_member_seen_stopped_then_running_restarted_though_its_counters_stay_0() {
        // pause_minority on the real cluster: the joined member's mnesia_disk_tx_count is 0
        // before and after, its VM uptime goes on; while paused its API refuses connections
        // and its peers list it not running.
        let healthy = |extra_ms: u64| -> Vec<View> {
            (1..=3)
                .map(|i| {
                    let mut nodes = fixture(&format!("healthy-n{i}"));
                    for n in &mut nodes {
                        n.uptime = n.uptime.map(|u| u + extra_ms);
                        n.mnesia_disk_tx_count = Some(0);
                    }
                    view(&format!("rabbit@n{i}"), nodes)
                })
                .collect()
        };
        let paused = || -> Vec<View> {
            let mut views = healthy(5_000);
            for v in &mut views {
                if let Ok(nodes) = &mut v.nodes.result {
                    nodes[2].running = Some(false);
                }
            }
            views[2] = refused("rabbit@n3");
            views
        };
        let (_, h) = assess(
            Source::Configured,
            healthy(0),
            None,
            None,
            &History::default(),
        );
        let (s, h) = assess(Source::Configured, paused(), None, None, &h);
        assert!(s.restarted.is_empty(), "stopped, not yet restarted");
        let (s, h) = assess(Source::Configured, paused(), None, None, &h);
        assert!(s.restarted.is_empty());
        let (s, h) = assess(Source::Configured, healthy(20_000), None, None, &h);
        assert_eq!(s.restarted, ["rabbit@n3"]);
        assert_eq!(s.restarts["rabbit@n3"], 1);
        let (s, h) = assess(Source::Configured, healthy(25_000), None, None, &h);
        assert!(s.restarted.is_empty(), "counted once");
        assert_eq!(h.restarts["rabbit@n3"], 1);

        // A cut (its API answers, or times out) and back: no restart.
        let mut cut = recorded("cut");
        let (_, h2) = assess(Source::Configured, cut.clone(), None, None, &h);
        cut[2] = timed_out("rabbit@n3");
        let (_, h2) = assess(Source::Configured, cut, None, None, &h2);
        let (s, h2) = assess(Source::Configured, healthy(30_000), None, None, &h2);
        assert!(s.restarted.is_empty(), "{:?}", s.restarted);
        assert_eq!(h2.restarts["rabbit@n3"], 1);
    }

    #[test]
    fn an_application_restart_counts_though_the_vm_uptime_goes_on() {
        // stop_app/start_app (autoheal, pause_minority recovery): Mnesia's counter drops,
        // the VM's uptime keeps rising.
        let mut before = fixture("healthy-n1");
        for n in &mut before {
            n.mnesia_disk_tx_count = Some(12);
        }
        let (_, h) = assess(
            Source::Configured,
            vec![view("rabbit@n1", before.clone())],
            None,
            None,
            &History::default(),
        );
        let mut after = before.clone();
        for n in &mut after {
            n.uptime = n.uptime.map(|u| u + 15_000);
        }
        after[2].mnesia_disk_tx_count = Some(0);
        let (s, h2) = assess(
            Source::Configured,
            vec![view("rabbit@n1", after.clone())],
            None,
            None,
            &h,
        );
        assert_eq!(s.restarted, ["rabbit@n3"]);
        assert_eq!(s.restarts["rabbit@n3"], 1);
        assert_eq!(s.template_vars()["restarted"], "rabbit@n3");
        // Both signals at once (a VM restart) count once.
        let mut vm = after;
        vm[1].uptime = Some(100);
        vm[1].mnesia_disk_tx_count = Some(0);
        let (s, _) = assess(
            Source::Configured,
            vec![view("rabbit@n1", vm)],
            None,
            None,
            &h2,
        );
        assert_eq!(s.restarted, ["rabbit@n2"]);
        assert_eq!(s.restarts["rabbit@n2"], 1);
    }

    #[test]
    fn a_booting_member_not_yet_seen_by_peers_is_not_a_split() {
        // n3 answers and sees everyone; n1 does not list n3 as running yet.
        let mut n1 = fixture("healthy-n1");
        n1[2].running = Some(false);
        let views = vec![
            view("rabbit@n1", n1),
            view("rabbit@n3", fixture("healthy-n3")),
        ];
        let s = assess_views(views);
        assert_eq!(s.views_disagree(), Some(false));
    }

    #[test]
    fn the_detector_judges_the_single_view_and_keeps_its_history() {
        use crate::rabbitmq::members::MemberViews;
        use crate::rabbitmq::model::Overview;
        let overview = Overview {
            node: Some("rabbit@n1".into()),
            ..Overview::default()
        };
        let mut d = Detector::new(None);
        let s = d.observe(
            &Snapshot::builder()
                .overview(overview)
                .nodes(fixture("healthy-n1"))
                .build(),
        );
        assert_eq!(s.source, Source::Single);
        assert_eq!(s.views.len(), 1);
        assert_eq!(s.views[0].node, "rabbit@n1");
        assert_eq!(s.running_nodes(), Some(3));
        assert_eq!(d.history().largest_seen, 3);
        // The overview failed: the view keeps the last known name; the size is remembered.
        let s = d.observe(
            &Snapshot::builder()
                .overview(Fetched::failed(Error::Timeout {
                    endpoint: Endpoint::Overview,
                    timeout_ms: 1,
                }))
                .nodes(fixture("healthy-n1")[..2].to_vec())
                .build(),
        );
        assert_eq!(s.views[0].node, "rabbit@n1");
        assert_eq!(s.expected_nodes, Some(3));
        // Members' own views, when read, are judged instead of the poll's /api/nodes.
        let s = d.observe(
            &Snapshot::builder()
                .member_views(MemberViews {
                    source: Source::Configured,
                    views: recorded("cut"),
                })
                .build(),
        );
        assert_eq!(s.partitioned(), Some(true));
        assert_eq!(s.views.len(), 3);
    }
}
