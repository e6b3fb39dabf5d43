//! Alerts end to end on a real RabbitMQ node (shared by this binary): real messages over a
//! threshold make the real `rabbitmq-watch` binary fire an alert, which a real HTTP receiver
//! gets as Alertmanager's webhook payload; consuming them resolves it. Also: a receiver
//! answering 500 then 200 gets the notification once after retries; a receiver down across a
//! sidecar restart gets it once after recovery, and what resolved while no sidecar ran is
//! announced by the next one; the silences API. Regressions of issue #14: absurd or
//! mute-everything silences are refused and alerting goes on; a receiver answering 400 then 200
//! gets the group again at the next group_interval; a corrupt state file is moved aside.

mod support;

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use support::{
    Alertmanager, HttpReceiver, Notify, RabbitNode, Received, Sidecar, SmtpSink, amqp, declare,
    eventually, free_port, publish, temp_dir,
};

const WAIT: Duration = Duration::from_secs(30);

/// Verifies a signed webhook request as a receiver would (docs/notifications.md): the
/// timestamp is recent, and the signature is HMAC-SHA256 of `"<timestamp>.<body>"`, computed
/// here independently of the sidecar's code and compared in constant time.
fn verify_signature(request: &Received, secret: &str) {
    use hmac::{Hmac, KeyInit, Mac};
    let timestamp = &request.headers["x-rabbitmq-watch-timestamp"];
    let sent: u64 = timestamp.parse().expect("unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(sent) <= 300, "timestamp {sent} vs now {now}");
    let hex = request.headers["x-rabbitmq-watch-signature"]
        .strip_prefix("sha256=")
        .expect("sha256= prefix");
    let given: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", request.body).as_bytes());
    mac.verify_slice(&given).expect("valid signature");
    // The same body under another timestamp (a replay re-dated) does not verify.
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", sent + 3600, request.body).as_bytes());
    assert!(mac.verify_slice(&given).is_err());
}

/// The webhook integration against the real HTTP receiver, no broker needed: the request
/// carries a timestamp and a signature over it and the body, which verify.
#[tokio::test]
async fn signed_webhooks_carry_a_timestamp_that_the_signature_covers() {
    use rabbitmq_watch::notify::Message;
    use rabbitmq_watch::notify::webhook::{RawWebhook, Webhook, WebhookConfig};
    rabbitmq_watch::install_crypto_provider();
    let receiver = HttpReceiver::start(None, vec![]);
    let raw = RawWebhook {
        url: Some(format!("{}/hook", receiver.url)),
        hmac_secret: Some("k3y-for-hooks".into()),
        ..RawWebhook::default()
    };
    let hook = Webhook::new(WebhookConfig::from_raw(raw, "w").unwrap()).unwrap();
    let msg = Message::new("team", "g", Default::default(), vec![], "http://w");
    hook.notify(&msg).await.unwrap();
    let request = receiver.received().into_iter().next().expect("a request");
    assert_eq!(request.path, "/hook");
    verify_signature(&request, "k3y-for-hooks");
    // Without a secret, neither header is sent.
    let raw = RawWebhook {
        url: Some(format!("{}/plain", receiver.url)),
        ..RawWebhook::default()
    };
    let hook = Webhook::new(WebhookConfig::from_raw(raw, "w").unwrap()).unwrap();
    hook.notify(&msg).await.unwrap();
    let plain = receiver
        .received()
        .into_iter()
        .find(|r| r.path == "/plain")
        .unwrap();
    assert!(!plain.headers.contains_key("x-rabbitmq-watch-signature"));
    assert!(!plain.headers.contains_key("x-rabbitmq-watch-timestamp"));
}

/// The `alerting:` section of every scenario: one rule on `queue` (ready > 5, fires at once).
fn rule_yaml(queue: &str) -> String {
    format!(
        r#"
alerting:
  default_rules: false
  rules:
    - alert: LiveBacklog
      kind: queue
      select: {{queue: "{queue}"}}
      expr: messages_ready > 5
      severity: critical
      labels: {{team: core}}
      annotations:
        summary: "{{{{ $labels.queue }}}} has {{{{ $value }}}} ready messages"
"#
    )
}

/// A configuration with [`rule_yaml`] and one webhook receiver at `url` (signed with
/// `s3cr3t-key`, header `X-Team: core`); `extra_notify` (YAML as at the top of the block) is
/// added under `notify:`.
fn config(queue: &str, url: &str, extra_notify: &str) -> String {
    let notify = Notify::webhook(url)
        .setting("external_url: http://watch.example:9419")
        .setting(extra_notify)
        .webhook_option("hmac_secret: s3cr3t-key")
        .webhook_option("headers: {X-Team: core}");
    format!("{}{notify}", rule_yaml(queue))
}

/// The labels of the webhook receiver `team`'s series with `reason`.
fn team_webhook(reason: &str) -> [(&str, &str); 3] {
    [
        ("receiver", "team"),
        ("integration", "webhook"),
        ("reason", reason),
    ]
}

fn payload(r: &Received) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

/// Payloads delivered (answered 200) with `status`.
fn delivered(receiver: &HttpReceiver, status: &str) -> Vec<serde_json::Value> {
    receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .map(payload)
        .filter(|p| p["status"] == status)
        .collect()
}

async fn drain(node: &RabbitNode, queue: &str) {
    let (_conn, ch) = amqp(node, "/").await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved_reach_a_webhook_as_alertmanager_payloads() {
    let node = RabbitNode::shared();
    let queue = "alerts-webhook";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar =
        Sidecar::start_with_config(&node.mgmt_url, &config(queue, &receiver.url, ""), &[]);
    publish(&ch, queue, 8).await;

    let firing = eventually(WAIT, "a firing notification", || {
        delivered(&receiver, "firing").into_iter().next()
    });
    let request = receiver
        .received()
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap();
    assert_eq!(request.path, "/hook");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-team"], "core");
    verify_signature(&request, "s3cr3t-key");
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["receiver"], "team");
    assert_eq!(firing["externalURL"], "http://watch.example:9419");
    assert_eq!(firing["truncatedAlerts"], 0);
    assert_eq!(
        firing["groupLabels"],
        serde_json::json!({"alertname": "LiveBacklog", "queue": queue})
    );
    assert_eq!(
        firing["groupKey"],
        format!("0:{{alertname=\"LiveBacklog\",queue=\"{queue}\"}}")
    );
    assert_eq!(firing["commonLabels"]["severity"], "critical");
    assert_eq!(firing["commonLabels"]["team"], "core");
    let alerts = firing["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["labels"],
        serde_json::json!({
            "alertname": "LiveBacklog", "severity": "critical", "team": "core",
            "vhost": "/", "queue": queue,
        })
    );
    assert_eq!(
        alert["annotations"]["summary"],
        format!("{queue} has 8 ready messages")
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let starts_at = alert["startsAt"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339_weak(starts_at).is_ok(),
        "{starts_at}"
    );
    assert_eq!(
        alert["generatorURL"],
        "http://watch.example:9419/api/v1/alerts"
    );
    let fingerprint = alert["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 16);

    // The alert API agrees.
    let (_, body) = sidecar.get("/api/v1/alerts");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed = &api["data"]["alerts"][0];
    assert_eq!(listed["state"], "firing");
    assert_eq!(listed["fingerprint"], fingerprint);
    assert_eq!(listed["value"], 8.0);
    let m = sidecar.metrics();
    assert_eq!(
        m.get(
            "rabbitmq_watch_alerts",
            &[("alertname", "LiveBacklog"), ("state", "firing")]
        ),
        Some(1.0)
    );

    // Consume them all: resolved.
    drain(node, queue).await;
    let resolved = eventually(WAIT, "a resolved notification", || {
        delivered(&receiver, "resolved").into_iter().next()
    });
    let alert = &resolved["alerts"][0];
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["fingerprint"], fingerprint);
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(delivered(&receiver, "firing").len(), 1, "no repeat");
    // Counters are read at each encoding: up to one poll interval behind the receiver.
    eventually(WAIT, "two notifications counted", || {
        let m = sidecar.metrics();
        let labels = [("receiver", "team"), ("integration", "webhook")];
        (m.get("rabbitmq_watch_notifications_total", &labels) == Some(2.0)).then_some(())
    });
    sidecar.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_then_200_gets_the_notification_once() {
    let node = RabbitNode::shared();
    let queue = "alerts-retry";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let receiver = HttpReceiver::start(None, vec![500, 503]);
    let sidecar =
        Sidecar::start_with_config(&node.mgmt_url, &config(queue, &receiver.url, ""), &[]);
    publish(&ch, queue, 7).await;

    eventually(WAIT, "delivered after two 5xx", || {
        (delivered(&receiver, "firing").len() == 1).then_some(())
    });
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 503, 200]);
    let bodies: Vec<String> = receiver.received().iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "the same message each time"
    );
    // Nothing more comes (no duplicate, no repeat within repeat_interval).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(receiver.received().len(), 3);
    let m = sidecar.metrics();
    let labels = [("receiver", "team"), ("integration", "webhook")];
    assert_eq!(
        m.get("rabbitmq_watch_notifications_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "rabbitmq_watch_notifications_failed_total",
            &team_webhook("http_5xx")
        ),
        Some(0.0),
        "retried, not given up"
    );
    assert_eq!(
        m.get(
            "rabbitmq_watch_notification_attempts_failed_total",
            &team_webhook("http_5xx")
        ),
        Some(2.0),
        "each failed attempt counted as it failed"
    );
    assert_eq!(
        m.get("rabbitmq_watch_notifications_queued", &labels),
        Some(0.0)
    );
    assert_eq!(
        m.get("rabbitmq_watch_notifications_in_flight", &labels),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "rabbitmq_watch_notifications_dropped_total",
            &team_webhook("queue_full")
        ),
        Some(0.0)
    );
    let logs = sidecar.terminate();
    assert!(logs.contains("notification failed, retrying"), "{logs}");
    drain(node, queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_across_a_restart_gets_the_notification_once_after_recovery() {
    let node = RabbitNode::shared();
    let queue = "alerts-restart";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let state = temp_dir("state").join("state.json");
    let yaml = config(queue, &url, &format!("state_file: {}", state.display()));
    publish(&ch, queue, 9).await;

    // Nobody listens: deliveries fail and are retried.
    let first = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    eventually(WAIT, "a failed delivery attempt", || {
        first
            .logs()
            .contains("notification failed, retrying")
            .then_some(())
    });
    let logs = first.terminate();
    assert!(
        logs.contains("reason=\"connect\"") || logs.contains("reason=connect"),
        "{logs}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["pending"].as_array().unwrap().len(), 1, "{saved}");
    assert_eq!(saved["alerts"][0]["state"], "firing");

    // The receiver is back, then the sidecar: the saved notification is delivered once.
    let receiver = HttpReceiver::start(Some(port), vec![]);
    let second = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    eventually(WAIT, "the saved notification", || {
        (delivered(&receiver, "firing").len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        receiver.received().len(),
        1,
        "announced once: {:?}",
        receiver.received()
    );
    let logs = second.terminate();
    assert!(
        logs.contains("resending a notification left undelivered"),
        "{logs}"
    );

    // The backlog is consumed while no sidecar runs: the next one announces the resolution.
    drain(node, queue).await;
    let third = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    let resolved = eventually(WAIT, "resolved after the restart", || {
        delivered(&receiver, "resolved").into_iter().next()
    });
    assert_eq!(resolved["alerts"][0]["labels"]["queue"], queue);
    assert_eq!(
        delivered(&receiver, "firing").len(),
        1,
        "firing not re-announced"
    );
    third.terminate();
}

#[test]
fn silences_are_created_listed_and_expired_through_the_api() {
    let node = RabbitNode::shared();
    let receiver = HttpReceiver::start(None, vec![]);
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        &config("alerts-none", &receiver.url, ""),
        // Write endpoints are off by default (tests/web.rs checks the 403).
        &[("RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API", "true")],
    );
    let post = |body: &str| post_silence(&sidecar, body);
    let (code, body) = post(
        r#"{"matchers":["queue=\"orders\""],"duration":"2h","createdBy":"ops","comment":"maintenance"}"#,
    );
    assert_eq!(code, "200", "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]["silenceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, body) = post(r#"{"matchers":["queue"],"duration":"2h"}"#);
    assert_eq!(code, "400");
    assert!(body.contains("has no =, !=, =~ or !~"), "{body}");
    let list = |sidecar: &Sidecar| {
        let (_, body) = sidecar.get("/api/v1/silences");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"].clone()
    };
    let silences = list(&sidecar);
    assert_eq!(silences[0]["id"], id);
    assert_eq!(silences[0]["status"]["state"], "active");
    assert_eq!(silences[0]["matchers"][0], "queue=\"orders\"");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!("{}/api/v1/silences/{id}", sidecar.base))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    assert_eq!(list(&sidecar)[0]["status"]["state"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved_reach_a_real_smtp_server_and_a_real_alertmanager() {
    let node = RabbitNode::shared();
    let queue = "alerts-email-am";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let smtp = SmtpSink::start();
    let am = Alertmanager::start().await;
    let yaml = format!(
        r#"{rules}notify:
  external_url: http://watch.example:9419
  alertmanagers:
    - url: {am}
  alertmanager_resend_delay: 1s
  route:
    receiver: mail
    group_by: [alertname, queue]
    group_wait: 1s
    group_interval: 1s
  receivers:
    - name: mail
      email_configs:
        - to: [oncall@example.com, ops@example.com]
          from: rabbitmq-watch@example.com
          smarthost: {smarthost}
          tls: none
          send_resolved: true
"#,
        rules = rule_yaml(queue),
        am = am.url,
        smarthost = smtp.smarthost(),
    );
    let sidecar = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    publish(&ch, queue, 8).await;

    let sent = |sidecar: &Sidecar| {
        sidecar
            .metrics()
            .get(
                "rabbitmq_watch_notifications_total",
                &[("receiver", "mail"), ("integration", "email")],
            )
            .unwrap_or(0.0)
    };
    eventually(WAIT, "the firing email", || {
        (sent(&sidecar) >= 1.0).then_some(())
    });
    let [firing] = <[support::Parsed; 1]>::try_from(smtp.delivered(1)).unwrap();
    assert_eq!(
        firing.subject,
        format!("[FIRING:1] LiveBacklog {queue} (severity=critical team=core vhost=/)")
    );
    assert_eq!(firing.from, "rabbitmq-watch@example.com");
    assert_eq!(firing.to, ["oncall@example.com", "ops@example.com"]);
    let text = firing.part("text/plain");
    assert!(
        text.contains(&format!("{queue} has 8 ready messages")),
        "{text}"
    );
    assert!(firing.part("text/html").contains(queue));

    let active = am
        .wait_for("LiveBacklog", "active in Alertmanager", |a| {
            a.is_some_and(|a| a["status"]["state"] == "active")
        })
        .await
        .unwrap();
    assert_eq!(active["labels"]["queue"], queue);
    assert_eq!(active["labels"]["severity"], "critical");
    assert_eq!(
        active["annotations"]["summary"],
        format!("{queue} has 8 ready messages")
    );
    assert_eq!(
        active["generatorURL"],
        "http://watch.example:9419/api/v1/alerts"
    );

    // Consume the messages: resolved by email, and gone from Alertmanager's active alerts.
    drain(node, queue).await;
    eventually(WAIT, "the resolved email", || {
        (sent(&sidecar) >= 2.0).then_some(())
    });
    let mails = smtp.delivered(2);
    assert!(
        mails[1].subject.starts_with("[RESOLVED] LiveBacklog"),
        "{}",
        mails[1].subject
    );
    am.wait_for("LiveBacklog", "resolved in Alertmanager", |a| a.is_none())
        .await;
    let m = sidecar.metrics();
    assert!(
        m.get(
            "rabbitmq_watch_notifications_total",
            &[
                ("receiver", "alertmanager[0]"),
                ("integration", "alertmanager")
            ]
        )
        .unwrap()
            >= 2.0
    );
    sidecar.terminate();
}

/// `POST /api/v1/silences` with `body` through curl: (status code, body).
fn post_silence(sidecar: &Sidecar, body: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ])
        .arg(format!("{}/api/v1/silences", sidecar.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl output");
    (code.to_owned(), body.to_owned())
}

/// Issue #14 (1) and (2): a silence of 10000 years used to be accepted and kill the
/// dispatcher at the next save of the state file (no notification ever again); one whose
/// matchers all match the empty string used to mute every alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_or_mute_everything_silences_are_refused_and_notifications_go_on() {
    let node = RabbitNode::shared();
    let queue = "alerts-absurd-silence";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let state = temp_dir("absurd").join("state.json");
    let yaml = config(
        queue,
        &receiver.url,
        &format!("state_file: {}", state.display()),
    );
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        &yaml,
        &[("RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API", "true")],
    );
    let (code, body) = post_silence(
        &sidecar,
        r#"{"matchers":["alertname=\"LiveBacklog\""],"duration":"10000y"}"#,
    );
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("duration"), "{body}");
    let (code, body) = post_silence(&sidecar, r#"{"matchers":["nosuch=\"\""],"duration":"1h"}"#);
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("empty string"), "{body}");
    let (status, list) = sidecar.get("/api/v1/silences");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list).unwrap()["data"],
        serde_json::json!([])
    );
    // Alerting still works, and the state file is saved.
    publish(&ch, queue, 7).await;
    eventually(WAIT, "the firing notification", || {
        (delivered(&receiver, "firing").len() == 1).then_some(())
    });
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_watch_state_file_write_failures_total", &[]),
        Some(0.0)
    );
    let logs = sidecar.terminate();
    assert!(!logs.contains("panicked"), "{logs}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    drain(node, queue).await;
}

/// Issue #14 (3): the notification log is written only after a delivery succeeds, so a
/// receiver answering 400 (not retried) gets the group again at the next `group_interval`,
/// not after `repeat_interval` (1 h here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_400_then_200_gets_the_group_again_at_the_next_group_interval() {
    let node = RabbitNode::shared();
    let queue = "alerts-400";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let receiver = HttpReceiver::start(None, vec![400]);
    let yaml = config(queue, &receiver.url, "").replace("group_interval: 1s", "group_interval: 4s");
    let sidecar = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    publish(&ch, queue, 7).await;
    eventually(WAIT, "the first attempt", || {
        (!receiver.received().is_empty()).then_some(())
    });
    let first = std::time::Instant::now();
    let mut second = None;
    while first.elapsed() < Duration::from_secs(12) {
        if delivered(&receiver, "firing").len() == 1 {
            second = Some(first.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = second.unwrap_or_else(|| {
        panic!(
            "not sent again within 12 s (group_interval 4 s): {:?}",
            receiver.received()
        )
    });
    assert!(
        second >= Duration::from_secs(2) && second <= Duration::from_secs(7),
        "sent again after {second:?}, expected about group_interval (4 s)"
    );
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200]);
    // Delivered: nothing more within repeat_interval.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(receiver.received().len(), 2, "{:?}", receiver.received());
    let m = sidecar.metrics();
    assert_eq!(
        m.get(
            "rabbitmq_watch_notifications_failed_total",
            &team_webhook("http_4xx")
        ),
        Some(1.0)
    );
    let logs = sidecar.terminate();
    assert!(logs.contains("notification given up"), "{logs}");
    drain(node, queue).await;
}

/// Issue #14 (4): a corrupt or truncated state file used to stop start-up (a crash loop
/// under a supervisor, no alerting at all); it is moved aside and alerting starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_moved_aside_and_alerting_starts() {
    let node = RabbitNode::shared();
    let queue = "alerts-corrupt-state";
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, queue).await;
    let receiver = HttpReceiver::start(None, vec![]);
    let dir = temp_dir("corrupt-state");
    let state = dir.join("state.json");
    std::fs::write(&state, r#"{"version":1,"alerts":[{"fingerp"#).unwrap();
    let yaml = config(
        queue,
        &receiver.url,
        &format!("state_file: {}", state.display()),
    );
    let sidecar = Sidecar::start_with_config(&node.mgmt_url, &yaml, &[]);
    publish(&ch, queue, 7).await;
    eventually(WAIT, "the firing notification", || {
        (delivered(&receiver, "firing").len() == 1).then_some(())
    });
    let aside: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let m = sidecar.metrics();
    assert_eq!(
        m.get("rabbitmq_watch_state_file_load_failures_total", &[]),
        Some(1.0)
    );
    let logs = sidecar.terminate();
    assert!(logs.contains("moved aside"), "{logs}");
    // The new state file is whole again.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["alerts"][0]["state"], "firing");
    drain(node, queue).await;
}

/// Issue #13: `GET /api/v1/alerts` filtered as Alertmanager's API v2 filters, on the real
/// endpoint: three queues over the threshold, one inhibited by another's alert (an inhibit
/// rule) and one silenced (the silences API); `filter=` label matchers and the `active`,
/// `silenced` and `inhibited` booleans pick the alerts Alertmanager would list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_filtered_by_matchers_and_by_silenced_and_inhibited() {
    let node = RabbitNode::shared();
    let (_conn, ch) = amqp(node, "/").await;
    let queues = ["alerts-filter-a", "alerts-filter-b", "alerts-filter-c"];
    for q in queues {
        declare(&ch, q).await;
        publish(&ch, q, 10).await;
    }
    let receiver = HttpReceiver::start(None, vec![]);
    let inhibit = r#"inhibit_rules:
  - source_matchers: ['queue="alerts-filter-a"']
    target_matchers: ['queue="alerts-filter-b"']
    equal: [alertname]
"#;
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        &config("alerts-filter-.*", &receiver.url, inhibit),
        &[("RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API", "true")],
    );
    let (code, body) = post_silence(
        &sidecar,
        r#"{"matchers":["queue=\"alerts-filter-c\""],"duration":"1h","createdBy":"test","comment":"filters"}"#,
    );
    assert_eq!(code, "200", "{body}");
    // The queues listed by a query, sorted.
    let listed = |query: &str| -> (u16, Vec<String>) {
        let (code, body) = sidecar.get(&format!("/api/v1/alerts{query}"));
        if code != 200 {
            return (code, vec![body]);
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let mut names: Vec<String> = v["data"]["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["labels"]["queue"].as_str().unwrap_or("").to_owned())
            .collect();
        names.sort();
        (code, names)
    };
    eventually(WAIT, "three firing alerts", || {
        (listed("?state=firing").1 == queues).then_some(())
    });
    for (query, expected) in [
        ("", &queues[..]),
        (
            "?filter=queue%3D~%22alerts-filter-%5Bab%5D%22",
            &queues[..2],
        ),
        (
            "?filter=alertname%3D%22LiveBacklog%22&filter=queue!%3D%22alerts-filter-a%22",
            &queues[1..],
        ),
        ("?active=false", &queues[1..]),
        ("?silenced=false", &queues[..2]),
        ("?inhibited=false", &["alerts-filter-a", "alerts-filter-c"]),
        ("?silenced=false&inhibited=false", &queues[..1]),
        ("?active=false&inhibited=false", &queues[2..]),
        (
            "?filter=team%3D%22core%22&active=false&silenced=false",
            &queues[1..2],
        ),
        ("?filter=queue%3D%22none%22", &[]),
    ] {
        let (code, names) = listed(query);
        assert_eq!(code, 200, "{query}: {names:?}");
        assert_eq!(names, expected, "{query}");
    }
    for (query, says) in [
        ("?active=yes", "invalid active"),
        ("?filter=queue", "invalid filter"),
        ("?receiver=team", "unknown parameter"),
    ] {
        let (code, body) = listed(query);
        assert_eq!(code, 400, "{query}: {body:?}");
        assert!(body[0].contains(says), "{query}: {body:?}");
    }
    sidecar.terminate();
    for q in queues {
        drain(node, q).await;
    }
}
