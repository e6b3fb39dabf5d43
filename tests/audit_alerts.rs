//! The reliability audit's advisory alerts (`audit.alerts`, docs/audit.md#alerts) and the
//! bound on its reads (`rabbitmq.max_response_bytes`), on a real RabbitMQ node (shared by
//! this binary) with real AMQP clients (lapin) and the real `rabbitmq-watch` binary:
//!
//! - off by default: a finding raises no alert;
//! - on: one `RabbitmqAuditFinding` alert (severity `info`) per finding, keyed by check,
//!   vhost and object, firing in `/api/v1/alerts`; held (marked unknown, never resolved) while
//!   the audit cannot read the broker; resolved when the cause is fixed, while another
//!   finding's alert keeps firing;
//! - the audit's unpaged reads (`/api/consumers`, `/api/bindings`) go through the byte cap.

mod support;

use std::time::Duration;

use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use serde_json::Value;
use support::{
    RabbitNode, Sidecar, amqp, declare, eventually, publish_with, subscribe,
    subscribe_with_prefetch,
};

const WAIT: Duration = Duration::from_secs(60);

/// A sidecar on `node` polling and auditing every second, as `user`/`password`, with
/// `audit.alerts` as given.
fn sidecar(node: &RabbitNode, alerts: bool, user: &str, password: &str) -> Sidecar {
    let yaml = format!("audit:\n  interval: 1s\n  backlog_messages: 10\n  alerts: {alerts}\n");
    Sidecar::start_with_config(
        &node.mgmt_url,
        &yaml,
        &[
            ("RABBITMQ_WATCH__POLL__INTERVAL", "1s"),
            ("RABBITMQ_WATCH__RABBITMQ__USERNAME", user),
            ("RABBITMQ_WATCH__RABBITMQ__PASSWORD", password),
        ],
    )
}

/// Creates `vhost` with full permissions for guest, and returns a connection and a channel.
async fn vhost(node: &RabbitNode, vhost: &str) -> (Connection, Channel) {
    node.ctl(&["add_vhost", vhost]);
    node.ctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    amqp(node, vhost).await
}

/// The `RabbitmqAuditFinding` alerts in `vhost` (`/api/v1/alerts`).
fn audit_alerts(sidecar: &Sidecar, vhost: &str) -> Vec<Value> {
    let (status, body) = sidecar.get("/api/v1/alerts?alertname=RabbitmqAuditFinding");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["vhost"] == vhost)
        .collect()
}

/// The alert of `check` on `object` in `vhost`, if any.
fn alert(sidecar: &Sidecar, vhost: &str, check: &str, object: &str) -> Option<Value> {
    audit_alerts(sidecar, vhost)
        .into_iter()
        .find(|a| a["labels"]["check"] == check && a["labels"]["object"] == object)
}

/// Waits until the alert of `check` on `object` is in `state` and returns it.
fn wait_state(sidecar: &Sidecar, vhost: &str, check: &str, object: &str, state: &str) -> Value {
    eventually(WAIT, &format!("{check} on {object}: {state}"), || {
        alert(sidecar, vhost, check, object).filter(|a| a["state"] == state)
    })
}

/// Whether the audit lists a finding of `check` on `object` in `vhost`.
fn has_finding(sidecar: &Sidecar, vhost: &str, check: &str, object: &str) -> bool {
    let (_, body) = sidecar.get("/api/v1/audit");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["data"]["findings"].as_array().is_some_and(|fs| {
        fs.iter()
            .any(|f| f["vhost"] == vhost && f["check"] == check && f["object"] == object)
    })
}

/// Starts an auto-ack consumer `tag` on `queue` (cancelled when the result is dropped).
async fn auto_ack(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    subscribe(ch, queue, tag, opts).await
}

/// Waits until the sidecar has polled three more times (`rabbitmq_watch_polls_total`).
fn three_more_polls(sidecar: &Sidecar) {
    let runs = |s: &Sidecar| {
        s.metrics()
            .get("rabbitmq_watch_polls_total", &[])
            .unwrap_or(0.0)
    };
    let seen = runs(sidecar);
    eventually(WAIT, "three more polls", || {
        (runs(sidecar) >= seen + 3.0).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_raises_no_alert_unless_audit_alerts_is_on() {
    let node = RabbitNode::shared();
    let v = "alerts-off";
    let (_conn, ch) = vhost(node, v).await;
    declare(&ch, "work").await;
    let _auto = auto_ack(&ch, "work", "auto").await;
    let sidecar = sidecar(node, false, "guest", "guest");
    eventually(WAIT, "the auto-ack finding", || {
        has_finding(&sidecar, v, "auto_ack_consumer", "work").then_some(())
    });
    // Several polls after the finding: still no alert.
    three_more_polls(&sidecar);
    assert!(audit_alerts(&sidecar, v).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advisory_alert_per_finding_fires_is_held_while_unseen_and_resolves_when_fixed() {
    let node = RabbitNode::shared();
    let v = "alerts-on";
    let (_conn, ch) = vhost(node, v).await;
    // The sidecar's own user, whose password can be changed to make every read fail.
    node.ctl(&["add_user", "audit-watcher", "watch-pass"]);
    node.ctl(&["set_user_tags", "audit-watcher", "administrator"]);
    node.ctl(&[
        "set_permissions",
        "-p",
        v,
        "audit-watcher",
        ".*",
        ".*",
        ".*",
    ]);
    node.ctl(&[
        "set_permissions",
        "-p",
        "/",
        "audit-watcher",
        ".*",
        ".*",
        ".*",
    ]);
    // Two problems: an auto-ack consumer on `work`, transient messages in durable `events`.
    declare(&ch, "work").await;
    declare(&ch, "events").await;
    let _auto = auto_ack(&ch, "work", "auto").await;
    publish_with(&ch, "events", 3, BasicProperties::default()).await;
    let sidecar = sidecar(node, true, "audit-watcher", "watch-pass");

    let a = wait_state(&sidecar, v, "auto_ack_consumer", "work", "firing");
    assert_eq!(a["labels"]["severity"], "info", "{a}");
    assert_eq!(a["labels"]["object_type"], "queue", "{a}");
    assert_eq!(a["labels"]["finding_severity"], "warning", "{a}");
    assert!(
        a["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("automatic acknowledgement")),
        "{a}"
    );
    assert!(
        a["annotations"]["fix"]
            .as_str()
            .is_some_and(|d| d.contains("manual acknowledgement")),
        "{a}"
    );
    let t = wait_state(&sidecar, v, "transient_messages", "events", "firing");
    assert_ne!(a["fingerprint"], t["fingerprint"]);

    // The broker cannot be read (the sidecar's password is wrong): the audit skips every
    // check, and the alerts are held, marked unknown, not resolved.
    node.ctl(&["change_password", "audit-watcher", "not-the-password"]);
    let held = eventually(WAIT, "the auto-ack alert marked unknown", || {
        alert(&sidecar, v, "auto_ack_consumer", "work").filter(|a| a["unknown"] == true)
    });
    assert_eq!(held["state"], "firing", "{held}");
    // Fix the auto-ack consumer while the sidecar cannot see it: still held.
    ch.basic_cancel("auto".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    three_more_polls(&sidecar);
    let still = alert(&sidecar, v, "auto_ack_consumer", "work").expect("alert kept");
    assert_eq!(
        (&still["state"], &still["unknown"]),
        (&"firing".into(), &true.into())
    );

    // Seen again: the fixed finding resolves, the other keeps firing.
    node.ctl(&["change_password", "audit-watcher", "watch-pass"]);
    let _manual = subscribe_with_prefetch(&ch, "work", "manual", 10).await;
    let r = wait_state(&sidecar, v, "auto_ack_consumer", "work", "resolved");
    assert_eq!(r["unknown"], false, "{r}");
    // The other keeps firing, and is known again once a whole audit run read the broker (the
    // run that saw the consumer fixed may have begun while the password was still wrong, its
    // earlier reads refused: that check skipped, its alert still unknown).
    eventually(
        WAIT,
        "the transient-messages alert firing and known",
        || {
            let t = alert(&sidecar, v, "transient_messages", "events").expect("other alert");
            assert_eq!(t["state"], "firing", "never resolved: {t}");
            (t["unknown"] == false).then_some(())
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audits_unpaged_reads_are_bounded_by_max_response_bytes() {
    let node = RabbitNode::shared();
    let v = "alerts-cap";
    let (_conn, ch) = vhost(node, v).await;
    declare(&ch, "capped").await;
    // 40 consumers with 200-character tags: /api/consumers is well over 8 kB.
    let mut held = Vec::new();
    for i in 0..40 {
        let tag = format!("{i:03}-{}", "t".repeat(196));
        held.push(subscribe(&ch, "capped", &tag, BasicConsumeOptions::default()).await);
    }
    let yaml = "audit:\n  interval: 1s\n";
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        yaml,
        &[
            ("RABBITMQ_WATCH__POLL__INTERVAL", "1s"),
            ("RABBITMQ_WATCH__RABBITMQ__MAX_RESPONSE_BYTES", "8000"),
        ],
    );
    let read = eventually(WAIT, "the /api/consumers read failed on the cap", || {
        let (_, body) = sidecar.get("/api/v1/audit");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        v["data"]["reads"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["endpoint"] == "/api/consumers"))
            .filter(|r| !r["error"].is_null())
            .cloned()
    });
    let error = read["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("larger than rabbitmq.max_response_bytes (8000 bytes)"),
        "{read}"
    );
    assert_eq!(read["bytes"], 0, "{read}");
    // The checks that need it say why they were skipped, and nothing was found from it.
    let (_, body) = sidecar.get("/api/v1/audit");
    let report: Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        report["data"]["skipped"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["check"] == "auto_ack_consumer"
                && s["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("max_response_bytes")))),
        "{body}"
    );
    let failed = sidecar.metrics().get(
        "rabbitmq_watch_endpoint_failures_total",
        &[("endpoint", "/api/consumers"), ("reason", "request")],
    );
    assert!(failed.is_some_and(|n| n >= 1.0), "{failed:?}");
}
