//! The cluster detector's fields for `kind: cluster` rules (`running_nodes < expected_nodes`,
//! `partitioned == 1`, …), read from the snapshot's [`ClusterStatus`]. Each is unknown
//! (`None`) when no member's API answered, so a hanging cluster holds alert state instead of
//! resolving it.

use crate::cluster::ClusterStatus;

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
