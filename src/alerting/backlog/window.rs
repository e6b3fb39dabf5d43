//! One queue's window of the backlog detector: its samples (bounded, thinned to the
//! configured spacing) and the judgement made from them (rates by least squares, status,
//! predictions). Owned by [`super::Tracker`].

use super::samples::Samples;
use super::*;

/// A queue's window.
#[derive(Debug, Clone)]
pub(super) struct Window {
    pub(super) vhost: Box<str>,
    pub(super) name: Box<str>,
    /// The samples, oldest first, stored compactly ([`Samples`]).
    pub(super) samples: Samples,
    /// When the consumed counter last moved (or when the window started, if it never did).
    pub(super) consumed_moved_at: f64,
    /// Whether the consumed counter was seen moving (else `consumed_moved_at` is when the
    /// detector first saw the queue: a lower bound of the idle time).
    pub(super) consumed_moved: bool,
    /// When the delivery counters began to be reported at every sample since; `None` when the
    /// newest sample lacked them.
    pub(super) delivery_since: Option<f64>,
    /// The same for the publish counter.
    pub(super) publish_since: Option<f64>,
}

/// Which of a queue's cumulative counters one poll reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    /// deliver, ack and redeliver.
    pub(super) delivery: bool,
    /// publish.
    pub(super) publish: bool,
}

impl Known {
    /// With the management statistics (`statistics`) every counter is known, a missing one
    /// being 0 (the queue has seen no such traffic yet); otherwise (rabbitmq_prometheus, or
    /// statistics disabled) only those the queue's `message_stats` carries.
    pub(super) fn of(q: &Queue, statistics: bool) -> Known {
        let stats = q.message_stats();
        let stats = stats.as_ref();
        Known {
            delivery: statistics
                || stats.is_some_and(|s| {
                    s.deliver.is_some() && s.ack.is_some() && s.redeliver.is_some()
                }),
            publish: statistics || stats.is_some_and(|s| s.publish.is_some()),
        }
    }
}

impl Window {
    /// An empty window for `q`, first seen at `at`, holding up to `capacity` samples without
    /// reallocating.
    pub(super) fn new(q: &Queue, capacity: usize, at: f64) -> Window {
        Window {
            vhost: q.vhost.as_str().into(),
            name: q.name.as_str().into(),
            samples: Samples::with_capacity(capacity),
            consumed_moved_at: at,
            consumed_moved: false,
            delivery_since: None,
            publish_since: None,
        }
    }

    /// Appends `sample`, whose counters not `known` keep their last value (unknown is neither
    /// "no traffic" nor a reset, and a counter that comes back is not a jump from 0); a sample
    /// closer than `spacing` to the one before the newest replaces the newest (so the newest
    /// is always current and the rest are at least `spacing` apart); samples no longer needed
    /// to cover `window` are dropped.
    pub(super) fn push(&mut self, mut sample: Sample, known: Known, window: f64, spacing: f64) {
        if let Some(last) = self.samples.back() {
            if sample.at <= last.at {
                return;
            }
            if !known.delivery {
                sample.delivered = last.delivered;
                sample.consumed = last.consumed;
                sample.redelivered = last.redelivered;
            }
            if !known.publish {
                sample.published = last.published;
            }
            if sample.counters_went_back(&last) {
                self.samples.clear();
                self.consumed_moved_at = sample.at;
                self.consumed_moved = false;
                self.delivery_since = None;
                self.publish_since = None;
            } else if sample.consumed != last.consumed {
                self.consumed_moved_at = sample.at;
                // After a stretch without the counter it moved somewhere in the stretch: the
                // idle time since is a lower bound only.
                self.consumed_moved = self.delivery_since.is_some();
            }
        }
        let since = |known: bool, since: Option<f64>| known.then(|| since.unwrap_or(sample.at));
        self.delivery_since = since(known.delivery, self.delivery_since);
        self.publish_since = since(known.publish, self.publish_since);
        let n = self.samples.len();
        if n >= 2 && self.samples.get(n - 1).at - self.samples.get(n - 2).at < spacing {
            self.samples.replace_back(sample);
        } else {
            self.samples.push_back(sample);
        }
        // Keep one sample at or before the window's start, so a full window is covered.
        while self.samples.len() > 2 && self.samples.get(1).at <= sample.at - window {
            self.samples.pop_front();
        }
    }

    /// Judges the window, or `None` while it covers less than `min_completeness` of the
    /// window or holds fewer than 3 samples.
    pub(super) fn analyse(
        &self,
        q: &Queue,
        config: &BacklogConfig,
        now: f64,
        source: FigureSource,
        dead_letter: bool,
    ) -> Option<Analysis> {
        // Unpacked once: the judgement below walks the samples several times.
        let samples: Vec<Sample> = self.samples.iter().collect();
        let (first, last) = (*samples.first()?, *samples.last()?);
        let span = last.at - first.at;
        let window = config.window.as_secs_f64();
        if samples.len() < 3 || span < config.min_completeness * window || last.at < now {
            return None;
        }
        // A counter counts only when reported at every sample held.
        let whole = |since: Option<f64>| since.is_some_and(|t| t <= first.at);
        let (counters, publish_counter) = (whole(self.delivery_since), whole(self.publish_since));
        let unknown_reason = match (counters, publish_counter, source) {
            (true, true, _) => "",
            (false, _, _) if self.delivery_since.is_some() => {
                "counters reported for only part of the window"
            }
            (false, _, FigureSource::Prometheus) => "no per-queue counters",
            (false, _, FigureSource::Management) => "the broker collects no message statistics",
            (true, false, _) if self.publish_since.is_some() => {
                "the publish counter reported for only part of the window"
            }
            (true, false, FigureSource::Prometheus) => {
                "this source has no per-queue publish counter"
            }
            (true, false, FigureSource::Management) => "the broker collects no message statistics",
        };
        let delta = |f: fn(&Sample) -> u64| (f(&last) - f(&first)) as f64;
        let delivered = delta(|s| s.delivered);
        let redelivery_ratio =
            (counters && delivered > 0.0).then(|| (delta(|s| s.redelivered) / delivered).min(1.0));
        // A loop is still going on: in the last quarter of the window, deliveries were mostly
        // redeliveries and messages went back to the queue (delivered, neither consumed nor
        // still unacknowledged). Requeued messages draining as redeliveries after a fix are
        // acknowledged: not a loop, so the flag clears without waiting for the whole window.
        let recent = samples
            .iter()
            .rev()
            .find(|s| s.at <= last.at - window / 4.0)
            .copied()
            .unwrap_or(first);
        let recent_delivered = last.delivered.saturating_sub(recent.delivered) as f64;
        let recent_redelivered = last.redelivered.saturating_sub(recent.redelivered) as f64;
        let requeued = recent_delivered
            - last.consumed.saturating_sub(recent.consumed) as f64
            - (last.unacked as f64 - recent.unacked as f64);
        let looping = recent_delivered > 0.0
            && recent_redelivered / recent_delivered > config.redelivery_threshold
            && requeued > 0.0;
        let redelivering = counters
            && looping
            && redelivery_ratio.is_some_and(|r| r > config.redelivery_threshold && r > 0.0);
        // A delay queue (message TTL + dead-letter exchange, no consumer) is judged by whether
        // its messages leave on time, not by consumers.
        let delay = (last.consumers == 0)
            .then(|| q.limit("message-ttl"))
            .flatten()
            .filter(|_| q.setting("dead-letter-exchange").is_some())
            .map(|ttl_ms| ttl_ms as f64 / 1000.0);
        let head_age = q.head_message_timestamp.map(|ts| (now - ts).max(0.0));
        let estimated_age = if head_age.is_some() || !publish_counter {
            None
        } else {
            oldest_age(&samples, now)
        };
        let on_time = delay.map(|ttl| {
            let slack = (ttl * 0.1).max(10.0);
            let age_ok = head_age
                .or(estimated_age)
                .is_none_or(|age| age <= ttl + slack);
            // More waiting than one TTL's worth of arrivals: messages do not leave on time.
            // Only checkable once the window covers a TTL.
            let published_in = if delta(|s| s.published) > 0.0 {
                delta(|s| s.published)
            } else {
                (last.waiting() as f64 - first.waiting() as f64 + delta(|s| s.consumed)).max(0.0)
            };
            let depth_ok =
                span < ttl || last.waiting() as f64 <= published_in / span * (ttl + slack) + 1.0;
            age_ok && depth_ok
        });
        let behaving_delay = on_time == Some(true);
        // Nobody consumes a dead-letter queue by design, nor a delay queue that behaves.
        let no_consumers = !dead_letter && !behaving_delay && last.consumers == 0 && last.ready > 0;
        // Nothing leaves a stalled queue: also checked on the depth, which does not depend on
        // counters that the broker may refresh late.
        // Each condition is judged from when it began (the trailing run of samples where it
        // holds), so a new queue's first empty sample does not hold it back for a whole window.
        let needed = config.min_completeness * window;
        let stalled_from = run_start(
            &samples,
            |s| s.consumers > 0 && s.waiting() > 0,
            |a, b| b.waiting() >= a.waiting() && b.consumed == a.consumed,
        );
        let stalled_for = last.at - stalled_from.at;
        let stalled = counters && !redelivering && stalled_for >= needed;
        let growing_from = run_start(&samples, |s| s.ready > 0, |a, b| b.ready >= a.ready);
        let growing_for = last.at - growing_from.at;
        let growing = !behaving_delay && growing_for >= needed && last.ready > growing_from.ready;
        let status = [
            (no_consumers, Status::NoConsumers),
            (redelivering, Status::Redelivering),
            (stalled, Status::Stalled),
            (growing, Status::Growing),
        ]
        .into_iter()
        .find_map(|(flag, status)| flag.then_some(status))
        .unwrap_or(Status::Ok);

        // Dead-lettered (and shovelled-in) messages are not publishes: without any, what came
        // in is what the depth gained plus what was consumed.
        let published = delta(|s| s.published);
        let ingress_rate = if published > 0.0 {
            published / span
        } else {
            ((last.waiting() as f64 - first.waiting() as f64) + delta(|s| s.consumed)).max(0.0)
                / span
        };
        let waiting_slope = slope(&samples, |s| s.waiting() as f64);
        let time_to_drain = if last.waiting() == 0 {
            0.0
        } else if waiting_slope < 0.0 {
            last.waiting() as f64 / -waiting_slope
        } else {
            f64::INFINITY
        };
        // Predicted only while the detector calls the queue growing: a positive slope left by
        // an earlier rise in the window is not a trend (the queue may be empty by now).
        let until = |limit: Option<u64>, now: u64, slope: f64| {
            limit.map(|limit| {
                if now >= limit {
                    0.0
                } else if growing && slope > 0.0 {
                    (limit - now) as f64 / slope
                } else {
                    f64::INFINITY
                }
            })
        };
        let by_length = until(
            q.limit("max-length"),
            last.ready,
            slope(&samples, |s| s.ready as f64),
        );
        let by_bytes = q.message_bytes_ready.and_then(|_| {
            until(
                q.limit("max-length-bytes"),
                last.ready_bytes,
                slope(&samples, |s| s.ready_bytes as f64),
            )
        });
        let time_to_overflow = match (by_length, by_bytes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| (t, Overflow::of(q)));

        Some(Analysis {
            status,
            growing,
            stalled,
            no_consumers,
            redelivering,
            span,
            window,
            judged_for: match status {
                Status::Stalled => stalled_for,
                Status::Growing => growing_for,
                _ => span,
            },
            ready: last.ready,
            unacked: last.unacked,
            ready_growth: last.ready as i64 - first.ready as i64,
            ingress_rate,
            egress_rate: delta(|s| s.consumed) / span,
            redelivery_ratio,
            time_to_drain,
            time_to_overflow,
            oldest_age_estimate: estimated_age,
            delay: delay.zip(on_time),
            idle_for: now - self.consumed_moved_at,
            idle_since_seen: self.consumed_moved,
            delivering: delivered > 0.0,
            counters,
            publish_counter,
            unknown_reason,
            dead_letter,
        })
    }
}

/// The first sample of the trailing run where every sample satisfies `each` and every
/// two consecutive ones satisfy `step` (the newest sample when it fails `each`).
fn run_start(
    samples: &[Sample],
    each: impl Fn(&Sample) -> bool,
    step: impl Fn(&Sample, &Sample) -> bool,
) -> Sample {
    let n = samples.len();
    let mut start = n - 1;
    let mut newer = samples[start];
    if !each(&newer) {
        return newer;
    }
    while start > 0 {
        let older = samples[start - 1];
        if !(each(&older) && step(&older, &newer)) {
            break;
        }
        start -= 1;
        newer = older;
    }
    newer
}

/// The least-squares slope of `value` over time, per second.
fn slope(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> f64 {
    let n = samples.len() as f64;
    let t0 = samples.first().map_or(0.0, |s| s.at);
    let (mut st, mut sv, mut stt, mut stv) = (0.0, 0.0, 0.0, 0.0);
    for s in samples {
        let (t, v) = (s.at - t0, value(s));
        st += t;
        sv += v;
        stt += t * t;
        stv += t * v;
    }
    let denominator = n * stt - st * st;
    if denominator == 0.0 {
        0.0
    } else {
        (n * stv - st * sv) / denominator
    }
}

/// When the oldest ready message entered, by the publish counter: the ready messages are
/// the last `ready` published (FIFO), so the oldest was published when the counter passed
/// `published − ready`; interpolated between the two samples around that point.
fn oldest_age(samples: &[Sample], now: f64) -> Option<f64> {
    let last = samples.last()?;
    if last.ready == 0 {
        return None;
    }
    let target = last.published.checked_sub(last.ready)? as f64;
    let mut later: Option<Sample> = None;
    for &s in samples.iter().rev() {
        if (s.published as f64) <= target {
            let t = match later {
                Some(l) if l.published > s.published => {
                    let share = (target - s.published as f64) / (l.published - s.published) as f64;
                    s.at + share * (l.at - s.at)
                }
                _ => s.at,
            };
            return Some((now - t).max(0.0));
        }
        later = Some(s);
    }
    None
}
