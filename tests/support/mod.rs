//! Test harness shared by the integration tests: a throwaway RabbitMQ node (through
//! `scripts/rabbitmq-node.sh`), the real `rabbitmq-watch` binary as a child process, an
//! exposition parser, and polling helpers.
//!
//! Nothing here skips: a missing `rabbitmq-server` or `prometheus` fails the test with the
//! command that installs it.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Path of the node script.
fn node_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rabbitmq-node.sh")
}

/// A throwaway RabbitMQ node with the management plugin, started by `scripts/rabbitmq-node.sh`
/// under a directory of its own. A watchdog stops it when the test process exits, and `Drop`
/// stops it earlier for nodes a test owns.
#[derive(Debug)]
pub struct RabbitNode {
    /// The node's directory (data, logs, cookie, `node.env`).
    pub dir: PathBuf,
    /// Erlang node name, e.g. `rabbitmq-watch-123-456@localhost`.
    pub name: String,
    /// Management API base URL, e.g. `http://127.0.0.1:40306`.
    pub mgmt_url: String,
    /// AMQP URL with the default vhost, e.g. `amqp://guest:guest@127.0.0.1:20976/%2f`.
    pub amqp_url: String,
}

impl RabbitNode {
    /// Starts a node tagged `tag` (part of its directory name). Panics with the script's
    /// output when the node does not come up.
    pub fn start(tag: &str) -> RabbitNode {
        let dir =
            std::env::temp_dir().join(format!("rabbitmq-watch-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("bash")
            .arg(node_script())
            .arg("start")
            .arg(&dir)
            .arg("--watch-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/rabbitmq-node.sh");
        assert!(
            out.status.success(),
            "starting a RabbitMQ node failed (is Debian's rabbitmq-server installed? scripts/test.sh installs it):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = parse_env(&String::from_utf8_lossy(&out.stdout));
        RabbitNode {
            dir,
            name: env["NODE_NAME"].clone(),
            mgmt_url: env["MGMT_URL"].clone(),
            amqp_url: env["AMQP_URL"].clone(),
        }
    }

    /// The node shared by every test of this test binary, started on first use.
    pub fn shared() -> &'static RabbitNode {
        static NODE: OnceLock<RabbitNode> = OnceLock::new();
        NODE.get_or_init(|| RabbitNode::start("shared"))
    }

    fn script(&self, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(node_script())
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .output()
            .expect("run scripts/rabbitmq-node.sh")
    }

    /// Runs `rabbitmqctl ARGS` against this node; panics when it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut all = vec!["ctl"];
        all.extend_from_slice(args);
        let out = self.script(&all);
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the node, keeping its data so that [`RabbitNode::restart`] brings it back.
    pub fn stop(&self) {
        let out = self.script(&["stop"]);
        assert!(out.status.success(), "stop failed: {out:?}");
    }

    /// Starts a stopped node again on the same ports and name.
    pub fn restart(&self) {
        let pid = std::process::id().to_string();
        let out = self.script(&["start", "--watch-pid", &pid]);
        assert!(
            out.status.success(),
            "restart failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        let _ = self.script(&["clean"]);
    }
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The `rabbitmq-watch` binary running as a child process, its stderr collected.
pub struct Sidecar {
    /// The child process.
    child: Child,
    /// `http://ADDR` the sidecar serves on.
    pub base: String,
    /// Every stderr line so far.
    logs: Arc<Mutex<Vec<String>>>,
    /// The thread collecting stderr; it ends when the process closes stderr.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Sidecar {
    /// Starts `rabbitmq-watch` against `url` with a 300 ms poll interval, a 2 s request timeout,
    /// on a free loopback port, with `env` added (`RABBITMQ_WATCH__…` variables). Waits until
    /// it serves.
    pub fn start(url: &str, env: &[(&str, &str)]) -> Sidecar {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rabbitmq-watch"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("RABBITMQ_WATCH__RABBITMQ__URL", url)
            .env("RABBITMQ_WATCH__POLL__INTERVAL", "300ms")
            .env("RABBITMQ_WATCH__RABBITMQ__TIMEOUT", "2s")
            .env("RABBITMQ_WATCH__LISTEN", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rabbitmq-watch");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = addr_tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("rabbitmq-watch did not start: {:?}", logs.lock().unwrap()));
        Sidecar {
            child,
            base: format!("http://{addr}"),
            logs,
            reader: Some(reader),
        }
    }

    /// Every log line so far, joined.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.base))
    }

    /// Scrapes `/metrics` and parses it.
    pub fn metrics(&self) -> Exposition {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        Exposition::parse(&body)
    }

    /// Sends SIGTERM and waits for the exit; panics unless it exits 0 within 10 s.
    pub fn terminate(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "rabbitmq-watch exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "rabbitmq-watch ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join(); // every line, up to the last, is collected
        }
        self.logs()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET with a 10 s timeout: (status, body). Panics on transport errors.
pub fn http_get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// One sample of an exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name as written (with `_total`, `_info` suffixes).
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// A parsed text exposition (OpenMetrics or Prometheus text), comments dropped.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// Every sample in order.
    pub samples: Vec<Sample>,
    /// The raw text.
    pub text: String,
}

impl Exposition {
    /// Parses sample lines: `name{k="v",...} value`, with `\\`, `\"` and `\n` escapes.
    pub fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name_end, labels, rest) = match line.find('{') {
                Some(i) => {
                    let (labels, used) = parse_labels(&line[i + 1..]);
                    (i, labels, &line[i + 1 + used..])
                }
                None => {
                    let i = line.find(' ').expect("sample without value");
                    (i, Vec::new(), &line[i..])
                }
            };
            let value = rest
                .split_whitespace()
                .next()
                .expect("value")
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
            samples.push(Sample {
                name: line[..name_end].to_owned(),
                labels,
                value,
            });
        }
        Exposition {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.find(name, labels);
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }

    /// Every sample named `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect()
    }
}

/// Parses `k="v",k2="v2"}` and returns the labels and the bytes consumed (through `}`).
fn parse_labels(s: &str) -> (Vec<(String, String)>, usize) {
    let b = s.as_bytes();
    let mut labels = Vec::new();
    let mut i = 0;
    loop {
        match b[i] {
            b'}' => return (labels, i + 1),
            b',' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let eq = i + s[i..].find('=').expect("label without =");
        let key = s[i..eq].to_owned();
        i = eq + 2; // past `="`
        let mut value = Vec::new();
        while b[i] != b'"' {
            if b[i] == b'\\' {
                i += 1;
                value.push(if b[i] == b'n' { b'\n' } else { b[i] });
            } else {
                value.push(b[i]);
            }
            i += 1;
        }
        i += 1;
        labels.push((key, String::from_utf8(value).expect("UTF-8 label value")));
    }
}

/// Calls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`
/// and the last value seen by `describe`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A fake management API on a raw TCP socket, for shapes and faults no broker here can produce.
/// `respond` maps a request target (path and query) to the raw HTTP response bytes; every
/// request target is recorded.
pub struct FakeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Request targets received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    /// Starts serving; one thread per connection, `Connection: close` semantics.
    pub fn start(respond: fn(&str) -> Vec<u8>) -> FakeApi {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(target.clone());
                    let _ = stream.write_all(&respond(&target));
                    let _ = stream.flush();
                });
            }
        });
        FakeApi { url, requests }
    }

    /// Request targets received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A complete HTTP/1.1 response with a JSON body.
pub fn json_response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A request received by [`HttpReceiver`].
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line target.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: String,
    /// The status answered.
    pub status: u16,
}

/// A real HTTP server that records every request and answers with scripted statuses (then 200).
pub struct HttpReceiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl HttpReceiver {
    /// Starts on a free port (or `port`), answering `statuses` in order, then 200.
    pub fn start(port: Option<u16>, statuses: Vec<u16>) -> HttpReceiver {
        use std::io::{Read, Write};
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses.into_iter()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut data = Vec::new();
                    let mut buf = [0u8; 8192];
                    let header_end = loop {
                        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .unwrap_or("")
                        .to_owned();
                    let headers: BTreeMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while data.len() < header_end + length {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&data[header_end..]).to_string();
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    log.lock().unwrap().push(Received {
                        path,
                        headers,
                        body,
                        status,
                    });
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                });
            }
        });
        HttpReceiver { url, received }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Sidecar {
    /// Starts `rabbitmq-watch --config FILE` with `yaml` written to a temporary file (kept
    /// until the process exits), plus the defaults and `env` of [`Sidecar::start`].
    pub fn start_with_config(url: &str, yaml: &str, env: &[(&str, &str)]) -> Sidecar {
        let dir = std::env::temp_dir().join(format!(
            "rabbitmq-watch-config-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let path = path.to_string_lossy().into_owned();
        let mut all: Vec<(&str, &str)> = vec![("RABBITMQ_WATCH_CONFIG", path.as_str())];
        all.extend_from_slice(env);
        Sidecar::start(url, &all)
    }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rabbitmq-watch-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// AMQP helpers (lapin), shared by the tests that publish and consume real messages.
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// An AMQP connection to `vhost` of `node` and a channel in confirm mode.
pub async fn amqp(node: &RabbitNode, vhost: &str) -> (Connection, Channel) {
    let url = node
        .amqp_url
        .replace("/%2f", &format!("/{}", vhost.replace('/', "%2f")));
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("AMQP connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Declares a durable classic queue.
pub async fn declare(ch: &Channel, queue: &str) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
}

/// Publishes `n` messages to `queue` through the default exchange, each confirmed.
pub async fn publish(ch: &Channel, queue: &str, n: usize) {
    publish_with(ch, queue, n, BasicProperties::default()).await;
}

/// Publishes `n` messages with `properties`, each confirmed.
pub async fn publish_with(ch: &Channel, queue: &str, n: usize, properties: BasicProperties) {
    for i in 0..n {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("message {i}").as_bytes(),
                properties.clone(),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm");
        assert!(confirm.is_ack(), "broker nacked message {i} to {queue}");
    }
}

// ---------------------------------------------------------------------------------------
// A real SMTP server for the email tests: Debian's python3-aiosmtpd
// (`scripts/install-deps.sh smtp`), with delivered emails parsed by Python's `email` package.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};

const PYTHON: &str = "/usr/bin/python3";
const INSTALL_HINT: &str =
    "`scripts/install-deps.sh smtp` installs it (Debian package python3-aiosmtpd)";

/// An aiosmtpd child process writing what it receives to a maildir; killed on drop.
pub struct SmtpSink {
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
    pub fn start() -> Self {
        Self::spawn(|port, maildir| {
            let mut args: Vec<String> = CLI.iter().map(|s| (*s).to_owned()).collect();
            args.extend(["-l".to_owned(), format!("127.0.0.1:{port}")]);
            args.push(maildir.to_string_lossy().into_owned());
            args
        })
    }

    /// The server of [`AUTH_SCRIPT`].
    pub fn start_with_auth() -> Self {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    pub fn smarthost(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `n` delivered emails (waiting up to 5 s for them), parsed, oldest first.
    pub fn delivered(&self, n: usize) -> Vec<Parsed> {
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
pub fn require_aiosmtpd() {
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

/// A delivered email as Python's `email` package reads it.
#[derive(Debug, serde::Deserialize)]
pub struct Parsed {
    pub subject: String,
    pub from: String,
    /// Addresses of the `To` header.
    pub to: Vec<String>,
    /// Envelope recipients, as the server recorded them (`X-RcptTo`).
    pub rcpt_to: String,
    /// The client's address as the server saw it (`X-Peer`): one per connection.
    pub peer: String,
    pub content_type: String,
    /// (content type, decoded text) of each leaf part.
    pub parts: Vec<(String, String)>,
}

impl Parsed {
    pub fn part(&self, content_type: &str) -> &str {
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

pub fn parse(path: &Path) -> Parsed {
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

// ---------------------------------------------------------------------------------------
// A real Alertmanager for the notification tests: Debian's prometheus-alertmanager
// (`scripts/install-deps.sh alertmanager`), queried back through its API.

use serde_json::Value;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// Numbers the Alertmanager directories of this test process.
static AM_SEQ: AtomicU32 = AtomicU32::new(0);

/// An HTTP client for the tests' own requests.
pub fn client() -> reqwest::Client {
    rabbitmq_watch::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A throwaway Alertmanager; killed and its directory removed on drop.
pub struct Alertmanager {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Alertmanager {
    pub async fn start() -> Alertmanager {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: `scripts/install-deps.sh alertmanager` installs Debian's \
             prometheus-alertmanager"
        );
        let dir = std::env::temp_dir().join(format!(
            "rabbitmq-watch-am-{}-{}",
            std::process::id(),
            AM_SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("am.yml"),
            "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("am.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {BINARY}: {e} (`scripts/install-deps.sh alertmanager` installs it)"
                )
            });
        let mut am = Alertmanager {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        am.wait_ready().await;
        am
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = format!("{}/-/ready", self.url);
        let client = client();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Alertmanager exited ({status}):\n{}", self.log());
            }
            if let Ok(r) = client.get(&ready).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready after 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("am.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts` with every kind of alert included (active, silenced, inhibited,
    /// unprocessed); Alertmanager leaves out alerts whose `endsAt` has passed.
    pub async fn alerts(&self) -> Vec<Value> {
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true",
            self.url
        );
        let response = client().get(url).send().await.expect("GET /api/v2/alerts");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.expect("alerts JSON")
    }

    /// The alert named `alertname` (label), if Alertmanager lists it.
    pub async fn alert(&self, alertname: &str) -> Option<Value> {
        self.alerts()
            .await
            .into_iter()
            .find(|a| a["labels"]["alertname"] == alertname)
    }

    /// Waits until `check` holds for the alert named `alertname` (or its absence), for at
    /// most 15 s; returns the last value seen.
    pub async fn wait_for(
        &self,
        alertname: &str,
        what: &str,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let alert = self.alert(alertname).await;
            if check(alert.as_ref()) {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "{alertname}: {what} not seen within 15 s; last: {alert:?}\nAlertmanager log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------
// YAML files of the repository (alert rules, their unit tests, the compose example) read as
// JSON values, through the YAML parser the sidecar's own configuration loader uses.

/// Parses YAML `text` into a JSON value; panics with `what` and the parser's error.
pub fn yaml(text: &str, what: &str) -> serde_json::Value {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .and_then(|c| c.try_deserialize::<serde_json::Value>())
        .unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
}

/// A file of the repository, by path relative to its root.
pub fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

// ---------------------------------------------------------------------------------------
// A real Prometheus (Debian's `prometheus`, `scripts/install-deps.sh prometheus`).

/// A Prometheus server scraping one target every second, optionally evaluating rule files;
/// killed and its directory removed on drop.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Scrapes `target` (`host:port`) as job `rabbitmq-watch` every second.
    pub fn start(target: &str) -> Prometheus {
        Prometheus::start_with_rules(target, &[])
    }

    /// As [`Prometheus::start`], also evaluating `rule_files` every second.
    pub fn start_with_rules(target: &str, rule_files: &[&Path]) -> Prometheus {
        let binary = "/usr/bin/prometheus";
        assert!(
            Path::new(binary).exists(),
            "{binary} not found: install Debian's prometheus package (scripts/test.sh does)"
        );
        let dir = temp_dir("prom");
        let rules: String = rule_files
            .iter()
            .map(|p| format!("  - '{}'\n", p.display()))
            .collect();
        let rules = if rules.is_empty() {
            String::new()
        } else {
            format!("rule_files:\n{rules}")
        };
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{rules}scrape_configs:\n  - job_name: rabbitmq-watch\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// Panics with Prometheus's own log if it has exited (e.g. its port was taken).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
            panic!("prometheus exited with {status}:\n{log}");
        }
    }

    /// Runs an instant query; returns the whole answer (`status`, `data`, `error`), or
    /// `Null` when Prometheus did not answer.
    pub fn query_raw(&self, promql: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "-G"])
            .arg(format!("{}/api/v1/query", self.base))
            .arg("--data-urlencode")
            .arg(format!("query={promql}"))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Runs an instant query; returns the `data.result` array.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        self.query_raw(promql)["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GET /api/v1/targets`.
    pub fn targets(&self) -> serde_json::Value {
        let (_, body) = http_get(&format!("{}/api/v1/targets", self.base));
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// `GET /api/v1/rules`.
    pub fn rules(&self) -> serde_json::Value {
        let (_, body) = http_get(&format!("{}/api/v1/rules", self.base));
        serde_json::from_str(&body).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
