//! Per-node families from `GET /api/nodes` (as seen by the node that answered), labelled
//! `node`, and resource alarms combined with `GET /api/health/checks/alarms`. Names are those of
//! rabbitmq_prometheus's node metrics, with a `node` label added since one sidecar watches the
//! whole cluster.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{Family, Field, MissingFields, flag};
use crate::rabbitmq::Endpoint;
use crate::rabbitmq::model::{Node, alarm_in_effect};
use crate::snapshot::Snapshot;

/// `rabbitmq_node_running{node}`: 1 when the answering node sees this member running.
pub const RUNNING: Family = Family {
    name: "rabbitmq_node_running",
    help: "1 when the cluster member is running, as seen by the node that answered, else 0.",
    unit: None,
    source: "/api/nodes running",
};

/// `rabbitmq_process_resident_memory_bytes{node}`: memory used, as the memory alarm counts it.
pub const MEM_USED: Family = Family {
    name: "rabbitmq_process_resident_memory",
    help: "Memory used by the node, as the memory alarm counts it.",
    unit: Some(Unit::Bytes),
    source: "/api/nodes mem_used",
};

/// `rabbitmq_resident_memory_limit_bytes{node}`: memory high watermark.
pub const MEM_LIMIT: Family = Family {
    name: "rabbitmq_resident_memory_limit",
    help: "Memory high watermark of the node: above it the memory alarm blocks publishers.",
    unit: Some(Unit::Bytes),
    source: "/api/nodes mem_limit",
};

/// `rabbitmq_disk_space_available_bytes{node}`.
pub const DISK_FREE: Family = Family {
    name: "rabbitmq_disk_space_available",
    help: "Free disk space on the partition of the node's data directory.",
    unit: Some(Unit::Bytes),
    source: "/api/nodes disk_free",
};

/// `rabbitmq_disk_space_available_limit_bytes{node}`: free-disk low watermark.
pub const DISK_LIMIT: Family = Family {
    name: "rabbitmq_disk_space_available_limit",
    help: "Free disk space low watermark of the node: below it the disk alarm blocks publishers.",
    unit: Some(Unit::Bytes),
    source: "/api/nodes disk_free_limit",
};

/// `rabbitmq_process_open_fds{node}`.
pub const FD_USED: Family = Family {
    name: "rabbitmq_process_open_fds",
    help: "Open file descriptors of the node.",
    unit: None,
    source: "/api/nodes fd_used",
};

/// `rabbitmq_process_max_fds{node}`.
pub const FD_TOTAL: Family = Family {
    name: "rabbitmq_process_max_fds",
    help: "File descriptor limit of the node.",
    unit: None,
    source: "/api/nodes fd_total",
};

/// `rabbitmq_erlang_processes_used{node}`.
pub const PROC_USED: Family = Family {
    name: "rabbitmq_erlang_processes_used",
    help: "Erlang processes running on the node.",
    unit: None,
    source: "/api/nodes proc_used",
};

/// `rabbitmq_erlang_processes_limit{node}`.
pub const PROC_TOTAL: Family = Family {
    name: "rabbitmq_erlang_processes_limit",
    help: "Erlang process limit of the node.",
    unit: None,
    source: "/api/nodes proc_total",
};

/// `rabbitmq_erlang_uptime_seconds{node}`.
pub const UPTIME: Family = Family {
    name: "rabbitmq_erlang_uptime",
    help: "Time since the node started.",
    unit: Some(Unit::Seconds),
    source: "/api/nodes uptime (milliseconds, converted)",
};

/// `rabbitmq_node_partitions{node}`: nodes this node reports being partitioned from.
pub const PARTITIONS: Family = Family {
    name: "rabbitmq_node_partitions",
    help: "Number of cluster members this node reports a network partition with (always 0 on RabbitMQ 4.3+, where the field is empty).",
    unit: None,
    source: "/api/nodes partitions",
};

/// `rabbitmq_node_partition_info{node,peer}`: one series per peer a node reports a partition with.
pub const PARTITION: Family = Family {
    name: "rabbitmq_node_partition",
    help: "One series (value 1) per cluster member (peer) that the node reports a network partition with; none while the cluster is whole.",
    unit: None,
    source: "/api/nodes partitions",
};

/// `rabbitmq_alarms_memory_used_watermark{node}`: 1 while the memory alarm is in effect.
pub const MEM_ALARM: Family = Family {
    name: "rabbitmq_alarms_memory_used_watermark",
    help: "1 while the node's memory alarm is in effect (publishers blocked), else 0; 1 when either source reports it.",
    unit: None,
    source: "/api/nodes mem_alarm and /api/health/checks/alarms",
};

/// `rabbitmq_alarms_free_disk_space_watermark{node}`: 1 while the disk alarm is in effect.
pub const DISK_ALARM: Family = Family {
    name: "rabbitmq_alarms_free_disk_space_watermark",
    help: "1 while the node's free disk space alarm is in effect (publishers blocked), else 0; 1 when either source reports it.",
    unit: None,
    source: "/api/nodes disk_free_alarm and /api/health/checks/alarms",
};

/// `resource` of a memory alarm in `/api/health/checks/alarms`.
const MEMORY_RESOURCE: &str = "memory";
/// `resource` of a disk alarm in `/api/health/checks/alarms`.
const DISK_RESOURCE: &str = "disk space";

/// Writes the node families. Without `/api/nodes` only the alarms the alarm check reports
/// are written (nodes it does not list are unknown, so they get no series).
pub fn encode(
    enc: &mut DescriptorEncoder,
    s: &Snapshot,
    missing: &mut MissingFields,
) -> fmt::Result {
    let check = s.alarms.ok();
    let nodes: &[Node] = s.nodes.ok().map_or(&[], Vec::as_slice);
    let labels = |n: &Node| [("node", n.name.clone())];

    let fields: [Field<Node>; 9] = [
        (&MEM_USED, |n| n.mem_used),
        (&MEM_LIMIT, |n| n.mem_limit),
        (&DISK_FREE, |n| n.disk_free),
        (&DISK_LIMIT, |n| n.disk_free_limit),
        (&FD_USED, |n| n.fd_used),
        (&FD_TOTAL, |n| n.fd_total),
        (&PROC_USED, |n| n.proc_used),
        (&PROC_TOTAL, |n| n.proc_total),
        (&PARTITIONS, |n| {
            n.partitions.as_ref().map(|p| p.len() as u64)
        }),
    ];
    if s.nodes.ok().is_some() {
        RUNNING.gauge(
            enc,
            nodes
                .iter()
                .filter_map(|n| n.running.map(|r| (labels(n), flag(r)))),
        )?;
        for (family, field) in fields {
            let misses = nodes.iter().filter(|n| field(n).is_none()).count();
            missing.count(Endpoint::Nodes, family.source, misses);
            family.gauge(
                enc,
                nodes
                    .iter()
                    .filter_map(|n| field(n).map(|v| (labels(n), v))),
            )?;
        }
        UPTIME.gauge(
            enc,
            nodes
                .iter()
                .filter_map(|n| n.uptime.map(|ms| (labels(n), ms as f64 / 1000.0))),
        )?;
        PARTITION.info(
            enc,
            nodes.iter().flat_map(|n| {
                n.partitions
                    .iter()
                    .flatten()
                    .map(|peer| [("node", n.name.clone()), ("peer", peer.clone())])
            }),
        )?;
    }

    for (family, resource, node_flag) in [
        (
            &MEM_ALARM,
            MEMORY_RESOURCE,
            (|n: &Node| n.mem_alarm) as fn(&Node) -> Option<bool>,
        ),
        (&DISK_ALARM, DISK_RESOURCE, |n: &Node| n.disk_free_alarm),
    ] {
        // Nodes listed by /api/nodes, then nodes only the alarm check names.
        let mut samples: Vec<([(&str, String); 1], i64)> = nodes
            .iter()
            .filter_map(|n| {
                // The alarm check cannot speak for a member that is down.
                let check = check.filter(|_| n.running != Some(false));
                alarm_in_effect(&n.name, node_flag(n), check, resource)
                    .map(|a| (labels(n), flag(a)))
            })
            .collect();
        if let Some(c) = check {
            for a in c.alarms.iter().filter(|a| a.resource == resource) {
                if !nodes.iter().any(|n| n.name == a.node)
                    && !samples.iter().any(|(l, _)| l[0].1 == a.node)
                {
                    samples.push(([("node", a.node.clone())], 1));
                }
            }
        }
        family.gauge(enc, samples)?;
    }
    Ok(())
}
