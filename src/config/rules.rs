//! Alert rule definitions: the object kinds and their fields, the condition language
//! ([`Condition`]), [`Rule`], the default catalogue ([`DEFAULTS`]: one documented place for
//! names, thresholds and `for` durations, reused by `alerts/`). The merging of
//! `alerting.rules` over the defaults is in `config/rule_merge.rs`; evaluating a rule against a
//! snapshot is the alert engine's (`alerting::rules`).
//!
//! A condition is one or more comparisons joined by `and`; each compares a field of the rule's
//! object kind, or the ratio of two fields, with a number:
//! `messages_ready > 1000`, `mem_used / mem_limit > 0.85`, `messages_ready > 0 and consumers == 0`.
//! The alert's value is the left side of the first comparison.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::fields::{Field, QueueField};
use crate::types::Regex;

pub(super) use super::rule_merge::{RawRule, effective_rules};

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
    /// One instance per finding of the reliability audit (labels `check`, `vhost`, `object`,
    /// `object_type`, `finding_severity`); data from the audit's latest run (`audit.*`,
    /// docs/audit.md#alerts), not from the poll.
    Audit,
}

impl Kind {
    /// The fields a condition of this kind may use.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            // One list with the resolved fields (config::fields).
            Kind::Queue => QueueField::NAMES,
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
                // Health checks of the member's own API (alerting::replication).
                "quorum_critical",
                "mirror_sync_critical",
                "virtual_hosts_down",
                "certificate_expiring",
                "certificate_expires_in",
                "protocol_listeners_down",
                // Capacity (alerting::capacity).
                "cluster_links",
                "time_to_disk_alarm",
                "cpu_utilisation",
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
                // The cluster detector, from every member's own view.
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
                // Capacity and traffic health (alerting::capacity).
                "connection_churn",
                "channel_churn",
                "publish_rate",
                "unroutable_rate",
                "cluster_links",
                "expected_cluster_links",
                "missing_cluster_links",
                "rabbitmq_versions",
                "erlang_versions",
            ],
            // 1 for every finding; 1 when the finding's severity is warning (0: info).
            Kind::Audit => &["finding", "warning"],
        }
    }

    /// Parses `queue`, `node`, `cluster` or `audit`.
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "queue" => Some(Kind::Queue),
            "node" => Some(Kind::Node),
            "cluster" => Some(Kind::Cluster),
            "audit" => Some(Kind::Audit),
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
    /// The operator as written: `>`, `>=`, `<`, `<=`, `==` or `!=`.
    pub fn text(self) -> &'static str {
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
    /// The field compared (or the dividend of a ratio), resolved when parsed.
    pub field: Field,
    /// The divisor of a ratio, if any.
    pub divisor: Option<Field>,
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
            f.write_str(c.field.name())?;
            if let Some(d) = c.divisor {
                write!(f, " / {}", d.name())?;
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
            let resolve = |name: &str| {
                Field::parse(name, kind).ok_or_else(|| {
                    format!(
                        "unknown field `{name}`; fields are: {}",
                        kind.fields().join(", ")
                    )
                })
            };
            let field = resolve(field)?;
            let divisor = divisor.map(resolve).transpose()?;
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
                field,
                divisor,
                op,
                threshold,
            });
        }
        Ok(Condition(comparisons))
    }
}

/// Which objects a rule covers: regexes (fully anchored) over `vhost`/`queue` or `node`.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// `vhost` regex (queue and audit rules).
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
        expr: "messages_ready > 1000 and dead_letter_queue == 0",
        for_: "5m",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} ready messages",
        description: "More than 1000 messages have been waiting for delivery for {{ $for }}: consumers are too slow, too few or stuck. Dead-letter queues are left to RabbitmqDeadLetterQueueGrowing.",
    },
    DefaultRule {
        name: "RabbitmqQueueMessagesUnacked",
        kind: Kind::Queue,
        expr: "messages_unacknowledged > 1000",
        for_: "5m",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} unacknowledged messages",
        description: "More than 1000 delivered messages have not been acknowledged for {{ $for }}: consumers are slow to ack, stuck, or use a very large prefetch.",
    },
    DefaultRule {
        name: "RabbitmqQueueNoConsumers",
        kind: Kind::Queue,
        expr: "messages_ready > 0 and consumers == 0 and dead_letter_queue == 0",
        for_: "5m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} messages and no consumer",
        description: "Messages have been waiting for {{ $for }} on a queue nobody consumes from. Dead-letter queues are left to RabbitmqDeadLetterQueueGrowing.",
    },
    DefaultRule {
        name: "RabbitmqQueueGrowing",
        kind: Kind::Queue,
        expr: "backlog_growing == 1 and dead_letter_queue == 0",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} is falling behind: {{ $details.cause }}",
        description: "Ready messages never fell between two polls and never reached 0 over the backlog window ({{ $details.window }}), and rose over it; {{ $details.messages_ready }} are ready. Time to drain at the current rates: {{ $details.time_to_drain }}. Time to overflow: {{ $details.time_to_overflow }}.",
    },
    DefaultRule {
        name: "RabbitmqQueueStalled",
        kind: Kind::Queue,
        expr: "backlog_stalled == 1",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }}: {{ $details.cause }}",
        description: "Consumers are attached and messages wait, but nothing was acknowledged over the backlog window ({{ $details.window }}): consumers are hung, deadlocked or blocked on a dependency. {{ $details.messages_ready }} messages are ready.",
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
        description: "Memory use has been above 85% of the high watermark for {{ $for }}; at 100% the memory alarm blocks all publishers.",
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
        description: "The cluster reports this member as not running for {{ $for }}.",
    },
    DefaultRule {
        name: "RabbitmqWatchPollFailing",
        kind: Kind::Cluster,
        expr: "up == 0",
        for_: "1m",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "rabbitmq-watch cannot read the RabbitMQ management API",
        description: "Polls have failed for {{ $for }} (see rabbitmq_watch_endpoint_failures_total and the sidecar's log). Other alerts keep their last state until the broker can be seen again.",
    },
    DefaultRule {
        name: "RabbitmqClusterPartition",
        kind: Kind::Cluster,
        expr: "partitioned == 1",
        for_: "0s",
        keep_firing_for: "10m",
        severity: "critical",
        summary: "RabbitMQ cluster partitioned: {{ $cluster.sides }}",
        description: "Members see different clusters (split views) or report partitions. Views: {{ $cluster.views }}. Partitions reported: {{ $cluster.partitions }}. Latched: stays firing {{ $keep_firing_for }} after the last evidence (autoheal shows a partition for seconds only). Restarts seen: {{ $cluster.restarted }}.",
    },
    DefaultRule {
        name: "RabbitmqNodeDown",
        kind: Kind::Cluster,
        expr: "missing_nodes > 0",
        for_: "30s",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "{{ $value }} of {{ $cluster.expected }} RabbitMQ nodes not running: {{ $cluster.down }}",
        description: "Fewer members run than expected for {{ $for }} (best view). Down: {{ $cluster.down }}. APIs unreachable: {{ $cluster.unreachable }}. Views: {{ $cluster.views }}.",
    },
    DefaultRule {
        name: "RabbitmqNodeUnreachable",
        kind: Kind::Cluster,
        expr: "unreachable_nodes > 0",
        for_: "30s",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "rabbitmq-watch cannot reach the management API of {{ $cluster.unreachable }}",
        description: "Other members' APIs answer, this one's refuses or times out for {{ $for }}: the node is stopped, crashed, paused as a minority (pause_minority) or its management listener is cut off. Views: {{ $cluster.views }}.",
    },
    // Replication and health checks (#16): quorum queues, mirrors, the members' health checks.
    DefaultRule {
        name: "RabbitmqQuorumQueueMinority",
        kind: Kind::Queue,
        expr: "quorum_minority == 1",
        for_: "30s",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "Quorum queue {{ $labels.queue }} in vhost {{ $labels.vhost }} is unavailable: {{ $details.online_members }} of {{ $details.members }} members online, missing {{ $details.missing_members }}",
        description: "Fewer than a majority of the queue's members have been online for {{ $for }}: it can neither accept nor deliver messages until enough of the missing members ({{ $details.missing_members }}) are back. Leader as last known: {{ $details.leader }}.",
    },
    DefaultRule {
        name: "RabbitmqQuorumQueueNoLeader",
        kind: Kind::Queue,
        expr: "leader_online == 0",
        for_: "1m",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "Quorum queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has no leader online",
        description: "The queue's leader as last known ({{ $details.leader }}) has not been among its online members for {{ $for }}: no leader was elected, so the queue serves nobody. Online {{ $details.online_members }} of {{ $details.members }}; missing {{ $details.missing_members }}.",
    },
    DefaultRule {
        name: "RabbitmqNodeQuorumCritical",
        kind: Kind::Node,
        expr: "quorum_critical == 1",
        for_: "0s",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Stopping node {{ $labels.node }} now makes quorum queues unavailable: {{ $details.critical_queues }}",
        description: "The node's own health check (node-is-quorum-critical) fails: some quorum queues have only a bare majority online, and this node is part of it. Do not restart or upgrade it until the other members are back.",
    },
    DefaultRule {
        name: "RabbitmqNodeMirrorSyncCritical",
        kind: Kind::Node,
        expr: "mirror_sync_critical == 1",
        for_: "0s",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Stopping node {{ $labels.node }} now loses the only synchronised copy of mirrored queues: {{ $details.mirror_critical_queues }}",
        description: "The node's own health check (node-is-mirror-sync-critical, RabbitMQ 3.x) fails: classic mirrored queues have no other synchronised mirror. Do not restart it until their mirrors are synchronised.",
    },
    DefaultRule {
        name: "RabbitmqQueueMirrorsUnsynchronised",
        kind: Kind::Queue,
        expr: "unsynchronised_mirrors > 0",
        for_: "10m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Mirrored queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has {{ $value }} unsynchronised mirrors: {{ $details.unsynchronised_mirrors }}",
        description: "Mirrors of this classic mirrored queue (RabbitMQ 3.x) have not held all its messages for {{ $for }}: losing the leader now loses messages.",
    },
    DefaultRule {
        name: "RabbitmqVirtualHostsDown",
        kind: Kind::Node,
        expr: "virtual_hosts_down == 1",
        for_: "1m",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "Virtual hosts down on node {{ $labels.node }}: {{ $details.virtual_hosts }}",
        description: "The node's own health check (virtual-hosts) has failed for {{ $for }}: clients of those virtual hosts cannot connect to this node.",
    },
    DefaultRule {
        name: "RabbitmqCertificateExpiring",
        kind: Kind::Node,
        expr: "certificate_expiring == 1",
        for_: "0s",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "TLS certificate of node {{ $labels.node }} expires {{ $details.certificate_expires }}",
        description: "The node's own health check (certificate-expiration, 30 days) fails: {{ $details.certificates }}. Renew the certificate and reload the listener before clients are refused.",
    },
    // --- Capacity and traffic health (issue #16; fields in alerting::capacity) ---
    DefaultRule {
        name: "RabbitmqFileDescriptorsNearLimit",
        kind: Kind::Node,
        expr: "fd_used / fd_total > 0.8",
        for_: "10m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Node {{ $labels.node }} uses {{ $value }} of its file descriptor limit",
        description: "More than 80% of the node's file descriptors have been in use for {{ $for }}; when they run out the node refuses new connections and cannot open files.",
    },
    DefaultRule {
        name: "RabbitmqErlangProcessesNearLimit",
        kind: Kind::Node,
        expr: "proc_used / proc_total > 0.8",
        for_: "10m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Node {{ $labels.node }} uses {{ $value }} of its Erlang process limit",
        description: "More than 80% of the Erlang process limit has been in use for {{ $for }}; when it is reached the node cannot accept connections, channels or queues and may crash.",
    },
    DefaultRule {
        name: "RabbitmqDiskAlarmPredicted",
        kind: Kind::Node,
        expr: "time_to_disk_alarm < 86400",
        for_: "30m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Node {{ $labels.node }} is predicted to reach its free disk limit in {{ $value }} seconds",
        description: "At the trend of the last hour free disk space falls below disk_free_limit within 24 hours, and has been predicted to for {{ $for }}; then the disk alarm blocks every publisher.",
    },
    DefaultRule {
        name: "RabbitmqNodeRestarted",
        kind: Kind::Cluster,
        expr: "restarted_nodes > 0",
        for_: "0s",
        keep_firing_for: "15m",
        severity: "info",
        summary: "RabbitMQ node restarted: {{ $cluster.restarted }}",
        description: "The node's uptime went back (or its application counters restarted): it was restarted, crashed, or recovered from a partition. Stays firing {{ $keep_firing_for }}. Restarts so far: rabbitmq_node_restarts_total.",
    },
    DefaultRule {
        name: "RabbitmqVersionMismatch",
        kind: Kind::Cluster,
        expr: "rabbitmq_versions > 1",
        for_: "1h",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "RabbitMQ cluster members run {{ $value }} different RabbitMQ versions",
        description: "The running members have reported different RabbitMQ versions for {{ $for }}: a rolling upgrade was left unfinished. Mixed versions are supported only during an upgrade.",
    },
    DefaultRule {
        name: "RabbitmqErlangVersionMismatch",
        kind: Kind::Cluster,
        expr: "erlang_versions > 1",
        for_: "1h",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "RabbitMQ cluster members run {{ $value }} different Erlang/OTP versions",
        description: "The running members have reported different Erlang/OTP kernel versions for {{ $for }}: an Erlang upgrade was left unfinished on some nodes.",
    },
    DefaultRule {
        name: "RabbitmqUnroutableMessages",
        kind: Kind::Cluster,
        expr: "unroutable_rate > 0",
        for_: "5m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "RabbitMQ is returning or dropping {{ $value }} unroutable messages per second",
        description: "Messages published to an exchange have matched no binding for {{ $for }}: mandatory ones are returned to the publisher, the others dropped. A binding or queue is missing, or a routing key is wrong.",
    },
    DefaultRule {
        name: "RabbitmqHighConnectionChurn",
        kind: Kind::Cluster,
        expr: "connection_churn / connections > 0.1 and connections >= 100",
        for_: "10m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "RabbitMQ connection churn is {{ $value }} of open connections per second",
        description: "Connections opened plus closed per second have exceeded 10% of the open connections for {{ $for }} (at 100 connections or more): clients connect per message or reconnect in a loop, which costs the broker CPU and memory.",
    },
    DefaultRule {
        name: "RabbitmqQueueLatencyHigh",
        kind: Kind::Queue,
        expr: "latency > 1 and dead_letter_queue == 0",
        for_: "5m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} has a latency of {{ $value }} seconds",
        description: "Messages have waited more than 1 second in this queue for {{ $for }} (the head message's age where publishers set the timestamp property, else ready messages divided by the delivery rate): consumers are too slow or too few.",
    },
    DefaultRule {
        name: "RabbitmqInsufficientDistributionLinks",
        kind: Kind::Cluster,
        expr: "missing_cluster_links > 0",
        for_: "10m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "RabbitMQ lacks {{ $value }} Erlang distribution links between running members",
        description: "Fewer Erlang distribution links are established than n(n-1) for the n running members, for {{ $for }}: nodes that see each other running cannot talk, an early sign of a network partition.",
    },
    DefaultRule {
        name: "RabbitmqNodeCpuHigh",
        kind: Kind::Node,
        expr: "cpu_utilisation > 0.8",
        for_: "5m",
        keep_firing_for: "0s",
        severity: "warning",
        summary: "Node {{ $labels.node }} uses {{ $value }} of its schedulers' CPU capacity",
        description: "The Erlang runtime has used more than 80% of its online schedulers' CPU time for {{ $for }} (rabbitmq_prometheus runtime counters; rabbitmq.source prometheus only): publishers and consumers slow down and latencies grow.",
    },
    // --- Protocol listeners and poison messages (issue #16; fields in alerting::replication) ---
    DefaultRule {
        name: "RabbitmqProtocolListenerDown",
        kind: Kind::Node,
        expr: "protocol_listeners_down > 0",
        for_: "1m",
        keep_firing_for: "0s",
        severity: "critical",
        summary: "No listener for {{ $details.protocols_down }} on node {{ $labels.node }}",
        description: "The node's own health check (protocol-listener) has found no running listener for {{ $details.protocols_down }} for {{ $for }} (it serves: {{ $details.protocols_served }}): clients of that protocol cannot connect to this node. The protocols checked are those the node served when the sidecar first saw it, plus cluster.expected_protocols.",
    },
    DefaultRule {
        name: "RabbitmqPoisonMessage",
        kind: Kind::Queue,
        expr: "delivery_limit > 0 and backlog_redelivering == 1",
        for_: "0s",
        keep_firing_for: "1m",
        severity: "warning",
        summary: "Queue {{ $labels.queue }} in vhost {{ $labels.vhost }} keeps redelivering the same messages: each is {{ $details.delivery_limit_outcome }} after {{ $value }} deliveries",
        description: "Consumers reject or nack with requeue (or crash before acknowledging) the messages of this quorum queue: {{ $details.redelivery_ratio }} of the deliveries in the backlog window ({{ $details.window }}) were redeliveries and messages went back to the queue. Its delivery limit is {{ $value }}: a message delivered that many times is {{ $details.delivery_limit_outcome }}, unprocessed. RabbitMQ counts such messages only cluster-wide (rabbitmq_global_messages_dead_lettered_delivery_limit_total).",
    },
];

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
}
