//! Integration tests against a real RabbitMQ 4.0.5 (Debian 13's package, run by
//! `scripts/rabbitmq-node.sh start DIR --version 4` in the tree that
//! `scripts/install-deps.sh rabbitmq4` builds): real messages over AMQP, the real
//! `rabbitmq-watch` binary, with management statistics on and off.
//!
//! A missing 4.0 tree fails the tests (with the command that builds it); nothing skips.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use support::{
    NODE_MEMORY_AND_DISK, RabbitNode, Sidecar, amqp, consume_and_hold, declare, declare_quorum,
    declare_with, eventually, publish,
};

const WAIT: Duration = Duration::from_secs(30);

/// The node's file-descriptor series (used and limit), labelled `node`.
const NODE_FDS: [&str; 2] = ["rabbitmq_process_open_fds", "rabbitmq_process_max_fds"];

/// Held by each test that uses the statistics-off node: one of them raises a memory alarm,
/// which blocks every publisher of the node.
static OFF_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The same for the statistics-on node (a memory alarm is raised there too).
static ON_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The RabbitMQ 4.0.5 node of this test binary with statistics `on` or `off`, started on
/// first use and shared by the tests (start-ups are slow on 2 cores); the node script's
/// watchdog stops it when this test process exits.
fn node4(stats: &str) -> &'static RabbitNode {
    static ON: OnceLock<RabbitNode> = OnceLock::new();
    static OFF: OnceLock<RabbitNode> = OnceLock::new();
    let cell = if stats == "on" { &ON } else { &OFF };
    cell.get_or_init(|| {
        // The statistics-on node also requires authentication on its rabbitmq_prometheus
        // (`prometheus.authentication.enabled`): the prometheus source authenticates like the
        // management source, and a user the plugin refuses gets a 401 (tests below).
        let auth = "prometheus.authentication.enabled = true";
        let mut args = vec!["--version", "4", "--stats", stats];
        if stats == "on" {
            args.extend(["--conf", auth]);
        }
        let node = RabbitNode::start_with(&format!("r4-{stats}"), &args);
        assert!(
            !node.prom_url.is_empty(),
            "4.0 nodes run rabbitmq_prometheus"
        );
        node
    })
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

/// The overview of `node` (as [`overview`]), asserting that the broker is a 4.0.x.
fn overview_of_4_0(node: &RabbitNode) -> serde_json::Value {
    let o = overview(node);
    assert!(
        o["rabbitmq_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("4.0.")),
        "{o}"
    );
    o
}

/// Declares a durable classic queue and a quorum queue and publishes 7 confirmed messages to
/// each over AMQP.
async fn seven_in_each(node: &RabbitNode, classic: &str, quorum: &str) {
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, classic).await;
    declare_quorum(&ch, quorum, &[]).await;
    publish(&ch, classic, 7).await;
    publish(&ch, quorum, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_statistics_queue_depths_and_node_resources_are_exported() {
    let _serial = ON_NODE.lock().await;
    let node = node4("on");
    let o = overview_of_4_0(node);
    assert_eq!(o["disable_stats"], false, "{o}");
    seven_in_each(node, "r4-classic", "r4-quorum").await;

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
        assert!(info[0].has_label("type", queue_type), "{queue}: {info:?}");
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
    m.assert_positive(&NODE_MEMORY_AND_DISK, &this_node, &node.name);
    assert!(
        m.get("rabbitmq_resident_memory_limit_bytes", &this_node)
            > m.get("rabbitmq_process_resident_memory_bytes", &this_node),
        "memory limit above memory used"
    );
    sidecar.terminate();
}

/// Without management statistics (`management_agent.disable_metrics_collector = true`, what
/// RabbitMQ recommends for 4.x) the management API still answers and lists every queue with its
/// type, placement and node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_the_broker_is_up_and_its_queues_are_listed() {
    let _serial = OFF_NODE.lock().await;
    let node = node4("off");
    let o = overview_of_4_0(node);
    assert_eq!(o["disable_stats"], true, "{o}");
    seven_in_each(node, "r4-off-classic", "r4-off-quorum").await;

    // The plugin listens on a port of its own here, not on 15692 of the management host.
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url)],
    );
    let m = eventually(WAIT, "both queues listed", || {
        let m = sidecar.metrics();
        let listed = |q| {
            m.find("rabbitmq_queue_info", &[("vhost", "/"), ("queue", q)])
                .len()
                == 1
        };
        let up = m.get("rabbitmq_up", &[]) == Some(1.0);
        (up && listed("r4-off-classic") && listed("r4-off-quorum")).then_some(m)
    });
    assert_eq!(
        m.get("rabbitmq_node_running", &[("node", node.name.as_str())]),
        Some(1.0)
    );
    for (queue, queue_type) in [("r4-off-classic", "classic"), ("r4-off-quorum", "quorum")] {
        let info = m.find("rabbitmq_queue_info", &[("vhost", "/"), ("queue", queue)]);
        assert!(info[0].has_label("type", queue_type), "{queue}: {info:?}");
        assert!(info[0].has_label("node", &node.name), "{queue}: {info:?}");
    }
    sidecar.terminate();
}

/// #12's "done when": on 4.0.5 with statistics disabled, `source: auto` reads every figure
/// from rabbitmq_prometheus: a queue with 7 ready messages shows
/// `rabbitmq_queue_messages_ready 7` within two polls, its consumer (a lapin consumer) is
/// counted, the node's memory and disk are exported, and a real memory alarm
/// (`rabbitmqctl set_vm_memory_high_watermark 0.0001`) raises `RabbitmqMemoryAlarm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_the_prometheus_source_gives_depth_consumers_resources_and_alarms() {
    let _serial = OFF_NODE.lock().await;
    let node = node4("off");
    assert_eq!(overview(node)["disable_stats"], true);
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, "r4-prom-seven").await;
    publish(&ch, "r4-prom-seven", 7).await;
    declare(&ch, "r4-prom-consumed").await;
    // The consumer holds (does not acknowledge) what it receives: 2 unacked.
    let _consumer = consume_and_hold(&ch, "r4-prom-consumed", "r4-prom-consumer", 2).await;
    // The broker refreshes its queue metrics on its own timer: wait until its plugin says 7
    // ready and 1 consumer, then the sidecar must show them within two polls.
    eventually(
        WAIT,
        "the broker's own /metrics/detailed has the figures",
        || {
            let (status, body) = support::http_get(&format!(
                "{}/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count",
                node.prom_url
            ));
            let has = |line: &str| body.lines().any(|l| l == line);
            (status == 200
            && has("rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"r4-prom-seven\"} 7")
            && has("rabbitmq_detailed_queue_consumers{vhost=\"/\",queue=\"r4-prom-consumed\"} 1")
            && has("rabbitmq_detailed_queue_messages_unacked{vhost=\"/\",queue=\"r4-prom-consumed\"} 2"))
        .then_some(())
        },
    );

    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[
            ("RABBITMQ_WATCH__POLL__INTERVAL", "3s"),
            ("RABBITMQ_WATCH__RABBITMQ__TIMEOUT", "2500ms"),
            ("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url),
        ],
    );
    let m = eventually(WAIT, "a first poll", || {
        let m = sidecar.metrics();
        m.get("rabbitmq_watch_polls_total", &[])
            .is_some_and(|n| n >= 1.0)
            .then_some(m)
    });
    let polls = m.get("rabbitmq_watch_polls_total", &[]).unwrap();
    assert!(polls <= 2.0, "{polls} polls");
    let seven = [("vhost", "/"), ("queue", "r4-prom-seven")];
    assert_eq!(
        m.get("rabbitmq_queue_messages_ready", &seven),
        Some(7.0),
        "within two polls:\n{}",
        m.text
    );
    assert_eq!(m.get("rabbitmq_queue_consumers", &seven), Some(0.0));
    let consumed = [("vhost", "/"), ("queue", "r4-prom-consumed")];
    assert_eq!(m.get("rabbitmq_queue_consumers", &consumed), Some(1.0));
    assert_eq!(
        m.get("rabbitmq_queue_messages_unacked", &consumed),
        Some(2.0)
    );
    assert_eq!(m.get("rabbitmq_queue_messages_ready", &consumed), Some(0.0));
    assert_eq!(
        m.get("rabbitmq_watch_source_info", &[("source", "prometheus")]),
        Some(1.0)
    );
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0), "{}", m.text);
    for endpoint in ["/metrics/detailed", "/metrics"] {
        assert_eq!(
            m.get("rabbitmq_watch_endpoint_success", &[("endpoint", endpoint)]),
            Some(1.0),
            "{endpoint}"
        );
    }
    let this_node = [("node", node.name.as_str())];
    m.assert_positive(&NODE_MEMORY_AND_DISK, &this_node, "rabbitmq_prometheus");
    m.assert_positive(&NODE_FDS, &this_node, "rabbitmq_prometheus");

    // A real memory alarm raises RabbitmqMemoryAlarm; the watermark is reset afterwards.
    node.ctl(&["set_vm_memory_high_watermark", "0.0001"]);
    let firing = eventually(WAIT, "RabbitmqMemoryAlarm firing", || {
        let (status, body) = sidecar.get("/api/v1/alerts");
        let api: serde_json::Value = serde_json::from_str(&body).ok()?;
        let alerts = api["data"]["alerts"].as_array()?.clone();
        (status == 200).then_some(()).and(
            alerts.into_iter().find(|a| {
                a["labels"]["alertname"] == "RabbitmqMemoryAlarm" && a["state"] == "firing"
            }),
        )
    });
    node.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    assert_eq!(firing["labels"]["node"], node.name.as_str(), "{firing}");
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_watch_source_info", &[("source", "prometheus")]),
        Some(1.0)
    );
    eventually(WAIT, "the alarm cleared", || {
        let (_, body) = sidecar.get("/api/v1/alerts");
        (!body.contains("\"RabbitmqMemoryAlarm\"") || body.contains("\"resolved\"")).then_some(())
    });
    sidecar.terminate();
}

/// The reliability audit on 4.0 without statistics: the checks that need figures (message
/// counts, consumers, channels) are skipped and say why, never a false finding; the settings
/// checks still find a dead-letter exchange that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_the_audit_skips_what_it_cannot_see_and_says_so() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;

    let _serial = OFF_NODE.lock().await;
    let node = node4("off");
    let (conn, ch) = amqp(node, "/").await;
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
    declare_with(
        &ch,
        "r4-audit-dlx",
        &[(
            "x-dead-letter-exchange",
            AMQPValue::LongString("r4-nowhere".into()),
        )],
    )
    .await;

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
    assert!(
        found.contains(&("dead_letter_exchange_missing", "r4-audit-dlx")),
        "{data}"
    );
    // No finding that needs what the broker does not report (consumers, channels).
    assert!(
        !found
            .iter()
            .any(|(c, _)| *c == "auto_ack_consumer" || *c == "publish_without_confirms"),
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

/// 4.0 quorum queues report members, online members, leader and the delivery limit (default
/// 20); mirroring is gone: no mirror series, and the 404 of `node-is-mirror-sync-critical` is
/// "not available" (no series, logged once), not a failed poll (#16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queue_members_and_delivery_limit_without_mirrors_on_4_0() {
    let _serial = ON_NODE.lock().await;
    let node = node4("on");
    let (_conn, ch) = amqp(node, "/").await;
    declare_quorum(&ch, "r4-replicated", &[]).await;
    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let queue = [("vhost", "/"), ("queue", "r4-replicated")];
    let this_node = [("node", node.name.as_str())];
    let m = eventually(WAIT, "members and the delivery limit exported", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_queue_members", &queue) == Some(1.0)
            && m.get("rabbitmq_queue_delivery_limit", &queue).is_some())
        .then_some(m)
    });
    assert_eq!(m.get("rabbitmq_queue_delivery_limit", &queue), Some(20.0));
    assert_eq!(m.get("rabbitmq_queue_online_members", &queue), Some(1.0));
    assert_eq!(m.get("rabbitmq_queue_leader_online", &queue), Some(1.0));
    assert_eq!(m.get("rabbitmq_queue_messages_dlx", &queue), Some(0.0));
    let leader = [queue[0], queue[1], this_node[0]];
    assert_eq!(m.get("rabbitmq_queue_leader_info", &leader), Some(1.0));
    assert!(
        m.find("rabbitmq_queue_mirrors", &[]).is_empty(),
        "no mirrors on 4.x"
    );
    assert_eq!(
        m.get("rabbitmq_node_quorum_critical", &this_node),
        Some(0.0)
    );
    assert_eq!(
        m.get("rabbitmq_node_virtual_hosts_down", &this_node),
        Some(0.0)
    );
    assert_eq!(
        m.get("rabbitmq_node_mirror_sync_critical", &this_node),
        None
    );
    let mirror_check = [this_node[0], ("check", "node-is-mirror-sync-critical")];
    assert_eq!(m.get("rabbitmq_watch_health_check_up", &mirror_check), None);
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    let logs = sidecar.terminate();
    assert_eq!(
        logs.matches("health check not available").count(),
        1,
        "logged once: {logs}"
    );
}

// -------------------------------------------------------------------------------------------
// #12: the live suites on 4.0.5 with statistics on and off: consumers, node memory, disk and
// file descriptors, the memory alarm, backlog growing / no consumers, and the plugin's 401.

/// The alert `alertname` firing with label `key` = `value`, from the sidecar's `/api/v1/alerts`.
fn firing_alert(
    sidecar: &Sidecar,
    alertname: &str,
    key: &str,
    value: &str,
) -> Option<serde_json::Value> {
    let (status, body) = sidecar.get("/api/v1/alerts");
    let api: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200).then_some(())?;
    api["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == alertname
                && a["labels"][key] == value
                && a["state"] == "firing"
        })
        .cloned()
}

/// Sets the node's memory high watermark back to RabbitMQ's default when dropped, so a failed
/// assertion does not leave the shared node's publishers blocked.
struct WatermarkReset<'a>(&'a RabbitNode);

impl Drop for WatermarkReset<'_> {
    fn drop(&mut self) {
        let node = self.0;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            node.ctl(&["set_vm_memory_high_watermark", "0.4"])
        }));
    }
}

/// Node figures every source must export for `node`: memory and its limit, disk and its
/// limit, file descriptors used and available.
fn assert_node_resources(m: &support::Exposition, node: &RabbitNode, source: &str) {
    let this_node = [("node", node.name.as_str())];
    m.assert_positive(&NODE_MEMORY_AND_DISK, &this_node, source);
    m.assert_positive(&NODE_FDS, &this_node, source);
    assert!(
        m.get("rabbitmq_process_open_fds", &this_node)
            < m.get("rabbitmq_process_max_fds", &this_node),
        "{source}: fds used below the limit"
    );
}

/// With statistics on, both sources (the management statistics, chosen by `auto`, and
/// rabbitmq_prometheus forced, authenticating to the plugin, which requires it on this node)
/// give the same depth, consumers and node resources, and both raise `RabbitmqMemoryAlarm` for
/// a real memory alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_statistics_both_sources_give_consumers_fds_and_the_memory_alarm() {
    let _serial = ON_NODE.lock().await;
    let node = node4("on");
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, "r4-on-seven").await;
    publish(&ch, "r4-on-seven", 7).await;
    declare(&ch, "r4-on-consumed").await;
    let _consumer = consume_and_hold(&ch, "r4-on-consumed", "r4-on-consumer", 2).await;

    let prom_url = (
        "RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL",
        node.prom_url.as_str(),
    );
    let management = Sidecar::start(&node.mgmt_url, &[prom_url]);
    let prometheus = Sidecar::start(
        &node.mgmt_url,
        &[prom_url, ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "prometheus")],
    );
    let seven = [("vhost", "/"), ("queue", "r4-on-seven")];
    let consumed = [("vhost", "/"), ("queue", "r4-on-consumed")];
    for (source, sidecar) in [("management", &management), ("prometheus", &prometheus)] {
        let m = eventually(
            WAIT,
            &format!("{source}: 7 ready, 1 consumer, 2 unacked"),
            || {
                let m = sidecar.metrics();
                (m.get("rabbitmq_queue_messages_ready", &seven) == Some(7.0)
                    && m.get("rabbitmq_queue_consumers", &consumed) == Some(1.0)
                    && m.get("rabbitmq_queue_messages_unacked", &consumed) == Some(2.0))
                .then_some(m)
            },
        );
        assert_eq!(
            m.get("rabbitmq_watch_source_info", &[("source", source)]),
            Some(1.0),
            "{source}"
        );
        assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0), "{source}: {}", m.text);
        assert_eq!(m.get("rabbitmq_queue_consumers", &seven), Some(0.0));
        assert_node_resources(&m, node, source);
    }

    let reset = WatermarkReset(node);
    node.ctl(&["set_vm_memory_high_watermark", "0.0001"]);
    for (source, sidecar) in [("management", &management), ("prometheus", &prometheus)] {
        eventually(
            WAIT,
            &format!("{source}: RabbitmqMemoryAlarm firing"),
            || firing_alert(sidecar, "RabbitmqMemoryAlarm", "node", &node.name),
        );
    }
    drop(reset);
    management.terminate();
    prometheus.terminate();
}

/// Publishes one confirmed message to `queue` about every `period` until `stop`.
fn producer(
    ch: lapin::Channel,
    queue: &'static str,
    period: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            publish(&ch, queue, 1).await;
            next += period;
            tokio::time::sleep_until(next).await;
        }
    });
}

/// The backlog detector on `node` with real AMQP traffic: `growing` gets ~40 msg/s from a
/// producer and loses ~8 msg/s to a slow consumer, `idle` holds 10 messages and no consumer.
/// The sidecar (`source: auto`, polling every 500 ms, 6 s backlog windows,
/// RabbitmqQueueNoConsumers after 2 s) must call `growing` growing and raise
/// RabbitmqQueueGrowing, and call `idle` no_consumers and raise RabbitmqQueueNoConsumers.
/// Returns the Growing alert's cause and the last exposition.
async fn backlog_growing_and_no_consumers(
    node: &RabbitNode,
    growing: &'static str,
    idle: &'static str,
    source: &str,
) -> (String, support::Exposition) {
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, growing).await;
    declare(&ch, idle).await;
    publish(&ch, idle, 10).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_pconn, pch) = amqp(node, "/").await;
    producer(pch, growing, Duration::from_millis(25), stop.clone());
    let (_cconn, cch) = amqp(node, "/").await;
    support::consume(&cch, growing, 1, Duration::from_millis(120), Some(true)).await;

    let yaml = format!(
        r#"
queues:
  include: "^({growing}|{idle})$"
alerting:
  backlog:
    window: 6s
    min_completeness: 0.8
  rules:
    - alert: RabbitmqQueueNoConsumers
      for: 2s
"#
    );
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        &yaml,
        &[
            ("RABBITMQ_WATCH__POLL__INTERVAL", "500ms"),
            ("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url),
        ],
    );
    let status = |queue: &str| -> Option<String> {
        let m = sidecar.metrics();
        let found = m.find("rabbitmq_queue_backlog_status", &[("queue", queue)]);
        found.first().and_then(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == "status")
                .map(|(_, v)| v.clone())
        })
    };
    let alert = eventually(Duration::from_secs(60), "RabbitmqQueueGrowing", || {
        firing_alert(&sidecar, "RabbitmqQueueGrowing", "queue", growing)
    });
    assert_eq!(status(growing).as_deref(), Some("growing"));
    eventually(WAIT, "RabbitmqQueueNoConsumers", || {
        firing_alert(&sidecar, "RabbitmqQueueNoConsumers", "queue", idle)
    });
    assert_eq!(status(idle).as_deref(), Some("no_consumers"));
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_watch_source_info", &[("source", source)]),
        Some(1.0)
    );
    assert_eq!(
        m.get("rabbitmq_queue_messages_ready", &[("queue", idle)]),
        Some(10.0)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sidecar.terminate();
    let cause = alert["details"]["cause"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (cause, m)
}

/// With statistics on (`auto` reads the management statistics): GROWING with the measured
/// rates in the cause, NO_CONSUMERS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_statistics_a_faster_producer_is_growing_and_an_unconsumed_queue_has_no_consumers() {
    let _serial = ON_NODE.lock().await;
    let (cause, _) =
        backlog_growing_and_no_consumers(node4("on"), "r4-on-growing", "r4-on-idle", "management")
            .await;
    assert!(
        cause.starts_with("ingress ") && cause.contains("msg/s > egress"),
        "{cause}"
    );
}

/// Without statistics (`auto` reads rabbitmq_prometheus, which has no per-queue publish
/// counter): GROWING, the cause giving the egress rate from the plugin's per-queue delivery
/// counters and saying the ingress rate is unknown; NO_CONSUMERS. The delivery counters are
/// exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_a_faster_producer_is_growing_and_an_unconsumed_queue_has_no_consumers()
{
    let _serial = OFF_NODE.lock().await;
    let (cause, m) = backlog_growing_and_no_consumers(
        node4("off"),
        "r4-off-growing",
        "r4-off-idle",
        "prometheus",
    )
    .await;
    assert!(
        cause.starts_with("ready +")
            && cause
                .contains(" msg/s (ingress unknown: this source has no per-queue publish counter)"),
        "{cause}"
    );
    assert!(!cause.contains("no per-queue counters"), "{cause}");
    // The slow consumer acknowledges about 8 msg/s: an egress rate above 0 is printed.
    let egress = cause
        .split(", egress ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|r| r.parse::<f64>().ok());
    assert!(egress.is_some_and(|e| e > 0.0), "{cause}");
    // 4.0.5's rabbitmq_prometheus serves the per-queue delivery counters
    // (`queue_delivery_metrics`), exported as they are; it has no publish counter: absent.
    let growing = [("vhost", "/"), ("queue", "r4-off-growing")];
    let delivered = m.get("rabbitmq_queue_messages_delivered_ack_total", &growing);
    assert!(
        delivered.is_some_and(|d| d > 0.0),
        "{delivered:?}\n{}",
        m.text
    );
    assert!(
        m.get("rabbitmq_queue_messages_acked_total", &growing)
            .is_some_and(|a| a > 0.0)
    );
    assert_eq!(
        m.get("rabbitmq_queue_messages_published_total", &growing),
        None
    );
}

/// rabbitmq_prometheus with `prometheus.authentication.enabled = true` (verified on 4.0.5)
/// answers 401 to a wrong password and to a user without the `monitoring` tag. Both are a
/// `status` failure of its endpoints with a clear reason in the log, `rabbitmq_up 0`, and the
/// figures absent (not 0); the password appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_refusing_the_credentials_is_a_401_with_up_0_and_absent_figures() {
    let _serial = ON_NODE.lock().await;
    let node = node4("on");
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, "r4-auth-listed").await;
    publish(&ch, "r4-auth-listed", 3).await;
    // A user the management API accepts for queue listings, the plugin not (no `monitoring`).
    node.ctl(&["add_user", "r4-mgmt-only", "r4-secret-pw"]);
    node.ctl(&["set_user_tags", "r4-mgmt-only", "management"]);
    node.ctl(&[
        "set_permissions",
        "-p",
        "/",
        "r4-mgmt-only",
        ".*",
        ".*",
        ".*",
    ]);
    let prom_url = (
        "RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL",
        node.prom_url.as_str(),
    );
    let source = ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "prometheus");
    let untagged = Sidecar::start(
        &node.mgmt_url,
        &[
            prom_url,
            source,
            ("RABBITMQ_WATCH__RABBITMQ__USERNAME", "r4-mgmt-only"),
            ("RABBITMQ_WATCH__RABBITMQ__PASSWORD", "r4-secret-pw"),
        ],
    );
    let wrong = Sidecar::start(
        &node.mgmt_url,
        &[
            prom_url,
            source,
            ("RABBITMQ_WATCH__RABBITMQ__PASSWORD", "r4-wrong-pw"),
        ],
    );
    let failures = |m: &support::Exposition, endpoint| {
        m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", endpoint), ("reason", "status")],
        )
        .unwrap_or(0.0)
    };
    for (who, sidecar, secret) in [
        ("no monitoring tag", &untagged, "r4-secret-pw"),
        ("wrong password", &wrong, "r4-wrong-pw"),
    ] {
        let m = eventually(
            WAIT,
            &format!("{who}: 401 of both plugin endpoints"),
            || {
                let m = sidecar.metrics();
                (failures(&m, "/metrics/detailed") >= 1.0 && failures(&m, "/metrics") >= 1.0)
                    .then_some(m)
            },
        );
        assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0), "{who}");
        for endpoint in ["/metrics/detailed", "/metrics"] {
            assert_eq!(
                m.get("rabbitmq_watch_endpoint_success", &[("endpoint", endpoint)]),
                Some(0.0),
                "{who}: {endpoint}"
            );
        }
        let q = [("vhost", "/"), ("queue", "r4-auth-listed")];
        assert_eq!(m.get("rabbitmq_queue_messages_ready", &q), None, "{who}");
        assert_eq!(
            m.get(
                "rabbitmq_process_resident_memory_bytes",
                &[("node", node.name.as_str())]
            ),
            None,
            "{who}"
        );
        let logs = sidecar.logs();
        for endpoint in ["/metrics/detailed", "/metrics"] {
            assert!(
                logs.contains(&format!("{endpoint}: HTTP 401 (the plugin requires authentication, prometheus.authentication.enabled: check rabbitmq.username and rabbitmq.password, and that the user has the monitoring or administrator tag)")),
                "{who}: {endpoint}: {logs}"
            );
        }
        assert!(!logs.contains(secret), "{who}: the password is logged");
        assert!(!m.text.contains(secret), "{who}: the password is exported");
    }
    // The management-only user still lists the queues: the 401 is the plugin's alone.
    let m = untagged.metrics();
    assert_eq!(
        m.find(
            "rabbitmq_queue_info",
            &[("vhost", "/"), ("queue", "r4-auth-listed")]
        )
        .len(),
        1,
        "{}",
        m.text
    );
    assert!(
        untagged.logs().contains("Not monitor user"),
        "the plugin's own reason is in the log"
    );
    untagged.terminate();
    wrong.terminate();
}

// -------------------------------------------------------------------------------------------
// #16: poison messages of a 4.0 quorum queue (delivery limit, default 20).

/// A 4.0.5 quorum queue with the default delivery limit (20) and a dead-letter exchange; a
/// producer publishes one message every 200 ms and a consumer nacks every delivery with
/// requeue: each message is redelivered until the limit drops it. The sidecar (polling every
/// 500 ms, 6 s backlog windows) raises RabbitmqPoisonMessage naming the queue, the limit the
/// listing reports and the dead-letter target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_statistics_a_consumer_that_always_requeues_raises_the_poison_message_alert() {
    let _serial = ON_NODE.lock().await;
    let node = node4("on");
    let queue = "r4-poison";
    let (_conn, ch) = amqp(node, "/").await;
    declare_quorum(
        &ch,
        queue,
        &[(
            "x-dead-letter-exchange",
            AMQPValue::LongString("r4-poison.dlx".into()),
        )],
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_pconn, pch) = amqp(node, "/").await;
    producer(pch, queue, Duration::from_millis(200), stop.clone());
    let (_cconn, cch) = amqp(node, "/").await;
    support::requeue_forever(&cch, queue, Duration::from_millis(10)).await;
    let yaml = format!(
        "queues:\n  include: \"^{queue}$\"\nalerting:\n  backlog:\n    window: 6s\n    min_completeness: 0.8\n"
    );
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        &yaml,
        &[("RABBITMQ_WATCH__POLL__INTERVAL", "500ms")],
    );
    let alert = eventually(Duration::from_secs(60), "RabbitmqPoisonMessage", || {
        firing_alert(&sidecar, "RabbitmqPoisonMessage", "queue", queue)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(alert["labels"]["vhost"], "/");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(
        alert["annotations"]["summary"],
        format!(
            "Queue {queue} in vhost / keeps redelivering the same messages: each is dead-lettered to exchange \"r4-poison.dlx\" after 20 deliveries"
        )
    );
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("Its delivery limit is 20:"),
        "{description}"
    );
    let m = sidecar.metrics();
    let labels = [("vhost", "/"), ("queue", queue)];
    assert_eq!(m.get("rabbitmq_queue_delivery_limit", &labels), Some(20.0));
    let ratio = m.get("rabbitmq_queue_redelivery_ratio", &labels).unwrap();
    assert!(ratio > 0.5, "redelivery ratio {ratio}");
    sidecar.terminate();
}

// -------------------------------------------------------------------------------------------
// #16: connection churn without management statistics, from the plugin's counters.

/// The alert `alertname` in `state` (`firing`, `resolved`), from the sidecar's `/api/v1/alerts`.
fn alert_in_state(sidecar: &Sidecar, alertname: &str, state: &str) -> Option<serde_json::Value> {
    let (_, body) = sidecar.get("/api/v1/alerts");
    let api: serde_json::Value = serde_json::from_str(&body).ok()?;
    api["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname && a["state"] == state)
        .cloned()
}

/// On 4.0.5 with statistics disabled `/api/overview` has no `churn_rates` and `/api/nodes` no
/// `connection_created`: the churn comes from rabbitmq_prometheus's
/// `rabbitmq_connections_opened_total` / `_closed_total` (`source: auto` reads the plugin).
/// Real clients reconnecting in a loop raise RabbitmqHighConnectionChurn (its 100-connection
/// floor lowered to the one held here), which resolves when they stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_connection_churn_from_the_plugin_fires_and_resolves() {
    let _serial = OFF_NODE.lock().await;
    let node = node4("off");
    assert_eq!(overview(node)["churn_rates"], serde_json::Value::Null);
    let yaml = r#"
alerting:
  backlog:
    window: 3s
  rules:
    - alert: RabbitmqHighConnectionChurn
      expr: "connection_churn / connections > 0.1 and connections >= 1"
      for: 1s
"#;
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        yaml,
        &[
            ("RABBITMQ_WATCH__POLL__INTERVAL", "1s"),
            ("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url),
        ],
    );
    let connect = |url: String| async move {
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .expect("AMQP connect")
    };
    let _steady = connect(node.amqp_url.clone()).await;
    let this_node = [("node", node.name.as_str())];
    let opened_before = tokio::task::block_in_place(|| {
        eventually(WAIT, "rabbitmq_connections_opened_total", || {
            sidecar
                .metrics()
                .get("rabbitmq_connections_opened_total", &this_node)
        })
    });
    let churn = {
        let url = node.amqp_url.clone();
        tokio::spawn(async move {
            loop {
                let c = connect(url.clone()).await;
                c.close(200, "churn".into()).await.expect("close");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let firing = tokio::task::block_in_place(|| {
        eventually(WAIT, "RabbitmqHighConnectionChurn firing", || {
            alert_in_state(&sidecar, "RabbitmqHighConnectionChurn", "firing")
        })
    });
    assert!(firing["value"].as_f64().unwrap() > 0.1, "{firing}");
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_watch_source_info", &[("source", "prometheus")]),
        Some(1.0)
    );
    let opened = m
        .get("rabbitmq_connections_opened_total", &this_node)
        .unwrap();
    assert!(opened > opened_before, "{opened} after {opened_before}");
    churn.abort();
    tokio::task::block_in_place(|| {
        eventually(WAIT, "RabbitmqHighConnectionChurn resolved", || {
            alert_in_state(&sidecar, "RabbitmqHighConnectionChurn", "resolved")
        })
    });
    sidecar.terminate();
}

/// On 4.0.5 with statistics disabled `/api/overview` lists no listeners, so only
/// `cluster.expected_protocols` are checked: `amqp` is up, `stomp` (plugin not enabled) is
/// down and raises RabbitmqProtocolListenerDown naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_statistics_the_expected_protocols_are_checked() {
    let _serial = OFF_NODE.lock().await;
    let node = node4("off");
    assert_eq!(overview(node)["listeners"], serde_json::Value::Null);
    let yaml = "cluster:\n  expected_protocols: amqp, stomp\nalerting:\n  rules:\n    - alert: RabbitmqProtocolListenerDown\n      for: 0s\n";
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        yaml,
        &[("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url)],
    );
    let alert = tokio::task::block_in_place(|| {
        eventually(WAIT, "RabbitmqProtocolListenerDown firing", || {
            firing_alert(
                &sidecar,
                "RabbitmqProtocolListenerDown",
                "node",
                node.name.as_str(),
            )
        })
    });
    assert_eq!(
        alert["annotations"]["summary"],
        format!("No listener for stomp on node {}", node.name)
    );
    let m = sidecar.metrics();
    let down = |protocol| {
        m.get(
            "rabbitmq_node_protocol_listener_down",
            &[("node", node.name.as_str()), ("protocol", protocol)],
        )
    };
    assert_eq!((down("amqp"), down("stomp")), (Some(0.0), Some(1.0)));
    assert_eq!(
        down("http"),
        None,
        "not listed by the overview: not checked"
    );
    sidecar.terminate();
}
