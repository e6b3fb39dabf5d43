//! Integration tests against one real RabbitMQ node (shared by this binary): real messages
//! published and consumed over AMQP, the real `rabbitmq-watch` binary, a real Prometheus.
//!
//! Tests that change broker-wide state (alarms) or publish hold `BROKER`, so they do not
//! disturb each other.

mod support;

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use support::{
    Prometheus, RabbitNode, Sidecar, amqp, declare, declare_with, eventually, publish, publish_with,
};

/// Held by tests that publish or change broker-wide state (an alarm blocks publishers).
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_queue_depths_appear_and_deleted_queue_vanishes() {
    let node = RabbitNode::shared();
    let _lock = BROKER.lock().await;
    node.ctl(&["add_vhost", "live-vh"]);
    node.ctl(&[
        "set_permissions",
        "-p",
        "live-vh",
        "guest",
        ".*",
        ".*",
        ".*",
    ]);

    let (_conn, ch) = amqp(node, "/").await;
    let tricky = "tricky \"name\" \\ é";
    for q in ["live-depth", "live-unacked", tricky] {
        declare(&ch, q).await;
    }
    publish(&ch, "live-depth", 7).await;
    publish(&ch, "live-unacked", 5).await;
    publish(&ch, tricky, 2).await;
    // A consumer with prefetch 2 that never acks: 2 unacked, 3 ready.
    let (_conn2, consumer_ch) = amqp(node, "/").await;
    consumer_ch
        .basic_qos(2, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let _consumer = consumer_ch
        .basic_consume(
            "live-unacked".into(),
            "live-test-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let (_conn3, vh_ch) = amqp(node, "live-vh").await;
    declare(&vh_ch, "live-depth").await;
    publish(&vh_ch, "live-depth", 3).await;

    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let expected: &[(&str, &str, &str, f64)] = &[
        ("/", "live-depth", "rabbitmq_queue_messages", 7.0),
        ("/", "live-depth", "rabbitmq_queue_messages_ready", 7.0),
        ("/", "live-depth", "rabbitmq_queue_messages_unacked", 0.0),
        ("/", "live-depth", "rabbitmq_queue_consumers", 0.0),
        ("/", "live-unacked", "rabbitmq_queue_messages", 5.0),
        ("/", "live-unacked", "rabbitmq_queue_messages_ready", 3.0),
        ("/", "live-unacked", "rabbitmq_queue_messages_unacked", 2.0),
        ("/", "live-unacked", "rabbitmq_queue_consumers", 1.0),
        ("/", tricky, "rabbitmq_queue_messages_ready", 2.0),
        (
            "live-vh",
            "live-depth",
            "rabbitmq_queue_messages_ready",
            3.0,
        ),
    ];
    eventually(WAIT, "exact queue depths on /metrics", || {
        let m = sidecar.metrics();
        let all = expected.iter().all(|(vhost, queue, name, want)| {
            m.get(name, &[("vhost", vhost), ("queue", queue)]) == Some(*want)
        });
        all.then_some(())
    });
    let m = sidecar.metrics();
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    for endpoint in [
        "/api/overview",
        "/api/nodes",
        "/api/queues",
        "/api/health/checks/alarms",
    ] {
        assert_eq!(
            m.get("rabbitmq_watch_endpoint_success", &[("endpoint", endpoint)]),
            Some(1.0),
            "{endpoint}"
        );
    }
    assert_eq!(
        m.get("rabbitmq_node_running", &[("node", node.name.as_str())]),
        Some(1.0)
    );
    assert!(m.get("rabbitmq_queues", &[]).unwrap() >= 4.0);
    assert!(m.get("rabbitmq_connections", &[]).unwrap() >= 3.0);
    assert!(
        m.get(
            "rabbitmq_process_resident_memory_bytes",
            &[("node", node.name.as_str())]
        )
        .unwrap()
            > 0.0
    );
    // Every family exported is documented in docs/metrics.md.
    let doc = include_str!("../docs/metrics.md");
    for sample in &m.samples {
        assert!(
            doc.contains(&format!("`{}`", sample.name)),
            "{} is not documented in docs/metrics.md",
            sample.name
        );
    }
    assert_eq!(sidecar.get("/-/ready").0, 200);
    let (status, page) = sidecar.get("/");
    assert_eq!(status, 200);
    assert!(page.contains(">broker up<"), "{page}");

    ch.queue_delete("live-depth".into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    eventually(WAIT, "deleted queue gone from /metrics", || {
        let m = sidecar.metrics();
        let gone = m
            .samples
            .iter()
            .filter(|s| s.name.starts_with("rabbitmq_queue_"))
            .all(|s| {
                !(s.labels.contains(&("vhost".into(), "/".into()))
                    && s.labels.contains(&("queue".into(), "live-depth".into())))
            });
        gone.then_some(())
    });
    // The same name in the other vhost is untouched.
    let m = sidecar.metrics();
    assert_eq!(
        m.get(
            "rabbitmq_queue_messages_ready",
            &[("vhost", "live-vh"), ("queue", "live-depth")]
        ),
        Some(3.0)
    );
    let logs = sidecar.terminate();
    assert!(
        logs.contains("stopped"),
        "no clean shutdown in logs:\n{logs}"
    );
}

#[test]
fn memory_alarm_is_reported_for_the_node_and_clears() {
    let node = RabbitNode::shared();
    let _lock = BROKER.blocking_lock();
    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let alarm = |m: &support::Exposition| {
        m.get(
            "rabbitmq_alarms_memory_used_watermark",
            &[("node", node.name.as_str())],
        )
    };
    eventually(WAIT, "memory alarm 0", || {
        (alarm(&sidecar.metrics()) == Some(0.0)).then_some(())
    });
    node.ctl(&["set_vm_memory_high_watermark", "0.0001"]);
    let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(WAIT, "memory alarm 1", || {
            (alarm(&sidecar.metrics()) == Some(1.0)).then_some(())
        });
    }));
    node.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    raised.expect("memory alarm was not reported");
    eventually(WAIT, "memory alarm cleared", || {
        (alarm(&sidecar.metrics()) == Some(0.0)).then_some(())
    });
}

#[test]
fn wrong_password_reports_401_and_never_leaks_the_password() {
    let node = RabbitNode::shared();
    let secret = "Wr0ng-Pa55word-xyzzy";
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[("RABBITMQ_WATCH__RABBITMQ__PASSWORD", secret)],
    );
    let m = eventually(WAIT, "status failures counted", || {
        let m = sidecar.metrics();
        let failures = m
            .get(
                "rabbitmq_watch_endpoint_failures_total",
                &[("endpoint", "/api/queues"), ("reason", "status")],
            )
            .unwrap_or(0.0);
        (failures >= 2.0).then_some(m)
    });
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/api/overview")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.get("rabbitmq_watch_last_successful_poll_timestamp_seconds", &[]),
        Some(0.0)
    );
    // Unknown, not zero: no broker series at all.
    assert!(m.find("rabbitmq_queue_messages", &[]).is_empty());
    assert!(m.find("rabbitmq_node_running", &[]).is_empty());
    let (status, body) = sidecar.get("/-/ready");
    assert_eq!(status, 503, "{body}");
    let (_, page) = sidecar.get("/");
    assert!(page.contains("HTTP 401"), "{page}");
    assert!(!page.contains(secret));
    assert!(!m.text.contains(secret));
    let logs = sidecar.terminate();
    assert!(logs.contains("poll failed"), "{logs}");
    assert!(logs.contains("HTTP 401"), "{logs}");
    assert!(!logs.contains(secret), "password in logs:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_sidecar_and_queries_a_queue_metric() {
    let node = RabbitNode::shared();
    let (_conn, ch) = {
        let _lock = BROKER.lock().await;
        let (conn, ch) = amqp(node, "/").await;
        declare(&ch, "live-prometheus").await;
        publish(&ch, "live-prometheus", 4).await;
        (conn, ch)
    };
    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let mut prometheus = Prometheus::start(sidecar.base.trim_start_matches("http://"));

    let value = eventually(
        Duration::from_secs(40),
        "Prometheus returns the queue's ready count",
        || {
            prometheus.assert_running();
            let result = prometheus
                .query(r#"rabbitmq_queue_messages_ready{vhost="/",queue="live-prometheus"}"#);
            result
                .first()
                .and_then(|r| r["value"][1].as_str().map(str::to_owned))
        },
    );
    assert_eq!(value, "4");
    // The whole exposition parsed: the target is healthy with no scrape error, and a counter
    // and an info series came through.
    let targets = prometheus.targets();
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    assert!(!prometheus.query("rabbitmq_watch_polls_total").is_empty());
    assert!(
        !prometheus
            .query(r#"rabbitmq_watch_build_info{version!=""}"#)
            .is_empty()
    );
    drop(ch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_counters_limits_and_head_age_follow_real_traffic() {
    let node = RabbitNode::shared();
    let _lock = BROKER.lock().await;
    let (_conn, ch) = amqp(node, "/").await;
    let queue = "live-counters";
    declare_with(
        &ch,
        queue,
        &[
            ("x-max-length", AMQPValue::LongInt(50)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("live-dlx".into()),
            ),
        ],
    )
    .await;
    let published_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 30;
    publish_with(
        &ch,
        queue,
        6,
        BasicProperties::default().with_timestamp(published_at),
    )
    .await;
    // basic.get in manual-ack mode: the first is nacked and requeued (one redelivery), then
    // four are acked.
    let get = |ch: Channel| async move {
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get")
            .expect("a message")
            .delivery
    };
    get(ch.clone())
        .await
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .expect("nack");
    for _ in 0..4 {
        get(ch.clone())
            .await
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }

    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    let labels = [("vhost", "/"), ("queue", queue)];
    let expected = [
        ("rabbitmq_queue_messages_ready", 2.0),
        ("rabbitmq_queue_messages_published_total", 6.0),
        ("rabbitmq_queue_get_ack_total", 5.0),
        ("rabbitmq_queue_messages_acked_total", 4.0),
        ("rabbitmq_queue_messages_redelivered_total", 1.0),
        ("rabbitmq_queue_messages_delivered_ack_total", 0.0),
        ("rabbitmq_queue_max_length", 50.0),
    ];
    // The head timestamp comes with the queue's own statistics event, which may reach the
    // management database a poll after the counters: wait for both.
    let m = eventually(WAIT, "exact counters and the head age on /metrics", || {
        let m = sidecar.metrics();
        (expected
            .iter()
            .all(|(name, want)| m.get(name, &labels) == Some(*want))
            && m.get("rabbitmq_queue_head_message_age_seconds", &labels)
                .is_some())
        .then_some(m)
    });
    let age = m
        .get("rabbitmq_queue_head_message_age_seconds", &labels)
        .expect("head message age");
    assert!((29.0..300.0).contains(&age), "age {age}");
    let info = m.find("rabbitmq_queue_info", &labels);
    assert_eq!(info.len(), 1);
    let label = |k: &str| {
        info[0]
            .labels
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(label("overflow"), "reject-publish");
    assert_eq!(label("dead_letter_exchange"), "live-dlx");
    assert_eq!(label("max_length"), "50");
    assert_eq!(label("type"), "classic");
    assert_eq!(label("durable"), "true");
    assert!(
        m.get("rabbitmq_channel_messages_published_total", &[])
            .unwrap()
            >= 6.0
    );
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_caps_select_queues_and_say_what_they_dropped() {
    let node = RabbitNode::shared();
    for vhost in ["filt-a", "filt-b"] {
        node.ctl(&["add_vhost", vhost]);
        node.ctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    }
    let (_a, ch_a) = amqp(node, "filt-a").await;
    for q in ["a1", "a2", "a3", "tmp-x"] {
        declare(&ch_a, q).await;
    }
    let (_b, ch_b) = amqp(node, "filt-b").await;
    declare(&ch_b, "b1").await;
    let (_c, ch_root) = amqp(node, "/").await;
    declare(&ch_root, "filt-elsewhere").await;

    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[
            ("RABBITMQ_WATCH__QUEUES__INCLUDE_VHOSTS", "filt-.*"),
            ("RABBITMQ_WATCH__QUEUES__EXCLUDE", "tmp-.*"),
            ("RABBITMQ_WATCH__QUEUES__MAX_PER_VHOST", "2"),
            ("RUST_LOG", "rabbitmq_watch=debug,info"),
        ],
    );
    let m = eventually(WAIT, "the filtered selection", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_watch_queues_exported", &[]) == Some(3.0)).then_some(m)
    });
    let exported: Vec<String> = m
        .find("rabbitmq_queue_info", &[])
        .iter()
        .map(|s| {
            let get = |k: &str| {
                s.labels
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            format!("{}/{}", get("vhost"), get("queue"))
        })
        .collect();
    assert_eq!(exported, ["filt-a/a1", "filt-a/a2", "filt-b/b1"]);
    assert_eq!(m.get("rabbitmq_watch_queues_listed", &[]), Some(5.0));
    assert_eq!(m.get("rabbitmq_watch_queues_excluded", &[]), Some(1.0));
    assert_eq!(
        m.get(
            "rabbitmq_watch_queues_dropped",
            &[("limit", "max_per_vhost")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get("rabbitmq_watch_queues_dropped", &[("limit", "max_total")]),
        Some(0.0)
    );
    let logs = sidecar.terminate();
    // Only the wanted vhosts' queues were downloaded.
    assert!(logs.contains("/api/vhosts"), "{logs}");
    assert!(logs.contains("/api/queues/filt-a"), "{logs}");
    assert!(logs.contains("/api/queues/filt-b"), "{logs}");
    assert!(
        !logs.contains("/api/queues query="),
        "all vhosts were listed:\n{logs}"
    );
    assert!(logs.contains("queue caps hit"), "{logs}");
}
