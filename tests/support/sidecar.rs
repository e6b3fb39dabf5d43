//! The real `rabbitmq-watch` binary as a child process: started against a management API URL
//! on a free loopback port, its stderr collected, stopped with SIGTERM or on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Exposition, http_get, temp_dir};

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
        Self::spawn(cmd)
    }

    /// Starts `rabbitmq-watch` configured by the file `yaml` alone (no `RABBITMQ_WATCH__…`
    /// defaults: a `clusters:` file names no top-level `rabbitmq` keys), listening on a free
    /// loopback port. Waits until it serves.
    pub fn start_config_only(yaml: &str) -> Sidecar {
        let path = temp_dir("config").join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self::start_config_file(&path)
    }

    /// [`Sidecar::start_config_only`] reading the configuration file `path` (which the test
    /// may rewrite and have reloaded).
    #[allow(dead_code)]
    pub fn start_config_file(path: &std::path::Path) -> Sidecar {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rabbitmq-watch"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("RABBITMQ_WATCH_CONFIG", path)
            .env("RABBITMQ_WATCH__LISTEN", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Self::spawn(cmd)
    }

    /// Spawns `cmd` (stderr piped) and waits until it logs the address it serves on.
    fn spawn(mut cmd: Command) -> Sidecar {
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

    /// Starts `rabbitmq-watch --config FILE` with `yaml` written to a temporary file (kept
    /// until the process exits), plus the defaults and `env` of [`Sidecar::start`].
    pub fn start_with_config(url: &str, yaml: &str, env: &[(&str, &str)]) -> Sidecar {
        let dir = temp_dir("config");
        let path = dir.join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let path = path.to_string_lossy().into_owned();
        let mut all: Vec<(&str, &str)> = vec![("RABBITMQ_WATCH_CONFIG", path.as_str())];
        all.extend_from_slice(env);
        Sidecar::start(url, &all)
    }

    /// The process id (to send it signals, e.g. SIGHUP).
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// Runs `rabbitmq-watch ARGS` to completion with only `env` (and `PATH`) in its environment,
/// for its subcommands (`probe`, `check-config`): its exit status and output.
pub fn run_watch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rabbitmq-watch"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rabbitmq-watch")
}

/// What a finished process wrote: its stdout then its stderr, lossily decoded.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `rabbitmq-watch ARGS` as [`run_watch`], asserts that it exits with `code`, and returns
/// what it wrote ([`output_text`]).
pub fn watch_exits(code: i32, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_watch(args, env);
    let text = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "rabbitmq-watch {args:?}: {text}"
    );
    text
}
