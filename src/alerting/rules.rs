//! Alert rules: the default catalogue (one documented place for names, thresholds and `for`
//! durations, reused by `alerts/`), the condition language, and evaluation of a rule against a
//! [`Snapshot`].
//!
//! A condition is one or more comparisons joined by `and`; each compares a field of the rule's
//! object kind, or the ratio of two fields, with a number:
//! `messages_ready > 1000`, `mem_used / mem_limit > 0.85`, `messages_ready > 0 and consumers == 0`.
//! The alert's value is the left side of the first comparison.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::backlog::{Analysis, QueueBacklog, Report};
use super::cluster::ClusterStatus;
use crate::config::Regex;
use crate::rabbitmq::model::{Node, Queue, alarm_in_effect};
use crate::snapshot::Snapshot;

/// What a rule looks at; one alert instance per object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One instance per exported queue (labels `vhost`, `queue`); data from `/api/queues`.
    Queue,
    /// One instance per cluster member (label `node`); data from `/api/nodes` and the alarm check.
    Node,
    /// One instance for the cluster (no object labels); data from `/api/overview` and the
    /// sidecar's own health (`up`).
    Cluster,
}

impl Kind {
    /// The fields a condition of this kind may use.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Queue => &[
                "messages",
                "messages_ready",
                "messages_unacknowledged",
                "messages_persistent",
                "message_bytes",
                "message_bytes_ready",
                "message_bytes_unacknowledged",
                "consumers",
                "consumer_utilisation",
                "memory",
                "head_message_age",
                "max_length",
                "max_length_bytes",
                "backlog_growing",
                "backlog_stalled",
                "backlog_no_consumers",
                "backlog_redelivering",
                "redelivery_ratio",
                "ingress_rate",
                "egress_rate",
                "messages_ready_growth",
                "time_to_drain",
                "time_to_overflow",
                "oldest_message_age",
                "dead_letter_queue",
            ],
            Kind::Node => &[
                "running",
                "mem_used",
                "mem_limit",
                "mem_alarm",
                "disk_free",
                "disk_free_limit",
                "disk_alarm",
                "fd_used",
                "fd_total",
                "proc_used",
                "proc_total",
                "uptime",
                "partitions",
            ],
            Kind::Cluster => &[
                "up",
                "connections",
                "channels",
                "queues",
                "consumers",
                "messages",
                "messages_ready",
                "messages_unacknowledged",
                // The cluster detector (alerting::cluster), from every member's own view.
                "expected_nodes",
                "running_nodes",
                "missing_nodes",
                "views_disagree",
                "partitioned",
                "partition_nodes",
                "unreachable_nodes",
                "restarted_nodes",
                "memory_alarms",
                "disk_alarms",
            ],
        }
    }

    /// Parses `queue`, `node` or `cluster`.
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "queue" => Some(Kind::Queue),
            "node" => Some(Kind::Node),
            "cluster" => Some(Kind::Cluster),
            _ => None,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// One comparison: `field [/ divisor] op threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The field compared (or the dividend of a ratio).
    pub field: String,
    /// The divisor of a ratio, if any.
    pub divisor: Option<String>,
    /// The operator.
    pub op: Op,
    /// The number compared with.
    pub threshold: f64,
}

/// A parsed condition: every comparison must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition(pub Vec<Comparison>);

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            f.write_str(&c.field)?;
            if let Some(d) = &c.divisor {
                write!(f, " / {d}")?;
            }
            write!(f, " {} {}", c.op.text(), c.threshold)?;
        }
        Ok(())
    }
}

impl Condition {
    /// Parses `a > 1 and b / c <= 0.5` for `kind`.
    ///
    /// # Errors
    /// What is wrong, naming the allowed fields or operators.
    pub fn parse(text: &str, kind: Kind) -> Result<Condition, String> {
        let mut comparisons = Vec::new();
        for part in text.split(" and ") {
            let tokens: Vec<&str> = part.split_whitespace().collect();
            let (field, divisor, op, number) = match tokens.as_slice() {
                [f, op, n] => (*f, None, *op, *n),
                [f, "/", d, op, n] => (*f, Some(*d), *op, *n),
                _ => {
                    return Err(format!(
                        "`{}` is not `FIELD OP NUMBER` or `FIELD / FIELD OP NUMBER`",
                        part.trim()
                    ));
                }
            };
            for name in std::iter::once(field).chain(divisor) {
                if !kind.fields().contains(&name) {
                    return Err(format!(
                        "unknown field `{name}`; fields are: {}",
                        kind.fields().join(", ")
                    ));
                }
            }
            let op = match op {
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "<" => Op::Lt,
                "<=" => Op::Le,
                "==" => Op::Eq,
                "!=" => Op::Ne,
                other => {
                    return Err(format!(
                        "unknown operator `{other}`; operators are >, >=, <, <=, ==, !="
                    ));
                }
            };
            let threshold = number
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| format!("`{number}` is not a number"))?;
            comparisons.push(Comparison {
                field: field.to_owned(),
                divisor: divisor.map(str::to_owned),
                op,
                threshold,
            });
        }
        Ok(Condition(comparisons))
    }

    /// Evaluates against `get` (a field's value, `None` when unknown): `Some((holds, value))`,
    /// or `None` when a field it needs is unknown or a divisor is 0.
    fn check(&self, get: impl Fn(&str) -> Option<f64>) -> Option<(bool, f64)> {
        let mut holds = true;
        let mut first = None;
        for c in &self.0 {
            let mut v = get(&c.field)?;
            if let Some(d) = &c.divisor {
                let d = get(d)?;
                if d == 0.0 {
                    return None;
                }
                v /= d;
            }
            first.get_or_insert(v);
            holds &= c.op.holds(v, c.threshold);
        }
        Some((holds, first.unwrap_or(0.0)))
    }
}

/// Which objects a rule covers: regexes (fully anchored) over `vhost`/`queue` or `node`.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// `vhost` regex (queue rules).
    pub vhost: Option<Regex>,
    /// `queue` regex (queue rules).
    pub queue: Option<Regex>,
    /// `node` regex (node rules).
    pub node: Option<Regex>,
}

/// A validated alert rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `alert`: the alert name (label `alertname`).
    pub name: String,
    /// `kind`: the objects it looks at.
    pub kind: Kind,
    /// `expr`: the condition.
    pub condition: Condition,
    /// `select`: which objects.
    pub selector: Selector,
    /// `for`: how long the condition must hold before the alert fires (0: at once).
    pub for_: Duration,
    /// `keep_firing_for`: how long a firing alert stays firing after the condition stops
    /// holding (hysteresis against flapping).
    pub keep_firing_for: Duration,
    /// `severity` label: `critical`, `warning` or `info`.
    pub severity: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Annotation templates (`summary`, `description`, …) with `{{ $value }}` and
    /// `{{ $labels.NAME }}`.
    pub annotations: BTreeMap<String, String>,
}

/// One entry of the default catalogue.
#[derive(Debug, Clone, Copy)]
pub struct DefaultRule {
    /// Alert name.
    pub name: &'static str,
    /// Object kind.
    pub kind: Kind,
    /// Condition.
    pub expr: &'static str,
    /// `for`.
    pub for_: &'static str,
    /// `keep_firing_for`.
    pub keep_firing_for: &'static str,
    /// `severity`.
    pub severity: &'static str,
    /// `summary` template.
    pub summary: &'static str,
    /// `description` template.
    pub description: &'static str,
}

/// The default rules, on unless `alerting.default_rules` is false; each can be overridden by a
/// rule of the same name under `alerting.rules` (fields given there replace the default's) or
/// switched off with `alerting.disable`. The Prometheus rules in `alerts/` use the same names
/// and thresholds.
pub const DEFAULTS: &[DefaultRule] = &[
    DefaultRule {
        name: "RabbitmqQueueMessagesReady",
        kind: Kind::Queue,
        expr: "messages_ready > 1000",
        for_: "5m",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} ready messages",
        description: "More than 1000 messages have been waiting for delivery for 5 minutes: consumers are too slow, too few or stuck.",
    },
    DefaultRule {
        name: "RabbitmqQueueMessagesUnacked",
        kind: Kind::Queue,
        expr: "messages_unacknowledged > 1000",
        for_: "5m",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} unacknowledged messages",
        description: "More than 1000 delivered messages have not been acknowledged for 5 minutes: consumers are slow to ack, stuck, or use a very large prefetch.",
    },
    DefaultRule {
        name: "RabbitmqQueueNoConsumers",
        kind: Kind::Queue,
        expr: "messages_ready > 0 and consumers == 0 and dead_letter_queue == 0",
        for_: "5m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} messages and no consumer",
        description: "Messages have been waiting for 5 minutes on a queue nobody consumes from. Dead-letter queues are left to RabbitmqDeadLetterQueueGrowing.",
    },
    DefaultRule {
        name: "RabbitmqQueueGrowing",
        kind: Kind::Queue,
        expr: "backlog_growing == 1 and dead_letter_queue == 0",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} is falling behind: {{ $details.cause }}",
        description: "Ready messages rose at every poll for the whole backlog window ({{ $details.window }}) and never drained; {{ $details.messages_ready }} are ready. Time to drain at the current rates: {{ $details.time_to_drain }}. Time to overflow: {{ $details.time_to_overflow }}.",
    },
    DefaultRule {
        name: "RabbitmqQueueStalled",
        kind: Kind::Queue,
        expr: "backlog_stalled == 1",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }}: {{ $details.cause }}",
        description: "Consumers are attached and messages wait, but nothing was acknowledged for the whole backlog window ({{ $details.window }}): consumers are hung, deadlocked or blocked on a dependency. {{ $details.messages_ready }} messages are ready.",
    },
    DefaultRule {
        name: "RabbitmqQueueRedelivering",
        kind: Kind::Queue,
        expr: "backlog_redelivering == 1",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }}: {{ $details.cause }} of deliveries",
        description: "{{ $details.redelivery_ratio }} of the deliveries in the backlog window ({{ $details.window }}) were redeliveries (threshold alerting.backlog.redelivery_threshold): consumers reject or nack with requeue, or crash before acknowledging.",
    },
    DefaultRule {
        name: "RabbitmqQueueOverflowSoon",
        kind: Kind::Queue,
        expr: "time_to_overflow < 900",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "critical",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} reaches its length limit in {{ $details.time_to_overflow }}",
        description: "At the net rate of the backlog window the queue hits its max-length within 15 minutes; then {{ $details.overflow }}. Cause: {{ $details.cause }}.",
    },
    DefaultRule {
        name: "RabbitmqDeadLetterQueueGrowing",
        kind: Kind::Queue,
        expr: "messages_ready_growth > 0 and dead_letter_queue == 1",
        for_: "0s",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Dead-letter queue {{ $labels.queue }} in vhost {{ $labels.vhost }} received {{ $value }} messages in {{ $details.window }}",
        description: "Messages are being dead-lettered (rejected without requeue, expired, or dropped by a length limit) into this queue; {{ $details.messages_ready }} are waiting. Look at the source queues' consumers and the messages' x-death headers.",
    },
    DefaultRule {
        name: "RabbitmqNodeMemoryHigh",
        kind: Kind::Node,
        expr: "mem_used / mem_limit > 0.85",
        for_: "2m",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Node {{ $labels.node }} uses {{ $value }} of its memory limit",
        description: "Memory use has been above 85% of the high watermark for 2 minutes; at 100% the memory alarm blocks all publishers.",
    },
    DefaultRule {
        name: "RabbitmqMemoryAlarm",
        kind: Kind::Node,
        expr: "mem_alarm == 1",
        for_: "0s",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "Memory alarm on node {{ $labels.node }}: publishers are blocked",
        description: "The node's memory use is above its high watermark; RabbitMQ blocks every publishing connection in the cluster until it drops.",
    },
    DefaultRule {
        name: "RabbitmqDiskAlarm",
        kind: Kind::Node,
        expr: "disk_alarm == 1",
        for_: "0s",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "Disk alarm on node {{ $labels.node }}: publishers are blocked",
        description: "Free disk space is below the node's limit; RabbitMQ blocks every publishing connection in the cluster until space is freed.",
    },
    DefaultRule {
        name: "RabbitmqNodeNotRunning",
        kind: Kind::Node,
        expr: "running == 0",
        for_: "30s",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "Node {{ $labels.node }} is not running",
        description: "The cluster reports this member as not running for 30 seconds.",
    },
    DefaultRule {
        name: "RabbitmqWatchPollFailing",
        kind: Kind::Cluster,
        expr: "up == 0",
        for_: "1m",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "rabbitmq-watch cannot read the RabbitMQ management API",
        description: "Polls have failed for 1 minute (see rabbitmq_watch_endpoint_failures_total and the sidecar's log). Other alerts keep their last state until the broker can be seen again.",
    },
    DefaultRule {
        name: "RabbitmqClusterPartition",
        kind: Kind::Cluster,
        expr: "partitioned == 1",
        for_: "0s",
        keep_firing_for: "10m",
        severity: "critical",
        summary: "RabbitMQ cluster partitioned: {{ $cluster.sides }}",
        description: "Members see different clusters (split views) or report partitions. Views: {{ $cluster.views }}. Partitions reported: {{ $cluster.partitions }}. Latched: stays firing 10 minutes after the last evidence (autoheal shows a partition for seconds only). Restarts seen: {{ $cluster.restarted }}.",
    },
    DefaultRule {
        name: "RabbitmqNodeDown",
        kind: Kind::Cluster,
        expr: "missing_nodes > 0",
        for_: "30s",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "{{ $value }} of {{ $cluster.expected }} RabbitMQ nodes not running: {{ $cluster.down }}",
        description: "Fewer members run than expected for 30 seconds (best view). Down: {{ $cluster.down }}. APIs unreachable: {{ $cluster.unreachable }}. Views: {{ $cluster.views }}.",
    },
    DefaultRule {
        name: "RabbitmqNodeUnreachable",
        kind: Kind::Cluster,
        expr: "unreachable_nodes > 0",
        for_: "30s",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "rabbitmq-watch cannot reach the management API of {{ $cluster.unreachable }}",
        description: "Other members' APIs answer, this one's refuses or times out for 30 seconds: the node is stopped, crashed, paused as a minority (pause_minority) or its management listener is cut off. Views: {{ $cluster.views }}.",
    },
];

/// A label set, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// An object for which a rule's condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The alert's labels.
    pub labels: Labels,
    /// The left side of the condition's first comparison.
    pub value: f64,
    /// The backlog detector's judgement of a queue (rendered by [`Analysis::details`] only
    /// where needed); `None` for other objects or while the queue's window is incomplete.
    pub analysis: Option<Analysis>,
}

/// The outcome of evaluating a rule against one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// The data the rule needs was not read (endpoint failed): nothing can be said.
    Unknown,
    /// Per object: the condition holds (with the value) or not; objects missing a field are in
    /// `unknown`; objects not listed do not exist (or are not selected).
    Known {
        /// Objects for which the condition holds.
        active: Vec<Instance>,
        /// Objects for which a needed field is unknown.
        unknown: Vec<Labels>,
    },
}

impl Rule {
    /// The labels of an instance: alertname, severity, the rule's labels, the object's labels.
    fn instance_labels(&self, object: &[(&str, &str)]) -> Labels {
        let mut labels = self.labels.clone();
        labels.insert("alertname".into(), self.name.clone());
        labels.insert("severity".into(), self.severity.clone());
        for (k, v) in object {
            labels.insert((*k).to_owned(), (*v).to_owned());
        }
        labels
    }

    /// Evaluates the rule against `snapshot`, with the backlog detector's `backlog` report
    /// of the same snapshot (its queues in the snapshot's order) for queue rules and the
    /// cluster detector's verdict `cluster` on it for cluster rules.
    pub fn evaluate(&self, s: &Snapshot, backlog: &Report, cluster: &ClusterStatus) -> Evaluation {
        let mut active = Vec::new();
        let mut unknown = Vec::new();
        // Labels are built only for objects that hold or are unknown (most do not hold).
        let mut record = |object: &[(&str, &str)],
                          result: Option<(bool, f64)>,
                          analysis: Option<&Analysis>| match result {
            Some((true, value)) => active.push(Instance {
                labels: self.instance_labels(object),
                value,
                analysis: analysis.cloned(),
            }),
            Some((false, _)) => {}
            None => unknown.push(self.instance_labels(object)),
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
                        self.condition.check(|f| queue_field(q, f, started, b)),
                        b.and_then(|b| b.analysis.as_ref()),
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
                        self.condition.check(|f| node_field(n, f, s)),
                        None,
                    );
                }
            }
            Kind::Cluster => {
                record(
                    &[],
                    self.condition.check(|f| cluster_field(s, cluster, f)),
                    None,
                );
            }
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

fn num(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

fn bit(v: Option<bool>) -> Option<f64> {
    v.map(|b| if b { 1.0 } else { 0.0 })
}

fn queue_field(
    q: &Queue,
    field: &str,
    poll_time: std::time::SystemTime,
    backlog: Option<&QueueBacklog>,
) -> Option<f64> {
    let analysis = backlog.and_then(|b| b.analysis.as_ref());
    // Fields that need message statistics are unknown without them.
    let counted = analysis.filter(|a| a.counters);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    match field {
        "messages" => num(q.total_messages()),
        "messages_ready" => num(q.messages_ready),
        "messages_unacknowledged" => num(q.messages_unacknowledged),
        "messages_persistent" => num(q.messages_persistent),
        "message_bytes" => num(q.total_bytes()),
        "message_bytes_ready" => num(q.message_bytes_ready),
        "message_bytes_unacknowledged" => num(q.message_bytes_unacknowledged),
        "consumers" => num(q.consumers),
        "consumer_utilisation" => q.utilisation(),
        "memory" => num(q.memory),
        "head_message_age" => head_message_age(q, poll_time),
        "max_length" => num(q.limit("max-length")),
        "max_length_bytes" => num(q.limit("max-length-bytes")),
        "backlog_growing" => analysis.map(|a| flag(a.growing)),
        "backlog_no_consumers" => analysis.map(|a| flag(a.no_consumers)),
        "backlog_stalled" => counted.map(|a| flag(a.stalled)),
        "backlog_redelivering" => counted.map(|a| flag(a.redelivering)),
        "redelivery_ratio" => counted.and_then(|a| a.redelivery_ratio),
        "ingress_rate" => counted.map(|a| a.ingress_rate),
        "egress_rate" => counted.map(|a| a.egress_rate),
        "messages_ready_growth" => analysis.map(|a| a.ready_growth as f64),
        "time_to_drain" => analysis.map(|a| a.time_to_drain),
        "time_to_overflow" => {
            analysis.map(|a| a.time_to_overflow.map_or(f64::INFINITY, |(t, _)| t))
        }
        "oldest_message_age" => {
            head_message_age(q, poll_time).or_else(|| analysis.and_then(|a| a.oldest_age_estimate))
        }
        "dead_letter_queue" => backlog.and_then(|b| b.dead_letter).map(flag),
        _ => None,
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

fn node_field(n: &Node, field: &str, s: &Snapshot) -> Option<f64> {
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
        _ => None,
    }
}

fn cluster_field(s: &Snapshot, cluster: &ClusterStatus, field: &str) -> Option<f64> {
    if field == "up" {
        return bit(Some(s.is_up()));
    }
    if let Some(v) = super::cluster::field(cluster, field) {
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
/// details of a queue, [`Analysis::details`]) and `{{ $cluster.NAME }}` (the cluster
/// detector's view, [`ClusterStatus::template_vars`]) in `template`; unknown
/// names become empty. Values print with at most 3 decimals, trailing zeros removed.
pub fn render(
    template: &str,
    labels: &Labels,
    value: f64,
    details: &BTreeMap<String, String>,
    cluster: &BTreeMap<String, String>,
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
    fn parses_conditions_and_names_what_is_wrong() {
        let c = Condition::parse("mem_used / mem_limit > 0.85", Kind::Node).unwrap();
        assert_eq!(c.to_string(), "mem_used / mem_limit > 0.85");
        let c = Condition::parse("messages_ready > 0 and consumers == 0", Kind::Queue).unwrap();
        assert_eq!(c.0.len(), 2);
        let err = Condition::parse("mem_used > 1", Kind::Queue).unwrap_err();
        assert!(
            err.starts_with("unknown field `mem_used`; fields are: messages,"),
            "{err}"
        );
        let err = Condition::parse("messages_ready => 1", Kind::Queue).unwrap_err();
        assert!(err.contains("unknown operator `=>`"), "{err}");
        let err = Condition::parse("messages_ready > lots", Kind::Queue).unwrap_err();
        assert_eq!(err, "`lots` is not a number");
        assert!(Condition::parse("messages_ready >1000", Kind::Queue).is_err());
    }

    #[test]
    fn every_default_rule_parses() {
        for d in DEFAULTS {
            Condition::parse(d.expr, d.kind).unwrap_or_else(|e| panic!("{}: {e}", d.name));
            humantime::parse_duration(d.for_).unwrap();
            humantime::parse_duration(d.keep_firing_for).unwrap();
        }
    }

    #[test]
    fn unknown_fields_and_zero_divisors_are_unknown_not_false() {
        let c = Condition::parse("mem_used / mem_limit > 0.85", Kind::Node).unwrap();
        let get = |used: Option<f64>, limit: Option<f64>| {
            move |f: &str| if f == "mem_used" { used } else { limit }
        };
        assert_eq!(c.check(get(Some(90.0), Some(100.0))), Some((true, 0.9)));
        assert_eq!(c.check(get(Some(10.0), Some(100.0))), Some((false, 0.1)));
        assert_eq!(c.check(get(None, Some(100.0))), None);
        assert_eq!(c.check(get(Some(1.0), Some(0.0))), None);
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
                &[("sides".to_owned(), "[a] | [b]".to_owned())].into()
            ),
            "orders has 1234 () {{ other }}: no consumers [a] | [b]"
        );
        assert_eq!(format_value(0.873456), "0.873");
        assert_eq!(format_value(0.0), "0");
    }
}
