//! Replication and health families: quorum queue members, online members and leader, classic
//! mirrors (3.x) and the 4.x delivery limit, from the queue listing (`GET /api/queues`,
//! labelled `vhost`, `queue`; the management source only: rabbitmq_prometheus has no
//! member lists); and every member's health checks (`GET /api/health/checks/...` on its own
//! API, labelled `node`: [`crate::rabbitmq::health`]; the protocol listener checks also
//! `protocol`: [`crate::rabbitmq::listeners`]). A queue that reports no such field
//! (a classic queue; mirrors on 4.x) has no series; a check a version lacks has none either.

use std::fmt;
use std::time::UNIX_EPOCH;

use prometheus_client::encoding::DescriptorEncoder;

use super::queues::labels;
use super::{Family, flag};
use crate::rabbitmq::health::Check;
use crate::rabbitmq::model::Queue;
use crate::snapshot::Snapshot;

/// `rabbitmq_queue_members{vhost,queue}`.
pub const MEMBERS: Family = Family {
    name: "rabbitmq_queue_members",
    help: "Members (replicas) of a quorum queue or stream.",
    unit: None,
    source: "/api/queues members (length)",
};

/// `rabbitmq_queue_online_members{vhost,queue}`.
pub const ONLINE_MEMBERS: Family = Family {
    name: "rabbitmq_queue_online_members",
    help: "Members of a quorum queue or stream whose replica is running; at most half of rabbitmq_queue_members means the queue is unavailable.",
    unit: None,
    source: "/api/queues online (members listed in it)",
};

/// `rabbitmq_queue_member_online{vhost,queue,node}`.
pub const MEMBER_ONLINE: Family = Family {
    name: "rabbitmq_queue_member_online",
    help: "1 when member `node` of a quorum queue or stream is online, else 0.",
    unit: None,
    source: "/api/queues members and online",
};

/// `rabbitmq_queue_leader_info{vhost,queue,node}`.
pub const LEADER: Family = Family {
    name: "rabbitmq_queue_leader",
    help: "The member a quorum queue's or stream's leader runs on, as last known (value 1).",
    unit: None,
    source: "/api/queues leader",
};

/// `rabbitmq_queue_leader_online{vhost,queue}`.
pub const LEADER_ONLINE: Family = Family {
    name: "rabbitmq_queue_leader_online",
    help: "1 when the leader as last known is among the online members, else 0 (no leader: the queue serves nobody).",
    unit: None,
    source: "/api/queues leader and online",
};

/// `rabbitmq_queue_mirrors{vhost,queue}`.
pub const MIRRORS: Family = Family {
    name: "rabbitmq_queue_mirrors",
    help: "Mirrors of a classic mirrored queue (RabbitMQ 3.x; absent on 4.x, which removed mirroring).",
    unit: None,
    source: "/api/queues slave_nodes (length)",
};

/// `rabbitmq_queue_synchronised_mirrors{vhost,queue}`.
pub const SYNCHRONISED_MIRRORS: Family = Family {
    name: "rabbitmq_queue_synchronised_mirrors",
    help: "Mirrors of a classic mirrored queue holding every message of its leader (RabbitMQ 3.x).",
    unit: None,
    source: "/api/queues synchronised_slave_nodes (length)",
};

/// `rabbitmq_queue_delivery_limit{vhost,queue}`.
pub const DELIVERY_LIMIT: Family = Family {
    name: "rabbitmq_queue_delivery_limit",
    help: "Deliveries after which a quorum queue drops or dead-letters a message (RabbitMQ 4.x: default 20; 3.x, and 4.x without management statistics: only when an x-delivery-limit argument or delivery-limit policy sets one).",
    unit: None,
    source: "/api/queues delivery_limit, else arguments x-delivery-limit / effective_policy_definition delivery-limit",
};

/// `rabbitmq_queue_messages_dlx{vhost,queue}`.
pub const MESSAGES_DLX: Family = Family {
    name: "rabbitmq_queue_messages_dlx",
    help: "Dead-lettered messages a quorum queue holds until its dead-letter target confirms them (at-least-once dead-lettering).",
    unit: None,
    source: "/api/queues messages_dlx",
};

/// `rabbitmq_node_quorum_critical{node}`.
pub const QUORUM_CRITICAL: Family = Family {
    name: "rabbitmq_node_quorum_critical",
    help: "1 when stopping the member now would leave quorum queues without a majority (its node-is-quorum-critical check fails), else 0.",
    unit: None,
    source: "/api/health/checks/node-is-quorum-critical, read from each member",
};

/// `rabbitmq_node_mirror_sync_critical{node}`.
pub const MIRROR_SYNC_CRITICAL: Family = Family {
    name: "rabbitmq_node_mirror_sync_critical",
    help: "1 when the member holds the only synchronised copy of classic mirrored queues (RabbitMQ 3.x; absent on 4.x), else 0.",
    unit: None,
    source: "/api/health/checks/node-is-mirror-sync-critical, read from each member",
};

/// `rabbitmq_node_virtual_hosts_down{node}`.
pub const VIRTUAL_HOSTS_DOWN: Family = Family {
    name: "rabbitmq_node_virtual_hosts_down",
    help: "1 when a virtual host is down on the member (its virtual-hosts check fails), else 0.",
    unit: None,
    source: "/api/health/checks/virtual-hosts, read from each member",
};

/// `rabbitmq_node_certificates_expiring{node}`.
pub const CERTIFICATES_EXPIRING: Family = Family {
    name: "rabbitmq_node_certificates_expiring",
    help: "1 when a TLS listener's certificate (or CA certificate) on the member expires within 30 days, else 0.",
    unit: None,
    source: "/api/health/checks/certificate-expiration/30/days, read from each member",
};

/// `rabbitmq_listener_certificate_expiry_timestamp_seconds{node,protocol,port}`.
pub const CERTIFICATE_EXPIRY: Family = Family {
    name: "rabbitmq_listener_certificate_expiry_timestamp",
    help: "When the earliest certificate of a TLS listener expires (Unix time), for the listeners whose certificates expire within 30 days (the check names no others).",
    unit: Some(prometheus_client::registry::Unit::Seconds),
    source: "/api/health/checks/certificate-expiration/30/days expired[].certfile_expires_on, cacertfile_expires_on",
};

/// `rabbitmq_node_protocol_listener_down{node,protocol}`.
pub const PROTOCOL_LISTENER_DOWN: Family = Family {
    name: "rabbitmq_node_protocol_listener_down",
    help: "1 when no listener for `protocol` runs on the member (its protocol-listener check fails), else 0; for the protocols it served when first seen and cluster.expected_protocols.",
    unit: None,
    source: "/api/health/checks/protocol-listener/{protocol}, read from each member",
};

/// `rabbitmq_watch_health_check_up{node,check}`.
pub const CHECK_UP: Family = Family {
    name: "rabbitmq_watch_health_check_up",
    help: "1 when the sidecar read the member's health check in the last poll (passing or failing), 0 when the read failed (the verdict is unknown); absent for a check the broker version lacks (HTTP 404).",
    unit: None,
    source: "sidecar",
};

/// A per-queue gauge from a function of the queue (`None`: no series).
type QueueGauge = (&'static Family, fn(&Queue) -> Option<i64>);

const QUEUE_GAUGES: [QueueGauge; 6] = [
    (&MEMBERS, |q| {
        q.replication().members.as_ref().map(|m| m.len() as i64)
    }),
    (&ONLINE_MEMBERS, |q| {
        let online = q.replication().online.as_ref()?;
        Some(
            q.replication()
                .members
                .as_ref()?
                .iter()
                .filter(|m| online.contains(m))
                .count() as i64,
        )
    }),
    (&LEADER_ONLINE, |q| {
        crate::alerting::replication::leader_online(q).map(flag)
    }),
    (&MIRRORS, |q| {
        q.replication().slave_nodes.as_ref().map(|m| m.len() as i64)
    }),
    (&SYNCHRONISED_MIRRORS, |q| {
        q.replication()
            .synchronised_slave_nodes
            .as_ref()
            .map(|m| m.len() as i64)
    }),
    (&DELIVERY_LIMIT, |q| {
        crate::alerting::replication::delivery_limit(q).map(|v| v as i64)
    }),
];

/// Writes the replication families of the queue listing and the health check families.
pub fn encode(enc: &mut DescriptorEncoder, s: &Snapshot) -> fmt::Result {
    let queues = s.queues.ok().map_or(&[][..], Vec::as_slice);
    for (family, field) in QUEUE_GAUGES {
        family.gauge(
            enc,
            queues
                .iter()
                .filter_map(|q| field(q).map(|v| (labels(q), v))),
        )?;
    }
    MESSAGES_DLX.gauge(
        enc,
        queues
            .iter()
            .filter_map(|q| q.replication().messages_dlx.map(|v| (labels(q), v as i64))),
    )?;
    MEMBER_ONLINE.gauge(
        enc,
        queues.iter().flat_map(|q| {
            let online = q.replication().online.as_deref().unwrap_or_default();
            let known = q.replication().online.is_some();
            q.replication()
                .members
                .iter()
                .flatten()
                .filter(move |_| known)
                .map(move |m| {
                    (
                        [
                            ("vhost", q.vhost.as_str()),
                            ("queue", q.name.as_str()),
                            ("node", m.as_str()),
                        ],
                        flag(online.contains(m)),
                    )
                })
        }),
    )?;
    LEADER.info(
        enc,
        queues.iter().filter_map(|q| {
            q.replication().leader.as_deref().map(|l| {
                [
                    ("vhost", q.vhost.as_str()),
                    ("queue", q.name.as_str()),
                    ("node", l),
                ]
            })
        }),
    )?;
    let members = &s.health.members;
    for (family, check) in [
        (&QUORUM_CRITICAL, Check::QuorumCritical),
        (&MIRROR_SYNC_CRITICAL, Check::MirrorSyncCritical),
        (&VIRTUAL_HOSTS_DOWN, Check::VirtualHosts),
        (&CERTIFICATES_EXPIRING, Check::Certificates),
    ] {
        family.gauge(
            enc,
            members.iter().filter_map(|m| {
                m.failing(check)
                    .map(|f| ([("node", m.node.as_str())], flag(f)))
            }),
        )?;
    }
    CERTIFICATE_EXPIRY.gauge(
        enc,
        members.iter().flat_map(|m| {
            m.verdict(Check::Certificates)
                .and_then(|v| v.expired.as_ref())
                .into_iter()
                .flatten()
                .filter_map(move |l| {
                    let at = l.expires()?.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
                    let port = l.port.map(|p| p.to_string()).unwrap_or_default();
                    let protocol = l.protocol.clone().unwrap_or_default();
                    Some((
                        [
                            ("node", m.node.clone()),
                            ("protocol", protocol),
                            ("port", port),
                        ],
                        at,
                    ))
                })
        }),
    )?;
    PROTOCOL_LISTENER_DOWN.gauge(
        enc,
        members.iter().flat_map(|m| {
            m.listeners.iter().filter_map(move |(protocol, _)| {
                m.listener_down(protocol).map(|down| {
                    (
                        [("node", m.node.as_str()), ("protocol", protocol.as_str())],
                        flag(down),
                    )
                })
            })
        }),
    )?;
    CHECK_UP.gauge(
        enc,
        members.iter().flat_map(|m| {
            let checks = m
                .checks
                .iter()
                .map(|(check, fetched)| (check.label().to_owned(), &fetched.result));
            let listeners = m
                .listeners
                .iter()
                .map(|(p, fetched)| (format!("protocol-listener/{p}"), &fetched.result));
            checks
                .chain(listeners)
                .filter_map(move |(check, result)| match result {
                    Ok(None) => None,
                    r => Some((
                        [("node", m.node.clone()), ("check", check)],
                        flag(r.is_ok()),
                    )),
                })
        }),
    )?;
    Ok(())
}
