//! Why an alert is not notified, as Alertmanager's API reports it: `status.state`
//! (`active`, or `suppressed` while a silence or an inhibition mutes it), `silencedBy` (the
//! ids of the active silences matching it) and `inhibitedBy` (the fingerprints of the alerts
//! inhibiting it). Muted alerts stay listed in `/api/v1/alerts` and on the status page; only
//! their notifications are held back. The same silences and inhibit rules as the dispatcher
//! ([`super::dispatch`]), so what is shown is what is sent.

use std::time::SystemTime;

use serde::Serialize;

use super::inhibit::Inhibitions;
use super::silence::Silence;
use crate::alerting::Alert;
use crate::config::InhibitRule;
use crate::matcher::{Matcher, all_match};

/// An alert's suppression status (Alertmanager's `status` object of an alert).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `active` (notified) or `suppressed` (silenced or inhibited).
    pub state: &'static str,
    /// Ids of the active silences matching the alert.
    #[serde(rename = "silencedBy")]
    pub silenced_by: Vec<String>,
    /// Fingerprints of the alerts inhibiting it (firing on evidence, matching an inhibit
    /// rule's source, with equal values of its `equal` labels).
    #[serde(rename = "inhibitedBy")]
    pub inhibited_by: Vec<String>,
}

impl Status {
    /// `silenced by <id>` / `inhibited by <alertname>` for the status page; `None` when
    /// the alert is notified.
    pub fn describe(&self, alerts: &[Alert]) -> Option<String> {
        let mut parts = Vec::new();
        if !self.silenced_by.is_empty() {
            parts.push(format!("silenced by {}", self.silenced_by.join(", ")));
        }
        if !self.inhibited_by.is_empty() {
            let mut names: Vec<&str> = self
                .inhibited_by
                .iter()
                .filter_map(|fp| alerts.iter().find(|a| &a.fingerprint == fp))
                .filter_map(|a| a.labels.get("alertname").map(String::as_str))
                .collect();
            names.sort_unstable();
            names.dedup();
            parts.push(format!("inhibited by {}", names.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The silences and inhibitions in effect for one list of alerts, prepared once.
#[derive(Debug)]
pub struct Suppressor<'a> {
    /// The inhibit rules' sources, indexed.
    inhibitions: Inhibitions<'a>,
    silences: Vec<(&'a str, Vec<Matcher>)>,
}

impl<'a> Suppressor<'a> {
    /// For `alerts` (every alert instance), the inhibit rules `rules` and the silences
    /// `silences` (those active at `now` count; their matchers were validated when created).
    pub fn new(
        rules: &'a [InhibitRule],
        alerts: &'a [Alert],
        silences: &'a [Silence],
        now: SystemTime,
    ) -> Self {
        Suppressor {
            inhibitions: Inhibitions::new(rules, alerts.iter()),
            silences: silences
                .iter()
                .filter(|s| s.state(now) == "active")
                .filter_map(|s| {
                    let matchers = s.matchers.iter().map(|m| Matcher::parse(m).ok());
                    Some((s.id.as_str(), matchers.collect::<Option<Vec<_>>>()?))
                })
                .collect(),
        }
    }

    /// `alert`'s status.
    pub fn status(&self, alert: &Alert) -> Status {
        let silenced_by: Vec<String> = self
            .silences
            .iter()
            .filter(|(_, m)| !m.is_empty() && all_match(m, &alert.labels))
            .map(|(id, _)| (*id).to_owned())
            .collect();
        let mut inhibited_by: Vec<String> = self
            .inhibitions
            .sources(alert)
            .map(|a| a.fingerprint.clone())
            .collect();
        inhibited_by.sort();
        inhibited_by.dedup();
        let state = if silenced_by.is_empty() && inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        };
        Status {
            state,
            silenced_by,
            inhibited_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn alert(name: &str, queue: &str) -> Alert {
        let labels: BTreeMap<String, String> =
            [("alertname", name), ("vhost", "/"), ("queue", queue)]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        Alert::firing_since(labels, at(0))
    }

    fn silence(id: &str, matcher: &str, ends: u64) -> Silence {
        Silence {
            id: id.to_owned(),
            matchers: vec![matcher.to_owned()],
            starts_at: at(0),
            ends_at: at(ends),
            created_by: "ops".to_owned(),
            comment: "maintenance".to_owned(),
        }
    }

    #[test]
    fn inhibited_and_silenced_alerts_are_suppressed_with_their_reasons() {
        let rules = [crate::config::queue_inhibit_rule()];
        let alerts = vec![
            alert("RabbitmqQueueStalled", "orders"),
            alert("RabbitmqQueueGrowing", "orders"),
            alert("RabbitmqQueueGrowing", "billing"),
            alert("RabbitmqQueueMessagesReady", "audit"),
        ];
        let silences = [
            silence("s1", r#"queue="audit""#, 600),
            silence("s2", r#"queue="billing""#, 5),
        ];
        let s = Suppressor::new(&rules, &alerts, &silences, at(60));
        let stalled = s.status(&alerts[0]);
        assert_eq!(
            stalled,
            Status {
                state: "active",
                ..Status::default()
            }
        );
        let growing = s.status(&alerts[1]);
        assert_eq!(growing.state, "suppressed");
        assert_eq!(growing.inhibited_by, [alerts[0].fingerprint.clone()]);
        assert!(growing.silenced_by.is_empty());
        assert_eq!(
            growing.describe(&alerts).as_deref(),
            Some("inhibited by RabbitmqQueueStalled")
        );
        // Another queue's Growing is not inhibited; its silence expired at 5 s.
        assert_eq!(s.status(&alerts[2]).state, "active");
        let ready = s.status(&alerts[3]);
        assert_eq!(ready.state, "suppressed");
        assert_eq!(ready.silenced_by, ["s1"]);
        assert_eq!(ready.describe(&alerts).as_deref(), Some("silenced by s1"));
        // Serialized as Alertmanager's API does.
        assert_eq!(
            serde_json::to_value(&ready).unwrap(),
            serde_json::json!({"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []})
        );
    }

    #[test]
    fn a_source_only_held_by_keep_firing_for_inhibits_nothing() {
        let rules = [crate::config::queue_inhibit_rule()];
        let mut alerts = vec![
            alert("RabbitmqQueueStalled", "orders"),
            alert("RabbitmqQueueGrowing", "orders"),
        ];
        alerts[0].keep_firing_since = Some(at(30));
        let s = Suppressor::new(&rules, &alerts, &[], at(60));
        assert_eq!(s.status(&alerts[1]).state, "active");
    }
}
