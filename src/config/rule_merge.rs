//! The merging of `alerting.rules` over the default catalogue ([`super::rules::DEFAULTS`]):
//! the entries as written ([`RawRule`]), their validation (names, kinds, conditions,
//! selectors, durations, severities, labels) and [`effective_rules`]. Split from
//! [`super::rules`], which defines the rules and the catalogue.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::parse::{invalid, parse_duration_or_zero, parse_regex};
use super::rules::{Condition, DEFAULTS, Kind, Rule, Selector};
use crate::types::Regex;

/// An `alerting.rules` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRule {
    alert: Option<String>,
    kind: Option<String>,
    expr: Option<String>,
    select: RawSelect,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    severity: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The `select` of an `alerting.rules` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSelect {
    vhost: Option<String>,
    queue: Option<String>,
    node: Option<String>,
}

/// Severities a rule may have.
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// The effective rules: the default catalogue (when `with_defaults`, minus `disable`), with the
/// fields given under `alerting.rules` for the same name replacing theirs, followed by the
/// other rules of `alerting.rules`.
pub(super) fn effective_rules(
    with_defaults: bool,
    disable: &[String],
    raw_rules: Vec<RawRule>,
) -> Result<Vec<Rule>, ConfigError> {
    let default_names: Vec<&str> = DEFAULTS.iter().map(|d| d.name).collect();
    for (i, name) in disable.iter().enumerate() {
        if !default_names.contains(&name.as_str()) {
            return Err(ConfigError::Invalid {
                key: format!("alerting.disable[{i}]"),
                value: format!("{name:?}"),
                allowed: format!("a default rule: {}", default_names.join(", ")),
            });
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    if with_defaults {
        for d in DEFAULTS
            .iter()
            .filter(|d| !disable.iter().any(|n| n == d.name))
        {
            // The catalogue is checked by the rules tests; an error here is a bug, reported
            // as a configuration error rather than a rule with no condition (which would
            // always hold).
            let condition = Condition::parse(d.expr, d.kind).map_err(|e| ConfigError::Invalid {
                key: format!("built-in rule {}", d.name),
                value: d.expr.to_owned(),
                allowed: format!("a condition on its kind's fields (a bug: {e})"),
            })?;
            rules.push(Rule {
                name: d.name.to_owned(),
                kind: d.kind,
                condition,
                selector: Selector::default(),
                for_: humantime::parse_duration(d.for_).unwrap_or_default(),
                keep_firing_for: humantime::parse_duration(d.keep_firing_for).unwrap_or_default(),
                severity: d.severity.to_owned(),
                labels: BTreeMap::new(),
                annotations: [
                    ("summary".to_owned(), d.summary.to_owned()),
                    ("description".to_owned(), d.description.to_owned()),
                ]
                .into(),
            });
        }
    }
    let mut own: Vec<String> = Vec::new();
    for (i, r) in raw_rules.into_iter().enumerate() {
        let key = |field: &str| format!("alerting.rules[{i}].{field}");
        let name =
            r.alert
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    key: key("alert"),
                    value: "missing".to_owned(),
                    allowed: "the alert's name, e.g. OrdersBacklog".to_owned(),
                })?;
        if own.contains(&name) {
            return Err(invalid(
                &key("alert"),
                &name,
                "a name not used by another rule",
            ));
        }
        own.push(name.clone());
        let existing = rules.iter().position(|rule| rule.name == name);
        let rule = match existing {
            Some(at) => rules[at].clone(),
            None => {
                let kind_text = r.kind.as_deref().ok_or_else(|| ConfigError::Invalid {
                    key: key("kind"),
                    value: "missing".to_owned(),
                    allowed: "queue, node, cluster or audit".to_owned(),
                })?;
                let kind = Kind::parse(kind_text).ok_or_else(|| {
                    invalid(&key("kind"), kind_text, "queue, node, cluster or audit")
                })?;
                if r.expr.is_none() {
                    return Err(ConfigError::Invalid {
                        key: key("expr"),
                        value: "missing".to_owned(),
                        allowed: "a condition such as `messages_ready > 1000`".to_owned(),
                    });
                }
                Rule {
                    name: name.clone(),
                    kind,
                    condition: Condition(Vec::new()),
                    selector: Selector::default(),
                    for_: Duration::ZERO,
                    keep_firing_for: Duration::ZERO,
                    severity: "warning".to_owned(),
                    labels: BTreeMap::new(),
                    annotations: [("summary".to_owned(), format!("{name}: {{{{ $value }}}}"))]
                        .into(),
                }
            }
        };
        let rule = override_rule(rule, r, &key)?;
        match existing {
            Some(at) => rules[at] = rule,
            None => rules.push(rule),
        }
    }
    Ok(rules)
}

/// Applies the fields given in `r` to `rule`.
fn override_rule(
    mut rule: Rule,
    r: RawRule,
    key: &dyn Fn(&str) -> String,
) -> Result<Rule, ConfigError> {
    if let Some(text) = &r.kind {
        rule.kind = Kind::parse(text)
            .ok_or_else(|| invalid(&key("kind"), text, "queue, node, cluster or audit"))?;
    }
    if let Some(text) = &r.expr {
        rule.condition = Condition::parse(text, rule.kind).map_err(|e| ConfigError::Invalid {
            key: key("expr"),
            value: format!("{text:?}"),
            allowed: format!("a condition such as `messages_ready > 1000`: {e}"),
        })?;
    } else if r.kind.is_some() {
        // A new kind needs a condition over its own fields.
        rule.condition = Condition::parse(&rule.condition.to_string(), rule.kind).map_err(|e| {
            ConfigError::Invalid {
                key: key("expr"),
                value: "missing".to_owned(),
                allowed: format!("a condition for kind {:?}: {e}", rule.kind),
            }
        })?;
    }
    let regex = |field: &str, text: &Option<String>| -> Result<Option<Regex>, ConfigError> {
        text.as_deref()
            .map(|t| parse_regex(&key(&format!("select.{field}")), t))
            .transpose()
    };
    let allowed: &[&str] = match rule.kind {
        Kind::Queue => &["vhost", "queue"],
        Kind::Node => &["node"],
        Kind::Cluster => &[],
        Kind::Audit => &["vhost"],
    };
    for (field, given) in [
        ("vhost", &r.select.vhost),
        ("queue", &r.select.queue),
        ("node", &r.select.node),
    ] {
        if given.is_some() && !allowed.contains(&field) {
            return Err(ConfigError::Invalid {
                key: key(&format!("select.{field}")),
                value: format!("{:?}", given.as_deref().unwrap_or("")),
                allowed: format!(
                    "select keys of a {:?} rule: {}",
                    rule.kind,
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            });
        }
    }
    if let Some(v) = regex("vhost", &r.select.vhost)? {
        rule.selector.vhost = Some(v);
    }
    if let Some(v) = regex("queue", &r.select.queue)? {
        rule.selector.queue = Some(v);
    }
    if let Some(v) = regex("node", &r.select.node)? {
        rule.selector.node = Some(v);
    }
    if let Some(text) = &r.for_ {
        rule.for_ = parse_duration_or_zero(&key("for"), text)?;
    }
    if let Some(text) = &r.keep_firing_for {
        rule.keep_firing_for = parse_duration_or_zero(&key("keep_firing_for"), text)?;
    }
    if let Some(text) = &r.severity {
        if !SEVERITIES.contains(&text.as_str()) {
            return Err(invalid(&key("severity"), text, "critical, warning or info"));
        }
        rule.severity = text.clone();
    }
    for (name, _) in r.labels.iter() {
        if name == "alertname" || name == "severity" || !valid_label_name(name) {
            return Err(invalid(
                &key("labels"),
                name,
                "label names of letters, digits and _ (not starting with a digit), other than alertname and severity",
            ));
        }
    }
    rule.labels.extend(r.labels);
    rule.annotations.extend(r.annotations);
    Ok(rule)
}

/// Whether `name` is a Prometheus label name.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
