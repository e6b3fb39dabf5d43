//! The reliability audit's report as metrics: findings counted per check, one series per
//! finding (capped), skipped checks, objects dropped by `audit.max_objects`, last run.
//! The audit's reads are in the sidecar's endpoint families ([`super::sidecar`]).

use std::fmt;
use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{Family, flag};
use crate::audit::{AuditReceiver, Check, Report};
use crate::rabbitmq::Endpoint;

/// Where the encoder finds the audit's latest report.
#[derive(Debug, Clone)]
pub struct AuditSource {
    /// The audit task's reports.
    pub reports: AuditReceiver,
    /// `audit.max_findings`: per-object series exported at most (0: no limit).
    pub max_findings: u64,
}

/// `rabbitmq_audit_findings{check,severity}`.
pub const FINDINGS: Family = Family {
    name: "rabbitmq_audit_findings",
    help: "Findings of the last reliability audit run, by check (0 for each check that found nothing). As of the last audit run (audit.interval).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_audit_finding{check,vhost,object,severity}`: 1 per finding.
pub const FINDING: Family = Family {
    name: "rabbitmq_audit_finding",
    help: "1 for each finding of the last reliability audit run (object: a queue, or a channel for publish_without_confirms); at most audit.max_findings series, the rest counted in rabbitmq_audit_findings_dropped.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_audit_findings_dropped`: findings without a series because of the cap.
pub const FINDINGS_DROPPED: Family = Family {
    name: "rabbitmq_audit_findings_dropped",
    help: "Findings of the last audit run with no rabbitmq_audit_finding series because audit.max_findings was reached (they are still counted in rabbitmq_audit_findings and listed by /api/v1/audit).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_audit_check_skipped{check}`: 1 when the check could not judge some objects.
pub const CHECK_SKIPPED: Family = Family {
    name: "rabbitmq_audit_check_skipped",
    help: "1 when the last audit run could not judge some or all objects for this check (a read failed, or figures are missing, e.g. statistics disabled on RabbitMQ 4.x): its findings are incomplete; /api/v1/audit says why.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_audit_objects_dropped{endpoint}`: objects not audited because of the cap.
pub const OBJECTS_DROPPED: Family = Family {
    name: "rabbitmq_audit_objects_dropped",
    help: "Objects returned by this audit read in the last run that were not audited because audit.max_objects was reached.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_audit_last_run_timestamp_seconds`.
pub const LAST_RUN: Family = Family {
    name: "rabbitmq_audit_last_run_timestamp",
    help: "Unix time at which the last reliability audit run started.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_audit_duration_seconds`.
pub const DURATION: Family = Family {
    name: "rabbitmq_audit_duration",
    help: "Wall time of the last reliability audit run (its reads and checks).",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_audit_runs_total`.
pub const RUNS: Family = Family {
    name: "rabbitmq_audit_runs",
    help: "Reliability audit runs completed since the sidecar started.",
    unit: None,
    source: "sidecar",
};

/// Writes the audit families for `report` (nothing before the first run).
pub fn encode(enc: &mut DescriptorEncoder, report: &Report, max_findings: u64) -> fmt::Result {
    let findings = &report.outcome.findings;
    FINDINGS.gauge(
        enc,
        Check::ALL.iter().map(|c| {
            let n = findings.iter().filter(|f| f.check == *c).count() as u64;
            ([("check", c.name()), ("severity", c.severity().label())], n)
        }),
    )?;
    let cap = usize::try_from(max_findings).unwrap_or(usize::MAX);
    let shown = if cap == 0 {
        findings.len()
    } else {
        findings.len().min(cap)
    };
    FINDING.gauge(
        enc,
        findings[..shown].iter().map(|f| {
            (
                [
                    ("check", f.check.name()),
                    ("vhost", f.vhost.as_str()),
                    ("object", f.object.as_str()),
                    ("severity", f.severity.label()),
                ],
                1i64,
            )
        }),
    )?;
    FINDINGS_DROPPED.gauge_value(enc, Some((findings.len() - shown) as u64))?;
    CHECK_SKIPPED.gauge(
        enc,
        Check::ALL.iter().map(|c| {
            let skipped = report.outcome.skipped.iter().any(|s| s.check == *c);
            ([("check", c.name())], flag(skipped))
        }),
    )?;
    OBJECTS_DROPPED.gauge(
        enc,
        Endpoint::AUDIT.iter().map(|e| {
            (
                [("endpoint", e.path())],
                report.read(*e).map_or(0, |r| r.dropped),
            )
        }),
    )?;
    let at = report
        .last_run
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    LAST_RUN.gauge_value(enc, Some(at))?;
    DURATION.gauge_value(enc, Some(report.duration.as_secs_f64()))?;
    RUNS.counter_value(enc, report.runs)
}
