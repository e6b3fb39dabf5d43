//! `rabbitmq.url` is not a single point of failure (issue #15): when the node behind it cannot
//! be read and cluster members are configured, the cluster-wide reads (overview, queues, nodes,
//! alarms) go through a member whose own API answers, and the sidecar stays up.

mod support;

use std::time::Duration;

use support::{RabbitNode, Sidecar, eventually, free_port};

#[test]
fn cluster_wide_reads_fail_over_to_a_healthy_member_when_rabbitmq_url_fails() {
    let node = RabbitNode::shared();
    // `rabbitmq.url` refuses connections (as a node whose application is stopped does); the
    // one healthy member is listed in cluster.nodes.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let members = format!("{}={}", node.name, node.mgmt_url);
    let sidecar = Sidecar::start(&dead, &[("RABBITMQ_WATCH__CLUSTER__NODES", &members)]);
    let m = eventually(
        Duration::from_secs(30),
        "every endpoint read through the member",
        || {
            let m = sidecar.metrics();
            (m.get("rabbitmq_up", &[]) == Some(1.0)).then_some(m)
        },
    );
    for endpoint in [
        "/api/overview",
        "/api/queues",
        "/api/nodes",
        "/api/health/checks/alarms",
    ] {
        assert_eq!(
            m.get("rabbitmq_watch_endpoint_success", &[("endpoint", endpoint)]),
            Some(1.0),
            "{endpoint}"
        );
    }
}
