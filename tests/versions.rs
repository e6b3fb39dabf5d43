//! The field sets of other RabbitMQ versions, served by a fake API from constructed fixtures
//! (see the README in each fixture directory): 3.13, whose `/api/queues` is reduced and whose
//! statistics are under `/api/queues/detailed`, and 4.1 with statistics disabled, whose missing
//! fields must give absent series and a `rabbitmq_watch_missing_fields` count, never zeros.
//! The live 3.10 node is covered by tests/live.rs.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{FakeApi, Sidecar, eventually, json_response};

fn serve(version: &str, target: &str) -> Vec<u8> {
    let path = target.split('?').next().unwrap_or("");
    let file = match path {
        "/api/overview" => "overview.json",
        "/api/nodes" => "nodes.json",
        // One read (`rabbitmq.queue_read: whole`) or one per vhost (the default); every
        // fixture queue is in `/`.
        "/api/vhosts" => return json_response("200 OK", r#"[{"name":"/"}]"#),
        "/api/queues" | "/api/queues/%2F" => "queues.json",
        "/api/queues/detailed" => "queues-detailed.json",
        "/api/health/checks/alarms" => return json_response("200 OK", r#"{"status":"ok"}"#),
        _ => return json_response("404 Not Found", r#"{"error":"Object Not Found"}"#),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version);
    match std::fs::read_to_string(dir.join(file)) {
        Ok(body) => json_response("200 OK", &body),
        Err(_) => json_response("404 Not Found", r#"{"error":"Object Not Found"}"#),
    }
}

#[test]
fn on_3_13_queues_are_read_from_the_detailed_listing() {
    let api = FakeApi::start(|t| serve("3.13", t));
    let sidecar = Sidecar::start(&api.url, &[]);
    let m = eventually(Duration::from_secs(20), "3.13 queue figures", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_up", &[]) == Some(1.0)).then_some(m)
    });
    let orders = [("vhost", "/"), ("queue", "orders")];
    assert_eq!(m.get("rabbitmq_queue_messages_ready", &orders), Some(4.0));
    assert_eq!(
        m.get("rabbitmq_queue_messages_published_total", &orders),
        Some(10.0)
    );
    assert_eq!(
        m.get("rabbitmq_queue_messages_acked_total", &orders),
        Some(6.0)
    );
    let requests = api.requests();
    // The version is learnt from the overview before the first queue listing (the health
    // checks, read alongside, may come first).
    let first = |prefix: &str| requests.iter().position(|r| r.starts_with(prefix));
    assert!(
        first("/api/overview?").is_some_and(|o| first("/api/queues").is_none_or(|q| o < q)),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/api/queues/detailed?")),
        "{requests:?}"
    );
    // `/api/queues/detailed` has no per-vhost form (404 on 4.0.5): one read, whatever
    // `rabbitmq.queue_read` says.
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("/api/queues?") || r.starts_with("/api/queues/%2F?")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.starts_with("/api/vhosts")),
        "{requests:?}"
    );
}

#[test]
fn on_4_1_without_statistics_missing_fields_are_absent_and_counted() {
    let api = FakeApi::start(|t| serve("4.1", t));
    // The management source on purpose: `auto` would read rabbitmq_prometheus here
    // (`disable_stats: true`), which this constructed API does not serve (tests/rabbitmq4.rs
    // and tests/prometheus_source.rs test that source on real brokers).
    let sidecar = Sidecar::start(
        &api.url,
        &[("RABBITMQ_WATCH__RABBITMQ__SOURCE", "management")],
    );
    let m = eventually(Duration::from_secs(20), "4.1 poll succeeded", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_up", &[]) == Some(1.0)).then_some(m)
    });
    let orders = [("vhost", "/"), ("queue", "orders")];
    let node = [("node", "rabbit@b")];
    // What the broker reports is exported...
    assert_eq!(m.get("rabbitmq_queue_messages_ready", &orders), Some(4.0));
    assert_eq!(m.get("rabbitmq_queue_consumers", &orders), Some(1.0));
    assert_eq!(m.get("rabbitmq_node_running", &node), Some(1.0));
    assert_eq!(m.get("rabbitmq_connections", &[]), Some(1.0));
    // ...what it does not is absent, not 0...
    for (name, labels) in [
        ("rabbitmq_queue_messages_published_total", &orders[..]),
        ("rabbitmq_queue_process_memory_bytes", &orders[..]),
        ("rabbitmq_process_resident_memory_bytes", &node[..]),
        ("rabbitmq_resident_memory_limit_bytes", &node[..]),
        ("rabbitmq_node_partitions", &node[..]),
        ("rabbitmq_channel_messages_published_total", &[][..]),
        ("rabbitmq_messages_ready", &[][..]),
    ] {
        assert_eq!(m.get(name, labels), None, "{name} should be absent");
    }
    // ...and counted as missing.
    let missing = |endpoint, field| {
        m.get(
            "rabbitmq_watch_missing_fields",
            &[("endpoint", endpoint), ("field", field)],
        )
    };
    assert_eq!(missing("/api/nodes", "mem_used"), Some(1.0));
    assert_eq!(missing("/api/nodes", "partitions"), Some(1.0));
    assert_eq!(missing("/api/queues", "message_stats.publish"), Some(1.0));
    assert_eq!(missing("/api/queues", "messages_ready"), Some(0.0));
    // The alarm check still answers for the node.
    assert_eq!(
        m.get("rabbitmq_alarms_memory_used_watermark", &node),
        Some(0.0)
    );
}
