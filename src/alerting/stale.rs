//! The texts of an alert rendered from the cluster's state (annotations using
//! `{{ $cluster.NAME }}`) whose condition stopped holding. Its annotations were
//! rendered at the last evaluation that held (a partition's sides, the members down); from
//! the first evaluation that finds the condition gone they would describe a past state as
//! if current, in the latched (`keep_firing_for`) notifications and in the resolved one. So
//! they are labelled as last observed, with what the members report now.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::Alert;

/// Labels `alert`'s `summary` and `description` as last observed at its `last_true`, the
/// condition having been found gone at `now`; `vars` are the cluster's template variables at
/// `now` (`sides`: what each member sees running now).
pub(super) fn mark(alert: &mut Alert, now: SystemTime, vars: &BTreeMap<String, String>) {
    let last = humantime::format_rfc3339_seconds(alert.last_true);
    let gone = humantime::format_rfc3339_seconds(now);
    let now_text = vars.get("sides").map_or("unknown", String::as_str);
    let annotations = std::sync::Arc::make_mut(&mut alert.annotations);
    if let Some(summary) = annotations.get_mut("summary") {
        *summary = format!("{summary} (as last observed at {last}; not observed since {gone})");
    }
    let description = annotations
        .get("description")
        .map(|d| format!(" As last observed at {last}: {d}"))
        .unwrap_or_default();
    annotations.insert(
        "description".to_owned(),
        format!("Not observed by any member since {gone}; now: {now_text}.{description}"),
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::{Engine, State};
    use super::*;
    use crate::rabbitmq::members::{MemberViews, Source, View};
    use crate::rabbitmq::model::Node;
    use crate::rabbitmq::{Endpoint, Error};
    use crate::snapshot::{Fetched, Snapshot};

    fn fixture(name: &str) -> Vec<Node> {
        let path = format!(
            "{}/tests/fixtures/cluster/3.10/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// A poll at `secs` reading the three members' own views.
    fn poll(secs: u64, views: Vec<View>) -> Snapshot {
        Snapshot::builder()
            .started_at(at(secs))
            .member_views(MemberViews {
                source: Source::Configured,
                views,
            })
            .build()
    }

    fn view(node: &str, nodes: Vec<Node>) -> View {
        View {
            node: node.to_owned(),
            nodes: Fetched {
                result: Ok(nodes),
                duration: Duration::ZERO,
                bytes: 0,
            },
        }
    }

    /// The recorded views of the three members in `state` (`cut`, `healthy`).
    fn recorded(state: &str) -> Vec<View> {
        (1..=3)
            .map(|i| view(&format!("rabbit@n{i}"), fixture(&format!("{state}-n{i}"))))
            .collect()
    }

    /// After the partition healed, rabbit@n2 is killed: n1 and n3 see it not running, its
    /// API refuses.
    fn n2_killed() -> Vec<View> {
        let down = |mut nodes: Vec<Node>| {
            for n in &mut nodes {
                if n.name == "rabbit@n2" {
                    n.running = Some(false);
                }
            }
            nodes
        };
        vec![
            view("rabbit@n1", down(fixture("healthy-n1"))),
            View::failed(
                "rabbit@n2",
                Error::Connect {
                    endpoint: Endpoint::Nodes,
                    detail: "Connection refused".into(),
                },
            ),
            view("rabbit@n3", down(fixture("healthy-n3"))),
        ]
    }

    fn find<'a>(e: &'a Engine, name: &str) -> Option<&'a Alert> {
        e.alerts().find(|a| a.labels["alertname"] == name)
    }

    #[test]
    fn a_latched_partition_is_held_not_observed_and_says_so() {
        let config = crate::config::load(None, Default::default(), &[]).unwrap();
        let mut e = Engine::new(config.alerting.rules);
        e.evaluate(&poll(0, recorded("healthy")), at(0));
        e.evaluate(&poll(5, recorded("cut")), at(5));
        let p = find(&e, "RabbitmqClusterPartition").unwrap();
        assert_eq!(p.state, State::Firing);
        assert!(p.observed(), "the split is seen at this poll");
        assert_eq!(p.keep_firing_since, None);
        let cut_summary = p.annotations["summary"].clone();

        // The broker no longer reports the partition: held by keep_firing_for (10m) only.
        e.evaluate(&poll(10, recorded("healthy")), at(10));
        let p = find(&e, "RabbitmqClusterPartition").unwrap();
        assert_eq!(p.state, State::Firing, "latched");
        assert!(!p.observed(), "held, not observed");
        assert_eq!(p.keep_firing_since, Some(at(10)));
        let summary = &p.annotations["summary"];
        assert!(
            summary.starts_with(&cut_summary)
                && summary.ends_with(
                    "(as last observed at 2027-01-15T08:00:05Z; not observed since 2027-01-15T08:00:10Z)"
                ),
            "{summary}"
        );
        let description = &p.annotations["description"];
        assert!(
            description.starts_with(
                "Not observed by any member since 2027-01-15T08:00:10Z; now: [rabbit@n1 rabbit@n2 rabbit@n3] as seen by rabbit@n1, rabbit@n2, rabbit@n3. As last observed at 2027-01-15T08:00:05Z: Members see different clusters"
            ),
            "{description}"
        );

        // A member is killed while the partition is only held: NodeDown fires on evidence.
        for secs in [15, 20, 50] {
            e.evaluate(&poll(secs, n2_killed()), at(secs));
        }
        let down = find(&e, "RabbitmqNodeDown").unwrap();
        assert!(down.observed(), "{down:?}");
        let p = find(&e, "RabbitmqClusterPartition").unwrap();
        assert!(!p.observed() && p.keep_firing_since == Some(at(10)));

        // Resolved after keep_firing_for: the texts still say what was last seen, and when.
        e.evaluate(&poll(611, recorded("healthy")), at(611));
        let p = find(&e, "RabbitmqClusterPartition").unwrap();
        assert_eq!(p.state, State::Resolved);
        assert!(!p.observed());
        assert!(
            p.annotations["summary"].contains("not observed since 2027-01-15T08:00:10Z"),
            "{}",
            p.annotations["summary"]
        );
    }

    #[test]
    fn a_partition_that_comes_back_is_observed_and_rendered_again() {
        let config = crate::config::load(None, Default::default(), &[]).unwrap();
        let mut e = Engine::new(config.alerting.rules);
        e.evaluate(&poll(0, recorded("cut")), at(0));
        e.evaluate(&poll(5, recorded("healthy")), at(5));
        e.evaluate(&poll(10, recorded("cut")), at(10));
        let p = find(&e, "RabbitmqClusterPartition").unwrap();
        assert!(p.observed());
        assert!(
            !p.annotations["summary"].contains("last observed"),
            "{}",
            p.annotations["summary"]
        );
    }
}
