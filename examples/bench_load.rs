//! Load generator for `bench/run.sh`: puts a RabbitMQ node into the state the benchmark
//! measures, then holds it there until killed.
//!
//! - `--queues N` durable classic queues, spread round-robin over `--vhosts M` vhosts named
//!   `bench-vh-00` … (the vhosts must exist and `guest` must have permissions on them;
//!   `bench/run.sh` creates them through the management API);
//! - `--messages K` real messages published into each queue through the default exchange, with
//!   publisher confirms (pipelined: declares and publishes are in flight on several channels at
//!   once, confirms are awaited in bulk at the end, not one by one);
//! - one consumer with prefetch `--prefetch P` that never acks on every `--consumer-every`-th
//!   queue, so those queues hold `P` unacknowledged and `K - P` ready messages.
//!
//! Prints `READY queues=… messages=… consumers=… vhosts=… seconds=…` on stdout when all is set
//! up, then keeps its connections (and so its consumers) open until it is killed.
//!
//! ```sh
//! cargo run --release --example bench_load -- --amqp-url amqp://guest:guest@127.0.0.1:5672 \
//!     --queues 10000 --vhosts 10 --messages 5 --consumer-every 10 --prefetch 2
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, PublisherConfirm,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What `--help` prints.
const USAGE: &str = "usage: bench_load [--amqp-url URL] [--queues N] [--vhosts M] [--messages K] \
[--consumer-every E] [--prefetch P] [--channels C] [--in-flight F]
defaults: --amqp-url amqp://guest:guest@127.0.0.1:5672 --queues 1000 --vhosts 10 --messages 5 \
--consumer-every 10 --prefetch 2 --channels 4 --in-flight 64 (queues in flight per channel)";

/// Settings from the command line.
#[derive(Debug, Clone)]
struct Args {
    /// AMQP URL without the vhost path, e.g. `amqp://guest:guest@127.0.0.1:5672`.
    amqp_url: String,
    /// Number of queues in total.
    queues: usize,
    /// Number of vhosts the queues are spread over.
    vhosts: usize,
    /// Messages published into each queue.
    messages: usize,
    /// Every n-th queue gets a consumer that never acks (0: none).
    consumer_every: usize,
    /// Prefetch of those consumers.
    prefetch: u16,
    /// Publishing channels per vhost.
    channels: usize,
    /// Queues being declared/published at once per channel.
    in_flight: usize,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Args {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672".to_owned(),
            queues: 1000,
            vhosts: 10,
            messages: 5,
            consumer_every: 10,
            prefetch: 2,
            channels: 4,
            in_flight: 64,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |v: String| -> Result<usize, String> {
                v.parse::<usize>()
                    .map_err(|e| format!("{flag}: {v:?} is not a number: {e}"))
            };
            match flag.as_str() {
                "--amqp-url" => args.amqp_url = value()?.trim_end_matches('/').to_owned(),
                "--queues" => args.queues = number(value()?)?,
                "--vhosts" => args.vhosts = number(value()?)?.max(1),
                "--messages" => args.messages = number(value()?)?,
                "--consumer-every" => args.consumer_every = number(value()?)?,
                "--prefetch" => {
                    args.prefetch = u16::try_from(number(value()?)?)
                        .map_err(|_| "--prefetch must be at most 65535".to_owned())?;
                }
                "--channels" => args.channels = number(value()?)?.max(1),
                "--in-flight" => args.in_flight = number(value()?)?.max(1),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(args)
    }
}

/// Name of vhost number `v`.
fn vhost_name(v: usize) -> String {
    format!("bench-vh-{v:02}")
}

/// Name of queue number `i`.
fn queue_name(i: usize) -> String {
    format!("bench-q-{i:06}")
}

/// What one vhost's set-up leaves running: its connection and its consumers.
struct Held {
    _connection: Connection,
    _consumers: Vec<Consumer>,
    messages: usize,
}

async fn open_channel(conn: &Connection, confirms: bool) -> Result<Channel, String> {
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel.open: {e}"))?;
    if confirms {
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm.select: {e}"))?;
    }
    Ok(ch)
}

/// Declares `queue` and publishes `messages` into it; returns the confirms to await.
async fn declare_and_publish(
    ch: Channel,
    queue: String,
    messages: usize,
) -> Result<Vec<PublisherConfirm>, String> {
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(|e| format!("queue.declare {queue}: {e}"))?;
    let mut confirms = Vec::with_capacity(messages);
    for m in 0..messages {
        let payload = format!("bench message {m} of {queue}");
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .map_err(|e| format!("basic.publish {queue}: {e}"))?;
        confirms.push(confirm);
    }
    Ok(confirms)
}

/// Sets up vhost `v`: its share of the queues, their messages, and their consumers.
async fn setup_vhost(args: Arc<Args>, v: usize) -> Result<Held, String> {
    let vhost = vhost_name(v);
    let url = format!("{}/{}", args.amqp_url, vhost);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("connect to vhost {vhost}: {e}"))?;

    let mine: Vec<usize> = (0..args.queues).filter(|i| i % args.vhosts == v).collect();
    let mut channels = Vec::with_capacity(args.channels);
    for _ in 0..args.channels {
        channels.push(open_channel(&conn, true).await?);
    }

    // Declares and publishes, `in_flight` queues at a time per channel.
    let limit = Arc::new(Semaphore::new(args.in_flight * args.channels));
    let mut tasks = JoinSet::new();
    for (k, &i) in mine.iter().enumerate() {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let ch = channels[k % channels.len()].clone();
        let messages = args.messages;
        tasks.spawn(async move {
            let r = declare_and_publish(ch, queue_name(i), messages).await;
            drop(permit);
            r
        });
    }
    let mut confirms = Vec::with_capacity(mine.len() * args.messages);
    while let Some(r) = tasks.join_next().await {
        confirms.extend(r.map_err(|e| e.to_string())??);
    }
    let messages = confirms.len();
    for confirm in confirms {
        let c = confirm
            .await
            .map_err(|e| format!("publisher confirm in {vhost}: {e}"))?;
        if !c.is_ack() {
            return Err(format!("the broker nacked a message in {vhost}"));
        }
    }

    // Consumers that never ack, on one channel whose per-consumer prefetch is `prefetch`.
    let mut consumers = Vec::new();
    if args.consumer_every > 0 {
        let ch = open_channel(&conn, false).await?;
        ch.basic_qos(args.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| format!("basic.qos: {e}"))?;
        let mut tasks = JoinSet::new();
        for &i in mine.iter().filter(|i| *i % args.consumer_every == 0) {
            let ch = ch.clone();
            tasks.spawn(async move {
                let queue = queue_name(i);
                ch.basic_consume(
                    queue.as_str().into(),
                    format!("bench-consumer-{i}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("basic.consume {queue}: {e}"))
            });
        }
        while let Some(r) = tasks.join_next().await {
            consumers.push(r.map_err(|e| e.to_string())??);
        }
    }
    Ok(Held {
        _connection: conn,
        _consumers: consumers,
        messages,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match Args::parse() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("bench_load: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for v in 0..args.vhosts {
        tasks.spawn(setup_vhost(args.clone(), v));
    }
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(h)) => held.push(h),
            Ok(Err(e)) => {
                eprintln!("bench_load: {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("bench_load: set-up task failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let messages: usize = held.iter().map(|h| h.messages).sum();
    let consumers: usize = held.iter().map(|h| h._consumers.len()).sum();
    println!(
        "READY queues={} messages={} consumers={} vhosts={} seconds={:.1}",
        args.queues,
        messages,
        consumers,
        args.vhosts,
        start.elapsed().as_secs_f64()
    );
    // Hold the connections and consumers until killed (SIGTERM/SIGINT end the process).
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
