//! The health checks read on every poll (`/api/health/checks/...`, #16) against a real
//! RabbitMQ 3.10 node whose TLS listener serves a certificate made at test time with the
//! `openssl` CLI (Debian's `openssl`, `scripts/install-deps.sh tls`), through the real
//! `rabbitmq-watch` binary: an expiring certificate and a virtual host that is down raise
//! their default alerts; a healthy single node is neither quorum- nor mirror-sync-critical.
//! One node serves both tests.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{RabbitNode, Sidecar, eventually, free_port, temp_dir};

const WAIT: Duration = Duration::from_secs(30);

/// Days the test certificate is valid: within the check's 30-day window.
const VALID_DAYS: &str = "5";

/// Runs `openssl ARGS` in `dir`; panics when it fails.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl: scripts/install-deps.sh tls)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node of this test binary: RabbitMQ 3.10 with a TLS listener (AMQPS on `port`) whose
/// self-signed certificate expires in [`VALID_DAYS`] days; the certificate's end date as
/// openssl reads it.
struct TlsNode {
    node: RabbitNode,
    port: u16,
    not_after: SystemTime,
}

fn tls_node() -> &'static TlsNode {
    static NODE: OnceLock<TlsNode> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = temp_dir("tls-node");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                VALID_DAYS,
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ],
        );
        let end = openssl(
            &dir,
            &[
                "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", "cert.pem",
            ],
        );
        let end = end
            .trim()
            .trim_start_matches("notAfter=")
            .trim_end_matches('Z');
        let not_after = humantime::parse_rfc3339_weak(end)
            .unwrap_or_else(|e| panic!("openssl end date {end:?}: {e}"));
        let port = free_port();
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let conf = [
            format!("listeners.ssl.default = {port}"),
            format!("ssl_options.certfile = {}", file("cert.pem")),
            format!("ssl_options.keyfile = {}", file("key.pem")),
            format!("ssl_options.cacertfile = {}", file("cert.pem")),
        ];
        let mut args = Vec::new();
        for line in &conf {
            args.extend(["--conf", line.as_str()]);
        }
        let node = RabbitNode::start_with("tls", &args);
        TlsNode {
            node,
            port,
            not_after,
        }
    })
}

/// The alerts of `name` the sidecar's API lists as firing.
fn firing(sidecar: &Sidecar, name: &str) -> Vec<serde_json::Value> {
    let (_, body) = sidecar.get("/api/v1/alerts");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    api["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
        .cloned()
        .collect()
}

#[test]
fn an_expiring_tls_certificate_raises_the_certificate_alert_with_its_expiry() {
    let tls = tls_node();
    let node = tls.node.name.as_str();
    let sidecar = Sidecar::start(&tls.node.mgmt_url, &[]);
    let alert = eventually(WAIT, "RabbitmqCertificateExpiring firing", || {
        firing(&sidecar, "RabbitmqCertificateExpiring")
            .into_iter()
            .next()
    });
    assert_eq!(alert["labels"]["node"], node);
    assert_eq!(alert["labels"]["severity"], "warning");
    let expires = humantime::format_rfc3339_seconds(tls.not_after).to_string();
    let expires = format!(
        "{} UTC",
        expires.trim_end_matches('Z').replacen('T', " ", 1)
    );
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert_eq!(
        summary,
        format!("TLS certificate of node {node} expires {expires}")
    );
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("amqp/ssl:{} expires {expires}", tls.port)),
        "{description}"
    );

    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_node_certificates_expiring", &[("node", node)]),
        Some(1.0)
    );
    let port = tls.port.to_string();
    let listener = [
        ("node", node),
        ("protocol", "amqp/ssl"),
        ("port", port.as_str()),
    ];
    let expected = tls.not_after.duration_since(UNIX_EPOCH).unwrap().as_secs() as f64;
    assert_eq!(
        m.get(
            "rabbitmq_listener_certificate_expiry_timestamp_seconds",
            &listener
        ),
        Some(expected)
    );
    // The other checks answer for a healthy single node: nothing critical, every vhost up.
    for family in [
        "rabbitmq_node_quorum_critical",
        "rabbitmq_node_mirror_sync_critical",
    ] {
        assert_eq!(m.get(family, &[("node", node)]), Some(0.0), "{family}");
    }
    for check in [
        "node-is-quorum-critical",
        "node-is-mirror-sync-critical",
        "virtual-hosts",
        "certificate-expiration",
    ] {
        assert_eq!(
            m.get(
                "rabbitmq_watch_health_check_up",
                &[("node", node), ("check", check)]
            ),
            Some(1.0),
            "{check}"
        );
    }
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    sidecar.terminate();
}

#[test]
fn a_virtual_host_down_raises_its_alert_and_resolves_when_restarted() {
    let tls = tls_node();
    let node = tls.node.name.as_str();
    let (status, body) = support::http_get(&format!(
        "{}/api/vhosts/health-down",
        tls.node.mgmt_url.replace("http://", "http://guest:guest@")
    ));
    assert_eq!(status, 404, "a fresh vhost name: {body}");
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", "-u", "guest:guest", "-X", "PUT"])
        .arg(format!("{}/api/vhosts/health-down", tls.node.mgmt_url))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "{out:?}");
    let sidecar = Sidecar::start_with_config(
        &tls.node.mgmt_url,
        "alerting:\n  rules:\n    - alert: RabbitmqVirtualHostsDown\n      for: 0s\n",
        &[],
    );
    eventually(WAIT, "every vhost up", || {
        (sidecar
            .metrics()
            .get("rabbitmq_node_virtual_hosts_down", &[("node", node)])
            == Some(0.0))
        .then_some(())
    });
    // Stop the vhost's processes, as a crashed vhost supervisor would leave it.
    tls.node.ctl(&[
        "eval",
        "rabbit_vhost_sup_sup:stop_and_delete_vhost(<<\"health-down\">>).",
    ]);
    let alert = eventually(WAIT, "RabbitmqVirtualHostsDown firing", || {
        firing(&sidecar, "RabbitmqVirtualHostsDown")
            .into_iter()
            .next()
    });
    assert_eq!(alert["labels"]["node"], node);
    assert_eq!(
        alert["annotations"]["summary"],
        format!("Virtual hosts down on node {node}: health-down")
    );
    tls.node.ctl(&["restart_vhost", "-p", "health-down"]);
    eventually(WAIT, "the vhost up again", || {
        (sidecar
            .metrics()
            .get("rabbitmq_node_virtual_hosts_down", &[("node", node)])
            == Some(0.0)
            && firing(&sidecar, "RabbitmqVirtualHostsDown").is_empty())
        .then_some(())
    });
    sidecar.terminate();
}

/// `cluster.expected_protocols` names `mqtt`, whose plugin this node does not run: the
/// protocol-listener check fails for it, and RabbitmqProtocolListenerDown names the node and
/// the protocol. The protocols the node serves (`/api/overview` `listeners`: `amqp`,
/// `amqp/ssl`, `http`, `clustering`) are learned at the first poll and reported up.
#[test]
fn an_expected_protocol_without_a_listener_raises_the_listener_alert_naming_it() {
    let tls = tls_node();
    let node = tls.node.name.as_str();
    let sidecar = Sidecar::start_with_config(
        &tls.node.mgmt_url,
        "cluster:\n  expected_protocols: [mqtt]\nalerting:\n  rules:\n    - alert: RabbitmqProtocolListenerDown\n      for: 0s\n",
        &[],
    );
    let alert = eventually(WAIT, "RabbitmqProtocolListenerDown firing", || {
        firing(&sidecar, "RabbitmqProtocolListenerDown")
            .into_iter()
            .next()
    });
    assert_eq!(alert["labels"]["node"], node);
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("No listener for mqtt on node {node}")
    );
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("(it serves: amqp, amqp/ssl, clustering, http)"),
        "{description}"
    );
    // The served protocols are learned from the first overview and checked from the next
    // poll on: each is up.
    let m = eventually(WAIT, "the served protocols checked", || {
        let m = sidecar.metrics();
        m.get(
            "rabbitmq_node_protocol_listener_down",
            &[("node", node), ("protocol", "amqp")],
        )
        .is_some()
        .then_some(m)
    });
    for (protocol, down) in [
        ("mqtt", 1.0),
        ("amqp", 0.0),
        ("amqp/ssl", 0.0),
        ("http", 0.0),
        ("clustering", 0.0),
    ] {
        assert_eq!(
            m.get(
                "rabbitmq_node_protocol_listener_down",
                &[("node", node), ("protocol", protocol)]
            ),
            Some(down),
            "{protocol}"
        );
        let check = format!("protocol-listener/{protocol}");
        assert_eq!(
            m.get(
                "rabbitmq_watch_health_check_up",
                &[("node", node), ("check", check.as_str())]
            ),
            Some(1.0),
            "{check}"
        );
    }
    // Only mqtt is named.
    assert_eq!(firing(&sidecar, "RabbitmqProtocolListenerDown").len(), 1);
    sidecar.terminate();
}
