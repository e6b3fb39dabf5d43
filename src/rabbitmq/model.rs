//! Serde types for the management API responses the sidecar reads.
//!
//! Every field the broker may omit is an `Option`: RabbitMQ leaves fields out while a queue's
//! statistics are not yet emitted, on 3.13's reduced `/api/queues`, and on 4.x with
//! `management_agent.disable_metrics_collector = true`. `None` means "unknown", never 0.
//! Unknown fields are ignored, so newer brokers parse.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Reads a field as `T` when it has `T`'s shape and as unknown (`None`) otherwise (null, `""`,
/// an unexpected type), so one odd field never fails a whole page.
pub(crate) fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        // The common unknown, answered without building (and formatting) a type error: the
        // broker sends null for unset policies and an empty queue's head timestamp.
        Value::Null => Ok(None),
        value => Ok(serde_json::from_value(value).ok()),
    }
}

/// `GET /api/overview`: cluster-wide facts and totals.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Overview {
    /// `cluster_name`: the cluster's name (settable with `rabbitmqctl set_cluster_name`).
    #[serde(deserialize_with = "lenient")]
    pub cluster_name: Option<String>,
    /// `rabbitmq_version` of the node that answered.
    #[serde(deserialize_with = "lenient")]
    pub rabbitmq_version: Option<String>,
    /// `erlang_version` of the node that answered.
    #[serde(deserialize_with = "lenient")]
    pub erlang_version: Option<String>,
    /// `management_version` of the node that answered.
    #[serde(deserialize_with = "lenient")]
    pub management_version: Option<String>,
    /// `node`: name of the node that answered, e.g. `rabbit@host`.
    #[serde(deserialize_with = "lenient")]
    pub node: Option<String>,
    /// `object_totals`: cluster-wide object counts.
    #[serde(deserialize_with = "lenient")]
    pub object_totals: Option<ObjectTotals>,
    /// `queue_totals`: messages summed over all queues.
    #[serde(deserialize_with = "lenient")]
    pub queue_totals: Option<QueueTotals>,
    /// `message_stats`: cluster-wide message counters (channels' publishes, deliveries, …).
    #[serde(deserialize_with = "lenient")]
    pub message_stats: Option<MessageStats>,
    /// `disable_stats`: whether the management plugin collects no statistics (4.x
    /// `management_agent.disable_metrics_collector`, or `management.disable_stats`).
    #[serde(deserialize_with = "lenient")]
    pub disable_stats: Option<bool>,
    /// `churn_rates`: connections and channels opened and closed, cluster-wide (absent when
    /// statistics are disabled).
    #[serde(deserialize_with = "lenient")]
    pub churn_rates: Option<ChurnRates>,
    /// `listeners`: every running member's listeners (answered even with statistics off).
    #[serde(deserialize_with = "lenient")]
    pub listeners: Option<Vec<Listener>>,
}

/// One element of `/api/overview` `listeners`: a protocol listener running on a member
/// (e.g. `{"node":"rabbit@a","protocol":"amqp","ip_address":"::","port":5672,…}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Listener {
    /// `node` the listener runs on.
    #[serde(deserialize_with = "lenient")]
    pub node: Option<String>,
    /// `protocol`, as the protocol-listener health check names it: `amqp`, `amqp/ssl`,
    /// `clustering`, `http`, `https`, `http/prometheus`, `mqtt`, `stomp`, …
    #[serde(deserialize_with = "lenient")]
    pub protocol: Option<String>,
}

impl Overview {
    /// Whether statistics are known to be collected: then a counter missing from
    /// `message_stats` has simply not counted anything yet (0).
    pub fn stats_enabled(&self) -> bool {
        self.disable_stats == Some(false)
    }
}

/// `message_stats` of a queue (`/api/queues`) or of the cluster (`/api/overview`): counters
/// since the statistics entry was created (they restart at 0 when it is recreated, e.g. after
/// a node restart). RabbitMQ leaves out a counter until it first counts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MessageStats {
    /// `publish`: messages published (to the queue, or by all channels).
    #[serde(deserialize_with = "lenient")]
    pub publish: Option<u64>,
    /// `deliver`: messages delivered to consumers in manual acknowledgement mode.
    #[serde(deserialize_with = "lenient")]
    pub deliver: Option<u64>,
    /// `deliver_no_ack`: messages delivered to consumers in automatic acknowledgement mode.
    #[serde(deserialize_with = "lenient")]
    pub deliver_no_ack: Option<u64>,
    /// `get`: messages fetched with basic.get in manual acknowledgement mode.
    #[serde(deserialize_with = "lenient")]
    pub get: Option<u64>,
    /// `get_no_ack`: messages fetched with basic.get in automatic acknowledgement mode.
    #[serde(deserialize_with = "lenient")]
    pub get_no_ack: Option<u64>,
    /// `get_empty`: basic.get calls that found the queue empty.
    #[serde(deserialize_with = "lenient")]
    pub get_empty: Option<u64>,
    /// `ack`: messages acknowledged by consumers.
    #[serde(deserialize_with = "lenient")]
    pub ack: Option<u64>,
    /// `redeliver`: deliveries of messages that had been delivered before (flag `redelivered`).
    #[serde(deserialize_with = "lenient")]
    pub redeliver: Option<u64>,
    /// `confirm`: publisher confirms sent (cluster only).
    #[serde(deserialize_with = "lenient")]
    pub confirm: Option<u64>,
    /// `return_unroutable`: mandatory messages returned as unroutable (cluster only).
    #[serde(deserialize_with = "lenient")]
    pub return_unroutable: Option<u64>,
    /// `drop_unroutable`: non-mandatory messages dropped as unroutable (cluster only).
    #[serde(deserialize_with = "lenient")]
    pub drop_unroutable: Option<u64>,
}

/// `churn_rates` of `/api/overview`: connections and channels opened and closed since the
/// statistics started (cluster-wide counters; the sidecar takes rates over its own window
/// rather than the management plugin's `*_details.rate`, which jumps between samples).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChurnRates {
    /// `connection_created`: connections opened.
    #[serde(deserialize_with = "lenient")]
    pub connection_created: Option<u64>,
    /// `connection_closed`: connections closed.
    #[serde(deserialize_with = "lenient")]
    pub connection_closed: Option<u64>,
    /// `channel_created`: channels opened.
    #[serde(deserialize_with = "lenient")]
    pub channel_created: Option<u64>,
    /// `channel_closed`: channels closed.
    #[serde(deserialize_with = "lenient")]
    pub channel_closed: Option<u64>,
}

/// `object_totals` of `/api/overview`: number of objects in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ObjectTotals {
    /// `connections`: open client connections.
    #[serde(deserialize_with = "lenient")]
    pub connections: Option<u64>,
    /// `channels`: open channels.
    #[serde(deserialize_with = "lenient")]
    pub channels: Option<u64>,
    /// `exchanges`: declared exchanges, built-in ones included.
    #[serde(deserialize_with = "lenient")]
    pub exchanges: Option<u64>,
    /// `queues`: declared queues.
    #[serde(deserialize_with = "lenient")]
    pub queues: Option<u64>,
    /// `consumers`: consumers over all queues.
    #[serde(deserialize_with = "lenient")]
    pub consumers: Option<u64>,
}

/// `queue_totals` of `/api/overview`: message counts summed over all queues.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct QueueTotals {
    /// `messages`: ready + unacknowledged.
    #[serde(deserialize_with = "lenient")]
    pub messages: Option<u64>,
    /// `messages_ready`: waiting to be delivered.
    #[serde(deserialize_with = "lenient")]
    pub messages_ready: Option<u64>,
    /// `messages_unacknowledged`: delivered, not yet acknowledged.
    #[serde(deserialize_with = "lenient")]
    pub messages_unacknowledged: Option<u64>,
}

/// The fields of `/api/overview` the sidecar asks for (`columns=`).
pub const OVERVIEW_COLUMNS: &str = "cluster_name,rabbitmq_version,erlang_version,management_version,node,object_totals,queue_totals,message_stats,disable_stats,churn_rates,listeners";

/// One element of `GET /api/nodes`: a cluster member as seen by the node that answered.
///
/// A member that is down appears with `name`, `type`, `running: false` and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Node {
    /// `name`, e.g. `rabbit@host`.
    pub name: String,
    /// `running`: whether the answering node sees this member running.
    #[serde(deserialize_with = "lenient")]
    pub running: Option<bool>,
    /// `type`: `disc` or `ram`.
    #[serde(rename = "type")]
    #[serde(deserialize_with = "lenient")]
    pub node_type: Option<String>,
    /// `mem_used`: memory used in bytes, as the memory alarm counts it.
    #[serde(deserialize_with = "lenient")]
    pub mem_used: Option<u64>,
    /// `mem_limit`: memory high watermark in bytes; above it publishers are blocked.
    #[serde(deserialize_with = "lenient")]
    pub mem_limit: Option<u64>,
    /// `mem_alarm`: whether the memory alarm is in effect on this node.
    #[serde(deserialize_with = "lenient")]
    pub mem_alarm: Option<bool>,
    /// `disk_free`: free disk space in bytes on the data directory's partition.
    #[serde(deserialize_with = "lenient")]
    pub disk_free: Option<u64>,
    /// `disk_free_limit`: free-disk low watermark in bytes; below it publishers are blocked.
    #[serde(deserialize_with = "lenient")]
    pub disk_free_limit: Option<u64>,
    /// `disk_free_alarm`: whether the disk alarm is in effect on this node.
    #[serde(deserialize_with = "lenient")]
    pub disk_free_alarm: Option<bool>,
    /// `fd_used`: open file descriptors.
    #[serde(deserialize_with = "lenient")]
    pub fd_used: Option<u64>,
    /// `fd_total`: file descriptor limit.
    #[serde(deserialize_with = "lenient")]
    pub fd_total: Option<u64>,
    /// `proc_used`: Erlang processes.
    #[serde(deserialize_with = "lenient")]
    pub proc_used: Option<u64>,
    /// `proc_total`: Erlang process limit.
    #[serde(deserialize_with = "lenient")]
    pub proc_total: Option<u64>,
    /// `uptime`: milliseconds since the node started.
    #[serde(deserialize_with = "lenient")]
    pub uptime: Option<u64>,
    /// `mnesia_disk_tx_count`: Mnesia disk transactions since the node's Mnesia started. Mnesia
    /// stops and starts with the RabbitMQ application (`stop_app`/`start_app`, autoheal,
    /// `pause_minority` recovery) while `uptime` (the Erlang VM's) goes on: a drop of this
    /// counter is an application restart (verified on 3.10.8: 12 before `stop_app`, 0 after
    /// `start_app`, uptime still rising). Absent on versions without Mnesia statistics.
    #[serde(deserialize_with = "lenient")]
    pub mnesia_disk_tx_count: Option<u64>,
    /// `partitions`: names of nodes this node is partitioned from. Empty on 4.3+ always; absent
    /// when stats are disabled.
    #[serde(deserialize_with = "lenient")]
    pub partitions: Option<Vec<String>>,
    /// `cluster_links`: the node's established Erlang distribution links, one per peer it is
    /// connected to (`[]` on a single node; absent when statistics are disabled).
    #[serde(deserialize_with = "lenient")]
    pub cluster_links: Option<Vec<ClusterLink>>,
    /// `applications`: the OTP applications running on the node, with their versions (`rabbit`
    /// gives the RabbitMQ version, `kernel` the Erlang/OTP runtime's).
    #[serde(deserialize_with = "lenient")]
    pub applications: Option<Vec<Application>>,
    /// `connection_created`: connections opened on this node since its statistics started.
    #[serde(deserialize_with = "lenient")]
    pub connection_created: Option<u64>,
    /// `connection_closed`: connections closed on this node.
    #[serde(deserialize_with = "lenient")]
    pub connection_closed: Option<u64>,
    /// `channel_created`: channels opened on this node.
    #[serde(deserialize_with = "lenient")]
    pub channel_created: Option<u64>,
    /// `channel_closed`: channels closed on this node.
    #[serde(deserialize_with = "lenient")]
    pub channel_closed: Option<u64>,
    /// The Erlang runtime's CPU counters, from the node's rabbitmq_prometheus `/metrics`
    /// (`rabbitmq.source: prometheus`); `/api/nodes` has none, so `None` with the management
    /// source.
    #[serde(skip)]
    pub cpu: Option<CpuCounters>,
}

/// A node's Erlang runtime CPU counters (rabbitmq_prometheus `/metrics`): utilisation is
/// Δ`runtime_ms` ÷ (Δ`wallclock_ms` × `schedulers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuCounters {
    /// `erlang_vm_statistics_runtime_milliseconds`: CPU time of the runtime's threads.
    pub runtime_ms: u64,
    /// `erlang_vm_statistics_wallclock_time_milliseconds`: wall time since the VM started.
    pub wallclock_ms: u64,
    /// `erlang_vm_schedulers_online`.
    pub schedulers: u64,
}

impl Node {
    /// The version of OTP application `name` in `applications` (`rabbit`: RabbitMQ's version;
    /// `kernel`: the Erlang/OTP runtime's kernel, which changes with the OTP release).
    pub fn application_version(&self, name: &str) -> Option<&str> {
        self.applications
            .as_ref()?
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.version.as_str())
    }
}

/// One element of a node's `cluster_links`: an established Erlang distribution link.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClusterLink {
    /// `name`: the peer node, e.g. `rabbit@n2`.
    pub name: String,
}

/// One element of a node's `applications`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Application {
    /// `name`, e.g. `rabbit`, `kernel`.
    pub name: String,
    /// `version`, e.g. `3.10.8`.
    pub version: String,
}

/// The fields of `/api/nodes` the sidecar asks for (`columns=`).
pub const NODE_COLUMNS: &str = "name,running,type,mem_used,mem_limit,mem_alarm,disk_free,disk_free_limit,disk_free_alarm,fd_used,fd_total,proc_used,proc_total,uptime,mnesia_disk_tx_count,partitions,cluster_links,applications,connection_created,connection_closed,channel_created,channel_closed";

pub use super::queue::{
    Queue, QueueSettings, QueueStats, Replication, SETTING_KEYS, Setting, Settings,
};

/// The fields of `/api/queues` the sidecar asks for (`columns=`).
///
/// Deliberately left out, to keep each poll small (bytes dominate the broker's cost at many
/// queues): `state`, and the sums `messages` and `message_bytes` (derived from their ready and
/// unacknowledged parts, see [`Queue::total_messages`]), `consumer_utilisation` (its 3.9+ name
/// `consumer_capacity` is read), `message_stats.get_empty`.
pub const QUEUE_COLUMNS: &str = "vhost,name,type,node,durable,auto_delete,exclusive,arguments,policy,operator_policy,effective_policy_definition,messages_ready,messages_unacknowledged,messages_persistent,message_bytes_ready,message_bytes_unacknowledged,consumers,consumer_capacity,memory,head_message_timestamp,message_stats.publish,message_stats.deliver,message_stats.deliver_no_ack,message_stats.get,message_stats.get_no_ack,message_stats.ack,message_stats.redeliver,members,online,leader,slave_nodes,synchronised_slave_nodes,delivery_limit,messages_dlx";

/// The columns of the queue listing with the prometheus source: identity, placement and
/// settings, no statistics (asked with `disable_stats=true`, which saves the broker most of
/// the listing's cost).
pub const QUEUE_SETTINGS_COLUMNS: &str = "vhost,name,type,node,durable,auto_delete,exclusive,arguments,policy,operator_policy,effective_policy_definition,state,members,online,leader,slave_nodes,synchronised_slave_nodes";

/// One element of `GET /api/exchanges/{vhost}/{name}/bindings/source?columns=destination,destination_type`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Binding {
    /// `destination`: the queue (or exchange) name bound.
    pub destination: String,
    /// `destination_type`: `queue` or `exchange`.
    pub destination_type: String,
}

/// Where the dead-lettered messages of `queues` go: `(exchanges, queues)`, both as sorted
/// (vhost, name) sets. A queue with a dead-letter exchange other than the default exchange
/// names that exchange (its bound queues receive the messages); a queue whose dead-letter
/// exchange is the default exchange (`""`) with a `dead-letter-routing-key` names the queue
/// of that name directly. Settings come from `x-` arguments or the effective policy.
pub fn dead_letter_targets(queues: &[Queue]) -> DeadLetterTargets {
    let mut targets = DeadLetterTargets::default();
    for q in queues {
        add_dead_letter_target(&mut targets, q);
    }
    targets
}

/// Adds where `q`'s dead-lettered messages go to `targets` (see [`dead_letter_targets`]), for
/// a listing seen one queue at a time.
pub fn add_dead_letter_target(targets: &mut DeadLetterTargets, q: &Queue) {
    let (exchanges, direct) = targets;
    match (
        q.setting("dead-letter-exchange"),
        q.setting("dead-letter-routing-key"),
    ) {
        (Some(""), Some(key)) => {
            direct.insert((q.vhost.clone(), key.to_owned()));
        }
        (Some(""), None) | (None, _) => {}
        (Some(exchange), _) => {
            exchanges.insert((q.vhost.clone(), exchange.to_owned()));
        }
    }
}

/// `(dead-letter exchanges, queues named directly)`, each a set of (vhost, name): see
/// [`dead_letter_targets`].
pub type DeadLetterTargets = (
    std::collections::BTreeSet<(String, String)>,
    std::collections::BTreeSet<(String, String)>,
);

/// One element of `GET /api/exchanges?columns=vhost,name`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Exchange {
    /// `vhost` the exchange lives in.
    pub vhost: String,
    /// `name` of the exchange.
    pub name: String,
}

/// One element of `GET /api/vhosts?columns=name`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Vhost {
    /// `name` of the virtual host.
    pub name: String,
}

/// Whether this broker version keeps the full queue fields under `/api/queues/detailed`
/// (3.13 and later, where `/api/queues` returns a reduced set). `version` is e.g. `3.13.7`.
pub fn has_detailed_queues(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (3, 13)
}

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

/// Whether `resource`'s alarm is in effect on `node`: 1 when either the node's own flag or the
/// alarm check says so, unknown when neither source answered. Pass `check: None` for a node
/// that is not running: the check only covers running nodes.
pub fn alarm_in_effect(
    node: &str,
    node_flag: Option<bool>,
    check: Option<&Alarms>,
    resource: &str,
) -> Option<bool> {
    let from_check = check.map(|c| {
        c.alarms
            .iter()
            .any(|a| a.node == node && a.resource == resource)
    });
    match (node_flag, from_check) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(false) || b.unwrap_or(false)),
    }
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
        assert_eq!(orders.messages_ready, Some(3));
        assert_eq!(orders.consumers, Some(0));
        assert_eq!(orders.queue_type.as_deref(), Some("classic"));
        assert_eq!(orders.limit("max-length"), Some(1000));
        let stats = orders.message_stats().unwrap();
        assert_eq!(
            (stats.publish, stats.get, stats.redeliver),
            (Some(5), Some(3), Some(2))
        );
        let prio = page.items.iter().find(|q| q.name == "prio").unwrap();
        assert_eq!(prio.limit("message-ttl"), Some(60_000));
        assert_eq!(prio.messages_ready, Some(4));
        assert!(prio.head_message_timestamp.is_some());
        let emails = page.items.iter().find(|q| q.name == "emails").unwrap();
        assert_eq!(emails.settings().policy.as_deref(), Some("lim"));
        assert_eq!(emails.setting("overflow"), Some("reject-publish"));
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
    fn detailed_queue_listing_from_3_13_on() {
        assert!(!has_detailed_queues("3.10.8"));
        assert!(!has_detailed_queues("3.12.14"));
        assert!(has_detailed_queues("3.13.0"));
        assert!(has_detailed_queues("4.1.2"));
        assert!(!has_detailed_queues("garbage"));
    }

    #[test]
    fn odd_field_types_read_as_unknown_without_failing_the_page() {
        let json = r#"{"items":[{"name":"q","vhost":"/","consumer_utilisation":"","messages":"many","head_message_timestamp":null,"arguments":[]}],"page":1,"page_count":1}"#;
        let page: Page<Queue> = serde_json::from_str(json).unwrap();
        let q = &page.items[0];
        assert_eq!(q.consumer_utilisation, None);
        assert_eq!(q.messages, None);
        assert_eq!(q.head_message_timestamp, None);
        assert_eq!(q.settings().arguments, None);
    }

    #[test]
    fn limits_take_the_smaller_of_argument_and_policy() {
        let q: Queue = serde_json::from_str(
            r#"{"name":"q","vhost":"/","arguments":{"x-max-length":1000,"x-overflow":"reject-publish"},"effective_policy_definition":{"max-length":500,"max-length-bytes":1048576,"overflow":"drop-head","dead-letter-exchange":"dlx"}}"#,
        )
        .unwrap();
        assert_eq!(q.limit("max-length"), Some(500));
        assert_eq!(q.limit("max-length-bytes"), Some(1_048_576));
        assert_eq!(q.limit("message-ttl"), None);
        assert_eq!(q.setting("overflow"), Some("reject-publish"));
        assert_eq!(q.setting("dead-letter-exchange"), Some("dlx"));
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

    fn check(alarms: &[(&str, &str)]) -> Alarms {
        Alarms {
            status: if alarms.is_empty() { "ok" } else { "failed" }.to_owned(),
            alarms: alarms
                .iter()
                .map(|(n, r)| Alarm {
                    node: n.to_string(),
                    resource: r.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn alarm_check_wins_over_a_lagging_node_flag() {
        let c = check(&[("rabbit@a", "memory")]);
        assert_eq!(
            alarm_in_effect("rabbit@a", Some(false), Some(&c), "memory"),
            Some(true)
        );
        assert_eq!(
            alarm_in_effect("rabbit@b", Some(false), Some(&c), "memory"),
            Some(false)
        );
        assert_eq!(
            alarm_in_effect("rabbit@a", Some(false), Some(&c), "disk space"),
            Some(false)
        );
    }

    #[test]
    fn alarm_is_unknown_when_no_source_answered() {
        assert_eq!(alarm_in_effect("rabbit@a", None, None, "memory"), None);
        assert_eq!(
            alarm_in_effect("rabbit@a", Some(true), None, "memory"),
            Some(true)
        );
        assert_eq!(
            alarm_in_effect("rabbit@a", None, Some(&check(&[])), "memory"),
            Some(false)
        );
    }
}
