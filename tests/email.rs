//! The email integration against a real SMTP server: Debian's python3-aiosmtpd
//! (`scripts/install-deps.sh smtp` installs it), started per test on a free 127.0.0.1 port.
//! Delivered emails are read back from the server's maildir and parsed with Python's own
//! `email` package, so the MIME structure is checked by a real parser.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::net::TcpListener;

use support::{Parsed, SmtpSink, free_port};

use rabbitmq_watch::notify::email::{Email, EmailConfig, RawEmail};
use rabbitmq_watch::notify::{Message, MessageAlert, NO_END};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn alert(status: &str, queue: &str, ready: u32) -> MessageAlert {
    MessageAlert {
        status: status.to_owned(),
        labels: labels(&[
            ("alertname", "RabbitmqQueueMessagesReady"),
            ("severity", "warning"),
            ("vhost", "/"),
            ("queue", queue),
        ])
        .into(),
        annotations: labels(&[
            (
                "summary",
                &format!("Queue {queue} has {ready} ready messages"),
            ),
            (
                "description",
                &format!("Consumers of <b>{queue}</b> are not keeping up & the backlog grows."),
            ),
        ])
        .into(),
        starts_at: "2026-03-01T10:00:00.000Z".to_owned(),
        ends_at: if status == "resolved" {
            "2026-03-01T10:20:00.000Z".to_owned()
        } else {
            NO_END.to_owned()
        },
        generator_url: "http://watch.example:9419/api/v1/alerts".to_owned(),
        fingerprint: "0123456789abcdef".to_owned(),
    }
}

fn message(alerts: Vec<MessageAlert>) -> Message {
    Message::new(
        "team-email",
        "{}:{alertname=\"RabbitmqQueueMessagesReady\"}",
        labels(&[("alertname", "RabbitmqQueueMessagesReady")]),
        alerts,
        "http://watch.example:9419",
    )
}

fn config(smarthost: &str, extra: impl FnOnce(&mut RawEmail)) -> EmailConfig {
    rabbitmq_watch::install_crypto_provider();
    let mut raw = RawEmail {
        to: vec![
            "ops@example.com".to_owned(),
            "On call <oncall@example.com>".to_owned(),
        ],
        from: Some("RabbitMQ watch <rabbitmq-watch@example.com>".to_owned()),
        smarthost: Some(smarthost.to_owned()),
        hello: Some("watch.example".to_owned()),
        tls: Some("none".to_owned()),
        timeout: Some("5s".to_owned()),
        ..RawEmail::default()
    };
    extra(&mut raw);
    EmailConfig::from_raw(raw, "notify.receivers[0].email_configs[0]").unwrap()
}

// Multi-threaded like the sidecar: lettre returns a connection to its pool from a spawned task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_alerts_arrive_as_one_multipart_email() {
    let sink = SmtpSink::start();
    let email = Email::new(config(&sink.smarthost(), |_| {})).unwrap();
    let msg = message(vec![
        alert("firing", "orders", 1500),
        alert("firing", "invoices", 2300),
    ]);
    email.notify(&msg).await.unwrap();

    let [got] = <[Parsed; 1]>::try_from(sink.delivered(1)).unwrap();
    assert_eq!(
        got.subject,
        "[FIRING:2] RabbitmqQueueMessagesReady (severity=warning vhost=/)"
    );
    assert_eq!(got.from, "RabbitMQ watch <rabbitmq-watch@example.com>");
    assert_eq!(got.to, ["ops@example.com", "oncall@example.com"]);
    assert_eq!(got.rcpt_to, "ops@example.com, oncall@example.com");
    assert_eq!(got.content_type, "multipart/alternative");

    let text = got.part("text/plain");
    for needle in [
        "Firing alerts (2)",
        "Summary: Queue orders has 1500 ready messages",
        "Summary: Queue invoices has 2300 ready messages",
        "Description: Consumers of <b>orders</b> are not keeping up & the backlog grows.",
        "alertname = RabbitmqQueueMessagesReady",
        "severity = warning",
        "vhost = /",
        "queue = orders",
        "queue = invoices",
        "Started: 2026-03-01T10:00:00.000Z",
        "Source: http://watch.example:9419/api/v1/alerts",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} not in text part:\n{text}"
        );
    }

    let html = got.part("text/html");
    assert!(
        html.contains(
            "Consumers of &lt;b&gt;orders&lt;/b&gt; are not keeping up &amp; the backlog grows."
        ),
        "escaped description not in HTML part:\n{html}"
    );
    assert!(!html.contains("<b>orders</b>"), "{html}");
    assert!(html.contains("Queue invoices has 2300 ready messages"));
    assert!(html.contains("<a href=\"http://watch.example:9419/api/v1/alerts\">"));

    // The pooled connection is reused for the next notification.
    email.notify(&msg).await.unwrap();
    let both = sink.delivered(2);
    assert_eq!(
        both[0].peer, both[1].peer,
        "not sent over the same connection"
    );
}

#[tokio::test]
async fn resolved_alerts_have_a_resolved_subject() {
    let sink = SmtpSink::start();
    let email = Email::new(config(&sink.smarthost(), |r| {
        r.send_resolved = Some("true".to_owned());
    }))
    .unwrap();
    assert!(email.config.send_resolved);
    email
        .notify(&message(vec![alert("resolved", "orders", 0)]))
        .await
        .unwrap();
    let got = sink.delivered(1).remove(0);
    assert_eq!(
        got.subject,
        "[RESOLVED] RabbitmqQueueMessagesReady (queue=orders severity=warning vhost=/)"
    );
    let text = got.part("text/plain");
    assert!(text.contains("Resolved alerts (1)"), "{text}");
    assert!(text.contains("Ended: 2026-03-01T10:20:00.000Z"), "{text}");
}

#[tokio::test]
async fn nothing_listening_is_a_retryable_connect_error() {
    let smarthost = format!("127.0.0.1:{}", free_port());
    let email = Email::new(config(&smarthost, |_| {})).unwrap();
    let started = Instant::now();
    let e = email
        .notify(&message(vec![alert("firing", "orders", 1500)]))
        .await
        .unwrap_err();
    assert!(e.retryable, "{e:?}");
    assert_eq!(e.reason, "connect", "{e:?}");
    assert!(e.message.contains(&smarthost), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_retryable_timeout() {
    // The kernel accepts connections into the backlog; nobody ever sends the greeting.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let smarthost = silent.local_addr().unwrap().to_string();
    let email = Email::new(config(&smarthost, |r| {
        r.timeout = Some("300ms".to_owned());
    }))
    .unwrap();
    let started = Instant::now();
    let e = email
        .notify(&message(vec![alert("firing", "orders", 1500)]))
        .await
        .unwrap_err();
    assert!(e.retryable, "{e:?}");
    assert_eq!(e.reason, "timeout", "{e:?}");
    assert!(e.message.contains(&smarthost), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
}

#[tokio::test]
async fn auth_and_smtp_replies_are_classified() {
    let sink = SmtpSink::start_with_auth();
    let msg = message(vec![alert("firing", "orders", 1500)]);
    let with = |user: &str, password: &str, to: &[&str]| {
        let (user, password) = (user.to_owned(), password.to_owned());
        let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
        config(&sink.smarthost(), move |r| {
            r.auth_username = Some(user);
            r.auth_password = Some(password);
            r.to = to;
        })
    };

    // Right credentials: delivered.
    Email::new(with("alerts", "correct horse", &["ops@example.com"]))
        .unwrap()
        .notify(&msg)
        .await
        .unwrap();
    assert_eq!(sink.delivered(1)[0].to, ["ops@example.com"]);

    // Wrong password: 535, permanent, and the password is not in the message.
    let e = Email::new(with("alerts", "wrong staple", &["ops@example.com"]))
        .unwrap()
        .notify(&msg)
        .await
        .unwrap_err();
    assert!(!e.retryable, "{e:?}");
    assert_eq!(e.reason, "smtp", "{e:?}");
    assert!(e.message.contains("535"), "{e:?}");
    assert!(!e.message.contains("wrong staple"), "{e:?}");

    // No credentials where the server requires them: 530, permanent.
    let e = Email::new(config(&sink.smarthost(), |_| {}))
        .unwrap()
        .notify(&msg)
        .await
        .unwrap_err();
    assert_eq!((e.retryable, e.reason), (false, "smtp"), "{e:?}");

    // 4xx for a recipient: retryable.
    let e = Email::new(with("alerts", "correct horse", &["busy@example.com"]))
        .unwrap()
        .notify(&msg)
        .await
        .unwrap_err();
    assert_eq!((e.retryable, e.reason), (true, "smtp"), "{e:?}");
    assert!(e.message.contains("451"), "{e:?}");

    // 5xx for a recipient: permanent.
    let e = Email::new(with("alerts", "correct horse", &["nobody@example.com"]))
        .unwrap()
        .notify(&msg)
        .await
        .unwrap_err();
    assert_eq!((e.retryable, e.reason), (false, "smtp"), "{e:?}");
    assert!(e.message.contains("550"), "{e:?}");
}
