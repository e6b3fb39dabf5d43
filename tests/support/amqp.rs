//! AMQP helpers (lapin), shared by the tests that publish and consume real messages.

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

use super::RabbitNode;

/// An AMQP connection to `vhost` of `node` and a channel in confirm mode.
pub async fn amqp(node: &RabbitNode, vhost: &str) -> (Connection, Channel) {
    let url = node
        .amqp_url
        .replace("/%2f", &format!("/{}", vhost.replace('/', "%2f")));
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("AMQP connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Declares a durable classic queue.
pub async fn declare(ch: &Channel, queue: &str) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
}

/// Publishes `n` messages to `queue` through the default exchange, each confirmed.
pub async fn publish(ch: &Channel, queue: &str, n: usize) {
    publish_with(ch, queue, n, BasicProperties::default()).await;
}

/// Publishes `n` messages with `properties`, each confirmed.
pub async fn publish_with(ch: &Channel, queue: &str, n: usize, properties: BasicProperties) {
    for i in 0..n {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("message {i}").as_bytes(),
                properties.clone(),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm");
        assert!(confirm.is_ack(), "broker nacked message {i} to {queue}");
    }
}

/// Starts a consumer `tag` on `queue` (manual acknowledgement), publishes `n` messages to it
/// and receives them without acknowledging: `n` unacknowledged messages held by one
/// consumer, for as long as the returned consumer lives.
pub async fn consume_and_hold(ch: &Channel, queue: &str, tag: &str, n: usize) -> Consumer {
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    publish(ch, queue, n).await;
    for _ in 0..n {
        consumer
            .next()
            .await
            .expect("a delivery")
            .expect("delivery ok");
    }
    consumer
}

/// Declares a durable quorum queue with `arguments` (besides `x-queue-type`).
pub async fn declare_quorum(ch: &Channel, queue: &str, arguments: &[(&str, AMQPValue)]) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    for (k, v) in arguments {
        args.insert((*k).into(), v.clone());
    }
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("queue.declare (quorum)");
}

/// Consumes `queue` with `prefetch`, handling each delivery with `handle` after `delay`:
/// `true` acknowledges, `false` rejects with requeue; `None` leaves it unacknowledged. Runs
/// for as long as the channel is open.
#[allow(dead_code)]
pub async fn consume(
    ch: &Channel,
    queue: &str,
    prefetch: u16,
    delay: std::time::Duration,
    handle: Option<bool>,
) {
    use lapin::options::{BasicAckOptions, BasicQosOptions, BasicRejectOptions};
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut deliveries = ch
        .basic_consume(
            queue.into(),
            format!("{queue}-consumer").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    tokio::spawn(async move {
        while let Some(Ok(d)) = deliveries.next().await {
            tokio::time::sleep(delay).await;
            let result = match handle {
                Some(true) => d.ack(BasicAckOptions::default()).await,
                Some(false) => d.reject(BasicRejectOptions { requeue: true }).await,
                None => continue,
            };
            if result.is_err() {
                break;
            }
        }
    });
}

/// A consumer that always fails on its messages: consumes `queue` with prefetch 1 and
/// rejects every delivery with requeue after `delay`, for as long as the channel is open.
#[allow(dead_code)]
pub async fn requeue_forever(ch: &Channel, queue: &str, delay: std::time::Duration) {
    consume(ch, queue, 1, delay, Some(false)).await;
}
