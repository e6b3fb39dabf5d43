//! The routing tree (Alertmanager's `route`): which routes, and so which receivers, take an
//! alert's labels (matchers, child routes tried in order, `continue`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::matcher::{Matcher, all_match};

/// A node of the routing tree (Alertmanager's `route`). Unset timings and `group_by` are
/// inherited from the parent when the configuration is read.
#[derive(Debug, Clone)]
pub struct Route {
    /// Receiver notified for alerts this route takes.
    pub receiver: String,
    /// Labels alerts are grouped by; `None` means `['...']`: every label (one group per alert).
    pub group_by: Option<Vec<String>>,
    /// Wait before a new group's first notification (default 30 s).
    pub group_wait: Duration,
    /// Minimum time between notifications of a changed group (default 5 min).
    pub group_interval: Duration,
    /// Re-notify a group that still fires unchanged after this long (default 4 h).
    pub repeat_interval: Duration,
    /// Matchers an alert must satisfy (none on the root).
    pub matchers: Vec<Matcher>,
    /// After matching, go on with the next sibling routes too.
    pub continue_: bool,
    /// Child routes, tried in order.
    pub routes: Vec<Route>,
}

impl Route {
    /// The routes that take `labels`, depth first, with their ids (`0`, `0.1`, …).
    pub fn matching<'a>(&'a self, labels: &BTreeMap<String, String>) -> Vec<(String, &'a Route)> {
        let mut out = Vec::new();
        self.collect("0".to_owned(), labels, &mut out);
        out
    }

    fn collect<'a>(
        &'a self,
        id: String,
        labels: &BTreeMap<String, String>,
        out: &mut Vec<(String, &'a Route)>,
    ) -> bool {
        if !all_match(&self.matchers, labels) {
            return false;
        }
        let before = out.len();
        for (i, child) in self.routes.iter().enumerate() {
            if child.collect(format!("{id}.{i}"), labels, out) && !child.continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push((id, self));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(group_by: &[&str]) -> Route {
        Route {
            receiver: "team".into(),
            group_by: Some(group_by.iter().map(|s| s.to_string()).collect()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
            matchers: vec![],
            continue_: false,
            routes: vec![],
        }
    }

    #[test]
    fn sub_routes_pick_receivers_and_continue_fans_out() {
        let mut root = route(&["alertname"]);
        let mut pager = route(&["alertname"]);
        pager.receiver = "pager".into();
        pager.matchers = vec![Matcher::parse("severity=\"critical\"").unwrap()];
        pager.continue_ = true;
        let mut chat = route(&["alertname"]);
        chat.receiver = "chat".into();
        chat.matchers = vec![Matcher::parse("severity=~\"critical|warning\"").unwrap()];
        root.routes = vec![pager, chat];
        let labels = |sev: &str| -> BTreeMap<String, String> {
            [("alertname", "X"), ("severity", sev)]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        };
        let receivers = |sev| {
            root.matching(&labels(sev))
                .into_iter()
                .map(|(_, r)| r.receiver.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(receivers("critical"), ["pager", "chat"]);
        assert_eq!(receivers("warning"), ["chat"]);
        assert_eq!(receivers("info"), ["team"]);
    }
}
