//! Inhibition (Alertmanager's `inhibit_rules`): while a source alert fires, target alerts
//! with the same values of the `equal` labels are muted.

use super::matcher::{Matcher, all_match};
use crate::alerting::Alert;

/// An inhibition rule: while an alert matching `source` fires, alerts matching `target` with
/// the same values of the `equal` labels are muted.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// Matchers of the inhibiting alert.
    pub source: Vec<Matcher>,
    /// Matchers of the muted alerts.
    pub target: Vec<Matcher>,
    /// Labels that must be equal on both.
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Whether this rule mutes `alert`, given all firing alerts (an alert never inhibits
    /// itself).
    pub fn mutes(&self, alert: &Alert, firing: &[&Alert]) -> bool {
        all_match(&self.target, &alert.labels)
            && firing.iter().any(|source| {
                source.fingerprint != alert.fingerprint
                    && all_match(&self.source, &source.labels)
                    && self
                        .equal
                        .iter()
                        .all(|l| source.labels.get(l) == alert.labels.get(l))
            })
    }
}

/// Whether any of `rules` mutes `alert`, given all firing alerts.
pub fn inhibited(rules: &[InhibitRule], alert: &Alert, firing: &[&Alert]) -> bool {
    rules.iter().any(|rule| rule.mutes(alert, firing))
}
