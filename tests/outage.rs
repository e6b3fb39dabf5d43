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
    // Down, the refused connections counted with their reason, and node series gone (unknown),
    // not 0. (A poll that overlaps the shutdown may fail otherwise; the next ones are refused.)
    let m = eventually(WAIT, "rabbitmq_up 0 with refused connections", || {
        let m = sidecar.metrics();
        let refused = m
            .get(
                "rabbitmq_watch_endpoint_failures_total",
                &[("endpoint", "/api/nodes"), ("reason", "connect")],
            )
            .unwrap_or(0.0);
        let down = m.get("rabbitmq_up", &[]) == Some(0.0)
            && refused >= 1.0
            && m.get(
                "rabbitmq_watch_endpoint_success",
                &[("endpoint", "/api/nodes")],
            ) == Some(0.0);
        down.then_some(m)
    });
    assert!(
        m.find("rabbitmq_node_running", &[]).is_empty(),
        "{}",
        m.text
    );
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
