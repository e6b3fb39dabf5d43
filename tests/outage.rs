//! The broker goes away and comes back: the sidecar keeps serving, reports `rabbitmq_up 0`
//! with the failure counted and `/-/ready` failing, and recovers when the node is back.
//! Owns its node (stopping the shared one would break other tests).

mod support;

use std::time::Duration;

use support::{RabbitNode, Sidecar, eventually};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn node_stop_reports_down_keeps_serving_and_recovers_after_restart() {
    let node = RabbitNode::start("outage");
    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    eventually(WAIT, "first successful poll", || {
        (sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)).then_some(())
    });
    assert_eq!(sidecar.get("/-/ready").0, 200);

    node.stop();
    let m = eventually(WAIT, "rabbitmq_up 0 after the node stopped", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_up", &[]) == Some(0.0)).then_some(m)
    });
    // The failure is counted with its reason, and broker series are gone (unknown), not 0.
    let connect_failures = m
        .get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", "/api/queues"), ("reason", "connect")],
        )
        .unwrap();
    assert!(connect_failures >= 1.0, "{}", m.text);
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/api/nodes")]
        ),
        Some(0.0)
    );
    assert!(m.find("rabbitmq_node_running", &[]).is_empty());
    assert!(
        m.get("rabbitmq_watch_last_successful_poll_timestamp_seconds", &[])
            .unwrap()
            > 0.0
    );
    // Still serving; ready fails once the last success is older than 2 × interval + timeout.
    assert_eq!(sidecar.get("/-/healthy").0, 200);
    let body = eventually(WAIT, "/-/ready fails", || {
        let (status, body) = sidecar.get("/-/ready");
        (status == 503).then_some(body)
    });
    assert!(body.contains("last successful poll"), "{body}");
    let (status, page) = sidecar.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("DOWN") && page.contains("cannot connect"),
        "{page}"
    );
    assert!(sidecar.logs().contains("poll failed"));

    node.restart();
    eventually(WAIT, "rabbitmq_up 1 after restart", || {
        (sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)).then_some(())
    });
    eventually(WAIT, "/-/ready after restart", || {
        (sidecar.get("/-/ready").0 == 200).then_some(())
    });
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_node_running", &[("node", node.name.as_str())]),
        Some(1.0)
    );
    let logs = sidecar.terminate();
    assert!(logs.contains("poll recovered"), "{logs}");
}
