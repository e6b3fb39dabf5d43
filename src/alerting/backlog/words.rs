//! The backlog detector's judgement in operators' words: a queue's likely cause
//! ([`Analysis::cause`]), its details for alert templates ([`Analysis::details`]) and the
//! duration and rate wording they share. Every printed cause must be true of the numbers it
//! prints.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Analysis;

impl Analysis {
    /// The likely cause in operators' words, most urgent first, e.g. `no consumers`,
    /// `consumers stalled (prefetch full, no acks for 4m)`, `ingress 250 msg/s > egress
    /// 40 msg/s`, `redelivery 12 %`; `keeping up` when OK.
    pub fn cause(&self) -> String {
        let mut causes = Vec::new();
        if let Some((ttl, false)) = self.delay {
            causes.push(format!(
                "delay queue (TTL {}): messages do not leave on time",
                human(ttl)
            ));
        }
        if self.no_consumers {
            causes.push("no consumers".to_owned());
        }
        if self.redelivering {
            let ratio = self.redelivery_ratio.unwrap_or(0.0);
            causes.push(format!("redelivery {:.0} %", ratio * 100.0));
        }
        if self.stalled {
            // Rounded down: never longer than what was seen (or than the queue's age).
            let idle = if self.idle_since_seen {
                human_floor(self.idle_for)
            } else {
                format!("at least {}", human_floor(self.idle_for))
            };
            causes.push(if self.unacked == 0 {
                format!("consumers attached but nothing delivered for {idle}")
            } else if self.delivering {
                format!("consumers stalled (receiving but not acknowledging, no acks for {idle})")
            } else {
                format!("consumers stalled (prefetch full, no acks for {idle})")
            });
        }
        if self.growing && self.counters && self.publish_counter {
            let (ingress, egress) = (rate(self.ingress_rate), rate(self.egress_rate));
            // The inequality is printed only when the printed numbers make it true.
            let greater = match (ingress.parse::<f64>(), egress.parse::<f64>()) {
                (Ok(i), Ok(e)) => i > e,
                _ => false,
            };
            causes.push(if greater {
                format!("ingress {ingress} msg/s > egress {egress} msg/s")
            } else {
                format!(
                    "ready +{} in {} (ingress {ingress} msg/s, egress {egress} msg/s)",
                    self.ready_growth,
                    human(self.span)
                )
            });
        } else if self.growing && self.counters {
            causes.push(format!(
                "ready +{} in {}, egress {} msg/s (ingress unknown: {})",
                self.ready_growth,
                human(self.span),
                rate(self.egress_rate),
                self.unknown_reason
            ));
        } else if self.growing {
            causes.push(format!(
                "ready +{} in {} (rates unknown: {})",
                self.ready_growth,
                human(self.span),
                self.unknown_reason
            ));
        }
        if causes.is_empty()
            && self.dead_letter
            && self.counters
            && self.publish_counter
            && self.ingress_rate > 0.0
        {
            causes.push(format!(
                "dead-letter queue receiving {} msg/s",
                rate(self.ingress_rate)
            ));
        }
        if let (true, Some((ttl, true))) = (causes.is_empty(), self.delay) {
            causes.push(format!(
                "delay queue (TTL {}): messages leave on time",
                human(ttl)
            ));
        }
        if causes.is_empty() && self.time_to_overflow.is_some_and(|(t, _)| t == 0.0) {
            "at its length limit".to_owned()
        } else if causes.is_empty() {
            "keeping up".to_owned()
        } else {
            causes.join("; ")
        }
    }

    /// What alert annotations can use as `{{ $details.NAME }}` and `/api/v1/alerts` shows:
    /// `status`, `cause`, `window`, `messages_ready`, `ingress_rate` and `egress_rate` (msg/s,
    /// each only when its counters are known),
    /// `redelivery_ratio`, `time_to_drain`, `time_to_overflow`, `overflow`, and
    /// `oldest_message_age` (an estimate) when known. Durations in words (`12m`).
    pub fn details(&self) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            d.insert(k.to_owned(), v);
        };
        put("status", self.status.label().to_uppercase());
        put("cause", self.cause());
        put(
            "window",
            if self.judged_for < self.window {
                format!(
                    "{} of the {} window, not yet full",
                    human_floor(self.judged_for),
                    human(self.window)
                )
            } else {
                human(self.window.max(self.judged_for.min(self.span)))
            },
        );
        put("messages_ready", self.ready.to_string());
        if self.counters && self.publish_counter {
            put("ingress_rate", format!("{} msg/s", rate(self.ingress_rate)));
        }
        if self.counters {
            put("egress_rate", format!("{} msg/s", rate(self.egress_rate)));
        }
        if let Some(r) = self.redelivery_ratio {
            put("redelivery_ratio", format!("{:.1} %", r * 100.0));
        }
        put(
            "time_to_drain",
            match self.time_to_drain {
                0.0 => "empty".to_owned(),
                t if t.is_finite() => human(t),
                _ => "never (not shrinking)".to_owned(),
            },
        );
        match self.time_to_overflow {
            None => put("time_to_overflow", "no length limit".to_owned()),
            Some((t, overflow)) => {
                put(
                    "time_to_overflow",
                    match t {
                        0.0 => "now (at the limit)".to_owned(),
                        t if t.is_finite() => human(t),
                        _ => "not growing".to_owned(),
                    },
                );
                put("overflow", overflow.consequence().to_owned());
            }
        }
        if let Some(age) = self.oldest_age_estimate {
            put("oldest_message_age", format!("about {}", human(age)));
        }
        d
    }
}

/// A duration in seconds in words, rounded: `45s`, `4m`, `2h 5m`.
pub fn human(secs: f64) -> String {
    let secs = secs.max(0.0);
    let rounded = if secs < 120.0 {
        secs.round()
    } else if secs < 7200.0 {
        (secs / 60.0).round() * 60.0
    } else {
        (secs / 3600.0).floor() * 3600.0 + ((secs % 3600.0) / 60.0).round() * 60.0
    };
    humantime::format_duration(Duration::from_secs(rounded as u64)).to_string()
}

/// A duration in seconds in words, rounded down at the same precision as [`human`], for
/// texts that must not claim more than was seen (`171` → `2m`, never `3m`).
pub fn human_floor(secs: f64) -> String {
    let secs = secs.max(0.0);
    let floored = if secs < 120.0 {
        secs.floor()
    } else {
        (secs / 60.0).floor() * 60.0
    };
    humantime::format_duration(Duration::from_secs(floored as u64)).to_string()
}

/// A rate in msg/s: one decimal below 10, whole above.
pub(super) fn rate(r: f64) -> String {
    if r < 10.0 {
        let text = format!("{r:.1}");
        text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
    } else {
        format!("{r:.0}")
    }
}
