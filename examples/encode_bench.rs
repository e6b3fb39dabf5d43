//! Micro-benchmark of the sidecar's own CPU work per poll, without a broker: decoding one
//! unpaged, unsorted queue listing shaped like RabbitMQ 3.10's answer (the recorded
//! `tests/fixtures/3.10/queues-page.json` items, renamed) as it streams, selecting while decoding, encoding the exposition, building its text and gzip variants, and the
//! alert engine with the backlog detector over complete windows.
//! Prints figures; asserts nothing.
//!
//! `cargo run --release --example encode_bench -- 10000`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rabbitmq_watch::alerting::Engine;
use rabbitmq_watch::metrics::format::Format;
use rabbitmq_watch::metrics::{SidecarInfo, encode};
use rabbitmq_watch::rabbitmq::model::Queue;
use rabbitmq_watch::rabbitmq::stream::decode_each;
use rabbitmq_watch::selection::Selector;
use rabbitmq_watch::snapshot::Snapshot;

/// `VmRSS` and `VmHWM` of this process, in MB.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    format!(
        "RSS {:.1} MB (peak {:.1} MB)",
        field("VmRSS:"),
        field("VmHWM:")
    )
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/3.10/queues-page.json"
    ))
    .expect("fixture");
    let template: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    let items = template["items"].as_array().unwrap();
    // One unpaged listing, unsorted (`sort=`), as the broker sends it: interleaved vhosts.
    let listed: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut q = items[i % items.len()].clone();
            q["name"] = format!("bench-queue-{i:05}").into();
            q["vhost"] = format!("vhost-{}", i % 10).into();
            q
        })
        .collect();
    let body = serde_json::to_vec(&listed).unwrap();
    drop(listed);
    let bytes = body.len();

    // Decoded as it streams (16 KB chunks), selected while decoding.
    let cfg = rabbitmq_watch::config::load(None, Default::default(), &[]).unwrap();
    let start = Instant::now();
    let mut selector = Selector::new(&cfg.queues);
    decode_each::<Queue>(&body, 16 * 1024, |q| selector.push(q)).unwrap();
    let (queues, selection) = selector.finish();
    let decode = start.elapsed();
    drop(body);
    let rss_decoded = rss();

    let snapshot = Arc::new(
        Snapshot::builder()
            .started_at(SystemTime::now())
            .queues(queues)
            .selection(selection)
            // Dead-letter discovery ran and found none.
            .dead_letter_queues(Vec::new())
            .build(),
    );
    let info = SidecarInfo {
        poll_interval: Duration::from_secs(15),
        rule_names: vec![],
        notify_stats: None,
        audit: None,
        config_reload: None,
    };

    let start = Instant::now();
    let exposition = encode(Some(snapshot.clone()), None, None, &[], &info);
    let encoding = start.elapsed();
    let rss_encoded = rss();
    let om_gz = exposition.variants.get(Format::OpenMetrics, true);
    let start = Instant::now();
    let om = exposition.variants.get(Format::OpenMetrics, false);
    let plain = start.elapsed();
    let start = Instant::now();
    let text = exposition.variants.get(Format::Text, false);
    let to_text = start.elapsed();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mb = |b: usize| b as f64 / 1e6;
    println!("queues                              {n}");
    println!("JSON listing                        {:.2} MB", mb(bytes));
    println!("streamed decode + select            {:.1} ms", ms(decode));
    println!(
        "encode OpenMetrics, gzip streamed   {:.1} ms ({:.2} MB gzip of {:.2} MB)",
        ms(encoding),
        mb(om_gz.len()),
        mb(om.len())
    );
    println!("plain OpenMetrics (first ask)       {:.1} ms", ms(plain));
    println!(
        "text 0.0.4 (first ask)              {:.1} ms ({:.2} MB)",
        ms(to_text),
        mb(text.len())
    );
    println!(
        "per poll, Prometheus scraping       {:.1} ms (decode + encode)",
        ms(decode + encoding)
    );
    println!("after decoding                      {rss_decoded}");
    println!("after encoding                      {rss_encoded}");
    println!("after plain and text variants       {}", rss());
    drop(exposition);

    // The backlog detector alone, then the alert engine with the default rules and both
    // detectors (backlog: 10 min window, at most 20 samples; cluster: the single view): 25
    // polls 30 s apart each, so the last ones judge complete windows.
    let cfg = rabbitmq_watch::config::load(None, Default::default(), &[]).expect("defaults");
    let mut tracker = rabbitmq_watch::alerting::backlog::Tracker::new(cfg.alerting.backlog.clone());
    let mut observed = Duration::ZERO;
    for i in 0..25u64 {
        let mut poll = (*snapshot).clone();
        poll.started_at += Duration::from_secs(30 * i);
        let start = Instant::now();
        let r = tracker.observe(&poll);
        if i >= 20 {
            observed += start.elapsed();
        }
        drop(r);
    }
    println!(
        "backlog detector alone, judged      {:.1} ms per poll",
        ms(observed) / 5.0
    );
    let mut engine = Engine::with_backlog(cfg.alerting.rules, cfg.alerting.backlog);
    let mut judged = Duration::ZERO;
    for i in 0..25u64 {
        let mut poll = (*snapshot).clone();
        poll.started_at += Duration::from_secs(30 * i);
        let start = Instant::now();
        engine.evaluate(&poll, poll.started_at);
        if i >= 20 {
            judged += start.elapsed();
        }
    }
    let report = engine.backlog();
    println!(
        "evaluate (rules + detectors) judged {:.1} ms per poll ({} windows complete, {} samples = {:.1} MB, {} alerts)",
        ms(judged) / 5.0,
        report.complete,
        report.samples,
        mb(report.samples * size_of::<rabbitmq_watch::alerting::backlog::Sample>()),
        engine.alerts().count()
    );
    println!("after 25 evaluations                {}", rss());
}
