//! Alertmanager integration: the sidecar's firing (and recently resolved) alerts are POSTed to
//! every configured Alertmanager's `/api/v2/alerts`, and re-sent while they fire, as Prometheus
//! does, so an Alertmanager cluster can dedup, route, silence and inhibit them at scale.
//!
//! - [`RawAlertmanager`] is a `notify.alertmanagers` entry as written; [`AlertmanagerConfig`]
//!   is the validated form ([`AlertmanagerConfig::from_raw`]), both defined in
//!   [`crate::config::alertmanager`].
//! - [`postable_alerts`] is the pure part: the alerts of an assessment → the API v2 payload.
//!   Pending alerts are never sent. A firing alert's `endsAt` is `now + 4 × resend_delay`, so
//!   Alertmanager resolves it by itself if the sidecar stops re-sending (as Prometheus does); a
//!   resolved one's is when it resolved.
//! - [`Alertmanagers::run`] pushes to every Alertmanager independently (one slow or down
//!   Alertmanager never delays the others): whenever the set of (fingerprint, state) differs
//!   from the last one that Alertmanager accepted, and at least every `resend_delay` while there
//!   is anything to send. Each push goes through [`super::deliver`] (the one retry loop), giving
//!   up after `resend_delay` since the next resend takes over, and is counted in
//!   [`NotifyStats`] under receiver `alertmanager[i]` (its index in the list: URLs may hold
//!   secrets) and integration `alertmanager`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Backoff, NotifyError, NotifyStats, deliver, http_error, http_status_error};
use crate::alerting::{Alert, AssessmentReceiver, State};
pub use crate::config::alertmanager::{AlertmanagerConfig, DEFAULT_TIMEOUT, RawAlertmanager};
use crate::util::time::format_rfc3339;

/// The `integration` label of every Alertmanager delivery in [`NotifyStats`].
pub const INTEGRATION: &str = "alertmanager";

/// Longest `endsAt` horizon ever sent (4 × `resend_delay`, capped): keeps the arithmetic in
/// range whatever the configuration.
const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// One alert as Alertmanager's API v2 accepts it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// The alert's labels (its identity for Alertmanager).
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    pub starts_at: String,
    /// When it ended (resolved), or until when it is valid without a resend (firing).
    pub ends_at: String,
    /// Where to see it: the sidecar's `/api/v1/alerts`.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Whether Alertmanager is told about `alert`: firing and resolved ones, never pending ones.
fn is_sent(alert: &Alert) -> bool {
    matches!(alert.state, State::Firing | State::Resolved)
}

/// The Alertmanager API v2 payload for `alerts` at `now`: every firing and resolved alert
/// (pending ones are left out), in the order given. `startsAt` is when it started firing (or
/// became active, if that is unknown); `endsAt` is `now + 4 × resend_delay` for a firing alert
/// (Alertmanager resolves it by itself unless re-sent in time) and when it resolved for a
/// resolved one. `generatorURL` is `{external_url}/api/v1/alerts`.
pub fn postable_alerts(
    alerts: &[Alert],
    now: SystemTime,
    resend_delay: Duration,
    external_url: &str,
) -> Vec<PostableAlert> {
    let lifetime = resend_delay.saturating_mul(4).min(MAX_LIFETIME);
    let firing_until = now.checked_add(lifetime).unwrap_or(now);
    let generator_url = format!("{}/api/v1/alerts", external_url.trim_end_matches('/'));
    alerts
        .iter()
        .filter(|a| is_sent(a))
        .map(|a| {
            let ends_at = match a.state {
                State::Resolved => a.resolved_at.unwrap_or(now),
                _ => firing_until,
            };
            PostableAlert {
                labels: (*a.labels).clone(),
                annotations: (*a.annotations).clone(),
                starts_at: format_rfc3339(a.fired_at.unwrap_or(a.active_since)),
                ends_at: format_rfc3339(ends_at),
                generator_url: generator_url.clone(),
            }
        })
        .collect()
}

/// What a push tells Alertmanager, for deciding whether to push again: the state of every
/// alert sent, by fingerprint.
fn sent_set(alerts: &[Alert]) -> BTreeMap<String, State> {
    alerts
        .iter()
        .filter(|a| is_sent(a))
        .map(|a| (a.fingerprint.clone(), a.state))
        .collect()
}

/// The backoff of one push: retries for at most `resend_delay` (the next resend takes over),
/// starting at a quarter of it (at most 1 s) and waiting at most a quarter of it.
fn backoff(resend_delay: Duration) -> Backoff {
    let initial = (resend_delay / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    Backoff {
        initial,
        max: (resend_delay / 4).max(initial),
        give_up_after: resend_delay,
    }
}

/// The Alertmanager pusher: one independent push loop per configured Alertmanager.
#[derive(Debug)]
pub struct Alertmanagers {
    /// One per `notify.alertmanagers` entry, in order.
    targets: Vec<Target>,
    /// What every push loop shares.
    shared: Arc<Shared>,
}

/// What the push loops share (read only).
#[derive(Debug)]
struct Shared {
    /// `notify.resend_delay`: how often alerts are re-sent while there are any, and how long a
    /// push is retried.
    resend_delay: Duration,
    /// `notify.external_url`: the sidecar's own URL, for `generatorURL`.
    external_url: String,
    /// Delivery counters, shared with the metrics.
    stats: Arc<NotifyStats>,
}

/// One Alertmanager.
struct Target {
    /// Index in `notify.alertmanagers`: names it in logs and stats.
    index: usize,
    /// `alertmanager[{index}]`: the `receiver` in [`NotifyStats`].
    receiver: String,
    /// `{url}api/v2/alerts`; never logged (it may hold secrets).
    endpoint: Url,
    /// The HTTP client (with the configured timeout), or why it could not be built.
    client: Result<reqwest::Client, NotifyError>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("receiver", &self.receiver)
            .field("client_ok", &self.client.is_ok())
            .finish_non_exhaustive()
    }
}

impl Alertmanagers {
    /// A pusher to `configs`, re-sending alerts every `resend_delay` while there are any, with
    /// `generatorURL`s under `external_url`. Registers `alertmanager[i]` (integration
    /// `alertmanager`) in `stats` at 0 for each entry. Installs the rustls crypto provider; a
    /// client that cannot be built is logged here and counted as a failure at each push.
    pub fn new(
        configs: Vec<AlertmanagerConfig>,
        resend_delay: Duration,
        external_url: String,
        stats: Arc<NotifyStats>,
    ) -> Self {
        crate::install_crypto_provider();
        let targets = configs
            .into_iter()
            .enumerate()
            .map(|(index, cfg)| {
                let receiver = format!("alertmanager[{index}]");
                stats.register(&receiver, INTEGRATION);
                let client = reqwest::Client::builder()
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
                    .user_agent(concat!("rabbitmq-watch/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| {
                        let e = http_error(e);
                        NotifyError::permanent("invalid", e.message)
                    });
                if let Err(e) = &client {
                    tracing::error!(
                        alertmanager = index,
                        error = %e,
                        "cannot build the Alertmanager HTTP client"
                    );
                }
                Target {
                    index,
                    receiver,
                    endpoint: cfg.alerts_endpoint(),
                    client,
                }
            })
            .collect();
        Alertmanagers {
            targets,
            shared: Arc::new(Shared {
                resend_delay,
                external_url,
                stats,
            }),
        }
    }

    /// Pushes the alerts of every new assessment (the current one first, if any), and re-sends
    /// them every `resend_delay` while there are any, to every Alertmanager concurrently, until
    /// `shutdown` (which also interrupts a push in progress) or until the assessment channel
    /// closes. Returns at once when no Alertmanager is configured.
    pub async fn run(self, assessments: AssessmentReceiver, shutdown: CancellationToken) {
        if self.targets.is_empty() {
            return;
        }
        tracing::info!(
            alertmanagers = self.targets.len(),
            resend_delay = ?self.shared.resend_delay,
            "pushing alerts to Alertmanager"
        );
        let mut loops = JoinSet::new();
        for target in self.targets {
            loops.spawn(target.run(
                Arc::clone(&self.shared),
                assessments.clone(),
                shutdown.clone(),
            ));
        }
        while loops.join_next().await.is_some() {}
    }
}

impl Target {
    /// The push loop of one Alertmanager.
    async fn run(
        self,
        shared: Arc<Shared>,
        mut assessments: AssessmentReceiver,
        shutdown: CancellationToken,
    ) {
        // What this Alertmanager last accepted, and when the last push started.
        let mut accepted: BTreeMap<String, State> = BTreeMap::new();
        let mut last_push: Option<Instant> = None;
        // When to re-send, while there is anything to send.
        let mut resend_at: Option<Instant> = None;
        let mut first = true;
        loop {
            if !first {
                let deadline = resend_at.unwrap_or_else(Instant::now);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    changed = assessments.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep_until(deadline), if resend_at.is_some() => {}
                }
            }
            first = false;
            let Some(assessment) = assessments.borrow_and_update().clone() else {
                continue;
            };
            let current = sent_set(&assessment.alerts);
            if current.is_empty() {
                // Nothing to tell: what was sent before resolves in Alertmanager by itself.
                accepted.clear();
                resend_at = None;
                continue;
            }
            let resend_due = last_push.is_none_or(|t| t.elapsed() >= shared.resend_delay);
            if current != accepted || resend_due {
                let now = SystemTime::now();
                let payload = postable_alerts(
                    &assessment.alerts,
                    now,
                    shared.resend_delay,
                    &shared.external_url,
                );
                last_push = Some(Instant::now());
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    ok = self.push(&shared, &payload) => if ok { accepted = current },
                }
            }
            resend_at = last_push.map(|t| t + shared.resend_delay);
        }
    }

    /// One push of `payload` through [`deliver`], recorded in the stats and logged; whether
    /// Alertmanager accepted it.
    async fn push(&self, shared: &Shared, payload: &[PostableAlert]) -> bool {
        let index = self.index;
        let delivery = deliver(
            backoff(shared.resend_delay),
            || self.attempt(payload),
            |attempt, e, wait| {
                shared
                    .stats
                    .attempt_failed(&self.receiver, INTEGRATION, e.reason);
                tracing::debug!(
                    alertmanager = index,
                    attempt,
                    reason = e.reason,
                    error = %e,
                    wait = ?wait,
                    "pushing alerts to Alertmanager failed, retrying"
                );
            },
        )
        .await;
        shared.stats.record(&self.receiver, INTEGRATION, &delivery);
        match &delivery.result {
            Ok(()) => {
                tracing::debug!(
                    alertmanager = index,
                    alerts = payload.len(),
                    attempts = delivery.attempts,
                    "pushed alerts to Alertmanager"
                );
                true
            }
            Err(e) => {
                tracing::warn!(
                    alertmanager = index,
                    reason = e.reason,
                    error = %e,
                    attempts = delivery.attempts,
                    "pushing alerts to Alertmanager failed"
                );
                false
            }
        }
    }

    /// One HTTP request: `POST {url}api/v2/alerts` with `payload`.
    async fn attempt(&self, payload: &[PostableAlert]) -> Result<(), NotifyError> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let response = client
            .post(self.endpoint.clone())
            .json(payload)
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(http_status_error(status, &body))
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn alert(queue: &str, state: State) -> Alert {
        let labels: BTreeMap<String, String> = [("alertname", "Backlog"), ("queue", queue)]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        Alert {
            fingerprint: crate::alerting::fingerprint(&labels),
            labels: Arc::new(labels),
            annotations: Arc::new([("summary".to_owned(), format!("{queue} is backed up"))].into()),
            analysis: None,
            state,
            value: 1.0,
            active_since: at(0),
            fired_at: (state != State::Pending).then(|| at(60)),
            resolved_at: (state == State::Resolved).then(|| at(300)),
            last_true: at(240),
            unknown: false,
            keep_firing_since: None,
        }
    }

    fn raw(url: Option<&str>, timeout: Option<&str>) -> RawAlertmanager {
        RawAlertmanager {
            url: url.map(str::to_owned),
            timeout: timeout.map(str::to_owned),
        }
    }

    #[test]
    fn payload_has_firing_and_resolved_alerts_but_never_pending_ones() {
        let alerts = [
            alert("a", State::Firing),
            alert("b", State::Pending),
            alert("c", State::Resolved),
        ];
        let now = at(400);
        let p = postable_alerts(&alerts, now, Duration::from_secs(60), "http://watch:9419/");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].labels["queue"], "a");
        assert_eq!(p[0].annotations["summary"], "a is backed up");
        assert_eq!(p[0].starts_at, format_rfc3339(at(60)));
        assert_eq!(
            p[0].ends_at,
            format_rfc3339(at(400 + 240)),
            "now + 4 × resend_delay"
        );
        assert_eq!(p[1].labels["queue"], "c");
        assert_eq!(p[1].starts_at, format_rfc3339(at(60)));
        assert_eq!(p[1].ends_at, format_rfc3339(at(300)), "when it resolved");
        assert_eq!(p[0].generator_url, "http://watch:9419/api/v1/alerts");
    }

    #[test]
    fn firing_end_moves_with_now_and_resend_delay() {
        let a = [alert("a", State::Firing)];
        let p = postable_alerts(&a, at(1000), Duration::from_millis(1500), "http://w");
        assert_eq!(p[0].ends_at, format_rfc3339(at(1006)));
        let p = postable_alerts(&a, at(2000), Duration::from_secs(1), "http://w");
        assert_eq!(p[0].ends_at, format_rfc3339(at(2004)));
        // Absurd delays stay in range.
        let p = postable_alerts(&a, at(0), Duration::MAX, "http://w");
        assert_eq!(p[0].ends_at, format_rfc3339(at(0) + MAX_LIFETIME));
    }

    #[test]
    fn start_falls_back_to_active_since() {
        let mut a = alert("a", State::Firing);
        a.fired_at = None;
        let p = postable_alerts(&[a], at(100), Duration::from_secs(60), "http://w");
        assert_eq!(p[0].starts_at, format_rfc3339(at(0)));
    }

    #[test]
    fn payload_uses_api_v2_field_names() {
        let p = postable_alerts(
            &[alert("a", State::Firing)],
            at(100),
            Duration::from_secs(60),
            "http://w",
        );
        let json = serde_json::to_value(&p).unwrap();
        let obj = json[0].as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "annotations",
                "endsAt",
                "generatorURL",
                "labels",
                "startsAt"
            ]
        );
    }

    #[test]
    fn sent_set_ignores_pending_alerts_and_tracks_state() {
        let firing = sent_set(&[alert("a", State::Firing), alert("b", State::Pending)]);
        let resolved = sent_set(&[alert("a", State::Resolved), alert("b", State::Pending)]);
        assert_eq!(firing.len(), 1);
        assert_ne!(firing, resolved);
        assert!(sent_set(&[alert("b", State::Pending)]).is_empty());
    }

    #[test]
    fn backoff_gives_up_at_the_resend_delay() {
        let b = backoff(Duration::from_secs(60));
        assert_eq!(b.initial, Duration::from_secs(1));
        assert_eq!(b.max, Duration::from_secs(15));
        assert_eq!(b.give_up_after, Duration::from_secs(60));
        let b = backoff(Duration::from_secs(1));
        assert_eq!(b.initial, Duration::from_millis(250));
        assert_eq!(b.give_up_after, Duration::from_secs(1));
    }

    #[test]
    fn stats_are_registered_at_zero_under_the_index() {
        let stats = Arc::new(NotifyStats::default());
        let cfg = |u: &str| AlertmanagerConfig::from_raw(raw(Some(u), None), "k").unwrap();
        let am = Alertmanagers::new(
            vec![
                cfg("http://a:9093"),
                cfg("http://user-token.example/secret"),
            ],
            Duration::from_secs(60),
            "http://w".into(),
            Arc::clone(&stats),
        );
        let snap = stats.snapshot();
        let keys: Vec<_> = snap.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                ("alertmanager[0]".to_owned(), INTEGRATION),
                ("alertmanager[1]".to_owned(), INTEGRATION)
            ]
        );
        assert!(snap.values().all(|s| s.sent == 0 && s.failed.is_empty()));
        assert!(!format!("{am:?}").contains("secret"));
    }
}
