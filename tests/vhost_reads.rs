//! Issue #13: the queue listing read one vhost at a time (`rabbitmq.queue_read: per_vhost`, the
//! default), on a real RabbitMQ node shared by this binary: queues in several vhosts are all
//! exported with their vhost; a vhost added between polls is read from the next poll on;
//! `whole` reads one `/api/queues`; and one vhost's read failing (a fault proxy resets it)
//! fails the whole listing (`rabbitmq_up` 0, no queue series) without resolving the alert
//! of a queue in that vhost. `rabbitmq.max_response_bytes` bounds the vhosts' bodies together
//! (a fake API, for exact sizes).

mod support;

use std::time::Duration;

use support::{
    Exposition, FakeApi, Fault, FaultProxy, HttpReceiver, Notify, RabbitNode, Sidecar, amqp,
    declare, eventually, json_response, publish, repo_file,
};

const WAIT: Duration = Duration::from_secs(40);

/// Creates `vhost` with every permission for guest.
fn add_vhost(node: &RabbitNode, vhost: &str) {
    node.ctl(&["add_vhost", vhost]);
    node.ctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
}

fn ready(m: &Exposition, vhost: &str, queue: &str) -> Option<f64> {
    m.get(
        "rabbitmq_queue_messages_ready",
        &[("vhost", vhost), ("queue", queue)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_in_every_vhost_are_read_per_vhost_and_a_new_vhost_is_picked_up() {
    let node = RabbitNode::shared();
    let mut connections = Vec::new();
    // The same queue name in two vhosts, and a different depth in each vhost.
    for (i, vhost) in ["vr-a", "vr-b", "vr-c"].into_iter().enumerate() {
        add_vhost(node, vhost);
        let (conn, ch) = amqp(node, vhost).await;
        declare(&ch, "vr-same").await;
        publish(&ch, "vr-same", i + 1).await;
        connections.push(conn);
    }
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[
            ("RABBITMQ_WATCH__QUEUES__INCLUDE", "vr-.*"),
            ("RUST_LOG", "rabbitmq_watch=debug,info"),
        ],
    );
    let m = eventually(WAIT, "the queues of the three vhosts", || {
        let m = sidecar.metrics();
        (ready(&m, "vr-a", "vr-same") == Some(1.0)
            && ready(&m, "vr-b", "vr-same") == Some(2.0)
            && ready(&m, "vr-c", "vr-same") == Some(3.0))
        .then_some(m)
    });
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/api/queues")]
        ),
        Some(1.0)
    );

    // A vhost created after the sidecar started is read from the next poll on.
    add_vhost(node, "vr-late");
    let (_late, ch) = amqp(node, "vr-late").await;
    declare(&ch, "vr-late-q").await;
    publish(&ch, "vr-late-q", 4).await;
    eventually(WAIT, "the new vhost's queue", || {
        (ready(&sidecar.metrics(), "vr-late", "vr-late-q") == Some(4.0)).then_some(())
    });

    let logs = sidecar.terminate();
    assert!(logs.contains("/api/vhosts"), "{logs}");
    for path in [
        "/api/queues/%2F",
        "/api/queues/vr-a",
        "/api/queues/vr-b",
        "/api/queues/vr-c",
        "/api/queues/vr-late",
    ] {
        assert!(logs.contains(path), "{path} not read:\n{logs}");
    }
    assert!(
        !logs.contains("/api/queues query="),
        "every vhost in one read:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_read_whole_lists_every_vhost_in_one_read() {
    let node = RabbitNode::shared();
    add_vhost(node, "vr-whole");
    let (_conn, ch) = amqp(node, "vr-whole").await;
    declare(&ch, "vr-whole-q").await;
    publish(&ch, "vr-whole-q", 2).await;
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[
            ("RABBITMQ_WATCH__RABBITMQ__QUEUE_READ", "whole"),
            ("RABBITMQ_WATCH__QUEUES__INCLUDE", "vr-.*"),
            ("RUST_LOG", "rabbitmq_watch=debug,info"),
        ],
    );
    eventually(WAIT, "the queue, read whole", || {
        (ready(&sidecar.metrics(), "vr-whole", "vr-whole-q") == Some(2.0)).then_some(())
    });
    let logs = sidecar.terminate();
    assert!(logs.contains("/api/queues query="), "{logs}");
    assert!(!logs.contains("/api/queues/vr-whole"), "{logs}");
    assert!(!logs.contains("/api/vhosts"), "{logs}");
}

/// The `alerting:` and `notify:` sections: one rule on `vr-backlog` (ready > 5, fires at
/// once) and a webhook receiver at `url` that is also sent resolutions.
fn config(url: &str) -> String {
    format!(
        r#"
alerting:
  default_rules: false
  rules:
    - alert: VhostBacklog
      kind: queue
      select: {{queue: "vr-backlog"}}
      expr: messages_ready > 5
      severity: warning
{notify}"#,
        notify = Notify::webhook(url)
    )
}

/// The state of `alertname` in `GET /api/v1/alerts` (`None`: not listed).
fn alert_state(sidecar: &Sidecar, alertname: &str) -> Option<String> {
    let (_, body) = sidecar.get("/api/v1/alerts");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    api["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname)
        .and_then(|a| a["state"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vhosts_failed_read_fails_the_listing_and_resolves_nothing() {
    let node = RabbitNode::shared();
    for vhost in ["vr-ok", "vr-cut"] {
        add_vhost(node, vhost);
    }
    let (_ok, ch_ok) = amqp(node, "vr-ok").await;
    declare(&ch_ok, "vr-fine").await;
    let (_cut, ch_cut) = amqp(node, "vr-cut").await;
    declare(&ch_cut, "vr-backlog").await;
    publish(&ch_cut, "vr-backlog", 8).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let proxy = FaultProxy::start(&node.mgmt_url);
    let sidecar = Sidecar::start_with_config(
        &proxy.url,
        &config(&receiver.url),
        &[("RABBITMQ_WATCH__QUEUES__INCLUDE", "vr-.*")],
    );
    eventually(WAIT, "the backlog alert firing", || {
        (alert_state(&sidecar, "VhostBacklog").as_deref() == Some("firing")).then_some(())
    });
    let m = sidecar.metrics();
    assert_eq!(ready(&m, "vr-ok", "vr-fine"), Some(0.0));

    // Every read of vr-cut's queues is reset; the other vhosts' reads are answered.
    proxy.add_rule("/api/queues/vr-cut", Fault::Reset);
    let failures = |m: &Exposition| {
        m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", "/api/queues"), ("reason", "request")],
        )
        .unwrap_or(0.0)
    };
    let m = eventually(WAIT, "three failed queue listings", || {
        let m = sidecar.metrics();
        (failures(&m) >= 3.0).then_some(m)
    });
    assert!(proxy.count("reset") >= 3);
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/api/queues")]
        ),
        Some(0.0)
    );
    // No partial listing: the vhost that answered is not exported either.
    assert_eq!(ready(&m, "vr-ok", "vr-fine"), None);
    assert_eq!(ready(&m, "vr-cut", "vr-backlog"), None);
    // Unknown is not resolved.
    assert_eq!(
        alert_state(&sidecar, "VhostBacklog").as_deref(),
        Some("firing")
    );

    // The reads answer again: up, still firing, and no resolution was ever sent.
    proxy.clear_rules();
    eventually(WAIT, "up again", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_up", &[]) == Some(1.0) && ready(&m, "vr-cut", "vr-backlog") == Some(8.0))
            .then_some(())
    });
    assert_eq!(
        alert_state(&sidecar, "VhostBacklog").as_deref(),
        Some("firing")
    );
    let sent: Vec<serde_json::Value> = receiver
        .received()
        .iter()
        .filter_map(|r| serde_json::from_str(&r.body).ok())
        .collect();
    assert!(
        sent.iter().any(|p| p["status"] == "firing"),
        "the firing notification was sent: {sent:?}"
    );
    assert!(
        !sent.iter().any(|p| p["status"] == "resolved"),
        "a resolution was sent while vr-cut's queues were unknown: {sent:?}"
    );
}

/// A listing of `n` queues in `vhost`, ~70 bytes each.
fn listing(vhost: &str, n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!("{{\"vhost\":\"{vhost}\",\"name\":\"q{i:06}\",\"messages_ready\":{i},\"consumers\":0}}")
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Two vhosts of 1,000 queues, each listing ~70 KB; the 3.10 fixtures for the rest.
fn two_vhosts(target: &str) -> Vec<u8> {
    let fixture = |name: &str| repo_file(&format!("tests/fixtures/3.10/{name}"));
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/api/vhosts" => json_response("200 OK", r#"[{"name":"a"},{"name":"b"}]"#),
        "/api/queues/a" => json_response("200 OK", &listing("a", 1_000)),
        "/api/queues/b" => json_response("200 OK", &listing("b", 1_000)),
        "/api/overview" => json_response("200 OK", &fixture("overview-columns.json")),
        "/api/nodes" => json_response("200 OK", &fixture("nodes-columns.json")),
        "/api/health/checks/alarms" => json_response("200 OK", &fixture("alarms-ok.json")),
        _ => json_response("404 Not Found", "{}"),
    }
}

/// `rabbitmq.max_response_bytes` bounds the per-vhost bodies together, as it bounded the one
/// listing: 100,000 bytes admit either vhost's ~70 KB but not both. (A fake API: the sizes
/// must be exact, which the shared node's other queues would spoil.)
#[test]
fn max_response_bytes_bounds_the_vhosts_listings_together() {
    let api = FakeApi::start(two_vhosts);
    let one = listing("a", 1_000).len();
    assert!(one < 100_000 && 2 * one > 100_000, "{one}");
    let sidecar = Sidecar::start(
        &api.url,
        &[("RABBITMQ_WATCH__RABBITMQ__MAX_RESPONSE_BYTES", "100000")],
    );
    let m = eventually(WAIT, "the oversized listing counted", || {
        let m = sidecar.metrics();
        (m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", "/api/queues"), ("reason", "request")],
        )
        .unwrap_or(0.0)
            >= 1.0)
            .then_some(m)
    });
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    assert!(m.find("rabbitmq_queue_messages_ready", &[]).is_empty());
    let (_, page) = sidecar.get("/");
    assert!(
        page.contains("larger than rabbitmq.max_response_bytes (100000 bytes)"),
        "{page}"
    );
    drop(sidecar);
    // Under the default bound both vhosts are read.
    let sidecar = Sidecar::start(&api.url, &[]);
    let m = eventually(WAIT, "both vhosts read", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_up", &[]) == Some(1.0)).then_some(m)
    });
    assert_eq!(m.get("rabbitmq_watch_queues_exported", &[]), Some(2_000.0));
    assert_eq!(ready(&m, "b", "q000999"), Some(999.0));
}
