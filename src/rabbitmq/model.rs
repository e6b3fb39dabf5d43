//! Serde types for the management API responses the sidecar reads.
//!
//! Every field the broker may omit is an `Option`: RabbitMQ leaves fields out while a queue's
//! statistics are not yet emitted, on 3.13's reduced `/api/queues`, and on 4.x with
//! `management_agent.disable_metrics_collector = true`. `None` means "unknown", never 0.
//! Unknown fields are ignored, so newer brokers parse.

use serde::Deserialize;

/// `GET /api/overview`: cluster-wide facts and totals.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Overview {
    /// `cluster_name`: the cluster's name (settable with `rabbitmqctl set_cluster_name`).
    pub cluster_name: Option<String>,
    /// `rabbitmq_version` of the node that answered.
    pub rabbitmq_version: Option<String>,
    /// `erlang_version` of the node that answered.
    pub erlang_version: Option<String>,
    /// `management_version` of the node that answered.
    pub management_version: Option<String>,
    /// `node`: name of the node that answered, e.g. `rabbit@host`.
    pub node: Option<String>,
    /// `object_totals`: cluster-wide object counts.
    pub object_totals: Option<ObjectTotals>,
    /// `queue_totals`: messages summed over all queues.
    pub queue_totals: Option<QueueTotals>,
}

/// `object_totals` of `/api/overview`: number of objects in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ObjectTotals {
    /// `connections`: open client connections.
    pub connections: Option<u64>,
    /// `channels`: open channels.
    pub channels: Option<u64>,
    /// `exchanges`: declared exchanges, built-in ones included.
    pub exchanges: Option<u64>,
    /// `queues`: declared queues.
    pub queues: Option<u64>,
    /// `consumers`: consumers over all queues.
    pub consumers: Option<u64>,
}

/// `queue_totals` of `/api/overview`: message counts summed over all queues.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct QueueTotals {
    /// `messages`: ready + unacknowledged.
    pub messages: Option<u64>,
    /// `messages_ready`: waiting to be delivered.
    pub messages_ready: Option<u64>,
    /// `messages_unacknowledged`: delivered, not yet acknowledged.
    pub messages_unacknowledged: Option<u64>,
}

/// The fields of `/api/overview` the sidecar asks for (`columns=`).
pub const OVERVIEW_COLUMNS: &str = "cluster_name,rabbitmq_version,erlang_version,management_version,node,object_totals,queue_totals";

/// One element of `GET /api/nodes`: a cluster member as seen by the node that answered.
///
/// A member that is down appears with `name`, `type`, `running: false` and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Node {
    /// `name`, e.g. `rabbit@host`.
    pub name: String,
    /// `running`: whether the answering node sees this member running.
    pub running: Option<bool>,
    /// `type`: `disc` or `ram`.
    #[serde(rename = "type")]
    pub node_type: Option<String>,
    /// `mem_used`: memory used in bytes, as the memory alarm counts it.
    pub mem_used: Option<u64>,
    /// `mem_limit`: memory high watermark in bytes; above it publishers are blocked.
    pub mem_limit: Option<u64>,
    /// `mem_alarm`: whether the memory alarm is in effect on this node.
    pub mem_alarm: Option<bool>,
    /// `disk_free`: free disk space in bytes on the data directory's partition.
    pub disk_free: Option<u64>,
    /// `disk_free_limit`: free-disk low watermark in bytes; below it publishers are blocked.
    pub disk_free_limit: Option<u64>,
    /// `disk_free_alarm`: whether the disk alarm is in effect on this node.
    pub disk_free_alarm: Option<bool>,
    /// `fd_used`: open file descriptors.
    pub fd_used: Option<u64>,
    /// `fd_total`: file descriptor limit.
    pub fd_total: Option<u64>,
    /// `proc_used`: Erlang processes.
    pub proc_used: Option<u64>,
    /// `proc_total`: Erlang process limit.
    pub proc_total: Option<u64>,
    /// `uptime`: milliseconds since the node started.
    pub uptime: Option<u64>,
    /// `partitions`: names of nodes this node is partitioned from. Empty on 4.3+ always; absent
    /// when stats are disabled.
    pub partitions: Option<Vec<String>>,
}

/// The fields of `/api/nodes` the sidecar asks for (`columns=`).
pub const NODE_COLUMNS: &str = "name,running,type,mem_used,mem_limit,mem_alarm,disk_free,disk_free_limit,disk_free_alarm,fd_used,fd_total,proc_used,proc_total,uptime,partitions";

/// One element of `GET /api/queues` (paginated: see [`Page`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Queue {
    /// `vhost` the queue lives in.
    pub vhost: String,
    /// `name` of the queue.
    pub name: String,
    /// `type`: `classic`, `quorum` or `stream`.
    #[serde(rename = "type")]
    pub queue_type: Option<String>,
    /// `state`: e.g. `running`, `idle`, `flow`, `down`, `crashed`, `minority`.
    pub state: Option<String>,
    /// `node`: node hosting the queue (the leader for quorum queues).
    pub node: Option<String>,
    /// `messages`: ready + unacknowledged.
    pub messages: Option<u64>,
    /// `messages_ready`: waiting to be delivered.
    pub messages_ready: Option<u64>,
    /// `messages_unacknowledged`: delivered, not yet acknowledged.
    pub messages_unacknowledged: Option<u64>,
    /// `consumers`: attached consumers.
    pub consumers: Option<u64>,
}

/// The fields of `/api/queues` the sidecar asks for (`columns=`).
pub const QUEUE_COLUMNS: &str =
    "vhost,name,type,state,node,messages,messages_ready,messages_unacknowledged,consumers";

/// The paginated shape of a listing (`?page=N&page_size=M&pagination=true`).
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    /// `items`: this page's elements.
    pub items: Vec<T>,
    /// `page_count`: number of pages for this page size (0 when nothing matches).
    pub page_count: u64,
    /// `page`: this page's number, from 1.
    pub page: u64,
}

/// `GET /api/health/checks/alarms`: 200 `{"status":"ok"}` or 503 with the alarms in effect.
/// `status` is required, so an unrelated JSON body never reads as "no alarms".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Alarms {
    /// `status`: `ok` or `failed` (checked by [`Alarms::validate`]).
    pub status: String,
    /// `alarms`: resource alarms in effect in the cluster (empty when `status` is `ok`).
    #[serde(default)]
    pub alarms: Vec<Alarm>,
}

impl Alarms {
    /// Checks that the answer is one of the two shapes RabbitMQ gives: `ok` without alarms, or
    /// `failed` with at least one.
    ///
    /// # Errors
    /// A description of the unexpected shape.
    pub fn validate(&self) -> Result<(), String> {
        match (self.status.as_str(), self.alarms.is_empty()) {
            ("ok", true) | ("failed", false) => Ok(()),
            ("failed", true) => Err("status \"failed\" without any alarm listed".to_owned()),
            ("ok", false) => Err("status \"ok\" with alarms listed".to_owned()),
            (other, _) => Err(format!(
                "unexpected status {other:?}, expected \"ok\" or \"failed\""
            )),
        }
    }
}

/// One resource alarm from `/api/health/checks/alarms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Alarm {
    /// `node` on which the alarm is raised.
    pub node: String,
    /// `resource`: `memory`, `disk space` or `file descriptors`.
    pub resource: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/3.10/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_overview_of_3_10() {
        let o: Overview = serde_json::from_str(&fixture("overview.json")).unwrap();
        assert_eq!(o.rabbitmq_version.as_deref(), Some("3.10.8"));
        let t = o.object_totals.unwrap();
        assert_eq!(t.queues, Some(3));
        assert_eq!(t.exchanges, Some(14));
        assert_eq!(o.queue_totals.unwrap().messages_ready, Some(5));
    }

    #[test]
    fn parses_full_nodes_of_3_10() {
        let nodes: Vec<Node> = serde_json::from_str(&fixture("nodes.json")).unwrap();
        assert_eq!(nodes.len(), 1);
        let n = &nodes[0];
        assert!(n.name.starts_with("rabbitmq-watch-"));
        assert_eq!(n.running, Some(true));
        assert_eq!(n.mem_alarm, Some(false));
        assert!(n.mem_used.unwrap() > 0);
        assert!(n.mem_limit.unwrap() > n.mem_used.unwrap());
        assert_eq!(n.partitions.as_deref(), Some(&[][..]));
    }

    #[test]
    fn down_node_has_unknown_fields_not_zero() {
        let json = r#"[{"name":"rabbit@n3","type":"disc","running":false,"cluster_links":[]}]"#;
        let nodes: Vec<Node> = serde_json::from_str(json).unwrap();
        assert_eq!(nodes[0].running, Some(false));
        assert_eq!(nodes[0].mem_used, None);
        assert_eq!(nodes[0].partitions, None);
    }

    #[test]
    fn parses_queue_page_of_3_10() {
        let page: Page<Queue> = serde_json::from_str(&fixture("queues-page.json")).unwrap();
        assert_eq!(page.page_count, 1);
        let orders = page.items.iter().find(|q| q.name == "orders").unwrap();
        assert_eq!(orders.vhost, "/");
        assert_eq!(orders.messages_ready, Some(5));
        assert_eq!(orders.consumers, Some(0));
        assert_eq!(orders.queue_type.as_deref(), Some("classic"));
    }

    #[test]
    fn parses_full_queue_listing_of_3_10() {
        let queues: Vec<Queue> = serde_json::from_str(&fixture("queues-full.json")).unwrap();
        assert_eq!(queues.len(), 3);
    }

    #[test]
    fn queue_without_stats_yet_is_unknown() {
        // Seen on 3.10 right after declaring a quorum queue.
        let json = r#"{"items":[{"name":"payments.q","type":"quorum","vhost":"/"}],"page":1,"page_count":1}"#;
        let page: Page<Queue> = serde_json::from_str(json).unwrap();
        assert_eq!(page.items[0].messages, None);
        assert_eq!(page.items[0].consumers, None);
    }

    #[test]
    fn parses_alarm_checks() {
        let ok: Alarms = serde_json::from_str(&fixture("alarms-ok.json")).unwrap();
        assert_eq!(ok.status, "ok");
        assert!(ok.alarms.is_empty());
        let failed: Alarms = serde_json::from_str(&fixture("alarms-failed.json")).unwrap();
        assert_eq!(failed.status, "failed");
        assert_eq!(failed.alarms.len(), 1);
        assert_eq!(failed.alarms[0].resource, "memory");
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(failed.validate(), Ok(()));
    }

    #[test]
    fn unrelated_json_is_not_read_as_no_alarms() {
        assert!(serde_json::from_str::<Alarms>(r#"{"error":"service_unavailable"}"#).is_err());
        let odd: Alarms = serde_json::from_str(r#"{"status":"failed","reason":"x"}"#).unwrap();
        assert!(odd.validate().is_err());
    }
}
