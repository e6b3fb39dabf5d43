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
