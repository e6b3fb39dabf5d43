//! Checks on the queues themselves (from the poll's listing and the backlog detector's
//! verdicts): transient queues holding messages, transient messages in durable queues,
//! requeue loops, unbounded growth, classic mirroring, contradictory settings.

use super::{Check, Finding, Inputs, Outcome};
use crate::rabbitmq::model::Queue;

/// The queue's type, `classic` when not reported (the API leaves it out on old brokers).
fn queue_type(q: &Queue) -> &str {
    q.queue_type.as_deref().unwrap_or("classic")
}

/// The (vhost, name) of a queue, for a skipped check's objects.
fn key(q: &Queue) -> (String, String) {
    (q.vhost.clone(), q.name.clone())
}

/// Runs the queue checks.
pub(super) fn check(inputs: &Inputs, out: &mut Outcome) {
    let Some(queues) = &inputs.queues else {
        let why = inputs.why("queues");
        for c in [
            Check::TransientQueue,
            Check::TransientMessages,
            Check::RequeueLoop,
            Check::UnboundedGrowth,
            Check::ClassicMirrored,
            Check::Contradictory,
        ] {
            out.skip(c, why.clone());
        }
        return;
    };
    let major = inputs.major_version();
    let (mut no_depth, mut no_persistent, mut no_verdict) = (Vec::new(), Vec::new(), Vec::new());
    for (q, verdict) in queues.iter() {
        let messages = q.total_messages();
        let kind = queue_type(q);
        // A queue that does not survive a restart (or its connection) holding messages.
        let transient =
            q.durable == Some(false) || q.auto_delete == Some(true) || q.exclusive == Some(true);
        match messages {
            None => no_depth.push(key(q)),
            Some(n) if n > 0 && transient => {
                let why = if q.durable == Some(false) {
                    "is not durable: it and its messages are gone after a broker restart"
                } else if q.exclusive == Some(true) {
                    "is exclusive: it and its messages are deleted when its connection closes"
                } else {
                    "is auto-delete: it and its messages are deleted when its last consumer goes"
                };
                out.findings.push(Finding::queue(
                    Check::TransientQueue,
                    q,
                    format!("queue {why}; it holds {n} messages"),
                    "declare the queue durable, not auto-delete and not exclusive (a queue's properties cannot change: declare a new queue and move publishers and consumers to it)",
                ));
            }
            Some(_) => {}
        }
        // Transient messages in a durable classic queue (quorum queues and streams keep every
        // message on disk whatever its delivery mode).
        if q.durable == Some(true) && kind == "classic" {
            match (messages, q.messages_persistent) {
                (Some(n), Some(p)) if n > p => out.findings.push(Finding::queue(
                    Check::TransientMessages,
                    q,
                    format!(
                        "{} of the {n} messages in this durable queue are transient (delivery mode 1): they are lost on a broker restart",
                        n - p
                    ),
                    "publish with delivery_mode 2 (persistent); a durable queue keeps only persistent messages across a restart",
                )),
                (Some(_), None) => no_persistent.push(key(q)),
                _ => {}
            }
        }
        // Queue-level settings.
        settings(q, major, out);
        // Trend checks: the backlog detector's verdict over its window.
        let Some(a) = &verdict.analysis else {
            no_verdict.push(key(q));
            continue;
        };
        let dlx = q.setting("dead-letter-exchange").is_some();
        let delivery_limit = q.limit("delivery-limit").is_some()
            // Quorum queues on RabbitMQ 4.0+ have a delivery limit of 20 by default.
            || (kind == "quorum" && major.is_some_and(|m| m >= 4));
        if a.counters && a.redelivering && !dlx && !delivery_limit {
            out.findings.push(Finding::queue(
                Check::RequeueLoop,
                q,
                format!(
                    "consumers keep getting the same messages back ({}) and the queue has no dead-letter exchange and no delivery limit: a message that always fails loops forever",
                    a.redelivery_ratio
                        .map_or_else(String::new, |r| format!("redelivery {:.0} %", r * 100.0))
                ),
                "reject failing messages without requeue after a few attempts, and give the queue a dead-letter exchange (policy dead-letter-exchange) or use a quorum queue with a delivery-limit",
            ));
        }
        let bounded = q.limit("max-length").is_some()
            || q.limit("max-length-bytes").is_some()
            || q.limit("message-ttl").is_some();
        if a.growing && !bounded && kind != "stream" {
            out.findings.push(Finding::queue(
                Check::UnboundedGrowth,
                q,
                format!(
                    "the queue keeps growing ({} ready, +{} over the detector's window) and has no max-length, max-length-bytes or message-ttl: it grows until the memory or disk alarm blocks every publisher",
                    a.ready, a.ready_growth
                ),
                "add consumers or fix the slow ones, and bound the queue with a policy (max-length or max-length-bytes with overflow reject-publish, or message-ttl with a dead-letter exchange)",
            ));
        }
    }
    let stats_note = if inputs.stats_enabled() {
        "(statistics not emitted yet)"
    } else {
        "(statistics disabled on the broker, e.g. RabbitMQ 4.x management_agent.disable_metrics_collector)"
    };
    out.skip_objects(
        Check::TransientQueue,
        no_depth,
        "queues",
        &format!("did not report their message count {stats_note}"),
    );
    out.skip_objects(
        Check::TransientMessages,
        no_persistent,
        "queues",
        &format!("did not report messages_persistent {stats_note}"),
    );
    for c in [Check::RequeueLoop, Check::UnboundedGrowth] {
        out.skip_objects(
            c,
            no_verdict.clone(),
            "queues",
            "have no backlog verdict yet (the detector's window is not complete, or the depth is not reported)",
        );
    }
}

/// The settings checks of one queue: classic mirroring and contradictions.
fn settings(q: &Queue, major: Option<u32>, out: &mut Outcome) {
    let kind = queue_type(q);
    if q.setting("ha-mode").is_some() && kind == "classic" {
        let (summary, fix) = if major.is_some_and(|m| m >= 4) {
            (
                "a policy sets ha-mode, but RabbitMQ 4.x removed classic queue mirroring: this queue has one copy only",
                "declare the queue as a quorum queue (x-queue-type: quorum) and remove ha-* keys from the policy",
            )
        } else {
            (
                "classic mirrored queue (policy ha-mode): mirroring is deprecated and removed in RabbitMQ 4.0; quorum queues are the replacement",
                "migrate to a quorum queue (x-queue-type: quorum) before upgrading to 4.x, then remove ha-* keys from the policy",
            )
        };
        out.findings.push(Finding::queue(
            Check::ClassicMirrored,
            q,
            summary.to_owned(),
            fix,
        ));
    }
    let mut contradictions = Vec::new();
    if q.setting("queue-mode") == Some("lazy") && kind != "classic" {
        contradictions.push(format!(
            "queue-mode lazy is ignored by {kind} queues (it applies to classic queues only)"
        ));
    }
    let overflow = q.setting("overflow");
    if overflow == Some("reject-publish-dlx") {
        if kind == "quorum" {
            contradictions.push(
                "overflow reject-publish-dlx is not supported by quorum queues (use reject-publish or drop-head)".to_owned(),
            );
        }
        if q.setting("dead-letter-exchange").is_none() {
            contradictions.push(
                "overflow reject-publish-dlx without a dead-letter exchange: rejected messages are not dead-lettered anywhere".to_owned(),
            );
        }
    }
    if overflow.is_some()
        && q.limit("max-length").is_none()
        && q.limit("max-length-bytes").is_none()
    {
        contradictions.push(format!(
            "overflow {} is set but there is no max-length or max-length-bytes: it never applies",
            overflow.unwrap_or_default()
        ));
    }
    if !contradictions.is_empty() {
        out.findings.push(Finding::queue(
            Check::Contradictory,
            q,
            contradictions.join("; "),
            "fix the queue's arguments or policy so that every setting applies to this queue type (see the RabbitMQ docs on queue types and policies)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{found, inputs, queue};
    use crate::alerting::backlog::{Analysis, QueueBacklog, Status};
    use crate::audit::QueueList;

    fn classic(name: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut q = json!({"vhost": "/", "name": name, "type": "classic", "durable": true,
            "auto_delete": false, "exclusive": false, "messages_ready": 3,
            "messages_unacknowledged": 0, "messages_persistent": 3});
        if let (Some(o), Some(e)) = (q.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        q
    }

    fn verdict(redelivering: bool, growing: bool) -> QueueBacklog {
        QueueBacklog {
            analysis: Some(Analysis {
                status: Status::Ok,
                growing,
                stalled: false,
                no_consumers: false,
                redelivering,
                span: 60.0,
                window: 60.0,
                judged_for: 60.0,
                ready: 500,
                unacked: 1,
                ready_growth: 400,
                ingress_rate: 10.0,
                egress_rate: 0.0,
                redelivery_ratio: Some(0.9),
                time_to_drain: f64::INFINITY,
                time_to_overflow: None,
                oldest_age_estimate: None,
                idle_for: 60.0,
                idle_since_seen: true,
                counters: true,
                publish_counter: true,
                unknown_reason: "",
                delivering: true,
                dead_letter: false,
                delay: None,
            }),
            dead_letter: None,
            depth: Default::default(),
        }
    }

    #[test]
    fn durability() {
        let i = inputs(vec![
            queue(classic("ok", json!({}))),
            queue(classic("gone", json!({"durable": false}))),
            queue(classic(
                "empty-gone",
                json!({"durable": false, "messages_ready": 0, "messages_persistent": 0}),
            )),
            queue(classic("auto", json!({"auto_delete": true}))),
            queue(classic("transient", json!({"messages_persistent": 1}))),
            queue(classic(
                "qq",
                json!({"type": "quorum", "messages_persistent": 0}),
            )),
        ]);
        assert_eq!(
            found(&i),
            vec![
                ("transient_queue_with_messages", "auto".to_owned()),
                ("transient_queue_with_messages", "gone".to_owned()),
                ("transient_messages", "transient".to_owned()),
            ]
        );
    }

    #[test]
    fn missing_figures_skip_and_say_so() {
        // RabbitMQ 4.x with statistics disabled: no message counts at all.
        let mut i = inputs(vec![queue(
            json!({"vhost": "/", "name": "q", "type": "classic",
            "durable": false}),
        )]);
        i.disable_stats = Some(true);
        let out = super::super::audit(&i);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(
            out.skipped
                .iter()
                .any(|s| s.check.name() == "transient_queue_with_messages"
                    && s.reason.contains("statistics disabled"))
        );
        assert!(out.skipped.iter().any(|s| s.check.name() == "requeue_loop"));
    }

    #[test]
    fn requeue_loop_and_growth_need_the_detector_and_no_safety_net() {
        let mut i = inputs(vec![]);
        i.queues = Some(QueueList::Owned(vec![
            (queue(classic("loop", json!({}))), verdict(true, false)),
            (
                queue(classic(
                    "loop-dlx",
                    json!({"arguments": {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}}),
                )),
                verdict(true, false),
            ),
            (
                queue(classic(
                    "qq-limit",
                    json!({"type": "quorum", "arguments": {"x-delivery-limit": 5}}),
                )),
                verdict(true, false),
            ),
            (queue(classic("grows", json!({}))), verdict(false, true)),
            (
                queue(classic(
                    "grows-bounded",
                    json!({"effective_policy_definition": {"max-length": 10}}),
                )),
                verdict(false, true),
            ),
        ]));
        assert_eq!(
            found(&i),
            vec![
                ("requeue_loop", "loop".to_owned()),
                ("unbounded_queue_growing", "grows".to_owned()),
            ]
        );
        // On 4.x a quorum queue has a delivery limit by default.
        i.version = Some("4.0.5".to_owned());
        i.queues = Some(QueueList::Owned(vec![(
            queue(classic("qq", json!({"type": "quorum"}))),
            verdict(true, false),
        )]));
        assert_eq!(found(&i), vec![]);
    }

    #[test]
    fn mirroring_and_contradictions() {
        let i = inputs(vec![
            queue(classic(
                "mirrored",
                json!({"effective_policy_definition": {"ha-mode": "all"}}),
            )),
            queue(classic(
                "lazy-qq",
                json!({"type": "quorum", "arguments": {"x-queue-mode": "lazy", "x-max-length": 5}}),
            )),
            queue(classic(
                "dlx-less",
                json!({"arguments": {"x-overflow": "reject-publish-dlx", "x-max-length": 5}}),
            )),
            queue(classic(
                "fine",
                json!({"arguments": {"x-overflow": "reject-publish", "x-max-length": 5}}),
            )),
            queue(classic(
                "no-limit",
                json!({"arguments": {"x-overflow": "reject-publish"}}),
            )),
        ]);
        assert_eq!(
            found(&i),
            vec![
                ("classic_mirrored_queue", "mirrored".to_owned()),
                ("contradictory_settings", "dlx-less".to_owned()),
                ("contradictory_settings", "lazy-qq".to_owned()),
                ("contradictory_settings", "no-limit".to_owned()),
            ]
        );
    }
}
