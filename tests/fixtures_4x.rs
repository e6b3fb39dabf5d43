//! Decoding of responses recorded from real brokers (`scripts/record-fixtures.sh`): RabbitMQ
//! 3.10.8, 4.0.5 with management statistics, and 4.0.5 without them
//! (`management_agent.disable_metrics_collector = true`), in `tests/fixtures/VERSION[-stats-off]/`.
//! No broker is needed.
//!
//! The recorded state (the script's header has it in full): `/orders` (classic, x-max-length
//! 10000, policy `orders-ttl`, 7 ready, timestamped), `/payments` (quorum, 7 ready), `/work`
//! (3 ready, 2 unacknowledged, 1 consumer), `/idle` (empty), `staging/events` (2 ready).
//!
//! What must hold: figures a broker does not report decode as `None` (unknown), never as 0.

use std::path::PathBuf;

use rabbitmq_watch::rabbitmq::model::{Alarms, Node, Overview, Page, Queue, has_detailed_queues};
use serde::de::DeserializeOwned;

fn fixture_path(dir: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(file)
}

fn text(dir: &str, file: &str) -> String {
    let path = fixture_path(dir, file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load<T: DeserializeOwned>(dir: &str, file: &str) -> T {
    serde_json::from_str(&text(dir, file)).unwrap_or_else(|e| panic!("{dir}/{file}: {e}"))
}

/// The sidecar's own request for queues (its columns, first page of 500).
fn page(dir: &str) -> Vec<Queue> {
    let p: Page<Queue> = load(dir, "queues-page.json");
    assert_eq!((p.page, p.page_count), (1, 1), "{dir}: one page");
    p.items
}

fn queue<'a>(queues: &'a [Queue], vhost: &str, name: &str) -> &'a Queue {
    queues
        .iter()
        .find(|q| q.vhost == vhost && q.name == name)
        .unwrap_or_else(|| panic!("queue {vhost}/{name} not in {queues:?}"))
}

const RECORDED: [&str; 3] = ["3.10.8", "4.0.5", "4.0.5-stats-off"];
const QUEUES: [(&str, &str); 5] = [
    ("/", "idle"),
    ("/", "orders"),
    ("/", "payments"),
    ("/", "work"),
    ("staging", "events"),
];

#[test]
fn every_recording_lists_the_same_queues_with_type_node_and_settings() {
    for dir in RECORDED {
        let queues = page(dir);
        let names: Vec<(&str, &str)> = queues
            .iter()
            .map(|q| (q.vhost.as_str(), q.name.as_str()))
            .collect();
        assert_eq!(names.len(), QUEUES.len(), "{dir}: {names:?}");
        for want in QUEUES {
            assert!(
                names.contains(&want),
                "{dir}: {want:?} missing in {names:?}"
            );
        }
        let overview: Overview = load(dir, "overview-columns.json");
        for q in &queues {
            assert_eq!(
                q.node.as_deref(),
                overview.node.as_deref(),
                "{dir}: {}",
                q.name
            );
            assert_eq!(q.durable, Some(true), "{dir}: {}", q.name);
        }
        let payments = queue(&queues, "/", "payments");
        assert_eq!(payments.queue_type.as_deref(), Some("quorum"), "{dir}");
        let orders = queue(&queues, "/", "orders");
        assert_eq!(orders.queue_type.as_deref(), Some("classic"), "{dir}");
        assert_eq!(
            orders.settings().policy.as_deref(),
            Some("orders-ttl"),
            "{dir}"
        );
        assert_eq!(orders.limit("max-length"), Some(10_000), "{dir}");
    }
}

#[test]
fn overview_says_whether_statistics_are_collected() {
    for (dir, version, stats) in [
        ("3.10.8", "3.10.8", true),
        ("4.0.5", "4.0.5", true),
        ("4.0.5-stats-off", "4.0.5", false),
    ] {
        for file in ["overview.json", "overview-columns.json"] {
            let o: Overview = load(dir, file);
            assert_eq!(o.rabbitmq_version.as_deref(), Some(version), "{dir}/{file}");
            assert_eq!(o.disable_stats, Some(!stats), "{dir}/{file}");
            assert_eq!(o.stats_enabled(), stats, "{dir}/{file}");
            let totals = o.object_totals.expect("object_totals");
            assert_eq!(totals.queues, Some(5), "{dir}/{file}");
            assert_eq!(totals.connections, Some(1), "{dir}/{file}: the consumer");
            if stats {
                let q = o.queue_totals.expect("queue_totals");
                // 7 + 7 + 3 + 2 ready, 2 unacknowledged.
                assert_eq!(q.messages_ready, Some(19), "{dir}/{file}");
                assert_eq!(q.messages_unacknowledged, Some(2), "{dir}/{file}");
                assert!(o.message_stats.is_some(), "{dir}/{file}");
            } else {
                assert_eq!(o.queue_totals, None, "{dir}/{file}");
                assert_eq!(o.message_stats, None, "{dir}/{file}");
            }
        }
        assert_eq!(
            has_detailed_queues(version),
            version != "3.10.8",
            "queues-page.json of {dir} came from the endpoint the sidecar reads"
        );
    }
}

#[test]
fn queue_figures_with_statistics_are_exact() {
    for dir in ["3.10.8", "4.0.5"] {
        let queues = page(dir);
        let orders = queue(&queues, "/", "orders");
        assert_eq!(orders.messages_ready, Some(7), "{dir}");
        assert_eq!(orders.messages_unacknowledged, Some(0), "{dir}");
        assert_eq!(orders.consumers, Some(0), "{dir}");
        assert_eq!(orders.total_messages(), Some(7), "{dir}");
        assert!(orders.head_message_timestamp.is_some(), "{dir}");
        let payments = queue(&queues, "/", "payments");
        assert_eq!(payments.messages_ready, Some(7), "{dir}");
        assert_eq!(payments.total_messages(), Some(7), "{dir}");
        let work = queue(&queues, "/", "work");
        assert_eq!(work.messages_ready, Some(3), "{dir}");
        assert_eq!(work.messages_unacknowledged, Some(2), "{dir}");
        assert_eq!(work.consumers, Some(1), "{dir}");
        assert!(work.utilisation().is_some(), "{dir}");
        let stats = work.message_stats().expect("message_stats of work");
        assert_eq!(stats.publish, Some(5), "{dir}");
        assert_eq!(stats.deliver, Some(2), "{dir}");
        let idle = queue(&queues, "/", "idle");
        assert_eq!(idle.messages_ready, Some(0), "{dir}");
        assert_eq!(idle.head_message_timestamp, None, "{dir}: empty queue");
        let events = queue(&queues, "staging", "events");
        assert_eq!(events.messages_ready, Some(2), "{dir}");
    }
}

#[test]
fn queues_without_statistics_decode_with_every_figure_unknown() {
    let dir = "4.0.5-stats-off";
    for queues in [
        page(dir),
        load::<Vec<Queue>>(dir, "queues.json"),
        load::<Vec<Queue>>(dir, "queues-detailed.json"),
    ] {
        assert_eq!(queues.len(), QUEUES.len());
        for q in &queues {
            let what = format!("{}/{}", q.vhost, q.name);
            assert!(q.queue_type.is_some(), "{what}: type is listed");
            assert_eq!(q.messages_ready, None, "{what}");
            assert_eq!(q.messages_unacknowledged, None, "{what}");
            assert_eq!(q.messages, None, "{what}");
            assert_eq!(q.total_messages(), None, "{what}");
            assert_eq!(q.messages_persistent, None, "{what}");
            assert_eq!(q.message_bytes_ready, None, "{what}");
            assert_eq!(q.total_bytes(), None, "{what}");
            assert_eq!(q.consumers, None, "{what}");
            assert_eq!(q.utilisation(), None, "{what}");
            assert_eq!(q.memory, None, "{what}");
            assert_eq!(q.head_message_timestamp, None, "{what}");
            assert_eq!(q.message_stats(), None, "{what}");
        }
    }
}

#[test]
fn nodes_without_statistics_decode_with_resources_unknown() {
    let dir = "4.0.5-stats-off";
    for file in ["nodes.json", "nodes-columns.json"] {
        let nodes: Vec<Node> = load(dir, file);
        assert_eq!(nodes.len(), 1, "{file}");
        let n = &nodes[0];
        assert!(n.name.starts_with("rabbitmq-watch-"), "{file}: {}", n.name);
        assert_eq!(n.running, Some(true), "{file}");
        assert_eq!(n.mem_used, None, "{file}");
        assert_eq!(n.mem_limit, None, "{file}");
        assert_eq!(n.mem_alarm, None, "{file}");
        assert_eq!(n.disk_free, None, "{file}");
        assert_eq!(n.disk_free_limit, None, "{file}");
        assert_eq!(n.disk_free_alarm, None, "{file}");
        assert_eq!(n.fd_used, None, "{file}");
        assert_eq!(n.fd_total, None, "{file}");
        assert_eq!(n.proc_used, None, "{file}");
        assert_eq!(n.uptime, None, "{file}");
        assert_eq!(n.partitions, None, "{file}");
    }
}

#[test]
fn nodes_with_statistics_report_resources() {
    for dir in ["3.10.8", "4.0.5"] {
        let nodes: Vec<Node> = load(dir, "nodes-columns.json");
        assert_eq!(nodes.len(), 1, "{dir}");
        let n = &nodes[0];
        assert_eq!(n.running, Some(true), "{dir}");
        assert!(n.mem_used.is_some_and(|m| m > 0), "{dir}");
        assert!(n.mem_limit > n.mem_used, "{dir}");
        assert_eq!(n.mem_alarm, Some(false), "{dir}");
        assert!(n.disk_free.is_some_and(|d| d > 0), "{dir}");
        assert!(n.disk_free_limit.is_some(), "{dir}");
        assert!(n.fd_used.is_some() && n.fd_total.is_some(), "{dir}");
        assert_eq!(n.partitions.as_deref(), Some(&[][..]), "{dir}");
    }
}

#[test]
fn alarm_checks_decode_on_every_version() {
    for dir in RECORDED {
        let ok: Alarms = load(dir, "alarms-ok.json");
        assert_eq!(ok.validate(), Ok(()), "{dir}");
        assert!(ok.alarms.is_empty(), "{dir}");
        let failed: Alarms = load(dir, "alarms-failed.json");
        assert_eq!(failed.validate(), Ok(()), "{dir}");
        assert_eq!(failed.status, "failed", "{dir}");
        assert_eq!(failed.alarms.len(), 1, "{dir}");
        assert_eq!(failed.alarms[0].resource, "memory", "{dir}");
    }
}

/// The figures the management API leaves out without statistics are in the same node's
/// rabbitmq_prometheus output (the second source of issue #12 reads them from there).
#[test]
fn prometheus_recordings_hold_the_figures_statistics_leave_out() {
    for dir in RECORDED {
        let detailed = text(dir, "metrics-detailed.txt");
        for line in [
            r#"rabbitmq_detailed_queue_messages_ready{vhost="/",queue="orders"} 7"#,
            r#"rabbitmq_detailed_queue_messages_ready{vhost="/",queue="payments"} 7"#,
            r#"rabbitmq_detailed_queue_messages_ready{vhost="/",queue="work"} 3"#,
            r#"rabbitmq_detailed_queue_messages_unacked{vhost="/",queue="work"} 2"#,
            r#"rabbitmq_detailed_queue_consumers{vhost="/",queue="work"} 1"#,
            r#"rabbitmq_detailed_queue_messages_ready{vhost="staging",queue="events"} 2"#,
        ] {
            assert!(
                detailed.lines().any(|l| l == line),
                "{dir}/metrics-detailed.txt lacks {line}"
            );
        }
        let metrics = text(dir, "metrics.txt");
        for name in [
            "rabbitmq_process_resident_memory_bytes ",
            "rabbitmq_resident_memory_limit_bytes ",
            "rabbitmq_disk_space_available_bytes ",
            "rabbitmq_disk_space_available_limit_bytes ",
            "rabbitmq_process_open_fds ",
            "rabbitmq_alarms_memory_used_watermark ",
        ] {
            assert!(
                metrics.lines().any(|l| l.starts_with(name)),
                "{dir}/metrics.txt lacks {name}"
            );
        }
    }
}
