//! The reliability audit's findings as the alert engine sees them, and the evaluation of
//! `kind: audit` rules over them (the advisory alerts of `audit.alerts`, docs/audit.md#alerts).
//!
//! The audit (`crate::audit`) sits above the engine (it reads the engine's assessments), so
//! the engine cannot read the audit's report: the audit publishes this smaller view on a watch
//! channel of its own ([`FindingsReceiver`]), and the engine evaluates audit rules over the
//! latest view at every poll. One alert instance per finding, keyed by check, vhost and object;
//! a finding that is gone resolves its alert. What the audit could not judge (a skipped check,
//! a read that failed or was cut by `audit.max_objects`, no run yet) is unknown: the alerts it
//! covers keep their state, never a false "resolved".

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use super::Alert;
use super::rules::{Evaluation, Field, Instance, InstanceLabels, Labels, Rule};

/// One finding: a check that failed for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
///
/// The check's name, the object type, the severity and the fix are the same few texts for
/// thousands of findings: borrowed from the audit's constants (`Cow::Borrowed`) rather than
/// copied per finding (~3 MB at 10,000 findings, #13).
pub struct AuditFinding {
    /// The check's name (`auto_ack_consumer`, …; docs/audit.md).
    pub check: Cow<'static, str>,
    /// The object's vhost.
    pub vhost: String,
    /// The object's name (a queue, or a channel for `publish_without_confirms`).
    pub object: String,
    /// `queue` or `channel`.
    pub object_type: Cow<'static, str>,
    /// The finding's severity: `info` or `warning`.
    pub severity: Cow<'static, str>,
    /// What is wrong, in one line.
    pub summary: String,
    /// What to do about it.
    pub fix: Cow<'static, str>,
}

/// What the audit could not judge in its last run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// The whole check (a read it needs failed or was cut, or statistics are off).
    Check(String),
    /// Some objects of a check (e.g. queues whose figures are not reported yet), by check,
    /// vhost and object.
    Objects(String, BTreeSet<(String, String)>),
}

/// The audit's last run as the alert engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditView {
    /// Every finding of the run.
    pub findings: Vec<AuditFinding>,
    /// What the run could not judge.
    pub unknown: Vec<Unknown>,
    /// When the run started.
    pub run_at: SystemTime,
}

/// The receiving side of the audit's views: `None` until the audit's first run ends.
pub type FindingsReceiver = watch::Receiver<Option<Arc<AuditView>>>;

impl AuditView {
    /// Whether the alert with `labels` (`check`, `vhost`, `object`) is about something the run
    /// could not judge.
    fn is_unknown(&self, labels: &Labels) -> bool {
        let get = |k: &str| labels.get(k).map_or("", String::as_str);
        let (check, vhost, object) = (get("check"), get("vhost"), get("object"));
        self.unknown.iter().any(|u| match u {
            Unknown::Check(c) => c == check,
            Unknown::Objects(c, objects) => {
                c == check && objects.contains(&(vhost.to_owned(), object.to_owned()))
            }
        })
    }
}

/// The details of a finding's alert, for `{{ $details.NAME }}`: `summary`, `fix`,
/// `finding_severity`.
pub fn details(f: &AuditFinding) -> BTreeMap<String, String> {
    [
        ("summary".to_owned(), f.summary.clone()),
        ("fix".to_owned(), f.fix.to_string()),
        ("finding_severity".to_owned(), f.severity.to_string()),
    ]
    .into()
}

/// Evaluates the audit rule `rule` over `view` (`None`: the audit has not run, or is off:
/// unknown). `alerts` are the engine's current alerts: those of this rule about something the
/// run could not judge are reported unknown, so they keep their state.
pub fn evaluate<'a>(
    rule: &Rule,
    view: Option<&AuditView>,
    alerts: impl IntoIterator<Item = &'a Alert>,
) -> Evaluation<'static> {
    let Some(view) = view else {
        return Evaluation::Unknown;
    };
    let mut active = Vec::new();
    let mut seen = BTreeSet::new();
    for f in &view.findings {
        if !rule
            .selector
            .vhost
            .as_ref()
            .is_none_or(|r| r.is_match(&f.vhost))
        {
            continue;
        }
        let warning = f.severity == "warning";
        let get = |field: Field| match field.name() {
            "finding" => Some(1.0),
            "warning" => Some(if warning { 1.0 } else { 0.0 }),
            _ => None,
        };
        let Some((true, value)) = super::rules::check(&rule.condition, get) else {
            continue;
        };
        let mut labels = rule.labels.clone();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("severity".into(), rule.severity.clone());
        labels.insert("check".into(), f.check.to_string());
        labels.insert("vhost".into(), f.vhost.clone());
        labels.insert("object".into(), f.object.clone());
        labels.insert("object_type".into(), f.object_type.to_string());
        labels.insert("finding_severity".into(), f.severity.to_string());
        // Two findings never share (check, vhost, object); keep the first if they did.
        if !seen.insert(labels.clone()) {
            continue;
        }
        active.push(Instance {
            labels: InstanceLabels::Full(labels),
            value,
            analysis: None,
            facts: details(f),
        });
    }
    let unknown = alerts
        .into_iter()
        .filter(|a| a.labels.get("alertname") == Some(&rule.name))
        .filter(|a| !seen.contains(&a.labels) && view.is_unknown(&a.labels))
        .map(|a| InstanceLabels::Full((*a.labels).clone()))
        .collect();
    Evaluation::Known { active, unknown }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::alerting::{Engine, State};
    use crate::config::audit::audit_rule;
    use crate::snapshot::Snapshot;

    fn finding(check: &str, object: &str) -> AuditFinding {
        AuditFinding {
            check: check.to_owned().into(),
            vhost: "/".into(),
            object: object.into(),
            object_type: "queue".into(),
            severity: "warning".into(),
            summary: format!("{object} <b>is</b> at risk"),
            fix: "do this".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// An engine with the audit rule, fed views through a watch channel.
    fn engine() -> (Engine, watch::Sender<Option<Arc<AuditView>>>) {
        let (tx, rx) = watch::channel(None);
        (Engine::new(vec![audit_rule()]).with_findings(rx), tx)
    }

    fn view(findings: Vec<AuditFinding>, unknown: Vec<Unknown>) -> Option<Arc<AuditView>> {
        Some(Arc::new(AuditView {
            findings,
            unknown,
            run_at: at(0),
        }))
    }

    /// (object, state, unknown) of every alert, by object.
    fn states(e: &Engine) -> Vec<(String, State, bool)> {
        let mut out: Vec<_> = e
            .alerts()
            .map(|a| (a.labels["object"].clone(), a.state, a.unknown))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn poll(e: &mut Engine, secs: u64) {
        let s = Snapshot::builder().started_at(at(secs)).build();
        e.evaluate(&s, at(secs));
    }

    #[test]
    fn one_alert_per_finding_resolving_when_the_finding_goes() {
        let (mut e, tx) = engine();
        poll(&mut e, 0);
        assert!(states(&e).is_empty(), "no run yet: nothing");
        tx.send_replace(view(
            vec![
                finding("auto_ack_consumer", "a"),
                finding("auto_ack_consumer", "b"),
            ],
            vec![],
        ));
        poll(&mut e, 1);
        assert_eq!(
            states(&e),
            vec![
                ("a".into(), State::Firing, false),
                ("b".into(), State::Firing, false)
            ]
        );
        let a = e.alerts().find(|a| a.labels["object"] == "a").unwrap();
        assert_eq!(a.labels["alertname"], "RabbitmqAuditFinding");
        assert_eq!(a.labels["severity"], "info");
        assert_eq!(a.labels["check"], "auto_ack_consumer");
        assert_eq!(a.labels["finding_severity"], "warning");
        assert_eq!(a.annotations["description"], "a <b>is</b> at risk");
        assert_eq!(a.annotations["fix"], "do this");
        // b is fixed.
        tx.send_replace(view(vec![finding("auto_ack_consumer", "a")], vec![]));
        poll(&mut e, 2);
        assert_eq!(
            states(&e),
            vec![
                ("a".into(), State::Firing, false),
                ("b".into(), State::Resolved, false)
            ]
        );
    }

    #[test]
    fn what_the_audit_could_not_judge_keeps_its_state() {
        let (mut e, tx) = engine();
        tx.send_replace(view(
            vec![
                finding("auto_ack_consumer", "a"),
                finding("requeue_loop", "q1"),
                finding("requeue_loop", "q2"),
            ],
            vec![],
        ));
        poll(&mut e, 0);
        // /api/consumers failed; q1 has no verdict this run; q2 is known to be fixed.
        tx.send_replace(view(
            vec![],
            vec![
                Unknown::Check("auto_ack_consumer".into()),
                Unknown::Objects(
                    "requeue_loop".into(),
                    [("/".to_owned(), "q1".to_owned())].into(),
                ),
            ],
        ));
        poll(&mut e, 1);
        assert_eq!(
            states(&e),
            vec![
                ("a".into(), State::Firing, true),
                ("q1".into(), State::Firing, true),
                ("q2".into(), State::Resolved, false),
            ]
        );
        // The audit's channel closes (e.g. the audit is off): unknown, held.
        drop(tx);
        poll(&mut e, 2);
        assert!(
            states(&e)
                .iter()
                .all(|(o, s, _)| o == "q2" || *s == State::Firing)
        );
    }

    #[test]
    fn the_condition_and_the_vhost_selector_pick_findings() {
        let mut rule = audit_rule();
        rule.condition = crate::config::rules::Condition::parse(
            "warning == 1",
            crate::config::rules::Kind::Audit,
        )
        .unwrap();
        let mut info = finding("classic_mirrored_queue", "m");
        info.severity = "info".into();
        let v = AuditView {
            findings: vec![finding("auto_ack_consumer", "a"), info],
            unknown: vec![],
            run_at: at(0),
        };
        let Evaluation::Known { active, .. } = evaluate(&rule, Some(&v), &[]) else {
            panic!("known");
        };
        let objects: Vec<_> = active
            .iter()
            .map(|i| match &i.labels {
                InstanceLabels::Full(l) => l["object"].as_str(),
                InstanceLabels::Object(_) => "",
            })
            .collect();
        assert_eq!(objects, vec!["a"]);
        rule.selector.vhost = Some(crate::types::Regex::new("other").unwrap());
        let Evaluation::Known { active, .. } = evaluate(&rule, Some(&v), &[]) else {
            panic!("known");
        };
        assert!(active.is_empty());
        assert_eq!(evaluate(&rule, None, &[]), Evaluation::Unknown);
    }
}
