//! Memory of the sidecar at 10,000 queues (or the count given), without a broker, in a minute:
//! what RSS each part costs, measured phase by phase. The parts run on long-lived threads as in
//! the sidecar (the poll decodes on a runtime worker, the engine evaluates on another, the
//! exposition's variants are built on the blocking pool), so glibc's per-thread arenas play as
//! they do there.
//!
//! Phases, each followed by `VmRSS` and `VmHWM` (`/proc/self/status`):
//! 1. one snapshot decoded from JSON queue by queue, as `crate::rabbitmq::client` decodes the
//!    paged listing (10 vhosts; 9 in 10 queues hold 5 messages and no consumer, 1 in 10 has a
//!    consumer that acknowledges nothing);
//! 2. the polls (30 s apart, each a freshly decoded snapshot) until every backlog window is
//!    complete and ~11,000 alerts are active, the previous assessment and exposition held as
//!    the watch channels hold them;
//! 3. the variants of one exposition a plain scraper asks for, as `/metrics` serves them
//!    (OpenMetrics text, text 0.0.4, gzip of the text);
//! 4. `POLLS` more polls (default 20), each with the exposition and, with `PLAIN=1` (default),
//!    the plain text variant a `curl /metrics` asks for, and every 4th the `/api/v1/alerts`
//!    JSON (as `bench/scale_soak.sh` scrapes): RSS after each, to see growth.
//!
//! Run it with `MALLOC_ARENA_MAX=2` (or other glibc tunables) to compare the allocator's
//! share. Prints figures; asserts nothing.
//!
//! `cargo run --release --example memory_bench -- 10000`

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use rabbitmq_watch::alerting::{Assessment, Engine};
use rabbitmq_watch::metrics::format::Format;
use rabbitmq_watch::metrics::{Exposition, SidecarInfo, encode};
use rabbitmq_watch::rabbitmq::model::Queue;
use rabbitmq_watch::snapshot::Snapshot;

/// `VmRSS` and `VmHWM` of this process, in MB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Prints one line: the phase, RSS, the high-water mark and the change since `before`.
fn report(phase: &str, before: f64) -> f64 {
    let (now, peak) = rss();
    println!(
        "{phase:<52} RSS {now:6.1} MB  HWM {peak:6.1} MB  ({:+6.1} MB)",
        now - before
    );
    now
}

/// A job run on one of the [`Pool`]'s threads.
type Job = Box<dyn FnOnce() + Send>;

/// Long-lived threads, each running the jobs sent to it in order: the runtime's workers and
/// blocking threads, each with the malloc arena it was given.
struct Pool(Vec<mpsc::Sender<Job>>);

impl Pool {
    fn new(threads: usize) -> Pool {
        Pool(
            (0..threads)
                .map(|_| {
                    let (tx, rx) = mpsc::channel::<Job>();
                    thread::spawn(move || rx.into_iter().for_each(|job| job()));
                    tx
                })
                .collect(),
        )
    }

    /// Runs `f` on thread `i` (modulo the pool's size) and waits for its result.
    fn run<T: Send + 'static>(&self, i: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.0[i % self.0.len()]
            .send(job)
            .expect("pool thread alive");
        rx.recv().expect("job ran")
    }
}

/// The JSON of queue `i` at poll `poll`, as the management API sends it with the sidecar's
/// `columns` (the figures the engine bench uses): from poll 30 on 1 in 100 queues changed.
fn queue_json(i: usize, poll: u64) -> String {
    let consumed = i.is_multiple_of(10);
    let changed = poll >= 30 && (i as u64 + poll).is_multiple_of(100);
    let ready = 5 + u64::from(changed);
    let unacked = if consumed { 2 } else { 0 };
    format!(
        concat!(
            r#"{{"vhost":"vhost-{v}","name":"bench-queue-{i:05}","type":"classic","#,
            r#""state":"running","node":"rabbit@bench","messages":{m},"messages_ready":{r},"#,
            r#""messages_unacknowledged":{u},"consumers":{c},"durable":true,"#,
            r#""auto_delete":false,"exclusive":false,"arguments":{{}},"policy":null,"#,
            r#""effective_policy_definition":{{}},"messages_persistent":0,"#,
            r#""message_bytes":{b},"message_bytes_ready":{b},"message_bytes_unacknowledged":0,"#,
            r#""memory":20000,"message_stats":{{"publish":7,"deliver":{d},"ack":0,"#,
            r#""redeliver":0}}}}"#
        ),
        v = i % 10,
        i = i,
        m = ready + unacked,
        r = ready,
        u = unacked,
        c = u64::from(consumed),
        b = ready * 100,
        d = if consumed { 2 } else { 0 },
    )
}

/// The snapshot of poll `poll`: every queue decoded from its JSON, one at a time.
fn snapshot(n: usize, poll: u64, at: SystemTime) -> Arc<Snapshot> {
    let queues: Vec<Queue> = (0..n)
        .map(|i| serde_json::from_str(&queue_json(i, poll)).expect("valid queue JSON"))
        .collect();
    Arc::new(
        Snapshot::builder()
            .seq(poll + 1)
            .started_at(at)
            .queues(queues)
            .dead_letter_queues(Vec::new())
            .build(),
    )
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let steady: u64 = std::env::var("POLLS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(20);
    let plain = std::env::var("PLAIN").map_or(true, |p| p != "0");
    println!(
        "queues {n}, steady polls {steady}, plain scrapes {plain}, MALLOC_ARENA_MAX {}",
        std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".into())
    );
    println!(
        "sizes: Queue {} B, backlog Sample {} B, QueueBacklog {} B, Alert {} B",
        size_of::<Queue>(),
        size_of::<rabbitmq_watch::alerting::backlog::Sample>(),
        size_of::<rabbitmq_watch::alerting::backlog::QueueBacklog>(),
        size_of::<rabbitmq_watch::alerting::Alert>(),
    );
    // Two runtime workers, two blocking threads.
    let pool = Arc::new(Pool::new(4));
    let start_rss = report("start", 0.0);

    let cfg = rabbitmq_watch::config::load(None, Default::default(), &[]).expect("defaults");
    let engine = Arc::new(std::sync::Mutex::new(Engine::with_backlog(
        cfg.alerting.rules,
        cfg.alerting.backlog,
    )));
    let info = Arc::new(SidecarInfo {
        poll_interval: Duration::from_secs(30),
        rule_names: vec![],
        notify_stats: None,
        audit: None,
        config_reload: None,
    });
    let start = SystemTime::now() - Duration::from_secs(30 * 60);

    // 1. One snapshot.
    let first = pool.run(0, move || snapshot(n, 0, start));
    let mut last = report("1. one decoded snapshot", start_rss);
    drop(first);
    last = report("   ... dropped", last);

    // 2. and 4.: polls. What the watch channels hold between polls.
    let mut published: Option<(Arc<Assessment>, Arc<Exposition>)> = None;
    let poll = |p: u64, published: &mut Option<(Arc<Assessment>, Arc<Exposition>)>, plain: bool| {
        let at = start + Duration::from_secs(30 * p);
        let snap = pool.run(p as usize, move || snapshot(n, p, at));
        let engine = engine.clone();
        let assessment = pool.run(p as usize + 1, move || {
            let mut engine = engine.lock().expect("not poisoned");
            engine.evaluate(&snap, at);
            Arc::new(Assessment {
                snapshot: snap,
                backlog: engine.backlog().clone(),
                cluster: engine.cluster().clone(),
                alerts: engine.alerts().cloned().collect(),
                evaluated_at: at,
            })
        });
        let (a, info) = (assessment.clone(), info.clone());
        let exposition = pool.run(2, move || {
            Arc::new(encode(
                Some(a.snapshot.clone()),
                Some(a.backlog.clone()),
                Some(a.cluster.clone()),
                &a.alerts,
                &info,
            ))
        });
        if plain {
            let e = exposition.clone();
            // As `/metrics` serves it: written chunk by chunk to the client (here: dropped).
            pool.run(3 + p as usize % 2, move || {
                e.variants.write_plain(Format::Text, |_| true);
            });
        }
        if plain && p.is_multiple_of(4) {
            let a = assessment.clone();
            pool.run(p as usize, move || {
                serde_json::to_vec(&a.alerts).expect("serializable").len()
            });
        }
        // The channels drop the previous values when they take these.
        *published = Some((assessment, exposition));
    };
    let mut p = 1;
    while published
        .as_ref()
        .is_none_or(|(a, _)| a.backlog.incomplete > 0 || p < 30)
    {
        poll(p, &mut published, false);
        p += 1;
    }
    let (a, _) = published.as_ref().expect("polled");
    println!(
        "   after {p} polls: {} alerts, backlog windows complete {}, {} samples",
        a.alerts.len(),
        a.backlog.complete,
        a.backlog.samples
    );
    last = report("2. windows complete, alerts active (gzip exposition)", last);

    // 3. The variants a plain scraper asks for.
    let (_, e) = published.as_ref().expect("polled");
    for (label, format) in [
        ("3. + OpenMetrics text served", Format::OpenMetrics),
        ("   + text 0.0.4 served", Format::Text),
    ] {
        let mut bytes = 0;
        e.variants.write_plain(format, |chunk| {
            bytes += chunk.len();
            true
        });
        last = report(&format!("{label} ({:.1} MB)", bytes as f64 / 1e6), last);
    }
    let bytes = e.variants.get(Format::Text, true).len();
    last = report(
        &format!("   + text 0.0.4 gzip ({:.1} MB)", bytes as f64 / 1e6),
        last,
    );

    // 4. Steady polls.
    for i in 0..steady {
        poll(p, &mut published, plain);
        p += 1;
        last = report(&format!("4. steady poll {}", i + 1), last);
    }
    let _ = last;
    let (now, peak) = rss();
    println!("end: RSS {now:.1} MB, HWM {peak:.1} MB");
}
