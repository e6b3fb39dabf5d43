//! Delivery that survives a flapping receiver (issue #14), end to end on a real RabbitMQ node
//! and the real binary: a flush whose attempts fail (nothing listening, then a connection cut
//! before any answer, then HTTP 500) is retried and delivered once the receiver answers, and
//! the group's notification log (`last_notified`, `notified_firing` in the state file) is
//! written only after that success, as Alertmanager's notification log is.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::{
    Exposition, HttpReceiver, Notify, RabbitNode, Sidecar, amqp, declare, eventually, free_port,
    publish, temp_dir,
};

const WAIT: Duration = Duration::from_secs(90);

/// A listener on `port` that reads each request's head and closes the connection without
/// answering (a receiver crashing mid-request), until `stop`; counts the connections cut.
fn cutting_receiver(port: u16, stop: Arc<AtomicBool>, cut: Arc<AtomicU64>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the cutting receiver");
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    }
                    drop(stream);
                    cut.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // The listener is dropped here: the port is free again.
    });
}

fn attempts_failed(m: &Exposition, reason: &str) -> f64 {
    m.get(
        "rabbitmq_watch_notification_attempts_failed_total",
        &[
            ("receiver", "team"),
            ("integration", "webhook"),
            ("reason", reason),
        ],
    )
    .unwrap_or(0.0)
}

fn saved(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the state file")).unwrap()
}

/// The only group of the state file.
fn group(state: &serde_json::Value) -> serde_json::Value {
    let groups = state["groups"].as_object().expect("groups");
    assert_eq!(groups.len(), 1, "{state}");
    groups.values().next().unwrap().clone()
}

/// A configuration with one queue rule `messages_ready > 5` on `queue`, notifying a webhook
/// at `http://127.0.0.1:{port}` (nothing need listen there yet), the state kept in `state`.
fn config(queue: &str, state: &std::path::Path, port: u16) -> String {
    let notify = Notify::webhook(&format!("http://127.0.0.1:{port}"))
        .setting(&format!("state_file: {}", state.display()));
    format!(
        r#"
alerting:
  default_rules: false
  rules:
    - alert: FlapBacklog
      kind: queue
      select: {{queue: "{queue}"}}
      expr: messages_ready > 5
      severity: critical
{notify}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_is_retried_until_delivered_and_logged_only_then() {
    let node = RabbitNode::shared();
    let queue = "delivery-flap";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    publish(&ch, queue, 7).await;
    let port = free_port();
    let state = temp_dir("delivery").join("state.json");
    let yaml = config(queue, &state, port);
    let sidecar = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);

    // 1. Nothing listens: the attempt fails (connect) and is retried; nothing is logged.
    eventually(WAIT, "a refused attempt", || {
        (attempts_failed(&sidecar.metrics(), "connect") >= 1.0).then_some(())
    });
    let s = eventually(WAIT, "the flush saved as undelivered", || {
        let s = saved(&state);
        (s["pending"].as_array().is_some_and(|p| p.len() == 1)).then_some(s)
    });
    let g = group(&s);
    assert!(g["last_notified"].is_null(), "logged before delivery: {g}");
    assert_eq!(g["notified_firing"], serde_json::json!([]), "{g}");
    assert!(g["in_flight"].is_object(), "{g}");

    // 2. The receiver accepts and cuts the connection before answering: retried again.
    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicU64::new(0));
    cutting_receiver(port, stop.clone(), cut.clone());
    eventually(WAIT, "a cut attempt", || {
        (cut.load(Ordering::Relaxed) >= 1).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let m = eventually(WAIT, "the cut attempt counted", || {
        let m = sidecar.metrics();
        let failed: f64 = ["other", "timeout", "connect"]
            .iter()
            .map(|r| attempts_failed(&m, r))
            .sum();
        (failed >= 2.0).then_some(m)
    });
    assert_eq!(
        m.get(
            "rabbitmq_watch_notifications_total",
            &[("receiver", "team"), ("integration", "webhook")]
        ),
        Some(0.0)
    );
    let g = group(&saved(&state));
    assert!(g["last_notified"].is_null(), "logged before delivery: {g}");
    std::thread::sleep(Duration::from_millis(300)); // the cutting listener lets the port go

    // 3. The receiver is back, answering 500 once, then 200: delivered once, then logged.
    let receiver = HttpReceiver::start(Some(port), vec![500]);
    let delivered = eventually(WAIT, "delivered", || {
        receiver.received().into_iter().find(|r| r.status == 200)
    });
    let body: serde_json::Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["queue"], queue);
    let fingerprint = body["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200]);
    let s = eventually(WAIT, "the log written after the success", || {
        let s = saved(&state);
        (!group(&s)["last_notified"].is_null()).then_some(s)
    });
    let g = group(&s);
    assert_eq!(
        g["notified_firing"],
        serde_json::json!([fingerprint]),
        "{g}"
    );
    assert!(g.get("in_flight").is_none(), "{g}");
    assert_eq!(s["pending"], serde_json::json!([]), "{s}");
    // Nothing more: the log holds, no repeat within repeat_interval.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(receiver.received().len(), 2, "{:?}", receiver.received());
    let m = sidecar.metrics();
    assert_eq!(
        m.get(
            "rabbitmq_watch_notifications_total",
            &[("receiver", "team"), ("integration", "webhook")]
        ),
        Some(1.0)
    );
    assert_eq!(attempts_failed(&m, "http_5xx"), 1.0);
    for reason in ["connect", "timeout", "http_4xx", "http_5xx", "other"] {
        assert_eq!(
            m.get(
                "rabbitmq_watch_notifications_failed_total",
                &[
                    ("receiver", "team"),
                    ("integration", "webhook"),
                    ("reason", reason)
                ]
            ),
            Some(0.0),
            "never given up ({reason})"
        );
    }
    let logs = sidecar.terminate();
    assert!(logs.contains("notification failed, retrying"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}
