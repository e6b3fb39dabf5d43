//! The reliability audit: is this broker set up so that messages are not lost?
//!
//! On its own interval (`audit.interval`, default 5 m), [`run`] reads the consumers, channels,
//! exchanges and bindings (`crate::rabbitmq::audit_reads`), takes the queues and the backlog
//! detector's verdicts from the latest [`Assessment`] (the poll already read them: the audit
//! never reads the queues again and never delays the poll), runs the pure checks over what
//! was read ([`audit`]) and publishes a [`Report`] of [`Finding`]s, and its [`view`] for the
//! alert engine's `kind: audit` rules (`audit.alerts`). One file per group of
//! checks: [`queues`] (durability, growth, requeue loops, mirroring, contradictory settings),
//! [`clients`] (acknowledgements, prefetch, publisher confirms), [`dead_letter`]
//! (dead-letter exchanges that do not exist or route nowhere).
//!
//! A check whose figures are missing (a failed read, statistics disabled on RabbitMQ 4.x) is
//! skipped and says so in [`Outcome::skipped`]: missing figures never make a finding.

pub mod clients;
pub mod dead_letter;
pub mod queues;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::alerting::backlog::QueueBacklog;
use crate::alerting::findings::{AuditFinding, AuditView, Unknown};
use crate::alerting::{Assessment, AssessmentReceiver};
use crate::config::AuditConfig;
use crate::rabbitmq::audit_reads::{BindingRow, Channel, Consumer, Exchange, Listed};
use crate::rabbitmq::model::Queue;
use crate::rabbitmq::{Client, Endpoint, Error, Fetched};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no message is at risk by itself.
    Info,
    /// Messages can be lost or pile up without bound.
    Warning,
}

impl Severity {
    /// The `severity` label value.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
        }
    }
}

/// One check of the audit; each has a fixed name and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// A non-durable, auto-delete or exclusive queue holding messages.
    TransientQueue,
    /// Transient (non-persistent) messages in a durable classic queue.
    TransientMessages,
    /// Consumers in automatic acknowledgement mode.
    AutoAck,
    /// Consumers with unlimited prefetch on a backed-up queue.
    UnlimitedPrefetch,
    /// Channels publishing without publisher confirms.
    NoConfirms,
    /// A dead-letter exchange that does not exist.
    DeadLetterMissing,
    /// A dead-letter exchange with no binding.
    DeadLetterUnrouted,
    /// Redeliveries with no dead-letter exchange and no delivery limit.
    RequeueLoop,
    /// A growing queue with no length limit and no TTL.
    UnboundedGrowth,
    /// A queue under a classic mirroring (`ha-mode`) policy.
    ClassicMirrored,
    /// Queue settings that contradict each other or are ignored.
    Contradictory,
}

impl Check {
    /// Every check, in the order of the documentation (docs/audit.md).
    pub const ALL: [Check; 11] = [
        Check::TransientQueue,
        Check::TransientMessages,
        Check::AutoAck,
        Check::UnlimitedPrefetch,
        Check::NoConfirms,
        Check::DeadLetterMissing,
        Check::DeadLetterUnrouted,
        Check::RequeueLoop,
        Check::UnboundedGrowth,
        Check::ClassicMirrored,
        Check::Contradictory,
    ];

    /// The `check` label value and API name.
    pub fn name(self) -> &'static str {
        match self {
            Check::TransientQueue => "transient_queue_with_messages",
            Check::TransientMessages => "transient_messages",
            Check::AutoAck => "auto_ack_consumer",
            Check::UnlimitedPrefetch => "unlimited_prefetch",
            Check::NoConfirms => "publish_without_confirms",
            Check::DeadLetterMissing => "dead_letter_exchange_missing",
            Check::DeadLetterUnrouted => "dead_letter_exchange_unrouted",
            Check::RequeueLoop => "requeue_loop",
            Check::UnboundedGrowth => "unbounded_queue_growing",
            Check::ClassicMirrored => "classic_mirrored_queue",
            Check::Contradictory => "contradictory_settings",
        }
    }

    /// The severity of this check's findings.
    pub fn severity(self) -> Severity {
        match self {
            Check::ClassicMirrored | Check::Contradictory => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// One finding: a check that failed for one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The check's name ([`Check::name`]).
    #[serde(serialize_with = "ser_check")]
    pub check: Check,
    /// The object's vhost.
    pub vhost: String,
    /// The object's name: a queue for queue, consumer and dead-letter checks, a channel for
    /// publisher checks.
    pub object: String,
    /// `queue` or `channel`.
    pub object_type: &'static str,
    /// The check's severity.
    pub severity: Severity,
    /// What is wrong, in one line, with the figures seen.
    pub summary: String,
    /// What to do about it, in operators' words: most checks' text is a constant, borrowed
    /// rather than copied into each of thousands of findings (#13).
    pub fix: Cow<'static, str>,
}

fn ser_check<S: serde::Serializer>(c: &Check, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.name())
}

impl Finding {
    /// A finding of `check` on queue `q`.
    fn queue(
        check: Check,
        q: &Queue,
        summary: String,
        fix: impl Into<Cow<'static, str>>,
    ) -> Finding {
        Finding {
            check,
            vhost: q.vhost.clone(),
            object: q.name.clone(),
            object_type: "queue",
            severity: check.severity(),
            summary,
            fix: fix.into(),
        }
    }
}

/// A check that could not judge some or all of its objects, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The check's name.
    #[serde(serialize_with = "ser_check")]
    pub check: Check,
    /// Why, e.g. `/api/consumers failed: …` or `3 queues did not report messages_persistent`.
    pub reason: String,
    /// The objects (vhost, name) not judged when the check skipped some of them; `None` when
    /// it skipped everything (what the advisory alerts treat as unknown).
    #[serde(skip)]
    pub objects: Option<Vec<(String, String)>>,
}

/// The outcome of the checks: findings sorted by (check, vhost, object), and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Checks (or parts of them) that could not run.
    pub skipped: Vec<Skipped>,
}

impl Outcome {
    /// Records that `check` skipped `objects` (vhost, name) for `why` (nothing when there are
    /// none).
    fn skip_objects(
        &mut self,
        check: Check,
        objects: Vec<(String, String)>,
        what: &str,
        why: &str,
    ) {
        if !objects.is_empty() {
            self.skipped.push(Skipped {
                check,
                reason: format!("{} {what} {why}", objects.len()),
                objects: Some(objects),
            });
        }
    }

    /// Records that `check` did not run at all, for `reason`.
    fn skip(&mut self, check: Check, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            check,
            reason: reason.into(),
            objects: None,
        });
    }
}

/// The queues the checks judge, each with the backlog detector's verdict.
#[derive(Debug, Clone)]
pub enum QueueList {
    /// Those of an assessment, read in place: a run copied every queue and verdict before
    /// (7.8 MB at the heap's peak for 10,000 queues, every 5 minutes; #13). A queue beyond the
    /// report's entries (not expected: the report has one per listed queue) has the default
    /// verdict.
    Assessment(Arc<Assessment>),
    /// Queues and verdicts given as they are (the checks' tests).
    Owned(Vec<(Queue, QueueBacklog)>),
}

impl QueueList {
    /// Each queue with its verdict, in the listing's order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&Queue, &QueueBacklog)> + '_> {
        static NO_VERDICT: std::sync::LazyLock<QueueBacklog> =
            std::sync::LazyLock::new(QueueBacklog::default);
        match self {
            QueueList::Assessment(a) => {
                let queues = a.snapshot.queues.ok().map_or(&[][..], Vec::as_slice);
                let verdicts = a
                    .backlog
                    .queues
                    .iter()
                    .chain(std::iter::repeat(&*NO_VERDICT));
                Box::new(queues.iter().zip(verdicts))
            }
            QueueList::Owned(v) => Box::new(v.iter().map(|(q, b)| (q, b))),
        }
    }
}

/// What the checks look at: everything read, each `None` when its read failed (the reason is
/// in `failed`).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The exported queues of the latest poll, with the backlog detector's verdict on each
    /// (same order); `None` before the first poll or when the listing failed.
    pub queues: Option<QueueList>,
    /// `/api/overview` `disable_stats`: `Some(false)` when the broker collects statistics.
    pub disable_stats: Option<bool>,
    /// `/api/overview` `rabbitmq_version`.
    pub version: Option<String>,
    /// `/api/consumers`.
    pub consumers: Option<Vec<Consumer>>,
    /// `/api/channels`.
    pub channels: Option<Vec<Channel>>,
    /// `/api/exchanges`.
    pub exchanges: Option<Vec<Exchange>>,
    /// `/api/bindings`.
    pub bindings: Option<Vec<BindingRow>>,
    /// Why each missing input is missing, by what it is (`queues`, `/api/consumers`, …).
    pub failed: BTreeMap<&'static str, String>,
    /// `audit.backlog_messages`.
    pub backlog_messages: u64,
}

impl Inputs {
    /// Why `what` is missing, for a skipped check.
    fn why(&self, what: &'static str) -> String {
        match self.failed.get(what) {
            Some(reason) => format!("{what} not read: {reason}"),
            None => format!("{what} not read"),
        }
    }

    /// Whether the broker is known to collect statistics (message counters, rates).
    fn stats_enabled(&self) -> bool {
        self.disable_stats == Some(false)
    }

    /// The major version of the broker, when known (3 or 4).
    fn major_version(&self) -> Option<u32> {
        self.version.as_deref()?.split('.').next()?.parse().ok()
    }
}

/// Runs every check over `inputs`: pure, no network.
pub fn audit(inputs: &Inputs) -> Outcome {
    let mut out = Outcome::default();
    queues::check(inputs, &mut out);
    clients::check(inputs, &mut out);
    dead_letter::check(inputs, &mut out);
    out.findings
        .sort_by(|a, b| (a.check, &a.vhost, &a.object).cmp(&(b.check, &b.vhost, &b.object)));
    out.skipped.sort_by_key(|s| s.check);
    out
}

/// The outcome of one audit read, for the sidecar's endpoint health families.
#[derive(Debug, Clone, Serialize)]
pub struct ReadOutcome {
    /// The endpoint read.
    #[serde(serialize_with = "ser_endpoint")]
    pub endpoint: Endpoint,
    /// The error, when the read failed.
    #[serde(serialize_with = "ser_error")]
    pub error: Option<Error>,
    /// Wall time of the read (all pages).
    #[serde(serialize_with = "crate::util::ser::duration")]
    pub duration: Duration,
    /// Response body bytes (0 when it failed).
    pub bytes: u64,
    /// Objects not kept because of `audit.max_objects`.
    pub dropped: u64,
}

fn ser_endpoint<S: serde::Serializer>(e: &Endpoint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.path())
}

fn ser_error<S: serde::Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

/// One audit run: its findings, what was skipped and how the reads went.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checks' outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// When the run started.
    #[serde(serialize_with = "crate::util::time::rfc3339::serialize")]
    pub last_run: SystemTime,
    /// Wall time of the run (reads and checks).
    #[serde(serialize_with = "crate::util::ser::duration")]
    pub duration: Duration,
    /// Each audit read of this run.
    pub reads: Vec<ReadOutcome>,
    /// Failed audit reads since the sidecar started, by (endpoint, reason).
    #[serde(skip)]
    pub failures: BTreeMap<(Endpoint, &'static str), u64>,
    /// Runs completed since the sidecar started.
    pub runs: u64,
}

impl Report {
    /// Failed reads of `endpoint` for `reason` since start.
    pub fn failures_of(&self, endpoint: Endpoint, reason: &str) -> u64 {
        self.failures
            .iter()
            .find(|((e, r), _)| *e == endpoint && *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// The outcome of this run's read of `endpoint`.
    pub fn read(&self, endpoint: Endpoint) -> Option<&ReadOutcome> {
        self.reads.iter().find(|r| r.endpoint == endpoint)
    }
}

/// The receiving side of the audit's reports: `None` until the first run ends.
pub type AuditReceiver = watch::Receiver<Option<Arc<Report>>>;

/// Why `/api/consumers` and `/api/channels` are not read when the broker collects no
/// statistics.
pub const STATS_OFF: &str = "statistics are disabled on the broker (disable_stats: true in /api/overview, e.g. RabbitMQ 4.x management_agent.disable_metrics_collector), where this endpoint answers 400";

/// Keeps `Some(value)` of a read (`None`: not read because statistics are off), recording its outcome in `reads`, its failure in
/// `failed` and `failures`.
fn take<T>(
    endpoint: Endpoint,
    fetched: Option<Fetched<Listed<T>>>,
    reads: &mut Vec<ReadOutcome>,
    failed: &mut BTreeMap<&'static str, String>,
    failures: &mut BTreeMap<(Endpoint, &'static str), u64>,
) -> Option<Vec<T>> {
    let Some(fetched) = fetched else {
        failed.insert(endpoint.path(), STATS_OFF.to_owned());
        return None;
    };
    let (value, error, dropped) = match fetched.result {
        Ok(listed) => (Some(listed.items), None, listed.dropped),
        Err(e) => {
            tracing::warn!(endpoint = endpoint.path(), error = %e, "audit read failed");
            *failures.entry((endpoint, e.reason())).or_default() += 1;
            failed.insert(endpoint.path(), e.to_string());
            (None, Some(e), 0)
        }
    };
    if dropped > 0 {
        tracing::warn!(
            endpoint = endpoint.path(),
            dropped,
            "audit.max_objects reached: objects not audited"
        );
    }
    reads.push(ReadOutcome {
        endpoint,
        error,
        duration: fetched.duration,
        bytes: fetched.bytes,
        dropped,
    });
    value
}

/// `read`, timed, unless `skip`.
async fn unless<T>(
    skip: bool,
    read: impl Future<Output = Result<crate::rabbitmq::Body<T>, Error>>,
) -> Option<Fetched<T>> {
    if skip {
        None
    } else {
        Some(Fetched::timed(read).await)
    }
}

/// The queue part of the inputs, from the latest assessment.
fn queue_inputs(assessment: Option<&Arc<Assessment>>, inputs: &mut Inputs) {
    let Some(a) = assessment else {
        inputs
            .failed
            .insert("queues", "no poll has completed yet".to_owned());
        return;
    };
    let s = &a.snapshot;
    if let Some(o) = s.overview.ok() {
        inputs.disable_stats = o.disable_stats;
        inputs.version.clone_from(&o.rabbitmq_version);
    }
    match s.queues.ok() {
        Some(_) => inputs.queues = Some(QueueList::Assessment(Arc::clone(a))),
        None => {
            let why = s
                .queues
                .err()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string);
            inputs.failed.insert("queues", why);
        }
    }
}

/// The checks that judge the objects of an audit read: when the read kept only part of them
/// (`audit.max_objects`), these checks are skipped for the rest.
fn checks_of(endpoint: Endpoint) -> &'static [Check] {
    match endpoint {
        Endpoint::Consumers => &[Check::AutoAck, Check::UnlimitedPrefetch],
        Endpoint::Channels => &[Check::NoConfirms],
        Endpoint::Exchanges => &[Check::DeadLetterMissing],
        Endpoint::AllBindings => &[Check::DeadLetterUnrouted],
        _ => &[],
    }
}

/// Records, in `outcome`, the checks whose read was cut by `audit.max_objects`: the objects
/// not kept are not judged.
fn skip_cut_reads(reads: &[ReadOutcome], outcome: &mut Outcome) {
    for r in reads.iter().filter(|r| r.dropped > 0) {
        for check in checks_of(r.endpoint) {
            outcome.skip(
                *check,
                format!(
                    "{} objects of {} not kept (audit.max_objects): not audited",
                    r.dropped,
                    r.endpoint.path()
                ),
            );
        }
    }
    outcome.skipped.sort_by_key(|s| s.check);
}

/// The report as the alert engine sees it (`kind: audit` rules, `audit.alerts`): every
/// finding, and what was skipped (a check skipped for some objects only is unknown for
/// those; otherwise for all of its objects).
pub fn view(report: &Report) -> AuditView {
    let findings = report
        .outcome
        .findings
        .iter()
        .map(|f| AuditFinding {
            check: f.check.name().into(),
            vhost: f.vhost.clone(),
            object: f.object.clone(),
            object_type: f.object_type.into(),
            severity: f.severity.label().into(),
            summary: f.summary.clone(),
            fix: f.fix.clone(),
        })
        .collect();
    let unknown = report
        .outcome
        .skipped
        .iter()
        .map(|s| match &s.objects {
            Some(objects) => {
                Unknown::Objects(s.check.name().to_owned(), objects.iter().cloned().collect())
            }
            None => Unknown::Check(s.check.name().to_owned()),
        })
        .collect();
    AuditView {
        findings,
        unknown,
        run_at: report.last_run,
    }
}

/// Runs the audit every `config.interval` until `shutdown`: waits for the first poll, then
/// reads, checks and publishes a [`Report`] on `tx`, and its [`view`] for the alert engine
/// on `findings`, each time.
pub async fn run(
    client: Client,
    config: AuditConfig,
    mut assessments: AssessmentReceiver,
    tx: watch::Sender<Option<Arc<Report>>>,
    findings: watch::Sender<Option<Arc<AuditView>>>,
    shutdown: CancellationToken,
) {
    // The first run waits for the first poll, so that the queue checks have queues.
    tokio::select! {
        () = shutdown.cancelled() => return,
        _ = assessments.wait_for(Option::is_some) => {}
    }
    let mut failures = BTreeMap::new();
    let mut runs = 0u64;
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let started_at = SystemTime::now();
        let start = Instant::now();
        let max = config.max_objects;
        let assessment = assessments.borrow().clone();
        // With statistics disabled (RabbitMQ 4.x disable_metrics_collector) the broker answers
        // 400 to /api/consumers and /api/channels: not read, and their checks say why.
        let stats_off = assessment
            .as_ref()
            .and_then(|a| a.snapshot.overview.ok().and_then(|o| o.disable_stats))
            == Some(true);
        let reads = async {
            tokio::join!(
                unless(stats_off, client.consumers(max)),
                unless(stats_off, client.channels(max)),
                Fetched::timed(client.exchanges(max)),
                Fetched::timed(client.bindings(max)),
            )
        };
        let (consumers, channels, exchanges, bindings) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = reads => r,
        };
        let mut inputs = Inputs {
            backlog_messages: config.backlog_messages,
            ..Inputs::default()
        };
        queue_inputs(assessment.as_ref(), &mut inputs);
        let mut outcomes = Vec::new();
        let f = &mut inputs.failed;
        inputs.consumers = take(
            Endpoint::Consumers,
            consumers,
            &mut outcomes,
            f,
            &mut failures,
        );
        inputs.channels = take(
            Endpoint::Channels,
            channels,
            &mut outcomes,
            f,
            &mut failures,
        );
        inputs.exchanges = take(
            Endpoint::Exchanges,
            Some(exchanges),
            &mut outcomes,
            f,
            &mut failures,
        );
        inputs.bindings = take(
            Endpoint::AllBindings,
            Some(bindings),
            &mut outcomes,
            f,
            &mut failures,
        );
        // Tens of thousands of objects take milliseconds: keep them off the async workers.
        let mut outcome = match tokio::task::spawn_blocking(move || audit(&inputs)).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "audit checks failed");
                continue;
            }
        };
        skip_cut_reads(&outcomes, &mut outcome);
        runs += 1;
        tracing::info!(
            findings = outcome.findings.len(),
            skipped = outcome.skipped.len(),
            duration = ?start.elapsed(),
            "audit run"
        );
        let report = Report {
            outcome,
            last_run: started_at,
            duration: start.elapsed(),
            reads: outcomes,
            failures: failures.clone(),
            runs,
        };
        findings.send_replace(Some(Arc::new(view(&report))));
        tx.send_replace(Some(Arc::new(report)));
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders of inputs for the checks' tests.
    use super::*;

    /// A queue from JSON as the API gives it.
    pub fn queue(json: serde_json::Value) -> Queue {
        serde_json::from_value(json).expect("queue JSON")
    }

    /// Inputs with statistics on, RabbitMQ 3.10.8, and these queues (no verdicts).
    pub fn inputs(queues: Vec<Queue>) -> Inputs {
        Inputs {
            queues: Some(QueueList::Owned(
                queues
                    .into_iter()
                    .map(|q| (q, QueueBacklog::default()))
                    .collect(),
            )),
            disable_stats: Some(false),
            version: Some("3.10.8".to_owned()),
            consumers: Some(Vec::new()),
            channels: Some(Vec::new()),
            exchanges: Some(Vec::new()),
            bindings: Some(Vec::new()),
            failed: BTreeMap::new(),
            backlog_messages: 100,
        }
    }

    /// The (check, object) pairs of the findings.
    pub fn found(inputs: &Inputs) -> Vec<(&'static str, String)> {
        audit(inputs)
            .findings
            .into_iter()
            .map(|f| (f.check.name(), f.object))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn names_are_unique_and_a_set_up_by_the_book_broker_has_no_finding() {
        let mut names: Vec<_> = Check::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
        let q = queue(serde_json::json!({
            "vhost": "/", "name": "orders", "type": "classic", "durable": true,
            "auto_delete": false, "exclusive": false, "messages_ready": 5,
            "messages_unacknowledged": 0, "messages_persistent": 5,
            "arguments": {"x-max-length": 1000, "x-dead-letter-exchange": "dlx"},
        }));
        let mut i = inputs(vec![q]);
        i.exchanges = Some(vec![Exchange {
            vhost: "/".into(),
            name: "dlx".into(),
        }]);
        i.bindings = Some(vec![BindingRow {
            vhost: "/".into(),
            source: "dlx".into(),
            destination: "orders.dead".into(),
            destination_type: "queue".into(),
        }]);
        let out = audit(&i);
        assert_eq!(out.findings, vec![]);
    }

    #[test]
    fn a_missing_read_skips_its_checks_and_says_why() {
        let mut i = inputs(vec![]);
        i.consumers = None;
        i.failed
            .insert("/api/consumers", "timed out after 5000 ms".to_owned());
        let out = audit(&i);
        assert!(out.findings.is_empty());
        let skipped: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.check.name(), s.reason.as_str()))
            .collect();
        assert!(
            skipped.contains(&(
                "auto_ack_consumer",
                "/api/consumers not read: timed out after 5000 ms"
            )),
            "{skipped:?}"
        );
    }
}
