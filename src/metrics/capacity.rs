//! Node limits, predictions and traffic health (issue #16): connection and channel churn
//! counters and Erlang distribution links per node from `/api/nodes`, each member's versions,
//! the free-disk forecast ([`crate::alerting::capacity::DiskTrend`]) and each queue's latency
//! ([`crate::alerting::capacity::queue_latency`]), and each node's CPU utilisation where its
//! rabbitmq_prometheus counters are read. File descriptors and Erlang processes are
//! in [`super::nodes`] already (`rabbitmq_process_open_fds`, `rabbitmq_process_max_fds`,
//! `rabbitmq_erlang_processes_used`, `rabbitmq_erlang_processes_limit`).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::queues::labels as queue_labels;
use super::{Family, Field, MissingFields};
use crate::alerting::backlog::Report;
use crate::alerting::capacity::queue_latency;
use crate::alerting::cluster::ClusterStatus;
use crate::rabbitmq::Endpoint;
use crate::rabbitmq::model::Node;
use crate::snapshot::Snapshot;

/// `rabbitmq_connections_opened_total{node}`.
pub const CONNECTIONS_OPENED: Family = Family {
    name: "rabbitmq_connections_opened",
    help: "Client connections opened on the node since its statistics started (the plugin: since the node started).",
    unit: None,
    source: "/api/nodes connection_created; with rabbitmq.source prometheus, rabbitmq_connections_opened_total of the member's rabbitmq_prometheus /metrics (also counted with statistics disabled)",
};

/// `rabbitmq_connections_closed_total{node}`.
pub const CONNECTIONS_CLOSED: Family = Family {
    name: "rabbitmq_connections_closed",
    help: "Client connections closed on the node since its statistics started (the plugin: since the node started).",
    unit: None,
    source: "/api/nodes connection_closed; with rabbitmq.source prometheus, rabbitmq_connections_closed_total of the member's rabbitmq_prometheus /metrics (also counted with statistics disabled)",
};

/// `rabbitmq_channels_opened_total{node}`.
pub const CHANNELS_OPENED: Family = Family {
    name: "rabbitmq_channels_opened",
    help: "Channels opened on the node since its statistics started (the plugin: since the node started).",
    unit: None,
    source: "/api/nodes channel_created; with rabbitmq.source prometheus, rabbitmq_channels_opened_total of the member's rabbitmq_prometheus /metrics (also counted with statistics disabled)",
};

/// `rabbitmq_channels_closed_total{node}`.
pub const CHANNELS_CLOSED: Family = Family {
    name: "rabbitmq_channels_closed",
    help: "Channels closed on the node since its statistics started (the plugin: since the node started).",
    unit: None,
    source: "/api/nodes channel_closed; with rabbitmq.source prometheus, rabbitmq_channels_closed_total of the member's rabbitmq_prometheus /metrics (also counted with statistics disabled)",
};

/// `rabbitmq_node_cluster_links{node}`: established Erlang distribution links.
pub const CLUSTER_LINKS: Family = Family {
    name: "rabbitmq_node_cluster_links",
    help: "Erlang distribution links the node has established to other cluster members (a whole cluster of n running members has n(n-1) in all).",
    unit: None,
    source: "/api/nodes cluster_links (length)",
};

/// `rabbitmq_node_build_info{node,rabbitmq_version,kernel_version}`.
pub const NODE_BUILD: Family = Family {
    name: "rabbitmq_node_build",
    help: "One series per member: its RabbitMQ version (application rabbit) and its Erlang/OTP kernel version (application kernel; /api/nodes gives no OTP release).",
    unit: None,
    source: "/api/nodes applications",
};

/// `rabbitmq_node_time_to_disk_alarm_seconds{node}`.
pub const TIME_TO_DISK_ALARM: Family = Family {
    name: "rabbitmq_node_time_to_disk_alarm",
    help: "Predicted time until free disk space reaches disk_free_limit, along the least-squares line of the last hour (0 when already below; no series while the trend is flat or rising, or spans less than 15 minutes).",
    unit: Some(Unit::Seconds),
    source: "/api/nodes disk_free and disk_free_limit over the last hour",
};

/// `rabbitmq_node_cpu_utilisation_ratio{node}`.
pub const CPU: Family = Family {
    name: "rabbitmq_node_cpu_utilisation_ratio",
    help: "Share of the node's online schedulers' capacity the Erlang runtime used over alerting.backlog.window: CPU time over wall time times online schedulers (can pass 1 briefly). Only with rabbitmq.source prometheus; absent otherwise (/api/nodes has no CPU figure).",
    unit: None,
    source: "rabbitmq_prometheus /metrics erlang_vm_statistics_runtime_milliseconds, erlang_vm_statistics_wallclock_time_milliseconds, erlang_vm_schedulers_online",
};

/// `rabbitmq_queue_latency_seconds{vhost,queue}`.
pub const QUEUE_LATENCY: Family = Family {
    name: "rabbitmq_queue_latency",
    help: "How long messages wait in the queue: the head message's age where publishers set the timestamp property, else 0 without ready messages, else ready messages divided by the delivery rate over the backlog window (Little's law), else the backlog detector's estimate of the oldest message's age.",
    unit: Some(Unit::Seconds),
    source: "/api/queues head_message_timestamp, messages_ready and message_stats over alerting.backlog.window",
};

/// Writes the capacity families: the node ones from `/api/nodes` (nothing when it failed),
/// the disk forecasts from `cluster`, the queue latencies from the queues of `s` and the
/// backlog detector's `backlog` report on them (same order).
pub fn encode(
    enc: &mut DescriptorEncoder,
    s: &Snapshot,
    backlog: Option<&Report>,
    cluster: Option<&ClusterStatus>,
    missing: &mut MissingFields,
) -> fmt::Result {
    if let Some(nodes) = s.nodes.ok() {
        let label = |n: &Node| [("node", n.name.clone())];
        let counters: [Field<Node>; 4] = [
            (&CONNECTIONS_OPENED, |n| n.connection_created),
            (&CONNECTIONS_CLOSED, |n| n.connection_closed),
            (&CHANNELS_OPENED, |n| n.channel_created),
            (&CHANNELS_CLOSED, |n| n.channel_closed),
        ];
        for (family, field) in counters {
            missing.count(
                Endpoint::Nodes,
                family.source,
                nodes
                    .iter()
                    .filter(|n| n.running != Some(false) && field(n).is_none())
                    .count(),
            );
            family.counter(
                enc,
                nodes.iter().filter_map(|n| field(n).map(|v| (label(n), v))),
            )?;
        }
        CLUSTER_LINKS.gauge(
            enc,
            nodes
                .iter()
                .filter_map(|n| n.cluster_links.as_ref().map(|l| (label(n), l.len() as i64))),
        )?;
        NODE_BUILD.info(
            enc,
            nodes.iter().filter(|n| n.applications.is_some()).map(|n| {
                [
                    ("node", n.name.clone()),
                    (
                        "rabbitmq_version",
                        n.application_version("rabbit").unwrap_or("").to_owned(),
                    ),
                    (
                        "kernel_version",
                        n.application_version("kernel").unwrap_or("").to_owned(),
                    ),
                ]
            }),
        )?;
    }
    TIME_TO_DISK_ALARM.gauge(
        enc,
        cluster
            .into_iter()
            .flat_map(|c| c.capacity.disk.iter())
            .filter(|(_, f)| f.time_to_alarm.is_finite())
            .map(|(node, f)| ([("node", node.as_str())], f.time_to_alarm)),
    )?;
    CPU.gauge(
        enc,
        cluster
            .into_iter()
            .flat_map(|c| c.capacity.cpu.iter())
            .map(|(node, u)| ([("node", node.as_str())], *u)),
    )?;
    let Some(queues) = s.queues.ok() else {
        return Ok(());
    };
    let reports = backlog.map_or(&[][..], |r| r.queues.as_slice());
    QUEUE_LATENCY.gauge(
        enc,
        queues.iter().enumerate().filter_map(|(i, q)| {
            let analysis = reports.get(i).and_then(|b| b.analysis.as_ref());
            queue_latency(q, s.started_at, analysis).map(|l| (queue_labels(q), l))
        }),
    )
}
