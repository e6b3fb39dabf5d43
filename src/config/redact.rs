//! The redacted view of the effective configuration that `rabbitmq-watch check-config`
//! prints: [`Config::to_redacted_json`] and the serializers of the sections whose values are
//! not plain fields (the route tree, receivers, inhibition rules, alert rules). Secrets print
//! as `<redacted>` ([`crate::types::Secret`]); receivers show only their shape.

use serde::{Serialize, Serializer};

use super::Config;
use super::notify::{InhibitRule, ReceiverConfig, Route};
use super::rules::Rule;
use crate::matcher::Matcher;

impl Config {
    /// The effective configuration as pretty JSON (which is also YAML), secrets redacted:
    /// what `rabbitmq-watch check-config` prints.
    pub fn to_redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<unprintable: {e}>"))
    }
}

/// A route node and its children, as check-config shows it.
fn route_json(r: &Route) -> serde_json::Value {
    serde_json::json!({
        "receiver": r.receiver,
        "group_by": r.group_by.clone().unwrap_or_else(|| vec!["...".to_owned()]),
        "group_wait": humantime::format_duration(r.group_wait).to_string(),
        "group_interval": humantime::format_duration(r.group_interval).to_string(),
        "repeat_interval": humantime::format_duration(r.repeat_interval).to_string(),
        "matchers": r.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "continue": r.continue_,
        "routes": r.routes.iter().map(route_json).collect::<Vec<_>>(),
    })
}

/// Writes the routing tree.
pub(super) fn ser_route<S: Serializer>(r: &Route, s: S) -> Result<S::Ok, S::Error> {
    route_json(r).serialize(s)
}

/// Writes each receiver's name and how many integrations of each kind it has: their URLs,
/// headers and credentials are secrets.
pub(super) fn ser_receivers<S: Serializer>(rs: &[ReceiverConfig], s: S) -> Result<S::Ok, S::Error> {
    // URLs, headers and credentials are secrets: only the shape is shown.
    let v: Vec<serde_json::Value> = rs
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "webhook_configs": r.webhooks.len(),
                "email_configs": r.emails.len(),
            })
        })
        .collect();
    v.serialize(s)
}

/// Writes the inhibition rules with their matchers as text.
pub(super) fn ser_inhibit<S: Serializer>(rules: &[InhibitRule], s: S) -> Result<S::Ok, S::Error> {
    let text = |ms: &[Matcher]| ms.iter().map(ToString::to_string).collect::<Vec<_>>();
    let v: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "source_matchers": text(&r.source),
                "target_matchers": text(&r.target),
                "equal": r.equal,
            })
        })
        .collect();
    v.serialize(s)
}

/// Writes the effective rules as `alerting.rules` entries would be written.
pub(super) fn ser_rules<S: Serializer>(rules: &[Rule], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(rules.len()))?;
    for r in rules {
        seq.serialize_element(&serde_json::json!({
            "alert": r.name,
            "kind": format!("{:?}", r.kind).to_lowercase(),
            "expr": r.condition.to_string(),
            "for": humantime::format_duration(r.for_).to_string(),
            "keep_firing_for": humantime::format_duration(r.keep_firing_for).to_string(),
            "severity": r.severity,
            "labels": r.labels,
        }))?;
    }
    seq.end()
}
