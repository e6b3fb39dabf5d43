//! Per-queue families from `GET /api/queues`, labelled `vhost` and `queue` (the names
//! rabbitmq_prometheus uses for its per-object metrics), for the queues the `queues.*` filters
//! and caps select.

use std::borrow::Cow;
use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{Family, Field, MissingFields};
use crate::rabbitmq::Endpoint;
use crate::rabbitmq::model::{MessageStats, Queue};
use crate::snapshot::Snapshot;

macro_rules! gauge {
    ($id:ident, $name:literal, $unit:expr, $field:literal, $help:literal) => {
        #[doc = concat!("`", $name, "{vhost,queue}`: ", $help)]
        pub const $id: Family = Family {
            name: $name,
            help: $help,
            unit: $unit,
            source: concat!("/api/queues ", $field),
        };
    };
}

gauge!(
    MESSAGES,
    "rabbitmq_queue_messages",
    None,
    "messages_ready + messages_unacknowledged",
    "Messages in the queue, ready or unacknowledged (queue depth)."
);
gauge!(
    MESSAGES_READY,
    "rabbitmq_queue_messages_ready",
    None,
    "messages_ready",
    "Messages ready to be delivered to consumers."
);
gauge!(
    MESSAGES_UNACKED,
    "rabbitmq_queue_messages_unacked",
    None,
    "messages_unacknowledged",
    "Messages delivered to consumers but not yet acknowledged."
);
gauge!(
    MESSAGES_PERSISTENT,
    "rabbitmq_queue_messages_persistent",
    None,
    "messages_persistent",
    "Persistent messages in the queue."
);
gauge!(
    MESSAGES_BYTES,
    "rabbitmq_queue_messages",
    Some(Unit::Bytes),
    "message_bytes_ready + message_bytes_unacknowledged",
    "Body bytes of all messages in the queue."
);
gauge!(
    READY_BYTES,
    "rabbitmq_queue_messages_ready",
    Some(Unit::Bytes),
    "message_bytes_ready",
    "Body bytes of the ready messages."
);
gauge!(
    UNACKED_BYTES,
    "rabbitmq_queue_messages_unacked",
    Some(Unit::Bytes),
    "message_bytes_unacknowledged",
    "Body bytes of the unacknowledged messages."
);
gauge!(
    CONSUMERS,
    "rabbitmq_queue_consumers",
    None,
    "consumers",
    "Consumers attached to the queue."
);
gauge!(
    UTILISATION,
    "rabbitmq_queue_consumer_utilisation",
    None,
    "consumer_capacity (RabbitMQ 3.9+)",
    "Ratio (0..1) of time the queue can deliver to its consumers at once; below 1 consumers are the bottleneck (prefetch full, slow acks or network)."
);
gauge!(
    MEMORY,
    "rabbitmq_queue_process_memory",
    Some(Unit::Bytes),
    "memory",
    "Memory used by the queue's Erlang process(es)."
);
gauge!(
    HEAD_AGE,
    "rabbitmq_queue_head_message_age",
    Some(Unit::Seconds),
    "head_message_timestamp",
    "Age of the oldest message at poll time, from its timestamp property; only for queues whose publishers set it."
);
gauge!(
    MAX_LENGTH,
    "rabbitmq_queue_max_length",
    None,
    "arguments x-max-length / effective_policy_definition max-length (the smaller)",
    "Maximum number of ready messages (max-length); what happens beyond it is the overflow label of rabbitmq_queue_info."
);
gauge!(
    MAX_LENGTH_BYTES,
    "rabbitmq_queue_max_length",
    Some(Unit::Bytes),
    "arguments x-max-length-bytes / effective_policy_definition max-length-bytes (the smaller)",
    "Maximum total body bytes of ready messages (max-length-bytes)."
);

macro_rules! counter {
    ($id:ident, $name:literal, $field:literal, $help:literal) => {
        #[doc = concat!("`", $name, "_total{vhost,queue}`: ", $help)]
        pub const $id: Family = Family {
            name: $name,
            help: $help,
            unit: None,
            source: concat!("/api/queues message_stats.", $field),
        };
    };
}

counter!(
    PUBLISHED,
    "rabbitmq_queue_messages_published",
    "publish",
    "Messages published to the queue."
);
counter!(
    DELIVERED_ACK,
    "rabbitmq_queue_messages_delivered_ack",
    "deliver",
    "Messages delivered to consumers in manual acknowledgement mode."
);
counter!(
    DELIVERED,
    "rabbitmq_queue_messages_delivered",
    "deliver_no_ack",
    "Messages delivered to consumers in automatic acknowledgement mode."
);
counter!(
    GET_ACK,
    "rabbitmq_queue_get_ack",
    "get",
    "Messages fetched with basic.get in manual acknowledgement mode."
);
counter!(
    GET,
    "rabbitmq_queue_get",
    "get_no_ack",
    "Messages fetched with basic.get in automatic acknowledgement mode."
);
counter!(
    ACKED,
    "rabbitmq_queue_messages_acked",
    "ack",
    "Messages acknowledged by consumers."
);
counter!(
    REDELIVERED,
    "rabbitmq_queue_messages_redelivered",
    "redeliver",
    "Deliveries of messages that had been delivered before (requeued after a reject, nack or consumer loss)."
);

/// `rabbitmq_queue_info{vhost,queue,…}`: the queue's static facts.
pub const INFO: Family = Family {
    name: "rabbitmq_queue",
    help: "Static facts of the queue (value 1): type, durable, auto_delete, exclusive, node, policy, operator_policy, dead_letter_exchange, dead_letter_routing_key, overflow, max_length, max_length_bytes, message_ttl (ms), max_priority; an empty label means unset.",
    unit: None,
    source: "/api/queues type, durable, auto_delete, exclusive, node, policy, operator_policy, arguments, effective_policy_definition",
};

/// The gauges fed by one numeric field, in output order.
const GAUGES: [Field<Queue>; 11] = [
    (&MESSAGES, Queue::total_messages),
    (&MESSAGES_READY, |q| q.messages_ready),
    (&MESSAGES_UNACKED, |q| q.messages_unacknowledged),
    (&MESSAGES_PERSISTENT, |q| q.messages_persistent),
    (&MESSAGES_BYTES, Queue::total_bytes),
    (&READY_BYTES, |q| q.message_bytes_ready),
    (&UNACKED_BYTES, |q| q.message_bytes_unacknowledged),
    (&CONSUMERS, |q| q.consumers),
    (&MEMORY, |q| q.memory),
    (&MAX_LENGTH, |q| q.limit("max-length")),
    (&MAX_LENGTH_BYTES, |q| q.limit("max-length-bytes")),
];

/// The counters, each fed by one `message_stats` field.
const COUNTERS: [Field<MessageStats>; 7] = [
    (&PUBLISHED, |m| m.publish),
    (&DELIVERED_ACK, |m| m.deliver),
    (&DELIVERED, |m| m.deliver_no_ack),
    (&GET_ACK, |m| m.get),
    (&GET, |m| m.get_no_ack),
    (&ACKED, |m| m.ack),
    (&REDELIVERED, |m| m.redeliver),
];

pub(super) fn labels(q: &Queue) -> [(&'static str, &str); 2] {
    [("vhost", q.vhost.as_str()), ("queue", q.name.as_str())]
}

/// Every queue's `vhost` and `queue` label values, copied once per encode into one buffer.
/// The per-queue families walk the queue list once per family (19 passes), and reading each
/// queue's two separately allocated names again in every pass missed the CPU's caches: at
/// 10,000 queues that was a sixth of the sidecar's CPU per poll (issue #13). The copy (a few
/// hundred KB at 10,000 queues) stays cached across the passes.
struct Names {
    /// The names, one after the other.
    text: String,
    /// Per queue, in list order: where its vhost ends and where its name ends in `text`.
    ends: Vec<(usize, usize)>,
}

impl Names {
    fn of(queues: &[Queue]) -> Names {
        let size = queues.iter().map(|q| q.vhost.len() + q.name.len()).sum();
        let mut text = String::with_capacity(size);
        let ends = queues
            .iter()
            .map(|q| {
                text.push_str(&q.vhost);
                let vhost_end = text.len();
                text.push_str(&q.name);
                (vhost_end, text.len())
            })
            .collect();
        Names { text, ends }
    }

    /// The labels of the `i`th queue, as [`labels`] gives them.
    fn labels(&self, i: usize) -> [(&'static str, &str); 2] {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before].1);
        let (vhost_end, end) = self.ends[i];
        [
            ("vhost", &self.text[start..vhost_end]),
            ("queue", &self.text[vhost_end..end]),
        ]
    }
}

/// The labels of a queue's `rabbitmq_queue_info` series, borrowed where possible (this runs
/// once per queue per poll). Unset facts are empty strings.
fn info_labels(q: &Queue) -> [(&'static str, Cow<'_, str>); 16] {
    fn text(v: Option<&str>) -> Cow<'_, str> {
        Cow::Borrowed(v.unwrap_or(""))
    }
    fn flag(v: Option<bool>) -> Cow<'static, str> {
        Cow::Borrowed(match v {
            Some(true) => "true",
            Some(false) => "false",
            None => "",
        })
    }
    let number = |v: Option<u64>| v.map_or(Cow::Borrowed(""), |n| Cow::Owned(n.to_string()));
    let max_length = q.limit("max-length");
    let max_length_bytes = q.limit("max-length-bytes");
    // drop-head is RabbitMQ's overflow behaviour when a limit is set and none is chosen.
    let overflow = q
        .setting("overflow")
        .or_else(|| (max_length.is_some() || max_length_bytes.is_some()).then_some("drop-head"));
    [
        ("vhost", Cow::Borrowed(q.vhost.as_str())),
        ("queue", Cow::Borrowed(q.name.as_str())),
        ("type", text(q.queue_type.as_deref())),
        ("durable", flag(q.durable)),
        ("auto_delete", flag(q.auto_delete)),
        ("exclusive", flag(q.exclusive)),
        ("node", text(q.node.as_deref())),
        ("policy", text(q.settings().policy.as_deref())),
        (
            "operator_policy",
            text(q.settings().operator_policy.as_deref()),
        ),
        (
            "dead_letter_exchange",
            text(q.setting("dead-letter-exchange")),
        ),
        (
            "dead_letter_routing_key",
            text(q.setting("dead-letter-routing-key")),
        ),
        ("overflow", text(overflow)),
        ("max_length", number(max_length)),
        ("max_length_bytes", number(max_length_bytes)),
        ("message_ttl", number(q.limit("message-ttl"))),
        ("max_priority", number(q.max_priority())),
    ]
}

/// Writes the per-queue families; nothing when `/api/queues` failed. A queue whose field is
/// not reported (statistics not emitted yet, stats disabled) has no series in that family,
/// and the miss is counted in `missing`. A counter RabbitMQ has not started yet is 0 when the
/// broker collects statistics and the queue has been reported on.
pub fn encode(
    enc: &mut DescriptorEncoder,
    s: &Snapshot,
    missing: &mut MissingFields,
) -> fmt::Result {
    let Some(queues) = s.queues.ok() else {
        return Ok(());
    };
    let names = Names::of(queues);
    for (family, field) in GAUGES {
        // Limits are optional settings and sums are derived: neither is a field that can miss.
        let counted =
            !family.name.starts_with("rabbitmq_queue_max_length") && !family.source.contains(" + ");
        if counted {
            let misses = queues.iter().filter(|q| field(q).is_none()).count();
            missing.count(Endpoint::Queues, family.source, misses);
        }
        family.gauge(
            enc,
            queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| field(q).map(|v| (names.labels(i), v))),
        )?;
    }
    missing.count(
        Endpoint::Queues,
        "/api/queues consumer_capacity",
        queues.iter().filter(|q| q.utilisation().is_none()).count(),
    );
    UTILISATION.gauge(
        enc,
        queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.utilisation().map(|v| (names.labels(i), v))),
    )?;
    let poll_time = s.started_at_secs();
    HEAD_AGE.gauge(
        enc,
        queues.iter().enumerate().filter_map(|(i, q)| {
            q.head_message_timestamp
                .map(|ts| (names.labels(i), (poll_time - ts).max(0.0)))
        }),
    )?;

    // A counter missing from `message_stats` is 0 ("nothing counted yet") only when the
    // management statistics are the source and the broker collects them; rabbitmq_prometheus
    // gives no publish counter (and no counters at all on 3.10.8): unknown, not 0.
    let stats_enabled = s.source == crate::rabbitmq::FigureSource::Management
        && s.overview
            .ok()
            .is_some_and(super::super::rabbitmq::model::Overview::stats_enabled);
    for (family, field) in COUNTERS {
        let mut missed = 0;
        family.counter(
            enc,
            queues.iter().enumerate().filter_map(|(i, q)| {
                let value = match &q.message_stats() {
                    Some(m) => field(m).or(stats_enabled.then_some(0)),
                    // No message_stats at all: nothing counted yet, if the queue is reported on.
                    None => (stats_enabled && q.messages_ready.is_some()).then_some(0),
                };
                if value.is_none() {
                    missed += 1;
                }
                value.map(|v| (names.labels(i), v))
            }),
        )?;
        missing.count(Endpoint::Queues, family.source, missed);
    }

    INFO.info(enc, queues.iter().map(info_labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The shared copy gives every queue exactly its own labels, whatever the names
        /// (empty, non-ASCII, repeated).
        #[test]
        fn names_give_each_queue_its_own_labels(
            pairs in proptest::collection::vec((".{0,6}", ".{0,12}"), 0..40)
        ) {
            let queues: Vec<Queue> = pairs
                .iter()
                .map(|(vhost, name)| Queue {
                    vhost: vhost.clone(),
                    name: name.clone(),
                    ..Queue::default()
                })
                .collect();
            let names = Names::of(&queues);
            for (i, q) in queues.iter().enumerate() {
                prop_assert_eq!(names.labels(i), labels(q));
            }
        }
    }
}
