//! The second source of queue and node figures: every cluster member's rabbitmq_prometheus
//! plugin (port 15692). Per member, `GET /metrics/detailed` with the per-queue families
//! ([`QUEUE_FAMILIES`], plus [`DELIVERY_FAMILY`] where the node has it: 4.0.5 verified) and
//! `GET /metrics` (node memory and limit, disk and limit, file descriptors, alarms). Both are
//! node-local, so every member is read ([`Reader`]) and the answers are merged into the
//! management API's queue and node listings ([`apply_queues`], [`apply_nodes`]): a queue's
//! figures come from the member that hosts it (`node` in `/api/queues`), a node's from the
//! member whose `rabbitmq_identity_info` names it.
//!
//! The figures fill the same [`Queue`] and [`Node`] fields the management statistics fill,
//! so the exported families, alert fields and detectors do not depend on the source. A figure
//! this source cannot give (the publish counter, partitions) stays `None`.
//! Malformed or truncated answers and duplicate samples are [`Error::Decode`] failures of the
//! endpoint; what they would have given stays absent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Url;

use super::client::BuildError;
use super::exposition::{self, Incremental, ParseError, Sample};
use super::model::{ChurnRates, CpuCounters, MessageStats, Node, Overview, Queue};
use super::{Body, Client, Endpoint, Error, Fetched};
use crate::config::{ClusterConfig, RabbitmqConfig};
use crate::rabbitmq::members::expand_template;

/// The `/metrics/detailed` families read on every member (all RabbitMQ versions with the
/// plugin, 3.10.8 and 4.0.5 verified).
pub const QUEUE_FAMILIES: [&str; 3] = [
    "queue_coarse_metrics",
    "queue_consumer_count",
    "queue_metrics",
];

/// The per-queue delivery counters (served by RabbitMQ 4.0.5, verified live; not by 3.10.8).
/// Asked for too; an older node answers
/// without them (or with 400/404, after which it is asked without them).
pub const DELIVERY_FAMILY: &str = "queue_delivery_metrics";

/// One queue's figures from one member's `/metrics/detailed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueFigures {
    /// `rabbitmq_detailed_queue_messages_ready`.
    pub messages_ready: Option<u64>,
    /// `rabbitmq_detailed_queue_messages_unacked`.
    pub messages_unacknowledged: Option<u64>,
    /// `rabbitmq_detailed_queue_consumers`.
    pub consumers: Option<u64>,
    /// `rabbitmq_detailed_queue_process_memory_bytes`.
    pub memory: Option<u64>,
    /// `rabbitmq_detailed_queue_messages_persistent`.
    pub messages_persistent: Option<u64>,
    /// `rabbitmq_detailed_queue_messages_ready_bytes`.
    pub message_bytes_ready: Option<u64>,
    /// `rabbitmq_detailed_queue_messages_unacked_bytes`.
    pub message_bytes_unacknowledged: Option<u64>,
    /// `rabbitmq_detailed_queue_consumer_capacity`.
    pub consumer_capacity: Option<f64>,
    /// `rabbitmq_detailed_queue_consumer_utilisation`.
    pub consumer_utilisation: Option<f64>,
    /// `rabbitmq_detailed_queue_head_message_timestamp` (`NaN`: no timestamped head: `None`).
    pub head_message_timestamp: Option<f64>,
    /// The delivery counters (`queue_delivery_metrics`); `None` when the node has none.
    pub counters: Option<MessageStats>,
}

/// One node's figures from its own `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFigures {
    /// `rabbitmq_identity_info{rabbitmq_node}`: the node that answered.
    pub node: Option<String>,
    /// `rabbitmq_process_resident_memory_bytes`.
    pub mem_used: Option<u64>,
    /// `rabbitmq_resident_memory_limit_bytes`.
    pub mem_limit: Option<u64>,
    /// `rabbitmq_alarms_memory_used_watermark` (1: in effect).
    pub mem_alarm: Option<bool>,
    /// `rabbitmq_disk_space_available_bytes`.
    pub disk_free: Option<u64>,
    /// `rabbitmq_disk_space_available_limit_bytes`.
    pub disk_free_limit: Option<u64>,
    /// `rabbitmq_alarms_free_disk_space_watermark` (1: in effect).
    pub disk_free_alarm: Option<bool>,
    /// `rabbitmq_process_open_fds`.
    pub fd_used: Option<u64>,
    /// `rabbitmq_process_max_fds`.
    pub fd_total: Option<u64>,
    /// `rabbitmq_erlang_processes_used`.
    pub proc_used: Option<u64>,
    /// `rabbitmq_erlang_processes_limit`.
    pub proc_total: Option<u64>,
    /// `rabbitmq_erlang_uptime_seconds`, in milliseconds (the management API's unit).
    pub uptime: Option<u64>,
    /// `rabbitmq_channels`: channels open on this node.
    pub channels: Option<u64>,
    /// `rabbitmq_consumers`: consumers on the queues of this node.
    pub consumers: Option<u64>,
    /// `rabbitmq_queue_messages_ready`: ready messages summed over this node's queues.
    pub messages_ready: Option<u64>,
    /// `rabbitmq_queue_messages_unacked`: unacknowledged messages summed over this node's
    /// queues.
    pub messages_unacknowledged: Option<u64>,
    /// `erlang_vm_statistics_runtime_milliseconds`: CPU time of the Erlang runtime's threads.
    pub runtime_ms: Option<u64>,
    /// `erlang_vm_statistics_wallclock_time_milliseconds`: wall time since the VM started.
    pub wallclock_ms: Option<u64>,
    /// `erlang_vm_schedulers_online`.
    pub schedulers_online: Option<u64>,
    /// `rabbitmq_connections_opened_total`: connections opened on this node since it started.
    pub connections_opened: Option<u64>,
    /// `rabbitmq_connections_closed_total`: connections closed on this node.
    pub connections_closed: Option<u64>,
    /// `rabbitmq_channels_opened_total`: channels opened on this node.
    pub channels_opened: Option<u64>,
    /// `rabbitmq_channels_closed_total`: channels closed on this node.
    pub channels_closed: Option<u64>,
}

/// Queue figures by (vhost, queue name), as one member answered.
pub type QueueMap = HashMap<(String, String), QueueFigures>;

fn put<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("duplicate sample of {name}"));
    }
    *slot = Some(value);
    Ok(())
}

/// A gauge that must be a non-negative whole number (counts, bytes).
fn count(s: &Sample<'_>) -> Result<u64, String> {
    let v = s.value;
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(format!("{}: {v} is not a count", s.name))
    }
}

/// Parses one member's `/metrics/detailed` into per-queue figures. Families other than the
/// per-queue ones are skipped.
///
/// # Errors
/// [`ParseError`] for a malformed or truncated exposition, a queue sample without `vhost`
/// or `queue`, a count that is negative or fractional, or a duplicate sample.
pub fn parse_queues(text: &str) -> Result<QueueMap, ParseError> {
    let mut map = QueueMap::new();
    exposition::parse(text, |s| queue_sample(&mut map, &s))?;
    Ok(map)
}

/// Adds one sample of `/metrics/detailed` to `map`: a per-queue family's sample fills its
/// queue's field, any other family is skipped.
///
/// # Errors
/// A queue sample without `vhost` or `queue`, a count that is negative or fractional, or a
/// duplicate sample (the text for [`ParseError`]).
fn queue_sample(map: &mut QueueMap, s: &Sample<'_>) -> Result<(), String> {
    let Some(field) = s.name.strip_prefix("rabbitmq_detailed_queue_") else {
        return Ok(());
    };
    if !is_queue_field(field) {
        return Ok(());
    }
    let (Some(vhost), Some(queue)) = (s.label("vhost"), s.label("queue")) else {
        return Err(format!("{}: no vhost or queue label", s.name));
    };
    let q = map.entry((vhost.to_owned(), queue.to_owned())).or_default();
    let name = s.name;
    match field {
        "messages_ready" => put(&mut q.messages_ready, count(s)?, name),
        "messages_unacked" => put(&mut q.messages_unacknowledged, count(s)?, name),
        "consumers" => put(&mut q.consumers, count(s)?, name),
        "process_memory_bytes" => put(&mut q.memory, count(s)?, name),
        "messages_persistent" => put(&mut q.messages_persistent, count(s)?, name),
        "messages_ready_bytes" => put(&mut q.message_bytes_ready, count(s)?, name),
        "messages_unacked_bytes" => put(&mut q.message_bytes_unacknowledged, count(s)?, name),
        "consumer_capacity" => put(&mut q.consumer_capacity, s.value, name),
        "consumer_utilisation" => put(&mut q.consumer_utilisation, s.value, name),
        "head_message_timestamp" => {
            // NaN: the head message has no timestamp (or the queue is empty).
            if s.value.is_nan() {
                Ok(())
            } else {
                put(&mut q.head_message_timestamp, s.value, name)
            }
        }
        counter => {
            let c = q.counters.get_or_insert_with(MessageStats::default);
            let v = count(s)?;
            match counter {
                "get_ack_total" => put(&mut c.get, v, name),
                "get_total" => put(&mut c.get_no_ack, v, name),
                "messages_delivered_ack_total" => put(&mut c.deliver, v, name),
                "messages_delivered_total" => put(&mut c.deliver_no_ack, v, name),
                "messages_redelivered_total" => put(&mut c.redeliver, v, name),
                "messages_acked_total" => put(&mut c.ack, v, name),
                _ => put(&mut c.get_empty, v, name), // get_empty_total
            }
        }
    }
}

fn is_queue_field(field: &str) -> bool {
    matches!(
        field,
        "messages_ready"
            | "messages_unacked"
            | "consumers"
            | "process_memory_bytes"
            | "messages_persistent"
            | "messages_ready_bytes"
            | "messages_unacked_bytes"
            | "consumer_capacity"
            | "consumer_utilisation"
            | "head_message_timestamp"
            | "get_ack_total"
            | "get_total"
            | "messages_delivered_ack_total"
            | "messages_delivered_total"
            | "messages_redelivered_total"
            | "messages_acked_total"
            | "get_empty_total"
    )
}

/// Parses one member's `/metrics` into its node figures.
///
/// # Errors
/// [`ParseError`] for a malformed or truncated exposition, a figure that is not a count, or a
/// duplicate sample.
pub fn parse_node(text: &str) -> Result<NodeFigures, ParseError> {
    let mut n = NodeFigures::default();
    exposition::parse(text, |s| {
        let name = s.name;
        match name {
            "rabbitmq_identity_info" => match s.label("rabbitmq_node") {
                Some(node) => put(&mut n.node, node.to_owned(), name),
                None => Ok(()),
            },
            "rabbitmq_process_resident_memory_bytes" => put(&mut n.mem_used, count(&s)?, name),
            "rabbitmq_resident_memory_limit_bytes" => put(&mut n.mem_limit, count(&s)?, name),
            "rabbitmq_alarms_memory_used_watermark" => put(&mut n.mem_alarm, count(&s)? > 0, name),
            "rabbitmq_disk_space_available_bytes" => put(&mut n.disk_free, count(&s)?, name),
            "rabbitmq_disk_space_available_limit_bytes" => {
                put(&mut n.disk_free_limit, count(&s)?, name)
            }
            "rabbitmq_alarms_free_disk_space_watermark" => {
                put(&mut n.disk_free_alarm, count(&s)? > 0, name)
            }
            "rabbitmq_process_open_fds" => put(&mut n.fd_used, count(&s)?, name),
            "rabbitmq_process_max_fds" => put(&mut n.fd_total, count(&s)?, name),
            "rabbitmq_erlang_processes_used" => put(&mut n.proc_used, count(&s)?, name),
            "rabbitmq_erlang_processes_limit" => put(&mut n.proc_total, count(&s)?, name),
            "rabbitmq_channels" => put(&mut n.channels, count(&s)?, name),
            "rabbitmq_consumers" => put(&mut n.consumers, count(&s)?, name),
            "rabbitmq_queue_messages_ready" => put(&mut n.messages_ready, count(&s)?, name),
            "rabbitmq_queue_messages_unacked" => {
                put(&mut n.messages_unacknowledged, count(&s)?, name)
            }
            "rabbitmq_erlang_uptime_seconds" => {
                let v = s.value;
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("{name}: {v} is not a duration"));
                }
                put(&mut n.uptime, (v * 1000.0).round() as u64, name)
            }
            "erlang_vm_statistics_runtime_milliseconds" => put(&mut n.runtime_ms, count(&s)?, name),
            "erlang_vm_statistics_wallclock_time_milliseconds" => {
                put(&mut n.wallclock_ms, count(&s)?, name)
            }
            "erlang_vm_schedulers_online" => put(&mut n.schedulers_online, count(&s)?, name),
            "rabbitmq_connections_opened_total" => put(&mut n.connections_opened, count(&s)?, name),
            "rabbitmq_connections_closed_total" => put(&mut n.connections_closed, count(&s)?, name),
            "rabbitmq_channels_opened_total" => put(&mut n.channels_opened, count(&s)?, name),
            "rabbitmq_channels_closed_total" => put(&mut n.channels_closed, count(&s)?, name),
            _ => Ok(()),
        }
    })?;
    Ok(n)
}

/// What one member's plugin answered in one poll.
#[derive(Debug, Clone)]
pub struct MemberRead {
    /// The member (its name under `cluster.*`, else the plugin URL).
    pub member: String,
    /// Its `/metrics/detailed`, parsed.
    pub queues: Fetched<QueueMap>,
    /// Its `/metrics`, parsed.
    pub node: Fetched<NodeFigures>,
    /// Whether its answer had per-queue delivery counters.
    pub delivery_metrics: bool,
}

/// Every member's plugin as read in one poll: the outcome per endpoint (first failure, total
/// bytes, longest read) and each member's answers.
#[derive(Debug, Clone)]
pub struct Read {
    /// `/metrics/detailed` over all members: `Ok(members answered)` or the first failure.
    pub queues: Fetched<usize>,
    /// `/metrics` over all members: `Ok(members answered)` or the first failure.
    pub nodes: Fetched<usize>,
    /// Each member's answers, sorted by member.
    pub members: Vec<MemberRead>,
}

impl Read {
    /// Whether any answering member gave per-queue delivery counters.
    pub fn has_counters(&self) -> bool {
        self.members.iter().any(|m| m.delivery_metrics)
    }

    /// Every member whose read of `endpoint` ([`Endpoint::PrometheusQueues`] or
    /// [`Endpoint::PrometheusNodes`]) failed, with its error, in member order: all of them, not
    /// only the first that [`Read::queues`] / [`Read::nodes`] keep (empty for other endpoints).
    pub fn failures(&self, endpoint: Endpoint) -> Vec<(&str, &Error)> {
        self.members
            .iter()
            .filter_map(|m| {
                let error = match endpoint {
                    Endpoint::PrometheusQueues => m.queues.err(),
                    Endpoint::PrometheusNodes => m.node.err(),
                    _ => None,
                };
                error.map(|e| (m.member.as_str(), e))
            })
            .collect()
    }
}

/// Fills the figure fields of `queues` from `read`: each queue from the member whose node
/// hosts it (`Queue::node`), else from the only member that reports it. A queue no answering
/// member reports keeps its figures `None` (unknown).
pub fn apply_queues(queues: &mut [Queue], read: &Read) {
    let answered: Vec<(Option<&str>, &QueueMap)> = read
        .members
        .iter()
        .filter_map(|m| {
            let node = m.node.ok().and_then(|n| n.node.as_deref());
            m.queues.ok().map(|q| (node, q))
        })
        .collect();
    for queue in queues {
        let key = (queue.vhost.clone(), queue.name.clone());
        let hosted = answered
            .iter()
            .find(|(node, _)| node.is_some() && *node == queue.node.as_deref())
            .and_then(|(_, map)| map.get(&key));
        let figures = hosted.or_else(|| {
            let mut reporting = answered.iter().filter_map(|(_, map)| map.get(&key));
            match (reporting.next(), reporting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        });
        let f = figures.cloned().unwrap_or_default();
        queue.messages_ready = f.messages_ready;
        queue.messages_unacknowledged = f.messages_unacknowledged;
        queue.messages = match (f.messages_ready, f.messages_unacknowledged) {
            (Some(r), Some(u)) => Some(r + u),
            _ => None,
        };
        queue.consumers = f.consumers;
        queue.memory = f.memory;
        queue.messages_persistent = f.messages_persistent;
        queue.message_bytes_ready = f.message_bytes_ready;
        queue.message_bytes_unacknowledged = f.message_bytes_unacknowledged;
        queue.message_bytes = match (f.message_bytes_ready, f.message_bytes_unacknowledged) {
            (Some(r), Some(u)) => Some(r + u),
            _ => None,
        };
        queue.consumer_capacity = f.consumer_capacity;
        queue.consumer_utilisation = f.consumer_utilisation;
        queue.head_message_timestamp = f.head_message_timestamp;
        queue.set_message_stats(f.counters);
    }
}

/// Fills the resource fields of `nodes` from `read`: each node from the member whose
/// `rabbitmq_identity_info` names it; a node no member answered for keeps them `None`.
pub fn apply_nodes(nodes: &mut [Node], read: &Read) {
    for node in nodes {
        let f = read
            .members
            .iter()
            .filter_map(|m| m.node.ok())
            .find(|f| f.node.as_deref() == Some(node.name.as_str()))
            .cloned()
            .unwrap_or_default();
        node.mem_used = f.mem_used;
        node.mem_limit = f.mem_limit;
        node.mem_alarm = f.mem_alarm;
        node.disk_free = f.disk_free;
        node.disk_free_limit = f.disk_free_limit;
        node.disk_free_alarm = f.disk_free_alarm;
        node.fd_used = f.fd_used;
        node.fd_total = f.fd_total;
        node.proc_used = f.proc_used;
        node.proc_total = f.proc_total;
        node.uptime = f.uptime;
        node.cpu = f
            .runtime_ms
            .zip(f.wallclock_ms)
            .zip(f.schedulers_online)
            .map(|((runtime_ms, wallclock_ms), schedulers)| CpuCounters {
                runtime_ms,
                wallclock_ms,
                schedulers,
            });
        // The churn counters: the plugin's where it answered (they also count with management
        // statistics off), else what /api/nodes reported.
        node.connection_created = f.connections_opened.or(node.connection_created);
        node.connection_closed = f.connections_closed.or(node.connection_closed);
        node.channel_created = f.channels_opened.or(node.channel_created);
        node.channel_closed = f.channels_closed.or(node.channel_closed);
    }
}

/// Fills what `/api/overview` lacks without management statistics (`object_totals.channels`
/// and `.consumers`, `queue_totals`, `churn_rates` from the plugin's
/// `rabbitmq_{connections,channels}_{opened,closed}_total`) with the sums of every member's `/metrics` totals, but
/// only when every member read answered and they are `cluster_size` distinct nodes (the
/// members `/api/nodes` lists): a sum over part of the cluster would be too low, so the totals
/// then stay unknown. Figures the overview has are kept.
pub fn apply_overview(overview: &mut Overview, read: &Read, cluster_size: usize) {
    let answered: Vec<&NodeFigures> = read.members.iter().filter_map(|m| m.node.ok()).collect();
    let nodes: BTreeSet<&str> = answered.iter().filter_map(|f| f.node.as_deref()).collect();
    if cluster_size == 0 || answered.len() != read.members.len() || nodes.len() != cluster_size {
        return;
    }
    let sum = |field: fn(&NodeFigures) -> Option<u64>| -> Option<u64> {
        answered.iter().map(|f| field(f)).sum()
    };
    let objects = overview.object_totals.get_or_insert_with(Default::default);
    objects.channels = objects.channels.or_else(|| sum(|f| f.channels));
    objects.consumers = objects.consumers.or_else(|| sum(|f| f.consumers));
    if overview.churn_rates.is_none() {
        overview.churn_rates = Some(ChurnRates {
            connection_created: sum(|f| f.connections_opened),
            connection_closed: sum(|f| f.connections_closed),
            channel_created: sum(|f| f.channels_opened),
            channel_closed: sum(|f| f.channels_closed),
        });
    }
    let totals = overview.queue_totals.get_or_insert_with(Default::default);
    if totals.messages_ready.is_none() && totals.messages_unacknowledged.is_none() {
        totals.messages_ready = sum(|f| f.messages_ready);
        totals.messages_unacknowledged = sum(|f| f.messages_unacknowledged);
        totals.messages = totals
            .messages_ready
            .zip(totals.messages_unacknowledged)
            .map(|(r, u)| r + u);
    }
}

/// The plugin URL of a member whose management API is at `management`: its scheme and host,
/// with the port and path of `rabbitmq.prometheus_url`.
pub fn member_url(management: &Url, prometheus: &Url) -> Url {
    let mut url = management.clone();
    // Management URLs are http(s) with a host: setting the port cannot fail.
    let _ = url.set_port(prometheus.port_or_known_default());
    url.set_path(prometheus.path());
    url
}

/// Reads every member's plugin, concurrently, each request within `rabbitmq.timeout`.
#[derive(Debug)]
pub struct Reader {
    /// `rabbitmq.*`: credentials, CA file, timeout, `prometheus_url`.
    base: RabbitmqConfig,
    /// `cluster.*`: which members there are (`None`: only `rabbitmq.prometheus_url`).
    cluster: Option<ClusterConfig>,
    /// One client per plugin URL, built on first use.
    clients: Mutex<BTreeMap<String, Client>>,
    /// Members whose plugin refused [`DELIVERY_FAMILY`] (400/404): asked without it.
    no_delivery: Mutex<BTreeSet<String>>,
}

impl Reader {
    /// A reader of `base.prometheus_url`, or of every member `cluster` names or discovers.
    ///
    /// # Errors
    /// [`BuildError`] when the client of `rabbitmq.prometheus_url` cannot be built.
    pub fn new(base: RabbitmqConfig, cluster: Option<ClusterConfig>) -> Result<Self, BuildError> {
        let reader = Self {
            base,
            cluster,
            clients: Mutex::new(BTreeMap::new()),
            no_delivery: Mutex::new(BTreeSet::new()),
        };
        reader.client(reader.base.prometheus_url.clone())?;
        Ok(reader)
    }

    fn client(&self, url: Url) -> Result<Client, BuildError> {
        let key = url.to_string();
        if let Some(c) = self.clients.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(c);
        }
        let client = Client::new(&RabbitmqConfig {
            url,
            ..self.base.clone()
        })?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    /// The (member, plugin URL) pairs to read: `cluster.nodes`, or every member in `members`
    /// under `cluster.url_template`, or `rabbitmq.prometheus_url` alone.
    fn targets(&self, members: &BTreeSet<String>) -> Vec<(String, Url)> {
        let prom = &self.base.prometheus_url;
        if let Some(cluster) = &self.cluster {
            if !cluster.nodes.is_empty() {
                return cluster
                    .nodes
                    .iter()
                    .map(|(name, url)| (name.clone(), member_url(url, prom)))
                    .collect();
            }
            if let Some(template) = &cluster.url_template
                && !members.is_empty()
            {
                return members
                    .iter()
                    .filter_map(|m| match expand_template(template, m) {
                        Ok(url) => Some((m.clone(), member_url(&url, prom))),
                        Err(e) => {
                            tracing::warn!(node = %m, error = %e, "cluster.url_template: no plugin URL for this member");
                            None
                        }
                    })
                    .collect();
            }
        }
        vec![(
            crate::config::parse::redact_url_text(prom.as_str()),
            prom.clone(),
        )]
    }

    /// Reads `/metrics/detailed` and `/metrics` of every member (see `Reader::targets`).
    pub async fn read(&self, members: &BTreeSet<String>) -> Read {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (member, url) in self.targets(members) {
            let client = match self.client(url) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(member = %member, error = %e, "no client for this member's rabbitmq_prometheus");
                    continue;
                }
            };
            let with_delivery = !self
                .no_delivery
                .lock()
                .map(|s| s.contains(&member))
                .unwrap_or(false);
            tasks.spawn(async move {
                let (queues, node) = tokio::join!(
                    read_queues(&client, with_delivery),
                    Fetched::timed(read_node(&client)),
                );
                (member, queues, node)
            });
        }
        let mut members = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((member, (queues, refused_delivery), node)) => {
                    if refused_delivery && let Ok(mut s) = self.no_delivery.lock() {
                        s.insert(member.clone());
                    }
                    let delivery_metrics = queues
                        .ok()
                        .is_some_and(|m| m.values().any(|q| q.counters.is_some()));
                    members.push(MemberRead {
                        member,
                        queues,
                        node,
                        delivery_metrics,
                    });
                }
                Err(e) => tracing::error!(error = %e, "rabbitmq_prometheus read task failed"),
            }
        }
        members.sort_by(|a, b| a.member.cmp(&b.member));
        let elapsed = start.elapsed();
        Read {
            queues: combine(members.iter().map(|m| &m.queues), elapsed),
            nodes: combine(members.iter().map(|m| &m.node), elapsed),
            members,
        }
    }
}

/// One endpoint's outcome over all members: the first failure, else how many answered.
fn combine<'a, T: 'a>(
    reads: impl Iterator<Item = &'a Fetched<T>>,
    elapsed: Duration,
) -> Fetched<usize> {
    let mut bytes = 0;
    let mut answered = 0;
    let mut error = None;
    for r in reads {
        bytes += r.bytes;
        match &r.result {
            Ok(_) => answered += 1,
            Err(e) if error.is_none() => error = Some(e.clone()),
            Err(_) => {}
        }
    }
    let result = match error {
        Some(e) => Err(e),
        None => Ok(answered),
    };
    Fetched {
        result,
        duration: elapsed,
        bytes,
    }
}

/// Reads and parses `/metrics/detailed`; the flag says the node refused the delivery family.
async fn read_queues(client: &Client, with_delivery: bool) -> (Fetched<QueueMap>, bool) {
    let start = Instant::now();
    let query = |delivery: bool| -> Vec<(&str, String)> {
        let mut q: Vec<(&str, String)> = QUEUE_FAMILIES
            .iter()
            .map(|f| ("family", (*f).to_owned()))
            .collect();
        if delivery {
            q.push(("family", DELIVERY_FAMILY.to_owned()));
        }
        q
    };
    let mut refused = false;
    let mut answer = stream_queues(client, &query(with_delivery)).await;
    if with_delivery
        && matches!(
            answer,
            Err(Error::Status {
                status: 400 | 404,
                ..
            })
        )
    {
        refused = true;
        answer = stream_queues(client, &query(false)).await;
    }
    let (result, bytes) = match answer {
        Ok(Body { value, bytes }) => (Ok(value), bytes),
        Err(e) => (Err(e), 0),
    };
    let fetched = Fetched {
        result,
        duration: start.elapsed(),
        bytes,
    };
    (fetched, refused)
}

/// Reads `/metrics/detailed` with `query`, parsing it as it arrives ([`Incremental`]): the
/// per-queue figures are kept, the text is not (tens of megabytes at 10,000 queues).
async fn stream_queues(client: &Client, query: &[(&str, String)]) -> Result<Body<QueueMap>, Error> {
    let endpoint = Endpoint::PrometheusQueues;
    let mut map = QueueMap::new();
    let mut parser = Incremental::default();
    let bytes = client
        .exposition_each(endpoint, query, &mut |piece| {
            parser
                .feed(piece, &mut |s| queue_sample(&mut map, &s))
                .map_err(|e| decode(endpoint, e))
        })
        .await?;
    parser.finish().map_err(|e| decode(endpoint, e))?;
    Ok(Body { value: map, bytes })
}

async fn read_node(client: &Client) -> Result<Body<NodeFigures>, Error> {
    let endpoint = Endpoint::PrometheusNodes;
    let body = client.exposition(endpoint, &[]).await?;
    let value = parse_node(&body.value).map_err(|e| decode(endpoint, e))?;
    Ok(Body {
        value,
        bytes: body.bytes,
    })
}

fn decode(endpoint: Endpoint, e: ParseError) -> Error {
    Error::Decode {
        endpoint,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::model::Page;

    const DETAILED_4_OFF: &str =
        include_str!("../../tests/fixtures/4.0.5-stats-off/metrics-detailed.txt");
    const METRICS_4_OFF: &str = include_str!("../../tests/fixtures/4.0.5-stats-off/metrics.txt");
    const PAGE_4_OFF: &str = include_str!("../../tests/fixtures/4.0.5-stats-off/queues-page.json");
    const NODES_4_OFF: &str = include_str!("../../tests/fixtures/4.0.5-stats-off/nodes.json");
    const DETAILED_3: &str = include_str!("../../tests/fixtures/3.10.8/metrics-detailed.txt");
    const METRICS_3: &str = include_str!("../../tests/fixtures/3.10.8/metrics.txt");
    const NODE_4: &str = "rabbitmq-watch-9411-31836@localhost";

    fn member(detailed: &str, metrics: &str) -> MemberRead {
        MemberRead {
            member: "m".to_owned(),
            queues: Fetched::answered(parse_queues(detailed).unwrap()),
            node: Fetched::answered(parse_node(metrics).unwrap()),
            delivery_metrics: false,
        }
    }

    fn read(members: Vec<MemberRead>) -> Read {
        Read {
            queues: Fetched::answered(members.len()),
            nodes: Fetched::answered(members.len()),
            members,
        }
    }

    fn listed() -> Vec<Queue> {
        serde_json::from_str::<Page<Queue>>(PAGE_4_OFF)
            .unwrap()
            .items
    }

    #[test]
    fn recorded_4_0_5_stats_off_merges_into_the_listing() {
        let mut queues = listed();
        apply_queues(
            &mut queues,
            &read(vec![member(DETAILED_4_OFF, METRICS_4_OFF)]),
        );
        let q = |name: &str| queues.iter().find(|q| q.name == name).unwrap();
        let orders = q("orders");
        assert_eq!(orders.messages_ready, Some(7));
        assert_eq!(orders.messages_unacknowledged, Some(0));
        assert_eq!(orders.messages, Some(7));
        assert_eq!(orders.consumers, Some(0));
        assert_eq!(orders.memory, Some(34688));
        assert_eq!(orders.message_bytes_ready, Some(63));
        assert_eq!(orders.message_bytes, Some(63));
        assert_eq!(orders.head_message_timestamp, Some(1_796_044_082.0));
        // This fixture was recorded without `queue_delivery_metrics`: unknown, not 0.
        assert_eq!(orders.message_stats(), None);
        let work = q("work");
        assert_eq!(
            (
                work.messages_ready,
                work.messages_unacknowledged,
                work.consumers
            ),
            (Some(3), Some(2), Some(1))
        );
        assert_eq!(work.head_message_timestamp, None, "NaN is no timestamp");
        assert_eq!(q("events").messages_ready, Some(2));
        assert_eq!(q("payments").messages_ready, Some(7), "quorum queue");
    }

    #[test]
    fn recorded_node_figures_fill_the_node_with_that_name() {
        let figures = parse_node(METRICS_4_OFF).unwrap();
        assert_eq!(figures.node.as_deref(), Some(NODE_4));
        assert_eq!(figures.mem_used, Some(128_741_376));
        assert_eq!(figures.mem_limit, Some(15_195_161_395));
        assert_eq!(figures.disk_free, Some(60_399_054_848));
        assert_eq!(figures.disk_free_limit, Some(50_000_000));
        assert_eq!((figures.fd_used, figures.fd_total), (Some(54), Some(20000)));
        assert_eq!(figures.mem_alarm, Some(false));
        assert_eq!(figures.disk_free_alarm, Some(false));
        assert_eq!(
            (figures.proc_used, figures.proc_total, figures.uptime),
            (Some(418), Some(1_048_576), Some(12_559))
        );
        // The Erlang runtime's CPU counters (for the node's CPU utilisation).
        assert_eq!(
            (
                figures.runtime_ms,
                figures.wallclock_ms,
                figures.schedulers_online
            ),
            (Some(2551), Some(12973), Some(2))
        );
        let mut nodes: Vec<Node> = serde_json::from_str(NODES_4_OFF).unwrap();
        assert_eq!(nodes[0].cpu, None, "/api/nodes has no CPU figure");
        assert_eq!(
            nodes[0].mem_used, None,
            "stats off: /api/nodes has no memory"
        );
        nodes.push(Node {
            name: "rabbit@other".to_owned(),
            mem_used: Some(1),
            ..Node::default()
        });
        apply_nodes(
            &mut nodes,
            &read(vec![member(DETAILED_4_OFF, METRICS_4_OFF)]),
        );
        assert_eq!(nodes[0].mem_used, Some(128_741_376));
        assert_eq!(nodes[0].disk_free_limit, Some(50_000_000));
        assert_eq!(nodes[0].uptime, Some(12_559), "seconds become milliseconds");
        assert_eq!(
            nodes[0].cpu,
            Some(CpuCounters {
                runtime_ms: 2551,
                wallclock_ms: 12973,
                schedulers: 2
            })
        );
        assert_eq!(nodes[1].cpu, None);
        assert_eq!(
            nodes[1].mem_used, None,
            "no member answered for it: unknown"
        );
    }

    #[test]
    fn overview_totals_come_from_every_member_or_stay_unknown() {
        const OVERVIEW_4_OFF: &str =
            include_str!("../../tests/fixtures/4.0.5-stats-off/overview.json");
        let listed: Overview = serde_json::from_str(OVERVIEW_4_OFF).unwrap();
        assert_eq!(listed.queue_totals, None, "stats off: no queue_totals");
        let read = read(vec![member(DETAILED_4_OFF, METRICS_4_OFF)]);
        let mut o = listed.clone();
        apply_overview(&mut o, &read, 1);
        let objects = o.object_totals.clone().unwrap();
        assert_eq!((objects.channels, objects.consumers), (Some(1), Some(1)));
        assert_eq!(objects.queues, Some(5), "the overview's own figure is kept");
        let totals = o.queue_totals.unwrap();
        assert_eq!(
            (
                totals.messages_ready,
                totals.messages_unacknowledged,
                totals.messages
            ),
            (Some(19), Some(2), Some(21))
        );
        // The churn counters /api/overview lacks without statistics: the plugin's.
        assert_eq!(listed.churn_rates, None, "stats off: no churn_rates");
        assert_eq!(
            o.churn_rates,
            Some(ChurnRates {
                connection_created: Some(22),
                connection_closed: Some(21),
                channel_created: Some(22),
                channel_closed: Some(21),
            })
        );
        let mut nodes: Vec<Node> = serde_json::from_str(NODES_4_OFF).unwrap();
        assert_eq!(nodes[0].connection_created, None, "stats off");
        apply_nodes(&mut nodes, &read);
        assert_eq!(
            (nodes[0].connection_created, nodes[0].channel_closed),
            (Some(22), Some(21))
        );
        // Two nodes listed, one member read: a partial sum would be too low.
        let mut o = listed.clone();
        apply_overview(&mut o, &read, 2);
        assert_eq!(o.churn_rates, None, "unknown, not a partial sum");
        assert_eq!(o.object_totals.unwrap().channels, None);
        assert!(o.queue_totals.unwrap_or_default().messages_ready.is_none());
    }

    #[test]
    fn recorded_3_10_8_parses_with_the_same_figures() {
        let map = parse_queues(DETAILED_3).unwrap();
        let orders = &map[&("/".to_owned(), "orders".to_owned())];
        assert_eq!(
            (orders.messages_ready, orders.consumers),
            (Some(7), Some(0))
        );
        let node = parse_node(METRICS_3).unwrap();
        assert!(node.mem_used.is_some() && node.disk_free.is_some() && node.fd_total.is_some());
    }

    #[test]
    fn a_queue_takes_the_figures_of_the_member_that_hosts_it() {
        let mut queues = listed();
        let hosting = member(DETAILED_4_OFF, METRICS_4_OFF);
        let other_text = DETAILED_4_OFF.replace("queue=\"orders\"} 7", "queue=\"orders\"} 99");
        let mut other = member(
            &other_text,
            &METRICS_4_OFF.replace(NODE_4, "rabbit@elsewhere"),
        );
        other.member = "n".to_owned();
        apply_queues(&mut queues, &read(vec![other, hosting]));
        let orders = queues.iter().find(|q| q.name == "orders").unwrap();
        assert_eq!(orders.messages_ready, Some(7));
    }

    #[test]
    fn a_failed_member_leaves_its_queues_unknown() {
        let mut queues = listed();
        let failed = MemberRead {
            member: "m".to_owned(),
            queues: Fetched::failed(Error::Connect {
                endpoint: Endpoint::PrometheusQueues,
                detail: "refused".to_owned(),
            }),
            node: Fetched::answered(parse_node(METRICS_4_OFF).unwrap()),
            delivery_metrics: false,
        };
        apply_queues(&mut queues, &read(vec![failed]));
        assert!(
            queues
                .iter()
                .all(|q| q.messages_ready.is_none() && q.consumers.is_none())
        );
    }

    #[test]
    fn every_failing_member_is_listed_per_endpoint() {
        let refused = |member: &str, endpoint| MemberRead {
            member: member.to_owned(),
            queues: Fetched::failed(Error::Connect {
                endpoint,
                detail: format!("{member} refused"),
            }),
            node: Fetched::answered(parse_node(METRICS_4_OFF).unwrap()),
            delivery_metrics: false,
        };
        let mut unauthorised = refused("n3", Endpoint::PrometheusQueues);
        unauthorised.node = Fetched::failed(Error::Status {
            endpoint: Endpoint::PrometheusNodes,
            status: 401,
            hint: "",
            body: String::new(),
        });
        let read = read(vec![
            refused("n1", Endpoint::PrometheusQueues),
            member(DETAILED_4_OFF, METRICS_4_OFF),
            refused("n2", Endpoint::PrometheusQueues),
            unauthorised,
        ]);
        let members = |endpoint| -> Vec<String> {
            read.failures(endpoint)
                .iter()
                .map(|(m, e)| format!("{m}: {e}"))
                .collect()
        };
        assert_eq!(
            members(Endpoint::PrometheusQueues),
            [
                "n1: /metrics/detailed: cannot connect: n1 refused",
                "n2: /metrics/detailed: cannot connect: n2 refused",
                "n3: /metrics/detailed: cannot connect: n3 refused",
            ]
        );
        assert_eq!(
            members(Endpoint::PrometheusNodes),
            ["n3: /metrics: HTTP 401: "]
        );
        assert!(read.failures(Endpoint::Queues).is_empty());
    }

    #[test]
    fn duplicate_or_bad_samples_are_errors() {
        let dup = format!(
            "{DETAILED_4_OFF}rabbitmq_detailed_queue_messages_ready{{vhost=\"/\",queue=\"orders\"}} 8\n"
        );
        let e = parse_queues(&dup).unwrap_err();
        assert!(e.detail.contains("duplicate sample"), "{e}");
        let negative = DETAILED_4_OFF.replace("queue=\"orders\"} 7", "queue=\"orders\"} -7");
        assert!(
            parse_queues(&negative)
                .unwrap_err()
                .detail
                .contains("not a count")
        );
        let unlabelled = "rabbitmq_detailed_queue_messages_ready 7\n";
        assert!(parse_queues(unlabelled).is_err());
        let truncated = &METRICS_4_OFF[..METRICS_4_OFF.len() / 2];
        assert!(parse_node(truncated).is_err());
    }

    #[test]
    fn delivery_counters_map_to_message_stats() {
        let text = "rabbitmq_detailed_queue_messages_delivered_ack_total{vhost=\"/\",queue=\"q\"} 5\nrabbitmq_detailed_queue_messages_acked_total{vhost=\"/\",queue=\"q\"} 4\nrabbitmq_detailed_queue_messages_redelivered_total{vhost=\"/\",queue=\"q\"} 1\n";
        let map = parse_queues(text).unwrap();
        let c = map[&("/".to_owned(), "q".to_owned())]
            .counters
            .clone()
            .unwrap();
        assert_eq!(
            (c.deliver, c.ack, c.redeliver, c.publish),
            (Some(5), Some(4), Some(1), None)
        );
    }

    #[test]
    fn member_urls_take_the_plugin_port_and_path() {
        let prom = Url::parse("http://localhost:15692/").unwrap();
        let m = Url::parse("https://n1.example:15671/admin/").unwrap();
        assert_eq!(member_url(&m, &prom).as_str(), "https://n1.example:15692/");
    }
}
