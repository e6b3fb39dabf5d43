//! The fault soak of issue #14, run by `bench/soak.sh` (not by `cargo test`): the real
//! `rabbitmq-watch` binary polls a real RabbitMQ node through a fault-injecting proxy
//! (`tests/support/fault_proxy.rs`: added latency, connection resets, truncated bodies, black
//! holes, in storms alternating with calm spells) and notifies a webhook receiver that flaps
//! (refusing connections, then answering 500, then 200, in turn). Meanwhile, during the first
//! 60 % of the run, a new queue with a ready message appears every `--new-queue-every` seconds
//! (one more alert fires), and every 4th queue is purged 30 s after its alert fired (the alert
//! resolves); in the last 40 % the sidecar's state stops growing, so its RSS should level off.
//!
//! At the end the faults stop and the receiver stays up; the run checks that every alert that
//! fired was delivered as firing, every purged queue's alert as resolved, the sidecar never
//! panicked and is still running, and prints the figures (faults per kind, scrapes seeing
//! `rabbitmq_up` 1 or 0, notifications, RSS over time) as JSON on stdout.
//!
//! ```sh
//! cargo run --release --example soak -- --sidecar target/release/rabbitmq-watch \
//!     --mgmt-url http://127.0.0.1:15672 --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f \
//!     --seconds 600 --out /tmp/soak
//! ```

#[allow(dead_code)]
#[path = "../tests/support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_proxy::{FaultProxy, RandomFaults};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: soak --sidecar PATH --mgmt-url URL --amqp-url URL [--seconds N] \
[--out DIR] [--new-queue-every S] [--settle-seconds S]";

/// Receiver modes.
const DOWN: u8 = 0;
const FAIL_500: u8 = 1;
const UP: u8 = 2;

/// The flapping webhook receiver: what it was sent and answered.
#[derive(Default)]
struct ReceiverLog {
    /// Requests by mode answered (`refused` is counted by the sidecar, not seen here).
    answered_500: u64,
    answered_200: u64,
    /// `queue -> count` of firing / resolved alerts in delivered (200) notifications.
    firing: BTreeMap<String, u64>,
    resolved: BTreeMap<String, u64>,
}

/// Serves the webhook on `port` while the mode is not [`DOWN`] (the listener is closed while
/// down: connections are refused).
async fn receiver(port: u16, mode: Arc<AtomicU8>, log: Arc<Mutex<ReceiverLog>>) {
    loop {
        while mode.load(Ordering::Relaxed) == DOWN {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if mode.load(Ordering::Relaxed) == DOWN { break; }
                    continue;
                }
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let (mode, log) = (mode.clone(), log.clone());
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while data.len() < head_end + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let status = if mode.load(Ordering::Relaxed) == UP {
                    200
                } else {
                    500
                };
                if status == 200 {
                    let body: serde_json::Value =
                        serde_json::from_slice(&data[head_end..]).unwrap_or_default();
                    let mut log = log.lock().unwrap();
                    log.answered_200 += 1;
                    for alert in body["alerts"].as_array().into_iter().flatten() {
                        let queue = alert["labels"]["queue"].as_str().unwrap_or("").to_owned();
                        let map = if alert["status"] == "resolved" {
                            &mut log.resolved
                        } else {
                            &mut log.firing
                        };
                        *map.entry(queue).or_default() += 1;
                    }
                } else {
                    log.lock().unwrap().answered_500 += 1;
                }
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    }
}

/// A plain HTTP/1.0 GET against the sidecar (not through the proxy): the body, or `None`.
fn get(base: &str, path: &str) -> Option<String> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// The value of an unlabelled sample `name` in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Queues whose `SoakBacklog` alert is firing according to `GET /api/v1/alerts`.
fn firing_queues(base: &str) -> Option<BTreeSet<String>> {
    let body = get(base, "/api/v1/alerts")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == "SoakBacklog" && a["state"] == "firing")
            .filter_map(|a| a["labels"]["queue"].as_str().map(str::to_owned))
            .collect(),
    )
}

struct Args {
    sidecar: String,
    mgmt_url: String,
    amqp_url: String,
    seconds: u64,
    out: std::path::PathBuf,
    new_queue_every: u64,
    settle_seconds: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        sidecar: String::new(),
        mgmt_url: String::new(),
        amqp_url: String::new(),
        seconds: 600,
        out: std::env::temp_dir().join("rabbitmq-watch-soak"),
        new_queue_every: 15,
        settle_seconds: 240,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--sidecar" => a.sidecar = value.clone(),
            "--mgmt-url" => a.mgmt_url = value.clone(),
            "--amqp-url" => a.amqp_url = value.clone(),
            "--seconds" => a.seconds = number()?,
            "--out" => a.out = value.clone().into(),
            "--new-queue-every" => a.new_queue_every = number()?.max(1),
            "--settle-seconds" => a.settle_seconds = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.sidecar.is_empty() || a.mgmt_url.is_empty() || a.amqp_url.is_empty() {
        return Err("--sidecar, --mgmt-url and --amqp-url are required".into());
    }
    Ok(a)
}

/// The broker faults of a storm (per million requests).
const STORM: RandomFaults = RandomFaults {
    latency_ppm: 200_000,
    latency_max: Duration::from_millis(1500),
    reset_ppm: 50_000,
    truncate_ppm: 50_000,
    black_hole_ppm: 20_000,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    std::fs::create_dir_all(&a.out).expect("--out directory");
    let proxy = FaultProxy::start(&a.mgmt_url);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mode = Arc::new(AtomicU8::new(UP));
    let log = Arc::new(Mutex::new(ReceiverLog::default()));
    tokio::spawn(receiver(port, mode.clone(), log.clone()));

    let config = format!(
        r#"poll:
  interval: 1s
  deadline: 8s
rabbitmq:
  timeout: 2s
queues:
  include: "soak-.*"
alerting:
  default_rules: false
  backlog:
    window: 1m
  rules:
    - alert: SoakBacklog
      kind: queue
      expr: messages_ready > 0
      severity: warning
notify:
  route:
    receiver: flappy
    group_by: [alertname, queue]
    group_wait: 1s
    group_interval: 5s
    repeat_interval: 24h
  receivers:
    - name: flappy
      webhook_configs:
        - url: http://127.0.0.1:{port}/hook
"#
    );
    let config_path = a.out.join("config.yaml");
    std::fs::write(&config_path, config).expect("write config");
    let stderr = std::fs::File::create(a.out.join("sidecar.log")).expect("sidecar.log");
    let listen_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(&a.sidecar)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("RABBITMQ_WATCH_CONFIG", &config_path)
        .env("RABBITMQ_WATCH__RABBITMQ__URL", &proxy.url)
        .env("RABBITMQ_WATCH__LISTEN", format!("127.0.0.1:{listen_port}"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start the sidecar");
    let pid = child.id();
    let base = format!("http://127.0.0.1:{listen_port}");

    let conn = Connection::connect(&a.amqp_url, ConnectionProperties::default())
        .await
        .expect("AMQP connect");
    let ch = conn.create_channel().await.expect("channel");

    let start = Instant::now();
    let total = Duration::from_secs(a.seconds);
    let mut queues: Vec<String> = Vec::new();
    let mut purged: BTreeSet<String> = BTreeSet::new();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    // When each queue's alert was first seen firing (seconds into the run).
    let mut fired_at: BTreeMap<String, u64> = BTreeMap::new();
    let (mut up_scrapes, mut down_scrapes, mut failed_scrapes) = (0u64, 0u64, 0u64);
    // (second, RSS KiB, queues created, backlog samples held).
    let mut rss: Vec<(u64, u64, usize, f64)> = Vec::new();
    let mut mode_seconds = [0u64; 3];
    let mut storm_seconds = 0u64;
    let flips = AtomicU64::new(0);
    let mut next_queue = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while start.elapsed() < total {
        tick.tick().await;
        let t = start.elapsed().as_secs();
        // Broker faults: 60 s storms, 20 s calm between them.
        let storm = t % 80 < 60;
        proxy.set_random(
            if storm {
                STORM
            } else {
                RandomFaults::default()
            },
            t + 1,
        );
        storm_seconds += u64::from(storm);
        // Receiver: up 45 s, refusing 45 s, 500 for 45 s, in turn.
        let m = match (t / 45) % 3 {
            0 => UP,
            1 => DOWN,
            _ => FAIL_500,
        };
        if mode.swap(m, Ordering::Relaxed) != m {
            flips.fetch_add(1, Ordering::Relaxed);
        }
        mode_seconds[m as usize] += 1;
        // One more queue with a ready message: one more alert; none in the last 40 % of the
        // run, so that the sidecar's state stops growing and its RSS can be seen to level off.
        if start.elapsed() >= next_queue && t * 10 < a.seconds * 6 {
            next_queue += Duration::from_secs(a.new_queue_every);
            let name = format!("soak-{:04}", queues.len());
            ch.queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue.declare");
            ch.basic_publish(
                "".into(),
                name.as_str().into(),
                BasicPublishOptions::default(),
                b"soak",
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish");
            queues.push(name);
        }
        // Every 4th queue, 30 s after its alert fired, is purged: its alert resolves.
        if let Some(firing) = tokio::task::block_in_place(|| firing_queues(&base)) {
            for q in firing {
                fired_at.entry(q.clone()).or_insert(t);
                fired.insert(q);
            }
        }
        for (i, q) in queues.iter().enumerate() {
            let due = fired_at.get(q).is_some_and(|at| t >= at + 30);
            if i % 4 == 3 && due && !purged.contains(q) {
                ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
                    .await
                    .expect("queue.purge");
                purged.insert(q.clone());
            }
        }
        match tokio::task::block_in_place(|| get(&base, "/metrics"))
            .and_then(|m| sample(&m, "rabbitmq_up"))
        {
            Some(1.0) => up_scrapes += 1,
            Some(_) => down_scrapes += 1,
            None => failed_scrapes += 1,
        }
        if t.is_multiple_of(30)
            && let Some(kib) = rss_kib(pid)
        {
            let samples = tokio::task::block_in_place(|| get(&base, "/metrics"))
                .and_then(|m| sample(&m, "rabbitmq_watch_backlog_samples"))
                .unwrap_or(-1.0);
            rss.push((t, kib, queues.len(), samples));
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("soak: the sidecar exited during the soak: {status}");
            break;
        }
    }
    let faults = proxy.counts.snapshot();
    // Settle: no faults, receiver up; wait for every fired alert (and every resolution).
    proxy.set_random(RandomFaults::default(), 1);
    mode.store(UP, Ordering::Relaxed);
    let settle_start = Instant::now();
    let mut all_delivered_after = None;
    while settle_start.elapsed() < Duration::from_secs(a.settle_seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(firing) = tokio::task::block_in_place(|| firing_queues(&base)) {
            fired.extend(firing);
        }
        let log = log.lock().unwrap();
        let firing_ok = fired
            .iter()
            .all(|q| log.firing.contains_key(q) || purged.contains(q));
        let resolved_ok = purged.iter().all(|q| log.resolved.contains_key(q));
        if firing_ok && resolved_ok {
            all_delivered_after = Some(settle_start.elapsed().as_secs());
            break;
        }
    }
    if let Some(kib) = rss_kib(pid) {
        rss.push((start.elapsed().as_secs(), kib, queues.len(), -1.0));
    }
    let metrics = tokio::task::block_in_place(|| get(&base, "/metrics")).unwrap_or_default();
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.wait().ok().and_then(|s| s.code());
    let logs = std::fs::read_to_string(a.out.join("sidecar.log")).unwrap_or_default();
    let panics = logs.matches("panicked").count();

    let log = log.lock().unwrap();
    // A purged queue's alert may be announced as resolved only, when it resolved before its
    // firing notification got through (as Alertmanager does): delivered either way.
    let undelivered: Vec<&String> = fired
        .iter()
        .filter(|q| !log.firing.contains_key(*q) && !log.resolved.contains_key(*q))
        .collect();
    let resolved_only = purged
        .iter()
        .filter(|q| !log.firing.contains_key(*q))
        .count();
    let unresolved: Vec<&String> = purged
        .iter()
        .filter(|q| !log.resolved.contains_key(*q))
        .collect();
    let never_fired: Vec<&String> = queues.iter().filter(|q| !fired.contains(*q)).collect();
    let duplicates: u64 = log.firing.values().map(|n| n.saturating_sub(1)).sum();
    let report = serde_json::json!({
        "seconds": a.seconds,
        "settle_seconds_used": all_delivered_after,
        "storm_seconds": storm_seconds,
        "faults": faults.iter().map(|(k, n)| (k.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "scrapes": {"up": up_scrapes, "down": down_scrapes, "failed": failed_scrapes},
        "polls_total": sample(&metrics, "rabbitmq_watch_polls_total"),
        "receiver": {
            "seconds_up": mode_seconds[UP as usize],
            "seconds_refusing": mode_seconds[DOWN as usize],
            "seconds_500": mode_seconds[FAIL_500 as usize],
            "mode_changes": flips.load(Ordering::Relaxed),
            "answered_500": log.answered_500,
            "answered_200": log.answered_200,
        },
        "alerts": {
            "queues_created": queues.len(),
            "fired": fired.len(),
            "fired_delivered": fired.len() - undelivered.len(),
            "undelivered": undelivered,
            "never_fired": never_fired,
            "resolved_expected": purged.len(),
            "resolved_delivered": purged.len() - unresolved.len(),
            "unresolved": unresolved,
            "purged_announced_only_as_resolved": resolved_only,
            "duplicate_firing_deliveries": duplicates,
        },
        "attempts_failed_total": metrics
            .lines()
            .filter(|l| l.starts_with("rabbitmq_watch_notification_attempts_failed_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>(),
        "rss_kib": rss,
        "panics": panics,
        "alive_at_end": alive,
        "exit_code": exit,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let ok = panics == 0
        && alive
        && exit == Some(0)
        && undelivered.is_empty()
        && unresolved.is_empty()
        && !fired.is_empty();
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("soak: FAILED (see the report)");
        ExitCode::FAILURE
    }
}
