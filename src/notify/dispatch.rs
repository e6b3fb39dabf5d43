//! From alerts to notifications, with Alertmanager's semantics: silences and inhibition mute
//! alerts; a route tree (matchers, `continue`) picks receivers; alerts are grouped by
//! `group_by`; a group is first notified after `group_wait`, then at most every
//! `group_interval` when it changed, and every `repeat_interval` while it fires unchanged.
//! Deliveries run in order per integration through [`super::deliver`] (the retry loop), and
//! what is still undelivered, the groups' notification log and the silences are saved in the
//! state file, so a restart neither loses nor repeats a notification.
//!
//! The decisions ([`Dispatcher::plan`]) are a pure function of the alerts, the state and
//! `now`; [`run`] is the task around them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::email::Email;
use super::webhook::Webhook;
use super::{Backoff, Message, MessageAlert, NotifyStats, deliver, rfc3339};
use crate::alerting::{Alert, AssessmentReceiver, State};
pub use crate::config::{InhibitRule, Route};
use crate::matcher::all_match;
pub use crate::matcher::{MatchOp, Matcher};

/// A silence: alerts matching every matcher are not notified between `starts_at` and
/// `ends_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    /// Identifier (32 hex digits).
    pub id: String,
    /// Matchers, as written (`name="value"`, …).
    pub matchers: Vec<String>,
    /// Start of the silence.
    #[serde(with = "crate::alerting::rfc3339")]
    pub starts_at: SystemTime,
    /// End of the silence (expiring sets it to now).
    #[serde(with = "crate::alerting::rfc3339")]
    pub ends_at: SystemTime,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// `active`, `pending` (not started) or `expired` at `now`.
    pub fn state(&self, now: SystemTime) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    fn parsed(&self) -> Vec<Matcher> {
        self.matchers
            .iter()
            .filter_map(|m| Matcher::parse(m).ok())
            .collect()
    }
}

/// Silences, shared by the HTTP API (create, list, expire) and the dispatcher (mute, save).
#[derive(Debug, Default)]
pub struct Silences {
    inner: Mutex<Vec<Silence>>,
}

impl Silences {
    /// Silences restored from the state file.
    pub fn from_saved(saved: Vec<Silence>) -> Self {
        Self {
            inner: Mutex::new(saved),
        }
    }

    /// Adds a silence; its matchers must parse.
    ///
    /// # Errors
    /// The first matcher that does not parse, or an end not after the start.
    pub fn add(&self, mut silence: Silence) -> Result<String, String> {
        if silence.matchers.is_empty() {
            return Err("a silence needs at least one matcher".to_owned());
        }
        for m in &silence.matchers {
            Matcher::parse(m)?;
        }
        if silence.ends_at <= silence.starts_at {
            return Err("endsAt must be after startsAt".to_owned());
        }
        if silence.id.is_empty() {
            silence.id = new_id();
        }
        let id = silence.id.clone();
        if let Ok(mut v) = self.inner.lock() {
            v.push(silence);
        }
        Ok(id)
    }

    /// Expires silence `id` at `now`; false when there is none.
    pub fn expire(&self, id: &str, now: SystemTime) -> bool {
        let Ok(mut v) = self.inner.lock() else {
            return false;
        };
        match v.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                if s.ends_at > now {
                    s.ends_at = now.max(s.starts_at);
                }
                true
            }
            None => false,
        }
    }

    /// Every silence, expired ones included (those expired for more than a day are dropped).
    pub fn list(&self, now: SystemTime) -> Vec<Silence> {
        let Ok(mut v) = self.inner.lock() else {
            return Vec::new();
        };
        v.retain(|s| {
            now.duration_since(s.ends_at).unwrap_or_default() < Duration::from_secs(86_400)
        });
        v.clone()
    }

    /// Whether an active silence mutes `labels` at `now`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: SystemTime) -> bool {
        self.inner.lock().is_ok_and(|v| {
            v.iter()
                .filter(|s| s.state(now) == "active")
                .any(|s| all_match(&s.parsed(), labels))
        })
    }
}

/// 32 hex digits from the system's randomness (via std's hasher seeds) and the clock.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A receiver: a name and its integrations.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Name, referenced by routes.
    pub name: String,
    /// Its integrations, in configuration order.
    pub integrations: Vec<Integration>,
}

/// One configured integration of a receiver.
#[derive(Debug, Clone)]
pub enum Integration {
    /// `webhook_configs` entry.
    Webhook(Webhook),
    /// `email_configs` entry.
    Email(Email),
}

impl Integration {
    /// `webhook` or `email`: the `integration` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::Email(_) => "email",
        }
    }

    fn send_resolved(&self) -> bool {
        match self {
            Integration::Webhook(w) => w.config.send_resolved,
            Integration::Email(e) => e.config.send_resolved,
        }
    }

    async fn notify(&self, msg: &Message) -> Result<(), super::NotifyError> {
        match self {
            Integration::Webhook(w) => w.notify(msg).await,
            Integration::Email(e) => e.notify(msg).await,
        }
    }
}

/// What the dispatcher remembers of a group: its timers and what it last announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// The route id (`0.1`) the group belongs to.
    pub route: String,
    /// The group labels.
    pub labels: BTreeMap<String, String>,
    /// When the next flush is due.
    #[serde(with = "crate::alerting::rfc3339")]
    pub next_flush: SystemTime,
    /// When it was last notified, if ever.
    #[serde(with = "crate::alerting::rfc3339_opt")]
    pub last_notified: Option<SystemTime>,
    /// Fingerprints announced as firing by the last notification.
    pub notified_firing: BTreeSet<String>,
}

/// A notification waiting for (or in) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id.
    pub id: u64,
    /// Receiver name.
    pub receiver: String,
    /// Index of the integration in the receiver.
    pub integration: usize,
    /// What to send.
    pub message: Message,
}

/// The state file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedState {
    /// Format version, 1.
    pub version: u32,
    /// Alert instances, restored into the engine.
    pub alerts: Vec<Alert>,
    /// Groups by key.
    pub groups: BTreeMap<String, GroupState>,
    /// Undelivered notifications.
    pub pending: Vec<Job>,
    /// Silences.
    pub silences: Vec<Silence>,
}

impl SavedState {
    /// Reads `path`; a missing file is an empty state.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<SavedState, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("state file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedState::default()),
            Err(e) => Err(format!("state file {}: {e}", path.display())),
        }
    }

    /// Writes `path` atomically (temporary file, fsync, rename).
    ///
    /// # Errors
    /// The I/O error.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// The static part of the dispatcher: routes, receivers, inhibition.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    /// The routing tree.
    pub route: Route,
    /// Receivers by name.
    pub receivers: Vec<Receiver>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRule>,
    /// The sidecar's URL for links in notifications.
    pub external_url: String,
}

/// The alerts of one group, as computed for one evaluation.
struct Members<'a> {
    /// The route that made the group.
    route: &'a Route,
    /// The route's id.
    id: String,
    /// The group labels.
    labels: BTreeMap<String, String>,
    /// The group's alerts (firing or resolved, not muted).
    alerts: Vec<&'a Alert>,
}

/// A decision of [`Dispatcher::plan`]: notify `receiver` for group `key` with `alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    /// The group key.
    pub key: String,
    /// The receiver.
    pub receiver: String,
    /// The group labels.
    pub labels: BTreeMap<String, String>,
    /// Firing alerts, then resolved ones.
    pub alerts: Vec<MessageAlert>,
}

impl Dispatcher {
    /// Whether `alert` is muted by an inhibition rule, given all firing alerts.
    fn inhibited(&self, alert: &Alert, firing: &[&Alert]) -> bool {
        self.inhibit_rules.iter().any(|rule| {
            all_match(&rule.target, &alert.labels)
                && firing.iter().any(|source| {
                    source.fingerprint != alert.fingerprint
                        && all_match(&rule.source, &source.labels)
                        && rule
                            .equal
                            .iter()
                            .all(|l| source.labels.get(l) == alert.labels.get(l))
                })
        })
    }

    /// The groups every notifiable alert belongs to, by group key.
    fn group<'a>(
        &'a self,
        alerts: &'a [Alert],
        silences: &Silences,
        now: SystemTime,
    ) -> BTreeMap<String, Members<'a>> {
        let firing: Vec<&Alert> = alerts.iter().filter(|a| a.state == State::Firing).collect();
        let mut groups: BTreeMap<String, Members<'a>> = BTreeMap::new();
        for alert in alerts.iter().filter(|a| a.state != State::Pending) {
            if silences.mutes(&alert.labels, now) || self.inhibited(alert, &firing) {
                continue;
            }
            for (id, route) in self.route.matching(&alert.labels) {
                let labels: BTreeMap<String, String> = match &route.group_by {
                    Some(names) => names
                        .iter()
                        .filter_map(|n| alert.labels.get(n).map(|v| (n.clone(), v.clone())))
                        .collect(),
                    None => alert.labels.clone(),
                };
                let key = format!("{id}:{}", label_text(&labels));
                groups
                    .entry(key)
                    .or_insert_with(|| Members {
                        route,
                        id: id.clone(),
                        labels,
                        alerts: Vec::new(),
                    })
                    .alerts
                    .push(alert);
            }
        }
        groups
    }

    /// Decides which groups to notify at `now`, updating `groups` (timers, notification log).
    pub fn plan(
        &self,
        alerts: &[Alert],
        groups: &mut BTreeMap<String, GroupState>,
        silences: &Silences,
        now: SystemTime,
    ) -> Vec<Flush> {
        let current = self.group(alerts, silences, now);
        let mut flushes = Vec::new();
        // Groups whose alerts are all gone: announce nothing more.
        groups.retain(|key, _| current.contains_key(key));
        for (key, group) in current {
            let Members {
                route,
                id,
                labels,
                alerts: members,
            } = group;
            let firing: BTreeSet<String> = members
                .iter()
                .filter(|a| a.state == State::Firing)
                .map(|a| a.fingerprint.clone())
                .collect();
            let state = groups.entry(key.clone()).or_insert_with(|| GroupState {
                route: id,
                labels: labels.clone(),
                next_flush: now + route.group_wait,
                last_notified: None,
                notified_firing: BTreeSet::new(),
            });
            // Resolved alerts that were announced firing and are not announced resolved yet.
            let resolved: Vec<&Alert> = members
                .iter()
                .copied()
                .filter(|a| {
                    a.state == State::Resolved && state.notified_firing.contains(&a.fingerprint)
                })
                .collect();
            if state.last_notified.is_none() && firing.is_empty() {
                // Never announced and nothing fires: nothing to say.
                continue;
            }
            if now < state.next_flush {
                continue;
            }
            let changed = firing != state.notified_firing || !resolved.is_empty();
            let repeat = !firing.is_empty()
                && state
                    .last_notified
                    .is_some_and(|t| elapsed(t, now) >= route.repeat_interval);
            if !(changed || repeat) {
                continue;
            }
            let mut message_alerts: Vec<MessageAlert> = members
                .iter()
                .filter(|a| a.state == State::Firing)
                .map(|a| MessageAlert::from_alert(a, &self.external_url))
                .collect();
            message_alerts.extend(
                resolved
                    .iter()
                    .map(|a| MessageAlert::from_alert(a, &self.external_url)),
            );
            flushes.push(Flush {
                key: key.clone(),
                receiver: route.receiver.clone(),
                labels: labels.clone(),
                alerts: message_alerts,
            });
            state.notified_firing = firing;
            state.last_notified = Some(now);
            state.next_flush = now + route.group_interval;
        }
        // A group whose last announcement was "all resolved" is done.
        groups.retain(|_, g| !(g.notified_firing.is_empty() && g.last_notified.is_some()));
        flushes
    }

    /// The jobs for `flush`: one per integration of its receiver that has something to send
    /// (an integration without `send_resolved` gets only the firing alerts, and nothing when
    /// none fires).
    pub fn jobs(&self, flush: &Flush, next_id: &mut u64) -> Vec<Job> {
        let Some(receiver) = self.receivers.iter().find(|r| r.name == flush.receiver) else {
            return Vec::new();
        };
        let mut jobs = Vec::new();
        for (i, integration) in receiver.integrations.iter().enumerate() {
            let alerts: Vec<MessageAlert> = flush
                .alerts
                .iter()
                .filter(|a| integration.send_resolved() || a.status == "firing")
                .cloned()
                .collect();
            if alerts.is_empty() {
                continue;
            }
            *next_id += 1;
            jobs.push(Job {
                id: *next_id,
                receiver: receiver.name.clone(),
                integration: i,
                message: Message::new(
                    &receiver.name,
                    &flush.key,
                    flush.labels.clone(),
                    alerts,
                    &self.external_url,
                ),
            });
        }
        jobs
    }
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or_default()
}

/// `{a="1",b="2"}`.
fn label_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// What [`run`] needs besides the dispatcher.
pub struct Runtime {
    /// Where state is saved (`notify.state_file`); `None`: kept in memory only.
    pub state_file: Option<PathBuf>,
    /// State read at start-up (groups, pending jobs; alerts go to the engine, silences to
    /// `silences`).
    pub saved: SavedState,
    /// The silences.
    pub silences: Arc<Silences>,
    /// Delivery counters.
    pub stats: Arc<NotifyStats>,
    /// Retry policy.
    pub backoff: Backoff,
}

/// Dispatches notifications for every assessment until `shutdown`, then saves the state.
pub async fn run(
    dispatcher: Dispatcher,
    runtime: Runtime,
    mut assessments: AssessmentReceiver,
    shutdown: CancellationToken,
) {
    let Runtime {
        state_file,
        saved,
        silences,
        stats,
        backoff,
    } = runtime;
    let dispatcher = Arc::new(dispatcher);
    let pending: Arc<Mutex<BTreeMap<u64, Job>>> = Arc::new(Mutex::new(BTreeMap::new()));
    // One ordered queue per (receiver, integration).
    let mut queues: BTreeMap<(String, usize), mpsc::UnboundedSender<Job>> = BTreeMap::new();
    let workers = tokio_util::task::TaskTracker::new();
    for receiver in &dispatcher.receivers {
        for (i, integration) in receiver.integrations.iter().enumerate() {
            stats.register(&receiver.name, integration.kind());
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            queues.insert((receiver.name.clone(), i), tx);
            let integration = integration.clone();
            let pending = pending.clone();
            let stats = stats.clone();
            let name = receiver.name.clone();
            let stop = shutdown.clone();
            workers.spawn(async move {
                loop {
                    let job = tokio::select! {
                        _ = stop.cancelled() => break,
                        job = rx.recv() => match job { Some(j) => j, None => break },
                    };
                    let delivery = tokio::select! {
                        // An interrupted delivery stays pending and is resent after a restart.
                        _ = stop.cancelled() => break,
                        d = deliver(backoff, || integration.notify(&job.message), |attempt, e, wait| {
                            tracing::warn!(receiver = %name, integration = integration.kind(), attempt, reason = e.reason, error = %e, retry_in = ?wait, "notification failed, retrying");
                        }) => d,
                    };
                    stats.record(&name, integration.kind(), &delivery);
                    match &delivery.result {
                        Ok(()) => tracing::info!(receiver = %name, integration = integration.kind(), group = %job.message.group_key, status = %job.message.status, alerts = job.message.alerts.len(), attempts = delivery.attempts, "notification sent"),
                        Err(e) => tracing::error!(receiver = %name, integration = integration.kind(), group = %job.message.group_key, attempts = delivery.attempts, reason = e.reason, error = %e, "notification given up"),
                    }
                    if let Ok(mut p) = pending.lock() {
                        p.remove(&job.id);
                    }
                }
            });
        }
    }
    workers.close();

    let enqueue = |job: Job| {
        if let Some(tx) = queues.get(&(job.receiver.clone(), job.integration)) {
            if let Ok(mut p) = pending.lock() {
                p.insert(job.id, job.clone());
            }
            let _ = tx.send(job);
        }
    };
    let mut next_id = saved.pending.iter().map(|j| j.id).max().unwrap_or(0);
    for job in saved.pending {
        tracing::info!(receiver = %job.receiver, group = %job.message.group_key, "resending a notification left undelivered before the restart");
        enqueue(job);
    }
    let mut groups = saved.groups;
    // Until the first evaluation, the alerts saved before the restart.
    let restored: Arc<Vec<Alert>> = Arc::new(saved.alerts);
    let mut assessment: Option<Arc<crate::alerting::Assessment>> = None;
    let save = |groups: &BTreeMap<String, GroupState>, alerts: &[Alert]| {
        let Some(path) = &state_file else { return };
        let state = SavedState {
            version: 1,
            alerts: alerts.to_vec(),
            groups: groups.clone(),
            pending: pending
                .lock()
                .map(|p| p.values().cloned().collect())
                .unwrap_or_default(),
            silences: silences.list(SystemTime::now()),
        };
        if let Err(e) = state.save(path) {
            tracing::error!(path = %path.display(), error = %e, "cannot save the state file");
        }
    };
    let pending_len = || pending.lock().map_or(0, |p| p.len());
    let mut saved_pending = usize::MAX;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut changed = false;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            result = assessments.changed() => {
                if result.is_err() { break }
                if let Some(a) = assessments.borrow_and_update().clone() {
                    assessment = Some(a);
                    changed = true;
                }
            }
            _ = tick.tick() => {}
        }
        let now = SystemTime::now();
        let alerts: &[Alert] = assessment.as_ref().map_or(&restored, |a| &a.alerts);
        // Groups change only with the alerts; otherwise only timers can make a flush due.
        if changed || groups.values().any(|g| g.next_flush <= now) {
            for flush in dispatcher.plan(alerts, &mut groups, &silences, now) {
                changed = true;
                for job in dispatcher.jobs(&flush, &mut next_id) {
                    enqueue(job);
                }
            }
        }
        // Saved after every evaluation and whenever the undelivered notifications change.
        if changed || pending_len() != saved_pending {
            saved_pending = pending_len();
            save(&groups, alerts);
        }
    }
    workers.wait().await;
    let alerts: &[Alert] = assessment.as_ref().map_or(&restored, |a| &a.alerts);
    save(&groups, alerts);
    tracing::debug!("dispatcher stopped");
}

/// Parses an RFC 3339 time (for the silences API).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| format!("`{text}`: {e}"))
}

/// Formats a time as the API shows it.
pub fn format_time(t: SystemTime) -> String {
    rfc3339(t)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::alerting::fingerprint;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn alert(name: &str, queue: &str, severity: &str, state: State) -> Alert {
        let labels: BTreeMap<String, String> = [
            ("alertname", name),
            ("queue", queue),
            ("severity", severity),
            ("vhost", "/"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        Alert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: BTreeMap::new(),
            analysis: None,
            state,
            value: 1.0,
            active_since: at(0),
            fired_at: Some(at(0)),
            resolved_at: (state == State::Resolved).then(|| at(0)),
            last_true: at(0),
            unknown: false,
        }
    }

    fn route(group_by: &[&str]) -> Route {
        Route {
            receiver: "team".into(),
            group_by: Some(group_by.iter().map(ToString::to_string).collect()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
            matchers: vec![],
            continue_: false,
            routes: vec![],
        }
    }

    fn dispatcher(route: Route) -> Dispatcher {
        Dispatcher {
            route,
            receivers: vec![],
            inhibit_rules: vec![],
            external_url: "http://w".into(),
        }
    }

    fn names(flushes: &[Flush]) -> Vec<(String, Vec<(String, String)>)> {
        flushes
            .iter()
            .map(|f| {
                (
                    f.receiver.clone(),
                    f.alerts
                        .iter()
                        .map(|a| (a.labels["queue"].clone(), a.status.clone()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn group_wait_then_group_interval_then_repeat() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let a1 = alert("Backlog", "q1", "warning", State::Firing);
        let a2 = alert("Backlog", "q2", "warning", State::Firing);
        // New group: nothing before group_wait.
        assert!(
            d.plan(std::slice::from_ref(&a1), &mut groups, &silences, at(0))
                .is_empty()
        );
        assert!(
            d.plan(&[a1.clone(), a2.clone()], &mut groups, &silences, at(29))
                .is_empty()
        );
        let f = d.plan(&[a1.clone(), a2.clone()], &mut groups, &silences, at(30));
        assert_eq!(
            names(&f),
            [(
                "team".into(),
                vec![
                    ("q1".into(), "firing".into()),
                    ("q2".into(), "firing".into())
                ]
            )]
        );
        // Unchanged: silent until repeat_interval.
        assert!(
            d.plan(&[a1.clone(), a2.clone()], &mut groups, &silences, at(400))
                .is_empty()
        );
        let f = d.plan(&[a1.clone(), a2.clone()], &mut groups, &silences, at(3630));
        assert_eq!(f.len(), 1, "repeat after 1 h");
        // q2 resolves: announced at the next group_interval tick, not before.
        let r2 = alert("Backlog", "q2", "warning", State::Resolved);
        assert!(
            d.plan(&[a1.clone(), r2.clone()], &mut groups, &silences, at(3700))
                .is_empty()
        );
        let f = d.plan(&[a1.clone(), r2.clone()], &mut groups, &silences, at(3930));
        assert_eq!(
            names(&f),
            [(
                "team".into(),
                vec![
                    ("q1".into(), "firing".into()),
                    ("q2".into(), "resolved".into())
                ]
            )]
        );
        // q1 resolves too: last notification, then the group is gone.
        let r1 = alert("Backlog", "q1", "warning", State::Resolved);
        let f = d.plan(&[r1.clone(), r2.clone()], &mut groups, &silences, at(4230));
        assert_eq!(
            f[0].alerts
                .iter()
                .filter(|a| a.status == "resolved")
                .count(),
            1
        );
        assert!(groups.is_empty());
        assert!(
            d.plan(&[r1, r2], &mut groups, &silences, at(4600))
                .is_empty()
        );
    }

    #[test]
    fn an_alert_resolved_before_group_wait_is_never_announced() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        d.plan(
            &[alert("Backlog", "q1", "warning", State::Firing)],
            &mut groups,
            &silences,
            at(0),
        );
        let r = alert("Backlog", "q1", "warning", State::Resolved);
        assert!(
            d.plan(std::slice::from_ref(&r), &mut groups, &silences, at(30))
                .is_empty()
        );
        assert!(d.plan(&[r], &mut groups, &silences, at(400)).is_empty());
    }

    #[test]
    fn sub_routes_pick_receivers_and_continue_fans_out() {
        let mut root = route(&["alertname"]);
        let mut pager = route(&["alertname"]);
        pager.receiver = "pager".into();
        pager.matchers = vec![Matcher::parse("severity=\"critical\"").unwrap()];
        pager.continue_ = true;
        let mut chat = route(&["alertname"]);
        chat.receiver = "chat".into();
        chat.matchers = vec![Matcher::parse("severity=~\"critical|warning\"").unwrap()];
        root.routes = vec![pager, chat];
        let labels = |sev: &str| alert("X", "q", sev, State::Firing).labels;
        let receivers = |sev| {
            root.matching(&labels(sev))
                .into_iter()
                .map(|(_, r)| r.receiver.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(receivers("critical"), ["pager", "chat"]);
        assert_eq!(receivers("warning"), ["chat"]);
        assert_eq!(receivers("info"), ["team"]);
    }

    #[test]
    fn silences_mute_until_they_expire() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let id = silences
            .add(Silence {
                id: String::new(),
                matchers: vec!["queue=\"q1\"".into()],
                starts_at: at(0),
                ends_at: at(3600),
                created_by: "me".into(),
                comment: "maintenance".into(),
            })
            .unwrap();
        let mut groups = BTreeMap::new();
        let a = vec![alert("Backlog", "q1", "warning", State::Firing)];
        d.plan(&a, &mut groups, &silences, at(0));
        assert!(d.plan(&a, &mut groups, &silences, at(60)).is_empty());
        assert!(silences.expire(&id, at(100)));
        assert_eq!(silences.list(at(100))[0].state(at(100)), "expired");
        d.plan(&a, &mut groups, &silences, at(100));
        assert_eq!(d.plan(&a, &mut groups, &silences, at(130)).len(), 1);
    }

    #[test]
    fn inhibition_mutes_targets_with_equal_labels_while_the_source_fires() {
        let mut d = dispatcher(route(&["alertname"]));
        d.inhibit_rules = vec![InhibitRule {
            source: vec![Matcher::parse("alertname=\"Partition\"").unwrap()],
            target: vec![Matcher::parse("alertname=\"NodeDown\"").unwrap()],
            equal: vec!["vhost".into()],
        }];
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let source = alert("Partition", "-", "critical", State::Firing);
        let target = alert("NodeDown", "-", "critical", State::Firing);
        let both = [source.clone(), target.clone()];
        d.plan(&both, &mut groups, &silences, at(0));
        let f = d.plan(&both, &mut groups, &silences, at(30));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].alerts[0].labels["alertname"], "Partition");
        // Once the source resolves, the target is notified.
        let mut resolved = source.clone();
        resolved.state = State::Resolved;
        let after = [resolved, target];
        d.plan(&after, &mut groups, &silences, at(60));
        let f = d.plan(&after, &mut groups, &silences, at(400));
        let announced: Vec<&str> = f
            .iter()
            .flat_map(|f| f.alerts.iter().map(|a| a.labels["alertname"].as_str()))
            .collect();
        assert!(announced.contains(&"NodeDown"), "{announced:?}");
    }

    #[test]
    fn state_file_round_trips_atomically() {
        let dir = std::env::temp_dir().join(format!("rw-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(SavedState::load(&path).unwrap().alerts.len(), 0);
        let state = SavedState {
            version: 1,
            alerts: vec![alert("X", "q", "warning", State::Firing)],
            ..SavedState::default()
        };
        state.save(&path).unwrap();
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(SavedState::load(&path).unwrap().alerts, state.alerts);
        std::fs::write(&path, "{broken").unwrap();
        assert!(SavedState::load(&path).unwrap_err().contains("state.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
