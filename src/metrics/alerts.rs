//! The alert engine's state as metrics: how many alert instances of each rule are pending
//! and firing.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{Family, SidecarInfo};
use crate::alerting::{Alert, State};

/// `rabbitmq_watch_alerts{alertname,state}`: alert instances by rule and state.
pub const ALERTS: Family = Family {
    name: "rabbitmq_watch_alerts",
    help: "Alert instances of the sidecar's own rules by state (pending: condition holds, not yet for its `for`; firing). One 0 series per rule and state when none.",
    unit: None,
    source: "sidecar",
};

/// Alert instances by (alertname, state): what the exposition needs of the alerts (the
/// alerts themselves are not copied into the encoder).
pub type AlertCounts = std::collections::BTreeMap<(String, State), u64>;

/// Counts `alerts` by (alertname, state).
pub fn count(alerts: &[Alert]) -> AlertCounts {
    let mut counts = AlertCounts::new();
    for a in alerts {
        let name = a.labels.get("alertname").cloned().unwrap_or_default();
        *counts.entry((name, a.state)).or_default() += 1;
    }
    counts
}

/// Writes the alert counts: every rule × pending/firing, 0 when none.
pub fn encode(
    enc: &mut DescriptorEncoder,
    counts: &AlertCounts,
    info: &SidecarInfo,
) -> fmt::Result {
    let count =
        |name: &str, state: State| counts.get(&(name.to_owned(), state)).copied().unwrap_or(0);
    ALERTS.gauge(
        enc,
        info.rule_names.iter().flat_map(|name| {
            [(State::Pending, "pending"), (State::Firing, "firing")]
                .into_iter()
                .map(move |(state, text)| {
                    (
                        [("alertname", name.as_str()), ("state", text)],
                        count(name, state),
                    )
                })
        }),
    )
}
