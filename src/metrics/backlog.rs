//! The backlog detector's view as per-queue families (labels `vhost`, `queue`): status,
//! predictions, redelivery ratio, oldest-message age estimate and dead-letter queues, plus the
//! detector's own size. Series exist only for queues whose window is complete (a queue the
//! detector cannot judge yet has none), and predictions only where they mean something.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::Family;
use super::queues::labels;
use crate::alerting::backlog::Report;
use crate::snapshot::Snapshot;

/// `rabbitmq_queue_backlog_status{vhost,queue,status}`: 1, with `status` the queue's
/// classification.
pub const STATUS: Family = Family {
    name: "rabbitmq_queue_backlog_status",
    help: "The backlog detector's classification of the queue over its window, as the status label with value 1: ok, growing (ready never decreased and rose), stalled (consumers attached, nothing consumed), no_consumers (messages ready, no consumer) or redelivering (redelivered/delivered above the threshold). Absent until the queue's window is complete.",
    unit: None,
    source: "/api/queues messages_ready, messages_unacknowledged, consumers, message_stats over alerting.backlog.window",
};

/// `rabbitmq_queue_time_to_drain_seconds{vhost,queue}`.
pub const TIME_TO_DRAIN: Family = Family {
    name: "rabbitmq_queue_time_to_drain",
    help: "Predicted time until the queue is empty at the net rate of the backlog window (least-squares slope of ready + unacknowledged); 0 when empty. Absent when the queue is not shrinking or its window is incomplete.",
    unit: Some(Unit::Seconds),
    source: "/api/queues messages_ready + messages_unacknowledged over alerting.backlog.window",
};

/// `rabbitmq_queue_time_to_overflow_seconds{vhost,queue,overflow}`.
pub const TIME_TO_OVERFLOW: Family = Family {
    name: "rabbitmq_queue_time_to_overflow",
    help: "Predicted time until the queue reaches its max-length (ready messages) or max-length-bytes at the net rate of the backlog window; 0 when at the limit. The overflow label says what happens then: drop-head (oldest messages dropped or dead-lettered), reject-publish or reject-publish-dlx. Absent without a length limit, when not growing, or while the window is incomplete.",
    unit: Some(Unit::Seconds),
    source: "/api/queues messages_ready, message_bytes_ready, arguments and effective_policy_definition (max-length, max-length-bytes, overflow)",
};

/// `rabbitmq_queue_redelivery_ratio{vhost,queue}`.
pub const REDELIVERY_RATIO: Family = Family {
    name: "rabbitmq_queue_redelivery_ratio",
    help: "Redelivered / delivered messages over the backlog window (0..1); above alerting.backlog.redelivery_threshold consumers are rejecting with requeue or crashing. Absent without deliveries in the window or without message statistics.",
    unit: None,
    source: "/api/queues message_stats.redeliver / (deliver + deliver_no_ack + get + get_no_ack) over alerting.backlog.window",
};

/// `rabbitmq_queue_oldest_message_age_estimate_seconds{vhost,queue}`.
pub const OLDEST_AGE_ESTIMATE: Family = Family {
    name: "rabbitmq_queue_oldest_message_age_estimate",
    help: "Estimated age of the oldest ready message: when the queue's publish counter passed it, within the backlog window (assumes first-in first-out; requeued messages make it low). Only for queues whose head message has no timestamp (see rabbitmq_queue_head_message_age_seconds); absent when the backlog is older than the window.",
    unit: Some(Unit::Seconds),
    source: "/api/queues message_stats.publish and messages_ready over alerting.backlog.window",
};

/// `rabbitmq_queue_dead_letter_queue_info{vhost,queue}`.
pub const DEAD_LETTER: Family = Family {
    name: "rabbitmq_queue_dead_letter_queue",
    help: "1 for each queue that receives dead-lettered messages: bound to a dead-letter exchange another queue names, named by a dead-letter routing key through the default exchange, or matching alerting.backlog.dead_letter_queues.",
    unit: None,
    source: "/api/queues arguments and effective_policy_definition (dead-letter-exchange, dead-letter-routing-key), /api/exchanges/{vhost}/{name}/bindings/source",
};

/// `rabbitmq_watch_backlog_queues{window}`.
pub const QUEUES: Family = Family {
    name: "rabbitmq_watch_backlog_queues",
    help: "Queues the backlog detector tracks, by whether their window is complete (judged) or not yet.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_backlog_samples`.
pub const SAMPLES: Family = Family {
    name: "rabbitmq_watch_backlog_samples",
    help: "Samples held by the backlog detector's windows, all queues together (40 bytes each).",
    unit: None,
    source: "sidecar",
};

/// Writes the backlog families for the queues of `s` judged in `report` (the same queues,
/// in the same order); the detector's size families always.
pub fn encode(enc: &mut DescriptorEncoder, s: &Snapshot, report: &Report) -> fmt::Result {
    QUEUES.gauge(
        enc,
        [
            ([("window", "complete")], report.complete as i64),
            ([("window", "incomplete")], report.incomplete as i64),
        ],
    )?;
    SAMPLES.gauge_value(enc, Some(report.samples as i64))?;
    let Some(queues) = s.queues.ok() else {
        return Ok(());
    };
    let judged = || {
        queues
            .iter()
            .zip(&report.queues)
            .filter_map(|(q, b)| b.analysis.as_ref().map(|a| (q, a)))
    };
    STATUS.gauge(
        enc,
        judged().map(|(q, a)| {
            let [vhost, queue] = labels(q);
            ([vhost, queue, ("status", a.status.label())], 1i64)
        }),
    )?;
    TIME_TO_DRAIN.gauge(
        enc,
        judged()
            .filter(|(_, a)| a.time_to_drain.is_finite())
            .map(|(q, a)| (labels(q), a.time_to_drain)),
    )?;
    TIME_TO_OVERFLOW.gauge(
        enc,
        judged().filter_map(|(q, a)| {
            let (t, overflow) = a.time_to_overflow?;
            let [vhost, queue] = labels(q);
            t.is_finite()
                .then_some(([vhost, queue, ("overflow", overflow.label())], t))
        }),
    )?;
    REDELIVERY_RATIO.gauge(
        enc,
        judged()
            .filter(|(_, a)| a.counters)
            .filter_map(|(q, a)| a.redelivery_ratio.map(|r| (labels(q), r))),
    )?;
    OLDEST_AGE_ESTIMATE.gauge(
        enc,
        judged().filter_map(|(q, a)| a.oldest_age_estimate.map(|age| (labels(q), age))),
    )?;
    DEAD_LETTER.info(
        enc,
        queues
            .iter()
            .zip(&report.queues)
            .filter(|(_, b)| b.dead_letter == Some(true))
            .map(|(q, _)| labels(q)),
    )
}
