//! AMQP helpers (lapin), shared by the tests that publish and consume real messages.

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
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
