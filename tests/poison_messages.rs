//! Poison messages of quorum queues on a real RabbitMQ 3.10.8 node (#16): a consumer that
//! nacks every delivery with requeue, real AMQP traffic (lapin), the real `rabbitmq-watch`
//! binary. 3.10 reports no `delivery_limit` column; its quorum queues have a limit only when
//! an `x-delivery-limit` argument (or `delivery-limit` policy) sets one, and the sidecar reads
//! it from there. The 4.0.5 case (a `delivery_limit` of 20 by default) is in
//! tests/rabbitmq4.rs.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::types::AMQPValue;
use support::{RabbitNode, Sidecar, amqp, declare_quorum, eventually, publish, requeue_forever};

const WAIT: Duration = Duration::from_secs(60);

/// The alert `name` firing for queue `queue`, from the sidecar's `/api/v1/alerts`.
fn firing(sidecar: &Sidecar, name: &str, queue: &str) -> Option<serde_json::Value> {
    let (_, body) = sidecar.get("/api/v1/alerts");
    let api: serde_json::Value = serde_json::from_str(&body).ok()?;
    api["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == name
                && a["labels"]["queue"] == queue
                && a["state"] == "firing"
        })
        .cloned()
}

/// `limited` has `x-delivery-limit` 5 and a dead-letter exchange with a routing key;
/// `unlimited` has no limit (3.x's default). Both get a message every 200 ms and a consumer
/// that requeues everything. RabbitmqPoisonMessage fires for `limited`, naming the limit and
/// the target; for `unlimited` only RabbitmqQueueRedelivering does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_3_10_the_x_delivery_limit_argument_makes_a_requeue_loop_a_poison_message_alert() {
    let node = RabbitNode::start("poison");
    let (limited, unlimited) = ("poison-limited", "poison-unlimited");
    let (_conn, ch) = amqp(&node, "/").await;
    declare_quorum(
        &ch,
        limited,
        &[
            ("x-delivery-limit", AMQPValue::LongLongInt(5)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("poison.dlx".into()),
            ),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString("failed".into()),
            ),
        ],
    )
    .await;
    declare_quorum(&ch, unlimited, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (_pconn, pch) = amqp(&node, "/").await;
    let producing = stop.clone();
    tokio::spawn(async move {
        while !producing.load(Ordering::Relaxed) {
            publish(&pch, limited, 1).await;
            publish(&pch, unlimited, 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (_c1, ch1) = amqp(&node, "/").await;
    requeue_forever(&ch1, limited, Duration::from_millis(10)).await;
    let (_c2, ch2) = amqp(&node, "/").await;
    requeue_forever(&ch2, unlimited, Duration::from_millis(10)).await;
    let yaml = "queues:\n  include: \"poison-.*\"\nalerting:\n  backlog:\n    window: 6s\n    min_completeness: 0.8\n";
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        yaml,
        &[("RABBITMQ_WATCH__POLL__INTERVAL", "500ms")],
    );
    let alert = eventually(WAIT, "RabbitmqPoisonMessage for the limited queue", || {
        firing(&sidecar, "RabbitmqPoisonMessage", limited)
    });
    assert_eq!(
        alert["annotations"]["summary"],
        format!(
            "Queue {limited} in vhost / keeps redelivering the same messages: each is dead-lettered to exchange \"poison.dlx\" with routing key \"failed\" after 5 deliveries"
        )
    );
    eventually(
        WAIT,
        "RabbitmqQueueRedelivering for the unlimited queue",
        || firing(&sidecar, "RabbitmqQueueRedelivering", unlimited),
    );
    // Still redelivering, judged as such, but without a limit: no poison message alert.
    assert!(firing(&sidecar, "RabbitmqPoisonMessage", unlimited).is_none());
    stop.store(true, Ordering::Relaxed);
    let m = sidecar.metrics();
    let labels = |q| [("vhost", "/"), ("queue", q)];
    assert_eq!(
        m.get("rabbitmq_queue_delivery_limit", &labels(limited)),
        Some(5.0)
    );
    assert_eq!(
        m.get("rabbitmq_queue_delivery_limit", &labels(unlimited)),
        None
    );
    sidecar.terminate();
}
