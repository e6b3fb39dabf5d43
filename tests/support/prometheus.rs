//! A real Prometheus (Debian's `prometheus`, `scripts/install-deps.sh prometheus`) scraping the
//! sidecar, optionally evaluating rule files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, http_get, temp_dir};

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
