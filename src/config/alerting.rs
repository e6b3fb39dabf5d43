//! `alerting.*`: the effective alert rules (assembled in [`super::rules`]) and the backlog
//! detector's window and thresholds (`alerting.backlog.*`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::notify::InhibitRule;
use super::parse::{invalid, parse_bool, parse_duration, parse_regex};
use super::redact;
use super::rules::{RawRule, Rule, effective_rules};
use crate::matcher::Matcher;
use crate::types::Regex;
use crate::util::ser;

/// `alerting.*`: the effective alert rules.
#[derive(Debug, Clone, Serialize)]
pub struct AlertingConfig {
    /// The default rules (unless `alerting.default_rules` is false, minus `alerting.disable`),
    /// with the fields given under `alerting.rules` for the same name replacing theirs, followed
    /// by the other rules of `alerting.rules`.
    #[serde(serialize_with = "redact::ser_rules")]
    pub rules: Vec<Rule>,
    /// `alerting.backlog.*`: the backlog detector's window and thresholds.
    pub backlog: BacklogConfig,
    /// `alerting.inhibit_growing`: add the notification inhibit rule [`queue_inhibit_rule`]
    /// ("a firing RabbitmqQueueStalled, RabbitmqQueueRedelivering or RabbitmqQueueNoConsumers
    /// mutes RabbitmqQueueGrowing on the same queue": one incident, one page). Default `true`.
    pub inhibit_growing: bool,
}

/// The inhibit rule added by `alerting.inhibit_growing`: the more specific cause of a
/// backlog mutes `RabbitmqQueueGrowing` on the same queue (equal `vhost`, `queue`). Muted
/// alerts stay listed in `/api/v1/alerts`; only their notifications are held back.
pub fn queue_inhibit_rule() -> InhibitRule {
    InhibitRule {
        source: vec![
            Matcher::parse(
                r#"alertname=~"RabbitmqQueueStalled|RabbitmqQueueRedelivering|RabbitmqQueueNoConsumers""#,
            )
            .expect("valid"),
        ],
        target: vec![Matcher::parse(r#"alertname="RabbitmqQueueGrowing""#).expect("valid")],
        equal: vec!["vhost".to_owned(), "queue".to_owned()],
    }
}

/// `alerting.backlog.*`: the backlog detector (`alerting::backlog`). Each queue keeps
/// a sliding window of samples; the trend rules judge a queue only once its window is complete.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogConfig {
    /// `alerting.backlog.window`: how far back the window reaches. Default 10 m (the span of
    /// RabbitMQ's own QueueIsGrowing rule); at least twice `poll.interval`. Also the window of
    /// the cluster-wide rates and node CPU of `alerting::capacity`.
    #[serde(serialize_with = "ser::duration")]
    pub window: Duration,
    /// `alerting.backlog.min_completeness`: share of `window` the samples must cover before the
    /// queue is judged (a new queue, or a sidecar that just started, is not). Default 0.9;
    /// above 0, at most 1.
    pub min_completeness: f64,
    /// `alerting.backlog.max_samples`: samples kept per queue; samples closer together than
    /// `window / max_samples` replace each other, so memory is bounded at about
    /// `(max_samples + 2) × 40` bytes per queue whatever the poll interval. Default 20, 3 to 1000.
    pub max_samples: usize,
    /// `alerting.backlog.redelivery_threshold`: redelivered / delivered over the window above
    /// which a queue is REDELIVERING. Default 0.05; between 0 and 1.
    pub redelivery_threshold: f64,
    /// `alerting.backlog.dead_letter_queues`: queue names (anchored regex) that are dead-letter
    /// queues, in addition to those discovered. Default: none.
    #[serde(serialize_with = "ser::opt_display")]
    pub dead_letter_queues: Option<Regex>,
    /// `alerting.backlog.discover_dead_letter_queues`: find dead-letter queues through the
    /// queues' dead-letter exchange settings (`x-dead-letter-exchange` argument or policy key)
    /// and that exchange's bindings (`/api/exchanges/{vhost}/{name}/bindings/source`). Default
    /// `true`.
    pub discover_dead_letter_queues: bool,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            min_completeness: 0.9,
            max_samples: 20,
            redelivery_threshold: 0.05,
            dead_letter_queues: None,
            discover_dead_letter_queues: true,
        }
    }
}

/// `alerting.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAlerting {
    default_rules: Option<String>,
    disable: Vec<String>,
    inhibit_growing: Option<String>,
    rules: Vec<RawRule>,
    backlog: RawBacklog,
}

/// `alerting.backlog.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawBacklog {
    window: Option<String>,
    min_completeness: Option<String>,
    max_samples: Option<String>,
    redelivery_threshold: Option<String>,
    dead_letter_queues: Option<String>,
    discover_dead_letter_queues: Option<String>,
}

/// Validates `alerting.*`; `interval` is `poll.interval` (the backlog window spans at least
/// two polls).
pub(super) fn validate_alerting(
    raw: RawAlerting,
    interval: Duration,
) -> Result<AlertingConfig, ConfigError> {
    let backlog = validate_backlog(raw.backlog, interval)?;
    let with_defaults = parse_bool(
        "alerting.default_rules",
        raw.default_rules.as_deref().unwrap_or("true"),
    )?;
    let rules = effective_rules(with_defaults, &raw.disable, raw.rules)?;
    let inhibit_growing = parse_bool(
        "alerting.inhibit_growing",
        raw.inhibit_growing.as_deref().unwrap_or("true"),
    )?;
    Ok(AlertingConfig {
        rules,
        backlog,
        inhibit_growing,
    })
}

/// Validates `alerting.backlog.*`; the window must span at least two polls.
fn validate_backlog(b: RawBacklog, interval: Duration) -> Result<BacklogConfig, ConfigError> {
    let d = BacklogConfig::default();
    let window = match &b.window {
        Some(text) => parse_duration("alerting.backlog.window", text)?,
        None => d.window,
    };
    if window < interval.saturating_mul(2) {
        return Err(invalid(
            "alerting.backlog.window",
            &humantime::format_duration(window).to_string(),
            &format!(
                "a duration of at least twice poll.interval ({})",
                humantime::format_duration(interval.saturating_mul(2))
            ),
        ));
    }
    let fraction = |key: &str, text: Option<&str>, default: f64, zero_ok: bool| match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| (if zero_ok { *v >= 0.0 } else { *v > 0.0 }) && *v <= 1.0)
            .ok_or_else(|| {
                let range = if zero_ok { "from 0" } else { "above 0" };
                invalid(key, t, &format!("a number {range} up to 1, such as 0.9"))
            }),
    };
    let min_completeness = fraction(
        "alerting.backlog.min_completeness",
        b.min_completeness.as_deref(),
        d.min_completeness,
        false,
    )?;
    let redelivery_threshold = fraction(
        "alerting.backlog.redelivery_threshold",
        b.redelivery_threshold.as_deref(),
        d.redelivery_threshold,
        true,
    )?;
    let max_samples = match &b.max_samples {
        None => d.max_samples,
        Some(t) => t
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (3..=1000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "alerting.backlog.max_samples",
                    t,
                    "a whole number from 3 to 1000",
                )
            })?,
    };
    let dead_letter_queues = match b.dead_letter_queues.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_regex("alerting.backlog.dead_letter_queues", text)?),
    };
    let discover_dead_letter_queues = match &b.discover_dead_letter_queues {
        None => d.discover_dead_letter_queues,
        Some(t) => parse_bool("alerting.backlog.discover_dead_letter_queues", t)?,
    };
    Ok(BacklogConfig {
        window,
        min_completeness,
        max_samples,
        redelivery_threshold,
        dead_letter_queues,
        discover_dead_letter_queues,
    })
}
