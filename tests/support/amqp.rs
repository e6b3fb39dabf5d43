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
    declare_with(ch, queue, &[]).await;
}

/// Declares a durable queue with `arguments` (`x-queue-type` among them makes it other than
/// classic). Panics if the broker refuses the declaration.
pub async fn declare_with(ch: &Channel, queue: &str, arguments: &[(&str, AMQPValue)]) {
    let mut table = FieldTable::default();
    for (k, v) in arguments {
        table.insert((*k).into(), v.clone());
    }
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table,
    )
    .await
    .unwrap_or_else(|e| panic!("queue.declare {queue}: {e}"));
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
    let mut all = vec![("x-queue-type", AMQPValue::LongString("quorum".into()))];
    all.extend(arguments.iter().cloned());
    declare_with(ch, queue, &all).await;
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

/// Declares a durable fanout exchange `exchange`. Panics if the broker refuses it.
pub async fn declare_fanout(ch: &Channel, exchange: &str) {
    ch.exchange_declare(
        exchange.into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange.declare {exchange}: {e}"));
}

/// Binds `queue` to `exchange` with the empty routing key. Panics if the broker refuses it.
pub async fn bind(ch: &Channel, queue: &str, exchange: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        "".into(),
        lapin::options::QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.bind {queue} to {exchange}: {e}"));
}

/// Starts a consumer `tag` on `queue` with `options` (manual acknowledgement unless
/// `options.no_ack`); the deliveries are the caller's to read (or not). The consumer is
/// cancelled when its channel closes.
pub async fn subscribe(
    ch: &Channel,
    queue: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> Consumer {
    ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("basic.consume {queue} as {tag}: {e}"))
}

/// Sets the channel's prefetch to `prefetch` (`basic.qos`), then starts a consumer `tag` on
/// `queue` with manual acknowledgement, as [`subscribe`].
pub async fn subscribe_with_prefetch(
    ch: &Channel,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> Consumer {
    ch.basic_qos(prefetch, lapin::options::BasicQosOptions::default())
        .await
        .expect("basic.qos");
    subscribe(ch, queue, tag, BasicConsumeOptions::default()).await
}

/// Acknowledges every delivery of `consumer` as it arrives, in a spawned task that ends when
/// the consumer or its channel does.
pub fn ack_all(mut consumer: Consumer) {
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            if d.ack(lapin::options::BasicAckOptions::default())
                .await
                .is_err()
            {
                break;
            }
        }
    });
}
