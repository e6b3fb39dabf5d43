//! The backlog detector: is a queue falling behind, why, and when will it hurt.
//!
//! Each exported queue keeps a bounded sliding window of [`Sample`]s (depth, consumers and the
//! cumulative message counters of `/api/queues`, one per poll, thinned to at most
//! `alerting.backlog.max_samples`). Every poll, [`Tracker::observe`] updates the windows from
//! the snapshot (queues that vanished are dropped, a counter that went backwards restarts the
//! window) and judges every queue whose window is complete, Burrow-style ([`Analysis`]):
//!
//! - **NO_CONSUMERS**: messages are ready and no consumer is attached;
//! - **REDELIVERING**: redelivered / delivered over the window is above
//!   `alerting.backlog.redelivery_threshold` (consumers reject with requeue or crash);
//! - **STALLED**: consumers are attached throughout and messages wait throughout, but nothing
//!   was consumed (acknowledged, or delivered without acknowledgement) across the window and
//!   the depth never went down;
//! - **GROWING**: the ready count never reached 0 and never decreased between two samples, and
//!   rose over the window;
//! - **OK**: otherwise (it drained to 0 somewhere in the window, or it is shrinking).
//!
//! Which counters are known is decided per queue and per sample (`Known`): with the
//! management statistics all of them (a missing one is 0: no such traffic yet); with
//! rabbitmq_prometheus the delivery counters (deliver, ack, redeliver) when the plugin serves
//! them for the queue (`queue_delivery_metrics`, 4.0.5 does, 3.10.8 does not) and never the
//! publish counter; with statistics disabled none. A counter is used only when it was
//! reported at every sample of the window (an unreported one keeps its last value, so one
//! that vanishes or comes back is never a false rate). Without the delivery counters the depth
//! and consumers are still judged: NO_CONSUMERS, GROWING (the cause then says the rates are
//! unknown and why), time to drain and to overflow from the depth's slope, the exact oldest
//! age when timestamped; STALLED, REDELIVERING and the rates are unknown, never read from a
//! counter taken as 0. With them but without the publish counter, STALLED, REDELIVERING and
//! the egress rate are judged; the ingress rate and the age estimate stay unknown.
//!
//! From the window's rates it predicts the time to drain and the time until a length limit is
//! hit, and estimates the oldest message's age when publishers do not set timestamps. Pure:
//! time comes from the snapshots (`started_at`), so sequences of samples can be tested without
//! a broker.
//!
//! Memory: a queue holds at most `max_samples + 2` samples, stored as 40 bytes each (a
//! [`Sample`] is 72: see `samples`), default 20: about 0.9 KB per queue, 9 MB at 10,000
//! queues, plus its names. Each
//! [`Report`] also copies the depth history for the status page's sparklines (4 bytes a sample,
//! the times shared between queues: about 1 MB at 10,000 queues; see `depth`).

use crate::config::BacklogConfig;
use crate::rabbitmq::FigureSource;
use crate::rabbitmq::model::Queue;
use crate::snapshot::Snapshot;

mod depth;
mod samples;
mod window;
mod words;
pub use depth::Depth;
use depth::Depths;
use window::{Known, Window};
pub use words::{human, human_floor};

/// One observation of a queue. Counters are cumulative as RabbitMQ reports them (0 when the
/// queue has seen no such traffic yet).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// When the poll that read it started, in seconds since the Unix epoch.
    pub at: f64,
    /// `messages_ready`.
    pub ready: u64,
    /// `messages_unacknowledged`.
    pub unacked: u64,
    /// `message_bytes_ready` (0 when not reported).
    pub ready_bytes: u64,
    /// `consumers`.
    pub consumers: u64,
    /// `message_stats.publish`: messages that entered the queue from publishers.
    pub published: u64,
    /// `message_stats.deliver + deliver_no_ack + get + get_no_ack`: deliveries, redeliveries
    /// included.
    pub delivered: u64,
    /// `message_stats.ack + deliver_no_ack + get_no_ack`: messages consumed for good.
    pub consumed: u64,
    /// `message_stats.redeliver`: deliveries of messages delivered before.
    pub redelivered: u64,
}

impl Sample {
    /// The sample of `q` at `at`; `None` when the queue did not report its depth or consumers.
    /// A missing counter reads as 0 (no such traffic yet); whether the broker collects
    /// statistics at all is the [`Tracker`]'s concern.
    pub fn of(q: &Queue, at: f64) -> Option<Sample> {
        let stats = q.message_stats();
        let stats = stats.as_ref();
        let c = |f: fn(&crate::rabbitmq::model::MessageStats) -> Option<u64>| {
            stats.and_then(f).unwrap_or(0)
        };
        Some(Sample {
            at,
            ready: q.messages_ready?,
            unacked: q.messages_unacknowledged?,
            ready_bytes: q.message_bytes_ready.unwrap_or(0),
            consumers: q.consumers?,
            published: c(|s| s.publish),
            delivered: c(|s| s.deliver)
                + c(|s| s.deliver_no_ack)
                + c(|s| s.get)
                + c(|s| s.get_no_ack),
            consumed: c(|s| s.ack) + c(|s| s.deliver_no_ack) + c(|s| s.get_no_ack),
            redelivered: c(|s| s.redeliver),
        })
    }

    /// Whether any cumulative counter is lower than in `before` (the queue was re-created, or
    /// its node restarted and its statistics began again).
    fn counters_went_back(&self, before: &Sample) -> bool {
        self.published < before.published
            || self.delivered < before.delivered
            || self.consumed < before.consumed
            || self.redelivered < before.redelivered
    }

    fn waiting(&self) -> u64 {
        self.ready + self.unacked
    }
}

/// The classification of a queue, most urgent first when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Messages are ready and nobody consumes.
    NoConsumers,
    /// Consumers keep getting the same messages back.
    Redelivering,
    /// Consumers are attached but consume nothing.
    Stalled,
    /// The backlog rose across the whole window.
    Growing,
    /// Keeping up.
    Ok,
}

impl Status {
    /// The `status` label value: `ok`, `growing`, `stalled`, `no_consumers`, `redelivering`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Growing => "growing",
            Status::Stalled => "stalled",
            Status::NoConsumers => "no_consumers",
            Status::Redelivering => "redelivering",
        }
    }
}

/// What happens when a queue reaches its length limit (`x-overflow` / policy `overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// `drop-head` (the default): the oldest messages are dropped, or dead-lettered when the
    /// queue has a dead-letter exchange.
    DropHead {
        /// Whether the queue has a dead-letter exchange.
        dead_letters: bool,
    },
    /// `reject-publish`: new messages are refused (publishers with confirms get a nack).
    RejectPublish,
    /// `reject-publish-dlx`: new messages are refused and dead-lettered.
    RejectPublishDlx,
}

impl Overflow {
    /// The queue's overflow behaviour.
    pub fn of(q: &Queue) -> Overflow {
        match q.setting("overflow") {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead {
                dead_letters: q.setting("dead-letter-exchange").is_some(),
            },
        }
    }

    /// The `overflow` label value: `drop-head`, `reject-publish` or `reject-publish-dlx`.
    pub fn label(self) -> &'static str {
        match self {
            Overflow::DropHead { .. } => "drop-head",
            Overflow::RejectPublish => "reject-publish",
            Overflow::RejectPublishDlx => "reject-publish-dlx",
        }
    }

    /// What the limit does, in operators' words.
    pub fn consequence(self) -> &'static str {
        match self {
            Overflow::DropHead { dead_letters: true } => {
                "drop-head: the oldest messages will be dead-lettered"
            }
            Overflow::DropHead {
                dead_letters: false,
            } => "drop-head: the oldest messages will be dropped (data loss)",
            Overflow::RejectPublish => "reject-publish: publishers will be refused",
            Overflow::RejectPublishDlx => {
                "reject-publish-dlx: new messages will be refused and dead-lettered"
            }
        }
    }
}

/// The judgement of one queue whose window is complete.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The most urgent of the flags below, or [`Status::Ok`].
    pub status: Status,
    /// GROWING: ready never 0, never decreased, and rose over the window.
    pub growing: bool,
    /// STALLED: consumers attached and messages waiting at every sample, nothing consumed,
    /// the depth (ready + unacknowledged) never down.
    pub stalled: bool,
    /// NO_CONSUMERS: ready messages and no consumer at the latest sample.
    pub no_consumers: bool,
    /// REDELIVERING: redelivery ratio above the threshold.
    pub redelivering: bool,
    /// Seconds between the oldest and the newest sample.
    pub span: f64,
    /// `alerting.backlog.window` in seconds.
    pub window: f64,
    /// Seconds over which the status's condition was seen holding (from when it began, for
    /// GROWING and STALLED; the span otherwise): less than `window` while the window is not
    /// yet full.
    pub judged_for: f64,
    /// Ready messages now.
    pub ready: u64,
    /// Unacknowledged messages now.
    pub unacked: u64,
    /// Ready now minus ready at the window's start (negative: it shrank).
    pub ready_growth: i64,
    /// Messages published into the queue per second over the window (what the depth gained
    /// plus what was consumed, when nothing was published: dead-lettered messages); meaningful
    /// only with `counters` and `publish_counter`.
    pub ingress_rate: f64,
    /// Messages consumed for good per second over the window; meaningful only with
    /// `counters`.
    pub egress_rate: f64,
    /// Redelivered / delivered over the window; `None` without deliveries or without the
    /// delivery counters (`counters`).
    pub redelivery_ratio: Option<f64>,
    /// Seconds until the queue is empty at the window's net rate (least-squares slope of
    /// ready + unacknowledged): 0 when empty, infinite when not shrinking.
    pub time_to_drain: f64,
    /// Seconds until `max-length` (ready messages) or `max-length-bytes` (ready bytes) is hit
    /// at the window's net rate: 0 when at the limit, infinite unless the detector calls the
    /// queue growing (so a prediction never contradicts the status); `None` when the queue has
    /// no length limit. With the behaviour at the limit.
    pub time_to_overflow: Option<(f64, Overflow)>,
    /// Estimated age in seconds of the oldest ready message, from when the publish counter
    /// passed it (assumes FIFO; `None` when older than the window, without ready messages, or
    /// when the broker reports `head_message_timestamp`, which is exact).
    pub oldest_age_estimate: Option<f64>,
    /// Seconds since the consumed counter last moved, or since the detector first saw the
    /// queue when it never moved since (then `idle_since_seen` is false: "at least").
    pub idle_for: f64,
    /// Whether the consumed counter was seen moving, so `idle_for` is exact rather than a
    /// lower bound.
    pub idle_since_seen: bool,
    /// Whether the queue's delivery counters (`message_stats.deliver`, `ack`, `redeliver`)
    /// were known at every sample of the window: from the management API while the broker
    /// collects message statistics (`/api/overview` `disable_stats` false), or from
    /// rabbitmq_prometheus's `queue_delivery_metrics` where the plugin serves them for the
    /// queue. Without them STALLED and REDELIVERING cannot be told (their rule fields are
    /// unknown), and `egress_rate` and `redelivery_ratio` mean nothing.
    pub counters: bool,
    /// Whether the queue's publish counter (`message_stats.publish`) was known at every sample
    /// of the window (management statistics only: rabbitmq_prometheus has no per-queue
    /// publish counter). Without it `ingress_rate` means nothing (its rule field is unknown)
    /// and there is no age estimate.
    pub publish_counter: bool,
    /// Why `counters`, or else `publish_counter`, is false, in operators' words for the
    /// cause (e.g. `this source has no per-queue publish counter`); empty when both are true.
    pub unknown_reason: &'static str,
    /// Whether deliveries happened in the window (to tell "prefetch full" from "receiving but
    /// not acknowledging").
    pub delivering: bool,
    /// Whether the queue is a dead-letter queue (never NO_CONSUMERS: nobody consumes one by
    /// design).
    pub dead_letter: bool,
    /// For a delay queue (a message TTL and a dead-letter exchange, no consumer): the TTL in
    /// seconds and whether its messages leave on time (the oldest is no older than the TTL,
    /// and once the window covers a TTL no more wait than one TTL's worth of arrivals).
    /// While they do, it is neither NO_CONSUMERS nor GROWING.
    pub delay: Option<(f64, bool)>,
}

/// The detector's view of one exported queue this poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueBacklog {
    /// The judgement; `None` while the window is incomplete (or the queue's depth is not
    /// reported): trend rules then see "unknown" and never fire.
    pub analysis: Option<Analysis>,
    /// Whether the queue receives dead-lettered messages (discovered or matching
    /// `alerting.backlog.dead_letter_queues`); `None` before the first successful discovery.
    pub dead_letter: Option<bool>,
    /// The window's depth history, oldest first: `(at, messages_ready)` of each sample held
    /// (at most `max_samples + 2`; `at` in seconds since the Unix epoch). A read-only copy for
    /// the status page's sparkline.
    pub depth: Depth,
}

/// The detector's output for one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// One entry per queue of the snapshot's queue listing, in the same order; empty when the
    /// listing failed.
    pub queues: Vec<QueueBacklog>,
    /// Queues whose window is complete.
    pub complete: usize,
    /// Queues whose window is not complete yet.
    pub incomplete: usize,
    /// Samples held in all windows (memory: 40 bytes each, see `samples`).
    pub samples: usize,
}

/// The windows of every exported queue, sorted by (vhost, name), and the last known set of
/// dead-letter queues. Owned by the alerting task.
#[derive(Debug)]
pub struct Tracker {
    /// `alerting.backlog.*`.
    config: BacklogConfig,
    /// One window per queue of the last successful listing, sorted by (vhost, name).
    windows: Vec<Window>,
    /// The dead-letter queues of the last successful discovery (sorted (vhost, queue)).
    dead_letters: Option<Vec<(String, String)>>,
    /// Whether queue figures come from the management statistics (the broker collects them
    /// and the source is the management API), as of the last overview read: then every
    /// counter is known, a missing one being 0.
    statistics: bool,
}

impl Tracker {
    /// A tracker with no history.
    pub fn new(config: BacklogConfig) -> Self {
        let dead_letters = if config.discover_dead_letter_queues {
            None
        } else {
            Some(Vec::new())
        };
        Self {
            config,
            windows: Vec::new(),
            dead_letters,
            statistics: false,
        }
    }

    /// Takes new settings (a configuration reload), keeping every queue's window. A window
    /// keeps the sample capacity it was created with; turning dead-letter discovery on starts
    /// it afresh.
    pub fn set_config(&mut self, config: BacklogConfig) {
        if config.discover_dead_letter_queues != self.config.discover_dead_letter_queues {
            self.dead_letters = if config.discover_dead_letter_queues {
                None
            } else {
                Some(Vec::new())
            };
        }
        self.config = config;
    }

    /// Adds the snapshot's samples to the windows and judges every queue. When the queue
    /// listing failed nothing changes and the report judges no queue (unknown); its `samples`
    /// still counts what the kept windows hold.
    pub fn observe(&mut self, s: &Snapshot) -> Report {
        let Some(queues) = s.queues.ok() else {
            return Report {
                samples: self.windows.iter().map(|w| w.samples.len()).sum(),
                ..Report::default()
            };
        };
        if let Some(Ok(found)) = s.dead_letter_queues.as_ref().map(|f| &f.result) {
            self.dead_letters = Some(found.clone());
        }
        if let Some(overview) = s.overview.ok() {
            // With the management statistics every counter is known (absent: no traffic yet).
            // With rabbitmq_prometheus a queue's counters are known only where the plugin
            // served them (see `Known::of`): never the publish counter, and the delivery
            // counters only where the node has `queue_delivery_metrics` (4.0.5, not 3.10.8).
            self.statistics = overview.stats_enabled() && s.source == FigureSource::Management;
        }
        let at = s.started_at_secs();
        let window = self.config.window.as_secs_f64();
        let spacing = window / self.config.max_samples as f64;
        let mut old = std::mem::take(&mut self.windows).into_iter().peekable();
        let mut windows = Vec::with_capacity(queues.len());
        let mut report = Report {
            queues: Vec::with_capacity(queues.len()),
            ..Report::default()
        };
        let mut depths = Depths::default();
        for q in queues {
            let key = (q.vhost.as_str(), q.name.as_str());
            // Both sides are sorted by (vhost, name): skip the windows of vanished queues.
            while old.peek().is_some_and(|w| (&*w.vhost, &*w.name) < key) {
                old.next();
            }
            let mut w = match old.next_if(|w| (&*w.vhost, &*w.name) == key) {
                Some(w) => w,
                // At most `max_samples + 2` samples are ever held (see `push`): allocated
                // once, exactly, so the documented bound is the real one.
                None => Window::new(q, self.config.max_samples + 2, at),
            };
            if let Some(sample) = Sample::of(q, at) {
                w.push(sample, Known::of(q, self.statistics), window, spacing);
            }
            let dead_letter = self.is_dead_letter(q);
            let analysis = w.analyse(q, &self.config, at, s.source, dead_letter == Some(true));
            match &analysis {
                Some(_) => report.complete += 1,
                None => report.incomplete += 1,
            }
            report.samples += w.samples.len();
            report.queues.push(QueueBacklog {
                analysis,
                dead_letter,
                depth: depths.depth(w.samples.iter().map(|s| (s.at, s.ready))),
            });
            windows.push(w);
        }
        self.windows = windows;
        report
    }

    fn is_dead_letter(&self, q: &Queue) -> Option<bool> {
        if self
            .config
            .dead_letter_queues
            .as_ref()
            .is_some_and(|r| r.is_match(&q.name))
        {
            return Some(true);
        }
        let found = self.dead_letters.as_ref()?;
        Some(
            found
                .binary_search_by(|(v, n)| (v.as_str(), n.as_str()).cmp(&(&q.vhost, &q.name)))
                .is_ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::words::rate;
    use super::*;
    use crate::rabbitmq::model::{MessageStats, QueueStats};

    /// Every counter known, as with the management statistics.
    const ALL: Known = Known {
        delivery: true,
        publish: true,
    };

    fn config(window: u64) -> BacklogConfig {
        BacklogConfig {
            window: Duration::from_secs(window),
            min_completeness: 0.9,
            max_samples: 20,
            ..BacklogConfig::default()
        }
    }

    /// A queue with depth and counters (publish, deliver, ack, redeliver).
    fn queue(ready: u64, unacked: u64, consumers: u64, counters: [u64; 4]) -> Queue {
        let [publish, deliver, ack, redeliver] = counters;
        Queue {
            vhost: "/".into(),
            name: "q".into(),
            messages_ready: Some(ready),
            messages_unacknowledged: Some(unacked),
            consumers: Some(consumers),
            stats: QueueStats::new(Some(&MessageStats {
                publish: Some(publish),
                deliver: Some(deliver),
                ack: Some(ack),
                redeliver: Some(redeliver),
                ..MessageStats::default()
            })),
            ..Queue::default()
        }
    }

    /// Feeds `queues` (one per `step` seconds, from t=0) to a window and judges the last.
    fn judge(window: u64, step: u64, queues: &[Queue]) -> Option<Analysis> {
        let cfg = config(window);
        let mut w = Window::new(&Queue::default(), 0, 0.0);
        let spacing = window as f64 / cfg.max_samples as f64;
        let mut now = 0.0;
        for (i, q) in queues.iter().enumerate() {
            now = (i as u64 * step) as f64;
            w.push(Sample::of(q, now).unwrap(), ALL, window as f64, spacing);
        }
        w.analyse(
            queues.last().unwrap(),
            &cfg,
            now,
            FigureSource::Management,
            false,
        )
    }

    /// `n` polls 10 s apart of a queue whose state at poll `i` is `f(i)`.
    fn series(n: u64, f: impl Fn(u64) -> Queue) -> Vec<Queue> {
        (0..n).map(f).collect()
    }

    #[test]
    fn an_incomplete_window_is_not_judged() {
        // 60 s window, samples 10 s apart: 50 s covered is < 0.9 × 60.
        let qs = series(6, |i| {
            queue(100 + i * 50, 0, 1, [i * 100, i * 50, i * 50, 0])
        });
        assert_eq!(judge(60, 10, &qs), None);
        let qs = series(7, |i| {
            queue(100 + i * 50, 0, 1, [i * 100, i * 50, i * 50, 0])
        });
        assert!(judge(60, 10, &qs).is_some(), "60 s covered");
    }

    #[test]
    fn producer_faster_than_consumer_is_growing_with_rates_in_the_cause() {
        // 10 msg/s in, 4 msg/s out: ready grows 6/s.
        let qs = series(13, |i| {
            queue(10 + i * 60, 1, 1, [i * 100, i * 40, i * 40, 0])
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.growing && !a.stalled && !a.no_consumers && !a.redelivering);
        assert_eq!(a.status, Status::Growing);
        assert_eq!(a.cause(), "ingress 10 msg/s > egress 4 msg/s");
        assert_eq!(a.ready_growth, 720);
        assert_eq!(a.time_to_drain, f64::INFINITY);
        assert_eq!(a.time_to_overflow, None, "no limit");
    }

    #[test]
    fn time_to_overflow_follows_the_net_rate_and_names_the_behaviour() {
        let limit = |q: &mut Queue, overflow: Option<&str>| {
            let mut args = serde_json::json!({"x-max-length": 1000});
            if let Some(o) = overflow {
                args["x-overflow"] = o.into();
            }
            *q = serde_json::from_value(serde_json::json!({
                "vhost": "/", "name": "q",
                "messages_ready": q.messages_ready, "messages_unacknowledged": 0,
                "consumers": 1, "arguments": args,
                "message_stats": {"publish": q.message_stats().unwrap().publish}
            }))
            .unwrap();
        };
        // Ready rises 5/s from 100: at 700 after 120 s; 300 left at 5/s = 60 s.
        let mut qs = series(13, |i| queue(100 + i * 50, 0, 1, [i * 50, 0, 0, 0]));
        for q in &mut qs {
            limit(q, None);
        }
        let a = judge(120, 10, &qs).unwrap();
        let (t, overflow) = a.time_to_overflow.unwrap();
        assert!((t - 60.0).abs() < 0.5, "{t}");
        assert_eq!(
            overflow,
            Overflow::DropHead {
                dead_letters: false
            }
        );
        assert_eq!(
            a.details()["overflow"],
            "drop-head: the oldest messages will be dropped (data loss)"
        );
        assert_eq!(a.details()["time_to_overflow"], "1m");
        for q in &mut qs {
            limit(q, Some("reject-publish"));
        }
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.time_to_overflow.unwrap().1, Overflow::RejectPublish);
        // At the limit: 0, whatever the slope.
        let mut full = series(13, |_| queue(1000, 0, 0, [0, 0, 0, 0]));
        for q in &mut full {
            limit(q, None);
        }
        assert_eq!(
            judge(120, 10, &full).unwrap().time_to_overflow.unwrap().0,
            0.0
        );
    }

    #[test]
    fn a_shrinking_queue_is_ok_and_predicts_its_drain() {
        // 1000 → 400 over 120 s: −5/s; 400 left: 80 s.
        let qs = series(13, |i| queue(1000 - i * 50, 0, 2, [0, i * 50, i * 50, 0]));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.status, Status::Ok);
        assert!((a.time_to_drain - 80.0).abs() < 0.5, "{}", a.time_to_drain);
        assert_eq!(a.cause(), "keeping up");
    }

    #[test]
    fn a_backlog_that_drained_to_zero_in_the_window_is_ok() {
        // Grows, except one sample at 0 (Burrow: OK if it reached ~0 in the window).
        let qs = series(13, |i| {
            let ready = if i == 3 { 0 } else { 10 + i * 20 };
            queue(ready, 0, 1, [i * 30, i * 10, i * 10, 0])
        });
        assert_eq!(judge(120, 10, &qs).unwrap().status, Status::Ok);
        // One decrease between consecutive samples: not growing either.
        let qs = series(13, |i| {
            let ready = if i == 6 { 5 } else { 10 + i * 20 };
            queue(ready, 0, 1, [i * 30, i * 10, i * 10, 0])
        });
        assert_eq!(judge(120, 10, &qs).unwrap().status, Status::Ok);
    }

    #[test]
    fn a_steady_flow_that_keeps_up_is_ok() {
        // Ready hovers 0..3 while 20 msg/s flow through.
        let qs = series(13, |i| queue(i % 4, 2, 1, [i * 200, i * 200, i * 199, 0]));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.status, Status::Ok);
        assert!(!a.growing && !a.stalled && !a.redelivering && !a.no_consumers);
    }

    #[test]
    fn consumers_that_stop_acking_are_stalled_with_prefetch_full() {
        // Prefetch 10 delivered early, then nothing moves for the whole window.
        let qs = series(25, |i| {
            let ack = if i < 5 { i * 10 } else { 50 };
            queue(40, 10, 1, [100, 60, ack, 0])
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.stalled);
        assert_eq!(a.status, Status::Stalled);
        assert_eq!(
            a.cause(),
            "consumers stalled (prefetch full, no acks for 3m)"
        );
        assert!(!a.growing, "the depth did not rise");
    }

    #[test]
    fn consumers_that_reject_with_requeue_are_redelivering_not_stalled() {
        // 10 messages bounce: every delivery after the first round is a redelivery.
        let qs = series(13, |i| queue(9, 1, 1, [10, 10 + i * 30, 0, i * 30]));
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.redelivering && !a.stalled);
        assert_eq!(a.status, Status::Redelivering);
        assert_eq!(a.redelivery_ratio, Some(1.0));
        assert_eq!(a.cause(), "redelivery 100 %");
        // 3 redeliveries in 100 deliveries: below 5 %.
        let qs = series(13, |i| queue(0, 1, 1, [i * 100, i * 100, i * 100, i * 3]));
        let a = judge(120, 10, &qs).unwrap();
        assert!(!a.redelivering, "{:?}", a.redelivery_ratio);
    }

    #[test]
    fn waiting_messages_without_consumers_are_no_consumers() {
        let qs = series(13, |_| queue(10, 0, 0, [10, 0, 0, 0]));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.status, Status::NoConsumers);
        assert_eq!(a.cause(), "no consumers");
        assert!(!a.stalled, "no consumer attached");
    }

    #[test]
    fn the_oldest_message_age_is_estimated_from_the_publish_counter() {
        // 10 msg/s published from t=0, nothing consumed after t=60: at t=120 the 600 ready are
        // those published since t=60 -> the oldest is ~60 s old.
        let qs = series(13, |i| {
            let t = i * 10;
            let published = t * 10;
            let consumed = published.min(600);
            queue(
                published - consumed,
                0,
                1,
                [published, consumed, consumed, 0],
            )
        });
        let a = judge(120, 10, &qs).unwrap();
        let age = a.oldest_age_estimate.unwrap();
        assert!((age - 60.0).abs() < 0.5, "{age}");
        // A backlog older than the window: no estimate.
        let qs = series(13, |i| queue(5000, 0, 0, [5000 + i, 0, 0, 0]));
        assert_eq!(judge(120, 10, &qs).unwrap().oldest_age_estimate, None);
    }

    #[test]
    fn a_counter_going_back_restarts_the_window() {
        // The queue was re-created at poll 10: its counters start again.
        let qs = series(13, |i| {
            if i < 10 {
                queue(10 + i, 0, 1, [i * 100, i * 99, i * 99, 0])
            } else {
                queue(1, 0, 1, [i - 10, i - 10, i - 10, 0])
            }
        });
        assert_eq!(judge(120, 10, &qs), None, "only 3 samples since the reset");
    }

    #[test]
    fn samples_are_thinned_to_the_bound_and_cover_the_window() {
        let cfg = config(100);
        let mut w = Window::new(&Queue::default(), 0, 0.0);
        // One poll per second for 10 minutes into a 100 s window of at most 20 samples.
        for t in 0..600 {
            let q = queue(t, 0, 1, [t, 0, 0, 0]);
            w.push(Sample::of(&q, t as f64).unwrap(), ALL, 100.0, 100.0 / 20.0);
        }
        assert!(
            w.samples.len() <= cfg.max_samples + 2,
            "{}",
            w.samples.len()
        );
        let span = w.samples.back().unwrap().at - w.samples.front().unwrap().at;
        assert!((100.0..=105.0).contains(&span), "{span}");
        assert_eq!(w.samples.back().unwrap().at, 599.0, "the newest is current");
        assert_eq!(size_of::<Sample>(), 72, "the documented bound");
    }

    #[test]
    fn durations_and_rates_read_like_an_operator_would_write_them() {
        assert_eq!(human(45.4), "45s");
        assert_eq!(human(250.0), "4m");
        assert_eq!(human(7500.0), "2h 5m");
        assert_eq!(rate(250.2), "250");
        assert_eq!(rate(4.0), "4");
        assert_eq!(rate(0.25), "0.2");
    }

    #[test]
    fn time_to_overflow_is_unknown_unless_the_detector_calls_the_queue_growing() {
        let limited = |ready: u64, publish: u64| -> Queue {
            serde_json::from_value(serde_json::json!({
                "vhost": "/", "name": "q",
                "messages_ready": ready, "messages_unacknowledged": 0,
                "consumers": 1, "arguments": {"x-max-length": 1000},
                "message_stats": {"publish": publish, "deliver": publish, "ack": publish}
            }))
            .unwrap()
        };
        // Rising fast, then drained to 0 at the last poll: the slope over the window is still
        // positive, but the queue is not growing (it is empty).
        let qs = series(13, |i| {
            if i == 12 {
                limited(0, i * 100)
            } else {
                limited(100 + i * 60, i * 100)
            }
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(!a.growing);
        assert_eq!(
            a.time_to_overflow.unwrap().0,
            f64::INFINITY,
            "absent unless growing"
        );
        assert_eq!(a.details()["time_to_overflow"], "not growing");
        // Rising with one dip: not growing by the detector's rule, so no prediction either.
        let qs = series(13, |i| {
            limited(if i == 6 { 300 } else { 100 + i * 60 }, i * 100)
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(!a.growing);
        assert_eq!(a.time_to_overflow.unwrap().0, f64::INFINITY);
        // Growing: predicted, and the cause says why.
        let qs = series(13, |i| limited(100 + i * 60, i * 100));
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.growing && a.time_to_overflow.unwrap().0.is_finite());
        assert_ne!(a.cause(), "keeping up");
        // At the limit and steady (drop-head keeps it there): 0, and the cause says so.
        let qs = series(13, |i| limited(1000, i * 100));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.time_to_overflow.unwrap().0, 0.0);
        assert_eq!(a.cause(), "at its length limit");
    }

    #[test]
    fn a_printed_inequality_holds() {
        // Ready rose at every poll but more was consumed than published over the window
        // (a stall's recovery: acks moved, depth not yet).
        let qs = series(13, |i| {
            queue(100 + i, 300, 1, [i * 100, i * 150, i * 150, 0])
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.growing);
        assert_eq!(
            a.cause(),
            "ready +12 in 2m (ingress 10 msg/s, egress 15 msg/s)"
        );
        // Rates that print the same are not "greater" either.
        let qs = series(13, |i| queue(100 + i, 0, 1, [i * 100, i * 99, i * 99, 0]));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.cause(), "ingress 10 msg/s > egress 9.9 msg/s");
        let qs = series(13, |i| queue(100 + i, 0, 1, [i * 104, i * 102, i * 102, 0]));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(
            a.cause(),
            "ready +12 in 2m (ingress 10 msg/s, egress 10 msg/s)"
        );
    }

    #[test]
    fn drain_and_idle_wording_is_true() {
        let qs = series(13, |i| {
            queue(10 + i * 60, 1, 1, [i * 100, i * 40, i * 40, 0])
        });
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.details()["time_to_drain"], "never (not shrinking)");
        // Nothing was acknowledged since the detector first saw the queue: "at least", and
        // rounded down (2m 51s is not "3m").
        let qs = series(18, |_| queue(40, 10, 1, [100, 60, 50, 0]));
        let a = judge(170, 10, &qs).unwrap();
        assert!(a.stalled);
        assert_eq!(
            a.cause(),
            "consumers stalled (prefetch full, no acks for at least 2m)"
        );
        assert_eq!(human_floor(171.0), "2m");
        assert_eq!(human_floor(7199.0), "1h 59m");
        assert_eq!(human_floor(59.9), "59s");
    }

    #[test]
    fn a_dead_letter_queue_that_receives_is_not_no_consumers_and_its_ingress_is_its_depth_change() {
        // 10 msg/s dead-lettered in (no publishes), nobody consumes.
        let qs = series(13, |i| queue(i * 100, 0, 0, [0, 0, 0, 0]));
        let cfg = config(120);
        let mut w = Window::new(&Queue::default(), 0, 0.0);
        for (i, q) in qs.iter().enumerate() {
            w.push(Sample::of(q, i as f64 * 10.0).unwrap(), ALL, 120.0, 6.0);
        }
        let a = w
            .analyse(
                qs.last().unwrap(),
                &cfg,
                120.0,
                FigureSource::Management,
                true,
            )
            .unwrap();
        assert!(!a.no_consumers);
        assert_ne!(a.status, Status::NoConsumers);
        assert!((a.ingress_rate - 10.0).abs() < 0.01, "{}", a.ingress_rate);
        assert_eq!(a.details()["ingress_rate"], "10 msg/s");
        assert!(!a.cause().contains("no consumers"), "{}", a.cause());
        // Not growing at every poll (a flat stretch): still says what it receives.
        let qs = series(13, |i| {
            queue(if i == 5 { 400 } else { i * 100 }, 0, 0, [0, 0, 0, 0])
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!((a.ingress_rate - 10.0).abs() < 0.01);
    }

    #[test]
    fn a_delay_queue_is_judged_by_whether_messages_leave_on_time() {
        // TTL 10 min + dead-letter exchange, no consumer by design.
        let delay = |ready: u64, publish: u64, head: Option<f64>| -> Queue {
            let mut q: Queue = serde_json::from_value(serde_json::json!({
                "vhost": "/", "name": "q",
                "messages_ready": ready, "messages_unacknowledged": 0, "consumers": 0,
                "arguments": {"x-message-ttl": 600000, "x-dead-letter-exchange": "work"},
                "message_stats": {"publish": publish}
            }))
            .unwrap();
            q.head_message_timestamp = head;
            q
        };
        // 3 messages waiting out their TTL: on time.
        let qs = series(13, |_| delay(3, 3, None));
        let a = judge(120, 10, &qs).unwrap();
        assert!(!a.no_consumers, "{a:?}");
        assert_eq!(a.status, Status::Ok);
        assert_eq!(a.delay, Some((600.0, true)));
        assert_eq!(a.cause(), "delay queue (TTL 10m): messages leave on time");
        // Filling up during its first TTL: not growing either.
        let qs = series(13, |i| delay(i * 10, i * 10, None));
        let a = judge(120, 10, &qs).unwrap();
        assert!(!a.growing && !a.no_consumers);
        // The head message is 20 minutes old: messages do not leave on time.
        let qs = series(13, |_| delay(3, 3, Some(120.0 - 1200.0)));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.delay, Some((600.0, false)));
        assert!(a.no_consumers);
        assert_eq!(
            a.cause(),
            "delay queue (TTL 10m): messages do not leave on time; no consumers"
        );
        // TTL 1 min, window 2 min: 10 msg/s should hold about 600; 1200 is too many.
        let short = |ready: u64, publish: u64| -> Queue {
            serde_json::from_value(serde_json::json!({
                "vhost": "/", "name": "q",
                "messages_ready": ready, "messages_unacknowledged": 0, "consumers": 0,
                "arguments": {"x-message-ttl": 60000, "x-dead-letter-exchange": "work"},
                "message_stats": {"publish": publish}
            }))
            .unwrap()
        };
        let qs = series(13, |i| short((i * 100).min(600), i * 100));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.delay, Some((60.0, true)), "{a:?}");
        let qs = series(13, |i| short(100 + i * 100, i * 100));
        let a = judge(120, 10, &qs).unwrap();
        assert_eq!(a.delay, Some((60.0, false)));
        assert!(a.growing && a.no_consumers);
    }

    #[test]
    fn a_new_queue_is_judged_from_when_the_condition_began() {
        // Created empty at t=0, then 6 msg/s more in than out: growing from t=10.
        let qs = series(13, |i| {
            if i == 0 {
                queue(0, 0, 1, [0, 0, 0, 0])
            } else {
                queue(i * 60, 1, 1, [i * 100, i * 40, i * 40, 0])
            }
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.growing, "the first empty sample does not block it");
        assert_eq!(a.status, Status::Growing);
        assert_eq!(
            a.details()["window"],
            "1m 50s of the 2m window, not yet full"
        );
        // A consumer attaches at t=10 and never acks: stalled from t=10.
        let qs = series(13, |i| {
            if i == 0 {
                queue(0, 0, 0, [0, 0, 0, 0])
            } else {
                queue(40, 10, 1, [50, 10, 0, 0])
            }
        });
        let a = judge(120, 10, &qs).unwrap();
        assert!(a.stalled);
        // A full window reads as before.
        let qs = series(13, |i| {
            queue(10 + i * 60, 1, 1, [i * 100, i * 40, i * 40, 0])
        });
        assert_eq!(judge(120, 10, &qs).unwrap().details()["window"], "2m");
    }

    #[test]
    fn redelivering_clears_once_requeued_messages_drain_after_the_fix() {
        // 10 messages bounce until t=80; the fix at t=90 acks the 10 requeued (as
        // redeliveries), then fresh messages flow and are acked.
        let q = |i: u64| {
            if i <= 8 {
                queue(9, 1, 1, [10, 10 + i * 30, 0, i * 30])
            } else {
                // The 9 ready are redelivered and acked, with the 1 unacknowledged.
                let n = (i - 9) * 5;
                queue(0, 0, 1, [10 + n, 259 + n, 10 + n, 249])
            }
        };
        let qs = series(13, |i| queue(9, 1, 1, [10, 10 + i * 30, 0, i * 30]));
        assert!(judge(120, 10, &qs).unwrap().redelivering, "looping");
        // 20 s after the fix, with the window still mostly redeliveries.
        let qs = series(12, q);
        let a = judge(110, 10, &qs).unwrap();
        assert!(a.redelivery_ratio.unwrap() > 0.5);
        assert!(!a.redelivering, "{a:?}");
    }

    /// Polls 10 s apart through the [`Tracker`], figures read from rabbitmq_prometheus: the
    /// queues carry depth and consumers and no counters, while the overview says statistics
    /// are on (a forced `source: prometheus`) or off. Returns the last analysis.
    fn observe_without_counters(
        stats_enabled: bool,
        qs: &[Queue],
    ) -> (Option<Analysis>, Option<Analysis>) {
        let mut all = observe(FigureSource::Prometheus, stats_enabled, qs);
        let last = all.pop().flatten();
        (all.pop().flatten(), last)
    }

    /// Polls 10 s apart through the [`Tracker`] (60 s window), the queue figures read from
    /// `source` while the overview says statistics are on or off. Returns every analysis.
    fn observe(source: FigureSource, stats_enabled: bool, qs: &[Queue]) -> Vec<Option<Analysis>> {
        use crate::rabbitmq::model::Overview;
        use crate::rabbitmq::prometheus::Read;
        use crate::snapshot::{Fetched, Snapshot};
        let mut tracker = Tracker::new(config(60));
        let mut analyses = Vec::new();
        for (i, q) in qs.iter().enumerate() {
            let mut snapshot = Snapshot::builder()
                .seq(i as u64 + 1)
                .started_at(UNIX_EPOCH + Duration::from_secs(1_000 + 10 * i as u64))
                .overview(Overview {
                    disable_stats: Some(!stats_enabled),
                    ..Overview::default()
                })
                .queues(vec![q.clone()]);
            if source == FigureSource::Prometheus {
                snapshot = snapshot.prometheus(Read {
                    queues: Fetched::answered(1),
                    nodes: Fetched::answered(1),
                    members: Vec::new(),
                });
            }
            analyses.push(
                tracker.observe(&snapshot.build()).queues[0]
                    .analysis
                    .clone(),
            );
        }
        analyses
    }

    /// A poll whose queue listing failed judges nothing, keeps the windows, and still reports
    /// the samples they hold (the memory figure does not drop to 0 on an outage).
    #[test]
    fn a_failed_queue_listing_keeps_the_windows_and_their_sample_count() {
        use crate::rabbitmq::{Endpoint, Error, Fetched};
        let mut tracker = Tracker::new(config(60));
        let poll = |i: u64| {
            Snapshot::builder()
                .seq(i + 1)
                .started_at(UNIX_EPOCH + Duration::from_secs(1_000 + 10 * i))
                .queues(vec![queue(5 + i, 0, 1, [0; 4])])
        };
        let mut held = 0;
        for i in 0..3 {
            held = tracker.observe(&poll(i).build()).samples;
        }
        assert!(held >= 2, "{held}");
        let failed = Snapshot::builder()
            .seq(4)
            .started_at(UNIX_EPOCH + Duration::from_secs(1_030))
            .queues(Fetched::failed(Error::Timeout {
                endpoint: Endpoint::Queues,
                timeout_ms: 1,
            }))
            .build();
        let report = tracker.observe(&failed);
        assert_eq!(report.samples, held);
        assert!(report.queues.is_empty());
        assert_eq!((report.complete, report.incomplete), (0, 0));
        // The next good poll continues the same window.
        assert!(tracker.observe(&poll(4).build()).samples > held);
    }

    fn depth_only(ready: u64, unacked: u64, consumers: u64) -> Queue {
        Queue {
            stats: QueueStats::default(),
            ..queue(ready, unacked, consumers, [0; 4])
        }
    }

    #[test]
    fn without_counters_a_growing_queue_is_growing_with_rates_unknown() {
        for stats in [true, false] {
            let qs = series(8, |i| depth_only(10 + i * 5, 2, 1));
            let a = observe_without_counters(stats, &qs).1.unwrap();
            assert_eq!(a.status, Status::Growing, "stats {stats}");
            assert!(!a.counters && !a.stalled && !a.redelivering);
            assert_eq!(
                a.cause(),
                "ready +30 in 1m (rates unknown: no per-queue counters)"
            );
            let d = a.details();
            assert!(!d.contains_key("ingress_rate") && !d.contains_key("egress_rate"));
            assert!(!d.contains_key("oldest_message_age"));
            assert_eq!(d["time_to_drain"], "never (not shrinking)");
        }
    }

    #[test]
    fn without_counters_consumers_that_never_move_are_not_called_stalled() {
        // Steady depth, consumers attached, no counters: a counter read as 0 would look
        // like "nothing consumed" (STALLED); unknown counters must not fire it.
        let qs = series(8, |_| depth_only(20, 5, 2));
        let a = observe_without_counters(true, &qs).1.unwrap();
        assert_eq!(a.status, Status::Ok);
        assert_eq!(a.cause(), "keeping up");
    }

    #[test]
    fn without_counters_no_consumers_and_drain_time_come_from_the_depth() {
        let qs = series(8, |_| depth_only(9, 0, 0));
        let a = observe_without_counters(false, &qs).1.unwrap();
        assert_eq!(a.status, Status::NoConsumers);
        assert_eq!(a.cause(), "no consumers");
        // Shrinking 10 per poll (1 msg/s) from 100: drains in about the depth / slope.
        let qs = series(8, |i| depth_only(100 - i * 10, 0, 1));
        let a = observe_without_counters(false, &qs).1.unwrap();
        assert_eq!(a.status, Status::Ok);
        assert!((a.time_to_drain - 30.0).abs() < 1e-6, "{}", a.time_to_drain);
    }

    #[test]
    fn without_counters_a_missing_figure_leaves_the_queue_unjudged() {
        // The hosting member's read failed at the last poll: depth unknown, no verdict (so
        // nothing resolves because of it).
        let mut qs = series(8, |i| depth_only(10 + i * 5, 0, 0));
        qs.push(Queue {
            messages_ready: None,
            consumers: None,
            ..depth_only(0, 0, 0)
        });
        let (before, last) = observe_without_counters(false, &qs);
        assert_eq!(before.unwrap().status, Status::NoConsumers);
        assert_eq!(last, None);
    }

    /// A queue as rabbitmq_prometheus 4.0.5 gives it: depth, consumers and the delivery
    /// counters (`queue_delivery_metrics`: deliver, ack, redeliver), no publish counter.
    fn delivery_only(ready: u64, unacked: u64, consumers: u64, counters: [u64; 3]) -> Queue {
        let [deliver, ack, redeliver] = counters;
        let mut q = queue(ready, unacked, consumers, [0, deliver, ack, redeliver]);
        if let Some(mut s) = q.message_stats() {
            s.publish = None;
            q.set_message_stats(Some(s));
        }
        q
    }

    #[test]
    fn with_delivery_counters_but_no_publish_counter_a_stall_is_stalled() {
        // Prefetch 10 delivered, nothing acknowledged since the detector first saw the queue.
        let qs = series(8, |_| delivery_only(40, 10, 1, [60, 50, 0]));
        let a = observe(FigureSource::Prometheus, false, &qs)
            .pop()
            .flatten()
            .unwrap();
        assert!(a.counters && !a.publish_counter);
        assert_eq!(a.status, Status::Stalled);
        assert_eq!(
            a.cause(),
            "consumers stalled (prefetch full, no acks for at least 1m 10s)"
        );
        assert_eq!(a.details()["egress_rate"], "0 msg/s");
        assert!(!a.details().contains_key("ingress_rate"));
    }

    #[test]
    fn with_delivery_counters_but_no_publish_counter_a_requeue_loop_is_redelivering() {
        // 10 messages bounce: every delivery after the first round is a redelivery.
        let qs = series(8, |i| delivery_only(9, 1, 1, [10 + i * 30, 0, i * 30]));
        let a = observe(FigureSource::Prometheus, true, &qs)
            .pop()
            .flatten()
            .unwrap();
        assert_eq!(a.status, Status::Redelivering);
        assert!(a.redelivering && !a.stalled);
        assert_eq!(a.redelivery_ratio, Some(1.0));
        assert_eq!(a.cause(), "redelivery 100 %");
    }

    #[test]
    fn with_delivery_counters_but_no_publish_counter_growing_says_ingress_is_unknown() {
        // 8 msg/s acknowledged, the depth rising 0.5 msg/s.
        let qs = series(8, |i| delivery_only(10 + i * 5, 1, 1, [i * 80, i * 80, 0]));
        let a = observe(FigureSource::Prometheus, false, &qs)
            .pop()
            .flatten()
            .unwrap();
        assert_eq!(a.status, Status::Growing);
        assert_eq!(
            a.cause(),
            "ready +30 in 1m, egress 8 msg/s (ingress unknown: this source has no per-queue publish counter)"
        );
        let d = a.details();
        assert_eq!(d["egress_rate"], "8 msg/s");
        assert!(!d.contains_key("ingress_rate") && !d.contains_key("oldest_message_age"));
    }

    #[test]
    fn with_statistics_off_the_management_source_says_the_broker_collects_none() {
        let qs = series(8, |i| depth_only(10 + i * 5, 2, 1));
        let a = observe(FigureSource::Management, false, &qs)
            .pop()
            .flatten()
            .unwrap();
        assert_eq!(a.status, Status::Growing);
        assert!(!a.counters && !a.publish_counter);
        assert_eq!(
            a.cause(),
            "ready +30 in 1m (rates unknown: the broker collects no message statistics)"
        );
    }

    #[test]
    fn delivery_counters_that_appear_late_give_no_false_rate() {
        // No counters for the first 4 polls, then a steady 5000 acknowledged (the counter was
        // not reset, it was unknown): read as 0 before, that would be 5000 acks in the window.
        let qs = series(16, |i| {
            if i < 4 {
                depth_only(40, 10, 1)
            } else {
                delivery_only(40, 10, 1, [5010, 5000, 0])
            }
        });
        let all = observe(FigureSource::Prometheus, false, &qs);
        // While the window still holds a sample without them: judged, counters unknown.
        let a = all[8].clone().unwrap();
        assert!(!a.counters && !a.stalled, "{a:?}");
        assert_eq!(a.status, Status::Ok);
        assert!(!a.details().contains_key("egress_rate"));
        // Once every sample has them: the acks did not move, for at least as long as known.
        let a = all[15].clone().unwrap();
        assert!(a.counters, "{a:?}");
        assert_eq!(a.egress_rate, 0.0);
        assert_eq!(a.status, Status::Stalled);
        assert_eq!(
            a.cause(),
            "consumers stalled (prefetch full, no acks for at least 1m 50s)"
        );
        // Counters that vanish for a poll keep their last value: no reset, no jump.
        let qs = series(12, |i| {
            if i == 6 {
                depth_only(40, 10, 1)
            } else {
                delivery_only(40, 10, 1, [5010, 5000, 0])
            }
        });
        let all = observe(FigureSource::Prometheus, false, &qs);
        assert!(all[6].as_ref().is_some_and(|a| !a.counters));
        let a = all[11].clone().unwrap();
        assert!(!a.counters, "a window holding the gap is unknown");
        assert_eq!(a.egress_rate, 0.0);
    }
}
