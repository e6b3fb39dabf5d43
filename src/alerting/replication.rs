//! The rule fields and alert details of replication and health: quorum queue members, online
//! members and leader, classic mirrors and their synchronisation (3.x), the 4.x delivery
//! limit (from the queue listing), and every member's health checks
//! ([`crate::rabbitmq::health`]: quorum / mirror sync criticality, virtual hosts, certificate
//! expiry, protocol listeners). Called by the rule evaluation ([`super::rules`]) for the fields it does not know.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::config::fields::QueueField;
use crate::rabbitmq::health::{Check, MemberHealth};
use crate::rabbitmq::model::Queue;
use crate::snapshot::Snapshot;

/// The node fields of this module.
pub const NODE_FIELDS: [&str; 6] = [
    "quorum_critical",
    "mirror_sync_critical",
    "virtual_hosts_down",
    "certificate_expiring",
    "certificate_expires_in",
    "protocol_listeners_down",
];

fn count<T>(v: Option<&Vec<T>>) -> Option<f64> {
    v.map(|v| v.len() as f64)
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The members of `q` that are not online (in member order); `None` when either list is
/// unknown.
pub fn missing_members(q: &Queue) -> Option<Vec<&str>> {
    let online = q.replication().online.as_ref()?;
    Some(
        q.replication()
            .members
            .as_ref()?
            .iter()
            .filter(|m| !online.contains(m))
            .map(String::as_str)
            .collect(),
    )
}

/// Whether fewer than a majority of `q`'s members are online (the queue cannot accept or
/// deliver messages); `None` when not reported or without members.
pub fn minority(q: &Queue) -> Option<bool> {
    let members = q.replication().members.as_ref()?.len();
    let missing = missing_members(q)?.len();
    (members > 0).then(|| (members - missing) * 2 <= members)
}

/// Whether `q`'s leader, as last known, is among its online members; `None` when `online` is
/// not reported (not a replicated queue, or an older version).
pub fn leader_online(q: &Queue) -> Option<bool> {
    let online = q.replication().online.as_ref()?;
    Some(
        q.replication()
            .leader
            .as_ref()
            .is_some_and(|l| online.contains(l)),
    )
}

/// A queue field of this module: `Some(value)` (the value itself `None` when unknown), or
/// `None` when `field` is not one of this module's (replication: quorum queue members,
/// mirrors, delivery limit).
pub fn queue_field(q: &Queue, field: QueueField) -> Option<Option<f64>> {
    let v = match field {
        QueueField::Members => count(q.replication().members.as_ref()),
        QueueField::OnlineMembers => q
            .replication()
            .members
            .as_ref()
            .and(missing_members(q))
            .map(|missing| {
                (q.replication().members.as_ref().map_or(0, Vec::len) - missing.len()) as f64
            }),
        QueueField::OfflineMembers => missing_members(q).map(|m| m.len() as f64),
        QueueField::QuorumMinority => minority(q).map(flag),
        QueueField::LeaderOnline => leader_online(q).map(flag),
        QueueField::Mirrors => count(q.replication().slave_nodes.as_ref()),
        QueueField::SynchronisedMirrors => count(q.replication().synchronised_slave_nodes.as_ref()),
        QueueField::UnsynchronisedMirrors => unsynchronised(q).map(|u| u.len() as f64),
        QueueField::DeliveryLimit => delivery_limit(q).map(|v| v as f64),
        QueueField::MessagesDlx => q.replication().messages_dlx.map(|v| v as f64),
        _ => return None,
    };
    Some(v)
}

/// Deliveries after which quorum queue `q` drops or dead-letters a message: the queue
/// listing's `delivery_limit` (4.x with statistics: 20 by default, `unlimited` when switched
/// off), else the `x-delivery-limit` argument or `delivery-limit` policy key of a quorum queue
/// (3.x, where quorum queues have no limit unless one is set, and 4.x without statistics; the
/// smaller when both are set); `None` when none is known (no limit, a negative one, or a 4.x
/// default not reported).
pub fn delivery_limit(q: &Queue) -> Option<u64> {
    q.replication().delivery_limit.or_else(|| {
        (q.queue_type.as_deref() == Some("quorum"))
            .then(|| q.limit("delivery-limit"))
            .flatten()
    })
}

/// What happens to a message of `q` delivered [`delivery_limit`] times, in words:
/// `dead-lettered to exchange "dlx"` (`with routing key "k"`), or `dropped (no dead-letter
/// exchange)`.
pub fn delivery_limit_outcome(q: &Queue) -> String {
    match q.setting("dead-letter-exchange") {
        Some(exchange) => {
            let exchange = if exchange.is_empty() {
                "(the default exchange)".to_owned()
            } else {
                format!("\"{exchange}\"")
            };
            match q.setting("dead-letter-routing-key") {
                Some(key) => {
                    format!("dead-lettered to exchange {exchange} with routing key \"{key}\"")
                }
                None => format!("dead-lettered to exchange {exchange}"),
            }
        }
        None => "dropped (no dead-letter exchange)".to_owned(),
    }
}

/// The mirrors of `q` that are not synchronised; `None` when not a mirrored queue (3.x).
pub fn unsynchronised(q: &Queue) -> Option<Vec<&str>> {
    let synced = q.replication().synchronised_slave_nodes.as_ref();
    Some(
        q.replication()
            .slave_nodes
            .as_ref()?
            .iter()
            .filter(|m| !synced.is_some_and(|s| s.contains(m)))
            .map(String::as_str)
            .collect(),
    )
}

/// The details of a queue for alert texts (`{{ $details.NAME }}`): `members`,
/// `online_members`, `missing_members`, `leader`, `unsynchronised_mirrors` (member lists
/// sorted, space-separated, `none` when empty), `delivery_limit` and
/// `delivery_limit_outcome` ([`delivery_limit_outcome`]); empty for a queue that reports none
/// of them.
pub fn queue_details(q: &Queue) -> BTreeMap<String, String> {
    let list = |v: &[&str]| {
        let mut sorted = v.to_vec();
        sorted.sort_unstable();
        if sorted.is_empty() {
            "none".to_owned()
        } else {
            sorted.join(" ")
        }
    };
    let mut d = BTreeMap::new();
    if let Some(m) = &q.replication().members {
        d.insert("members".to_owned(), m.len().to_string());
    }
    if let Some(missing) = missing_members(q) {
        let members = q.replication().members.as_ref().map_or(0, Vec::len);
        d.insert(
            "online_members".to_owned(),
            (members - missing.len()).to_string(),
        );
        d.insert("missing_members".to_owned(), list(&missing));
    }
    if q.replication().online.is_some() || q.replication().leader.is_some() {
        d.insert(
            "leader".to_owned(),
            q.replication()
                .leader
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
        );
    }
    if let Some(u) = unsynchronised(q) {
        d.insert("unsynchronised_mirrors".to_owned(), list(&u));
    }
    if let Some(limit) = delivery_limit(q) {
        d.insert("delivery_limit".to_owned(), limit.to_string());
        d.insert(
            "delivery_limit_outcome".to_owned(),
            delivery_limit_outcome(q),
        );
    }
    d
}

/// A node field of this module for member `node`: `Some(value)` (`None` inside when the
/// check was not read or does not exist on this version), or `None` when `field` is not one
/// of [`NODE_FIELDS`].
pub fn node_field(s: &Snapshot, node: &str, field: &str) -> Option<Option<f64>> {
    let member = s.health.of(node);
    let failing = |check| member.and_then(|m| m.failing(check)).map(flag);
    let v = match field {
        "quorum_critical" => failing(Check::QuorumCritical),
        "mirror_sync_critical" => failing(Check::MirrorSyncCritical),
        "virtual_hosts_down" => failing(Check::VirtualHosts),
        "certificate_expiring" => failing(Check::Certificates),
        "certificate_expires_in" => member
            .and_then(|m| m.verdict(Check::Certificates))
            .and_then(crate::rabbitmq::health::Verdict::earliest_expiry)
            .map(|t| seconds_between(s.started_at, t)),
        "protocol_listeners_down" => member.and_then(protocols_down).map(|d| d.len() as f64),
        _ => return None,
    };
    Some(v)
}

/// The protocols checked on `member` whose listener is not running, sorted; `None` when no
/// protocol listener check was answered (none checked, every read failed, or the version
/// lacks the check). A check whose read failed is left out (unknown, not down).
pub fn protocols_down(member: &MemberHealth) -> Option<Vec<&str>> {
    let mut answered = false;
    let mut down = Vec::new();
    for (protocol, _) in &member.listeners {
        match member.listener_down(protocol) {
            Some(true) => down.push(protocol.as_str()),
            Some(false) => {}
            None => continue,
        }
        answered = true;
    }
    answered.then_some(down)
}

/// `to - from` in seconds (negative when `to` is earlier).
fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The details of member `node` for alert texts: `critical_queues` (the queues that lose
/// availability if it stops), `mirror_critical_queues`, `virtual_hosts` (those down),
/// `certificates` (`protocol:port expires DATE` per listener), `certificate_expires` (the
/// earliest expiry, UTC), `protocols_down` (protocols checked whose listener is not running)
/// and `protocols_served` (the listeners a failing protocol-listener check says run); only
/// those its checks report.
pub fn node_details(s: &Snapshot, node: &str) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    let Some(member) = s.health.of(node) else {
        return d;
    };
    let join = |v: Vec<String>| {
        if v.is_empty() {
            "none listed".to_owned()
        } else {
            v.join(", ")
        }
    };
    if let Some(v) = member.verdict(Check::QuorumCritical) {
        d.insert("critical_queues".to_owned(), join(v.queue_names()));
    }
    if let Some(v) = member.verdict(Check::MirrorSyncCritical) {
        d.insert("mirror_critical_queues".to_owned(), join(v.queue_names()));
    }
    if let Some(v) = member.verdict(Check::VirtualHosts) {
        d.insert(
            "virtual_hosts".to_owned(),
            join(v.virtual_hosts.clone().unwrap_or_default()),
        );
    }
    if let Some(down) = protocols_down(member) {
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        d.insert(
            "protocols_down".to_owned(),
            list(down.iter().map(|p| (*p).to_owned()).collect()),
        );
        // What the node does serve, as a failing check lists it.
        let served = member
            .listeners
            .iter()
            .filter_map(|(_, f)| f.ok()?.as_ref()?.protocols.clone())
            .next()
            .map(|mut p| {
                p.sort();
                p
            });
        if let Some(served) = served {
            d.insert("protocols_served".to_owned(), list(served));
        }
    }
    if let Some(v) = member.verdict(Check::Certificates) {
        let listeners = v
            .expired
            .iter()
            .flatten()
            .map(|l| {
                format!(
                    "{}:{} expires {}",
                    l.protocol.as_deref().unwrap_or("?"),
                    l.port.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                    l.expires().map_or_else(|| "?".to_owned(), utc_text)
                )
            })
            .collect();
        d.insert("certificates".to_owned(), join(listeners));
        if let Some(t) = v.earliest_expiry() {
            d.insert("certificate_expires".to_owned(), utc_text(t));
        }
    }
    d
}

/// `2026-12-02 15:42:02 UTC`.
fn utc_text(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::model::Replication;

    fn qq(members: &[&str], online: &[&str], leader: Option<&str>) -> Queue {
        let v = |l: &[&str]| Some(l.iter().map(ToString::to_string).collect());
        Queue {
            vhost: "/".into(),
            name: "orders".into(),
            queue_type: Some("quorum".into()),
            replication: Some(Box::new(Replication {
                members: v(members),
                online: v(online),
                leader: leader.map(str::to_owned),
                ..Replication::default()
            })),
            ..Queue::default()
        }
    }

    #[test]
    fn a_minority_online_is_named_with_its_missing_members() {
        let q = qq(&["a", "c", "b"], &["a"], Some("a"));
        assert_eq!(minority(&q), Some(true));
        assert_eq!(queue_field(&q, QueueField::OnlineMembers), Some(Some(1.0)));
        assert_eq!(queue_field(&q, QueueField::OfflineMembers), Some(Some(2.0)));
        let d = queue_details(&q);
        assert_eq!(d["missing_members"], "b c");
        assert_eq!(d["online_members"], "1");
        assert_eq!(
            minority(&qq(&["a", "b", "c"], &["a", "c"], Some("a"))),
            Some(false)
        );
        // Two members: one lost is already no majority.
        assert_eq!(minority(&qq(&["a", "b"], &["a"], Some("a"))), Some(true));
        assert_eq!(minority(&Queue::default()), None, "not reported: unknown");
    }

    #[test]
    fn a_leader_that_is_not_online_is_no_leader() {
        assert_eq!(
            leader_online(&qq(&["a", "b", "c"], &["a", "b"], Some("c"))),
            Some(false)
        );
        assert_eq!(
            leader_online(&qq(&["a", "b", "c"], &["a", "b"], None)),
            Some(false)
        );
        assert_eq!(
            leader_online(&qq(&["a", "b", "c"], &["a", "b"], Some("a"))),
            Some(true)
        );
        assert_eq!(leader_online(&Queue::default()), None);
    }

    #[test]
    fn the_default_minority_rule_names_the_queue_and_its_missing_members() {
        let config = crate::config::load(None, Default::default(), &[]).unwrap();
        let mut engine = super::super::Engine::new(config.alerting.rules);
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        for t in [0, 30] {
            let snapshot = Snapshot::builder()
                .started_at(at(t))
                .queues(vec![qq(
                    &["rabbit@a", "rabbit@b", "rabbit@c"],
                    &["rabbit@a"],
                    Some("rabbit@a"),
                )])
                .build();
            engine.evaluate(&snapshot, at(t));
        }
        let alert = engine
            .alerts()
            .find(|a| a.labels["alertname"] == "RabbitmqQuorumQueueMinority")
            .expect("the minority rule fired");
        assert_eq!(alert.state, super::super::State::Firing);
        assert_eq!(
            alert.annotations["summary"],
            "Quorum queue orders in vhost / is unavailable: 1 of 3 members online, missing rabbit@b rabbit@c"
        );
        assert!(
            engine
                .alerts()
                .all(|a| a.labels["alertname"] != "RabbitmqQuorumQueueNoLeader"),
            "the leader is online"
        );
    }

    #[test]
    fn unsynchronised_mirrors_are_the_mirrors_not_synchronised() {
        let q = Queue {
            replication: Some(Box::new(Replication {
                slave_nodes: Some(vec!["b".into(), "c".into()]),
                synchronised_slave_nodes: Some(vec!["c".into()]),
                ..Replication::default()
            })),
            ..Queue::default()
        };
        assert_eq!(
            queue_field(&q, QueueField::UnsynchronisedMirrors),
            Some(Some(1.0))
        );
        assert_eq!(queue_details(&q)["unsynchronised_mirrors"], "b");
        // 4.x: no mirroring, the fields are absent: unknown, never an error.
        assert_eq!(
            queue_field(&Queue::default(), QueueField::Mirrors),
            Some(None)
        );
        assert_eq!(
            queue_field(&Queue::default(), QueueField::MessagesReady),
            None
        );
    }

    /// A queue as `/api/queues` lists it (the JSON the brokers answered).
    fn listed(json: &str) -> Queue {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_delivery_limit_is_reported_on_4_0_and_read_from_the_arguments_on_3_10() {
        // 4.0.5 with statistics: `delivery_limit` (20 by default, "unlimited" when off).
        let q = listed(
            r#"{"name":"q","vhost":"/","type":"quorum","arguments":{"x-queue-type":"quorum"},"delivery_limit":20}"#,
        );
        assert_eq!(queue_field(&q, QueueField::DeliveryLimit), Some(Some(20.0)));
        assert_eq!(
            queue_details(&q)["delivery_limit_outcome"],
            "dropped (no dead-letter exchange)"
        );
        let q = listed(
            r#"{"name":"q","vhost":"/","type":"quorum","arguments":{"x-delivery-limit":-1},"delivery_limit":"unlimited"}"#,
        );
        assert_eq!(delivery_limit(&q), None, "unlimited");
        // 3.10.8 (and 4.x without statistics): only the argument or policy tells.
        let q = listed(
            r#"{"name":"q","vhost":"/","type":"quorum","arguments":{"x-delivery-limit":5,"x-dead-letter-exchange":"dlx","x-queue-type":"quorum"},"effective_policy_definition":{}}"#,
        );
        assert_eq!(queue_field(&q, QueueField::DeliveryLimit), Some(Some(5.0)));
        let d = queue_details(&q);
        assert_eq!(d["delivery_limit"], "5");
        assert_eq!(
            d["delivery_limit_outcome"],
            "dead-lettered to exchange \"dlx\""
        );
        let q = listed(
            r#"{"name":"q","vhost":"/","type":"quorum","arguments":{"x-delivery-limit":9},"effective_policy_definition":{"delivery-limit":3,"dead-letter-exchange":"","dead-letter-routing-key":"dead"}}"#,
        );
        assert_eq!(delivery_limit(&q), Some(3), "the smaller applies");
        assert_eq!(
            delivery_limit_outcome(&q),
            "dead-lettered to exchange (the default exchange) with routing key \"dead\""
        );
        // A quorum queue of 3.10 without a limit has none; a classic queue ignores the argument.
        let q = listed(r#"{"name":"q","vhost":"/","type":"quorum","arguments":{}}"#);
        assert_eq!(queue_field(&q, QueueField::DeliveryLimit), Some(None));
        assert!(!queue_details(&q).contains_key("delivery_limit"));
        let q = listed(
            r#"{"name":"q","vhost":"/","type":"classic","arguments":{"x-delivery-limit":5}}"#,
        );
        assert_eq!(delivery_limit(&q), None);
    }

    #[test]
    fn protocols_down_leave_out_unread_checks_and_name_what_runs() {
        use crate::rabbitmq::health::{Health, Verdict};
        use crate::rabbitmq::{Endpoint, Error, Fetched};
        let verdict =
            |json: &str| Fetched::answered(Some(serde_json::from_str::<Verdict>(json).unwrap()));
        let timed_out = || {
            Fetched::failed(Error::Timeout {
                endpoint: Endpoint::HealthChecks,
                timeout_ms: 5000,
            })
        };
        let member = |listeners| MemberHealth {
            node: "rabbit@a".to_owned(),
            checks: Vec::new(),
            listeners,
        };
        let a = member(vec![
            (
                "amqp".to_owned(),
                verdict(r#"{"status":"ok","protocol":"amqp"}"#),
            ),
            (
                "mqtt".to_owned(),
                verdict(
                    r#"{"status":"failed","reason":"No active listener","missing":"mqtt","protocols":["http","clustering","amqp"]}"#,
                ),
            ),
            ("stomp".to_owned(), timed_out()),
            // A version without the check (404).
            ("http".to_owned(), Fetched::answered(None)),
        ]);
        assert_eq!(protocols_down(&a), Some(vec!["mqtt"]));
        let s = Snapshot::builder()
            .health(Health { members: vec![a] })
            .build();
        assert_eq!(
            node_field(&s, "rabbit@a", "protocol_listeners_down"),
            Some(Some(1.0))
        );
        let d = node_details(&s, "rabbit@a");
        assert_eq!(d["protocols_down"], "mqtt");
        assert_eq!(d["protocols_served"], "amqp, clustering, http");
        // Nothing answered: unknown, not "none down".
        let unread = member(vec![("amqp".to_owned(), timed_out())]);
        assert_eq!(protocols_down(&unread), None);
        let s = Snapshot::builder()
            .health(Health {
                members: vec![unread],
            })
            .build();
        assert_eq!(
            node_field(&s, "rabbit@a", "protocol_listeners_down"),
            Some(None)
        );
        assert_eq!(
            node_field(&s, "rabbit@b", "protocol_listeners_down"),
            Some(None)
        );
    }
}
