//! The backlog detector end to end on a real RabbitMQ node (shared by this binary): real AMQP
//! producers and consumers (lapin) drive a queue into each state, the real `rabbitmq-watch`
//! binary (polling every 500 ms, 6 s windows) classifies it, and the default rules notify a
//! real HTTP receiver. Each test watches only its own queues (`queues.include`).
//!
//! Scenarios: a producer faster than its consumer (GROWING, with the rates in the cause and a
//! sane time to overflow of an `x-max-length` queue); a consumer that stops acknowledging with
//! its prefetch full (STALLED); a consumer rejecting with requeue (REDELIVERING); no consumer
//! (NO_CONSUMERS); a steady flow that keeps up (OK for the whole test, nothing notified); and
//! messages expiring into a dead-letter queue (its own alert, and no "no consumers" noise).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lapin::Channel;
use lapin::types::AMQPValue;
use serde_json::Value;
use support::{
    HttpReceiver, Notify, RabbitNode, Sidecar, amqp, bind, consume, declare_fanout, declare_with,
    eventually, publish,
};

const WAIT: Duration = Duration::from_secs(60);

/// A sidecar on `node` exporting the queues matching `include`, polling every 500 ms with 6 s
/// backlog windows (the test node refreshes its statistics every second), the default rules (RabbitmqQueueNoConsumers after 2 s instead of 5 m) and
/// one webhook receiver.
fn sidecar(node: &RabbitNode, include: &str, receiver: &HttpReceiver) -> Sidecar {
    let yaml = format!(
        r#"
queues:
  include: "{include}"
alerting:
  backlog:
    window: 6s
    min_completeness: 0.8
  rules:
    - alert: RabbitmqQueueNoConsumers
      for: 2s
{notify}"#,
        notify = Notify::webhook(&receiver.url).group_by("alertname, vhost, queue")
    );
    Sidecar::start_with_config(
        &node.mgmt_url,
        &yaml,
        &[("RABBITMQ_WATCH__POLL__INTERVAL", "500ms")],
    )
}

/// Every alert delivered with status `firing`, across all payloads.
fn firing(receiver: &HttpReceiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| serde_json::from_str::<Value>(&r.body).expect("JSON payload"))
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == "firing")
        .collect()
}

/// The first firing notification of `alertname` for `queue`.
fn wait_for(receiver: &HttpReceiver, alertname: &str, queue: &str) -> Value {
    eventually(WAIT, &format!("{alertname} for {queue}"), || {
        firing(receiver)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == alertname && a["labels"]["queue"] == queue)
    })
}

/// Alert names notified as firing for `queue`.
fn notified(receiver: &HttpReceiver, queue: &str) -> Vec<String> {
    firing(receiver)
        .iter()
        .filter(|a| a["labels"]["queue"] == queue)
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The `status` label of `rabbitmq_queue_backlog_status` for `queue`, if its window is complete.
fn status(sidecar: &Sidecar, queue: &str) -> Option<String> {
    let m = sidecar.metrics();
    let found = m.find("rabbitmq_queue_backlog_status", &[("queue", queue)]);
    assert!(found.len() <= 1, "one status per queue: {found:?}");
    found.first().map(|s| {
        s.labels
            .iter()
            .find(|(k, _)| k == "status")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    })
}

/// Publishes to `queue` at about `per_second` messages per second until `stop`.
fn producer(ch: Channel, queue: &'static str, per_second: u64, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let period = Duration::from_micros(1_000_000 / per_second);
        let mut next = tokio::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            publish(&ch, queue, 1).await;
            next += period;
            tokio::time::sleep_until(next).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_faster_than_its_consumer_is_growing_with_a_sane_time_to_overflow() {
    let node = RabbitNode::shared();
    let queue = "backlog-growing";
    let limit = 5000;
    let (_conn, ch) = amqp(node, "/").await;
    declare_with(&ch, queue, &[("x-max-length", AMQPValue::LongInt(limit))]).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = sidecar(node, queue, &receiver);
    let stop = Arc::new(AtomicBool::new(false));
    let (_pconn, pch) = amqp(node, "/").await;
    producer(pch, queue, 60, stop.clone());
    let (_cconn, cch) = amqp(node, "/").await;
    consume(&cch, queue, 1, Duration::from_millis(100), Some(true)).await;

    let growing = wait_for(&receiver, "RabbitmqQueueGrowing", queue);
    let summary = growing["annotations"]["summary"].as_str().unwrap();
    let rates: Vec<f64> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        summary.contains("is falling behind: ingress ") && rates.len() == 2,
        "{summary}"
    );
    let (ingress, egress) = (rates[0], rates[1]);
    assert!(
        (30.0..=80.0).contains(&ingress) && egress > 0.0 && egress < 15.0,
        "published at ~60/s, consumed at <= 10/s: {summary}"
    );
    let soon = wait_for(&receiver, "RabbitmqQueueOverflowSoon", queue);
    assert_eq!(soon["labels"]["severity"], "critical");
    let description = soon["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("drop-head: the oldest messages will be dropped"),
        "{description}"
    );

    // The prediction agrees with what the queue does: (limit - ready) / net growth rate.
    let m1 = sidecar.metrics();
    let t1 = Instant::now();
    let ready1 = m1
        .get("rabbitmq_queue_messages_ready", &[("queue", queue)])
        .unwrap();
    let predicted = m1
        .get(
            "rabbitmq_queue_time_to_overflow_seconds",
            &[("queue", queue), ("overflow", "drop-head")],
        )
        .expect("a time to overflow");
    std::thread::sleep(Duration::from_secs(4));
    let ready2 = sidecar
        .metrics()
        .get("rabbitmq_queue_messages_ready", &[("queue", queue)])
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let net = (ready2 - ready1) / t1.elapsed().as_secs_f64();
    assert!(net > 10.0, "the queue grows: {ready1} -> {ready2}");
    let expected = (f64::from(limit) - ready1) / net;
    assert!(
        predicted > expected / 2.0 && predicted < expected * 2.0,
        "predicted {predicted} s, observed rate gives {expected} s"
    );
    assert_eq!(status(&sidecar, queue).as_deref(), Some("growing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_acking_with_its_prefetch_full_is_stalled() {
    let node = RabbitNode::shared();
    let queue = "backlog-stalled";
    let (_conn, ch) = amqp(node, "/").await;
    declare_with(&ch, queue, &[]).await;
    publish(&ch, queue, 30).await;
    let (_cconn, cch) = amqp(node, "/").await;
    consume(&cch, queue, 5, Duration::ZERO, None).await;
    // The prefetch fills before the sidecar starts: no delivery happens in its window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = sidecar(node, queue, &receiver);

    let stalled = wait_for(&receiver, "RabbitmqQueueStalled", queue);
    let summary = stalled["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("consumers stalled (prefetch full, no acks for "),
        "{summary}"
    );
    assert_eq!(status(&sidecar, queue).as_deref(), Some("stalled"));
    let names = notified(&receiver, queue);
    assert!(
        !names.iter().any(|n| n == "RabbitmqQueueNoConsumers"),
        "a consumer is attached: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_rejecting_with_requeue_is_redelivering_not_stalled() {
    let node = RabbitNode::shared();
    let queue = "backlog-redelivering";
    let (_conn, ch) = amqp(node, "/").await;
    declare_with(&ch, queue, &[]).await;
    publish(&ch, queue, 5).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = sidecar(node, queue, &receiver);
    let (_cconn, cch) = amqp(node, "/").await;
    consume(&cch, queue, 1, Duration::from_millis(50), Some(false)).await;

    let alert = wait_for(&receiver, "RabbitmqQueueRedelivering", queue);
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    let percent: f64 = summary
        .split("redelivery ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no redelivery percentage in {summary:?}"));
    assert!(
        percent >= 80.0,
        "almost every delivery is a redelivery: {summary}"
    );
    // Details are served by the alert API too.
    let (code, body) = sidecar.get("/api/v1/alerts");
    assert_eq!(code, 200);
    let api: Value = serde_json::from_str(&body).unwrap();
    let listed = api["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "RabbitmqQueueRedelivering")
        .cloned()
        .expect("listed by /api/v1/alerts");
    assert_eq!(listed["details"]["status"], "REDELIVERING");
    assert!(
        listed["details"]["cause"]
            .as_str()
            .unwrap()
            .starts_with("redelivery "),
        "{listed}"
    );
    let names = notified(&receiver, queue);
    assert!(
        !names.iter().any(|n| n == "RabbitmqQueueStalled"),
        "rejecting consumers are not reported as stalled: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_without_a_consumer_are_no_consumers() {
    let node = RabbitNode::shared();
    let queue = "backlog-unconsumed";
    let (_conn, ch) = amqp(node, "/").await;
    declare_with(&ch, queue, &[]).await;
    publish(&ch, queue, 10).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = sidecar(node, queue, &receiver);

    let alert = wait_for(&receiver, "RabbitmqQueueNoConsumers", queue);
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("has 10 messages and no consumer"),
        "{alert}"
    );
    let status = eventually(WAIT, "a complete window", || status(&sidecar, queue));
    assert_eq!(status, "no_consumers");
    let (_, body) = sidecar.get("/api/v1/alerts");
    let api: Value = serde_json::from_str(&body).unwrap();
    let cause = eventually(WAIT, "the cause in the alert's details", || {
        api["data"]["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|a| a["labels"]["alertname"] == "RabbitmqQueueNoConsumers")
                .and_then(|a| a["details"]["cause"].as_str().map(str::to_owned))
        })
    });
    assert_eq!(cause, "no consumers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_flow_that_keeps_up_stays_ok_and_raises_nothing() {
    let node = RabbitNode::shared();
    let queue = "backlog-steady";
    let (_conn, ch) = amqp(node, "/").await;
    declare_with(&ch, queue, &[]).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = sidecar(node, queue, &receiver);
    let (_cconn, cch) = amqp(node, "/").await;
    consume(&cch, queue, 10, Duration::ZERO, Some(true)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (_pconn, pch) = amqp(node, "/").await;
    producer(pch, queue, 30, stop.clone());

    // Judged for 20 s after its first complete window: OK every time.
    let first = eventually(WAIT, "a complete window", || status(&sidecar, queue));
    assert_eq!(first, "ok");
    let until = Instant::now() + Duration::from_secs(20);
    let mut judged = 1;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        let s = status(&sidecar, queue).expect("the window stays complete");
        assert_eq!(s, "ok", "after {judged} OK judgements");
        judged += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let published = sidecar
        .metrics()
        .get(
            "rabbitmq_queue_messages_published_total",
            &[("queue", queue)],
        )
        .unwrap_or(0.0);
    assert!(published > 300.0, "messages flowed: {published}");
    assert_eq!(notified(&receiver, queue), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_messages_accumulating_in_a_dlq_raise_its_alert() {
    let node = RabbitNode::shared();
    let (work, dlq, dlx) = ("backlog-dl-work", "backlog-dl-dead", "backlog-dl-exchange");
    let (_conn, ch) = amqp(node, "/").await;
    declare_fanout(&ch, dlx).await;
    declare_with(&ch, dlq, &[]).await;
    bind(&ch, dlq, dlx).await;
    declare_with(
        &ch,
        work,
        &[
            ("x-dead-letter-exchange", AMQPValue::LongString(dlx.into())),
            ("x-message-ttl", AMQPValue::LongInt(100)),
        ],
    )
    .await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = sidecar(node, "backlog-dl-.*", &receiver);
    // Messages expire in `work` and are dead-lettered into `dlq`.
    let stop = Arc::new(AtomicBool::new(false));
    let (_pconn, pch) = amqp(node, "/").await;
    producer(pch, work, 10, stop.clone());

    let alert = wait_for(&receiver, "RabbitmqDeadLetterQueueGrowing", dlq);
    stop.store(true, Ordering::Relaxed);
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("Dead-letter queue {dlq} in vhost / received ")),
        "{summary}"
    );
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_queue_dead_letter_queue_info", &[("queue", dlq)]),
        Some(1.0)
    );
    assert_eq!(
        m.get("rabbitmq_queue_dead_letter_queue_info", &[("queue", work)]),
        None,
        "the source queue is not a dead-letter queue"
    );
    // The dead-letter queue has no consumer by design: no "no consumers" or "growing" noise.
    std::thread::sleep(Duration::from_secs(3));
    let mut names = notified(&receiver, dlq);
    names.dedup();
    assert_eq!(names, ["RabbitmqDeadLetterQueueGrowing"]);
}
