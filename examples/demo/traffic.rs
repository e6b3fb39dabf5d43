//! The demo's AMQP traffic (lapin), shared by `examples/demo_traffic.rs` (started by
//! `scripts/run.sh --demo`) and `tests/status_page.rs`: one queue per case the status page and
//! the alerts should show, named `PREFIX.CASE`:
//!
//! - `healthy`: 5 msg/s in, a consumer that acknowledges at once: OK;
//! - `growing`: 10 msg/s in, a consumer that acknowledges about 4 msg/s (`x-max-length` 5000,
//!   so a time to overflow is predicted): GROWING;
//! - `stalled`: 2 msg/s in, a consumer (prefetch 20) that receives and never acknowledges:
//!   STALLED (prefetch full);
//! - `no-consumers`: 2 msg/s in, nobody consumes: NO CONSUMERS;
//! - `work` and `dead-letter`: 3 msg/s into `work`, whose consumer rejects every message
//!   without requeue, so the broker dead-letters them (exchange `PREFIX.dlx`) into
//!   `dead-letter`, which fills (a dead-letter queue growing).
//!
//! Everything runs on tokio tasks until [`Traffic::stop`] or the connection closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_lite::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// The cases, as queue name suffixes.
pub const CASES: [&str; 6] = [
    "healthy",
    "growing",
    "stalled",
    "no-consumers",
    "work",
    "dead-letter",
];

/// What a consumer does with each delivery.
#[derive(Debug, Clone, Copy)]
enum Handling {
    /// Acknowledge after the delay.
    Ack(Duration),
    /// Keep it unacknowledged.
    Hold,
    /// Reject without requeue (dead-letters it).
    Reject,
}

/// A case's consumer, if it has one: its prefetch and what it does with each delivery.
type Consume = Option<(u16, Handling)>;

/// Running demo traffic: its connection and stop flag.
pub struct Traffic {
    /// The AMQP connection every channel is on.
    connection: Connection,
    /// Set to stop the publishers and consumers.
    stop: Arc<AtomicBool>,
}

impl Traffic {
    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Stops publishing and consuming and closes the connection.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.connection.close(200, "demo stopped".into()).await;
    }
}

/// Declares `queue` (durable, classic) with `arguments`, deleting an older one first so a
/// re-run starts from empty.
async fn declare(ch: &Channel, queue: &str, arguments: &[(&str, AMQPValue)]) -> lapin::Result<()> {
    let mut table = FieldTable::default();
    for (k, v) in arguments {
        table.insert((*k).into(), v.clone());
    }
    ch.queue_delete(queue.into(), Default::default()).await?;
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table,
    )
    .await?;
    Ok(())
}

/// Publishes to `queue` at `per_second` until `stop`.
fn producer(ch: Channel, queue: String, per_second: u64, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let period = Duration::from_micros(1_000_000 / per_second.max(1));
        let mut next = tokio::time::Instant::now();
        let mut i: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let body = format!("demo message {i}");
            let sent = ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await;
            if sent.is_err() {
                break;
            }
            i += 1;
            next += period;
            tokio::time::sleep_until(next).await;
        }
    });
}

/// Consumes `queue` with `prefetch`, handling each delivery as `handling` says.
async fn consumer(
    ch: Channel,
    queue: &str,
    prefetch: u16,
    handling: Handling,
    stop: Arc<AtomicBool>,
) -> lapin::Result<()> {
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut deliveries = ch
        .basic_consume(
            queue.into(),
            format!("{queue}-demo-consumer").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        // The channel lives as long as its consumer.
        let _ch = ch;
        let mut held = Vec::new();
        while let Some(Ok(d)) = deliveries.next().await {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let result = match handling {
                Handling::Ack(delay) => {
                    tokio::time::sleep(delay).await;
                    d.ack(BasicAckOptions::default()).await
                }
                Handling::Hold => {
                    held.push(d);
                    Ok(true)
                }
                Handling::Reject => d.reject(BasicRejectOptions { requeue: false }).await,
            };
            if result.is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Connects to `amqp_url` and starts every case under `prefix`.
///
/// # Errors
/// The AMQP error when connecting, declaring or consuming fails.
pub async fn start(amqp_url: &str, prefix: &str) -> lapin::Result<Traffic> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let setup = connection.create_channel().await?;
    let name = |case: &str| format!("{prefix}.{case}");
    let dlx = format!("{prefix}.dlx");

    declare(&setup, &name("healthy"), &[]).await?;
    declare(
        &setup,
        &name("growing"),
        &[("x-max-length", AMQPValue::LongInt(5000))],
    )
    .await?;
    declare(&setup, &name("stalled"), &[]).await?;
    declare(&setup, &name("no-consumers"), &[]).await?;
    setup
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    declare(&setup, &name("dead-letter"), &[]).await?;
    setup
        .queue_bind(
            name("dead-letter").as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    declare(
        &setup,
        &name("work"),
        &[(
            "x-dead-letter-exchange",
            AMQPValue::LongString(dlx.as_str().into()),
        )],
    )
    .await?;

    // (case, messages published per second, consumer: (prefetch, handling)).
    let plan: [(&str, u64, Consume); 5] = [
        ("healthy", 5, Some((10, Handling::Ack(Duration::ZERO)))),
        (
            "growing",
            10,
            Some((1, Handling::Ack(Duration::from_millis(250)))),
        ),
        ("stalled", 2, Some((20, Handling::Hold))),
        ("no-consumers", 2, None),
        ("work", 3, Some((10, Handling::Reject))),
    ];
    for (case, rate, consume) in plan {
        let queue = name(case);
        if let Some((prefetch, handling)) = consume {
            consumer(
                connection.create_channel().await?,
                &queue,
                prefetch,
                handling,
                stop.clone(),
            )
            .await?;
        }
        producer(
            connection.create_channel().await?,
            queue,
            rate,
            stop.clone(),
        );
    }
    Ok(Traffic { connection, stop })
}
