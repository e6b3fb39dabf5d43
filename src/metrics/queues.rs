//! Per-queue families from `GET /api/queues`, labelled `vhost` and `queue` (the names
//! rabbitmq_prometheus uses for its per-object metrics).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{Family, Field};
use crate::rabbitmq::model::Queue;
use crate::snapshot::Snapshot;

/// `rabbitmq_queue_messages{vhost,queue}`: ready + unacknowledged.
pub const MESSAGES: Family = Family {
    name: "rabbitmq_queue_messages",
    help: "Messages in the queue, ready or unacknowledged (queue depth).",
    unit: None,
    source: "/api/queues messages",
};

/// `rabbitmq_queue_messages_ready{vhost,queue}`.
pub const MESSAGES_READY: Family = Family {
    name: "rabbitmq_queue_messages_ready",
    help: "Messages ready to be delivered to consumers.",
    unit: None,
    source: "/api/queues messages_ready",
};

/// `rabbitmq_queue_messages_unacked{vhost,queue}`.
pub const MESSAGES_UNACKED: Family = Family {
    name: "rabbitmq_queue_messages_unacked",
    help: "Messages delivered to consumers but not yet acknowledged.",
    unit: None,
    source: "/api/queues messages_unacknowledged",
};

/// `rabbitmq_queue_consumers{vhost,queue}`.
pub const CONSUMERS: Family = Family {
    name: "rabbitmq_queue_consumers",
    help: "Consumers attached to the queue.",
    unit: None,
    source: "/api/queues consumers",
};

/// Writes the per-queue families; nothing when `/api/queues` failed. A queue whose field is
/// not reported yet (statistics not emitted) has no series in that family.
pub fn encode(enc: &mut DescriptorEncoder, s: &Snapshot) -> fmt::Result {
    let Some(queues) = s.queues.ok() else {
        return Ok(());
    };
    let fields: [Field<Queue>; 4] = [
        (&MESSAGES, |q| q.messages),
        (&MESSAGES_READY, |q| q.messages_ready),
        (&MESSAGES_UNACKED, |q| q.messages_unacknowledged),
        (&CONSUMERS, |q| q.consumers),
    ];
    for (family, field) in fields {
        family.gauge(
            enc,
            queues.iter().filter_map(|q| {
                field(q).map(|v| ([("vhost", q.vhost.as_str()), ("queue", q.name.as_str())], v))
            }),
        )?;
    }
    Ok(())
}
