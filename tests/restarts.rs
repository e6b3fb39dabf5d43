//! A restart of the RabbitMQ application alone (`stop_app`/`start_app`, as autoheal and
//! pause_minority recovery do) is counted in `rabbitmq_node_restarts_total`, although the
//! Erlang VM's uptime goes on (issue #15), and announced by RabbitmqNodeRestarted (#16). Owns
//! its node (stopping the shared one would break other tests).

mod support;

use std::time::Duration;

use support::{RabbitNode, Sidecar, eventually};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn an_application_restart_is_counted_though_the_vm_keeps_running() {
    let node = RabbitNode::start("app-restart");
    let members = format!("{}={}", node.name, node.mgmt_url);
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[("RABBITMQ_WATCH__CLUSTER__NODES", members.as_str())],
    );
    let restarts = |s: &Sidecar| {
        s.metrics().get(
            "rabbitmq_node_restarts_total",
            &[("node", node.name.as_str())],
        )
    };
    eventually(WAIT, "the member's view read with no restart", || {
        (restarts(&sidecar) == Some(0.0)).then_some(())
    });
    // Let a few polls record the application's counters.
    std::thread::sleep(Duration::from_secs(2));
    node.ctl(&["stop_app"]);
    node.ctl(&["start_app"]);
    eventually(WAIT, "the application restart counted", || {
        (restarts(&sidecar) == Some(1.0)).then_some(())
    });
    // ... and announced by the default rule RabbitmqNodeRestarted (#16), naming the node.
    let summary = eventually(WAIT, "RabbitmqNodeRestarted firing", || {
        let (_, body) = sidecar.get("/api/v1/alerts");
        let api: serde_json::Value = serde_json::from_str(&body).ok()?;
        api["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "RabbitmqNodeRestarted" && a["state"] == "firing")
            .map(|a| {
                a["annotations"]["summary"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
    });
    assert_eq!(summary, format!("RabbitMQ node restarted: {}", node.name));
}
