//! `audit.*`: the reliability audit (the `audit` module): whether it runs, how often, how many
//! objects it reads and how many findings it exports.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::ConfigError;
use super::parse::{invalid, parse_bool, parse_count, parse_duration};
use super::rules::{Condition, Kind, Rule, Selector};
use crate::util::ser;

/// Default `audit.interval`: the audit's reads (consumers, channels, exchanges, bindings)
/// grow with the number of connections, so they run far less often than the poll.
pub const DEFAULT_AUDIT_INTERVAL: &str = "5m";
/// The shortest `audit.interval` accepted.
pub const MIN_AUDIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default `audit.max_objects`: objects kept per audit read.
pub const DEFAULT_AUDIT_MAX_OBJECTS: u64 = 100_000;
/// Default `audit.max_findings`: per-object finding series exported.
pub const DEFAULT_AUDIT_MAX_FINDINGS: u64 = 1_000;
/// Default `audit.backlog_messages`: messages (ready + unacknowledged) from which a queue
/// counts as backed up for the unlimited-prefetch check.
pub const DEFAULT_AUDIT_BACKLOG_MESSAGES: u64 = 1_000;

/// `audit.*`: the reliability audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditConfig {
    /// `audit.enabled`: run the audit. Default `true`.
    pub enabled: bool,
    /// `audit.interval`: time between two audit runs (each reads `/api/consumers`,
    /// `/api/channels`, `/api/exchanges` and `/api/bindings`). Default 5 m; at least 1 s.
    #[serde(serialize_with = "ser::duration")]
    pub interval: Duration,
    /// `audit.max_objects`: at most this many objects are kept from each audit read (the
    /// rest are counted in `rabbitmq_audit_objects_dropped`). Default 100000; 0 means no limit.
    pub max_objects: u64,
    /// `audit.max_findings`: at most this many `rabbitmq_audit_finding` series (the rest
    /// are counted in `rabbitmq_audit_findings_dropped`; `rabbitmq_audit_findings` and the
    /// API still count and list every finding). Default 1000; 0 means no limit.
    pub max_findings: u64,
    /// `audit.backlog_messages`: a queue holding at least this many messages (ready +
    /// unacknowledged) is backed up, for the unlimited-prefetch check. Default 1000; at least 1.
    pub backlog_messages: u64,
    /// `audit.alerts`: raise an advisory alert ([`AUDIT_ALERT`], severity `info`) per
    /// finding. Default `false`; needs `audit.enabled`.
    pub alerts: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        validate_audit(RawAudit::default()).unwrap_or(AuditConfig {
            enabled: true,
            interval: Duration::from_secs(300),
            max_objects: DEFAULT_AUDIT_MAX_OBJECTS,
            max_findings: DEFAULT_AUDIT_MAX_FINDINGS,
            backlog_messages: DEFAULT_AUDIT_BACKLOG_MESSAGES,
            alerts: false,
        })
    }
}

/// `audit.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAudit {
    enabled: Option<String>,
    interval: Option<String>,
    max_objects: Option<String>,
    max_findings: Option<String>,
    backlog_messages: Option<String>,
    alerts: Option<String>,
}

/// Validates `audit.*`.
pub(super) fn validate_audit(raw: RawAudit) -> Result<AuditConfig, ConfigError> {
    let enabled = parse_bool("audit.enabled", raw.enabled.as_deref().unwrap_or("true"))?;
    let interval = parse_duration(
        "audit.interval",
        raw.interval.as_deref().unwrap_or(DEFAULT_AUDIT_INTERVAL),
    )?;
    if interval < MIN_AUDIT_INTERVAL {
        return Err(invalid(
            "audit.interval",
            &humantime::format_duration(interval).to_string(),
            "a duration of at least 1s (the audit's reads are heavier than the poll's)",
        ));
    }
    let max_objects = parse_count(
        "audit.max_objects",
        raw.max_objects.as_deref(),
        DEFAULT_AUDIT_MAX_OBJECTS,
    )?;
    let max_findings = parse_count(
        "audit.max_findings",
        raw.max_findings.as_deref(),
        DEFAULT_AUDIT_MAX_FINDINGS,
    )?;
    let backlog_messages = match raw.backlog_messages.as_deref() {
        None => DEFAULT_AUDIT_BACKLOG_MESSAGES,
        Some(t) => match t.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(invalid(
                    "audit.backlog_messages",
                    t,
                    "a whole number of messages, at least 1",
                ));
            }
        },
    };
    let alerts = parse_bool("audit.alerts", raw.alerts.as_deref().unwrap_or("false"))?;
    if alerts && !enabled {
        return Err(invalid(
            "audit.alerts",
            "true",
            "false while audit.enabled is false (the alerts come from the audit's findings)",
        ));
    }
    Ok(AuditConfig {
        enabled,
        interval,
        max_objects,
        max_findings,
        backlog_messages,
        alerts,
    })
}

/// The name of the advisory alert `audit.alerts` adds (one instance per finding).
pub const AUDIT_ALERT: &str = "RabbitmqAuditFinding";

/// The rule `audit.alerts: true` appends to `alerting.rules` (unless a rule of that name is
/// there already): kind `audit`, `finding == 1`, `for` 0 s, severity `info`; the summary and
/// the description carry the finding's own summary and fix.
pub fn audit_rule() -> Rule {
    Rule {
        name: AUDIT_ALERT.to_owned(),
        kind: Kind::Audit,
        condition: Condition::parse("finding == 1", Kind::Audit).unwrap_or(Condition(Vec::new())),
        selector: Selector::default(),
        for_: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        severity: "info".to_owned(),
        labels: BTreeMap::new(),
        annotations: [
            (
                "summary".to_owned(),
                "Reliability audit: {{ $labels.check }} on {{ $labels.object_type }} {{ $labels.object }} in vhost {{ $labels.vhost }}".to_owned(),
            ),
            ("description".to_owned(), "{{ $details.summary }}".to_owned()),
            ("fix".to_owned(), "{{ $details.fix }}".to_owned()),
        ]
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(interval: Option<&str>, backlog: Option<&str>) -> RawAudit {
        RawAudit {
            interval: interval.map(str::to_owned),
            backlog_messages: backlog.map(str::to_owned),
            ..RawAudit::default()
        }
    }

    #[test]
    fn defaults() {
        let a = validate_audit(RawAudit::default()).expect("defaults are valid");
        assert!(a.enabled);
        assert_eq!(a.interval, Duration::from_secs(300));
        assert_eq!(a.max_objects, 100_000);
        assert_eq!(a.max_findings, 1_000);
        assert_eq!(a.backlog_messages, 1_000);
        assert!(!a.alerts, "advisory alerts are off by default");
    }

    #[test]
    fn alerts_need_the_audit_and_the_rule_parses() {
        let e = validate_audit(RawAudit {
            enabled: Some("false".to_owned()),
            alerts: Some("true".to_owned()),
            ..RawAudit::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("`audit.alerts`"), "{e}");
        let r = audit_rule();
        assert_eq!(r.condition.to_string(), "finding == 1");
        assert_eq!((r.severity.as_str(), r.kind), ("info", Kind::Audit));
    }

    #[test]
    fn bad_values_name_key_value_and_allowed() {
        let e = validate_audit(raw(Some("500ms"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`audit.interval`") && e.contains("500ms"), "{e}");
        assert!(e.contains("at least 1s"), "{e}");
        let e = validate_audit(raw(Some("soon"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`audit.interval`") && e.contains("soon"), "{e}");
        let e = validate_audit(raw(None, Some("0")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`audit.backlog_messages`"), "{e}");
        let e = validate_audit(RawAudit {
            enabled: Some("yes".to_owned()),
            ..RawAudit::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`audit.enabled`") && e.contains("true or false"),
            "{e}"
        );
    }
}
