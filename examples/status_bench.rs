//! Benchmark of the status page at 10,000 queues (or the count given), without a broker: a
//! snapshot built with `Snapshot::builder()` (3 nodes; queues that grow, have no consumers or
//! keep up), judged by the alert engine with the default rules over 25 polls 30 s apart (so
//! every backlog window is complete and alerts fire), then the page rendered for the first
//! page, a filtered view and the last page. Prints figures; asserts nothing.
//!
//! `cargo run --release --example status_bench -- 10000`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rabbitmq_watch::alerting::{Assessment, Engine};
use rabbitmq_watch::rabbitmq::model::{Node, Queue};
use rabbitmq_watch::snapshot::Snapshot;
use rabbitmq_watch::status::{self, Inputs, Query, Settings};

/// The queues of poll `poll`: every 7th grows, every 11th has no consumers, the rest keep up.
fn queues(n: usize, poll: u64) -> Vec<Queue> {
    let mut queues: Vec<Queue> = (0..n)
        .map(|i| {
            let growing = i % 7 == 0;
            let orphan = i % 11 == 0;
            let ready = if growing {
                100 + poll * 37 + i as u64 % 50
            } else if orphan {
                500 + i as u64
            } else {
                (i as u64 * 13 + poll * 5) % 40
            };
            Queue {
                vhost: format!("vhost-{}", i % 10),
                name: format!("bench-queue-{i:05}"),
                messages: Some(ready + 10),
                messages_ready: Some(ready),
                messages_unacknowledged: Some(10),
                consumers: Some(if orphan { 0 } else { 2 }),
                ..Queue::default()
            }
        })
        .collect();
    queues.sort_unstable_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    queues
}

fn nodes() -> Vec<Node> {
    (1..=3)
        .map(|i| Node {
            name: format!("rabbit@node-{i}"),
            running: Some(true),
            mem_used: Some(900_000_000 + i * 100_000_000),
            mem_limit: Some(3_200_000_000),
            mem_alarm: Some(false),
            disk_free: Some(40_000_000_000),
            disk_free_limit: Some(50_000_000),
            disk_free_alarm: Some(false),
            uptime: Some(86_400_000 * i),
            partitions: Some(vec![]),
            ..Node::default()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let cfg = rabbitmq_watch::config::load(None, Default::default(), &[]).expect("defaults");
    let mut engine = Engine::with_backlog(cfg.alerting.rules, cfg.alerting.backlog);
    let start = SystemTime::now() - Duration::from_secs(30 * 25);
    let mut last = None;
    for poll in 0..25u64 {
        let at = start + Duration::from_secs(30 * poll);
        let snapshot = Arc::new(
            Snapshot::builder()
                .seq(poll + 1)
                .started_at(at)
                .nodes(nodes())
                .queues(queues(n, poll))
                .dead_letter_queues(Vec::new())
                .build(),
        );
        engine.evaluate(&snapshot, at);
        last = Some(Arc::new(Assessment {
            snapshot,
            backlog: engine.backlog().clone(),
            cluster: engine.cluster().clone(),
            alerts: engine.alerts().cloned().collect(),
            evaluated_at: at,
        }));
    }
    let assessment = last.expect("25 polls");
    let settings = Settings {
        target: "http://localhost:15672/".to_owned(),
        poll_interval: Duration::from_secs(15),
        admin_api: true,
    };
    let now = SystemTime::now();
    let inhibit_rules = [rabbitmq_watch::config::queue_inhibit_rule()];
    let render = |query: &Query| {
        status::render(&Inputs {
            settings: &settings,
            snapshot: Some(&assessment.snapshot),
            assessment: Some(&assessment),
            silences: &[],
            inhibit_rules: &inhibit_rules,
            health: Ok(()),
            query,
            now,
        })
    };
    let views = [
        ("first page (problems first)", Query::default()),
        (
            "filter ?q=queue-0999",
            Query {
                q: Some("queue-0999".to_owned()),
                ..Query::default()
            },
        ),
        (
            "last page",
            Query {
                page: Some(usize::MAX.to_string()),
                ..Query::default()
            },
        ),
    ];
    println!(
        "queues {n}, alerts {} ({} firing), backlog windows complete {}",
        assessment.alerts.len(),
        assessment
            .alerts
            .iter()
            .filter(|a| a.state == rabbitmq_watch::alerting::State::Firing)
            .count(),
        assessment.backlog.complete
    );
    const RUNS: u32 = 20;
    for (name, query) in &views {
        let html = render(query);
        let mut times = Vec::with_capacity(RUNS as usize);
        for _ in 0..RUNS {
            let t = Instant::now();
            let page = render(query);
            times.push(t.elapsed());
            assert_eq!(page.len(), html.len());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mean = times.iter().sum::<Duration>() / RUNS;
        println!(
            "{name:<30} median {:6.2} ms  mean {:6.2} ms  max {:6.2} ms  page {:5.1} KB, {} sparklines",
            ms(times[times.len() / 2]),
            ms(mean),
            ms(times[times.len() - 1]),
            html.len() as f64 / 1024.0,
            html.matches("<svg").count()
        );
    }
}
