//! A restart of the RabbitMQ application alone (`stop_app`/`start_app`, as autoheal and
//! pause_minority recovery do) is counted in `rabbitmq_node_restarts_total`, although the
//! Erlang VM's uptime goes on (issue #15). Owns its node (stopping the shared one would break
//! other tests).

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
}
