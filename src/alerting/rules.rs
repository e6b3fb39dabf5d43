//! Evaluation of alert rules against a [`Snapshot`]: each rule's condition per object, the
//! field values it reads, and the rendering of annotation templates. The rule definitions
//! (kinds, the condition language, [`Rule`], the [`DEFAULTS`] catalogue) are configuration:
//! [`crate::config::rules`], re-exported here.

use std::collections::BTreeMap;

use super::backlog::{Analysis, QueueBacklog, Report};
use super::cluster::ClusterStatus;
pub use crate::config::fields::{Field, QueueField};
pub use crate::config::rules::{
    Comparison, Condition, DEFAULTS, DefaultRule, Kind, Op, Rule, Selector,
};
use crate::rabbitmq::model::{Node, Queue, alarm_in_effect};
use crate::snapshot::Snapshot;

/// A label set, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// The labels of an instance: a full set, or the object's own labels (`vhost` and `queue`,
/// `node`, none for the cluster) borrowed from the snapshot, beside the rule's
/// ([`Rule::base_labels`]). The second is what rules give: its fingerprint is computed
/// without building a label set, which is built only for an alert that is new.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceLabels<'a> {
    /// Every label.
    Full(Labels),
    /// The object's labels, added to (and replacing) the rule's.
    Object(ObjectLabels<'a>),
}

/// At most two labels of an object, sorted by name, borrowed from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectLabels<'a> {
    pairs: [(&'static str, &'a str); 2],
    len: usize,
}

impl<'a> ObjectLabels<'a> {
    /// The labels `pairs` (at most two are kept).
    pub fn new(pairs: &[(&'static str, &'a str)]) -> Self {
        let mut labels = ObjectLabels {
            pairs: [("", ""); 2],
            len: pairs.len().min(2),
        };
        labels.pairs[..labels.len].copy_from_slice(&pairs[..labels.len]);
        // Two at most: one comparison sorts them (no sort call per instance).
        if labels.len == 2 && labels.pairs[0].0 > labels.pairs[1].0 {
            labels.pairs.swap(0, 1);
        }
        labels
    }

    fn pairs(&self) -> &[(&'static str, &'a str)] {
        &self.pairs[..self.len]
    }
}

impl InstanceLabels<'_> {
    /// The number whose 16 hex digits are the fingerprint of the full label set (with the
    /// rule's `base` labels), as [`super::fingerprint`] of [`InstanceLabels::build`] gives
    /// it, without building it.
    pub fn hash(&self, base: &Labels) -> u64 {
        match self {
            InstanceLabels::Full(labels) => {
                super::fingerprint_hash(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
            InstanceLabels::Object(object) => super::fingerprint_hash(merged(base, object.pairs())),
        }
    }

    /// The full label set, with the rule's `base` labels.
    pub fn build(self, base: &Labels) -> Labels {
        match self {
            InstanceLabels::Full(labels) => labels,
            InstanceLabels::Object(object) => {
                let mut labels = base.clone();
                for (k, v) in object.pairs() {
                    labels.insert((*k).to_owned(), (*v).to_owned());
                }
                labels
            }
        }
    }
}

/// `base`'s pairs and `object`'s (sorted by name; an object's label replaces the base's of the
/// same name), in name order.
fn merged<'b>(
    base: &'b Labels,
    object: &'b [(&'static str, &'b str)],
) -> impl Iterator<Item = (&'b str, &'b str)> {
    let mut base = base
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .peekable();
    let mut object = object.iter().copied().peekable();
    std::iter::from_fn(move || match (base.peek(), object.peek()) {
        (Some(b), Some(o)) if b.0 < o.0 => base.next(),
        (Some(b), Some(o)) if b.0 == o.0 => {
            base.next();
            object.next()
        }
        (_, Some(_)) => object.next(),
        (Some(_), None) => base.next(),
        (None, None) => None,
    })
}

/// An object for which a rule's condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance<'a> {
    /// The alert's labels.
    pub labels: InstanceLabels<'a>,
    /// The left side of the condition's first comparison.
    pub value: f64,
    /// The backlog detector's judgement of a queue (rendered by [`Analysis::details`] only
    /// where needed), borrowed from its report (copied into the alert only);
    /// `None` for other objects or while the queue's window is incomplete.
    pub analysis: Option<&'a Analysis>,
    /// Facts about the object for `{{ $details.NAME }}` beside the backlog detector's: a
    /// quorum queue's missing members, a member's critical queues or expiring certificates
    /// ([`super::replication`]), an audit finding's `summary` and `fix`
    /// ([`super::findings::details`]); empty when the rule's annotations use no details.
    pub facts: BTreeMap<String, String>,
}

/// The outcome of evaluating a rule against one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation<'a> {
    /// The data the rule needs was not read (endpoint failed): nothing can be said.
    Unknown,
    /// Per object: the condition holds (with the value) or not; objects missing a field are in
    /// `unknown`; objects not listed do not exist (or are not selected).
    Known {
        /// Objects for which the condition holds.
        active: Vec<Instance<'a>>,
        /// Objects for which a needed field is unknown.
        unknown: Vec<InstanceLabels<'a>>,
    },
}

impl Rule {
    /// The rule's own values for its annotations: `for` and `keep_firing_for` in words
    /// (`5 minutes`, `30 seconds`, `1 hour 30 minutes`), so texts follow the configuration.
    pub fn template_vars(&self) -> BTreeMap<String, String> {
        [
            ("for".to_owned(), words(self.for_)),
            ("keep_firing_for".to_owned(), words(self.keep_firing_for)),
        ]
        .into()
    }

    /// The labels every instance of the rule has: its labels, `alertname` and `severity`
    /// (the object's are added: [`InstanceLabels::build`]).
    pub fn base_labels(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.insert("alertname".into(), self.name.clone());
        labels.insert("severity".into(), self.severity.clone());
        labels
    }

    /// Evaluates the rule against `snapshot`, with the backlog detector's `backlog` report
    /// of the same snapshot (its queues in the snapshot's order) for queue rules and the
    /// cluster detector's verdict `cluster` on it for cluster rules.
    pub fn evaluate<'a>(
        &self,
        s: &'a Snapshot,
        backlog: &'a Report,
        cluster: &ClusterStatus,
    ) -> Evaluation<'a> {
        self.evaluate_listing(s, backlog, cluster, true)
    }

    /// [`Rule::evaluate`], listing the objects whose fields are unknown only when
    /// `with_unknown`: the engine needs them only for a rule with a pending or firing alert
    /// (they mark it unknown), and a rule on a field most queues do not report (a quorum
    /// queue's members on 10,000 classic queues) would list every queue at every poll.
    pub fn evaluate_listing<'a>(
        &self,
        s: &'a Snapshot,
        backlog: &'a Report,
        cluster: &ClusterStatus,
        with_unknown: bool,
    ) -> Evaluation<'a> {
        let mut active = Vec::new();
        let mut unknown = Vec::new();
        // Labels are built only for objects that hold or are unknown (most do not hold).
        let uses_details = self.annotations.values().any(|t| t.contains("$details."));
        let mut record =
            |object: &[(&'static str, &'a str)],
             result: Option<(bool, f64)>,
             analysis: Option<&'a Analysis>,
             facts: &dyn Fn() -> BTreeMap<String, String>| match result {
                Some((true, value)) => active.push(Instance {
                    labels: InstanceLabels::Object(ObjectLabels::new(object)),
                    value,
                    analysis,
                    facts: if uses_details {
                        facts()
                    } else {
                        BTreeMap::new()
                    },
                }),
                Some((false, _)) => {}
                None if with_unknown => {
                    unknown.push(InstanceLabels::Object(ObjectLabels::new(object)));
                }
                None => {}
            };
        match self.kind {
            Kind::Queue => {
                let Some(queues) = s.queues.ok() else {
                    return Evaluation::Unknown;
                };
                for (i, q) in queues.iter().enumerate() {
                    if !self.selects_queue(q) {
                        continue;
                    }
                    let b = backlog.queues.get(i);
                    let started = s.started_at;
                    record(
                        &[("vhost", &q.vhost), ("queue", &q.name)],
                        check(&self.condition, |f| match f {
                            Field::Queue(f) => queue_field(q, f, started, b),
                            Field::Named(_) => None,
                        }),
                        b.and_then(|b| b.analysis.as_ref()),
                        &|| super::replication::queue_details(q),
                    );
                }
            }
            Kind::Node => {
                let Some(nodes) = s.nodes.ok() else {
                    return Evaluation::Unknown;
                };
                for n in nodes.iter().filter(|n| self.selects_node(n)) {
                    record(
                        &[("node", &n.name)],
                        check(&self.condition, |f| node_field(n, f.name(), s, cluster)),
                        None,
                        &|| super::replication::node_details(s, &n.name),
                    );
                }
            }
            Kind::Cluster => {
                record(
                    &[],
                    check(&self.condition, |f| cluster_field(s, cluster, f.name())),
                    None,
                    &BTreeMap::new,
                );
            }
            // Audit rules look at the audit's findings, not at the snapshot:
            // `super::findings::evaluate`.
            Kind::Audit => return Evaluation::Unknown,
        }
        Evaluation::Known { active, unknown }
    }

    fn selects_queue(&self, q: &Queue) -> bool {
        self.selector
            .vhost
            .as_ref()
            .is_none_or(|r| r.is_match(&q.vhost))
            && self
                .selector
                .queue
                .as_ref()
                .is_none_or(|r| r.is_match(&q.name))
    }

    fn selects_node(&self, n: &Node) -> bool {
        self.selector
            .node
            .as_ref()
            .is_none_or(|r| r.is_match(&n.name))
    }
}

/// Evaluates `condition` against `get` (a field's value, `None` when unknown):
/// `Some((holds, value))`, or `None` when a field it needs is unknown or a divisor is 0.
pub(super) fn check(
    condition: &Condition,
    get: impl Fn(Field) -> Option<f64>,
) -> Option<(bool, f64)> {
    let mut holds = true;
    let mut first = None;
    for c in &condition.0 {
        let mut v = get(c.field)?;
        if let Some(d) = c.divisor {
            let d = get(d)?;
            if d == 0.0 {
                return None;
            }
            v /= d;
        }
        first.get_or_insert(v);
        holds &= op_holds(c.op, v, c.threshold);
    }
    Some((holds, first.unwrap_or(0.0)))
}

/// Whether `a op b`.
fn op_holds(op: Op, a: f64, b: f64) -> bool {
    match op {
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Eq => a == b,
        Op::Ne => a != b,
    }
}

fn num(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

fn bit(v: Option<bool>) -> Option<f64> {
    v.map(|b| if b { 1.0 } else { 0.0 })
}

fn queue_field(
    q: &Queue,
    field: QueueField,
    poll_time: std::time::SystemTime,
    backlog: Option<&QueueBacklog>,
) -> Option<f64> {
    use QueueField as F;
    let analysis = backlog.and_then(|b| b.analysis.as_ref());
    // Fields that need message statistics are unknown without them.
    let counted = analysis.filter(|a| a.counters);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    match field {
        F::Messages => num(q.total_messages()),
        F::MessagesReady => num(q.messages_ready),
        F::MessagesUnacknowledged => num(q.messages_unacknowledged),
        F::MessagesPersistent => num(q.messages_persistent),
        F::MessageBytes => num(q.total_bytes()),
        F::MessageBytesReady => num(q.message_bytes_ready),
        F::MessageBytesUnacknowledged => num(q.message_bytes_unacknowledged),
        F::Consumers => num(q.consumers),
        F::ConsumerUtilisation => q.utilisation(),
        F::Memory => num(q.memory),
        F::HeadMessageAge => head_message_age(q, poll_time),
        F::MaxLength => num(q.limit("max-length")),
        F::MaxLengthBytes => num(q.limit("max-length-bytes")),
        F::BacklogGrowing => analysis.map(|a| flag(a.growing)),
        F::BacklogNoConsumers => analysis.map(|a| flag(a.no_consumers)),
        F::BacklogStalled => counted.map(|a| flag(a.stalled)),
        F::BacklogRedelivering => counted.map(|a| flag(a.redelivering)),
        F::RedeliveryRatio => counted.and_then(|a| a.redelivery_ratio),
        F::IngressRate => counted
            .filter(|a| a.publish_counter)
            .map(|a| a.ingress_rate),
        F::EgressRate => counted.map(|a| a.egress_rate),
        F::MessagesReadyGrowth => analysis.map(|a| a.ready_growth as f64),
        F::TimeToDrain => analysis.map(|a| a.time_to_drain),
        F::TimeToOverflow => analysis.map(|a| a.time_to_overflow.map_or(f64::INFINITY, |(t, _)| t)),
        F::OldestMessageAge => {
            head_message_age(q, poll_time).or_else(|| analysis.and_then(|a| a.oldest_age_estimate))
        }
        F::DeadLetterQueue => backlog.and_then(|b| b.dead_letter).map(flag),
        F::Latency => super::capacity::queue_latency(q, poll_time, analysis),
        other => super::replication::queue_field(q, other).flatten(),
    }
}

/// Seconds since `head_message_timestamp` at the poll's start.
fn head_message_age(q: &Queue, poll_time: std::time::SystemTime) -> Option<f64> {
    q.head_message_timestamp.map(|ts| {
        let now = poll_time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        (now - ts).max(0.0)
    })
}

fn node_field(n: &Node, field: &str, s: &Snapshot, cluster: &ClusterStatus) -> Option<f64> {
    if let Some(v) = super::capacity::node_field(n, field, &cluster.capacity) {
        return v;
    }
    // The alarm check only speaks for running members.
    let check = s.alarms.ok().filter(|_| n.running != Some(false));
    match field {
        "running" => bit(n.running),
        "mem_used" => num(n.mem_used),
        "mem_limit" => num(n.mem_limit),
        "mem_alarm" => bit(alarm_in_effect(&n.name, n.mem_alarm, check, "memory")),
        "disk_free" => num(n.disk_free),
        "disk_free_limit" => num(n.disk_free_limit),
        "disk_alarm" => bit(alarm_in_effect(
            &n.name,
            n.disk_free_alarm,
            check,
            "disk space",
        )),
        "fd_used" => num(n.fd_used),
        "fd_total" => num(n.fd_total),
        "proc_used" => num(n.proc_used),
        "proc_total" => num(n.proc_total),
        "uptime" => n.uptime.map(|ms| ms as f64 / 1000.0),
        "partitions" => n.partitions.as_ref().map(|p| p.len() as f64),
        other => super::replication::node_field(s, &n.name, other).flatten(),
    }
}

fn cluster_field(s: &Snapshot, cluster: &ClusterStatus, field: &str) -> Option<f64> {
    if field == "up" {
        return bit(Some(s.is_up()));
    }
    if let Some(v) = super::cluster::field(cluster, field) {
        return v;
    }
    if let Some(v) = super::capacity::cluster_field(s, field, &cluster.capacity.rates) {
        return v;
    }
    let o = s.overview.ok()?;
    let totals = o.object_totals.as_ref();
    let messages = o.queue_totals.as_ref();
    match field {
        "connections" => num(totals?.connections),
        "channels" => num(totals?.channels),
        "queues" => num(totals?.queues),
        "consumers" => num(totals?.consumers),
        "messages" => num(messages?.messages),
        "messages_ready" => num(messages?.messages_ready),
        "messages_unacknowledged" => num(messages?.messages_unacknowledged),
        _ => None,
    }
}

/// Fills `{{ $value }}`, `{{ $labels.NAME }}`, `{{ $details.NAME }}` (the backlog detector's
/// details of a queue, [`Analysis::details`]), `{{ $cluster.NAME }}` (the cluster
/// detector's view, [`ClusterStatus::template_vars`]) and `{{ $for }}` /
/// `{{ $keep_firing_for }}` (the rule's own durations in words, from `rule_vars`:
/// [`Rule::template_vars`]) in `template`; unknown names become empty. Values print with at
/// most 3 decimals, trailing zeros removed.
pub fn render(
    template: &str,
    labels: &Labels,
    value: f64,
    details: &BTreeMap<String, String>,
    cluster: &BTreeMap<String, String>,
    rule_vars: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        if inner == "$value" {
            out.push_str(&format_value(value));
        } else if let Some(value) = inner.strip_prefix('$').and_then(|n| rule_vars.get(n)) {
            out.push_str(value);
        } else if let Some(name) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(name).map_or("", String::as_str));
        } else if let Some(name) = inner.strip_prefix("$details.") {
            out.push_str(details.get(name).map_or("", String::as_str));
        } else if let Some(name) = inner.strip_prefix("$cluster.") {
            out.push_str(cluster.get(name).map_or("", String::as_str));
        } else {
            out.push_str(&rest[start..start + end + 2]);
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// A duration in words: `5 minutes`, `1 minute`, `30 seconds`, `1 hour 30 minutes`,
/// `0 seconds`.
pub fn words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let mut parts = Vec::new();
    for (n, unit) in [
        (secs / 86_400, "day"),
        (secs % 86_400 / 3600, "hour"),
        (secs % 3600 / 60, "minute"),
        (secs % 60, "second"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        parts.join(" ")
    }
}

/// `1234` → `1234`, `0.873456` → `0.873`.
pub fn format_value(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_zero_divisors_are_unknown_not_false() {
        let c = Condition::parse("mem_used / mem_limit > 0.85", Kind::Node).unwrap();
        let get = |used: Option<f64>, limit: Option<f64>| {
            move |f: Field| if f.name() == "mem_used" { used } else { limit }
        };
        assert_eq!(check(&c, get(Some(90.0), Some(100.0))), Some((true, 0.9)));
        assert_eq!(check(&c, get(Some(10.0), Some(100.0))), Some((false, 0.1)));
        assert_eq!(check(&c, get(None, Some(100.0))), None);
        assert_eq!(check(&c, get(Some(1.0), Some(0.0))), None);
    }

    #[test]
    fn an_object_instance_has_the_fingerprint_of_its_built_label_set() {
        let label = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let bases: [Labels; 3] = [
            Labels::new(),
            [label("alertname", "X"), label("severity", "warning")].into(),
            // A rule label the object's replaces, and names sorting before, between and
            // after the object's.
            [
                label("a", "1"),
                label("queue", "from-rule"),
                label("team", "core"),
                label("w", "2"),
            ]
            .into(),
        ];
        let objects: [&[(&'static str, &str)]; 4] = [
            &[],
            &[("node", "rabbit@a")],
            &[("vhost", "/"), ("queue", "orders")],
            &[("queue", "orders"), ("vhost", "/")],
        ];
        for base in &bases {
            for object in objects {
                let labels = InstanceLabels::Object(ObjectLabels::new(object));
                let built = labels.clone().build(base);
                assert_eq!(
                    format!("{:016x}", labels.hash(base)),
                    crate::alerting::fingerprint(&built),
                    "{base:?} {object:?}"
                );
                for (k, v) in object {
                    assert_eq!(built[*k], *v);
                }
                assert_eq!(
                    format!("{:016x}", InstanceLabels::Full(built.clone()).hash(base)),
                    crate::alerting::fingerprint(&built)
                );
            }
        }
    }

    #[test]
    fn renders_templates() {
        let labels: Labels = [("queue".to_owned(), "orders".to_owned())].into();
        assert_eq!(
            render(
                "{{ $labels.queue }} has {{ $value }} ({{$labels.none}}) {{ other }}: {{ $details.cause }} {{ $cluster.sides }}",
                &labels,
                1234.0,
                &[("cause".to_owned(), "no consumers".to_owned())].into(),
                &[("sides".to_owned(), "[a] | [b]".to_owned())].into(),
                &BTreeMap::new(),
            ),
            "orders has 1234 () {{ other }}: no consumers [a] | [b]"
        );
        assert_eq!(format_value(0.873456), "0.873");
        use std::time::Duration;
        assert_eq!(words(Duration::from_secs(300)), "5 minutes");
        assert_eq!(words(Duration::from_secs(60)), "1 minute");
        assert_eq!(words(Duration::from_secs(5400)), "1 hour 30 minutes");
        assert_eq!(words(Duration::ZERO), "0 seconds");
        assert_eq!(format_value(0.0), "0");
    }
}
