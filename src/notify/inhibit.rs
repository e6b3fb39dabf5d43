//! Inhibition (Alertmanager's `inhibit_rules`): while a source alert fires, target alerts
//! with the same values of the `equal` labels are muted. Only a source that fires on evidence
//! ([`Alert::observed`]: its condition held at the last evaluation) mutes: one only held by
//! `keep_firing_for` (a partition latched after the broker stopped reporting it) does not.

use std::collections::HashMap;

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

/// The values of `rule`'s `equal` labels on `alert` (`None` where it has no such label: two
/// alerts both without it are equal on it, as [`sources`] compares them).
fn equal_values<'a>(rule: &InhibitRule, alert: &'a Alert) -> Vec<Option<&'a str>> {
    rule.equal
        .iter()
        .map(|l| alert.labels.get(l).map(String::as_str))
        .collect()
}

/// The inhibiting alerts among a set of alerts, found once per rule and indexed by the values
/// of the rule's `equal` labels: each alert is then judged with one lookup per rule, where
/// [`inhibited`] compares it with every firing alert. The same answers as [`sources`] and
/// [`inhibited`] (a property test checks it); what the dispatcher and `/api/v1/alerts` use.
/// With 10,000 firing queue alerts the pairwise form made 10⁸ comparisons per evaluation,
/// ~2–3 s of CPU per poll (issue #13).
#[derive(Debug)]
pub struct Inhibitions<'a> {
    /// The rules, in configuration order.
    rules: &'a [InhibitRule],
    /// Per rule: its sources (firing on evidence, matching its source matchers) by the values
    /// of its `equal` labels.
    sources: Vec<HashMap<Vec<Option<&'a str>>, Vec<&'a Alert>>>,
}

impl<'a> Inhibitions<'a> {
    /// The sources of each of `rules` among `alerts` (any alerts: only those firing on
    /// evidence can inhibit).
    pub fn new(rules: &'a [InhibitRule], alerts: impl Iterator<Item = &'a Alert> + Clone) -> Self {
        let sources = rules
            .iter()
            .map(|rule| {
                let mut index: HashMap<Vec<Option<&'a str>>, Vec<&'a Alert>> = HashMap::new();
                for source in alerts
                    .clone()
                    .filter(|a| a.observed() && all_match(&rule.source, &a.labels))
                {
                    index
                        .entry(equal_values(rule, source))
                        .or_default()
                        .push(source);
                }
                index
            })
            .collect();
        Inhibitions { rules, sources }
    }

    /// The alerts that mute `alert`, rule by rule (an alert muted through two rules by one
    /// source is listed twice); never `alert` itself.
    pub fn sources<'s>(&'s self, alert: &'s Alert) -> impl Iterator<Item = &'a Alert> + 's {
        self.rules
            .iter()
            .zip(&self.sources)
            .filter(|(rule, _)| all_match(&rule.target, &alert.labels))
            .flat_map(move |(rule, index)| {
                index
                    .get(&equal_values(rule, alert))
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(move |source| source.fingerprint != alert.fingerprint)
            })
    }

    /// Whether any rule mutes `alert`.
    pub fn inhibited(&self, alert: &Alert) -> bool {
        self.sources(alert).next().is_some()
    }
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

    /// An alert for the property test: `name` ∈ {A, B, C}, `vhost` and `queue` maybe absent.
    fn arbitrary_alert((name, vhost, queue, state): (u8, Option<u8>, Option<u8>, u8)) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert(
            "alertname".to_owned(),
            ["A", "B", "C"][name as usize % 3].to_owned(),
        );
        if let Some(v) = vhost {
            labels.insert("vhost".to_owned(), format!("v{v}"));
        }
        if let Some(q) = queue {
            labels.insert("queue".to_owned(), format!("q{q}"));
        }
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut alert = Alert::firing_since(labels, at);
        match state % 4 {
            0 => alert.state = State::Pending,
            1 => alert.keep_firing_since = Some(at),
            _ => {}
        }
        alert
    }

    proptest::proptest! {
        /// The index gives exactly the pairwise definition's answers: for every alert, whether
        /// it is inhibited and by which sources.
        #[test]
        fn the_index_answers_as_the_pairwise_definition(
            raw in proptest::collection::vec(
                (0u8..3, proptest::option::of(0u8..3), proptest::option::of(0u8..3), 0u8..4),
                0..40,
            ),
            rule_picks in proptest::collection::vec((0usize..4, 0usize..4, 0usize..4), 0..4),
        ) {
            let matchers = [r#"alertname="A""#, r#"alertname=~"A|B""#, r#"alertname!="C""#, r#"vhost="v1""#];
            let equals: [&[&str]; 4] = [&[], &["vhost"], &["vhost", "queue"], &["queue"]];
            let rules: Vec<InhibitRule> = rule_picks
                .iter()
                .map(|&(source, target, equal)| InhibitRule {
                    source: vec![Matcher::parse(matchers[source]).unwrap()],
                    target: vec![Matcher::parse(matchers[target]).unwrap()],
                    equal: equals[equal].iter().map(|l| (*l).to_owned()).collect(),
                })
                .collect();
            let alerts: Vec<Alert> = raw.into_iter().map(arbitrary_alert).collect();
            let firing: Vec<&Alert> = alerts.iter().filter(|a| a.state == State::Firing).collect();
            let index = Inhibitions::new(&rules, alerts.iter());
            for alert in &alerts {
                proptest::prop_assert_eq!(index.inhibited(alert), inhibited(&rules, alert, &firing));
                let mut by_index: Vec<&str> =
                    index.sources(alert).map(|a| a.fingerprint.as_str()).collect();
                let mut pairwise: Vec<&str> = rules
                    .iter()
                    .flat_map(|rule| sources(rule, alert, &firing))
                    .map(|a| a.fingerprint.as_str())
                    .collect();
                by_index.sort_unstable();
                pairwise.sort_unstable();
                proptest::prop_assert_eq!(by_index, pairwise);
            }
        }
    }
}
