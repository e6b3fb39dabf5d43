//! Notifications: what is sent ([`Message`], Alertmanager's webhook payload, version 4), how a
//! delivery fails ([`NotifyError`]: retryable or not), and the one place that retries
//! ([`deliver`], capped exponential backoff). One file per integration:
//! [`webhook`], [`email`], [`alertmanager`]. Split by concern as Alertmanager's packages are:
//! label matchers in [`crate::matcher`], the route tree in [`crate::config::Route`], silences
//! in [`silence`], inhibition in [`inhibit`], the state file in [`state`], and grouping,
//! timers, the notification log and delivery in [`dispatch`].

pub mod alertmanager;
pub mod dispatch;
pub mod email;
pub mod inhibit;
pub mod silence;
pub mod state;
pub mod suppress;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use crate::alerting::{Alert, State};
use crate::util::error_chain;
use crate::util::time::format_rfc3339;

/// A notification for one group of alerts: Alertmanager's webhook payload (version "4"), so
/// every existing webhook receiver understands it. The email integration renders the same data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Always `"4"`.
    pub version: String,
    /// Identifies the group: the route's id and the group labels.
    pub group_key: String,
    /// Alerts left out (always 0: nothing is truncated).
    pub truncated_alerts: u64,
    /// `firing` if any alert in `alerts` fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is keyed by (`group_by`).
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert in `alerts` has with the same value.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert in `alerts` has with the same value.
    pub common_annotations: BTreeMap<String, String>,
    /// The sidecar's URL (`notify.external_url`).
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts: firing ones, and resolved ones when the receiver sends resolved.
    pub alerts: Vec<MessageAlert>,
}

/// One alert in a [`Message`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels, shared with the [`Alert`] (serialized as the map itself): planning
    /// 10,000 alerts once built 10,000 copies of each map, ~15 MB at the heap's peak (#13).
    #[serde(with = "crate::util::ser::shared")]
    pub labels: Arc<BTreeMap<String, String>>,
    /// The alert's annotations, shared like `labels`.
    #[serde(with = "crate::util::ser::shared")]
    pub annotations: Arc<BTreeMap<String, String>>,
    /// When it started firing (RFC 3339).
    pub starts_at: String,
    /// When it resolved; `0001-01-01T00:00:00Z` while firing (as Alertmanager sends).
    pub ends_at: String,
    /// Where to see it: the sidecar's `/api/v1/alerts`.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// 16 hex digits identifying the label set.
    pub fingerprint: String,
}

/// `endsAt` of an alert that has not ended.
pub const NO_END: &str = "0001-01-01T00:00:00Z";

/// Time helpers of [`crate::util::time`] under the names the notifier modules use:
/// `rfc3339` formats (never panics), `rfc3339_checked`/`rfc3339_checked_opt` are serde
/// adapters that fail instead of panicking on a time RFC 3339 cannot write.
pub use crate::util::time::{
    add_time, format_rfc3339 as rfc3339, latest_time, representable, rfc3339 as rfc3339_checked,
    rfc3339_opt as rfc3339_checked_opt,
};

impl MessageAlert {
    /// The message form of `alert` (which must be firing or resolved).
    pub fn from_alert(alert: &Alert, external_url: &str) -> Self {
        let resolved = alert.state == State::Resolved;
        MessageAlert {
            status: if resolved { "resolved" } else { "firing" }.to_owned(),
            labels: Arc::clone(&alert.labels),
            annotations: Arc::clone(&alert.annotations),
            starts_at: format_rfc3339(alert.fired_at.unwrap_or(alert.active_since)),
            ends_at: match (resolved, alert.resolved_at) {
                (true, Some(t)) => format_rfc3339(t),
                _ => NO_END.to_owned(),
            },
            generator_url: format!("{}/api/v1/alerts", external_url.trim_end_matches('/')),
            fingerprint: alert.fingerprint.clone(),
        }
    }
}

impl Message {
    /// A message for `alerts` of one group.
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: BTreeMap<String, String>,
        alerts: Vec<MessageAlert>,
        external_url: &str,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == "firing") {
            "firing"
        } else {
            "resolved"
        };
        Message {
            version: "4".to_owned(),
            group_key: group_key.to_owned(),
            truncated_alerts: 0,
            status: status.to_owned(),
            receiver: receiver.to_owned(),
            group_labels,
            common_labels: common(alerts.iter().map(|a| &*a.labels)),
            common_annotations: common(alerts.iter().map(|a| &*a.annotations)),
            external_url: external_url.to_owned(),
            alerts,
        }
    }
}

/// The pairs every map of `maps` has with the same value.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut common = first.clone();
    for m in maps {
        common.retain(|k, v| m.get(k) == Some(v));
    }
    common
}

/// Why a delivery failed. Messages never contain credentials or full URLs with secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    /// Whether trying again may succeed (connection errors, timeouts, 5xx, SMTP 4xx): yes;
    /// bad address, HTTP 4xx, SMTP 5xx: no.
    pub retryable: bool,
    /// A short bounded name for the `reason` label: `connect`, `timeout`, `http_4xx`,
    /// `http_5xx`, `smtp`, `invalid`, `other`.
    pub reason: &'static str,
    /// What happened, for logs.
    pub message: String,
}

impl NotifyError {
    /// A failure worth retrying.
    pub fn retryable(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            reason,
            message: message.into(),
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            reason,
            message: message.into(),
        }
    }

    /// Every value of `reason`, for exporting failure counters at 0 up front.
    pub const REASONS: [&'static str; 7] = [
        "connect", "timeout", "http_4xx", "http_5xx", "smtp", "invalid", "other",
    ];
}

/// The classification of a reqwest error (for the HTTP integrations), URL stripped.
pub fn http_error(e: reqwest::Error) -> NotifyError {
    let e = e.without_url();
    let text = error_chain(&e);
    if e.is_timeout() {
        NotifyError::retryable("timeout", text)
    } else if e.is_connect() {
        NotifyError::retryable("connect", text)
    } else if e.is_builder() {
        NotifyError::permanent("invalid", text)
    } else {
        NotifyError::retryable("other", text)
    }
}

/// The classification of an HTTP status answered to a notification.
pub fn http_status_error(status: reqwest::StatusCode, body: &str) -> NotifyError {
    let excerpt: String = body.chars().take(200).collect();
    let message = format!("HTTP {status}: {excerpt}");
    if status.is_server_error() || status.as_u16() == 429 {
        NotifyError::retryable("http_5xx", message)
    } else {
        NotifyError::permanent("http_4xx", message)
    }
}

/// Delivery counters per (receiver, integration), shared by the notifiers (which record) and
/// the metrics encoder (which reads a copy at each encoding).
#[derive(Debug, Default)]
pub struct NotifyStats {
    inner: std::sync::Mutex<BTreeMap<(String, &'static str), IntegrationStats>>,
    /// The state file's counters; `None` while no state file is configured.
    state_file: std::sync::Mutex<Option<StateFileStats>>,
}

/// Counters of the state file (`notify.state_file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateFileStats {
    /// Saves that failed (I/O error, or content that cannot be written); the previous file
    /// stays in place.
    pub write_failures: u64,
    /// Files set aside at start-up (unreadable, corrupt, truncated, or of a newer version),
    /// after which the sidecar started with an empty state.
    pub load_failures: u64,
    /// Why the last save failed (naming the file and the error), until a save succeeds again;
    /// `None` before the first save and while saves succeed. Makes `/-/ready` answer 503 and
    /// `rabbitmq_watch_state_file_writable` 0.
    pub write_error: Option<String>,
}

/// Counters of one (receiver, integration).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegrationStats {
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications given up on, by [`NotifyError::reason`] of the last attempt.
    pub failed: BTreeMap<&'static str, u64>,
    /// Sum of delivery latencies (first attempt to outcome, retries included), seconds.
    pub latency_sum: f64,
    /// Number of latencies summed.
    pub latency_count: u64,
    /// Latencies per bucket of [`LATENCY_BUCKETS`] (not cumulative; the last is +Inf).
    pub latency_buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Notifications waiting in the queue, not yet started (gauge).
    pub queued: u64,
    /// Notifications being delivered now, retries included (gauge: 0 or 1 per integration).
    pub in_flight: u64,
    /// Failed attempts, counted as each fails (retried or last), by [`NotifyError::reason`].
    pub failed_attempts: BTreeMap<&'static str, u64>,
    /// Notifications dropped without an attempt, by reason ([`DROP_REASONS`]).
    pub dropped: BTreeMap<&'static str, u64>,
}

/// Most notifications waiting per (receiver, integration): a receiver that is down for a long
/// time holds at most this many (one per group and flush); more are dropped and counted
/// (`rabbitmq_watch_notifications_dropped_total{reason="queue_full"}`), and their groups are
/// sent again at their next `group_interval`.
pub const QUEUE_CAPACITY: usize = 1_000;

/// Every reason a notification is dropped: `queue_full` (the integration's queue holds
/// [`QUEUE_CAPACITY`] notifications).
pub const DROP_REASONS: [&str; 1] = ["queue_full"];

/// Upper bounds (seconds) of the delivery latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0];

impl NotifyStats {
    /// Creates the (receiver, integration) entry at 0, so its series exist before any delivery.
    pub fn register(&self, receiver: &str, integration: &'static str) {
        if let Ok(mut map) = self.inner.lock() {
            map.entry((receiver.to_owned(), integration)).or_default();
        }
    }

    /// Records the outcome of one delivery.
    pub fn record(&self, receiver: &str, integration: &'static str, delivery: &Delivery) {
        if let Ok(mut map) = self.inner.lock() {
            let stats = map.entry((receiver.to_owned(), integration)).or_default();
            match &delivery.result {
                Ok(()) => stats.sent = stats.sent.saturating_add(1),
                Err(e) => {
                    let n = stats.failed.entry(e.reason).or_default();
                    *n = n.saturating_add(1);
                    // The last attempt (retried ones are counted as they fail).
                    let n = stats.failed_attempts.entry(e.reason).or_default();
                    *n = n.saturating_add(1);
                }
            }
            let seconds = delivery.latency.as_secs_f64();
            stats.latency_sum += seconds;
            stats.latency_count += 1;
            let bucket = LATENCY_BUCKETS
                .iter()
                .position(|b| seconds <= *b)
                .unwrap_or(LATENCY_BUCKETS.len());
            stats.latency_buckets[bucket] += 1;
        }
    }

    /// Applies `f` to the (receiver, integration) entry.
    fn with(
        &self,
        receiver: &str,
        integration: &'static str,
        f: impl FnOnce(&mut IntegrationStats),
    ) {
        if let Ok(mut map) = self.inner.lock() {
            f(map.entry((receiver.to_owned(), integration)).or_default());
        }
    }

    /// A notification joined the queue.
    pub fn queued(&self, receiver: &str, integration: &'static str) {
        self.with(receiver, integration, |s| {
            s.queued = s.queued.saturating_add(1);
        });
    }

    /// A notification left the queue and its delivery started.
    pub fn started(&self, receiver: &str, integration: &'static str) {
        self.with(receiver, integration, |s| {
            s.queued = s.queued.saturating_sub(1);
            s.in_flight = s.in_flight.saturating_add(1);
        });
    }

    /// A delivery ended (delivered, given up, or interrupted by shutdown).
    pub fn ended(&self, receiver: &str, integration: &'static str) {
        self.with(receiver, integration, |s| {
            s.in_flight = s.in_flight.saturating_sub(1);
        });
    }

    /// One attempt failed (whether or not it will be retried).
    pub fn attempt_failed(&self, receiver: &str, integration: &'static str, reason: &'static str) {
        self.with(receiver, integration, |s| {
            let n = s.failed_attempts.entry(reason).or_default();
            *n = n.saturating_add(1);
        });
    }

    /// A notification was dropped for `reason` (one of [`DROP_REASONS`]).
    pub fn dropped(&self, receiver: &str, integration: &'static str, reason: &'static str) {
        self.with(receiver, integration, |s| {
            let n = s.dropped.entry(reason).or_default();
            *n = n.saturating_add(1);
        });
    }

    /// Creates the state file counters at 0 (a state file is configured).
    pub fn register_state_file(&self) {
        if let Ok(mut s) = self.state_file.lock() {
            s.get_or_insert_with(StateFileStats::default);
        }
    }

    /// Counts a failed save of the state file and keeps `reason` (the file and the error) as
    /// [`StateFileStats::write_error`] until [`NotifyStats::state_file_saved`].
    pub fn state_file_write_failed(&self, reason: String) {
        if let Ok(mut s) = self.state_file.lock() {
            let s = s.get_or_insert_with(StateFileStats::default);
            s.write_failures = s.write_failures.saturating_add(1);
            s.write_error = Some(reason);
        }
    }

    /// Records a successful save of the state file: clears [`StateFileStats::write_error`].
    pub fn state_file_saved(&self) {
        if let Ok(mut s) = self.state_file.lock() {
            s.get_or_insert_with(StateFileStats::default).write_error = None;
        }
    }

    /// Counts a state file set aside at start-up.
    pub fn state_file_load_failed(&self) {
        if let Ok(mut s) = self.state_file.lock() {
            let s = s.get_or_insert_with(StateFileStats::default);
            s.load_failures = s.load_failures.saturating_add(1);
        }
    }

    /// `Err` with the reason (naming the file and the error) while the last save of the state
    /// file failed, until a save succeeds again; `Ok` without a state file or before the first
    /// save. A readiness condition ([`crate::supervise::Health::add_readiness_check`]): the
    /// process stays healthy, alerting goes on.
    ///
    /// # Errors
    /// The reason of the last failed save.
    pub fn state_file_readiness(&self) -> Result<(), String> {
        match self.state_file().and_then(|s| s.write_error) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// The state file counters, `None` when no state file is configured.
    pub fn state_file(&self) -> Option<StateFileStats> {
        self.state_file.lock().ok().and_then(|s| s.clone())
    }

    /// A copy of every entry.
    pub fn snapshot(&self) -> BTreeMap<(String, &'static str), IntegrationStats> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Backoff between delivery attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// Stop retrying after this long since the first attempt.
    pub give_up_after: Duration,
}

impl Default for Backoff {
    /// 1 s, doubling to at most 1 min, for at most 1 h.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        }
    }
}

/// The outcome of [`deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts made.
    pub attempts: u32,
    /// `Ok` when delivered; the last error otherwise.
    pub result: Result<(), NotifyError>,
    /// Time from the first attempt to the outcome.
    pub latency: Duration,
}

/// Calls `attempt` until it succeeds, fails permanently, or `backoff.give_up_after` has
/// passed, sleeping with capped exponential backoff between retryable failures: the only retry
/// loop of the notifiers. `on_retry` is told about each failure that will be retried.
pub async fn deliver<F, Fut>(
    backoff: Backoff,
    mut attempt: F,
    mut on_retry: impl FnMut(u32, &NotifyError, Duration),
) -> Delivery
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), NotifyError>>,
{
    let start = Instant::now();
    let mut wait = backoff.initial;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = attempt().await;
        let done = match &result {
            Ok(()) => true,
            Err(e) => !e.retryable || start.elapsed().saturating_add(wait) > backoff.give_up_after,
        };
        if done {
            return Delivery {
                attempts,
                result,
                latency: start.elapsed(),
            };
        }
        if let Err(e) = &result {
            on_retry(attempts, e, wait);
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_failures_with_capped_backoff() {
        let calls = AtomicU32::new(0);
        let mut waits = Vec::new();
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(4),
            give_up_after: Duration::from_secs(3600),
        };
        let d = deliver(
            backoff,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=3 => Err(NotifyError::retryable("http_5xx", "HTTP 500")),
                    _ => Ok(()),
                }
            },
            |_, _, wait| waits.push(wait.as_secs()),
        )
        .await;
        assert_eq!(d.attempts, 5);
        assert_eq!(d.result, Ok(()));
        assert_eq!(waits, [1, 2, 4, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_failures() {
        let calls = AtomicU32::new(0);
        let d = deliver(
            Backoff::default(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(NotifyError::permanent("http_4xx", "HTTP 400"))
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(d.attempts, 1);
        assert!(d.result.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_deadline() {
        let backoff = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(10),
            give_up_after: Duration::from_secs(35),
        };
        let d = deliver(
            backoff,
            || async { Err(NotifyError::retryable("connect", "refused")) },
            |_, _, _| {},
        )
        .await;
        assert_eq!(
            d.attempts, 4,
            "at 0, 10, 20, 30 s; the next wait would pass 35 s"
        );
    }

    #[test]
    fn message_has_common_labels_and_alertmanager_field_names() {
        let a = |q: &str| MessageAlert {
            status: "firing".into(),
            labels: [("alertname", "X"), ("queue", q)]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into_iter()
                .collect::<BTreeMap<_, _>>()
                .into(),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00.000Z".into(),
            ends_at: NO_END.into(),
            generator_url: "http://w/api/v1/alerts".into(),
            fingerprint: "0123456789abcdef".into(),
        };
        let m = Message::new(
            "team",
            "{}:{}",
            BTreeMap::new(),
            vec![a("q1"), a("q2")],
            "http://w",
        );
        assert_eq!(m.status, "firing");
        assert_eq!(m.common_labels.len(), 1);
        let json = serde_json::to_value(&m).unwrap();
        for key in [
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        for key in [
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        ] {
            assert!(json["alerts"][0].get(key).is_some(), "{key}");
        }
    }
}
