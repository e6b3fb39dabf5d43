//! `GET /api/queues` elements as the sidecar holds them, thousands per poll: [`Queue`], kept
//! compact (issue #13: it was 744 bytes, strings apart, and two polls' lists of 10,000 queues
//! were alive at once). The parts most queues lack are out of line and absent when empty
//! ([`QueueSettings`], [`Replication`]); the message counters are a bit set and an array
//! ([`QueueStats`], 96 bytes instead of 184); `type`, `state` and `node` are `Box<str>` (16
//! bytes, not 24: never grown). Each element is decoded into a private wire shape
//! with the API's field names, then packed ([`super::stream`] decodes one element at a time,
//! so only one wire value exists at once).
//!
//! The figures keep their types (`Option<u64>`, `Option<f64>`): byte counts and `memory` pass
//! 2^32 on a queue holding more than 4 GiB, message counts can on a stream, a timestamp needs
//! an `f64`'s precision, and narrowing `consumer_capacity` to `f32` would change its exported
//! digits; the alert rules read them as they are.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::model::{MessageStats, lenient};

/// One element of `GET /api/queues` (one unpaged listing, decoded element by element: see
/// [`super::stream`]; [`super::model::Page`] is the paged shape, kept for recorded fixtures).
/// Every field the broker may omit is an `Option` (`None`: unknown).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "Wire")]
pub struct Queue {
    /// `vhost` the queue lives in.
    pub vhost: String,
    /// `name` of the queue.
    pub name: String,
    /// `type`: `classic`, `quorum` or `stream`.
    pub queue_type: Option<Box<str>>,
    /// `state`: e.g. `running`, `idle`, `flow`, `down`, `crashed`, `minority`.
    pub state: Option<Box<str>>,
    /// `node`: node hosting the queue (the leader for quorum queues).
    pub node: Option<Box<str>>,
    /// `messages`: ready + unacknowledged.
    pub messages: Option<u64>,
    /// `messages_ready`: waiting to be delivered.
    pub messages_ready: Option<u64>,
    /// `messages_unacknowledged`: delivered, not yet acknowledged.
    pub messages_unacknowledged: Option<u64>,
    /// `consumers`: attached consumers.
    pub consumers: Option<u64>,
    /// `durable`: survives a broker restart.
    pub durable: Option<bool>,
    /// `auto_delete`: deleted when its last consumer goes.
    pub auto_delete: Option<bool>,
    /// `exclusive`: owned by one connection, deleted with it.
    pub exclusive: Option<bool>,
    /// `messages_persistent`: persistent messages in the queue.
    pub messages_persistent: Option<u64>,
    /// `message_bytes`: body bytes of all messages in the queue.
    pub message_bytes: Option<u64>,
    /// `message_bytes_ready`: body bytes of ready messages.
    pub message_bytes_ready: Option<u64>,
    /// `message_bytes_unacknowledged`: body bytes of unacknowledged messages.
    pub message_bytes_unacknowledged: Option<u64>,
    /// `consumer_utilisation`: share of time the queue can deliver to consumers at once,
    /// 0..1 (a.k.a. consumer capacity).
    pub consumer_utilisation: Option<f64>,
    /// `consumer_capacity`: the newer name of `consumer_utilisation` (3.9+).
    pub consumer_capacity: Option<f64>,
    /// `memory`: bytes of memory used by the queue's Erlang process(es).
    pub memory: Option<u64>,
    /// `head_message_timestamp`: the `timestamp` property (Unix seconds) of the oldest message,
    /// when its publisher set it.
    pub head_message_timestamp: Option<f64>,
    /// `message_stats`: the queue's message counters (see [`Queue::message_stats`]).
    pub stats: QueueStats,
    /// `arguments`, `policy`, `operator_policy`, `effective_policy_definition`: `None` when
    /// none of them is set (see [`Queue::settings`]).
    pub settings: Option<Box<QueueSettings>>,
    /// Replication (quorum queues, streams, 3.x classic mirrored queues; reported also with
    /// `disable_stats=true`) and quorum-queue dead-lettering: `None` when the listing gave none
    /// of these fields, as for a 4.x classic queue (see [`Queue::replication`]).
    pub replication: Option<Box<Replication>>,
}

/// A queue's settings from `/api/queues`: out of line, most queues set none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSettings {
    /// `arguments`: the declare arguments the sidecar uses (`x-max-length`, `x-message-ttl`,
    /// …; see [`SETTING_KEYS`]); others are not kept.
    /// `None` also when none of those keys is set.
    pub arguments: Option<Settings>,
    /// `policy`: name of the policy applied, if any.
    pub policy: Option<String>,
    /// `operator_policy`: name of the operator policy applied, if any.
    pub operator_policy: Option<String>,
    /// `effective_policy_definition`: the keys the policies set that the sidecar uses
    /// (`max-length`, `overflow`, …; see [`SETTING_KEYS`]).
    /// `None` also when none of those keys is set.
    pub effective_policy_definition: Option<Settings>,
}

/// A queue's replication fields from `/api/queues` (see `crate::alerting::replication`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replication {
    /// `members`: nodes holding a replica of a quorum queue or stream (3.10 and 4.x).
    pub members: Option<Vec<String>>,
    /// `online`: the members whose replica is running.
    pub online: Option<Vec<String>>,
    /// `leader`: the member the queue's leader runs on, as last known.
    pub leader: Option<String>,
    /// `slave_nodes`: nodes holding a mirror of a classic mirrored queue (3.x; removed in 4.0).
    pub slave_nodes: Option<Vec<String>>,
    /// `synchronised_slave_nodes`: the mirrors holding every message of the leader (3.x).
    pub synchronised_slave_nodes: Option<Vec<String>>,
    /// `delivery_limit`: deliveries of a message after which a quorum queue drops or
    /// dead-letters it (4.0: default 20; absent without statistics).
    pub delivery_limit: Option<u64>,
    /// `messages_dlx`: dead-lettered messages a quorum queue holds until the dead-letter
    /// target confirms them (at-least-once dead-lettering; 0 otherwise).
    pub messages_dlx: Option<u64>,
}

/// No settings: what [`Queue::settings`] gives for a queue without any.
static NO_SETTINGS: QueueSettings = QueueSettings {
    arguments: None,
    policy: None,
    operator_policy: None,
    effective_policy_definition: None,
};

/// No replication fields: what [`Queue::replication`] gives for a queue without any.
static NO_REPLICATION: Replication = Replication {
    members: None,
    online: None,
    leader: None,
    slave_nodes: None,
    synchronised_slave_nodes: None,
    delivery_limit: None,
    messages_dlx: None,
};

/// A queue's `message_stats` (`/api/queues`), packed: which of [`MessageStats`]' eleven
/// counters are present (a bit each, and one for `message_stats` itself) and their values.
/// Lossless: [`QueueStats::get`] gives back exactly what was decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Bit `i`: counter `i` (in [`QueueStats::get`]'s order) is present; bit 15: the object.
    present: u16,
    /// The counters' values (0 where absent).
    values: [u64; 11],
}

/// Bit of [`QueueStats::present`] saying that `message_stats` was given.
const OBJECT: u16 = 1 << 15;

impl QueueStats {
    /// Packs `stats` (`None`: the queue gave no `message_stats`).
    pub fn new(stats: Option<&MessageStats>) -> QueueStats {
        let Some(s) = stats else {
            return QueueStats::default();
        };
        let fields = [
            s.publish,
            s.deliver,
            s.deliver_no_ack,
            s.get,
            s.get_no_ack,
            s.get_empty,
            s.ack,
            s.redeliver,
            s.confirm,
            s.return_unroutable,
            s.drop_unroutable,
        ];
        let mut packed = QueueStats {
            present: OBJECT,
            values: [0; 11],
        };
        for (i, v) in fields.into_iter().enumerate() {
            if let Some(v) = v {
                packed.present |= 1 << i;
                packed.values[i] = v;
            }
        }
        packed
    }

    /// The counters as decoded; `None` when the queue gave no `message_stats`.
    pub fn get(&self) -> Option<MessageStats> {
        if self.present & OBJECT == 0 {
            return None;
        }
        let at = |i: usize| (self.present & (1 << i) != 0).then_some(self.values[i]);
        Some(MessageStats {
            publish: at(0),
            deliver: at(1),
            deliver_no_ack: at(2),
            get: at(3),
            get_no_ack: at(4),
            get_empty: at(5),
            ack: at(6),
            redeliver: at(7),
            confirm: at(8),
            return_unroutable: at(9),
            drop_unroutable: at(10),
        })
    }
}

/// The element as the API spells it (field docs on [`Queue`] and its parts).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Wire {
    vhost: String,
    name: String,
    #[serde(rename = "type")]
    #[serde(deserialize_with = "lenient")]
    queue_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    state: Option<String>,
    #[serde(deserialize_with = "lenient")]
    node: Option<String>,
    #[serde(deserialize_with = "lenient")]
    messages: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    messages_ready: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    messages_unacknowledged: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    consumers: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    durable: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    auto_delete: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    exclusive: Option<bool>,
    #[serde(deserialize_with = "arguments")]
    arguments: Option<Settings>,
    #[serde(deserialize_with = "lenient")]
    policy: Option<String>,
    #[serde(deserialize_with = "lenient")]
    operator_policy: Option<String>,
    #[serde(deserialize_with = "policy_definition")]
    effective_policy_definition: Option<Settings>,
    #[serde(deserialize_with = "lenient")]
    messages_persistent: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    message_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    message_bytes_ready: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    message_bytes_unacknowledged: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    consumer_utilisation: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    consumer_capacity: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    memory: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    head_message_timestamp: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    message_stats: Option<MessageStats>,
    #[serde(deserialize_with = "lenient")]
    members: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    online: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    leader: Option<String>,
    #[serde(deserialize_with = "lenient")]
    slave_nodes: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    synchronised_slave_nodes: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    delivery_limit: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    messages_dlx: Option<u64>,
}

impl From<Wire> for Queue {
    fn from(w: Wire) -> Queue {
        let keep = |s: Option<Settings>| s.filter(|s| !s.0.is_empty());
        let settings = QueueSettings {
            arguments: keep(w.arguments),
            policy: w.policy,
            operator_policy: w.operator_policy,
            effective_policy_definition: keep(w.effective_policy_definition),
        };
        let replication = Replication {
            members: w.members,
            online: w.online,
            leader: w.leader,
            slave_nodes: w.slave_nodes,
            synchronised_slave_nodes: w.synchronised_slave_nodes,
            delivery_limit: w.delivery_limit,
            messages_dlx: w.messages_dlx,
        };
        Queue {
            vhost: w.vhost,
            name: w.name,
            queue_type: w.queue_type.map(String::into_boxed_str),
            state: w.state.map(String::into_boxed_str),
            node: w.node.map(String::into_boxed_str),
            messages: w.messages,
            messages_ready: w.messages_ready,
            messages_unacknowledged: w.messages_unacknowledged,
            consumers: w.consumers,
            durable: w.durable,
            auto_delete: w.auto_delete,
            exclusive: w.exclusive,
            messages_persistent: w.messages_persistent,
            message_bytes: w.message_bytes,
            message_bytes_ready: w.message_bytes_ready,
            message_bytes_unacknowledged: w.message_bytes_unacknowledged,
            consumer_utilisation: w.consumer_utilisation,
            consumer_capacity: w.consumer_capacity,
            memory: w.memory,
            head_message_timestamp: w.head_message_timestamp,
            stats: QueueStats::new(w.message_stats.as_ref()),
            settings: (settings != NO_SETTINGS).then(|| Box::new(settings)),
            replication: (replication != NO_REPLICATION).then(|| Box::new(replication)),
        }
    }
}

/// The setting keys kept from `arguments` (with their `x-` prefix) and from the effective
/// policy definition: what the metrics, rules and the reliability audit use.
pub const SETTING_KEYS: [&str; 10] = [
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "max-priority",
    "delivery-limit",
    "queue-mode",
    "ha-mode",
];

/// A value of [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// A whole number (lengths, bytes, milliseconds, priorities).
    Number(u64),
    /// A text (overflow mode, exchange and routing key names).
    Text(Box<str>),
}

/// The few queue settings the sidecar uses (keys of [`SETTING_KEYS`], without `x-`), kept
/// compact: thousands of queues are held per poll, and most set none of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(Vec<(&'static str, Setting)>);

impl Settings {
    /// The known keys of `map`, whose keys start with `prefix` (`x-` for arguments).
    fn from_map(map: &serde_json::Map<String, Value>, prefix: &str) -> Settings {
        // One pass over the (usually few) entries, no key built per known key and queue.
        let mut kept: Vec<(usize, &'static str, Setting)> = Vec::new();
        for (name, value) in map {
            let Some(index) = name
                .strip_prefix(prefix)
                .and_then(|bare| SETTING_KEYS.iter().position(|key| *key == bare))
            else {
                continue;
            };
            let value = match value {
                Value::Number(n) => n.as_u64().map(Setting::Number),
                Value::String(t) => Some(Setting::Text(t.as_str().into())),
                _ => None,
            };
            if let Some(v) = value {
                kept.push((index, SETTING_KEYS[index], v));
            }
        }
        // In the order of SETTING_KEYS, as before, so equal settings compare equal.
        kept.sort_unstable_by_key(|(index, _, _)| *index);
        Settings(kept.into_iter().map(|(_, key, v)| (key, v)).collect())
    }

    /// The number set for `key`, if any.
    pub fn number(&self, key: &str) -> Option<u64> {
        self.0.iter().find_map(|(k, v)| match v {
            Setting::Number(n) if *k == key => Some(*n),
            _ => None,
        })
    }

    /// The text set for `key`, if any.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|(k, v)| match v {
            Setting::Text(t) if *k == key => Some(&**t),
            _ => None,
        })
    }
}

fn settings<'de, D: Deserializer<'de>>(d: D, prefix: &str) -> Result<Option<Settings>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => Some(Settings::from_map(&map, prefix)),
        _ => None,
    })
}

fn arguments<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Settings>, D::Error> {
    settings(d, "x-")
}

fn policy_definition<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Settings>, D::Error> {
    settings(d, "")
}

impl Queue {
    /// The queue's settings (`arguments`, policies); all `None` when it has none.
    pub fn settings(&self) -> &QueueSettings {
        self.settings.as_deref().unwrap_or(&NO_SETTINGS)
    }

    /// The queue's replication fields; all `None` when the listing gave none.
    pub fn replication(&self) -> &Replication {
        self.replication.as_deref().unwrap_or(&NO_REPLICATION)
    }

    /// `message_stats` as decoded (or as set by [`Queue::set_message_stats`]); `None` when
    /// the queue gave none (see [`QueueStats`]).
    pub fn message_stats(&self) -> Option<MessageStats> {
        self.stats.get()
    }

    /// Replaces the message counters (the prometheus source fills them from its own read).
    pub fn set_message_stats(&mut self, stats: Option<MessageStats>) {
        self.stats = QueueStats::new(stats.as_ref());
    }

    /// A numeric limit set by argument `x-KEY` and/or policy key `KEY` (`max-length`,
    /// `max-length-bytes`, `message-ttl`); when both are set the smaller applies (RabbitMQ's
    /// rule for lengths, TTLs and limits).
    pub fn limit(&self, key: &str) -> Option<u64> {
        let s = self.settings();
        let arg = s.arguments.as_ref().and_then(|s| s.number(key));
        let pol = s
            .effective_policy_definition
            .as_ref()
            .and_then(|s| s.number(key));
        match (arg, pol) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// A text setting from argument `x-KEY`, else from policy key `KEY` (`overflow`,
    /// `dead-letter-exchange`, `dead-letter-routing-key`; the argument wins, as in RabbitMQ).
    pub fn setting(&self, key: &str) -> Option<&str> {
        let s = self.settings();
        s.arguments
            .as_ref()
            .and_then(|a| a.text(key))
            .or_else(|| s.effective_policy_definition.as_ref()?.text(key))
    }

    /// `x-max-priority`, set only by argument.
    pub fn max_priority(&self) -> Option<u64> {
        self.settings()
            .arguments
            .as_ref()
            .and_then(|s| s.number("max-priority"))
    }

    /// Consumer utilisation (0..1) under either of its names.
    pub fn utilisation(&self) -> Option<f64> {
        self.consumer_capacity.or(self.consumer_utilisation)
    }

    /// Messages ready or unacknowledged: `messages` when reported, else the sum of its two
    /// parts (unknown when either is).
    pub fn total_messages(&self) -> Option<u64> {
        self.messages
            .or_else(|| Some(self.messages_ready? + self.messages_unacknowledged?))
    }

    /// Body bytes of all messages: `message_bytes` when reported, else the sum of the ready
    /// and unacknowledged bytes (unknown when either is).
    pub fn total_bytes(&self) -> Option<u64> {
        self.message_bytes
            .or_else(|| Some(self.message_bytes_ready? + self.message_bytes_unacknowledged?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(json: &str) -> Queue {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_queue_is_about_half_its_former_744_bytes() {
        // Issue #13: 10,000 queues a poll, two polls' lists alive at once.
        let size = size_of::<Queue>();
        assert!(size <= 408, "Queue is {size} bytes");
        assert_eq!(size_of::<QueueStats>(), 96);
    }

    #[test]
    fn message_stats_read_back_exactly_as_decoded() {
        assert_eq!(queue(r#"{"name":"q"}"#).message_stats(), None);
        assert_eq!(
            queue(r#"{"name":"q","message_stats":{}}"#).message_stats(),
            Some(MessageStats::default())
        );
        let full = MessageStats {
            publish: Some(1),
            deliver: Some(2),
            deliver_no_ack: Some(3),
            get: Some(4),
            get_no_ack: Some(5),
            get_empty: Some(6),
            ack: Some(7),
            redeliver: Some(8),
            confirm: Some(9),
            return_unroutable: Some(10),
            drop_unroutable: Some(u64::MAX),
        };
        assert_eq!(QueueStats::new(Some(&full)).get(), Some(full.clone()));
        // Every counter alone, present or absent, comes back as it was.
        for i in 0..11 {
            let mut one = MessageStats::default();
            let fields = [
                &mut one.publish,
                &mut one.deliver,
                &mut one.deliver_no_ack,
                &mut one.get,
                &mut one.get_no_ack,
                &mut one.get_empty,
                &mut one.ack,
                &mut one.redeliver,
                &mut one.confirm,
                &mut one.return_unroutable,
                &mut one.drop_unroutable,
            ];
            *fields.into_iter().nth(i).unwrap() = Some(0);
            assert_eq!(QueueStats::new(Some(&one)).get(), Some(one.clone()));
        }
        let mut q = queue(r#"{"name":"q","message_stats":{"publish":5,"ack":0}}"#);
        let stats = q.message_stats().unwrap();
        assert_eq!(
            (stats.publish, stats.ack, stats.deliver),
            (Some(5), Some(0), None)
        );
        q.set_message_stats(None);
        assert_eq!(q.message_stats(), None);
    }

    #[test]
    fn settings_and_replication_are_held_only_when_given() {
        // A 4.x classic queue: arguments without any kept key, no policy, no replication.
        let plain =
            queue(r#"{"name":"q","type":"classic","arguments":{"x-queue-type":"classic"}}"#);
        assert_eq!(
            (plain.settings.is_none(), plain.replication.is_none()),
            (true, true)
        );
        assert_eq!(plain.settings(), &QueueSettings::default());
        assert_eq!(plain.replication(), &Replication::default());

        let qq = queue(
            r#"{"name":"q","type":"quorum","policy":"p","arguments":{"x-max-length":5},
                "members":["a","b"],"online":["a"],"leader":"a","delivery_limit":20}"#,
        );
        assert_eq!(qq.settings().policy.as_deref(), Some("p"));
        assert_eq!(qq.limit("max-length"), Some(5));
        let r = qq.replication();
        assert_eq!(
            r.members.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(
            (r.leader.as_deref(), r.delivery_limit),
            (Some("a"), Some(20))
        );
        assert_eq!(r.slave_nodes, None);

        // An empty list is known (no member online), not absent.
        let none_online = queue(r#"{"name":"q","online":[]}"#);
        assert_eq!(none_online.replication().online, Some(vec![]));
    }
}
