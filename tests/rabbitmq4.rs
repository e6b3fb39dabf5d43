//! Integration tests against a real RabbitMQ 4.0.5 (Debian 13's package, run by
//! `scripts/rabbitmq-node.sh start DIR --version 4` in the tree that
//! `scripts/install-deps.sh rabbitmq4` builds): real messages over AMQP, the real
//! `rabbitmq-watch` binary, with management statistics on and off.
//!
//! A missing 4.0 tree fails the tests (with the command that builds it); nothing skips.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use support::{RabbitNode, Sidecar, amqp, declare, eventually, publish};

const WAIT: Duration = Duration::from_secs(30);

/// Starts a throwaway RabbitMQ 4.0.5 node with statistics `on` or `off`, stopped (and its
/// directory deleted) when the returned node is dropped or this test process exits.
fn start_node4(tag: &str, stats: &str) -> RabbitNode {
    let dir =
        std::env::temp_dir().join(format!("rabbitmq-watch-test4-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rabbitmq-node.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("start")
        .arg(&dir)
        .args(["--version", "4", "--stats", stats, "--watch-pid"])
        .arg(std::process::id().to_string())
        .output()
        .expect("run scripts/rabbitmq-node.sh");
    assert!(
        out.status.success(),
        "starting a RabbitMQ 4.0 node failed (needs root and the trixie tree: \
         `scripts/install-deps.sh rabbitmq4`; scripts/test.sh runs it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let env = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing in the node script's output:\n{stdout}"))
            .to_owned()
    };
    assert_eq!(env("VERSION"), "4");
    assert_eq!(env("STATS"), stats);
    RabbitNode {
        dir,
        name: env("NODE_NAME"),
        mgmt_url: env("MGMT_URL"),
        amqp_url: env("AMQP_URL"),
    }
}

/// The broker's own version and statistics setting, from `/api/overview`.
fn overview(node: &RabbitNode) -> serde_json::Value {
    let (status, body) = support::http_get(&format!(
        "{}/api/overview",
        node.mgmt_url.replace("http://", "http://guest:guest@")
    ));
    assert_eq!(status, 200, "GET /api/overview: {body}");
    serde_json::from_str(&body).expect("overview JSON")
}

/// Declares a durable classic queue and a quorum queue and publishes 7 confirmed messages to
/// each over AMQP.
async fn seven_in_each(node: &RabbitNode, classic: &str, quorum: &str) {
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, classic).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        quorum.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("declare the quorum queue");
    publish(&ch, classic, 7).await;
    publish(&ch, quorum, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_statistics_queue_depths_and_node_resources_are_exported() {
    let node = start_node4("stats-on", "on");
    let o = overview(&node);
    assert!(
        o["rabbitmq_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("4.0.")),
        "{o}"
    );
    assert_eq!(o["disable_stats"], false, "{o}");
    seven_in_each(&node, "r4-classic", "r4-quorum").await;

    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let labels = |queue| [("vhost", "/"), ("queue", queue)];
    let m = eventually(WAIT, "7 ready in both queues", || {
        let m = sidecar.metrics();
        let ready = |q| m.get("rabbitmq_queue_messages_ready", &labels(q));
        (ready("r4-classic") == Some(7.0) && ready("r4-quorum") == Some(7.0)).then_some(m)
    });
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    for (queue, queue_type) in [("r4-classic", "classic"), ("r4-quorum", "quorum")] {
        let info = m.find("rabbitmq_queue_info", &labels(queue));
        assert_eq!(info.len(), 1, "{queue}: {info:?}");
        assert!(
            info[0]
                .labels
                .contains(&("type".to_owned(), queue_type.to_owned())),
            "{queue}: {info:?}"
        );
        assert_eq!(
            m.get("rabbitmq_queue_messages_unacked", &labels(queue)),
            Some(0.0),
            "{queue}"
        );
        assert_eq!(
            m.get("rabbitmq_queue_consumers", &labels(queue)),
            Some(0.0),
            "{queue}"
        );
    }
    let this_node = [("node", node.name.as_str())];
    assert_eq!(m.get("rabbitmq_node_running", &this_node), Some(1.0));
    for series in [
        "rabbitmq_process_resident_memory_bytes",
        "rabbitmq_resident_memory_limit_bytes",
        "rabbitmq_disk_space_available_bytes",
        "rabbitmq_disk_space_available_limit_bytes",
    ] {
        let value = m.get(series, &this_node);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{series} for {}: {value:?}\n{}",
            node.name,
            m.text
        );
    }
    assert!(
        m.get("rabbitmq_resident_memory_limit_bytes", &this_node)
            > m.get("rabbitmq_process_resident_memory_bytes", &this_node),
        "memory limit above memory used"
    );
    sidecar.terminate();
}

/// Without management statistics (`management_agent.disable_metrics_collector = true`, what
/// RabbitMQ recommends for 4.x) the management API still answers and lists every queue with its
/// type: that much the sidecar exports today. (Depth, consumers and node resources come from
/// rabbitmq_prometheus in that setup: issue #12's second source, tested when it exists.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_the_broker_is_up_and_its_queues_are_listed() {
    let node = start_node4("stats-off", "off");
    let o = overview(&node);
    assert!(
        o["rabbitmq_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("4.0.")),
        "{o}"
    );
    assert_eq!(o["disable_stats"], true, "{o}");
    seven_in_each(&node, "r4-off-classic", "r4-off-quorum").await;

    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let m = eventually(WAIT, "both queues listed", || {
        let m = sidecar.metrics();
        let listed = |q| {
            m.find("rabbitmq_queue_info", &[("vhost", "/"), ("queue", q)])
                .len()
                == 1
        };
        (listed("r4-off-classic") && listed("r4-off-quorum")).then_some(m)
    });
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    assert_eq!(
        m.get("rabbitmq_node_running", &[("node", node.name.as_str())]),
        Some(1.0)
    );
    for (queue, queue_type) in [("r4-off-classic", "classic"), ("r4-off-quorum", "quorum")] {
        let info = m.find("rabbitmq_queue_info", &[("vhost", "/"), ("queue", queue)]);
        assert!(
            info[0]
                .labels
                .contains(&("type".to_owned(), queue_type.to_owned())),
            "{queue}: {info:?}"
        );
        assert!(
            info[0]
                .labels
                .contains(&("node".to_owned(), node.name.clone())),
            "{queue}: {info:?}"
        );
    }
    sidecar.terminate();
}

/// The reliability audit on 4.0 without statistics: the checks that need figures (message
/// counts, consumers, channels) are skipped and say why, never a false finding; the settings
/// checks still find a dead-letter exchange that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_the_audit_skips_what_it_cannot_see_and_says_so() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;

    let node = start_node4("audit-off", "off");
    let (conn, ch) = amqp(&node, "/").await;
    // A non-durable queue holding transient messages published without confirms: findings
    // with statistics, unknown without.
    ch.queue_declare(
        "r4-audit-scratch".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
    let plain = conn.create_channel().await.expect("channel");
    for _ in 0..5 {
        plain
            .basic_publish(
                "".into(),
                "r4-audit-scratch".into(),
                BasicPublishOptions::default(),
                b"transient",
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish");
    }
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("r4-nowhere".into()),
    );
    ch.queue_declare(
        "r4-audit-dlx".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("queue.declare");

    let sidecar = Sidecar::start(&node.mgmt_url, &[("RABBITMQ_WATCH__AUDIT__INTERVAL", "1s")]);
    let data = eventually(WAIT, "an audit run", || {
        let (status, body) = sidecar.get("/api/v1/audit");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        (v["data"]["runs"].as_u64() >= Some(1)).then(|| v["data"].clone())
    });
    let found: Vec<(&str, &str)> = data["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or(""),
                f["object"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![("dead_letter_exchange_missing", "r4-audit-dlx")],
        "{data}"
    );
    let skipped = |check: &str| -> String {
        data["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .filter(|s| s["check"] == check)
            .map(|s| s["reason"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        skipped("transient_queue_with_messages").contains("statistics disabled"),
        "{data}"
    );
    for check in ["auto_ack_consumer", "publish_without_confirms"] {
        assert!(
            skipped(check).contains("statistics are disabled on the broker"),
            "{check}: {data}"
        );
    }
    // Not read, so not failed: the broker's 400 is not counted as a failure.
    let m = sidecar.metrics();
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", "/api/consumers"), ("reason", "status")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "rabbitmq_audit_check_skipped",
            &[("check", "publish_without_confirms")]
        ),
        Some(1.0)
    );
    sidecar.terminate();
}
