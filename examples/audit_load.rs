//! Load generator for the audit's cost measurement (`bench/audit_cost.sh`, docs/audit.md#cost):
//! `--connections N` AMQP connections to the default vhost, each with one channel that
//! declares a durable queue `audit-load-{i}`, publishes `--messages K` transient messages
//! without publisher confirms, and consumes it with manual acknowledgement, no prefetch limit,
//! never acking: so every connection, channel and consumer is one the audit reads (and
//! flags). Prints `READY connections=…` and holds everything open until killed.
//!
//! ```sh
//! cargo run --example audit_load -- --amqp-url amqp://guest:guest@127.0.0.1:5672 --connections 100
//! ```

use std::process::ExitCode;

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

#[tokio::main]
async fn main() -> ExitCode {
    let mut url = "amqp://guest:guest@127.0.0.1:5672".to_owned();
    let mut connections = 100usize;
    let mut messages = 10usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--amqp-url", Some(v)) => url.clone_from(v),
            ("--connections", Some(v)) => connections = v.parse().unwrap_or(connections),
            ("--messages", Some(v)) => messages = v.parse().unwrap_or(messages),
            _ => {
                eprintln!("usage: audit_load [--amqp-url URL] [--connections N] [--messages K]");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut held = Vec::new();
    for i in 0..connections {
        let conn = match Connection::connect(&url, ConnectionProperties::default()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("connect: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ch = match conn.create_channel().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("channel: {e}");
                return ExitCode::FAILURE;
            }
        };
        let queue = format!("audit-load-{i}");
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        if let Err(e) = ch
            .queue_declare(queue.as_str().into(), durable, FieldTable::default())
            .await
        {
            eprintln!("queue.declare: {e}");
            return ExitCode::FAILURE;
        }
        for _ in 0..messages {
            let sent = ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    b"audit load",
                    BasicProperties::default(),
                )
                .await;
            if let Err(e) = sent {
                eprintln!("basic.publish: {e}");
                return ExitCode::FAILURE;
            }
        }
        let consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "audit-load".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        match consumer {
            Ok(c) => held.push((conn, ch, c)),
            Err(e) => {
                eprintln!("basic.consume: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("READY connections={connections} messages={messages}");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
