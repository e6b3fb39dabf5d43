//! The dispatcher: from alerts to notifications, with Alertmanager's semantics. Silences
//! ([`super::silence`]) and inhibition ([`super::inhibit`]) mute alerts; the route tree
//! ([`crate::config::Route`]) picks receivers; alerts are grouped by `group_by`; a group is first
//! notified after `group_wait`, then at most every `group_interval` when it changed, and every
//! `repeat_interval` while it fires unchanged. Deliveries run in order per integration through
//! [`super::deliver`] (the retry loop), and what is still undelivered, the groups'
//! notification log and the silences are saved in the state file ([`super::state`]), so a
//! restart neither loses nor repeats a notification.
//!
//! The decisions ([`Dispatcher::plan`]) are a pure function of the alerts, the state and
//! `now`; [`run`] is the task around them.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::email::Email;
use super::webhook::Webhook;
use super::{Backoff, Message, MessageAlert, NotifyStats, deliver};
use crate::alerting::{Alert, AssessmentReceiver, State};

// The types split out of this module, at the paths the rest of the crate uses.
pub use super::silence::{Silence, Silences};
pub use super::state::SavedState;
pub use crate::config::{InhibitRule, Route};
pub use crate::matcher::{MatchOp, Matcher};
use crate::util::{Updates, elapsed};

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

/// What the dispatcher remembers of a group: its timer, its notification log (what was last
/// delivered) and the notification being delivered, if any.
///
/// As in Alertmanager, the log (`last_notified`, `notified_firing`) is written only once every
/// integration of the receiver has delivered the notification: a notification that failed is
/// tried again at the next `group_interval`, not after `repeat_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// The route id (`0.1`) the group belongs to.
    pub route: String,
    /// The group labels.
    pub labels: BTreeMap<String, String>,
    /// When the next flush is due.
    #[serde(with = "super::rfc3339_checked")]
    pub next_flush: SystemTime,
    /// When it was last notified (delivered), if ever.
    #[serde(with = "super::rfc3339_checked_opt")]
    pub last_notified: Option<SystemTime>,
    /// Fingerprints announced as firing by the last delivered notification.
    pub notified_firing: BTreeSet<String>,
    /// The notification being delivered; the group is not flushed again until it settles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// After a notification some integrations delivered and others did not: its content and
    /// the integrations that have it, so sending it again skips them (Alertmanager keeps its
    /// log per integration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
}

/// A notification delivered to only some integrations of the receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// `fingerprint:status` of each alert of the notification.
    pub content: BTreeSet<String>,
    /// Indexes of the integrations that delivered it.
    pub delivered: BTreeSet<usize>,
}

/// A flushed notification of a group whose delivery has not settled yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    /// When the group was flushed.
    #[serde(with = "super::rfc3339_checked")]
    pub at: SystemTime,
    /// The fingerprints it announces as firing (written to the log on success).
    pub firing: BTreeSet<String>,
    /// Ids of its jobs still undelivered.
    pub jobs: BTreeSet<u64>,
    /// Whether a job was given up on.
    pub failed: bool,
    /// `fingerprint:status` of each alert of the notification.
    #[serde(default)]
    pub content: BTreeSet<String>,
    /// Indexes of the integrations that have delivered it.
    #[serde(default)]
    pub delivered: BTreeSet<usize>,
}

impl GroupState {
    /// Whether the last delivered announcement was "all resolved" and nothing is in flight:
    /// the group is over.
    fn done(&self) -> bool {
        self.notified_firing.is_empty() && self.last_notified.is_some() && self.in_flight.is_none()
    }

    /// Writes the log when the in-flight notification has no job left: on success, what it
    /// announced; after a failure, nothing (so the next flush sends it again).
    fn settle(&mut self) {
        let Some(flight) = &self.in_flight else {
            return;
        };
        if !flight.jobs.is_empty() {
            return;
        }
        if flight.failed {
            self.partial = (!flight.delivered.is_empty()).then(|| Partial {
                content: flight.content.clone(),
                delivered: flight.delivered.clone(),
            });
        } else {
            self.notified_firing = flight.firing.clone();
            self.last_notified = Some(flight.at);
            self.partial = None;
        }
        self.in_flight = None;
    }
}

/// The outcome of one job, reported by the delivery workers to the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The group key (the message's `groupKey`).
    pub group: String,
    /// The job id.
    pub job: u64,
    /// The index of the job's integration in the receiver.
    pub integration: usize,
    /// Delivered (`true`) or given up on.
    pub delivered: bool,
}

/// The integrations that already delivered what `flush` sends (an earlier attempt of the same
/// notification that failed elsewhere): they are skipped.
pub fn already_delivered(groups: &BTreeMap<String, GroupState>, flush: &Flush) -> BTreeSet<usize> {
    groups
        .get(&flush.key)
        .and_then(|g| g.partial.as_ref())
        .filter(|p| p.content == flush.content())
        .map(|p| p.delivered.clone())
        .unwrap_or_default()
}

/// Records that the flush of group `key` became the jobs `ids` (none: nothing to deliver,
/// which counts as delivered), the integrations of `skipped` having it already.
pub fn started(
    groups: &mut BTreeMap<String, GroupState>,
    key: &str,
    ids: impl IntoIterator<Item = u64>,
    skipped: BTreeSet<usize>,
) {
    if let Some(group) = groups.get_mut(key) {
        if let Some(flight) = &mut group.in_flight {
            flight.jobs.extend(ids);
            flight.delivered.extend(skipped);
        }
        group.settle();
    }
    drop_done(groups, key);
}

/// Forgets group `key` when its last delivered announcement was "all resolved".
fn drop_done(groups: &mut BTreeMap<String, GroupState>, key: &str) {
    if groups.get(key).is_some_and(GroupState::done) {
        groups.remove(key);
    }
}

/// Records the outcome of one job; writes the group's log once all its jobs delivered.
pub fn finished(groups: &mut BTreeMap<String, GroupState>, outcome: &Outcome) {
    if let Some(group) = groups.get_mut(&outcome.group) {
        if let Some(flight) = &mut group.in_flight
            && flight.jobs.remove(&outcome.job)
        {
            if outcome.delivered {
                flight.delivered.insert(outcome.integration);
            } else {
                flight.failed = true;
            }
        }
        group.settle();
    }
    drop_done(groups, &outcome.group);
}

/// When the dispatch loop plans the groups ([`Dispatcher::plan`]): whenever the alerts, the
/// deliveries or the configuration changed, and otherwise (on its 1 s tick) only when a group's
/// flush timer (`next_flush`) has come due since the last plan.
///
/// A group whose `group_interval` passed with nothing new to send keeps its `next_flush` in
/// the past until it sends again; planning on every tick while any timer lay in the past planned
/// every alert each second (~0.3 s of CPU per poll with 10,000 firing alerts, issue #13). What
/// such a tick could find (a repeat falling due, a silence expiring) is found at the next
/// assessment, one poll later at most.
#[derive(Debug, Clone, Copy)]
pub struct PlanClock {
    last: SystemTime,
}

impl Default for PlanClock {
    fn default() -> Self {
        Self {
            last: SystemTime::UNIX_EPOCH,
        }
    }
}

impl PlanClock {
    /// Whether to plan at `now` (`changed`: the alerts, a delivery or the configuration
    /// changed); when it answers yes, `now` becomes the last plan. A clock set back (`now`
    /// before the last plan) plans.
    pub fn due(
        &mut self,
        changed: bool,
        groups: &BTreeMap<String, GroupState>,
        now: SystemTime,
    ) -> bool {
        let due = changed
            || now < self.last
            || groups
                .values()
                .any(|g| g.next_flush <= now && g.next_flush > self.last);
        if due {
            self.last = now;
        }
        due
    }
}

/// After a restart: in-flight jobs that are not among the undelivered ones restored (`live`)
/// cannot be known to have been delivered; they count as failed, so the group is sent again
/// at its next flush (at least once, never lost).
pub fn reconcile(groups: &mut BTreeMap<String, GroupState>, live: &BTreeSet<u64>) {
    for group in groups.values_mut() {
        if let Some(flight) = &mut group.in_flight {
            let before = flight.jobs.len();
            flight.jobs.retain(|id| live.contains(id));
            if flight.jobs.len() != before {
                flight.failed = true;
            }
        }
        group.settle();
    }
    groups.retain(|_, g| !g.done());
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

impl Flush {
    /// `fingerprint:status` of each alert: what identifies the notification's content.
    pub fn content(&self) -> BTreeSet<String> {
        self.alerts
            .iter()
            .map(|a| format!("{}:{}", a.fingerprint, a.status))
            .collect()
    }
}

impl Dispatcher {
    /// The groups every notifiable alert belongs to, by group key.
    fn group<'a>(
        &'a self,
        alerts: &'a [Alert],
        silences: &Silences,
        now: SystemTime,
    ) -> BTreeMap<String, Members<'a>> {
        let inhibitions = super::inhibit::Inhibitions::new(&self.inhibit_rules, alerts.iter());
        let mut groups: BTreeMap<String, Members<'a>> = BTreeMap::new();
        for alert in alerts.iter().filter(|a| a.state != State::Pending) {
            if silences.mutes(&alert.labels, now) || inhibitions.inhibited(alert) {
                continue;
            }
            for (id, route) in self.route.matching(&alert.labels) {
                let labels: BTreeMap<String, String> = match &route.group_by {
                    Some(names) => names
                        .iter()
                        .filter_map(|n| alert.labels.get(n).map(|v| (n.clone(), v.clone())))
                        .collect(),
                    None => (*alert.labels).clone(),
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

    /// Decides which groups to notify at `now`, updating `groups` (timers; the flushed
    /// notification is marked in flight, and the log is written by [`started`] and
    /// [`finished`] once it is delivered). A group whose notification is still in flight is not
    /// flushed again.
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
            if firing.is_empty() && !groups.contains_key(&key) {
                // Nothing fires and never announced: no group (its timer would only wake ticks).
                continue;
            }
            let state = groups.entry(key.clone()).or_insert_with(|| GroupState {
                route: id,
                labels: labels.clone(),
                next_flush: super::add_time(now, route.group_wait),
                last_notified: None,
                notified_firing: BTreeSet::new(),
                in_flight: None,
                partial: None,
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
            if now < state.next_flush || state.in_flight.is_some() {
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
            let flush = Flush {
                key: key.clone(),
                receiver: route.receiver.clone(),
                labels: labels.clone(),
                alerts: message_alerts,
            };
            // The log is written when the delivery succeeds ([`started`], [`finished`]).
            state.in_flight = Some(InFlight {
                at: now,
                firing,
                jobs: BTreeSet::new(),
                failed: false,
                content: flush.content(),
                delivered: BTreeSet::new(),
            });
            flushes.push(flush);
            state.next_flush = super::add_time(now, route.group_interval);
        }
        // A group whose last delivered announcement was "all resolved" is done.
        groups.retain(|_, g| !g.done());
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

/// `{a="1",b="2"}`.
fn label_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// One ordered queue per (receiver, integration index), with the integration's kind.
type Queues = BTreeMap<(String, usize), (mpsc::Sender<Job>, &'static str)>;

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
///
/// A reloaded configuration's dispatcher arrives on `updates` and replaces the routes,
/// receivers and inhibition rules at once, keeping every group's notification log and the
/// undelivered notifications (delivered with the settings they were queued with).
///
/// A save that fails (I/O, or content that cannot be written) is logged and counted
/// (`rabbitmq_watch_state_file_write_failures_total`); dispatching goes on, and the next change
/// tries again.
pub async fn run(
    dispatcher: Dispatcher,
    runtime: Runtime,
    mut assessments: AssessmentReceiver,
    mut updates: Updates<Dispatcher>,
    shutdown: CancellationToken,
) {
    let Runtime {
        state_file,
        saved,
        silences,
        stats,
        backoff,
    } = runtime;
    if state_file.is_some() {
        stats.register_state_file();
    }
    if saved.set_aside.is_some() {
        stats.state_file_load_failed();
    }
    let mut dispatcher = Arc::new(dispatcher);
    let pending: Arc<Mutex<BTreeMap<u64, Job>>> = Arc::new(Mutex::new(BTreeMap::new()));
    // Workers report each job's outcome here; the dispatcher writes the notification log.
    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let workers = tokio_util::task::TaskTracker::new();
    // One ordered queue per (receiver, integration), each with its worker. A reload replaces
    // them: the old workers deliver what they were given, with the old settings, then stop.
    let spawn_workers = |dispatcher: &Dispatcher| -> Queues {
        let mut queues = Queues::new();
        for receiver in &dispatcher.receivers {
            for (i, integration) in receiver.integrations.iter().enumerate() {
                stats.register(&receiver.name, integration.kind());
                let (tx, mut rx) = mpsc::channel::<Job>(super::QUEUE_CAPACITY);
                queues.insert((receiver.name.clone(), i), (tx, integration.kind()));
                let integration = integration.clone();
                let outcome_tx = outcome_tx.clone();
                let stats = stats.clone();
                let name = receiver.name.clone();
                let stop = shutdown.clone();
                workers.spawn(async move {
                    loop {
                        let job = tokio::select! {
                            _ = stop.cancelled() => break,
                            job = rx.recv() => match job { Some(j) => j, None => break },
                        };
                        stats.started(&name, integration.kind());
                        let delivery = tokio::select! {
                            // An interrupted delivery stays pending and is resent after a restart.
                            _ = stop.cancelled() => { stats.ended(&name, integration.kind()); break },
                            d = deliver(backoff, || integration.notify(&job.message), |attempt, e, wait| {
                                stats.attempt_failed(&name, integration.kind(), e.reason);
                                tracing::warn!(receiver = %name, integration = integration.kind(), attempt, reason = e.reason, error = %e, retry_in = ?wait, "notification failed, retrying");
                            }) => d,
                        };
                        stats.ended(&name, integration.kind());
                        stats.record(&name, integration.kind(), &delivery);
                        match &delivery.result {
                            Ok(()) => tracing::info!(receiver = %name, integration = integration.kind(), group = %job.message.group_key, status = %job.message.status, alerts = job.message.alerts.len(), attempts = delivery.attempts, "notification sent"),
                            Err(e) => tracing::error!(receiver = %name, integration = integration.kind(), group = %job.message.group_key, attempts = delivery.attempts, reason = e.reason, error = %e, "notification given up; the group is sent again at its next group_interval"),
                        }
                        let _ = outcome_tx.send(Outcome {
                            group: job.message.group_key.clone(),
                            job: job.id,
                            integration: job.integration,
                            delivered: delivery.result.is_ok(),
                        });
                    }
                });
            }
        }
        queues
    };
    let mut queues = spawn_workers(&dispatcher);
    workers.close();

    // Queues the job; false when its (receiver, integration) does not exist (any more), or its
    // queue is full (dropped and counted: the group is sent again at its next group_interval).
    let dropped = std::sync::atomic::AtomicBool::new(false);
    let enqueue = |queues: &Queues, job: Job| -> bool {
        let Some((tx, kind)) = queues.get(&(job.receiver.clone(), job.integration)) else {
            return false;
        };
        let (id, receiver) = (job.id, job.receiver.clone());
        match tx.try_send(job.clone()) {
            Ok(()) => {
                stats.queued(&receiver, kind);
                // The worker's outcome is read by this same task, after this insert.
                if let Ok(mut p) = pending.lock() {
                    p.insert(id, job);
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped.store(true, std::sync::atomic::Ordering::Relaxed);
                stats.dropped(&receiver, kind, "queue_full");
                tracing::error!(receiver = %receiver, integration = *kind, group = %job.message.group_key, capacity = super::QUEUE_CAPACITY, "notification dropped: the integration's queue is full; the group is sent again at its next group_interval");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    };
    let mut next_id = saved.pending.iter().map(|j| j.id).max().unwrap_or(0);
    let mut live = BTreeSet::new();
    for job in saved.pending {
        tracing::info!(receiver = %job.receiver, group = %job.message.group_key, "resending a notification left undelivered before the restart");
        let id = job.id;
        if enqueue(&queues, job) {
            live.insert(id);
        }
    }
    let mut groups = saved.groups;
    reconcile(&mut groups, &live);
    // Until the first evaluation, the alerts saved before the restart.
    let restored: Arc<Vec<Alert>> = Arc::new(saved.alerts);
    let mut assessment: Option<Arc<crate::alerting::Assessment>> = None;
    let mut writer = super::state::StateWriter::new(state_file, stats.clone());
    let snapshot = |groups: &BTreeMap<String, GroupState>, alerts: &[Alert]| SavedState {
        version: super::state::VERSION,
        alerts: alerts.to_vec(),
        groups: groups.clone(),
        pending: pending
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default(),
        silences: silences.list(SystemTime::now()),
        set_aside: None,
    };
    let mut saved_pending = usize::MAX;
    let mut clock = PlanClock::default();
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
            Some(outcome) = outcomes.recv() => {
                if let Ok(mut p) = pending.lock() {
                    p.remove(&outcome.job);
                }
                finished(&mut groups, &outcome);
                changed = true;
            }
            Some(update) = updates.recv() => {
                // New routes, receivers and inhibition; the groups and their notification log
                // stay, so nothing already notified is sent again.
                dispatcher = Arc::new(update.value);
                queues = spawn_workers(&dispatcher);
                let _ = update.taken.send(());
                changed = true;
            }
            _ = tick.tick() => {}
        }
        let now = SystemTime::now();
        let alerts: &[Alert] = assessment.as_ref().map_or(&restored, |a| &a.alerts);
        // Groups change only with the alerts; otherwise only timers can make a flush due.
        if clock.due(changed, &groups, now) {
            for flush in dispatcher.plan(alerts, &mut groups, &silences, now) {
                changed = true;
                let skipped = already_delivered(&groups, &flush);
                let mut ids = Vec::new();
                dropped.store(false, std::sync::atomic::Ordering::Relaxed);
                for job in dispatcher.jobs(&flush, &mut next_id) {
                    let id = job.id;
                    if !skipped.contains(&job.integration) && enqueue(&queues, job) {
                        ids.push(id);
                    }
                }
                if dropped.load(std::sync::atomic::Ordering::Relaxed) {
                    // Not delivered: the log is not written, the group is sent again at its
                    // next group_interval.
                    if let Some(flight) = groups
                        .get_mut(&flush.key)
                        .and_then(|g| g.in_flight.as_mut())
                    {
                        flight.failed = true;
                    }
                }
                started(&mut groups, &flush.key, ids, skipped);
            }
        }
        // Saved after every evaluation and whenever the undelivered notifications change.
        let pending_len = pending.lock().map_or(0, |p| p.len());
        if changed || pending_len != saved_pending {
            saved_pending = pending_len;
            if writer.enabled() {
                writer.save(snapshot(&groups, alerts)).await;
            }
        }
    }
    workers.wait().await;
    while let Ok(outcome) = outcomes.try_recv() {
        if let Ok(mut p) = pending.lock() {
            p.remove(&outcome.job);
        }
        finished(&mut groups, &outcome);
    }
    let alerts: &[Alert] = assessment.as_ref().map_or(&restored, |a| &a.alerts);
    if writer.enabled() {
        writer.save(snapshot(&groups, alerts)).await;
    }
    tracing::debug!("dispatcher stopped");
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
            labels: Arc::new(labels),
            annotations: Default::default(),
            analysis: None,
            state,
            value: 1.0,
            active_since: at(0),
            fired_at: Some(at(0)),
            resolved_at: (state == State::Resolved).then(|| at(0)),
            last_true: at(0),
            unknown: false,
            keep_firing_since: None,
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

    /// [`Dispatcher::plan`], then every flush delivered at once (no jobs: the log is written).
    fn plan_ok(
        d: &Dispatcher,
        alerts: &[Alert],
        groups: &mut BTreeMap<String, GroupState>,
        silences: &Silences,
        now: SystemTime,
    ) -> Vec<Flush> {
        let flushes = d.plan(alerts, groups, silences, now);
        for f in &flushes {
            started(groups, &f.key, [], BTreeSet::new());
        }
        flushes
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

    /// The seconds at which a plan ran, and each flush with its second and its alerts' (queue,
    /// status).
    type Run = (Vec<u64>, Vec<(u64, Vec<(String, String)>)>);

    /// The dispatch loop's decision, second by second: `assess` holds the seconds at which an
    /// assessment arrives (with the alerts `alerts_at` gives), every other second is a tick.
    /// Returns the seconds at which a plan ran and the flushes with their second.
    fn run_loop(
        d: &Dispatcher,
        seconds: std::ops::Range<u64>,
        assess: &[u64],
        alerts_at: impl Fn(u64) -> Vec<Alert>,
    ) -> Run {
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let mut clock = PlanClock::default();
        let (mut planned, mut flushed) = (Vec::new(), Vec::new());
        for t in seconds {
            if clock.due(assess.contains(&t), &groups, at(t)) {
                planned.push(t);
                for f in plan_ok(d, &alerts_at(t), &mut groups, &silences, at(t)) {
                    flushed.push((t, names(&[f])[0].1.clone()));
                }
            }
        }
        (planned, flushed)
    }

    #[test]
    fn ticks_plan_only_when_a_timer_comes_due_and_every_resolution_is_still_sent() {
        // group_wait 30 s, group_interval 300 s; an assessment every 15 s until 60, then only
        // at 420 (q1 resolved from 420 on) and at 500.
        let d = dispatcher(route(&["alertname"]));
        let firing = alert("Backlog", "q1", "warning", State::Firing);
        let resolved = alert("Backlog", "q1", "warning", State::Resolved);
        let assess = [0, 15, 30, 45, 60, 420, 500];
        let alerts_at = |t: u64| vec![if t < 420 { &firing } else { &resolved }.clone()];
        let (planned, flushed) = run_loop(&d, 0..600, &assess, alerts_at);
        // Planned at each assessment and when a timer came due (group_wait at 30, which an
        // assessment also hit; group_interval at 330), never on the ticks between, though the
        // timer of 330 lay in the past from 331 to 419.
        assert_eq!(planned, [0, 15, 30, 45, 60, 330, 420, 500]);
        assert_eq!(
            flushed,
            [
                (30, vec![("q1".to_owned(), "firing".to_owned())]),
                (420, vec![("q1".to_owned(), "resolved".to_owned())]),
            ]
        );

        // A resolution within group_interval waits for the timer, which a tick then finds.
        let (planned, flushed) = run_loop(&d, 0..600, &[0, 30, 100], |t| {
            vec![if t < 100 { &firing } else { &resolved }.clone()]
        });
        assert_eq!(planned, [0, 30, 100, 330]);
        assert_eq!(
            flushed,
            [
                (30, vec![("q1".to_owned(), "firing".to_owned())]),
                (330, vec![("q1".to_owned(), "resolved".to_owned())]),
            ]
        );
    }

    #[test]
    fn a_clock_set_back_plans() {
        let mut clock = PlanClock::default();
        let groups = BTreeMap::new();
        assert!(clock.due(true, &groups, at(100)));
        assert!(!clock.due(false, &groups, at(101)));
        assert!(clock.due(false, &groups, at(50)), "clock set back");
        assert!(!clock.due(false, &groups, at(51)));
    }

    #[test]
    fn group_wait_then_group_interval_then_repeat() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let a1 = alert("Backlog", "q1", "warning", State::Firing);
        let a2 = alert("Backlog", "q2", "warning", State::Firing);
        // New group: nothing before group_wait.
        assert!(plan_ok(&d, std::slice::from_ref(&a1), &mut groups, &silences, at(0)).is_empty());
        assert!(
            plan_ok(
                &d,
                &[a1.clone(), a2.clone()],
                &mut groups,
                &silences,
                at(29)
            )
            .is_empty()
        );
        let f = plan_ok(
            &d,
            &[a1.clone(), a2.clone()],
            &mut groups,
            &silences,
            at(30),
        );
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
            plan_ok(
                &d,
                &[a1.clone(), a2.clone()],
                &mut groups,
                &silences,
                at(400)
            )
            .is_empty()
        );
        let f = plan_ok(
            &d,
            &[a1.clone(), a2.clone()],
            &mut groups,
            &silences,
            at(3630),
        );
        assert_eq!(f.len(), 1, "repeat after 1 h");
        // q2 resolves: announced at the next group_interval tick, not before.
        let r2 = alert("Backlog", "q2", "warning", State::Resolved);
        assert!(
            plan_ok(
                &d,
                &[a1.clone(), r2.clone()],
                &mut groups,
                &silences,
                at(3700)
            )
            .is_empty()
        );
        let f = plan_ok(
            &d,
            &[a1.clone(), r2.clone()],
            &mut groups,
            &silences,
            at(3930),
        );
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
        let f = plan_ok(
            &d,
            &[r1.clone(), r2.clone()],
            &mut groups,
            &silences,
            at(4230),
        );
        assert_eq!(
            f[0].alerts
                .iter()
                .filter(|a| a.status == "resolved")
                .count(),
            1
        );
        assert!(groups.is_empty());
        assert!(plan_ok(&d, &[r1, r2], &mut groups, &silences, at(4600)).is_empty());
    }

    #[test]
    fn an_alert_resolved_before_group_wait_is_never_announced() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        plan_ok(
            &d,
            &[alert("Backlog", "q1", "warning", State::Firing)],
            &mut groups,
            &silences,
            at(0),
        );
        let r = alert("Backlog", "q1", "warning", State::Resolved);
        assert!(plan_ok(&d, std::slice::from_ref(&r), &mut groups, &silences, at(30)).is_empty());
        assert!(plan_ok(&d, &[r], &mut groups, &silences, at(400)).is_empty());
    }

    #[test]
    fn silences_mute_until_they_expire() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let id = silences
            .add(
                Silence {
                    id: String::new(),
                    matchers: vec!["queue=\"q1\"".into()],
                    starts_at: at(0),
                    ends_at: at(3600),
                    created_by: "me".into(),
                    comment: "maintenance".into(),
                },
                at(0),
            )
            .unwrap();
        let mut groups = BTreeMap::new();
        let a = vec![alert("Backlog", "q1", "warning", State::Firing)];
        plan_ok(&d, &a, &mut groups, &silences, at(0));
        assert!(plan_ok(&d, &a, &mut groups, &silences, at(60)).is_empty());
        assert!(silences.expire(&id, at(100)));
        assert_eq!(silences.list(at(100))[0].state(at(100)), "expired");
        plan_ok(&d, &a, &mut groups, &silences, at(100));
        assert_eq!(plan_ok(&d, &a, &mut groups, &silences, at(130)).len(), 1);
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
        plan_ok(&d, &both, &mut groups, &silences, at(0));
        let f = plan_ok(&d, &both, &mut groups, &silences, at(30));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].alerts[0].labels["alertname"], "Partition");
        // Once the source resolves, the target is notified.
        let mut resolved = source.clone();
        resolved.state = State::Resolved;
        let after = [resolved, target];
        plan_ok(&d, &after, &mut groups, &silences, at(60));
        let f = plan_ok(&d, &after, &mut groups, &silences, at(400));
        let announced: Vec<&str> = f
            .iter()
            .flat_map(|f| f.alerts.iter().map(|a| a.labels["alertname"].as_str()))
            .collect();
        assert!(announced.contains(&"NodeDown"), "{announced:?}");
    }

    #[test]
    fn a_node_down_is_notified_at_once_while_the_partition_is_only_latched() {
        let mut d = dispatcher(route(&["alertname"]));
        d.inhibit_rules = vec![crate::config::cluster_inhibit_rule()];
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let mut partition = alert("RabbitmqClusterPartition", "-", "critical", State::Firing);
        // Still firing, but the broker stopped reporting the partition 60 s ago.
        partition.keep_firing_since = Some(at(0));
        let node_down = alert("RabbitmqNodeDown", "-", "critical", State::Firing);
        let both = [partition, node_down];
        plan_ok(&d, &both, &mut groups, &silences, at(60));
        let f = plan_ok(&d, &both, &mut groups, &silences, at(90));
        let announced: Vec<&str> = f
            .iter()
            .flat_map(|f| f.alerts.iter().map(|a| a.labels["alertname"].as_str()))
            .collect();
        assert!(announced.contains(&"RabbitmqNodeDown"), "{announced:?}");
    }

    #[test]
    fn a_failed_delivery_is_sent_again_at_the_next_group_interval_not_at_repeat_interval() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let a = vec![alert("Backlog", "q1", "warning", State::Firing)];
        d.plan(&a, &mut groups, &silences, at(0));
        let f = d.plan(&a, &mut groups, &silences, at(30));
        assert_eq!(f.len(), 1);
        let key = f[0].key.clone();
        started(&mut groups, &key, [7], BTreeSet::new());
        // In flight: not flushed again, even when group_interval passes.
        assert!(d.plan(&a, &mut groups, &silences, at(340)).is_empty());
        finished(
            &mut groups,
            &Outcome {
                group: key.clone(),
                job: 7,
                integration: 0,
                delivered: false,
            },
        );
        assert_eq!(groups[&key].last_notified, None, "nothing logged");
        // The next group_interval tick (30 + 300 passed already): sent again at once.
        let f = d.plan(&a, &mut groups, &silences, at(341));
        assert_eq!(f.len(), 1, "resent at group_interval, not repeat_interval");
        started(&mut groups, &key, [8], BTreeSet::new());
        finished(
            &mut groups,
            &Outcome {
                group: key.clone(),
                job: 8,
                integration: 0,
                delivered: true,
            },
        );
        assert_eq!(groups[&key].last_notified, Some(at(341)));
        // Delivered: now silent until repeat_interval.
        assert!(d.plan(&a, &mut groups, &silences, at(700)).is_empty());
        assert_eq!(d.plan(&a, &mut groups, &silences, at(3941)).len(), 1);
    }

    #[test]
    fn a_partly_failed_delivery_waits_for_group_interval_and_skips_integrations_that_have_it() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let a = vec![alert("Backlog", "q1", "warning", State::Firing)];
        d.plan(&a, &mut groups, &silences, at(0));
        let key = d.plan(&a, &mut groups, &silences, at(30))[0].key.clone();
        started(&mut groups, &key, [1, 2], BTreeSet::new());
        let outcome = |job: u64, delivered| Outcome {
            group: key.clone(),
            job,
            integration: job as usize,
            delivered,
        };
        finished(&mut groups, &outcome(1, true));
        finished(&mut groups, &outcome(2, false));
        assert!(d.plan(&a, &mut groups, &silences, at(100)).is_empty());
        assert!(d.plan(&a, &mut groups, &silences, at(329)).is_empty());
        let again = d.plan(&a, &mut groups, &silences, at(330));
        assert_eq!(again.len(), 1);
        // Integration 1 has it already (Alertmanager logs per integration): only 2 is sent.
        let skipped = already_delivered(&groups, &again[0]);
        assert_eq!(skipped, BTreeSet::from([1]));
        started(&mut groups, &key, [3], skipped);
        finished(&mut groups, &outcome(3, true));
        assert_eq!(groups[&key].last_notified, Some(at(330)));
        assert_eq!(groups[&key].partial, None);
        // A different notification goes to every integration again.
        groups.get_mut(&key).unwrap().partial = Some(Partial {
            content: BTreeSet::from(["other:firing".to_owned()]),
            delivered: BTreeSet::from([1]),
        });
        assert!(already_delivered(&groups, &again[0]).is_empty());
    }

    #[test]
    fn in_flight_jobs_lost_across_a_restart_count_as_failed() {
        let d = dispatcher(route(&["alertname"]));
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let a = vec![alert("Backlog", "q1", "warning", State::Firing)];
        d.plan(&a, &mut groups, &silences, at(0));
        let key = d.plan(&a, &mut groups, &silences, at(30))[0].key.clone();
        started(&mut groups, &key, [1, 2], BTreeSet::new());
        // Job 1 is restored (still pending), job 2 is not: outcome unknown.
        reconcile(&mut groups, &BTreeSet::from([1]));
        assert!(groups[&key].in_flight.as_ref().unwrap().failed);
        finished(
            &mut groups,
            &Outcome {
                group: key.clone(),
                job: 1,
                integration: 0,
                delivered: true,
            },
        );
        assert_eq!(groups[&key].last_notified, None);
        assert_eq!(d.plan(&a, &mut groups, &silences, at(330)).len(), 1);
    }

    #[test]
    fn absurd_route_timings_saturate_instead_of_panicking() {
        let mut r = route(&["alertname"]);
        r.group_wait = Duration::MAX;
        r.group_interval = Duration::MAX;
        let d = dispatcher(r);
        let silences = Silences::default();
        let mut groups = BTreeMap::new();
        let a = vec![alert("Backlog", "q1", "warning", State::Firing)];
        assert!(d.plan(&a, &mut groups, &silences, at(0)).is_empty());
        let state = groups.values().next().unwrap();
        assert_eq!(state.next_flush, super::super::latest_time());
        let saved = SavedState {
            groups: groups.clone(),
            ..SavedState::default()
        };
        assert!(serde_json::to_vec(&saved).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_dispatcher_survives_a_failing_save_and_counts_it() {
        let stats = Arc::new(NotifyStats::default());
        let (_tx, rx) = tokio::sync::watch::channel(None);
        let shutdown = CancellationToken::new();
        let dir = std::env::temp_dir().join(format!("rw-no-such-dir-{}", std::process::id()));
        let task = tokio::spawn(run(
            dispatcher(route(&["alertname"])),
            Runtime {
                state_file: Some(dir.join("state.json")),
                saved: SavedState {
                    alerts: vec![alert("Backlog", "q1", "warning", State::Firing)],
                    ..SavedState::default()
                },
                silences: Arc::new(Silences::default()),
                stats: stats.clone(),
                backoff: Backoff::default(),
            },
            rx,
            mpsc::channel(1).1,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!task.is_finished(), "the dispatcher is still running");
        let failures = stats.state_file().unwrap().write_failures;
        assert!(failures >= 1, "{failures}");
        shutdown.cancel();
        task.await.unwrap();
        assert!(stats.state_file().unwrap().write_failures > failures);
    }

    #[tokio::test(start_paused = true)]
    async fn delivery_is_visible_while_it_happens_and_queues_are_bounded() {
        crate::install_crypto_provider();
        let stats = Arc::new(NotifyStats::default());
        let (_tx, rx) = tokio::sync::watch::channel(None);
        let shutdown = CancellationToken::new();
        // Nothing listens on port 1: every attempt fails (connect or timeout), and is retried.
        let raw = crate::config::webhook::RawWebhook {
            url: Some("http://127.0.0.1:1/hook".into()),
            timeout: Some("1s".into()),
            ..Default::default()
        };
        let config = crate::config::webhook::WebhookConfig::from_raw(raw, "w").unwrap();
        let mut d = dispatcher(route(&["alertname"]));
        d.receivers.push(Receiver {
            name: "team".into(),
            integrations: vec![Integration::Webhook(Webhook::new(config).unwrap())],
        });
        let extra = 5;
        let pending = (1..=(super::super::QUEUE_CAPACITY + extra) as u64)
            .map(|id| Job {
                id,
                receiver: "team".into(),
                integration: 0,
                message: Message::new("team", "g", BTreeMap::new(), vec![], "http://w"),
            })
            .collect();
        let task = tokio::spawn(run(
            d,
            Runtime {
                state_file: None,
                saved: SavedState {
                    pending,
                    ..SavedState::default()
                },
                silences: Arc::new(Silences::default()),
                stats: stats.clone(),
                backoff: Backoff {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(1),
                    give_up_after: Duration::from_secs(3600),
                },
            },
            rx,
            mpsc::channel(1).1,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(40)).await;
        let s = stats.snapshot()[&("team".to_owned(), "webhook")].clone();
        assert_eq!(s.dropped.get("queue_full"), Some(&(extra as u64)), "{s:?}");
        assert_eq!(s.in_flight, 1, "{s:?}");
        assert_eq!(s.queued, super::super::QUEUE_CAPACITY as u64 - 1, "{s:?}");
        let attempts: u64 = s.failed_attempts.values().sum();
        assert!(attempts >= 3, "failed attempts counted as they fail: {s:?}");
        assert!(s.failed.is_empty(), "nothing given up yet: {s:?}");
        assert_eq!(s.sent, 0);
        shutdown.cancel();
        task.await.unwrap();
        let s = stats.snapshot()[&("team".to_owned(), "webhook")].clone();
        assert_eq!(s.in_flight, 0, "{s:?}");
    }
}
