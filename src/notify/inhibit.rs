//! Inhibition (Alertmanager's `inhibit_rules`): while a source alert fires, target alerts
//! with the same values of the `equal` labels are muted. Only a source that fires on evidence
//! ([`Alert::observed`]: its condition held at the last evaluation) mutes: one only held by
//! `keep_firing_for` (a partition latched after the broker stopped reporting it) does not.

use crate::alerting::Alert;
use crate::config::InhibitRule;
use crate::matcher::all_match;

/// The alerts of `firing` through which `rule` mutes `alert`: those matching the rule's
/// source, with the same values of its `equal` labels, firing on evidence (not only held by
/// `keep_firing_for`), other than `alert` itself. Empty when `alert` is no target.
pub fn sources<'a>(
    rule: &'a InhibitRule,
    alert: &'a Alert,
    firing: &'a [&'a Alert],
) -> impl Iterator<Item = &'a Alert> + 'a {
    let target = all_match(&rule.target, &alert.labels);
    firing.iter().copied().filter(move |source| {
        target
            && source.fingerprint != alert.fingerprint
            && source.observed()
            && all_match(&rule.source, &source.labels)
            && rule
                .equal
                .iter()
                .all(|l| source.labels.get(l) == alert.labels.get(l))
    })
}

/// Whether `rule` mutes `alert`, given all firing alerts (an alert never inhibits itself;
/// those of `firing` only held by `keep_firing_for` are no sources).
pub fn mutes(rule: &InhibitRule, alert: &Alert, firing: &[&Alert]) -> bool {
    sources(rule, alert, firing).next().is_some()
}

/// Whether any of `rules` mutes `alert`, given all firing alerts.
pub fn inhibited(rules: &[InhibitRule], alert: &Alert, firing: &[&Alert]) -> bool {
    rules.iter().any(|rule| mutes(rule, alert, firing))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::alerting::State;
    use crate::matcher::Matcher;

    fn alert(name: &str, vhost: &str) -> Alert {
        let labels: BTreeMap<String, String> = [("alertname", name), ("vhost", vhost)]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Alert::firing_since(labels, at)
    }

    #[test]
    fn a_source_mutes_targets_with_equal_labels_but_never_itself() {
        let rule = InhibitRule {
            source: vec![Matcher::parse("alertname=~\"Partition|NodeDown\"").unwrap()],
            target: vec![Matcher::parse("alertname=~\"NodeDown|Backlog\"").unwrap()],
            equal: vec!["vhost".into()],
        };
        let source = alert("Partition", "/");
        let target = alert("Backlog", "/");
        let elsewhere = alert("Backlog", "other");
        let firing = [&source];
        assert!(inhibited(std::slice::from_ref(&rule), &target, &firing));
        assert!(!inhibited(std::slice::from_ref(&rule), &elsewhere, &firing));
        // Matching both source and target does not make an alert inhibit itself.
        let node_down = alert("NodeDown", "/");
        assert!(!mutes(&rule, &node_down, &[&node_down]));
        assert!(!inhibited(&[], &target, &firing));
    }

    #[test]
    fn a_partition_held_by_keep_firing_for_mutes_no_node_alert() {
        let rule = crate::config::cluster_inhibit_rule();
        let mut partition = alert("RabbitmqClusterPartition", "/");
        let node_down = alert("RabbitmqNodeDown", "/");
        assert!(inhibited(
            std::slice::from_ref(&rule),
            &node_down,
            &[&partition]
        ));
        // The broker no longer reports the partition; the alert is only latched.
        partition.keep_firing_since = Some(partition.last_true + Duration::from_secs(5));
        assert!(!partition.observed());
        assert!(!inhibited(
            std::slice::from_ref(&rule),
            &node_down,
            &[&partition]
        ));
        // A pending or resolved source mutes nothing either.
        partition.keep_firing_since = None;
        partition.state = State::Pending;
        assert!(!mutes(&rule, &node_down, &[&partition]));
    }
}
