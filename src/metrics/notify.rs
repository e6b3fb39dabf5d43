//! Notification delivery metrics, per receiver and integration, from the notifiers' shared
//! [`NotifyStats`] (read at each encoding, so up to one poll interval old).

use std::collections::HashMap;
use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::registry::Unit;

use super::Family;
use crate::notify::{DROP_REASONS, LATENCY_BUCKETS, NotifyError, NotifyStats};

/// `rabbitmq_watch_notifications_total{receiver,integration}`: notifications delivered.
pub const SENT: Family = Family {
    name: "rabbitmq_watch_notifications",
    help: "Notifications delivered, per receiver and integration (webhook, email, alertmanager).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_notifications_failed_total{receiver,integration,reason}`: given up.
pub const FAILED: Family = Family {
    name: "rabbitmq_watch_notifications_failed",
    help: "Notifications given up on (permanent error, or retries exhausted), by the reason of the last attempt: connect, timeout, http_4xx, http_5xx, smtp, invalid, other.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_notifications_queued{receiver,integration}`: waiting for delivery.
pub const QUEUED: Family = Family {
    name: "rabbitmq_watch_notifications_queued",
    help: "Notifications waiting in the integration's queue, not yet started (at most 1000; more are dropped).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_notifications_in_flight{receiver,integration}`: being delivered.
pub const IN_FLIGHT: Family = Family {
    name: "rabbitmq_watch_notifications_in_flight",
    help: "Notifications being delivered now, retries included (one at a time per integration).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_notification_attempts_failed_total{receiver,integration,reason}`.
pub const ATTEMPTS_FAILED: Family = Family {
    name: "rabbitmq_watch_notification_attempts_failed",
    help: "Delivery attempts that failed, counted as each fails (retried or not), by reason: connect, timeout, http_4xx, http_5xx, smtp, invalid, other.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_notifications_dropped_total{receiver,integration,reason}`.
pub const DROPPED: Family = Family {
    name: "rabbitmq_watch_notifications_dropped",
    help: "Notifications dropped without delivery, by reason: queue_full (1000 waiting); their groups are sent again at the next group_interval.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_notification_latency_seconds{receiver,integration}`: histogram.
pub const LATENCY: Family = Family {
    name: "rabbitmq_watch_notification_latency",
    help: "Time from the first delivery attempt of a notification to its outcome, retries included.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_watch_state_file_write_failures_total`: failed saves of the state file.
pub const STATE_WRITE_FAILURES: Family = Family {
    name: "rabbitmq_watch_state_file_write_failures",
    help: "Saves of the state file (notify.state_file) that failed; the previous file stays in place and the next save tries again. Exported only when a state file is configured.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_state_file_writable`: 1 while the last save of the state file succeeded
/// (or none was tried yet), 0 while it failed, until a save succeeds again.
pub const STATE_WRITABLE: Family = Family {
    name: "rabbitmq_watch_state_file_writable",
    help: "1 while the last save of the state file (notify.state_file) succeeded or none was tried yet, 0 while the last save failed (/-/ready answers 503 naming the file and the error until a save succeeds again). Exported only when a state file is configured.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_state_file_load_failures_total`: state files set aside at start-up.
pub const STATE_LOAD_FAILURES: Family = Family {
    name: "rabbitmq_watch_state_file_load_failures",
    help: "State files set aside at start-up (unreadable, corrupt, truncated or written by a newer version) and replaced by an empty state. Exported only when a state file is configured.",
    unit: None,
    source: "sidecar",
};

/// Writes the notification families.
pub fn encode(enc: &mut DescriptorEncoder, stats: &NotifyStats) -> fmt::Result {
    if let Some(state) = stats.state_file() {
        STATE_WRITE_FAILURES.counter_value(enc, state.write_failures)?;
        STATE_WRITABLE.gauge_value(enc, Some(i64::from(state.write_error.is_none())))?;
        STATE_LOAD_FAILURES.counter_value(enc, state.load_failures)?;
    }
    let all = stats.snapshot();
    let labels = |(receiver, integration): &(String, &'static str)| {
        [
            ("receiver", receiver.clone()),
            ("integration", (*integration).to_owned()),
        ]
    };
    SENT.counter(enc, all.iter().map(|(k, s)| (labels(k), s.sent)))?;
    FAILED.counter(
        enc,
        all.iter().flat_map(|(k, s)| {
            NotifyError::REASONS.iter().map(move |reason| {
                let [r, i] = labels(k);
                (
                    [r, i, ("reason", (*reason).to_owned())],
                    s.failed.get(reason).copied().unwrap_or(0),
                )
            })
        }),
    )?;
    QUEUED.gauge(enc, all.iter().map(|(k, s)| (labels(k), s.queued)))?;
    IN_FLIGHT.gauge(enc, all.iter().map(|(k, s)| (labels(k), s.in_flight)))?;
    ATTEMPTS_FAILED.counter(
        enc,
        all.iter().flat_map(|(k, s)| {
            NotifyError::REASONS.iter().map(move |reason| {
                let [r, i] = labels(k);
                (
                    [r, i, ("reason", (*reason).to_owned())],
                    s.failed_attempts.get(reason).copied().unwrap_or(0),
                )
            })
        }),
    )?;
    DROPPED.counter(
        enc,
        all.iter().flat_map(|(k, s)| {
            DROP_REASONS.iter().map(move |reason| {
                let [r, i] = labels(k);
                (
                    [r, i, ("reason", (*reason).to_owned())],
                    s.dropped.get(reason).copied().unwrap_or(0),
                )
            })
        }),
    )?;
    let help = LATENCY.help.to_owned();
    let mut family = enc.encode_descriptor(
        LATENCY.name,
        &help,
        LATENCY.unit.as_ref(),
        MetricType::Histogram,
    )?;
    for (k, s) in &all {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .zip(s.latency_buckets.iter().copied())
            .collect();
        buckets.push((f64::MAX, s.latency_buckets[LATENCY_BUCKETS.len()]));
        let label_set = labels(k);
        let mut metric = family.encode_family(&label_set)?;
        metric.encode_histogram::<NoLabelSet>(
            s.latency_sum,
            s.latency_count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )?;
    }
    Ok(())
}
