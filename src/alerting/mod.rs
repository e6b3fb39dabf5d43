//! The alert engine: rules ([`rules`]) evaluated on every snapshot, and the state of each alert
//! instance (identified by its label set) moving inactive → pending → firing → resolved, with
//! `for` and `keep_firing_for`. What cannot be evaluated (an endpoint failed, a field is
//! unknown) keeps its state: an alert never resolves because the broker could not be seen.
//!
//! The engine owns the detectors, which judge each snapshot against the history of earlier
//! ones: the backlog detector ([`backlog`]: per-queue windows) and the cluster detector
//! ([`cluster`]: every member's own view merged). Their verdicts feed the rules and are
//! published with the alerts in the [`Assessment`].
//!
//! Pure: [`Engine::evaluate`] takes the snapshot and `now`; the task in [`run`] feeds it and
//! publishes the alerts for the HTTP API, the metrics and the notifier.

pub mod backlog;
pub mod capacity;
pub mod cluster;
pub mod findings;
pub mod replication;
pub mod rules;
mod stale;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{BacklogConfig, CLUSTER_LABEL};
use crate::snapshot::{Snapshot, SnapshotReceiver};
/// Serde adapters for times, re-exported from [`crate::util::time`] for the state file
/// types that name them by this path.
pub use crate::util::time::{rfc3339, rfc3339_opt};
use crate::util::{Updates, elapsed};
use backlog::{Report, Tracker};
use cluster::{ClusterStatus, Detector};
use rules::{Evaluation, Instance, InstanceLabels, Labels, Rule, render};

/// How long a resolved alert stays listed (and available to notifiers) after resolving.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Slack when comparing how long a condition held with `for` / `keep_firing_for`: polls start
/// on a fixed schedule but a few milliseconds late or early, so a condition seen at two polls
/// `for` apart has held for `for` even when their timestamps differ by slightly less.
pub const TIMING_SLACK: Duration = Duration::from_millis(250);

/// The state of an alert instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition has held for `for` (or stopped holding less than `keep_firing_for` ago).
    Firing,
    /// It was firing and no longer is.
    Resolved,
}

/// One alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable identity: 16 hex digits of a hash of `labels`.
    pub fingerprint: String,
    /// `alertname`, `severity`, the rule's labels, the object's labels (`vhost`, `queue`, `node`).
    /// Shared: an alert published in each assessment costs a reference, not a copy.
    #[serde(with = "shared")]
    pub labels: Arc<Labels>,
    /// Rendered annotations (`summary`, `description`, …) as of the last evaluation that held.
    /// Shared like `labels`, and replaced only when they are rendered again.
    #[serde(with = "shared")]
    pub annotations: Arc<BTreeMap<String, String>>,
    /// For queue alerts, the backlog detector's judgement as of the last evaluation that held;
    /// served as `details` (`status`, `cause`, rates, `time_to_drain`, `time_to_overflow`, …:
    /// see [`backlog::Analysis::details`], rendered when serialized). Not restored from the
    /// state file: the next evaluation sets it again. Shared: out of line, it keeps `Alert`
    /// at 144 bytes instead of 312 in the engine's map and each published assessment, and a
    /// clone costs a reference (#13).
    #[serde(
        rename = "details",
        skip_serializing_if = "Option::is_none",
        serialize_with = "details_map",
        skip_deserializing
    )]
    pub analysis: Option<Arc<backlog::Analysis>>,
    /// Current state.
    pub state: State,
    /// The value of the condition's first comparison at the last evaluation that could tell.
    pub value: f64,
    /// When the condition started to hold (start of pending).
    #[serde(with = "rfc3339")]
    pub active_since: SystemTime,
    /// When it started firing.
    #[serde(with = "rfc3339_opt")]
    pub fired_at: Option<SystemTime>,
    /// When it resolved.
    #[serde(with = "rfc3339_opt")]
    pub resolved_at: Option<SystemTime>,
    /// The last time the condition was seen holding.
    #[serde(with = "rfc3339")]
    pub last_true: SystemTime,
    /// Whether the last evaluation could not tell (data unknown); the state is then held.
    pub unknown: bool,
    /// Since when a firing alert is only held by `keep_firing_for`: the first evaluation
    /// that found its condition no longer holding (Prometheus's `keepFiringSince`). `None`
    /// while the condition holds (and for pending alerts). A held alert never inhibits
    /// others (see [`Alert::observed`]). Absent from older state files: `None`.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<SystemTime>,
}

impl Alert {
    /// A test fixture: an alert with `labels`, firing since `at` with value 1.
    #[cfg(test)]
    pub(crate) fn firing_since(labels: Labels, at: SystemTime) -> Alert {
        Alert {
            fingerprint: fingerprint(&labels),
            labels: Arc::new(labels),
            annotations: Arc::default(),
            analysis: None,
            state: State::Firing,
            value: 1.0,
            active_since: at,
            fired_at: Some(at),
            resolved_at: None,
            last_true: at,
            unknown: false,
            keep_firing_since: None,
        }
    }

    /// Whether the alert fires on evidence: firing, and its condition held at the last
    /// evaluation that could tell (not only held by `keep_firing_for`). Only such alerts
    /// inhibit others: a partition alert latched after the broker stopped reporting the
    /// partition must not mute a node that goes down afterwards.
    pub fn observed(&self) -> bool {
        self.state == State::Firing && self.keep_firing_since.is_none()
    }
}

/// Serde for a shared value (`Arc<T>`) as the value itself: the same JSON as `T`.
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        v: &Arc<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        T::serialize(v, s)
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}

/// Serializes an analysis as its details map.
fn details_map<S: serde::Serializer>(
    analysis: &Option<Arc<backlog::Analysis>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    analysis
        .as_deref()
        .map(backlog::Analysis::details)
        .serialize(s)
}

/// 16 hex digits of FNV-1a over the sorted label pairs (stable across restarts and versions).
pub fn fingerprint(labels: &Labels) -> String {
    Hex::new(fingerprint_hash(
        labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
    .as_str()
    .to_owned()
}

/// FNV-1a over the label pairs `pairs`, given sorted by name: the number [`fingerprint`]
/// writes in hex.
fn fingerprint_hash<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (k, v) in pairs {
        eat(k.as_bytes());
        eat(&[0xff]);
        eat(v.as_bytes());
        eat(&[0xff]);
    }
    hash
}

/// A fingerprint's 16 hex digits, on the stack: looked up without allocating.
struct Hex([u8; 16]);

impl Hex {
    fn new(hash: u64) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = DIGITS[((hash >> (60 - 4 * i)) & 0xf) as usize];
        }
        Hex(out)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// What a configuration reload changes in the engine ([`Engine::reconfigure`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `alerting.rules` merged with the defaults.
    pub rules: Vec<Rule>,
    /// `alerting.backlog.*`.
    pub backlog: BacklogConfig,
    /// `cluster.expected_nodes`.
    pub expected_nodes: Option<u64>,
}

/// An alert instance as the engine keeps it: the alert and the rule that judges it.
#[derive(Debug)]
struct Tracked {
    /// The alert.
    alert: Alert,
    /// The index in the engine's rules of the rule named by its `alertname` (the last of
    /// that name: [`owners`]); `None` when no rule has its name (removed by a reload: kept,
    /// resolved, until it ages out).
    rule: Option<usize>,
    /// Whether the evaluation under way found its instance holding or unknown (reset at the
    /// start of each).
    seen: bool,
}

/// For each of `rules`, the index of the last rule with its name: the one whose outcome
/// judges the alerts of that name (names are unique in a configuration).
fn owners(rules: &[Rule]) -> Vec<usize> {
    rules
        .iter()
        .map(|r| rules.iter().rposition(|o| o.name == r.name).unwrap_or(0))
        .collect()
}

/// The index of the rule whose outcome judges alerts named `name` (see [`owners`]).
fn owner(rules: &[Rule], name: &str) -> Option<usize> {
    rules.iter().rposition(|r| r.name == name)
}

/// The key of `alert` in the engine's table: the number its fingerprint writes in hex. A
/// fingerprint that is not 16 lowercase hex digits (a state file edited by hand) is replaced
/// by the one of its labels.
fn key(alert: &mut Alert) -> u64 {
    match u64::from_str_radix(&alert.fingerprint, 16) {
        Ok(hash) if Hex::new(hash).as_str() == alert.fingerprint => hash,
        _ => {
            let hash = fingerprint_hash(alert.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            alert.fingerprint = Hex::new(hash).as_str().to_owned();
            hash
        }
    }
}

/// The rules, the detectors' history and the state of every alert instance.
#[derive(Debug)]
pub struct Engine {
    /// The rules, evaluated in order.
    rules: Vec<Rule>,
    /// For each rule, the index of the rule that judges the alerts of its name ([`owners`]).
    owners: Vec<usize>,
    /// Alert instances by fingerprint, as a number ([`fingerprint_hash`]; in the order of
    /// their hex fingerprints): looked up without comparing strings.
    alerts: BTreeMap<u64, Tracked>,
    /// The backlog detector's windows.
    backlog: Tracker,
    /// The backlog detector's report on the last snapshot evaluated.
    report: Arc<Report>,
    /// The cluster detector (its history: largest size seen, uptimes, restarts).
    cluster: Detector,
    /// The cluster detector's verdict on the last snapshot evaluated.
    cluster_status: Arc<ClusterStatus>,
    /// The capacity judgements' history (their report goes into the cluster verdict).
    capacity: capacity::Tracker,
    /// The template variables of the last evaluation: when they change, every active
    /// alert's annotations are rendered again.
    last_vars: BTreeMap<String, String>,
    /// Whether the next evaluation renders every annotation again (after a reload).
    render_all: bool,
    /// The reliability audit's findings, for `kind: audit` rules (`None`: no audit; those
    /// rules are then unknown).
    findings: Option<findings::FindingsReceiver>,
    /// The cluster's name under `clusters:`: every alert carries it as label
    /// `rabbitmq_cluster` (`None`: the single cluster of the top level, no such label).
    cluster_name: Option<String>,
}

impl Engine {
    /// An engine with `rules`, the default backlog detector settings and no alerts.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self::with_backlog(rules, BacklogConfig::default())
    }

    /// An engine with `rules`, a backlog detector configured by `backlog`, and no alerts.
    pub fn with_backlog(rules: Vec<Rule>, backlog: BacklogConfig) -> Self {
        let window = backlog.window;
        Self {
            owners: owners(&rules),
            rules,
            alerts: BTreeMap::new(),
            backlog: Tracker::new(backlog),
            report: Arc::default(),
            cluster: Detector::default(),
            cluster_status: Arc::default(),
            capacity: capacity::Tracker::new(window),
            last_vars: BTreeMap::new(),
            render_all: false,
            findings: None,
            cluster_name: None,
        }
    }

    /// The same engine, evaluating `kind: audit` rules over the audit's latest findings from
    /// `findings` ([`findings::evaluate`]).
    #[must_use]
    pub fn with_findings(mut self, findings: findings::FindingsReceiver) -> Self {
        self.findings = Some(findings);
        self
    }

    /// The same engine, with the cluster detector expecting `expected` members
    /// (`cluster.expected_nodes`; `None`, the default: the largest member list seen).
    #[must_use]
    pub fn with_expected_nodes(mut self, expected: Option<u64>) -> Self {
        self.cluster = Detector::new(expected);
        self
    }

    /// The same engine, for the cluster `name` of `clusters:`: every alert carries the label
    /// `rabbitmq_cluster="name"`, and only the saved alerts with that label are restored.
    #[must_use]
    pub fn for_cluster(mut self, name: Option<String>) -> Self {
        self.cluster_name = name;
        self
    }

    /// The cluster detector's verdict on the last snapshot evaluated ("nothing read" before
    /// the first).
    pub fn cluster(&self) -> &Arc<ClusterStatus> {
        &self.cluster_status
    }

    /// The backlog detector's report on the last snapshot evaluated (empty before the first).
    pub fn backlog(&self) -> &Arc<Report> {
        &self.report
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Restores alerts saved before a restart (those of rules that no longer exist are dropped).
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for mut alert in alerts {
            let name = alert.labels.get("alertname").map_or("", String::as_str);
            let ours = alert.labels.get(CLUSTER_LABEL) == self.cluster_name.as_ref();
            if let Some(rule) = owner(&self.rules, name).filter(|_| ours) {
                let key = key(&mut alert);
                let tracked = Tracked {
                    alert,
                    rule: Some(rule),
                    seen: false,
                };
                self.alerts.insert(key, tracked);
            }
        }
    }

    /// Takes a reloaded configuration's `settings`, keeping every alert instance of a rule
    /// that still exists (same `alertname`) with its state and `active_since`, and the
    /// detectors' history (backlog windows, cluster and capacity history). The next
    /// [`Engine::evaluate`] judges the kept instances against the new rules: an instance whose
    /// condition still holds stays as it is, one whose condition no longer holds resolves
    /// (after `keep_firing_for`), one whose labels changed (the rule's `severity` or `labels`)
    /// is a new instance and the old one resolves. Every annotation is rendered again.
    ///
    /// Instances of rules that no longer exist: a firing one is resolved at `now` (so
    /// receivers that were told it fires are told it resolved, as Alertmanager does once
    /// Prometheus stops sending a removed rule's alert), a pending one is dropped. Returns how
    /// many were resolved and dropped.
    pub fn reconfigure(&mut self, settings: Settings, now: SystemTime) -> (usize, usize) {
        let Settings {
            rules,
            backlog,
            expected_nodes,
        } = settings;
        self.capacity.set_window(backlog.window);
        self.backlog.set_config(backlog);
        self.cluster.set_expected(expected_nodes);
        self.owners = owners(&rules);
        self.rules = rules;
        let (mut resolved, mut dropped) = (0, 0);
        let rules = &self.rules;
        self.alerts.retain(|_, t| {
            let a = &mut t.alert;
            t.rule = owner(rules, a.labels.get("alertname").map_or("", String::as_str));
            if t.rule.is_some() {
                return true;
            }
            match a.state {
                State::Pending => {
                    dropped += 1;
                    false
                }
                State::Firing => {
                    a.state = State::Resolved;
                    a.resolved_at = Some(now);
                    a.unknown = false;
                    resolved += 1;
                    true
                }
                State::Resolved => true,
            }
        });
        // Annotation templates may have changed: render every one again at the next evaluation.
        self.render_all = true;
        (resolved, dropped)
    }

    /// Every alert instance, pending, firing or recently resolved, by fingerprint.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().map(|t| &t.alert)
    }

    /// Adds `snapshot` to the backlog and cluster detectors, evaluates every rule against it
    /// at `now` and moves the alerts on.
    pub fn evaluate(&mut self, snapshot: &Snapshot, now: SystemTime) {
        self.report = Arc::new(self.backlog.observe(snapshot));
        let mut status = self.cluster.observe(snapshot);
        status.capacity = self.capacity.observe(snapshot);
        self.cluster_status = Arc::new(status);
        let vars = self.cluster_status.template_vars();
        let vars_changed = vars != self.last_vars || std::mem::take(&mut self.render_all);
        // The audit's latest run; none when the audit is off or its task ended (unknown).
        let view = self
            .findings
            .as_ref()
            .filter(|rx| rx.has_changed().is_ok())
            .and_then(|rx| rx.borrow().clone());
        // The rules with an alert that is pending or firing: only their unknown instances
        // can mark an alert unknown. (By owner: [`owners`].)
        let mut holding = vec![false; self.rules.len()];
        for t in self.alerts.values_mut() {
            t.seen = false;
            if let Some(rule) = t.rule.filter(|_| t.alert.state != State::Resolved) {
                holding[rule] = true;
            }
        }
        let mut outcomes = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let owner = self.owners[i];
            let evaluation = if rule.kind == rules::Kind::Audit {
                findings::evaluate(
                    rule,
                    view.as_deref(),
                    self.alerts.values().map(|t| &t.alert),
                )
            } else {
                let report = &self.report;
                rule.evaluate_listing(snapshot, report, &self.cluster_status, holding[owner])
            };
            let outcome = step(
                &mut self.alerts,
                (rule, owner, owner == i),
                evaluation,
                now,
                (&vars, vars_changed),
                holding[owner],
                self.cluster_name.as_deref(),
            );
            outcomes.push(outcome);
        }
        // One pass over every alert: those of a rule that could not be evaluated are
        // unknown, those a rule no longer finds move on (or go), long-resolved ones go.
        let rules = &self.rules;
        self.alerts.retain(|_, t| {
            let a = &mut t.alert;
            let kept = match t.rule.map(|r| (&rules[r], &outcomes[r])) {
                Some((_, Outcome::Unknown)) if a.state != State::Resolved => {
                    a.unknown = true;
                    true
                }
                Some((rule, Outcome::Known)) if !t.seen => no_longer_holds(a, rule, now, &vars),
                _ => true,
            };
            kept && !(a.state == State::Resolved
                && a.resolved_at
                    .is_some_and(|t| elapsed(t, now) > RESOLVED_RETENTION))
        });
        self.last_vars = vars;
    }
}

/// What a rule's evaluation says about its alerts not found holding, applied in
/// [`Engine::evaluate`]'s single pass over every alert.
enum Outcome {
    /// The data it needs was not read: its alerts keep their state, marked unknown.
    Unknown,
    /// Its alerts whose instance holds or is unknown are marked seen ([`Tracked::seen`]);
    /// its other alerts do not hold (or their object is gone).
    Known,
}

/// One rule's evaluation applied to its instances that hold or are unknown; what it says
/// about the rule's other alerts is returned. `rule` comes with the index of the rule that
/// judges its alerts ([`owners`]) and whether it is that rule (only then does it mark its
/// alerts seen).
fn step(
    alerts: &mut BTreeMap<u64, Tracked>,
    (rule, owner, marks): (&Rule, usize, bool),
    evaluation: Evaluation,
    now: SystemTime,
    (vars, vars_changed): (&BTreeMap<String, String>, bool),
    holding: bool,
    cluster: Option<&str>,
) -> Outcome {
    let (active, unknown) = match evaluation {
        Evaluation::Unknown => return Outcome::Unknown,
        Evaluation::Known { active, unknown } => (active, unknown),
    };
    // The details are rendered only for rules whose annotations use them.
    let uses_details = rule.annotations.values().any(|t| t.contains("$details."));
    let rule_vars = rule.template_vars();
    // With several clusters, `rabbitmq_cluster="name"` is one of every alert's labels (before
    // the fingerprints are taken: the same queue in two clusters is two alerts).
    let mut base = rule.base_labels();
    if let Some(name) = cluster {
        base.insert(CLUSTER_LABEL.to_owned(), name.to_owned());
    }
    for Instance {
        labels,
        value,
        analysis,
        facts,
    } in active
    {
        let labels = in_cluster(labels, cluster);
        let hash = labels.hash(&base);
        // The annotations are a function of the labels (same fingerprint), the value, the
        // analysis when they use it and the template variables (the cluster's and the
        // rule's own, fixed for a rule): rendered again only when one of them changed.
        // Facts (replication and health details, audit findings) are not kept: with any,
        // render again.
        let unchanged = |a: &Alert| {
            !vars_changed
                && facts.is_empty()
                && a.state != State::Resolved
                && a.keep_firing_since.is_none()
                && a.value.to_bits() == value.to_bits()
                && (!uses_details || a.analysis.as_deref() == analysis)
        };
        let (alert, unchanged) = match alerts.get_mut(&hash) {
            Some(t) => {
                t.seen |= marks;
                let a = &mut t.alert;
                let unchanged = unchanged(a);
                if a.state == State::Resolved {
                    // It comes back: a new episode.
                    a.state = State::Pending;
                    a.active_since = now;
                    a.fired_at = None;
                    a.resolved_at = None;
                }
                (a, unchanged)
            }
            // The label set is built only for a new alert.
            None => {
                let alert = Alert {
                    fingerprint: Hex::new(hash).as_str().to_owned(),
                    labels: Arc::new(labels.build(&base)),
                    annotations: Arc::default(),
                    analysis: None,
                    state: State::Pending,
                    value,
                    active_since: now,
                    fired_at: None,
                    resolved_at: None,
                    last_true: now,
                    unknown: false,
                    keep_firing_since: None,
                };
                let tracked = Tracked {
                    alert,
                    rule: Some(owner),
                    seen: marks,
                };
                (&mut alerts.entry(hash).or_insert(tracked).alert, false)
            }
        };
        if !unchanged {
            // An empty map does not allocate.
            let mut details = match &analysis {
                Some(a) if uses_details => a.details(),
                _ => BTreeMap::new(),
            };
            details.extend(facts);
            let annotations = rule
                .annotations
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        render(t, &alert.labels, value, &details, vars, &rule_vars),
                    )
                })
                .collect();
            alert.annotations = Arc::new(annotations);
        }
        alert.value = value;
        // The shared judgement is kept while equal, else replaced.
        if alert.analysis.as_deref() != analysis {
            alert.analysis = analysis.map(|a| Arc::new(a.clone()));
        }
        alert.last_true = now;
        alert.unknown = false;
        alert.keep_firing_since = None;
        if alert.state == State::Pending
            && elapsed(alert.active_since, now) + TIMING_SLACK >= rule.for_
        {
            alert.state = State::Firing;
            alert.fired_at = Some(now);
        }
    }
    // Without a pending or firing alert of the rule before this evaluation, an unknown
    // instance has no alert to mark (nor to keep: the rule's others are resolved, and stay
    // so); the rule's new alerts come from its active instances, never from these.
    for labels in unknown.into_iter().filter(|_| holding) {
        let hash = in_cluster(labels, cluster).hash(&base);
        if let Some(t) = alerts.get_mut(&hash) {
            t.seen |= marks;
            if t.alert.state != State::Resolved {
                t.alert.unknown = true;
            }
        }
    }
    Outcome::Known
}

/// `labels` in `cluster`: a full label set gets `rabbitmq_cluster="name"` (an object's labels
/// get it from the rule's base labels).
fn in_cluster<'a>(labels: InstanceLabels<'a>, cluster: Option<&str>) -> InstanceLabels<'a> {
    match (labels, cluster) {
        (InstanceLabels::Full(mut full), Some(name)) => {
            full.insert(CLUSTER_LABEL.to_owned(), name.to_owned());
            InstanceLabels::Full(full)
        }
        (labels, _) => labels,
    }
}

/// Moves on `a`, an alert of `rule` whose condition is known not to hold at `now` (or whose
/// object is gone): a pending alert goes (false), a firing one resolves after
/// `keep_firing_for`.
fn no_longer_holds(
    a: &mut Alert,
    rule: &Rule,
    now: SystemTime,
    vars: &BTreeMap<String, String>,
) -> bool {
    a.unknown = false;
    match a.state {
        State::Pending => false,
        State::Firing => {
            if a.keep_firing_since.is_none() {
                // The first evaluation that finds it no longer holding: the texts say so.
                a.keep_firing_since = Some(now);
                if rule.annotations.values().any(|t| t.contains("$cluster.")) {
                    stale::mark(a, now, vars);
                }
            }
            if elapsed(a.last_true, now) + TIMING_SLACK >= rule.keep_firing_for {
                a.state = State::Resolved;
                a.resolved_at = Some(now);
            }
            true
        }
        State::Resolved => true,
    }
}

/// A snapshot and the alerts evaluated on it: what metrics, the HTTP API and the notifier read,
/// so they always agree with each other.
#[derive(Debug)]
pub struct Assessment {
    /// The snapshot evaluated.
    pub snapshot: Arc<Snapshot>,
    /// The backlog detector's report on it (its queues in the snapshot's order).
    pub backlog: Arc<Report>,
    /// The cluster detector's verdict on it (every member's view merged).
    pub cluster: Arc<ClusterStatus>,
    /// Every alert instance after the evaluation (pending, firing, recently resolved), sorted
    /// by fingerprint.
    pub alerts: Vec<Alert>,
    /// When the evaluation ran.
    pub evaluated_at: SystemTime,
}

/// The receiving side of the assessment channel: `None` until the first snapshot is evaluated.
pub type AssessmentReceiver = watch::Receiver<Option<Arc<Assessment>>>;

/// Waits until any of `receivers` has a new value; `false` when one of them is closed (its
/// engine stopped). Pending forever when `receivers` is empty.
pub async fn any_changed(receivers: &mut [AssessmentReceiver]) -> bool {
    use std::future::Future as _;
    let mut waits: Vec<_> = receivers
        .iter_mut()
        .map(|rx| Box::pin(rx.changed()))
        .collect();
    std::future::poll_fn(|cx| {
        for wait in &mut waits {
            if let std::task::Poll::Ready(result) = wait.as_mut().poll(cx) {
                return std::task::Poll::Ready(result.is_ok());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Evaluates every new snapshot with `engine` and publishes the result on `tx`, until
/// `shutdown`.
///
/// A reloaded configuration's [`Settings`] arrive on `updates` and are taken between two
/// evaluations ([`Engine::reconfigure`]).
pub async fn run(
    mut engine: Engine,
    mut snapshots: SnapshotReceiver,
    mut updates: Updates<Settings>,
    tx: watch::Sender<Option<Arc<Assessment>>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = snapshots.changed() => if changed.is_err() { break },
            Some(update) = updates.recv() => {
                let (resolved, dropped) = engine.reconfigure(update.value, SystemTime::now());
                tracing::info!(rules = engine.rules().len(), resolved, dropped, "alert rules reloaded; alerts of removed rules resolved (firing) or dropped (pending)");
                let _ = update.taken.send(());
                continue;
            }
        }
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        // The poll's own time: `for` is measured between the polls that saw the condition,
        // not between when their evaluations happened to run.
        let now = snapshot.started_at;
        // Off the async workers: at 10,000 queues an evaluation is tens of milliseconds of
        // CPU, which would hold up every request queued on the worker running it (the
        // `/metrics` latency tail). A panic in it still ends this task, as before.
        let evaluated = tokio::task::spawn_blocking(move || {
            engine.evaluate(&snapshot, now);
            let assessment = Assessment {
                snapshot,
                backlog: engine.backlog().clone(),
                cluster: engine.cluster().clone(),
                alerts: engine.alerts().cloned().collect(),
                evaluated_at: now,
            };
            (engine, assessment)
        })
        .await;
        let (returned, assessment) = match evaluated {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => break,
        };
        engine = returned;
        tx.send_replace(Some(Arc::new(assessment)));
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::alerting::rules::{Condition, Kind, Selector};
    use crate::rabbitmq::model::Queue;
    use crate::rabbitmq::{Endpoint, Error};
    use crate::snapshot::Fetched;

    fn rule(expr: &str, for_: u64, keep: u64) -> Rule {
        Rule {
            name: "Backlog".into(),
            kind: Kind::Queue,
            condition: Condition::parse(expr, Kind::Queue).unwrap(),
            selector: Selector::default(),
            for_: Duration::from_secs(for_),
            keep_firing_for: Duration::from_secs(keep),
            severity: "warning".into(),
            labels: [("team".to_owned(), "core".to_owned())].into(),
            annotations: [(
                "summary".to_owned(),
                "{{ $labels.queue }}: {{ $value }}".to_owned(),
            )]
            .into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// A snapshot with queue `q` holding `ready` messages (`None`: the queue is gone; a failed
    /// queue listing when `failed`).
    fn snap(ready: Option<Option<u64>>, failed: bool) -> Snapshot {
        let queues = ready
            .map(|r| {
                vec![Queue {
                    vhost: "/".into(),
                    name: "q".into(),
                    messages_ready: r,
                    consumers: Some(0),
                    ..Queue::default()
                }]
            })
            .unwrap_or_default();
        let builder = Snapshot::builder().started_at(at(0));
        if failed {
            builder
                .queues(Fetched::failed(Error::Timeout {
                    endpoint: Endpoint::Queues,
                    timeout_ms: 1,
                }))
                .build()
        } else {
            builder.queues(queues).build()
        }
    }

    fn state(e: &Engine) -> Option<State> {
        e.alerts().next().map(|a| a.state)
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 60, 0)]);
        e.evaluate(&snap(Some(Some(5)), false), at(0));
        assert_eq!(state(&e), None);
        e.evaluate(&snap(Some(Some(50)), false), at(10));
        assert_eq!(state(&e), Some(State::Pending));
        e.evaluate(&snap(Some(Some(50)), false), at(69));
        assert_eq!(state(&e), Some(State::Pending));
        e.evaluate(&snap(Some(Some(60)), false), at(70));
        let a = e.alerts().next().unwrap().clone();
        assert_eq!(a.state, State::Firing);
        assert_eq!(a.fired_at, Some(at(70)));
        assert_eq!(a.active_since, at(10));
        assert_eq!(a.value, 60.0);
        assert_eq!(a.annotations["summary"], "q: 60");
        assert_eq!(a.labels["alertname"], "Backlog");
        assert_eq!(a.labels["team"], "core");
        assert_eq!(a.labels["vhost"], "/");
        e.evaluate(&snap(Some(Some(0)), false), at(80));
        let a = e.alerts().next().unwrap();
        assert_eq!(a.state, State::Resolved);
        assert_eq!(a.resolved_at, Some(at(80)));
        // Kept for the notifier, then dropped.
        e.evaluate(&snap(Some(Some(0)), false), at(80 + 15 * 60 + 1));
        assert_eq!(state(&e), None);
    }

    #[test]
    fn pending_that_stops_holding_never_fires() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 60, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        e.evaluate(&snap(Some(Some(1)), false), at(30));
        assert_eq!(state(&e), None);
        e.evaluate(&snap(Some(Some(50)), false), at(40));
        e.evaluate(&snap(Some(Some(50)), false), at(90));
        assert_eq!(
            state(&e),
            Some(State::Pending),
            "the timer restarted at 40 s"
        );
    }

    #[test]
    fn keep_firing_for_rides_out_a_dip() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 30)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        assert_eq!(state(&e), Some(State::Firing), "for 0 fires at once");
        e.evaluate(&snap(Some(Some(1)), false), at(15));
        assert_eq!(state(&e), Some(State::Firing));
        e.evaluate(&snap(Some(Some(50)), false), at(20));
        e.evaluate(&snap(Some(Some(1)), false), at(45));
        assert_eq!(
            state(&e),
            Some(State::Firing),
            "30 s counted from the last true at 20 s"
        );
        e.evaluate(&snap(Some(Some(1)), false), at(50));
        assert_eq!(state(&e), Some(State::Resolved));
    }

    #[test]
    fn unknown_data_holds_the_state_instead_of_resolving() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        assert_eq!(state(&e), Some(State::Firing));
        // The queue listing failed: nothing is known.
        e.evaluate(&snap(None, true), at(10));
        let a = e.alerts().next().unwrap();
        assert_eq!((a.state, a.unknown), (State::Firing, true));
        // The queue is there but its figure is not reported.
        e.evaluate(&snap(Some(None), false), at(20));
        assert_eq!(state(&e), Some(State::Firing));
        // Known again, and low: now it resolves.
        e.evaluate(&snap(Some(Some(1)), false), at(30));
        let a = e.alerts().next().unwrap();
        assert_eq!((a.state, a.unknown), (State::Resolved, false));
    }

    #[test]
    fn a_deleted_queue_resolves_its_alert() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        e.evaluate(&snap(None, false), at(10));
        assert_eq!(state(&e), Some(State::Resolved));
    }

    #[test]
    fn fingerprints_are_stable_and_label_sensitive() {
        let a: Labels = [("alertname".to_owned(), "X".to_owned())].into();
        let mut b = a.clone();
        b.insert("queue".into(), "q".into());
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 16);
    }

    #[test]
    fn default_texts_follow_the_configured_for_and_keep_firing_for() {
        let dir = std::env::temp_dir().join(format!("p15-texts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yml");
        std::fs::write(
            &path,
            "alerting:\n  backlog: {discover_dead_letter_queues: false}\n  rules:\n    - {alert: RabbitmqQueueNoConsumers, for: 1m}\n    - {alert: RabbitmqClusterPartition, keep_firing_for: 90s}\n",
        )
        .unwrap();
        let config = crate::config::load(Some(&path), Default::default(), &[]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let rules = config.alerting.rules.clone();
        let mut e = Engine::with_backlog(rules.clone(), config.alerting.backlog.clone());
        e.evaluate(&snap(Some(Some(3)), false), at(0));
        e.evaluate(&snap(Some(Some(3)), false), at(60));
        let a = e
            .alerts()
            .find(|a| a.labels["alertname"] == "RabbitmqQueueNoConsumers")
            .unwrap();
        assert_eq!(a.state, State::Firing, "for: 1m");
        assert!(
            a.annotations["description"].starts_with("Messages have been waiting for 1 minute on"),
            "{}",
            a.annotations["description"]
        );
        let partition = rules
            .iter()
            .find(|r| r.name == "RabbitmqClusterPartition")
            .unwrap();
        let text = render(
            &partition.annotations["description"],
            &Labels::new(),
            1.0,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &partition.template_vars(),
        );
        assert!(
            text.contains("stays firing 1 minute 30 seconds after the last evidence"),
            "{text}"
        );
    }

    #[test]
    fn a_dead_letter_queue_raises_no_messages_ready_alert() {
        let dir = std::env::temp_dir().join(format!("p15-dlq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yml");
        std::fs::write(
            &path,
            "alerting:\n  backlog: {discover_dead_letter_queues: false, dead_letter_queues: q}\n  rules:\n    - {alert: RabbitmqQueueMessagesReady, for: 0s}\n",
        )
        .unwrap();
        let config = crate::config::load(Some(&path), Default::default(), &[]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let mut e = Engine::with_backlog(config.alerting.rules, config.alerting.backlog);
        e.evaluate(&snap(Some(Some(5000)), false), at(0));
        let names: Vec<&str> = e.alerts().map(|a| a.labels["alertname"].as_str()).collect();
        assert!(!names.contains(&"RabbitmqQueueMessagesReady"), "{names:?}");
        assert!(!names.contains(&"RabbitmqQueueNoConsumers"), "{names:?}");
    }

    #[test]
    fn for_is_measured_between_the_polls_that_saw_the_condition() {
        // Polls every 5 s, a few milliseconds late or early; `for: 30s` fires at the poll
        // 30 s after the first that saw the condition, not one poll later.
        let mut e = Engine::new(vec![rule("messages_ready > 10", 30, 0)]);
        let poll = |ms: u64| {
            let mut s = snap(Some(Some(50)), false);
            s.started_at = at(0) + Duration::from_millis(ms);
            s
        };
        for ms in [4, 5_002, 10_000, 15_003, 20_001, 25_000] {
            let s = poll(ms);
            e.evaluate(&s, s.started_at);
            assert_eq!(state(&e), Some(State::Pending), "{ms}");
        }
        let s = poll(30_001);
        e.evaluate(&s, s.started_at);
        assert_eq!(state(&e), Some(State::Firing));
    }

    /// The settings of a reload with `rules` and the defaults otherwise.
    fn settings(rules: Vec<Rule>) -> Settings {
        Settings {
            rules,
            backlog: BacklogConfig::default(),
            expected_nodes: None,
        }
    }

    /// A firing alert whose threshold changes but is still exceeded stays firing, with its
    /// `active_since` and `fired_at`; raised above the value, it resolves at the next
    /// evaluation.
    #[test]
    fn a_reload_keeps_firing_alerts_and_judges_them_by_the_new_threshold() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        e.evaluate(&snap(Some(Some(50)), false), at(10));
        let before = e.alerts().next().unwrap().clone();
        assert_eq!(before.state, State::Firing);
        let (resolved, dropped) =
            e.reconfigure(settings(vec![rule("messages_ready > 20", 0, 0)]), at(15));
        assert_eq!((resolved, dropped), (0, 0));
        e.evaluate(&snap(Some(Some(50)), false), at(20));
        let after = e.alerts().next().unwrap().clone();
        assert_eq!(after.state, State::Firing);
        assert_eq!(after.fingerprint, before.fingerprint);
        assert_eq!(after.active_since, at(0));
        assert_eq!(after.fired_at, before.fired_at);
        e.reconfigure(settings(vec![rule("messages_ready > 100", 0, 0)]), at(25));
        e.evaluate(&snap(Some(Some(50)), false), at(30));
        let a = e.alerts().next().unwrap();
        assert_eq!(a.state, State::Resolved);
        assert_eq!(a.resolved_at, Some(at(30)));
    }

    /// A reload that removes a rule resolves its firing alerts at once (receivers told it
    /// fires are told it resolved) and drops its pending ones; other rules' alerts stay.
    #[test]
    fn a_reload_resolves_firing_and_drops_pending_alerts_of_removed_rules() {
        let mut slow = rule("messages_ready > 10", 600, 0);
        slow.name = "Slow".into();
        let mut kept = rule("messages_ready > 1", 0, 0);
        kept.name = "Kept".into();
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0), slow, kept.clone()]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        let states = |e: &Engine| -> BTreeMap<String, State> {
            e.alerts()
                .map(|a| (a.labels["alertname"].clone(), a.state))
                .collect()
        };
        assert_eq!(
            states(&e),
            BTreeMap::from([
                ("Backlog".to_owned(), State::Firing),
                ("Kept".to_owned(), State::Firing),
                ("Slow".to_owned(), State::Pending),
            ])
        );
        let (resolved, dropped) = e.reconfigure(settings(vec![kept]), at(5));
        assert_eq!((resolved, dropped), (1, 1));
        assert_eq!(
            states(&e),
            BTreeMap::from([
                ("Backlog".to_owned(), State::Resolved),
                ("Kept".to_owned(), State::Firing),
            ])
        );
        let gone = e
            .alerts()
            .find(|a| a.labels["alertname"] == "Backlog")
            .unwrap();
        assert_eq!(gone.resolved_at, Some(at(5)));
        // The next evaluation leaves the resolved one alone (no rule judges it) until it ages out.
        e.evaluate(&snap(Some(Some(50)), false), at(10));
        assert_eq!(states(&e)["Backlog"], State::Resolved);
        e.evaluate(&snap(Some(Some(50)), false), at(5 + 15 * 60 + 1));
        assert!(!states(&e).contains_key("Backlog"));
    }

    /// Changed annotation templates apply to alerts kept across a reload, even when nothing
    /// else about them changed.
    #[test]
    fn a_reload_renders_the_annotations_again() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        assert_eq!(e.alerts().next().unwrap().annotations["summary"], "q: 50");
        let mut changed = rule("messages_ready > 10", 0, 0);
        changed.annotations.insert(
            "summary".into(),
            "queue {{ $labels.queue }} holds {{ $value }}".into(),
        );
        e.reconfigure(settings(vec![changed]), at(5));
        e.evaluate(&snap(Some(Some(50)), false), at(10));
        let a = e.alerts().next().unwrap();
        assert_eq!(a.annotations["summary"], "queue q holds 50");
        assert_eq!(a.active_since, at(0));
    }

    /// A cluster's engine labels its alerts `rabbitmq_cluster` (the same queue in two clusters
    /// is two alerts) and restores only its own cluster's saved alerts.
    #[test]
    fn a_cluster_engine_labels_its_alerts_and_restores_only_its_own() {
        let mut e =
            Engine::new(vec![rule("messages_ready > 10", 0, 0)]).for_cluster(Some("a".into()));
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        let fired = e.alerts().next().unwrap().clone();
        assert_eq!(fired.labels[CLUSTER_LABEL], "a");
        // The same queue in another cluster is another alert (another fingerprint).
        let mut b =
            Engine::new(vec![rule("messages_ready > 10", 0, 0)]).for_cluster(Some("b".into()));
        b.evaluate(&snap(Some(Some(50)), false), at(0));
        assert_ne!(b.alerts().next().unwrap().fingerprint, fired.fingerprint);
        // Restoring keeps the alerts of this cluster only.
        let saved: Vec<Alert> = e.alerts().chain(b.alerts()).cloned().collect();
        let mut restored =
            Engine::new(vec![rule("messages_ready > 10", 0, 0)]).for_cluster(Some("b".into()));
        restored.restore(saved.clone());
        let labels: Vec<_> = restored
            .alerts()
            .map(|a| a.labels[CLUSTER_LABEL].clone())
            .collect();
        assert_eq!(labels, ["b"]);
        let mut single = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        single.restore(saved);
        assert_eq!(single.alerts().count(), 0);
    }

    /// Polls that find the same figures keep the alert as it is: same fingerprint, the
    /// texts not rendered again (the same shared map), `last_true` moved on.
    #[test]
    fn a_queue_whose_figures_did_not_change_keeps_its_alert() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        let first = e.alerts().next().unwrap().clone();
        for secs in [10, 20, 30] {
            e.evaluate(&snap(Some(Some(50)), false), at(secs));
            let a = e.alerts().next().unwrap();
            assert_eq!(e.alerts().count(), 1);
            assert_eq!((a.state, a.unknown), (State::Firing, false));
            assert_eq!(a.fingerprint, first.fingerprint);
            assert!(Arc::ptr_eq(&a.annotations, &first.annotations));
            assert_eq!((a.active_since, a.last_true), (at(0), at(secs)));
        }
    }

    /// A figure that changed is judged again: a new value renders the texts again, a value
    /// below the threshold resolves the alert.
    #[test]
    fn a_queue_whose_figure_changed_is_evaluated_again() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        e.evaluate(&snap(Some(Some(70)), false), at(10));
        let a = e.alerts().next().unwrap();
        assert_eq!((a.state, a.value), (State::Firing, 70.0));
        assert_eq!(a.annotations["summary"], "q: 70");
        e.evaluate(&snap(Some(Some(3)), false), at(20));
        assert_eq!(state(&e), Some(State::Resolved));
    }

    /// With the figures unchanged from poll to poll, a rule with `for` still fires once the
    /// condition has held that long: time alone moves the alert on.
    #[test]
    fn a_rule_with_for_fires_on_unchanged_figures() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 60, 0)]);
        for secs in [0, 30] {
            e.evaluate(&snap(Some(Some(50)), false), at(secs));
            assert_eq!(state(&e), Some(State::Pending), "{secs}");
        }
        e.evaluate(&snap(Some(Some(50)), false), at(60));
        let a = e.alerts().next().unwrap();
        assert_eq!((a.state, a.fired_at), (State::Firing, Some(at(60))));
    }

    /// A condition on the time since the head message was published changes with time
    /// alone: the same queue figures at later polls make it hold.
    #[test]
    fn a_time_dependent_condition_holds_later_on_the_same_figures() {
        let mut head = rule("head_message_age > 60", 0, 0);
        head.name = "Old".into();
        let mut e = Engine::new(vec![head]);
        let published = at(0).duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let poll = |secs: u64| {
            let queue = Queue {
                vhost: "/".into(),
                name: "q".into(),
                messages_ready: Some(1),
                head_message_timestamp: Some(published),
                ..Queue::default()
            };
            Snapshot::builder()
                .started_at(at(secs))
                .queues(vec![queue])
                .build()
        };
        e.evaluate(&poll(30), at(30));
        assert_eq!(state(&e), None);
        e.evaluate(&poll(90), at(90));
        let a = e.alerts().next().unwrap();
        assert_eq!((a.state, a.value), (State::Firing, 90.0));
    }

    /// An alert whose figure stops being reported stays as it was, marked unknown, at every
    /// such poll; a rule without a pending or firing alert raises none from unknown figures.
    #[test]
    fn unknown_stays_unknown() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(None), false), at(0));
        assert_eq!(state(&e), None, "unknown figures raise nothing");
        e.evaluate(&snap(Some(Some(50)), false), at(10));
        for secs in [20, 30] {
            e.evaluate(&snap(Some(None), false), at(secs));
            let a = e.alerts().next().unwrap();
            assert_eq!((a.state, a.unknown), (State::Firing, true), "{secs}");
            assert_eq!(a.last_true, at(10));
        }
        e.evaluate(&snap(Some(Some(50)), false), at(40));
        let a = e.alerts().next().unwrap();
        assert_eq!(
            (a.state, a.unknown, a.active_since),
            (State::Firing, false, at(10))
        );
    }

    /// A rule lists its unknown objects only when asked: the engine asks for a rule with a
    /// pending or firing alert only.
    #[test]
    fn unknown_objects_are_listed_only_when_asked() {
        let r = rule("messages_ready > 10", 0, 0);
        let s = snap(Some(None), false);
        let report = Report::default();
        let cluster = ClusterStatus::default();
        let listed = |with_unknown| match r.evaluate_listing(&s, &report, &cluster, with_unknown) {
            Evaluation::Known { active, unknown } => (active.len(), unknown.len()),
            Evaluation::Unknown => panic!("the queues were read"),
        };
        assert_eq!(listed(true), (0, 1));
        assert_eq!(listed(false), (0, 0));
        assert_eq!(
            r.evaluate(&s, &report, &cluster),
            r.evaluate_listing(&s, &report, &cluster, true)
        );
    }

    /// A restored alert is found again by its fingerprint; one whose fingerprint was edited
    /// by hand is keyed by (and given) its labels' fingerprint, so it is still the same
    /// alert rather than a second one.
    #[test]
    fn restored_alerts_are_found_by_their_fingerprint() {
        let mut e = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
        e.evaluate(&snap(Some(Some(50)), false), at(0));
        let saved = e.alerts().next().unwrap().clone();
        for fingerprint in [
            saved.fingerprint.clone(),
            saved.fingerprint.to_uppercase(),
            "x".into(),
        ] {
            let mut restored = Engine::new(vec![rule("messages_ready > 10", 0, 0)]);
            restored.restore([Alert {
                fingerprint,
                ..saved.clone()
            }]);
            restored.evaluate(&snap(Some(Some(50)), false), at(10));
            let alerts: Vec<&Alert> = restored.alerts().collect();
            assert_eq!(alerts.len(), 1);
            assert_eq!(alerts[0].fingerprint, saved.fingerprint);
            assert_eq!(
                (alerts[0].state, alerts[0].active_since),
                (State::Firing, at(0))
            );
        }
    }
}
