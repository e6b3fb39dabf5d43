//! The email integration against a real SMTP server: Debian's python3-aiosmtpd
//! (`scripts/install-deps.sh smtp` installs it), started per test on a free 127.0.0.1 port.
//! Delivered emails are read back from the server's maildir and parsed with Python's own
//! `email` package, so the MIME structure is checked by a real parser.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rabbitmq_watch::notify::email::{Email, EmailConfig, RawEmail};
use rabbitmq_watch::notify::{Message, MessageAlert, NO_END};

const PYTHON: &str = "/usr/bin/python3";
const INSTALL_HINT: &str =
    "`scripts/install-deps.sh smtp` installs it (Debian package python3-aiosmtpd)";

/// An aiosmtpd child process writing what it receives to a maildir; killed on drop.
struct SmtpSink {
    child: Child,
    port: u16,
    /// Temporary directory holding the maildir and the server's log.
    root: PathBuf,
}

/// A server with aiosmtpd's stock command line: accepts everything, stores it in a maildir.
const CLI: &[&str] = &["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Mailbox"];

/// A server that requires AUTH (PLAIN/LOGIN, no TLS: loopback only) as `alerts` /
/// `correct horse`, answers 451 to recipients `busy@…` and 550 to `nobody@…`, and stores
/// the rest in the maildir. Arguments: port, maildir.
const AUTH_SCRIPT: &str = r#"
import sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"alerts", b"correct horse")
    return AuthResult(success=ok, handled=False)

controller = Controller(Handler(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]),
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=False)
controller.start()
threading.Event().wait()
"#;

impl SmtpSink {
    /// aiosmtpd's stock server (`python3 -m aiosmtpd ... -c aiosmtpd.handlers.Mailbox`).
    fn start() -> Self {
        Self::spawn(|port, maildir| {
            let mut args: Vec<String> = CLI.iter().map(|s| (*s).to_owned()).collect();
            args.extend(["-l".to_owned(), format!("127.0.0.1:{port}")]);
            args.push(maildir.to_string_lossy().into_owned());
            args
        })
    }

    /// The server of [`AUTH_SCRIPT`].
    fn start_with_auth() -> Self {
        Self::spawn(|port, maildir| {
            vec![
                "-c".to_owned(),
                AUTH_SCRIPT.to_owned(),
                port.to_string(),
                maildir.to_string_lossy().into_owned(),
            ]
        })
    }

    fn spawn(args: impl Fn(u16, &Path) -> Vec<String>) -> Self {
        require_aiosmtpd();
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "rabbitmq-watch-smtp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let maildir = root.join("maildir");
        let log = std::fs::File::create(root.join("server.log")).unwrap();
        let port = free_port();
        let child = Command::new(PYTHON)
            .args(args(port, &maildir))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e}; {INSTALL_HINT}"));
        let mut sink = SmtpSink { child, port, root };
        sink.wait_until_listening();
        sink
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "aiosmtpd exited with {status} before listening: {}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {addr} within 15s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    fn smarthost(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `n` delivered emails (waiting up to 5 s for them), parsed, oldest first.
    fn delivered(&self, n: usize) -> Vec<Parsed> {
        let new = self.root.join("maildir/new");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| {
                            let modified = e
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH);
                            (modified, e.path())
                        })
                        .collect()
                })
                .unwrap_or_default();
            if files.len() >= n {
                files.sort();
                return files.iter().map(|(_, p)| parse(p)).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} emails in {}: {}",
                files.len(),
                new.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Fails (never skips) when the SMTP server is not installed.
fn require_aiosmtpd() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: these tests need Python 3 and aiosmtpd; {INSTALL_HINT}"
    );
    let found = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the Python module aiosmtpd is missing for {PYTHON}; {INSTALL_HINT}"
    );
}

/// A port nothing listens on (bound then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A delivered email as Python's `email` package reads it.
#[derive(Debug, serde::Deserialize)]
struct Parsed {
    subject: String,
    from: String,
    /// Addresses of the `To` header.
    to: Vec<String>,
    /// Envelope recipients, as the server recorded them (`X-RcptTo`).
    rcpt_to: String,
    /// The client's address as the server saw it (`X-Peer`): one per connection.
    peer: String,
    content_type: String,
    /// (content type, decoded text) of each leaf part.
    parts: Vec<(String, String)>,
}

impl Parsed {
    fn part(&self, content_type: &str) -> &str {
        self.parts
            .iter()
            .find(|(t, _)| t == content_type)
            .map(|(_, body)| body.as_str())
            .unwrap_or_else(|| panic!("no {content_type} part in {:?}", self.parts))
    }
}

const PARSE_SCRIPT: &str = r#"
import email, email.policy, json, sys
with open(sys.argv[1], "rb") as f:
    m = email.message_from_binary_file(f, policy=email.policy.default)
print(json.dumps({
    "subject": str(m["Subject"]),
    "from": str(m["From"]),
    "to": [a.addr_spec for a in m["To"].addresses],
    "rcpt_to": str(m.get("X-RcptTo", "")),
    "peer": str(m.get("X-Peer", "")),
    "content_type": m.get_content_type(),
    "parts": [[p.get_content_type(), p.get_content()] for p in m.walk() if not p.is_multipart()],
}))
"#;

fn parse(path: &Path) -> Parsed {
    let out = Command::new(PYTHON)
        .args(["-c", PARSE_SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot parse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

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
        ]),
        annotations: labels(&[
            (
                "summary",
                &format!("Queue {queue} has {ready} ready messages"),
            ),
            (
                "description",
                &format!("Consumers of <b>{queue}</b> are not keeping up & the backlog grows."),
            ),
        ]),
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
