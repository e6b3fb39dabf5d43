//! Node limits and traffic health end to end (issue #16) on one real RabbitMQ node shared by
//! this binary: the default rules of the capacity block, with thresholds and `for` lowered in
//! the test's configuration (an `alerting.rules` entry of the same name), fire on real usage
//! and resolve when it stops:
//!
//! - file descriptors and Erlang processes: real AMQP connections and channels push the node's
//!   `fd_used` / `proc_used` over a threshold set just above what it used before;
//! - connection churn: real connections opened and closed in a loop;
//! - unroutable messages: real mandatory publishes to an exchange without bindings;
//! - queue latency: real messages whose publisher set the `timestamp` property.
//!
//! The tests take turns ([`SERIAL`]): each one's connections would move the others' figures.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use support::{RabbitNode, Sidecar, amqp, declare, eventually, http_get, publish_with};

const WAIT: Duration = Duration::from_secs(40);

/// One test at a time: they all count the shared node's connections, processes and rates.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The management API's answer for `path`, read with the default user.
fn api(node: &RabbitNode, path: &str) -> Value {
    let url = node.mgmt_url.replacen("://", "://guest:guest@", 1);
    let (status, body) = http_get(&format!("{url}{path}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The node's own entry of `/api/nodes`.
/// The node's own `/api/nodes` entry, once its statistics have been collected (a node just
/// started lists itself before its first `fd_used` / `proc_used` sample).
fn this_node(node: &RabbitNode) -> Value {
    eventually(WAIT, "the node's fd and process figures", || {
        let nodes = api(node, "/api/nodes");
        nodes
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == node.name.as_str()))
            .filter(|n| n["fd_used"].is_u64() && n["proc_used"].is_u64())
            .cloned()
    })
}

/// A sidecar on the shared node whose `alerting.rules` override default rule `name` with
/// `expr` and `for` `for_`.
fn sidecar(node: &RabbitNode, name: &str, expr: &str, for_: &str) -> Sidecar {
    let yaml = format!(
        r#"
alerting:
  backlog:
    window: 3s
  rules:
    - alert: {name}
      expr: "{expr}"
      for: {for_}
"#
    );
    Sidecar::start_with_config(&node.mgmt_url, &yaml, &[])
}

/// The sidecar's alert named `name` (and, for node alerts, on `node`), if listed.
fn alert(sidecar: &Sidecar, name: &str) -> Option<Value> {
    let (status, body) = sidecar.get("/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    api["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .cloned()
}

/// Waits until alert `name` is in `state` (`firing`, `resolved`) and returns it.
fn wait_state(sidecar: &Sidecar, name: &str, state: &str) -> Value {
    eventually(WAIT, &format!("{name} {state}"), || {
        alert(sidecar, name).filter(|a| a["state"] == state)
    })
}

async fn connect(node: &RabbitNode) -> Connection {
    Connection::connect(&node.amqp_url, ConnectionProperties::default())
        .await
        .expect("AMQP connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_descriptors_near_their_limit_fire_and_resolve_with_real_connections() {
    let _turn = SERIAL.lock().await;
    let node = RabbitNode::shared();
    let before = this_node(node);
    let (used, total) = (
        before["fd_used"].as_u64().expect("fd_used"),
        before["fd_total"].as_u64().expect("fd_total"),
    );
    // Just above what the node used before: 30 more connections (one socket each) cross it.
    let threshold = (used + 10) as f64 / total as f64;
    let sidecar = sidecar(
        node,
        "RabbitmqFileDescriptorsNearLimit",
        &format!("fd_used / fd_total > {threshold}"),
        "1s",
    );
    let mut connections = Vec::new();
    for _ in 0..30 {
        connections.push(connect(node).await);
    }
    let firing = tokio::task::block_in_place(|| {
        wait_state(&sidecar, "RabbitmqFileDescriptorsNearLimit", "firing")
    });
    assert_eq!(firing["labels"]["node"], node.name.as_str());
    assert_eq!(firing["labels"]["severity"], "warning");
    assert!(firing["value"].as_f64().unwrap() > threshold, "{firing}");
    let m = sidecar.metrics();
    let open = m
        .get("rabbitmq_process_open_fds", &[("node", &node.name)])
        .unwrap();
    assert!(open >= (used + 10) as f64, "{open} fds open");
    for c in connections {
        c.close(200, "done".into()).await.expect("close");
    }
    let resolved = tokio::task::block_in_place(|| {
        wait_state(&sidecar, "RabbitmqFileDescriptorsNearLimit", "resolved")
    });
    assert_eq!(resolved["labels"]["node"], node.name.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erlang_processes_near_their_limit_fire_and_resolve_with_real_channels() {
    let _turn = SERIAL.lock().await;
    let node = RabbitNode::shared();
    let before = this_node(node);
    let (used, total) = (
        before["proc_used"].as_u64().expect("proc_used"),
        before["proc_total"].as_u64().expect("proc_total"),
    );
    // Each connection and channel runs several Erlang processes: 10 connections with 10
    // channels each add far more than 100.
    let threshold = (used + 100) as f64 / total as f64;
    let sidecar = sidecar(
        node,
        "RabbitmqErlangProcessesNearLimit",
        &format!("proc_used / proc_total > {threshold}"),
        "1s",
    );
    let mut held = Vec::new();
    for _ in 0..10 {
        let c = connect(node).await;
        let mut channels = Vec::new();
        for _ in 0..10 {
            channels.push(c.create_channel().await.expect("channel"));
        }
        held.push((c, channels));
    }
    let firing = tokio::task::block_in_place(|| {
        wait_state(&sidecar, "RabbitmqErlangProcessesNearLimit", "firing")
    });
    assert_eq!(firing["labels"]["node"], node.name.as_str());
    let m = sidecar.metrics();
    assert!(
        m.get("rabbitmq_erlang_processes_used", &[("node", &node.name)])
            .unwrap()
            > (used + 100) as f64
    );
    assert_eq!(
        m.get("rabbitmq_erlang_processes_limit", &[("node", &node.name)]),
        Some(total as f64)
    );
    for (c, _) in held {
        c.close(200, "done".into()).await.expect("close");
    }
    tokio::task::block_in_place(|| {
        wait_state(&sidecar, "RabbitmqErlangProcessesNearLimit", "resolved")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_fires_while_clients_reconnect_and_resolves_when_they_stop() {
    let _turn = SERIAL.lock().await;
    let node = RabbitNode::shared();
    // cluster-operator's rule with its 100-connection floor lowered to the one held here.
    let sidecar = sidecar(
        node,
        "RabbitmqHighConnectionChurn",
        "connection_churn / connections > 0.1 and connections >= 1",
        "1s",
    );
    let _steady = connect(node).await;
    let opened_before = sidecar
        .metrics()
        .get("rabbitmq_connections_opened_total", &[("node", &node.name)])
        .unwrap_or(0.0);
    // Reconnect in a loop (open, close) until the alert fires.
    let churn = {
        let url = node.amqp_url.clone();
        tokio::spawn(async move {
            loop {
                let c = Connection::connect(&url, ConnectionProperties::default())
                    .await
                    .expect("AMQP connect");
                c.close(200, "churn".into()).await.expect("close");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let firing = tokio::task::block_in_place(|| {
        wait_state(&sidecar, "RabbitmqHighConnectionChurn", "firing")
    });
    assert!(firing["value"].as_f64().unwrap() > 0.1, "{firing}");
    let opened = sidecar
        .metrics()
        .get("rabbitmq_connections_opened_total", &[("node", &node.name)])
        .unwrap();
    assert!(opened > opened_before, "{opened} after {opened_before}");
    churn.abort();
    tokio::task::block_in_place(|| wait_state(&sidecar, "RabbitmqHighConnectionChurn", "resolved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_messages_fire_while_published_and_resolve_when_they_stop() {
    let _turn = SERIAL.lock().await;
    let node = RabbitNode::shared();
    let sidecar = sidecar(
        node,
        "RabbitmqUnroutableMessages",
        "unroutable_rate > 0",
        "1s",
    );
    let (_conn, ch) = amqp(node, "/").await;
    // An exchange nothing is bound to: every mandatory message comes back.
    ch.exchange_declare(
        "capacity-nowhere".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let publisher = tokio::spawn(async move {
        loop {
            ch.basic_publish(
                "capacity-nowhere".into(),
                "any".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"lost",
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let firing = tokio::task::block_in_place(|| {
        wait_state(&sidecar, "RabbitmqUnroutableMessages", "firing")
    });
    assert!(firing["value"].as_f64().unwrap() > 0.0, "{firing}");
    assert!(
        sidecar
            .metrics()
            .get("rabbitmq_channel_messages_unroutable_returned_total", &[])
            .unwrap()
            > 0.0
    );
    publisher.abort();
    tokio::task::block_in_place(|| wait_state(&sidecar, "RabbitmqUnroutableMessages", "resolved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_latency_from_timestamped_messages_fires_and_resolves_when_consumed() {
    let _turn = SERIAL.lock().await;
    let node = RabbitNode::shared();
    let queue = "capacity-latency";
    // The default rule (latency > 1 s, not a dead-letter queue), `for` shortened.
    let sidecar = sidecar(
        node,
        "RabbitmqQueueLatencyHigh",
        "latency > 1 and dead_letter_queue == 0",
        "1s",
    );
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    publish_with(
        &ch,
        queue,
        3,
        BasicProperties::default().with_timestamp(now),
    )
    .await;
    let firing =
        tokio::task::block_in_place(|| wait_state(&sidecar, "RabbitmqQueueLatencyHigh", "firing"));
    assert_eq!(firing["labels"]["queue"], queue);
    assert!(firing["value"].as_f64().unwrap() > 1.0, "{firing}");
    let latency = sidecar
        .metrics()
        .get(
            "rabbitmq_queue_latency_seconds",
            &[("vhost", "/"), ("queue", queue)],
        )
        .unwrap();
    assert!(latency > 1.0, "{latency}");
    // Consume them: nothing waits, latency 0.
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
    {
        m.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    tokio::task::block_in_place(|| wait_state(&sidecar, "RabbitmqQueueLatencyHigh", "resolved"));
    assert_eq!(
        sidecar.metrics().get(
            "rabbitmq_queue_latency_seconds",
            &[("vhost", "/"), ("queue", queue)]
        ),
        Some(0.0)
    );
}
