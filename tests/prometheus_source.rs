//! `rabbitmq.source: prometheus` forced on a real RabbitMQ 3.10.8 (statistics on; its
//! rabbitmq_prometheus serves `/metrics/detailed` too): queue depth, consumers and node
//! resources come from the plugin, the exported families and labels are those of the
//! management source. And the plugin unreachable (connection refused): a `connect` failure
//! of its endpoints, the figures absent (not 0), the sidecar still serving. And node CPU
//! (#16): known from the plugin's Erlang runtime counters, absent with the management source.
//!
//! One node (with `--prometheus`) shared by the tests of this binary.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use support::{
    NODE_MEMORY_AND_DISK, RabbitNode, Sidecar, amqp, consume_and_hold, declare, eventually,
    free_port, publish,
};

const WAIT: Duration = Duration::from_secs(30);

fn node() -> &'static RabbitNode {
    static NODE: OnceLock<RabbitNode> = OnceLock::new();
    NODE.get_or_init(|| {
        let node = RabbitNode::start_with("prom3", &["--prometheus"]);
        assert!(!node.prom_url.is_empty(), "PROM_URL with --prometheus");
        node
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_prometheus_source_on_3_10_gives_the_same_families() {
    let node = node();
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, "p3-seven").await;
    publish(&ch, "p3-seven", 7).await;
    declare(&ch, "p3-consumed").await;
    let _consumer = consume_and_hold(&ch, "p3-consumed", "p3-consumer", 2).await;

    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[
            ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "prometheus"),
            ("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url),
        ],
    );
    let seven = [("vhost", "/"), ("queue", "p3-seven")];
    let consumed = [("vhost", "/"), ("queue", "p3-consumed")];
    let m = eventually(
        WAIT,
        "7 ready and 2 unacked from rabbitmq_prometheus",
        || {
            let m = sidecar.metrics();
            (m.get("rabbitmq_queue_messages_ready", &seven) == Some(7.0)
                && m.get("rabbitmq_queue_messages_unacked", &consumed) == Some(2.0))
            .then_some(m)
        },
    );
    assert_eq!(
        m.get("rabbitmq_watch_source_info", &[("source", "prometheus")]),
        Some(1.0)
    );
    assert_eq!(m.find("rabbitmq_watch_source_info", &[]).len(), 1);
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0), "{}", m.text);
    assert_eq!(m.get("rabbitmq_queue_consumers", &consumed), Some(1.0));
    assert_eq!(m.get("rabbitmq_queue_consumers", &seven), Some(0.0));
    // 3.10 has no per-queue counters in rabbitmq_prometheus: unknown, not 0, although the
    // broker collects management statistics.
    assert_eq!(
        m.get("rabbitmq_queue_messages_published_total", &seven),
        None
    );
    assert_eq!(
        m.get("rabbitmq_queue_messages_acked_total", &consumed),
        None
    );
    let info = m.find("rabbitmq_queue_info", &seven);
    assert_eq!(
        info.len(),
        1,
        "the listing still comes from the management API"
    );
    let this_node = [("node", node.name.as_str())];
    m.assert_positive(&NODE_MEMORY_AND_DISK, &this_node, "3.10 plugin");
    assert!(
        m.get(
            "rabbitmq_watch_endpoint_response_bytes",
            &[("endpoint", "/metrics/detailed")]
        )
        .is_some_and(|b| b > 0.0)
    );
    sidecar.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_plugin_is_a_connect_failure_and_absent_figures() {
    let node = node();
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, "p3-unreachable").await;
    publish(&ch, "p3-unreachable", 3).await;
    let refused = format!("http://127.0.0.1:{}", free_port());
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[
            ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "prometheus"),
            ("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &refused),
        ],
    );
    let failures = |m: &support::Exposition, endpoint| {
        m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", endpoint), ("reason", "connect")],
        )
        .unwrap_or(0.0)
    };
    let m = eventually(WAIT, "connect failures of both plugin endpoints", || {
        let m = sidecar.metrics();
        (failures(&m, "/metrics/detailed") >= 1.0 && failures(&m, "/metrics") >= 1.0).then_some(m)
    });
    let q = [("vhost", "/"), ("queue", "p3-unreachable")];
    assert_eq!(m.find("rabbitmq_queue_info", &q).len(), 1, "still listed");
    assert_eq!(
        m.get("rabbitmq_queue_messages_ready", &q),
        None,
        "unknown, not 0"
    );
    assert_eq!(
        m.get("rabbitmq_queue_consumers", &q),
        None,
        "unknown, not 0"
    );
    assert_eq!(
        m.get(
            "rabbitmq_process_resident_memory_bytes",
            &[("node", node.name.as_str())]
        ),
        None
    );
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/metrics/detailed")]
        ),
        Some(0.0)
    );
    assert!(
        sidecar.logs().contains("/metrics/detailed"),
        "the failure is logged with its endpoint"
    );
    sidecar.terminate();
}

/// `/metrics/detailed` and `/metrics` are read on every member: when several members' plugins
/// fail in one poll, each failing member is logged (with its name), not only the first.
/// Two members (`cluster.nodes`: the node's management API under two host names) whose
/// plugin port refuses connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failing_member_is_logged_per_plugin_endpoint() {
    let node = node();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let port = node.mgmt_url.rsplit(':').next().expect("a port");
    let yaml = format!(
        r#"
rabbitmq:
  source: prometheus
  prometheus_url: "{refused}"
cluster:
  nodes:
    - "rabbit@first=http://127.0.0.1:{port}"
    - "rabbit@second=http://localhost:{port}"
"#
    );
    let sidecar = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    let line = |logs: &str, endpoint: &str, member: &str| {
        logs.lines().any(|l| {
            l.contains("poll failed on this member")
                && l.contains(&format!("endpoint=\"{endpoint}\" "))
                && l.contains(&format!("member={member} "))
                && l.contains("reason=\"connect\"")
        })
    };
    eventually(
        WAIT,
        "both members' failures of both endpoints logged",
        || {
            let logs = sidecar.logs();
            ["/metrics/detailed", "/metrics"]
                .iter()
                .all(|e| line(&logs, e, "rabbit@first") && line(&logs, e, "rabbit@second"))
                .then_some(())
        },
    );
    let m = sidecar.metrics();
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    sidecar.terminate();
}

/// Node CPU (issue #16) comes from the plugin's Erlang runtime counters: with the prometheus
/// source the utilisation is known (a rule on it is evaluated: a threshold every real value
/// passes makes it fire), with the management source it is absent, never 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cpu_is_known_with_the_prometheus_source_and_absent_without_it() {
    let node = node();
    let yaml = r#"
alerting:
  backlog:
    window: 2s
  rules:
    - alert: RabbitmqNodeCpuHigh
      expr: "cpu_utilisation >= 0"
      for: 0s
"#;
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        yaml,
        &[
            ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "prometheus"),
            ("RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL", &node.prom_url),
        ],
    );
    let this_node = [("node", node.name.as_str())];
    let cpu = eventually(WAIT, "CPU utilisation from the runtime counters", || {
        sidecar
            .metrics()
            .get("rabbitmq_node_cpu_utilisation_ratio", &this_node)
    });
    // Two online schedulers on this machine at most: the runtime's CPU time over the
    // window cannot exceed a few times their capacity.
    assert!((0.0..4.0).contains(&cpu), "{cpu}");
    let firing = eventually(WAIT, "RabbitmqNodeCpuHigh evaluated and firing", || {
        let (_, body) = sidecar.get("/api/v1/alerts");
        let api: serde_json::Value = serde_json::from_str(&body).ok()?;
        api["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "RabbitmqNodeCpuHigh" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(firing["labels"]["node"], node.name.as_str());
    sidecar.terminate();

    let management = Sidecar::start(&node.mgmt_url, &[]);
    let m = eventually(WAIT, "a successful management poll", || {
        let m = management.metrics();
        (m.get("rabbitmq_up", &[]) == Some(1.0)
            && m.get("rabbitmq_process_open_fds", &this_node).is_some())
        .then_some(m)
    });
    assert_eq!(
        m.get("rabbitmq_node_cpu_utilisation_ratio", &this_node),
        None,
        "/api/nodes has no CPU figure: absent, not 0"
    );
    management.terminate();
}
