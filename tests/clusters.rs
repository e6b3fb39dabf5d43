//! Several clusters from one sidecar (`clusters:`): one `rabbitmq-watch` watches a RabbitMQ
//! 3.10 node (Debian's package) and a RabbitMQ 4.0.5 node (the tree
//! `scripts/install-deps.sh rabbitmq4` builds) at once, plus a management API that accepts
//! connections and never answers (a hung broker, which a running node cannot be made into on
//! demand). Every series and alert carries `rabbitmq_cluster`; a rule selects one cluster by
//! that label; stopping one broker makes only its own cluster `rabbitmq_up 0` and its alerts
//! unknown, while the others keep being polled at their interval.
//!
//! Owns its nodes (one is stopped). A missing 4.0 tree fails the test; nothing skips.

mod support;

use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use support::{RabbitNode, Sidecar, amqp, declare, eventually, publish};

const WAIT: Duration = Duration::from_secs(60);

/// A management API that accepts every connection and never answers; the connections are
/// held open for the life of the test process.
fn hung_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            held.push(conn);
        }
    });
    url
}

/// The sidecar's configuration: three clusters polled every 300 ms with a 2 s timeout, a rule
/// for every cluster and one selecting `r3` only.
fn config(r3: &RabbitNode, r4: &RabbitNode, hung: &str) -> String {
    config_with(r3, r4, hung, 5, 5)
}

/// [`config`] with the thresholds of `MultiBacklog` (every cluster) and `R3Backlog`.
fn config_with(r3: &RabbitNode, r4: &RabbitNode, hung: &str, multi: u64, only_r3: u64) -> String {
    format!(
        r#"poll:
  interval: 300ms
clusters:
  - name: r3
    rabbitmq: {{url: "{r3}", timeout: 2s, source: management}}
  - name: r4
    rabbitmq: {{url: "{r4}", timeout: 2s, prometheus_url: "{r4prom}"}}
  - name: hung
    rabbitmq: {{url: "{hung}", timeout: 2s, source: management}}
alerting:
  default_rules: false
  rules:
    - alert: MultiBacklog
      kind: queue
      select: {{queue: multi}}
      expr: messages_ready > {multi}
      severity: warning
    - alert: R3Backlog
      kind: queue
      select: {{queue: multi}}
      expr: messages_ready > {only_r3}
      severity: warning
      labels: {{rabbitmq_cluster: r3}}
"#,
        r3 = r3.mgmt_url,
        r4 = r4.mgmt_url,
        r4prom = r4.prom_url,
    )
}

/// The alerts of `/api/v1/alerts` as (alertname, rabbitmq_cluster, state, unknown).
fn alerts(sidecar: &Sidecar) -> Vec<(String, String, String, bool)> {
    let (status, body) = sidecar.get("/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).expect("alerts JSON");
    let mut out: Vec<_> = api["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
            (
                label("alertname"),
                label("rabbitmq_cluster"),
                a["state"].as_str().unwrap_or("").to_owned(),
                a["unknown"] == true,
            )
        })
        .collect();
    out.sort();
    out
}

fn alert(name: &str, cluster: &str, state: &str, unknown: bool) -> (String, String, String, bool) {
    (name.into(), cluster.into(), state.into(), unknown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sidecar_watches_a_3_10_and_a_4_0_broker_and_a_stopped_one_stays_its_own() {
    let r3 = RabbitNode::start("clusters-r3");
    let r4 = RabbitNode::start_with("clusters-r4", &["--version", "4", "--stats", "on"]);
    for node in [&r3, &r4] {
        let (_conn, ch) = amqp(node, "/").await;
        declare(&ch, "multi").await;
        publish(&ch, "multi", 7).await;
    }
    let hung = hung_api();
    let file = support::temp_dir("clusters-config").join("config.yaml");
    std::fs::write(&file, config(&r3, &r4, &hung)).expect("write config");
    let sidecar = Sidecar::start_config_file(&file);

    // Both brokers read, each series labelled with its cluster; the hung one is down.
    let m = eventually(WAIT, "7 ready in `multi` of both clusters", || {
        let m = sidecar.metrics();
        let ready = |c| {
            m.get(
                "rabbitmq_queue_messages_ready",
                &[("rabbitmq_cluster", c), ("queue", "multi")],
            )
        };
        (ready("r3") == Some(7.0) && ready("r4") == Some(7.0)).then_some(m)
    });
    for (cluster, up) in [("r3", 1.0), ("r4", 1.0), ("hung", 0.0)] {
        assert_eq!(
            m.get("rabbitmq_up", &[("rabbitmq_cluster", cluster)]),
            Some(up),
            "{cluster}: {}",
            m.text
        );
    }
    let version = |c: &str| {
        m.find("rabbitmq_build_info", &[("rabbitmq_cluster", c)])
            .first()
            .and_then(|s| {
                s.labels
                    .iter()
                    .find(|(k, _)| k == "rabbitmq_version")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default()
    };
    assert!(version("r3").starts_with("3.10."), "{}", m.text);
    assert!(version("r4").starts_with("4.0."), "{}", m.text);
    // The broker's own cluster_name moves to `cluster_name` (a label appears once per series).
    for s in &m.samples {
        let mut names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "a label repeated: {s:?}");
    }
    for c in ["r3", "r4"] {
        let identity = m.find("rabbitmq_identity_info", &[("rabbitmq_cluster", c)]);
        assert!(
            identity.len() == 1 && identity[0].labels.iter().any(|(k, _)| k == "cluster_name"),
            "{c}: {identity:?}"
        );
    }
    // No series without the label but the sidecar-wide families: the notifiers' (none here)
    // and the configuration reloads' (the binary reloads on SIGHUP).
    let unlabelled: Vec<_> = m
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty() && !l.contains("rabbitmq_cluster=\""))
        .filter(|l| !l.starts_with("rabbitmq_watch_config_last_reload_"))
        .collect();
    assert!(unlabelled.is_empty(), "{unlabelled:?}");

    // One alert per cluster for the rule of every cluster, one for the rule selecting r3.
    eventually(WAIT, "alerts of both clusters firing", || {
        let a = alerts(&sidecar);
        (a == vec![
            alert("MultiBacklog", "r3", "firing", false),
            alert("MultiBacklog", "r4", "firing", false),
            alert("R3Backlog", "r3", "firing", false),
        ])
        .then_some(())
    });

    // The status page lists both clusters' alerts, each naming its cluster.
    let (status, page) = sidecar.get("/");
    assert_eq!(status, 200);
    for c in ["r3", "r4"] {
        assert!(page.contains(&format!("multi (cluster {c})")), "{page}");
    }

    // A reload (SIGHUP) that lowers MultiBacklog's threshold (7 ready still exceed it) keeps
    // both clusters' alerts firing since the same moment; raising R3Backlog's above 7
    // resolves it.
    let active_since = |name: &str, cluster: &str| -> String {
        let (_, body) = sidecar.get("/api/v1/alerts");
        let api: serde_json::Value = serde_json::from_str(&body).expect("alerts JSON");
        api["data"]["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == name && a["labels"]["rabbitmq_cluster"] == cluster
            })
            .map(|a| a["active_since"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let before = [
        active_since("MultiBacklog", "r3"),
        active_since("MultiBacklog", "r4"),
    ];
    assert!(before.iter().all(|t| !t.is_empty()), "{before:?}");
    std::fs::write(&file, config_with(&r3, &r4, &hung, 6, 100)).expect("rewrite config");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &sidecar.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    eventually(WAIT, "R3Backlog resolved after the reload", || {
        let a = alerts(&sidecar);
        (!a.iter()
            .any(|(n, _, s, _)| n == "R3Backlog" && s == "firing"))
        .then_some(())
    });
    let after = [
        active_since("MultiBacklog", "r3"),
        active_since("MultiBacklog", "r4"),
    ];
    assert_eq!(
        before, after,
        "the alerts kept their active_since across the reload"
    );
    assert_eq!(
        sidecar
            .metrics()
            .get("rabbitmq_watch_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // The 4.0 broker stops: only its cluster is down and only its alert unknown.
    r4.stop();
    let m = eventually(WAIT, "r4 down, r3 up", || {
        let m = sidecar.metrics();
        let up = |c| m.get("rabbitmq_up", &[("rabbitmq_cluster", c)]);
        (up("r4") == Some(0.0) && up("r3") == Some(1.0)).then_some(m)
    });
    assert!(
        m.find(
            "rabbitmq_queue_messages_ready",
            &[("rabbitmq_cluster", "r4")]
        )
        .is_empty(),
        "r4's queue figures are unknown, not 0: {}",
        m.text
    );
    eventually(WAIT, "r4's alert unknown, r3's known", || {
        let a = alerts(&sidecar);
        let firing: Vec<_> = a.into_iter().filter(|(_, _, s, _)| s == "firing").collect();
        (firing
            == vec![
                alert("MultiBacklog", "r3", "firing", false),
                alert("MultiBacklog", "r4", "firing", true),
            ])
        .then_some(())
    });

    // r3 keeps its 300 ms interval although r4 refuses connections and `hung` times out
    // after 2 s on every poll: at least 5 polls of r3 in 3 s (one poller for all would
    // manage 1), its last poll recent.
    let polls = |c: &str| {
        sidecar
            .metrics()
            .get("rabbitmq_watch_polls_total", &[("rabbitmq_cluster", c)])
            .expect("polls_total")
    };
    let (r3_before, hung_before) = (polls("r3"), polls("hung"));
    std::thread::sleep(Duration::from_secs(3));
    let m = sidecar.metrics();
    let r3_polls = m
        .get("rabbitmq_watch_polls_total", &[("rabbitmq_cluster", "r3")])
        .expect("polls_total");
    assert!(
        r3_polls - r3_before >= 5.0,
        "r3 polled {} times in 3 s",
        r3_polls - r3_before
    );
    let hung_polls = m
        .get(
            "rabbitmq_watch_polls_total",
            &[("rabbitmq_cluster", "hung")],
        )
        .expect("polls_total");
    assert!(
        hung_polls - hung_before <= 2.0,
        "the hung API answers nothing: each of its polls waits for the 2 s timeout"
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let last = m
        .get(
            "rabbitmq_watch_last_successful_poll_timestamp_seconds",
            &[("rabbitmq_cluster", "r3")],
        )
        .expect("last success");
    assert!(
        now - last < 2.0,
        "r3's last successful poll {}s ago",
        now - last
    );
    sidecar.terminate();
}
