//! The Grafana dashboards in `dashboards/`.
//!
//! Structure: `@grafana/schema` (npm) ships TypeScript types only, no JSON schema a test could
//! validate against without a TypeScript toolchain, so the structure is checked here as
//! documented in docs/metrics.md (Dashboards): importable JSON with `__inputs` declaring the
//! `DS_PROMETHEUS` datasource input, every datasource reference `${DS_PROMETHEUS}` (no UID of
//! anyone's datasource), a `DS_PROMETHEUS` datasource variable (so file provisioning works
//! too), unique panel ids, a `gridPos` inside the 24-column grid, targets with `expr`,
//! `refId` and the datasource, and every `$variable` used defined in `templating`.
//!
//! Data: a real RabbitMQ node with real AMQP traffic, the sidecar, and a real Prometheus
//! scraping it (and evaluating `alerts/`); every panel query, variables substituted, runs
//! through Prometheus's query API and must parse and return data, except queries over
//! metrics in [`INCIDENT`] (data that only exists during an incident), which must still parse.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;
use support::{HttpReceiver, Prometheus, RabbitNode, Sidecar, amqp, publish_with, repo_file};

const DASHBOARDS: [&str; 3] = [
    "dashboards/rabbitmq-watch-overview.json",
    "dashboards/rabbitmq-watch-queue.json",
    "dashboards/rabbitmq-watch-sidecar.json",
];

/// Queries (by a distinctive part) whose data only exists during an incident.
const INCIDENT: &[(&str, &str)] = &[
    (
        "rabbitmq_watch_missing_fields",
        "only `> 0` rows are shown: while the broker omits fields (statistics not emitted yet, a node down, 4.x with statistics disabled)",
    ),
    (
        "rabbitmq_audit_finding{",
        "one row per reliability audit finding: empty while the audit finds nothing (this test's clients are set up by the book)",
    ),
    (
        "rabbitmq_node_cpu_utilisation_ratio",
        "only with rabbitmq.source prometheus (this test reads the management API, which has no CPU figure)",
    ),
    (
        "rabbitmq_node_time_to_disk_alarm_seconds",
        "only while free disk space falls, after 15 minutes of samples (this test's disk is steady)",
    ),
    (
        "rabbitmq_queue_oldest_message_age_estimate_seconds",
        "only while messages without a timestamp wait in a queue (this test's publishers set timestamps, so the exact head age is shown instead)",
    ),
    (
        "rabbitmq_listener_certificate_expiry_timestamp_seconds",
        "only for TLS listeners whose certificate expires within 30 days (tests/health_checks.rs makes one; this node has no TLS listener)",
    ),
    (
        "rabbitmq_queue_mirrors",
        "only for classic mirrored queues (RabbitMQ 3.x with an ha-mode policy; none here)",
    ),
    (
        "and on (instance, rabbitmq_cluster, vhost, queue) rabbitmq_queue_delivery_limit",
        "only for quorum queues with a delivery limit that consumers redeliver (tests/rabbitmq4.rs and tests/poison_messages.rs make one; none here)",
    ),
];

const DS: &str = "${DS_PROMETHEUS}";

fn load(path: &str) -> Value {
    serde_json::from_str(&repo_file(path)).unwrap_or_else(|e| panic!("{path}: invalid JSON: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        all.push(p);
        for nested in p["panels"].as_array().into_iter().flatten() {
            all.push(nested);
        }
    }
    all
}

/// (panel title, expr) of every target.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("").to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

/// Names after `$` or inside `${…}` in `text`.
fn variables_used(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !name.chars().all(|c| c.is_ascii_digit()) {
            used.insert(name);
        }
    }
    used
}

fn walk_datasources(v: &Value, path: &str, bad: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "datasource" {
                    let ok = match child {
                        Value::Object(ds) => {
                            (ds.get("uid") == Some(&Value::from(DS))
                                && ds.get("type") == Some(&Value::from("prometheus")))
                                || ds.get("uid") == Some(&Value::from("-- Grafana --"))
                        }
                        Value::String(s) => s == DS,
                        _ => false,
                    };
                    if !ok {
                        bad.push(format!("{path}.{k} = {child}"));
                    }
                }
                walk_datasources(child, &format!("{path}.{k}"), bad);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk_datasources(child, &format!("{path}[{i}]"), bad);
            }
        }
        _ => {}
    }
}

#[test]
fn dashboards_are_importable_grafana_json_with_the_datasource_as_an_input() {
    let mut uids = BTreeSet::new();
    for path in DASHBOARDS {
        let d = load(path);
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_owned()),
            "{path}: uid"
        );
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{path}"
        );
        assert!(d["id"].is_null(), "{path}: id must be null for import");
        let inputs = d["__inputs"].as_array().expect("__inputs");
        assert!(
            inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
                && i["type"] == "datasource"
                && i["pluginId"] == "prometheus"),
            "{path}: __inputs lacks DS_PROMETHEUS"
        );
        let mut bad = Vec::new();
        walk_datasources(&d, "", &mut bad);
        assert!(bad.is_empty(), "{path}: datasource references: {bad:#?}");

        let vars: BTreeMap<String, &Value> = d["templating"]["list"]
            .as_array()
            .expect("templating.list")
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_owned(), v))
            .collect();
        assert_eq!(vars["DS_PROMETHEUS"]["type"], "datasource", "{path}");
        assert_eq!(vars["DS_PROMETHEUS"]["query"], "prometheus", "{path}");
        assert!(vars.contains_key("instance"), "{path}: instance variable");
        // Several clusters from one sidecar (`clusters:`): every dashboard selects them.
        assert!(
            vars.contains_key("rabbitmq_cluster"),
            "{path}: rabbitmq_cluster variable"
        );
        for (name, v) in &vars {
            if v["type"] == "query" {
                let q = v["definition"].as_str().unwrap();
                assert!(q.starts_with("label_values("), "{path}: {name}: {q}");
                assert_eq!(v["query"]["query"], q, "{path}: {name}");
            }
        }

        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path}: {title}: id"));
            assert!(ids.insert(id), "{path}: id {id} twice");
            let g = &p["gridPos"];
            let (x, w, h) = (g["x"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
            assert!(
                g["y"].as_u64().is_some() && h.is_some_and(|h| h > 0),
                "{path}: {title}: gridPos {g}"
            );
            assert!(
                x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24),
                "{path}: {title}: gridPos {g}"
            );
            if p["type"] == "row" {
                continue;
            }
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{path}: {title}: description"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{path}: {title}: no targets");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                    "{path}: {title}: expr"
                );
                assert!(
                    refs.insert(t["refId"].as_str().expect("refId")),
                    "{path}: {title}"
                );
                assert_eq!(t["datasource"]["uid"], DS, "{path}: {title}");
                for var in variables_used(t["expr"].as_str().unwrap()) {
                    assert!(
                        vars.contains_key(&var) || var.starts_with("__"),
                        "{path}: {title}: ${var} is not defined in templating"
                    );
                }
            }
        }
    }
}

/// What each dashboard must show (the issue's list), by the metrics its queries use.
#[test]
fn dashboards_cover_their_subjects() {
    let subjects: [(&str, &[&str]); 3] = [
        (
            DASHBOARDS[0],
            &[
                "rabbitmq_node_running",
                "rabbitmq_cluster_expected_nodes",
                "rabbitmq_cluster_partitioned",
                "rabbitmq_alarms_memory_used_watermark",
                "rabbitmq_alarms_free_disk_space_watermark",
                "rabbitmq_resident_memory_limit_bytes",
                "rabbitmq_disk_space_available_limit_bytes",
                "rabbitmq_messages_ready",
                "rabbitmq_messages_unacked",
                "rabbitmq_channel_messages_published_total",
                "rabbitmq_channel_messages_delivered_ack_total",
                "rabbitmq_channel_messages_acked_total",
                "topk(10, rabbitmq_queue_messages_ready",
                "rabbitmq_watch_alerts",
                "rabbitmq_queue_online_members",
                "rabbitmq_node_quorum_critical",
                "rabbitmq_node_certificates_expiring",
            ],
        ),
        (
            DASHBOARDS[1],
            &[
                "rabbitmq_queue_messages_ready",
                "rabbitmq_queue_messages_published_total",
                "rabbitmq_queue_messages_delivered_ack_total",
                "rabbitmq_queue_consumers",
                "rabbitmq_queue_consumer_utilisation",
                "rabbitmq_queue_backlog_status",
                "rabbitmq_queue_time_to_drain_seconds",
                "rabbitmq_queue_time_to_overflow_seconds",
                "rabbitmq_queue_messages_redelivered_total",
                "rabbitmq_queue_redelivery_ratio",
                "rabbitmq_queue_dead_letter_queue_info",
            ],
        ),
        (
            DASHBOARDS[2],
            &[
                "rabbitmq_up",
                "rabbitmq_watch_endpoint_success",
                "rabbitmq_watch_endpoint_duration_seconds",
                "rabbitmq_watch_alerts",
                "rabbitmq_watch_notifications_total",
                "rabbitmq_watch_notifications_failed_total",
                "rabbitmq_watch_queues_dropped",
            ],
        ),
    ];
    for (path, needed) in subjects {
        let d = load(path);
        let all: String = queries(&d).into_iter().map(|(_, e)| e + "\n").collect();
        for n in needed {
            assert!(all.contains(n), "{path}: no panel uses {n}");
        }
        assert!(all.contains("$instance"), "{path}: $instance unused");
    }
    let queue = load(DASHBOARDS[1]);
    let all: String = queries(&queue).into_iter().map(|(_, e)| e).collect();
    for var in ["$vhost", "$queue", "$queue_regex"] {
        assert!(all.contains(var), "queue dashboard: {var} unused");
    }
}

/// The expr with Grafana's variables replaced by the test's values.
fn substitute(expr: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = expr.replace("$__rate_interval", "30s");
    // Longest names first: `$queue_regex` before `$queue`.
    let mut names: Vec<&&str> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &values[*name])
            .replace(&format!("${name}"), &values[*name]);
    }
    out
}

/// Message properties with the `timestamp` set to now (head message ages).
fn stamped() -> BasicProperties {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    BasicProperties::default().with_timestamp(now)
}

/// `label_values(EXPR, LABEL)` → (EXPR, LABEL).
fn label_values(q: &str) -> (String, String) {
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap();
    let (expr, label) = inner.rsplit_once(',').unwrap();
    (expr.trim().to_owned(), label.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_broker_sidecar_and_prometheus() {
    let _serial = ONE_AT_A_TIME.lock().await;
    every_panel_query(RabbitNode::shared(), &[], &[]).await;
}

/// Held by each test that runs [`every_panel_query`]: each starts a broker, a sidecar, traffic
/// and a Prometheus, which is enough load for 2 cores at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs every panel query (and every variable's `label_values`) of the dashboards through a
/// real Prometheus scraping a sidecar (started with `env`) on `node` under real traffic: each
/// must parse; each must return data, except those over [`INCIDENT`] metrics and those over
/// the `absent` metrics, which must return none (a source that cannot give a figure leaves it
/// absent, never 0).
async fn every_panel_query(node: &RabbitNode, env: &[(&str, &str)], absent: &[(&str, &str)]) {
    let (_conn, ch) = amqp(node, "/").await;
    let durable = || QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    // A dead-letter exchange and queue; a length-limited queue dead-letters what it drops.
    ch.exchange_declare(
        "dash-dlx".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    ch.queue_declare("dash-dlq".into(), durable(), FieldTable::default())
        .await
        .expect("queue.declare");
    ch.queue_bind(
        "dash-dlq".into(),
        "dash-dlx".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    let mut limited = FieldTable::default();
    limited.insert("x-max-length".into(), AMQPValue::LongInt(5));
    limited.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("dash-dlx".into()),
    );
    ch.queue_declare("dash-limited".into(), durable(), limited)
        .await
        .expect("queue.declare");
    for q in ["dash-work", "dash-acked", "dash-backlog"] {
        ch.queue_declare(q.into(), durable(), FieldTable::default())
            .await
            .expect("queue.declare");
    }
    // A quorum queue: its members, online members and leader.
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare("dash-quorum".into(), durable(), quorum)
        .await
        .expect("queue.declare");
    publish_with(&ch, "dash-limited", 12, stamped()).await; // 7 dead-lettered
    publish_with(&ch, "dash-backlog", 30, stamped()).await;
    // A consumer (auto-ack) on dash-work.
    let (_conn2, consumer_ch) = amqp(node, "/").await;
    let _consumer = consumer_ch
        .basic_consume(
            "dash-work".into(),
            "dash-consumer".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    // Steady traffic: publishes to dash-work and dash-acked; dash-acked is read with
    // basic.get and acked, every fifth message nacked and requeued (a redelivery).
    let traffic_ch = ch.clone();
    let traffic = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            publish_with(&traffic_ch, "dash-work", 2, stamped()).await;
            publish_with(&traffic_ch, "dash-acked", 1, stamped()).await;
            if let Ok(Some(m)) = traffic_ch
                .basic_get("dash-acked".into(), BasicGetOptions { no_ack: false })
                .await
            {
                n += 1;
                if n.is_multiple_of(5) {
                    let _ = m
                        .delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await;
                } else {
                    let _ = m.delivery.ack(BasicAckOptions::default()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // The sidecar: an own rule that fires on dash-backlog, notified to a receiver that
    // accepts and one that answers 400 (a failed notification).
    let ok = HttpReceiver::start(None, vec![]);
    let failing = HttpReceiver::start(None, vec![400; 50]);
    let config = format!(
        r#"alerting:
  backlog:
    window: 6s
    min_completeness: 0.8
  rules:
    - alert: DashBacklog
      kind: queue
      select: {{queue: "dash-backlog"}}
      expr: messages_ready > 5
      severity: warning
notify:
  route:
    receiver: ok
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['alertname="DashBacklog"']
        receiver: ok
        continue: true
      - matchers: ['alertname="DashBacklog"']
        receiver: failing
  receivers:
    - name: ok
      webhook_configs: [{{url: "{ok}/hook"}}]
    - name: failing
      webhook_configs: [{{url: "{failing}/hook"}}]
"#,
        ok = ok.url,
        failing = failing.url
    );
    let sidecar = Sidecar::start_with_config(&node.mgmt_url, &config, env);
    let target = sidecar.base.trim_start_matches("http://").to_owned();
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/rabbitmq-watch.rules.yml");
    let mut prometheus = Prometheus::start_with_rules(&target, &[&rules]);

    let values: BTreeMap<&str, String> = [
        ("instance", target.clone()),
        ("job", "rabbitmq-watch".to_owned()),
        ("vhost", "/".to_owned()),
        ("queue", "dash-.*".to_owned()),
        ("queue_regex", ".*".to_owned()),
        // "All" (the single-cluster sidecar of this test has no rabbitmq_cluster label; `.*`
        // matches its absence).
        ("rabbitmq_cluster", ".*".to_owned()),
    ]
    .into();
    let optional = |expr: &str| -> Option<String> {
        INCIDENT
            .iter()
            .find(|(m, _)| expr.contains(m))
            .map(|(m, why)| format!("{m}: {why}"))
    };
    let without = |expr: &str| absent.iter().any(|(m, _)| expr.contains(m));
    let mut checks: Vec<(String, String, Option<String>)> = Vec::new(); // (what, promql, why optional)
    let mut empty: Vec<(String, String)> = Vec::new(); // (what, promql): must return no data
    for path in DASHBOARDS {
        let d = load(path);
        for (title, expr) in queries(&d) {
            if without(&expr) {
                empty.push((format!("{path}: {title}"), substitute(&expr, &values)));
                continue;
            }
            let why = optional(&expr);
            checks.push((format!("{path}: {title}"), substitute(&expr, &values), why));
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                let (expr, label) = label_values(v["definition"].as_str().unwrap());
                checks.push((
                    format!("{path}: variable {} ({label})", v["name"]),
                    format!("count by ({label}) ({})", substitute(&expr, &values)),
                    None,
                ));
            }
        }
    }

    // Poll until every required query has data (Prometheus needs a few scrapes for rates).
    let deadline = Instant::now() + Duration::from_secs(120);
    let failures = loop {
        prometheus.assert_running();
        let mut failures = Vec::new();
        for (what, promql, why) in &checks {
            let answer = prometheus.query_raw(promql);
            if answer["status"] != "success" {
                failures.push(format!("{what}: `{promql}` failed: {answer}"));
            } else if why.is_none()
                && answer["data"]["result"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
            {
                failures.push(format!("{what}: `{promql}` returned no data"));
            }
        }
        if failures.is_empty() || Instant::now() > deadline {
            break failures;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // Queries over figures this source cannot give: they parse and stay empty (after the
    // others have data, so the sidecar has polled many times).
    let mut failures = failures;
    for (what, promql) in &empty {
        let answer = prometheus.query_raw(promql);
        if answer["status"] != "success" {
            failures.push(format!("{what}: `{promql}` failed: {answer}"));
        } else if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            failures.push(format!(
                "{what}: `{promql}` has data although this source cannot give it: {}",
                answer["data"]["result"]
            ));
        }
    }
    traffic.abort();
    assert!(
        failures.is_empty(),
        "{} of {} queries:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n")
    );

    // The Prometheus rules of alerts/ evaluate without error on the real exposition.
    let groups = prometheus.rules();
    let groups = groups["data"]["groups"].as_array().expect("rule groups");
    assert!(!groups.is_empty());
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "rule {}: {}", r["name"], r["lastError"]);
        }
    }
    // The notifications the Sidecar dashboard shows really happened.
    assert!(!ok.received().is_empty());
    assert!(!failing.received().is_empty());
}

/// What the sidecar does not export on RabbitMQ 4.0.5 with management statistics disabled
/// (checked live by the test below): the per-queue publish counter (rabbitmq_prometheus has
/// none; its per-queue delivery counters, `queue_delivery_metrics`, are served by 4.0.5 and
/// exported, and the backlog detector's redelivery ratio comes from them), and what only the
/// statistics of `/api/overview` and `/api/nodes` give (cluster-wide message counters,
/// `partitions`). The cluster totals (messages, channels, consumers) come from the members'
/// `/metrics` instead.
const ABSENT_WITHOUT_STATISTICS: &[(&str, &str)] = &[
    (
        "rabbitmq_queue_messages_published_total",
        "per-queue publish counter: none in rabbitmq_prometheus",
    ),
    (
        "rabbitmq_channel_messages_",
        "cluster-wide counters of /api/overview message_stats: absent without statistics",
    ),
    (
        "rabbitmq_node_partitions",
        "/api/nodes has no partitions without statistics",
    ),
    (
        "rabbitmq_node_cluster_links",
        "/api/nodes cluster_links: absent without statistics",
    ),
    (
        "rabbitmq_node_build_info",
        "/api/nodes applications: absent without statistics",
    ),
    (
        "rabbitmq_node_mirror_sync_critical",
        "4.x has no classic mirroring: the check answers 404, no series",
    ),
    (
        "rabbitmq_node_protocol_listener_down",
        "/api/overview lists no listeners without statistics: only cluster.expected_protocols are checked (none here)",
    ),
];

/// The same dashboards on RabbitMQ 4.0.5 with management statistics disabled (what RabbitMQ
/// recommends for 4.x), the sidecar reading rabbitmq_prometheus (`source: auto` chooses it):
/// every panel has data except those over [`ABSENT_WITHOUT_STATISTICS`], which stay empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_on_4_0_5_without_statistics_has_data_or_is_absent_by_design() {
    let _serial = ONE_AT_A_TIME.lock().await;
    static NODE: std::sync::OnceLock<RabbitNode> = std::sync::OnceLock::new();
    let node = NODE.get_or_init(|| {
        RabbitNode::start_with("dash-r4-off", &["--version", "4", "--stats", "off"])
    });
    let env = [(
        "RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL",
        node.prom_url.as_str(),
    )];
    every_panel_query(node, &env, ABSENT_WITHOUT_STATISTICS).await;
}
