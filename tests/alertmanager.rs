//! The Alertmanager pusher against a real Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by `scripts/install-deps.sh alertmanager`), started by each test as a child
//! process with its own directory and port, no clustering, and one receiver `null` without
//! integrations. Everything is checked through Alertmanager's own API (`GET /api/v2/alerts`).
//!
//! Nothing here skips: without the binary the tests fail and say how to install it.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use support::{Alertmanager, free_port};

use rabbitmq_watch::alerting::{Alert, Assessment, State, fingerprint};
use rabbitmq_watch::notify::NotifyStats;
use rabbitmq_watch::notify::alertmanager::{
    AlertmanagerConfig, Alertmanagers, INTEGRATION, RawAlertmanager,
};
use rabbitmq_watch::snapshot::Snapshot;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Short, so that resends (and Alertmanager's own expiry at 4 × this) take seconds.
const RESEND: Duration = Duration::from_secs(1);

fn config(url: &str) -> AlertmanagerConfig {
    AlertmanagerConfig::from_raw(
        RawAlertmanager {
            url: Some(url.to_owned()),
            timeout: Some("2s".to_owned()),
        },
        "notify.alertmanagers[0]",
    )
    .unwrap()
}

/// An alert instance of rule `name` on queue `q`, in `state` as of now.
fn alert(name: &str, state: State) -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname", name),
        ("severity", "warning"),
        ("vhost", "/"),
        ("queue", "orders"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let now = SystemTime::now();
    let started = now - Duration::from_secs(120);
    Alert {
        fingerprint: fingerprint(&labels),
        labels: labels.into(),
        annotations: BTreeMap::from([
            ("summary".to_owned(), format!("{name} on orders")),
            ("description".to_owned(), "42 messages ready".to_owned()),
        ])
        .into(),
        analysis: None,
        state,
        value: 42.0,
        active_since: started,
        fired_at: (state != State::Pending).then(|| started + Duration::from_secs(60)),
        resolved_at: (state == State::Resolved).then_some(now),
        last_true: now,
        unknown: false,
        keep_firing_since: None,
    }
}

/// An assessment of an empty, healthy broker with `alerts`.
fn assessment(alerts: Vec<Alert>) -> Option<Arc<Assessment>> {
    let now = SystemTime::now();
    let snapshot = Snapshot::builder().started_at(now).build();
    Some(Arc::new(Assessment {
        snapshot: Arc::new(snapshot),
        backlog: Default::default(),
        cluster: Default::default(),
        alerts,
        evaluated_at: now,
    }))
}

/// A running pusher: the assessment channel, the stats, and the task.
struct Pusher {
    tx: watch::Sender<Option<Arc<Assessment>>>,
    stats: Arc<NotifyStats>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Pusher {
    fn start(configs: Vec<AlertmanagerConfig>, resend: Duration) -> Pusher {
        let stats = Arc::new(NotifyStats::default());
        let (tx, rx) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let pusher = Alertmanagers::new(
            configs,
            resend,
            "http://watch.example:9419/".to_owned(),
            Arc::clone(&stats),
        );
        let task = tokio::spawn(pusher.run(rx, shutdown.clone()));
        Pusher {
            tx,
            stats,
            shutdown,
            task,
        }
    }

    fn publish(&self, alerts: Vec<Alert>) {
        self.tx.send_replace(assessment(alerts));
    }

    /// (sent, failed) of `alertmanager[i]`.
    fn counts(&self, i: usize) -> (u64, u64) {
        let snap = self.stats.snapshot();
        let s = &snap[&(format!("alertmanager[{i}]"), INTEGRATION)];
        (s.sent, s.failed.values().sum())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("the pusher stops within 2 s of shutdown")
            .expect("the pusher task does not panic");
    }
}

fn state_of(alert: Option<&Value>) -> Option<&str> {
    alert.and_then(|a| a["status"]["state"].as_str())
}

fn ends_at(alert: &Value) -> SystemTime {
    let text = alert["endsAt"].as_str().expect("endsAt");
    humantime::parse_rfc3339_weak(text).expect("RFC 3339 endsAt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_alert_is_kept_alive_then_resolved() {
    let am = Alertmanager::start().await;
    let pusher = Pusher::start(vec![config(&am.url)], RESEND);

    pusher.publish(vec![alert("QueueBacklog", State::Firing)]);
    let got = am
        .wait_for("QueueBacklog", "state active", |a| {
            state_of(a) == Some("active")
        })
        .await
        .unwrap();
    assert_eq!(got["labels"]["severity"], "warning");
    assert_eq!(got["labels"]["vhost"], "/");
    assert_eq!(got["labels"]["queue"], "orders");
    assert_eq!(got["annotations"]["summary"], "QueueBacklog on orders");
    assert_eq!(got["annotations"]["description"], "42 messages ready");
    assert_eq!(
        got["generatorURL"],
        "http://watch.example:9419/api/v1/alerts"
    );
    let first_end = ends_at(&got);
    let expected_end = SystemTime::now() + RESEND * 4;
    assert!(
        first_end <= expected_end + Duration::from_secs(1)
            && first_end + Duration::from_secs(3) >= expected_end,
        "endsAt ≈ now + 4 × resend_delay: {got}"
    );

    // No new assessment: re-sends alone keep it active past its first endsAt.
    tokio::time::sleep(RESEND * 6).await;
    let later = am.alert("QueueBacklog").await;
    assert_eq!(
        state_of(later.as_ref()),
        Some("active"),
        "still active after 6 × resend_delay: {later:?}"
    );
    assert!(ends_at(later.as_ref().unwrap()) > first_end, "{later:?}");
    let (sent, failed) = pusher.counts(0);
    assert!(sent >= 4, "re-sent every resend_delay: sent {sent}");
    assert_eq!(failed, 0);

    pusher.publish(vec![alert("QueueBacklog", State::Resolved)]);
    am.wait_for("QueueBacklog", "resolved (not listed)", |a| {
        a.is_none_or(|a| ends_at(a) <= SystemTime::now())
    })
    .await;
    pusher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_alerts_are_never_sent() {
    let am = Alertmanager::start().await;
    let pusher = Pusher::start(vec![config(&am.url)], RESEND);

    pusher.publish(vec![
        alert("StillPending", State::Pending),
        alert("Marker", State::Firing),
    ]);
    am.wait_for("Marker", "state active", |a| state_of(a) == Some("active"))
        .await;
    // A few resends later, and after another assessment, it still is not there.
    tokio::time::sleep(RESEND * 3).await;
    pusher.publish(vec![
        alert("StillPending", State::Pending),
        alert("Marker", State::Firing),
    ]);
    tokio::time::sleep(RESEND * 2).await;
    let names: Vec<Value> = am
        .alerts()
        .await
        .iter()
        .map(|a| a["labels"]["alertname"].clone())
        .collect();
    assert_eq!(names, ["Marker"]);
    assert!(pusher.counts(0).0 >= 2);
    pusher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_alertmanager_does_not_hold_up_the_others() {
    let am = Alertmanager::start().await;
    let unreachable = config(&format!("http://127.0.0.1:{}", free_port()));
    let pusher = Pusher::start(vec![config(&am.url), unreachable], RESEND);
    assert_eq!(pusher.counts(0), (0, 0), "registered at 0");
    assert_eq!(pusher.counts(1), (0, 0), "registered at 0");

    pusher.publish(vec![alert("QueueBacklog", State::Firing)]);
    am.wait_for("QueueBacklog", "state active", |a| {
        state_of(a) == Some("active")
    })
    .await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while pusher.counts(1).1 == 0 {
        assert!(
            Instant::now() < deadline,
            "no failure recorded for alertmanager[1]"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snap = pusher.stats.snapshot();
    let down = &snap[&("alertmanager[1]".to_owned(), INTEGRATION)];
    assert_eq!(down.sent, 0);
    assert!(
        down.failed.get("connect").is_some_and(|&n| n > 0),
        "{down:?}"
    );
    let up = &snap[&("alertmanager[0]".to_owned(), INTEGRATION)];
    assert!(up.sent >= 1 && up.failed.is_empty(), "{up:?}");

    // A resolve still gets through while the other one keeps failing.
    pusher.publish(vec![alert("QueueBacklog", State::Resolved)]);
    am.wait_for("QueueBacklog", "resolved (not listed)", |a| {
        a.is_none_or(|a| ends_at(a) <= SystemTime::now())
    })
    .await;
    pusher.stop().await;
}

/// Shutdown interrupts a push that is waiting to retry (here for up to a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_promptly_while_retrying() {
    let unreachable = config(&format!("http://127.0.0.1:{}", free_port()));
    let pusher = Pusher::start(vec![unreachable], Duration::from_secs(60));
    pusher.publish(vec![alert("QueueBacklog", State::Firing)]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        pusher.counts(0),
        (0, 0),
        "still retrying: nothing recorded yet"
    );
    let started = Instant::now();
    pusher.stop().await;
    assert!(started.elapsed() < Duration::from_secs(1));
}
