//! A throwaway RabbitMQ node with the management plugin, started and stopped through
//! `scripts/rabbitmq-node.sh` (Debian's `rabbitmq-server`, installed by `scripts/test.sh`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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
    /// rabbitmq_prometheus base URL, e.g. `http://127.0.0.1:15692`; empty when the node runs
    /// without the plugin (start it with `--prometheus`, always on with `--version 4`).
    pub prom_url: String,
}

impl RabbitNode {
    /// Starts a node tagged `tag` (part of its directory name). Panics with the script's
    /// output when the node does not come up.
    pub fn start(tag: &str) -> RabbitNode {
        Self::start_with(tag, &[])
    }

    /// Starts a node tagged `tag` with extra arguments of `scripts/rabbitmq-node.sh start`
    /// (`--version 4`, `--stats off`, `--prometheus`). Panics with the script's output when
    /// the node does not come up.
    pub fn start_with(tag: &str, args: &[&str]) -> RabbitNode {
        let mut dir =
            std::env::temp_dir().join(format!("rabbitmq-watch-test-{tag}-{}", std::process::id()));
        let start = |dir: &Path| {
            let _ = std::fs::remove_dir_all(dir);
            Command::new("bash")
                .arg(node_script())
                .arg("start")
                .arg(dir)
                .arg("--watch-pid")
                .arg(std::process::id().to_string())
                .args(args)
                .output()
                .expect("run scripts/rabbitmq-node.sh")
        };
        let mut out = start(&dir);
        if !out.status.success() {
            // Seen on the shared 2-core CI machine under heavy load: a node that exits during
            // start-up (its free ports are chosen before it binds them, so another process can
            // take one meanwhile). One more try on fresh ports; a second failure fails the test.
            eprintln!(
                "starting a RabbitMQ node {args:?} failed once, trying again:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // In a directory of its own: the first attempt's watchdog cleans its directory
            // (stopping whatever node its `node.env` names) once that node has exited.
            dir = dir.with_file_name(format!(
                "{}-retry",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ));
            out = start(&dir);
        }
        assert!(
            out.status.success(),
            "starting a RabbitMQ node {args:?} failed (is Debian's rabbitmq-server installed? \
             `--version 4` needs root and `scripts/install-deps.sh rabbitmq4`; scripts/test.sh \
             installs both):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = parse_env(&String::from_utf8_lossy(&out.stdout));
        RabbitNode {
            dir,
            name: env["NODE_NAME"].clone(),
            mgmt_url: env["MGMT_URL"].clone(),
            amqp_url: env["AMQP_URL"].clone(),
            prom_url: env.get("PROM_URL").cloned().unwrap_or_default(),
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
