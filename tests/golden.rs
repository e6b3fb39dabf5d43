//! The whole `/metrics` output for a fixed snapshot built from responses recorded on RabbitMQ
//! 3.10.8 (`tests/fixtures/3.10/*-columns.json`, `queues-page.json`), in both formats, compared
//! with `tests/golden/`. Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test
//! --test golden` and review the diff. The text format is also linted by `promtool check
//! metrics` (Debian's prometheus package; scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rabbitmq_watch::alerting::Engine;
use rabbitmq_watch::config;
use rabbitmq_watch::metrics::format::Format;
use rabbitmq_watch::metrics::{SidecarInfo, encode};
use rabbitmq_watch::rabbitmq::Endpoint;
use rabbitmq_watch::rabbitmq::health::{Check, Health, MemberHealth, Verdict};
use rabbitmq_watch::rabbitmq::model::{Alarms, Node, Overview, Page, Queue};
use rabbitmq_watch::selection::select;
use rabbitmq_watch::snapshot::{Fetched, PollTotals, Snapshot};

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/3.10")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn fetched<T>(value: T, millis: u64, bytes: u64) -> Fetched<T> {
    Fetched::answered(value).took(Duration::from_millis(millis), bytes)
}

/// The snapshot of a poll that started 120 s after the `prio` queue's head message was
/// published (so its age is 120 s), with a memory alarm from the alarm check.
fn snapshot() -> Arc<Snapshot> {
    let page: Page<Queue> = fixture("queues-page.json");
    let head = page
        .items
        .iter()
        .find_map(|q| q.head_message_timestamp)
        .unwrap();
    let started_at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(head + 120.0);
    let cfg = config::load(None, Default::default(), &[]).unwrap();
    let mut queues = page.items;
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let (queues, selection) = select(&cfg.queues, queues);
    // Six earlier polls, two of which timed out reading /api/queues.
    let earlier = PollTotals {
        polls: 6,
        failures: [((Endpoint::Queues, "timeout"), 2)].into(),
        last_success: None,
        ..PollTotals::default()
    };
    // No cluster.nodes: the cluster detector judges the answering node's own /api/nodes.
    let snapshot = Snapshot::builder()
        .seq(7)
        .started_at(started_at)
        .duration(Duration::from_millis(42))
        .overview(fetched(
            fixture::<Overview>("overview-columns.json"),
            12,
            2021,
        ))
        .nodes(fetched(fixture::<Vec<Node>>("nodes-columns.json"), 9, 476))
        .queues(fetched(queues, 41, 3960))
        .alarms(fetched(fixture::<Alarms>("alarms-failed.json"), 3, 150))
        .selection(selection)
        // The dead-letter exchange `dlx` of `prio` binds `prio.dead`, a queue not exported.
        .dead_letter_queues(fetched(vec![("/".into(), "prio.dead".into())], 2, 60))
        .counted_after(earlier)
        .health(health())
        .build();
    Arc::new(snapshot)
}

/// The node's health checks as recorded on 3.10.8 (a single node with a TLS listener whose
/// certificate expires within 30 days): the quorum, mirror-sync and vhost checks pass.
fn health() -> Health {
    let node: Vec<Node> = fixture("nodes-columns.json");
    let verdict = |name: &str| fetched(Some(fixture::<Verdict>(name)), 1, 50);
    Health {
        members: vec![MemberHealth {
            node: node[0].name.clone(),
            checks: vec![
                (
                    Check::QuorumCritical,
                    verdict("health-node-is-quorum-critical-ok.json"),
                ),
                (
                    Check::MirrorSyncCritical,
                    verdict("health-node-is-quorum-critical-ok.json"),
                ),
                (Check::VirtualHosts, verdict("health-virtual-hosts-ok.json")),
                (
                    Check::Certificates,
                    verdict("health-certificate-expiration-failed.json"),
                ),
            ],
            // The node serves amqp; mqtt is expected but its plugin is not enabled.
            listeners: vec![
                ("amqp".into(), verdict("health-protocol-listener-ok.json")),
                (
                    "mqtt".into(),
                    verdict("health-protocol-listener-failed.json"),
                ),
            ],
        }],
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(actual.lines().count().min(expected.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\n  actual:   {:?}\n  expected: {:?}",
            first + 1,
            actual.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}

/// The exposition with the default alert rules evaluated on the snapshot, after ten earlier
/// polls a minute apart that read the same (so the backlog windows are complete): the
/// recorded memory alarm makes RabbitmqMemoryAlarm fire, the recorded mqtt listener check
/// RabbitmqProtocolListenerDown; three queues with ready messages and
/// no consumer for 10 minutes make RabbitmqQueueNoConsumers fire; `prio`'s head message,
/// older than 1 s for the last minute only, makes RabbitmqQueueLatencyHigh pending.
fn exposition(format: Format) -> String {
    let cfg = config::load(None, Default::default(), &[]).unwrap();
    let info = SidecarInfo {
        poll_interval: Duration::from_secs(15),
        rule_names: cfg.alerting.rules.iter().map(|r| r.name.clone()).collect(),
        notify_stats: None,
        audit: None,
        config_reload: None,
    };
    let snapshot = snapshot();
    let mut engine = Engine::with_backlog(cfg.alerting.rules, cfg.alerting.backlog);
    for minutes_before in (1..=10).rev() {
        let mut earlier = (*snapshot).clone();
        earlier.started_at -= Duration::from_secs(60 * minutes_before);
        engine.evaluate(&earlier, earlier.started_at);
    }
    engine.evaluate(&snapshot, snapshot.started_at);
    let alerts: Vec<_> = engine.alerts().cloned().collect();
    let mut states: Vec<(String, String)> = alerts
        .iter()
        .map(|a| (a.labels["alertname"].clone(), format!("{:?}", a.state)))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            // The recorded certificate check names a listener expiring within 30 days.
            ("RabbitmqCertificateExpiring".into(), "Firing".into()),
            ("RabbitmqMemoryAlarm".into(), "Firing".into()),
            // The recorded mqtt check: no listener (the plugin is not enabled).
            ("RabbitmqProtocolListenerDown".into(), "Firing".into()),
            // `prio`'s head message is 120 s old at the last poll and was not yet published
            // two polls before: latency above 1 s for one minute, pending (`for` 5m).
            ("RabbitmqQueueLatencyHigh".into(), "Pending".into()),
            ("RabbitmqQueueNoConsumers".into(), "Firing".into()),
            ("RabbitmqQueueNoConsumers".into(), "Firing".into()),
            ("RabbitmqQueueNoConsumers".into(), "Firing".into()),
        ]
    );
    let e = encode(
        Some(snapshot),
        Some(engine.backlog().clone()),
        Some(engine.cluster().clone()),
        &alerts,
        &info,
    );
    String::from_utf8(e.variants.get(format, false).to_vec()).unwrap()
}

#[test]
fn openmetrics_output_matches_the_golden_file() {
    check("metrics.openmetrics.txt", &exposition(Format::OpenMetrics));
}

#[test]
fn text_output_matches_the_golden_file_and_passes_promtool() {
    let text = exposition(Format::Text);
    check("metrics.prometheus.txt", &text);
    let promtool = "/usr/bin/promtool";
    assert!(
        Path::new(promtool).exists(),
        "{promtool} not found: install Debian's prometheus package (scripts/test.sh does)"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
