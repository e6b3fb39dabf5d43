//! Checks on the clients (from `/api/consumers` and `/api/channels`): consumers in automatic
//! acknowledgement mode, consumers with unlimited prefetch on backed-up queues, channels that
//! publish without publisher confirms.

use std::collections::{BTreeMap, HashMap};

use super::{Check, Finding, Inputs, Outcome};
use crate::rabbitmq::audit_reads::Consumer;

/// At most this many channel names are quoted in a consumer finding's summary.
const QUOTED: usize = 3;

/// The consumers' channels, quoted for a summary: `c1, c2 and 3 more`.
fn channels_of(consumers: &[&Consumer]) -> String {
    let names: Vec<&str> = consumers
        .iter()
        .filter_map(|c| c.channel_details.as_ref()?.name.as_deref())
        .collect();
    let mut text = names
        .iter()
        .take(QUOTED)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > QUOTED {
        text.push_str(&format!(" and {} more", names.len() - QUOTED));
    }
    text
}

/// Runs the client checks.
pub(super) fn check(inputs: &Inputs, out: &mut Outcome) {
    consumers(inputs, out);
    publishers(inputs, out);
}

fn consumers(inputs: &Inputs, out: &mut Outcome) {
    let Some(consumers) = &inputs.consumers else {
        let why = inputs.why("/api/consumers");
        out.skip(Check::AutoAck, why.clone());
        out.skip(Check::UnlimitedPrefetch, why);
        return;
    };
    // Per queue: the consumers in automatic acknowledgement mode, and the manual-ack ones
    // without a prefetch limit.
    let mut auto_ack: BTreeMap<(&str, &str), Vec<&Consumer>> = BTreeMap::new();
    let mut unlimited: BTreeMap<(&str, &str), Vec<&Consumer>> = BTreeMap::new();
    let global: HashMap<&str, u64> = inputs
        .channels
        .iter()
        .flatten()
        .filter_map(|c| Some((c.name.as_str(), c.global_prefetch_count?)))
        .collect();
    for c in consumers {
        let key = (c.queue.vhost.as_str(), c.queue.name.as_str());
        match (c.ack_required, c.prefetch_count) {
            (Some(false), _) => auto_ack.entry(key).or_default().push(c),
            (Some(true), Some(0)) => {
                // A channel-wide (global) prefetch limit bounds it too.
                let channel = c.channel_details.as_ref().and_then(|d| d.name.as_deref());
                let bounded = channel.and_then(|n| global.get(n)).is_some_and(|g| *g > 0);
                if !bounded {
                    unlimited.entry(key).or_default().push(c);
                }
            }
            _ => {}
        }
    }
    for ((vhost, queue), cs) in &auto_ack {
        out.findings.push(Finding {
            check: Check::AutoAck,
            vhost: (*vhost).to_owned(),
            object: (*queue).to_owned(),
            object_type: "queue",
            severity: Check::AutoAck.severity(),
            summary: format!(
                "{} consumer(s) of this queue use automatic acknowledgement (channel {}): a message counts as done when it is sent, so a consumer crash loses what it was handed",
                cs.len(),
                channels_of(cs)
            ),
            fix: "consume with manual acknowledgement (no_ack/auto_ack false) and acknowledge each message after it is processed".into(),
        });
    }
    let Some(queues) = &inputs.queues else {
        out.skip(Check::UnlimitedPrefetch, inputs.why("queues"));
        return;
    };
    let depth: HashMap<(&str, &str), Option<u64>> = queues
        .iter()
        .map(|(q, _)| ((q.vhost.as_str(), q.name.as_str()), q.total_messages()))
        .collect();
    let mut unknown = Vec::new();
    for ((vhost, queue), cs) in &unlimited {
        // Queues not exported (filtered out) are not judged: their depth is unknown.
        match depth.get(&(*vhost, *queue)).copied().flatten() {
            Some(n) if n >= inputs.backlog_messages => out.findings.push(Finding {
                check: Check::UnlimitedPrefetch,
                vhost: (*vhost).to_owned(),
                object: (*queue).to_owned(),
                object_type: "queue",
                severity: Check::UnlimitedPrefetch.severity(),
                summary: format!(
                    "{} consumer(s) of this queue have no prefetch limit (channel {}) while it holds {n} messages: the broker pushes the whole backlog to them, into their memory and unacknowledged",
                    cs.len(),
                    channels_of(cs)
                ),
                fix: "set a prefetch limit (basic.qos prefetch_count, e.g. 10 to 300) on the consumers' channels".into(),
            }),
            Some(_) => {}
            None => unknown.push(((*vhost).to_owned(), (*queue).to_owned())),
        }
    }
    out.skip_objects(
        Check::UnlimitedPrefetch,
        unknown,
        "queues with unlimited-prefetch consumers",
        "are not exported or did not report their depth, so whether they back up is unknown",
    );
}

fn publishers(inputs: &Inputs, out: &mut Outcome) {
    let Some(channels) = &inputs.channels else {
        out.skip(Check::NoConfirms, inputs.why("/api/channels"));
        return;
    };
    if !inputs.stats_enabled() {
        out.skip(
            Check::NoConfirms,
            "the broker collects no statistics (disable_stats is not false in /api/overview), so which channels publish is unknown",
        );
        return;
    }
    for c in channels {
        if c.confirm != Some(false) || c.transactional == Some(true) {
            continue;
        }
        let stats = c.message_stats.as_ref();
        let published = stats.and_then(|s| s.publish).unwrap_or(0);
        let rate = stats
            .and_then(|s| s.publish_details.as_ref())
            .and_then(|d| d.rate)
            .unwrap_or(0.0);
        if published == 0 && rate <= 0.0 {
            continue;
        }
        out.findings.push(Finding {
            check: Check::NoConfirms,
            vhost: c.vhost.clone(),
            object: c.name.clone(),
            object_type: "channel",
            severity: Check::NoConfirms.severity(),
            summary: format!(
                "channel of user '{}' published {published} messages ({rate:.1}/s now) without publisher confirms: the publisher cannot know which messages the broker took",
                c.user.as_deref().unwrap_or("?")
            ),
            fix: "enable publisher confirms (confirm.select) on the channel and resend messages that are not confirmed".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{found, inputs, queue};
    use crate::rabbitmq::audit_reads::{Channel, Consumer};

    fn consumer(queue: &str, ack: bool, prefetch: u64, channel: &str) -> Consumer {
        serde_json::from_value(json!({"queue": {"name": queue, "vhost": "/"},
            "ack_required": ack, "prefetch_count": prefetch, "consumer_tag": "t",
            "channel_details": {"name": channel}}))
        .expect("consumer")
    }

    fn channel(name: &str, confirm: bool, publish: Option<u64>) -> Channel {
        let mut c = json!({"name": name, "vhost": "/", "user": "app", "confirm": confirm,
            "transactional": false, "global_prefetch_count": 0});
        if let Some(n) = publish {
            c["message_stats"] = json!({"publish": n});
        }
        serde_json::from_value(c).expect("channel")
    }

    fn q(name: &str, ready: u64) -> crate::rabbitmq::model::Queue {
        queue(
            json!({"vhost": "/", "name": name, "type": "classic", "durable": true,
            "messages_ready": ready, "messages_unacknowledged": 0, "messages_persistent": ready}),
        )
    }

    #[test]
    fn consumers() {
        let mut i = inputs(vec![q("busy", 500), q("quiet", 2)]);
        i.consumers = Some(vec![
            consumer("busy", false, 0, "a (1)"),
            consumer("busy", true, 0, "b (1)"),
            consumer("quiet", true, 0, "c (1)"),
            consumer("busy", true, 10, "d (1)"),
            consumer("elsewhere", true, 0, "e (1)"),
        ]);
        assert_eq!(
            found(&i),
            vec![
                ("auto_ack_consumer", "busy".to_owned()),
                ("unlimited_prefetch", "busy".to_owned()),
            ]
        );
        let out = super::super::audit(&i);
        assert!(out.skipped.iter().any(|s| {
            s.check.name() == "unlimited_prefetch"
                && s.reason
                    .starts_with("1 queues with unlimited-prefetch consumers")
        }));
        // A global prefetch on the channel bounds the consumer.
        i.channels = Some(vec![
            serde_json::from_value(json!({"name": "b (1)", "vhost": "/",
            "global_prefetch_count": 50}))
            .expect("channel"),
        ]);
        assert_eq!(found(&i), vec![("auto_ack_consumer", "busy".to_owned())]);
    }

    #[test]
    fn publishers_without_confirms() {
        let mut i = inputs(vec![]);
        i.channels = Some(vec![
            channel("confirming (1)", true, Some(100)),
            channel("fire-and-forget (1)", false, Some(100)),
            channel("consumer-only (1)", false, None),
        ]);
        assert_eq!(
            found(&i),
            vec![("publish_without_confirms", "fire-and-forget (1)".to_owned())]
        );
        // Statistics disabled: unknown, not "no finding" silently.
        i.disable_stats = Some(true);
        let out = super::super::audit(&i);
        assert!(out.findings.is_empty());
        assert!(
            out.skipped
                .iter()
                .any(|s| s.check.name() == "publish_without_confirms")
        );
    }
}
