//! Families of the cluster detector's verdict ([`crate::alerting::cluster`], read from the
//! assessment): expected and running members per
//! view, who sees whom running, whether each member's own API answered, split views,
//! partitions and restarts. Views are labelled `view` with the name of the member whose API
//! gave them; without `cluster.nodes` / `cluster.url_template` there is one view, that of the
//! node behind `rabbitmq.url`.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{Family, flag};
use crate::alerting::cluster::ClusterStatus;

/// `rabbitmq_cluster_expected_nodes`.
pub const EXPECTED: Family = Family {
    name: "rabbitmq_cluster_expected_nodes",
    help: "Cluster size expected: cluster.expected_nodes, else the largest number of members any view has listed since the sidecar started.",
    unit: None,
    source: "/api/nodes of every member (length), or cluster.expected_nodes",
};

/// `rabbitmq_cluster_running_nodes{view}`.
pub const RUNNING: Family = Family {
    name: "rabbitmq_cluster_running_nodes",
    help: "Members running as seen by member `view`'s own management API (absent while that API cannot be read).",
    unit: None,
    source: "/api/nodes running, read from each member",
};

/// `rabbitmq_cluster_view_node_running{view,node}`.
pub const VIEW_NODE_RUNNING: Family = Family {
    name: "rabbitmq_cluster_view_node_running",
    help: "1 when member `view` sees member `node` running, else 0 (absent while view's API cannot be read).",
    unit: None,
    source: "/api/nodes running, read from each member",
};

/// `rabbitmq_node_api_up{node}`.
pub const API_UP: Family = Family {
    name: "rabbitmq_node_api_up",
    help: "1 when the sidecar read this member's own management API (/api/nodes) in the last poll, else 0 (refused, timed out, HTTP error).",
    unit: None,
    source: "/api/nodes, read from each member",
};

/// `rabbitmq_cluster_views_disagree`.
pub const VIEWS_DISAGREE: Family = Family {
    name: "rabbitmq_cluster_views_disagree",
    help: "1 when two members' APIs both answer and each reports the other not running (split views: a partition in progress), else 0; absent when no member's API answered.",
    unit: None,
    source: "/api/nodes running, read from each member",
};

/// `rabbitmq_cluster_partitioned`.
pub const PARTITIONED: Family = Family {
    name: "rabbitmq_cluster_partitioned",
    help: "1 when views disagree or the merged partitions lists of every view are non-empty, else 0; absent when no member's API answered.",
    unit: None,
    source: "/api/nodes partitions and running, read from each member",
};

/// `rabbitmq_node_restarts_total{node}`.
pub const RESTARTS: Family = Family {
    name: "rabbitmq_node_restarts",
    help: "Restarts of the member observed by the sidecar since it started: of its Erlang VM (uptime went down) or of the RabbitMQ application alone (mnesia_disk_tx_count went down, or the member was seen stopped and then running).",
    unit: None,
    source: "/api/nodes uptime and mnesia_disk_tx_count, read from each member",
};

/// Writes the cluster detector's families from its verdict `c`.
pub fn encode(enc: &mut DescriptorEncoder, c: &ClusterStatus) -> fmt::Result {
    EXPECTED.gauge_value(enc, c.expected_nodes.map(|n| n as i64))?;
    RUNNING.gauge(
        enc,
        c.answering()
            .filter_map(|v| v.running().map(|n| ([("view", v.node.as_str())], n as i64))),
    )?;
    VIEW_NODE_RUNNING.gauge(
        enc,
        c.answering().flat_map(|v| {
            v.listed().unwrap_or_default().iter().filter_map(move |n| {
                n.running.map(|r| {
                    (
                        [("view", v.node.as_str()), ("node", n.name.as_str())],
                        flag(r),
                    )
                })
            })
        }),
    )?;
    API_UP.gauge(
        enc,
        c.views
            .iter()
            .map(|v| ([("node", v.node.as_str())], flag(v.nodes.ok().is_some()))),
    )?;
    VIEWS_DISAGREE.gauge_value(enc, c.views_disagree().map(flag))?;
    PARTITIONED.gauge_value(enc, c.partitioned().map(flag))?;
    let mut members: std::collections::BTreeSet<&str> =
        c.members.iter().map(String::as_str).collect();
    members.extend(c.restarts.keys().map(String::as_str));
    RESTARTS.counter(
        enc,
        members.into_iter().map(|n| {
            (
                [("node", n)],
                c.restarts.get(n).copied().unwrap_or_default(),
            )
        }),
    )?;
    Ok(())
}
