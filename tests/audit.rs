//! The reliability audit end to end on a real RabbitMQ node (shared by this binary), with
//! real AMQP clients (lapin) and the real `rabbitmq-watch` binary auditing every second:
//! each test works in a vhost of its own, makes the broker do something that loses messages
//! (a publisher without confirms, an auto-ack consumer, transient messages in a durable
//! queue, a dead-letter exchange that does not exist then has no binding, an
//! unlimited-prefetch consumer on a backed-up queue, a requeue loop), sees the finding in
//! `/api/v1/audit` and `/metrics`, fixes the cause and sees the finding go. A vhost set up
//! by the book (durable queue, persistent messages, confirms, manual acknowledgements,
//! prefetch 10, a dead-letter exchange that routes, max-length) has no finding.

mod support;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    QueuePurgeOptions,
};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Connection};
use serde_json::Value;
use support::{
    RabbitNode, Sidecar, ack_all, amqp, bind, declare_fanout, declare_with, eventually,
    publish_with, subscribe, subscribe_with_prefetch,
};

const WAIT: Duration = Duration::from_secs(60);

/// A sidecar on `node` auditing every second (a queue with 10 messages is backed up),
/// polling every second with 6 s backlog windows.
fn sidecar(node: &RabbitNode) -> Sidecar {
    let yaml = r"
audit:
  interval: 1s
  backlog_messages: 10
alerting:
  backlog:
    window: 6s
    min_completeness: 0.8
";
    Sidecar::start_with_config(
        &node.mgmt_url,
        yaml,
        &[("RABBITMQ_WATCH__POLL__INTERVAL", "1s")],
    )
}

/// Creates `vhost` with full permissions for guest, and returns a connection and a
/// confirm-mode channel in it.
async fn vhost(node: &RabbitNode, vhost: &str) -> (Connection, Channel) {
    node.ctl(&["add_vhost", vhost]);
    node.ctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    amqp(node, vhost).await
}

/// The audit's report (`data` of `/api/v1/audit`).
fn report(sidecar: &Sidecar) -> Value {
    let (status, body) = sidecar.get("/api/v1/audit");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "success", "{body}");
    v["data"].clone()
}

/// The findings in `vhost`.
fn findings(sidecar: &Sidecar, vhost: &str) -> Vec<Value> {
    report(sidecar)["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["vhost"] == vhost)
        .collect()
}

/// Waits for a finding of `check` in `vhost` (on `object` when given) and returns it; checks
/// that it has a summary and a fix, and a `rabbitmq_audit_finding` series.
fn appears(sidecar: &Sidecar, check: &str, vhost: &str, object: Option<&str>) -> Value {
    let f = eventually(WAIT, &format!("{check} in {vhost}"), || {
        findings(sidecar, vhost)
            .into_iter()
            .find(|f| f["check"] == check && object.is_none_or(|o| f["object"] == o))
    });
    assert!(f["summary"].as_str().is_some_and(|s| s.len() > 20), "{f}");
    assert!(f["fix"].as_str().is_some_and(|s| s.len() > 20), "{f}");
    let object = f["object"].as_str().unwrap_or_default().to_owned();
    eventually(WAIT, &format!("{check} series for {object}"), || {
        let m = sidecar.metrics();
        let series = m.get(
            "rabbitmq_audit_finding",
            &[("check", check), ("vhost", vhost), ("object", &object)],
        );
        (series == Some(1.0)).then_some(())
    });
    f
}

/// Waits until no finding of `check` is left in `vhost`.
fn disappears(sidecar: &Sidecar, check: &str, vhost: &str) {
    eventually(WAIT, &format!("{check} gone from {vhost}"), || {
        (!findings(sidecar, vhost).iter().any(|f| f["check"] == check)).then_some(())
    });
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_without_confirms_is_found_until_it_uses_confirms() {
    let node = RabbitNode::shared();
    let v = "audit-confirms";
    let (conn, ch) = vhost(node, v).await;
    declare_with(&ch, "events", &[]).await;
    let sidecar = sidecar(node);
    // A channel without confirm.select.
    let plain = conn.create_channel().await.expect("channel");
    for _ in 0..5 {
        plain
            .basic_publish(
                "".into(),
                "events".into(),
                BasicPublishOptions::default(),
                b"fire and forget",
                persistent(),
            )
            .await
            .expect("basic.publish");
    }
    let f = appears(&sidecar, "publish_without_confirms", v, None);
    assert_eq!(f["object_type"], "channel", "{f}");
    // The fix: publish on a channel in confirm mode, close the other.
    plain.close(200, "fixed".into()).await.expect("close");
    publish_with(&ch, "events", 5, persistent()).await;
    disappears(&sidecar, "publish_without_confirms", v);
    // Counted per check, 0 included.
    let m = sidecar.metrics();
    assert!(
        m.get(
            "rabbitmq_audit_findings",
            &[
                ("check", "publish_without_confirms"),
                ("severity", "warning")
            ]
        )
        .is_some()
    );
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/api/channels")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_ack_consumer_is_found_until_it_acknowledges() {
    let node = RabbitNode::shared();
    let v = "audit-autoack";
    let (_conn, ch) = vhost(node, v).await;
    declare_with(&ch, "work", &[]).await;
    let sidecar = sidecar(node);
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let _auto = subscribe(&ch, "work", "auto", no_ack).await;
    appears(&sidecar, "auto_ack_consumer", v, Some("work"));
    ch.basic_cancel("auto".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    let _manual = subscribe_with_prefetch(&ch, "work", "manual", 10).await;
    disappears(&sidecar, "auto_ack_consumer", v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_messages_in_a_durable_queue_are_found_until_purged_and_published_persistent() {
    let node = RabbitNode::shared();
    let v = "audit-transient";
    let (_conn, ch) = vhost(node, v).await;
    declare_with(&ch, "ledger", &[]).await;
    let sidecar = sidecar(node);
    publish_with(&ch, "ledger", 5, BasicProperties::default()).await;
    let f = appears(&sidecar, "transient_messages", v, Some("ledger"));
    assert!(
        f["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("5 of the 5 messages"),
        "{f}"
    );
    ch.queue_purge("ledger".into(), QueuePurgeOptions::default())
        .await
        .expect("queue.purge");
    publish_with(&ch, "ledger", 5, persistent()).await;
    disappears(&sidecar, "transient_messages", v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_exchange_that_does_not_exist_then_routes_nowhere_is_found_until_bound() {
    let node = RabbitNode::shared();
    let v = "audit-dlx";
    let (_conn, ch) = vhost(node, v).await;
    declare_with(
        &ch,
        "payments",
        &[(
            "x-dead-letter-exchange",
            AMQPValue::LongString("payments.dlx".into()),
        )],
    )
    .await;
    let sidecar = sidecar(node);
    let f = appears(
        &sidecar,
        "dead_letter_exchange_missing",
        v,
        Some("payments"),
    );
    assert!(
        f["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("'payments.dlx' does not exist"),
        "{f}"
    );
    // Declared but bound to nothing: dead letters still go nowhere.
    declare_fanout(&ch, "payments.dlx").await;
    appears(
        &sidecar,
        "dead_letter_exchange_unrouted",
        v,
        Some("payments"),
    );
    disappears(&sidecar, "dead_letter_exchange_missing", v);
    declare_with(&ch, "payments.dead", &[]).await;
    bind(&ch, "payments.dead", "payments.dlx").await;
    disappears(&sidecar, "dead_letter_exchange_unrouted", v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlimited_prefetch_consumer_on_a_backed_up_queue_is_found_until_it_sets_a_prefetch() {
    let node = RabbitNode::shared();
    let v = "audit-prefetch";
    let (conn, ch) = vhost(node, v).await;
    declare_with(&ch, "flood", &[]).await;
    publish_with(&ch, "flood", 50, persistent()).await;
    let sidecar = sidecar(node);
    // Manual acknowledgement, no basic.qos: the broker pushes all 50 and none is acked.
    let greedy = conn.create_channel().await.expect("channel");
    let _c = subscribe(&greedy, "flood", "greedy", BasicConsumeOptions::default()).await;
    let f = appears(&sidecar, "unlimited_prefetch", v, Some("flood"));
    assert!(
        f["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("holds 50 messages"),
        "{f}"
    );
    greedy.close(200, "fixed".into()).await.expect("close");
    let bounded = conn.create_channel().await.expect("channel");
    let _c = subscribe_with_prefetch(&bounded, "flood", "bounded", 10).await;
    disappears(&sidecar, "unlimited_prefetch", v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_loop_is_found_until_the_consumer_stops_requeueing() {
    let node = RabbitNode::shared();
    let v = "audit-poison";
    let (conn, ch) = vhost(node, v).await;
    declare_with(&ch, "poison", &[]).await;
    publish_with(&ch, "poison", 1, persistent()).await;
    let sidecar = sidecar(node);
    // basic.nack requeue=true in a loop: the same message comes back again and again.
    let looping = conn.create_channel().await.expect("channel");
    let mut deliveries = subscribe_with_prefetch(&looping, "poison", "loop", 1).await;
    let task = tokio::spawn(async move {
        while let Some(Ok(d)) = deliveries.next().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let nack = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            if d.nack(nack).await.is_err() {
                break;
            }
        }
    });
    let f = appears(&sidecar, "requeue_loop", v, Some("poison"));
    assert!(
        f["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("redelivery"),
        "{f}"
    );
    // The fix: the consumer acknowledges (here: the message finally succeeds).
    looping.close(200, "fixed".into()).await.expect("close");
    task.abort();
    ack_all(subscribe_with_prefetch(&ch, "poison", "acks", 10).await);
    disappears(&sidecar, "requeue_loop", v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_set_up_by_the_book_has_no_finding() {
    let node = RabbitNode::shared();
    let v = "audit-book";
    let (_conn, ch) = vhost(node, v).await;
    declare_fanout(&ch, "orders.dlx").await;
    declare_with(
        &ch,
        "orders.dead",
        &[("x-max-length", AMQPValue::LongInt(10_000))],
    )
    .await;
    bind(&ch, "orders.dead", "orders.dlx").await;
    declare_with(
        &ch,
        "orders",
        &[
            ("x-max-length", AMQPValue::LongInt(10_000)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("orders.dlx".into()),
            ),
        ],
    )
    .await;
    // A consumer with manual acknowledgements and prefetch 10.
    let (_cconn, cch) = amqp(node, v).await;
    ack_all(subscribe_with_prefetch(&cch, "orders", "worker", 10).await);
    let sidecar = sidecar(node);
    // A publisher with confirms and persistent messages, for longer than the backlog window
    // (so the trend checks have a verdict) and several audit runs.
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        publish_with(&ch, "orders", 5, persistent()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs_before = report(&sidecar)["runs"].as_u64().unwrap_or(0);
    eventually(WAIT, "two more audit runs", || {
        (report(&sidecar)["runs"].as_u64().unwrap_or(0) >= runs_before + 2).then_some(())
    });
    let r = report(&sidecar);
    let mine: Vec<&Value> = r["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["vhost"] == v).collect())
        .unwrap_or_default();
    assert!(
        mine.is_empty(),
        "findings on a broker set up by the book: {mine:?}"
    );
    // Every read answered, and the queue checks had the figures they need.
    for read in r["reads"].as_array().expect("reads") {
        assert_eq!(read["error"], Value::Null, "{read}");
    }
    let skipped: Vec<&Value> = r["skipped"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["reason"].as_str().is_some_and(|t| t.contains("not read")))
                .collect()
        })
        .unwrap_or_default();
    assert!(skipped.is_empty(), "{skipped:?}");
    // Documented: the audit's families are in docs/metrics.md.
    let doc = include_str!("../docs/metrics.md");
    for sample in &sidecar.metrics().samples {
        if sample.name.starts_with("rabbitmq_audit_") {
            assert!(
                doc.contains(&format!("`{}`", sample.name)),
                "{} is not documented in docs/metrics.md",
                sample.name
            );
        }
    }
}
