//! Checks on dead-lettering (from `/api/exchanges` and `/api/bindings`): a queue's
//! dead-letter exchange that does not exist, or that has no binding, drops dead-lettered
//! messages silently.

use std::collections::HashSet;

use super::{Check, Finding, Inputs, Outcome};

/// Runs the dead-letter checks.
pub(super) fn check(inputs: &Inputs, out: &mut Outcome) {
    let Some(queues) = &inputs.queues else {
        let why = inputs.why("queues");
        out.skip(Check::DeadLetterMissing, why.clone());
        out.skip(Check::DeadLetterUnrouted, why);
        return;
    };
    let exchanges: Option<HashSet<(&str, &str)>> = inputs.exchanges.as_ref().map(|es| {
        es.iter()
            .map(|e| (e.vhost.as_str(), e.name.as_str()))
            .collect()
    });
    let sources: Option<HashSet<(&str, &str)>> = inputs.bindings.as_ref().map(|bs| {
        bs.iter()
            .map(|b| (b.vhost.as_str(), b.source.as_str()))
            .collect()
    });
    if exchanges.is_none() {
        out.skip(Check::DeadLetterMissing, inputs.why("/api/exchanges"));
    }
    if sources.is_none() {
        out.skip(Check::DeadLetterUnrouted, inputs.why("/api/bindings"));
    }
    for (q, _) in queues.iter() {
        // The default exchange ("") routes by the routing key: not judged here.
        let Some(dlx) = q.setting("dead-letter-exchange").filter(|x| !x.is_empty()) else {
            continue;
        };
        let key = (q.vhost.as_str(), dlx);
        let exists = exchanges.as_ref().map(|es| es.contains(&key));
        if exists == Some(false) {
            out.findings.push(Finding::queue(
                Check::DeadLetterMissing,
                q,
                format!(
                    "the queue's dead-letter exchange '{dlx}' does not exist: messages that expire, are rejected or overflow are dropped silently"
                ),
                format!(
                    "declare the exchange '{dlx}' in vhost '{}' and bind a queue to it, or point dead-letter-exchange at an existing exchange",
                    q.vhost
                ),
            ));
            continue;
        }
        if exists == Some(true) && sources.as_ref().is_some_and(|s| !s.contains(&key)) {
            out.findings.push(Finding::queue(
                Check::DeadLetterUnrouted,
                q,
                format!(
                    "the queue's dead-letter exchange '{dlx}' has no binding: dead-lettered messages route to no queue and are dropped silently"
                ),
                format!(
                    "bind a dead-letter queue to the exchange '{dlx}' (with a routing key that matches, or a fanout exchange)"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{found, inputs, queue};
    use crate::rabbitmq::audit_reads::{BindingRow, Exchange};

    #[test]
    fn missing_and_unrouted_dead_letter_exchanges() {
        let dl = |name: &str, dlx: &str| {
            queue(
                json!({"vhost": "/", "name": name, "type": "classic", "durable": true,
                "messages_ready": 0, "messages_unacknowledged": 0, "messages_persistent": 0,
                "effective_policy_definition": {"dead-letter-exchange": dlx}}),
            )
        };
        let mut i = inputs(vec![
            dl("a", "nowhere"),
            dl("b", "unbound"),
            dl("c", "good"),
            dl("d", ""),
        ]);
        i.exchanges = Some(
            ["unbound", "good"]
                .iter()
                .map(|n| Exchange {
                    vhost: "/".into(),
                    name: (*n).into(),
                })
                .collect(),
        );
        i.bindings = Some(vec![BindingRow {
            vhost: "/".into(),
            source: "good".into(),
            destination: "dead".into(),
            destination_type: "queue".into(),
        }]);
        assert_eq!(
            found(&i),
            vec![
                ("dead_letter_exchange_missing", "a".to_owned()),
                ("dead_letter_exchange_unrouted", "b".to_owned()),
            ]
        );
        // Without the bindings, only "missing" can be judged.
        i.bindings = None;
        assert_eq!(
            found(&i),
            vec![("dead_letter_exchange_missing", "a".to_owned())]
        );
    }
}
