//! Cluster-wide families from `GET /api/overview`: identity and versions, object totals and
//! message totals.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::Family;
use crate::snapshot::Snapshot;

/// `rabbitmq_identity_info{rabbitmq_cluster}`: the cluster's name.
pub const IDENTITY: Family = Family {
    name: "rabbitmq_identity",
    help: "Name of the cluster the sidecar watches.",
    unit: None,
    source: "/api/overview cluster_name",
};

/// `rabbitmq_build_info{rabbitmq_version,erlang_version,management_version,rabbitmq_node}`.
pub const BUILD: Family = Family {
    name: "rabbitmq_build",
    help: "Versions reported by the node that answered the overview request (rabbitmq_node).",
    unit: None,
    source: "/api/overview rabbitmq_version, erlang_version, management_version, node",
};

/// `rabbitmq_connections`: open client connections in the cluster.
pub const CONNECTIONS: Family = Family {
    name: "rabbitmq_connections",
    help: "Open client connections in the cluster.",
    unit: None,
    source: "/api/overview object_totals.connections",
};

/// `rabbitmq_channels`: open channels in the cluster.
pub const CHANNELS: Family = Family {
    name: "rabbitmq_channels",
    help: "Open channels in the cluster.",
    unit: None,
    source: "/api/overview object_totals.channels",
};

/// `rabbitmq_exchanges`: exchanges in the cluster, built-in ones included.
pub const EXCHANGES: Family = Family {
    name: "rabbitmq_exchanges",
    help: "Exchanges in the cluster, built-in ones included.",
    unit: None,
    source: "/api/overview object_totals.exchanges",
};

/// `rabbitmq_queues`: queues in the cluster.
pub const QUEUES: Family = Family {
    name: "rabbitmq_queues",
    help: "Queues in the cluster.",
    unit: None,
    source: "/api/overview object_totals.queues",
};

/// `rabbitmq_consumers`: consumers in the cluster.
pub const CONSUMERS: Family = Family {
    name: "rabbitmq_consumers",
    help: "Consumers on all queues of the cluster.",
    unit: None,
    source: "/api/overview object_totals.consumers",
};

/// `rabbitmq_messages`: ready + unacknowledged messages over all queues.
pub const MESSAGES: Family = Family {
    name: "rabbitmq_messages",
    help: "Messages ready or unacknowledged, summed over all queues of the cluster.",
    unit: None,
    source: "/api/overview queue_totals.messages",
};

/// `rabbitmq_messages_ready`: ready messages over all queues.
pub const MESSAGES_READY: Family = Family {
    name: "rabbitmq_messages_ready",
    help: "Messages ready for delivery, summed over all queues of the cluster.",
    unit: None,
    source: "/api/overview queue_totals.messages_ready",
};

/// `rabbitmq_messages_unacked`: unacknowledged messages over all queues.
pub const MESSAGES_UNACKED: Family = Family {
    name: "rabbitmq_messages_unacked",
    help: "Messages delivered but not yet acknowledged, summed over all queues of the cluster.",
    unit: None,
    source: "/api/overview queue_totals.messages_unacknowledged",
};

macro_rules! counter {
    ($id:ident, $name:literal, $field:literal, $help:literal) => {
        #[doc = concat!("`", $name, "_total`: ", $help)]
        pub const $id: Family = Family {
            name: $name,
            help: $help,
            unit: None,
            source: concat!("/api/overview message_stats.", $field),
        };
    };
}

counter!(
    PUBLISHED,
    "rabbitmq_channel_messages_published",
    "publish",
    "Messages published by all channels of the cluster."
);
counter!(
    CONFIRMED,
    "rabbitmq_channel_messages_confirmed",
    "confirm",
    "Messages confirmed to publishers, cluster-wide."
);
counter!(
    UNROUTABLE_RETURNED,
    "rabbitmq_channel_messages_unroutable_returned",
    "return_unroutable",
    "Mandatory messages returned to publishers as unroutable, cluster-wide."
);
counter!(
    UNROUTABLE_DROPPED,
    "rabbitmq_channel_messages_unroutable_dropped",
    "drop_unroutable",
    "Non-mandatory messages dropped as unroutable, cluster-wide."
);
counter!(
    DELIVERED_ACK,
    "rabbitmq_channel_messages_delivered_ack",
    "deliver",
    "Messages delivered to consumers in manual acknowledgement mode, cluster-wide."
);
counter!(
    DELIVERED,
    "rabbitmq_channel_messages_delivered",
    "deliver_no_ack",
    "Messages delivered to consumers in automatic acknowledgement mode, cluster-wide."
);
counter!(
    GET_ACK,
    "rabbitmq_channel_get_ack",
    "get",
    "Messages fetched with basic.get in manual acknowledgement mode, cluster-wide."
);
counter!(
    GET,
    "rabbitmq_channel_get",
    "get_no_ack",
    "Messages fetched with basic.get in automatic acknowledgement mode, cluster-wide."
);
counter!(
    GET_EMPTY,
    "rabbitmq_channel_get_empty",
    "get_empty",
    "basic.get calls that found a queue empty, cluster-wide."
);
counter!(
    ACKED,
    "rabbitmq_channel_messages_acked",
    "ack",
    "Messages acknowledged by consumers, cluster-wide."
);
counter!(
    REDELIVERED,
    "rabbitmq_channel_messages_redelivered",
    "redeliver",
    "Redeliveries, cluster-wide."
);

/// Writes the cluster families; nothing when `/api/overview` failed, and no series for a
/// field the broker left out.
pub fn encode(enc: &mut DescriptorEncoder, s: &Snapshot) -> fmt::Result {
    let Some(o) = s.overview.ok() else {
        return Ok(());
    };
    if let Some(name) = &o.cluster_name {
        IDENTITY.info(enc, [[("rabbitmq_cluster", name.as_str())]])?;
    }
    let unknown = String::new();
    BUILD.info(
        enc,
        [[
            (
                "rabbitmq_version",
                o.rabbitmq_version.as_ref().unwrap_or(&unknown).as_str(),
            ),
            (
                "erlang_version",
                o.erlang_version.as_ref().unwrap_or(&unknown).as_str(),
            ),
            (
                "management_version",
                o.management_version.as_ref().unwrap_or(&unknown).as_str(),
            ),
            (
                "rabbitmq_node",
                o.node.as_ref().unwrap_or(&unknown).as_str(),
            ),
        ]],
    )?;
    let totals = o.object_totals.clone().unwrap_or_default();
    for (family, value) in [
        (&CONNECTIONS, totals.connections),
        (&CHANNELS, totals.channels),
        (&EXCHANGES, totals.exchanges),
        (&QUEUES, totals.queues),
        (&CONSUMERS, totals.consumers),
    ] {
        family.gauge_value(enc, value)?;
    }
    let messages = o.queue_totals.clone().unwrap_or_default();
    for (family, value) in [
        (&MESSAGES, messages.messages),
        (&MESSAGES_READY, messages.messages_ready),
        (&MESSAGES_UNACKED, messages.messages_unacknowledged),
    ] {
        family.gauge_value(enc, value)?;
    }
    // A counter RabbitMQ has not started yet is 0 while statistics are collected.
    let stats = o.message_stats.clone().unwrap_or_default();
    let zero = o.stats_enabled().then_some(0);
    for (family, value) in [
        (&PUBLISHED, stats.publish),
        (&CONFIRMED, stats.confirm),
        (&UNROUTABLE_RETURNED, stats.return_unroutable),
        (&UNROUTABLE_DROPPED, stats.drop_unroutable),
        (&DELIVERED_ACK, stats.deliver),
        (&DELIVERED, stats.deliver_no_ack),
        (&GET_ACK, stats.get),
        (&GET, stats.get_no_ack),
        (&GET_EMPTY, stats.get_empty),
        (&ACKED, stats.ack),
        (&REDELIVERED, stats.redeliver),
    ] {
        family.counter_opt(enc, value.or(zero))?;
    }
    Ok(())
}
