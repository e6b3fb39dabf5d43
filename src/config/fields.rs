//! The fields a rule's condition reads, resolved when the rule is parsed ([`Field`]): a queue
//! rule's field is a [`QueueField`], so evaluating a condition against 10,000 queues compares
//! no names. Node, cluster and audit rules judge a handful of objects per poll and keep their
//! field's name (from [`super::rules::Kind::fields`]).

use super::rules::Kind;

/// Declares [`QueueField`] with one variant per field name, in the order of the condition
/// language's list ([`QueueField::NAMES`]), with [`QueueField::name`] and
/// [`QueueField::parse`] generated from the same list (one list: they cannot drift).
macro_rules! queue_fields {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A queue rule's field (see docs/alerts.md for each field's meaning and source).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum QueueField {
            $($(#[$doc])* $variant,)*
        }

        impl QueueField {
            /// Every field name, in the documented order (what error messages list).
            pub const NAMES: &'static [&'static str] = &[$($name,)*];

            /// Every field, in the order of [`QueueField::NAMES`].
            pub const ALL: &'static [QueueField] = &[$(QueueField::$variant,)*];

            /// The field's name in conditions (`messages_ready`).
            pub fn name(self) -> &'static str {
                match self {
                    $(QueueField::$variant => $name,)*
                }
            }

            /// The field named `name`; `None` when no queue field has that name.
            pub fn parse(name: &str) -> Option<QueueField> {
                match name {
                    $($name => Some(QueueField::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

queue_fields! {
    /// Ready plus unacknowledged messages.
    Messages = "messages",
    /// Messages ready for delivery.
    MessagesReady = "messages_ready",
    /// Messages delivered, not yet acknowledged.
    MessagesUnacknowledged = "messages_unacknowledged",
    /// Persistent messages.
    MessagesPersistent = "messages_persistent",
    /// Bytes of ready plus unacknowledged message bodies.
    MessageBytes = "message_bytes",
    /// Bytes of ready message bodies.
    MessageBytesReady = "message_bytes_ready",
    /// Bytes of unacknowledged message bodies.
    MessageBytesUnacknowledged = "message_bytes_unacknowledged",
    /// Consumers attached.
    Consumers = "consumers",
    /// Share of time the queue could deliver to its consumers at once (0–1).
    ConsumerUtilisation = "consumer_utilisation",
    /// Bytes of memory the queue process uses.
    Memory = "memory",
    /// Seconds since the head message's timestamp, at the poll's start.
    HeadMessageAge = "head_message_age",
    /// The `max-length` limit (argument or policy).
    MaxLength = "max_length",
    /// The `max-length-bytes` limit (argument or policy).
    MaxLengthBytes = "max_length_bytes",
    /// The backlog detector's GROWING flag (1/0).
    BacklogGrowing = "backlog_growing",
    /// The backlog detector's STALLED flag (1/0; needs the delivery counters).
    BacklogStalled = "backlog_stalled",
    /// The backlog detector's NO_CONSUMERS flag (1/0).
    BacklogNoConsumers = "backlog_no_consumers",
    /// The backlog detector's REDELIVERING flag (1/0; needs the delivery counters).
    BacklogRedelivering = "backlog_redelivering",
    /// Redelivered / delivered over the backlog window.
    RedeliveryRatio = "redelivery_ratio",
    /// Messages published into the queue per second over the window.
    IngressRate = "ingress_rate",
    /// Messages consumed for good per second over the window.
    EgressRate = "egress_rate",
    /// Ready messages now minus at the window's start.
    MessagesReadyGrowth = "messages_ready_growth",
    /// Seconds a message waits: head message age, else ready / delivery rate
    /// (`alerting::capacity`).
    Latency = "latency",
    /// Seconds until the queue is empty at the window's net rate.
    TimeToDrain = "time_to_drain",
    /// Seconds until a length limit is hit at the window's net rate.
    TimeToOverflow = "time_to_overflow",
    /// Seconds: the head message's age, else the backlog detector's estimate.
    OldestMessageAge = "oldest_message_age",
    /// Whether the queue receives dead-lettered messages (1/0).
    DeadLetterQueue = "dead_letter_queue",
    /// A replicated queue's members (`alerting::replication`).
    Members = "members",
    /// Members online.
    OnlineMembers = "online_members",
    /// Members not online.
    OfflineMembers = "offline_members",
    /// Whether fewer than a majority of members are online (1/0).
    QuorumMinority = "quorum_minority",
    /// Whether the leader as last known is online (1/0).
    LeaderOnline = "leader_online",
    /// A classic mirrored queue's mirrors (3.x).
    Mirrors = "mirrors",
    /// Mirrors holding every message.
    SynchronisedMirrors = "synchronised_mirrors",
    /// Mirrors not holding every message.
    UnsynchronisedMirrors = "unsynchronised_mirrors",
    /// Deliveries after which a quorum queue drops or dead-letters a message.
    DeliveryLimit = "delivery_limit",
    /// Dead-lettered messages a quorum queue holds until the dead-letter target confirms
    /// them (at-least-once dead-lettering).
    MessagesDlx = "messages_dlx",
}

/// A field a condition reads: resolved once, when the rule is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A queue rule's field.
    Queue(QueueField),
    /// A node, cluster or audit rule's field, by its name in [`Kind::fields`].
    Named(&'static str),
}

impl Field {
    /// The field `name` of `kind`; `None` when `kind` has no such field.
    pub fn parse(name: &str, kind: Kind) -> Option<Field> {
        match kind {
            Kind::Queue => QueueField::parse(name).map(Field::Queue),
            _ => kind
                .fields()
                .iter()
                .find(|f| **f == name)
                .map(|f| Field::Named(f)),
        }
    }

    /// The field's name in conditions.
    pub fn name(self) -> &'static str {
        match self {
            Field::Queue(f) => f.name(),
            Field::Named(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_field_name_parses_to_the_field_of_that_name() {
        assert_eq!(QueueField::NAMES.len(), QueueField::ALL.len());
        for (name, field) in QueueField::NAMES.iter().zip(QueueField::ALL) {
            assert_eq!(QueueField::parse(name), Some(*field));
            assert_eq!(field.name(), *name);
            assert_eq!(Field::parse(name, Kind::Queue), Some(Field::Queue(*field)));
        }
        assert_eq!(QueueField::parse("mem_used"), None);
    }

    #[test]
    fn other_kinds_keep_the_name_of_their_own_fields_only() {
        assert_eq!(
            Field::parse("mem_used", Kind::Node),
            Some(Field::Named("mem_used"))
        );
        assert_eq!(Field::parse("mem_used", Kind::Cluster), None);
        assert_eq!(Field::parse("messages_ready", Kind::Node), None);
        assert_eq!(
            Field::parse("finding", Kind::Audit).map(Field::name),
            Some("finding")
        );
    }
}
