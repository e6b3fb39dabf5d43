//! Demo traffic for `scripts/run.sh --demo`: real AMQP publishers and consumers against a
//! RabbitMQ node, one queue per case the status page shows (see `examples/demo/traffic.rs`:
//! healthy, growing, stalled consumer, no consumers, a dead-letter queue filling).
//!
//! `cargo run --example demo_traffic -- AMQP_URL [--prefix demo] [--watch-pid PID]`
//!
//! Runs until interrupted, until the connection closes, or (with `--watch-pid`) until process
//! PID exits: `scripts/run.sh --demo` passes its own PID, which the sidecar keeps (`exec`), so
//! the traffic stops with the sidecar.

#[path = "demo/traffic.rs"]
mod traffic;

use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: demo_traffic AMQP_URL [--prefix NAME] [--watch-pid PID]");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else { usage() };
    let mut prefix = "demo".to_owned();
    let mut watch: Option<u32> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prefix" => prefix = args.next().unwrap_or_else(|| usage()),
            "--watch-pid" => {
                watch = Some(
                    args.next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| usage()),
                );
            }
            _ => usage(),
        }
    }
    let traffic = match traffic::start(&url, &prefix).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("demo_traffic: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "demo_traffic: publishing and consuming on {} (queues {prefix}.{{{}}})",
        url.split('@').next_back().unwrap_or(""),
        traffic::CASES.join(",")
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let watched_gone = watch.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
                if watched_gone || !traffic.is_connected() {
                    break;
                }
            }
        }
    }
    eprintln!("demo_traffic: stopping");
    traffic.stop().await;
}
