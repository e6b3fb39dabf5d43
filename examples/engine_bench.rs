//! Benchmark of the alert engine at 10,000 queues (or the count given), without a broker: a
//! synthetic snapshot (10 vhosts; 9 in 10 queues hold messages without a consumer, 1 in 10 has
//! a consumer that acknowledges nothing) judged by the default rules and both detectors, 30 s
//! apart, until every backlog window is complete and ~10,000 queue alerts are active; then the
//! steady state: polls where 1 in 100 queues changed, each timed for the evaluation, the
//! publication (the [`Assessment`] the HTTP API, metrics and notifier read), the exposition
//! and the `/api/v1/alerts` JSON. Memory: RSS (`/proc/self/status`) after each stage, with the
//! previous assessment still held as the watch channel holds it. Prints figures; asserts
//! nothing.
//!
//! `cargo run --release --example engine_bench -- 10000`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rabbitmq_watch::alerting::{Assessment, Engine, State};
use rabbitmq_watch::metrics::{SidecarInfo, encode};
use rabbitmq_watch::rabbitmq::model::{MessageStats, Queue, QueueStats};
use rabbitmq_watch::snapshot::Snapshot;

/// CPU time this thread has run (`/proc/thread-self/schedstat`, nanoseconds): what to compare
/// on a shared machine, where wall times stretch with the load.
fn cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Runs `f`, returning its result, its wall time and its CPU time.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (wall, cpu0) = (Instant::now(), cpu());
    let out = f();
    (out, wall.elapsed(), cpu().saturating_sub(cpu0))
}

/// `VmRSS` of this process, in MB.
fn rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The queues of poll `poll`: every 10th has a consumer that acknowledges nothing (stalled),
/// the others hold 5 messages and no consumer; from poll 30 on, 1 in 100 queues (a different
/// hundredth each poll) has one more message.
fn queues(n: usize, poll: u64) -> Vec<Queue> {
    (0..n)
        .map(|i| {
            let consumed = i % 10 == 0;
            let changed = poll >= 30 && (i as u64 + poll).is_multiple_of(100);
            let ready = 5 + u64::from(changed);
            Queue {
                vhost: format!("vhost-{}", i % 10),
                name: format!("bench-queue-{i:05}"),
                queue_type: Some("classic".into()),
                state: Some("running".into()),
                node: Some("rabbit@bench".into()),
                messages: Some(ready + if consumed { 2 } else { 0 }),
                messages_ready: Some(ready),
                messages_unacknowledged: Some(if consumed { 2 } else { 0 }),
                consumers: Some(u64::from(consumed)),
                durable: Some(true),
                auto_delete: Some(false),
                exclusive: Some(false),
                message_bytes: Some(ready * 100),
                message_bytes_ready: Some(ready * 100),
                message_bytes_unacknowledged: Some(0),
                memory: Some(20_000),
                stats: QueueStats::new(Some(&MessageStats {
                    publish: Some(7),
                    deliver: Some(if consumed { 2 } else { 0 }),
                    ack: Some(0),
                    redeliver: Some(0),
                    ..MessageStats::default()
                })),
                ..Queue::default()
            }
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rss_start = rss();
    let cfg = rabbitmq_watch::config::load(None, Default::default(), &[]).expect("defaults");
    let mut engine = Engine::with_backlog(cfg.alerting.rules, cfg.alerting.backlog);
    let info = SidecarInfo {
        poll_interval: Duration::from_secs(30),
        rule_names: vec![],
        notify_stats: None,
        audit: None,
        config_reload: None,
    };
    let start = SystemTime::now() - Duration::from_secs(30 * 60);
    // The published assessment, as the watch channel holds it until the next one.
    let mut published: Option<Arc<Assessment>> = None;
    // Per stage: (wall, CPU) summed over the measured polls.
    let mut sums = [(Duration::ZERO, Duration::ZERO); 4];
    let (mut measured, mut api_bytes, mut rss_snapshot) = (0u32, 0, 0.0);
    let mut first = (Duration::ZERO, Duration::ZERO);
    for poll in 0..40u64 {
        let at = start + Duration::from_secs(30 * poll);
        let before = rss();
        let snapshot = Arc::new(
            Snapshot::builder()
                .seq(poll + 1)
                .started_at(at)
                .queues(queues(n, poll))
                .dead_letter_queues(Vec::new())
                .build(),
        );
        if poll == 0 {
            rss_snapshot = rss() - before;
        }
        let ((), w0, c0) = timed(|| engine.evaluate(&snapshot, at));
        let (assessment, w1, c1) = timed(|| {
            Arc::new(Assessment {
                snapshot,
                backlog: engine.backlog().clone(),
                cluster: engine.cluster().clone(),
                alerts: engine.alerts().cloned().collect(),
                evaluated_at: at,
            })
        });
        // The channel drops the previous assessment when it takes the new one.
        published = Some(assessment.clone());
        let (exposition, w2, c2) = timed(|| {
            encode(
                Some(assessment.snapshot.clone()),
                Some(assessment.backlog.clone()),
                Some(assessment.cluster.clone()),
                &assessment.alerts,
                &info,
            )
        });
        drop(exposition);
        let (body, w3, c3) =
            timed(|| serde_json::to_vec(&assessment.alerts).expect("serializable"));
        if poll == 20 {
            first = (w0, c0);
        }
        if poll >= 30 {
            measured += 1;
            for (sum, (w, c)) in sums
                .iter_mut()
                .zip([(w0, c0), (w1, c1), (w2, c2), (w3, c3)])
            {
                sum.0 += w;
                sum.1 += c;
            }
            api_bytes = body.len();
        }
    }
    let assessment = published.expect("40 polls");
    let count = |s: State| assessment.alerts.iter().filter(|a| a.state == s).count();
    let per = |(wall, cpu): (Duration, Duration)| {
        format!(
            "{:6.1} ms CPU ({:.1} ms wall)",
            ms(cpu) / f64::from(measured),
            ms(wall) / f64::from(measured)
        )
    };
    println!("queues                                 {n}");
    println!(
        "alerts                                 {} ({} firing, {} pending), backlog windows complete {}",
        assessment.alerts.len(),
        count(State::Firing),
        count(State::Pending),
        assessment.backlog.complete
    );
    println!(
        "evaluate, first poll with full windows {:6.1} ms CPU ({:.1} ms wall)",
        ms(first.1),
        ms(first.0)
    );
    println!("evaluate, steady (1% changed), per poll {}", per(sums[0]));
    println!("publish the assessment, per poll       {}", per(sums[1]));
    println!("encode the exposition, per poll        {}", per(sums[2]));
    println!(
        "/api/v1/alerts JSON ({:.2} MB)          {}",
        api_bytes as f64 / 1e6,
        per(sums[3])
    );
    println!("RSS at start                           {rss_start:.1} MB");
    println!("RSS growth for one snapshot            {rss_snapshot:.1} MB");
    println!("RSS after 40 polls                     {:.1} MB", rss());
}
