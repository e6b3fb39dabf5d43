//! The status page's reliability audit section (`templates/status_audit.html`, included by
//! `status.html`): the last run's findings counted by severity, the top findings (warnings
//! first, at most [`MAX_AUDIT_ROWS`], each text cut to [`MAX_TEXT_CHARS`]) with what to do
//! about them, and the checks that were skipped. Values are escaped by the template.

use std::time::SystemTime;

use crate::audit::{Report, Severity};
use crate::util::elapsed;

/// Finding rows shown; the rest are in `/api/v1/audit`.
pub const MAX_AUDIT_ROWS: usize = 20;

/// Longest summary, fix or object name shown (longer ones are cut, with `…`): channel and
/// queue names come from clients.
pub const MAX_TEXT_CHARS: usize = 300;

/// What the page knows about the audit.
#[derive(Debug, Clone, Copy)]
pub enum AuditState<'a> {
    /// `audit.enabled` is false: no section.
    Off,
    /// On, no run has ended yet.
    Waiting,
    /// The last run's report.
    Ran(&'a Report),
}

/// The section's view model.
#[derive(Debug, Clone, Default)]
pub struct AuditSection {
    /// Whether a run has ended (else the section says it is waiting).
    pub ran: bool,
    /// When the last run started, in words (`2 minutes ago`).
    pub last_run: String,
    /// Findings of severity warning.
    pub warnings: usize,
    /// Findings of severity info.
    pub infos: usize,
    /// The top findings.
    pub rows: Vec<AuditRow>,
    /// Checks skipped (fully or for some objects), with the reason: `check: reason`.
    pub skipped: Vec<String>,
}

impl AuditSection {
    /// All findings.
    pub fn total(&self) -> usize {
        self.warnings + self.infos
    }
}

/// One finding row.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// `warning` or `info` (also the CSS class: `warn` or `muted`).
    pub severity: &'static str,
    /// The check's name.
    pub check: &'static str,
    /// `queue` or `channel`.
    pub object_type: &'static str,
    /// The object's name, cut to [`MAX_TEXT_CHARS`].
    pub object: String,
    /// The object's vhost.
    pub vhost: String,
    /// What is wrong, cut to [`MAX_TEXT_CHARS`].
    pub summary: String,
    /// What to do, cut to [`MAX_TEXT_CHARS`].
    pub fix: String,
}

impl AuditRow {
    /// The CSS class of the severity tag.
    pub fn class(&self) -> &'static str {
        if self.severity == "warning" {
            "warn"
        } else {
            "muted"
        }
    }
}

/// `text` cut to [`MAX_TEXT_CHARS`] characters (with `…` when cut).
fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_TEXT_CHARS - 1).collect();
    out.push('…');
    out
}

/// The section for `state` at `now` (`None` when the audit is off).
pub fn section(state: AuditState<'_>, now: SystemTime) -> Option<AuditSection> {
    let report = match state {
        AuditState::Off => return None,
        AuditState::Waiting => return Some(AuditSection::default()),
        AuditState::Ran(r) => r,
    };
    let findings = &report.outcome.findings;
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    // Warnings first, then in the report's order (check, vhost, object).
    let mut top: Vec<_> = findings.iter().collect();
    top.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let rows = top
        .into_iter()
        .take(MAX_AUDIT_ROWS)
        .map(|f| AuditRow {
            severity: f.severity.label(),
            check: f.check.name(),
            object_type: f.object_type,
            object: cut(&f.object),
            vhost: cut(&f.vhost),
            summary: cut(&f.summary),
            fix: cut(&f.fix),
        })
        .collect();
    let skipped = report
        .outcome
        .skipped
        .iter()
        .take(MAX_AUDIT_ROWS)
        .map(|s| cut(&format!("{}: {}", s.check.name(), s.reason)))
        .collect();
    Some(AuditSection {
        ran: true,
        last_run: format!(
            "{} ago",
            humantime::format_duration(std::time::Duration::from_secs(
                elapsed(report.last_run, now).as_secs()
            ))
        ),
        warnings,
        infos: findings.len() - warnings,
        rows,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::audit::{Check, Finding, Outcome, Skipped};
    use crate::status::{Inputs, Query, Settings, render};

    fn finding(check: Check, object: &str, summary: &str) -> Finding {
        Finding {
            check,
            vhost: "orders".into(),
            object: object.into(),
            object_type: "queue",
            severity: check.severity(),
            summary: summary.into(),
            fix: "declare it <durable> & move on".into(),
        }
    }

    fn page(state: AuditState<'_>, now: SystemTime) -> String {
        let settings = Settings {
            target: "http://mq/".into(),
            poll_interval: Duration::from_secs(15),
            admin_api: false,
        };
        render(&Inputs {
            settings: &settings,
            snapshot: None,
            assessment: None,
            silences: &[],
            inhibit_rules: &[],
            health: Ok(()),
            query: &Query::default(),
            now,
            audit: state,
        })
    }

    /// The audit section of a rendered page.
    fn audit_section(html: &str) -> &str {
        let start = html.find("<section id=\"audit\">").expect("audit section");
        let end = html[start..].find("</section>").expect("section end") + start;
        &html[start..end]
    }

    #[test]
    fn findings_counted_by_severity_warnings_first_escaped_and_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // One info finding and 24 warnings, in the report's order (by check).
        let mut findings = vec![finding(
            Check::ClassicMirrored,
            "mirrored",
            "under an ha-mode policy",
        )];
        for i in 0..24 {
            findings.push(finding(
                Check::TransientMessages,
                &format!("q{i:02}<img src=x>"),
                "3 of the 5 messages are <b>transient</b>",
            ));
        }
        findings.sort_by_key(|f| f.check);
        let report = Report {
            outcome: Outcome {
                findings,
                skipped: vec![Skipped {
                    check: Check::RequeueLoop,
                    reason: "2 queues have no backlog verdict yet".into(),
                    objects: None,
                }],
            },
            last_run: now - Duration::from_secs(120),
            duration: Duration::from_millis(35),
            reads: vec![],
            failures: BTreeMap::new(),
            runs: 3,
        };
        let html = page(AuditState::Ran(&report), now);
        let s = audit_section(&html);
        assert!(
            s.contains("25 findings: 24 warning, 1 info · last run 2m ago"),
            "{s}"
        );
        // Capped: MAX_AUDIT_ROWS rows, warnings first (the info finding is left out), and a
        // pointer to the API for the rest.
        assert_eq!(s.matches("<tr><td>").count(), MAX_AUDIT_ROWS, "{s}");
        assert!(!s.contains("mirrored"), "{s}");
        assert!(
            s.contains("20 shown, warnings first; all 25 in <a href=\"api/v1/audit\">"),
            "{s}"
        );
        // Escaped: names and texts from clients never become markup.
        assert!(s.contains("queue q00&lt;img src=x&gt;"), "{s}");
        assert!(!s.contains("<img"), "{s}");
        assert!(s.contains("&lt;b&gt;transient&lt;/b&gt;"), "{s}");
        assert!(
            s.contains("declare it &lt;durable&gt; &amp; move on"),
            "{s}"
        );
        assert!(s.contains("transient_messages"), "{s}");
        assert!(s.contains("(orders)"), "{s}");
        assert!(
            s.contains("requeue_loop: 2 queues have no backlog verdict yet"),
            "{s}"
        );
    }

    #[test]
    fn long_texts_are_cut_and_states_without_findings_say_so() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let long = "x".repeat(1000);
        let report = Report {
            outcome: Outcome {
                findings: vec![finding(Check::AutoAck, &long, &long)],
                skipped: vec![],
            },
            last_run: now,
            duration: Duration::ZERO,
            reads: vec![],
            failures: BTreeMap::new(),
            runs: 1,
        };
        let section = section(AuditState::Ran(&report), now).expect("on");
        let row = &section.rows[0];
        assert_eq!(row.summary.chars().count(), MAX_TEXT_CHARS);
        assert!(row.summary.ends_with('…'));
        assert_eq!(row.object.chars().count(), MAX_TEXT_CHARS);

        let clean = Report {
            outcome: Outcome::default(),
            ..report
        };
        let html = page(AuditState::Ran(&clean), now);
        assert!(audit_section(&html).contains("No finding"), "{html}");
        let html = page(AuditState::Waiting, now);
        assert!(audit_section(&html).contains("waiting for the first run"));
        let html = page(AuditState::Off, now);
        assert!(!html.contains("id=\"audit\""));
    }
}
