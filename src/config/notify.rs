//! `notify.*`: where alerts go, in Alertmanager's vocabulary: receivers (each with its
//! integrations' configurations), the routing tree ([`Route`]) and inhibition rules
//! ([`InhibitRule`]), Alertmanagers to push to, the state file. The notifier (`notify`) acts on
//! these; [`Route::matching`] is the one piece of behaviour kept with its type.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::alertmanager::{AlertmanagerConfig, RawAlertmanager};
use super::email::{EmailConfig, RawEmail};
use super::parse::{invalid, missing, parse_bool, parse_duration, parse_duration_or_zero};
use super::redact;
use super::webhook::{RawWebhook, WebhookConfig};
use crate::matcher::{Matcher, all_match};
use crate::util::ser;

/// `notify.*`: where alerts go, with Alertmanager's vocabulary.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyConfig {
    /// `notify.external_url`: the sidecar's URL as receivers should link to it. Default
    /// `http://localhost:PORT` (PORT of `listen`).
    pub external_url: String,
    /// `notify.state_file`: where alert states, the notification log, undelivered
    /// notifications and silences are saved (atomically). Default: none (kept in memory; a
    /// restart forgets them).
    pub state_file: Option<PathBuf>,
    /// `notify.route`: the routing tree.
    #[serde(serialize_with = "redact::ser_route")]
    pub route: Route,
    /// `notify.receivers`.
    #[serde(serialize_with = "redact::ser_receivers")]
    pub receivers: Vec<ReceiverConfig>,
    /// `notify.inhibit_rules`.
    #[serde(serialize_with = "redact::ser_inhibit")]
    pub inhibit_rules: Vec<InhibitRule>,
    /// `notify.alertmanagers`: Alertmanagers to push alerts to.
    #[serde(serialize_with = "ser::count")]
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// `notify.alertmanager_resend_delay`: how often firing alerts are re-sent to
    /// Alertmanagers. Default 1 min.
    #[serde(serialize_with = "ser::duration")]
    pub alertmanager_resend_delay: Duration,
}

/// A `notify.receivers` entry.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// `name`, referenced by routes.
    pub name: String,
    /// `webhook_configs`.
    pub webhooks: Vec<WebhookConfig>,
    /// `email_configs`.
    pub emails: Vec<EmailConfig>,
}

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

/// `notify.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawNotify {
    external_url: Option<String>,
    state_file: Option<String>,
    route: Option<RawRoute>,
    receivers: Vec<RawReceiver>,
    inhibit_rules: Vec<RawInhibit>,
    alertmanagers: Vec<RawAlertmanager>,
    alertmanager_resend_delay: Option<String>,
}

/// A `notify.route` node as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    matchers: Vec<String>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    routes: Vec<RawRoute>,
}

/// A `notify.receivers` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReceiver {
    name: Option<String>,
    webhook_configs: Vec<RawWebhook>,
    email_configs: Vec<RawEmail>,
}

/// A `notify.inhibit_rules` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawInhibit {
    source_matchers: Vec<String>,
    target_matchers: Vec<String>,
    equal: Vec<String>,
}

/// Validates `notify.*`; `port` is the port of `listen` (the default `external_url`'s).
pub(super) fn validate_notify(raw: RawNotify, port: u16) -> Result<NotifyConfig, ConfigError> {
    let external_url = raw
        .external_url
        .unwrap_or_else(|| format!("http://localhost:{port}"));
    if reqwest::Url::parse(&external_url).is_err() {
        return Err(invalid(
            "notify.external_url",
            &external_url,
            "an absolute URL such as http://rabbitmq-watch.example:9419",
        ));
    }
    let mut receivers = Vec::new();
    for (i, r) in raw.receivers.into_iter().enumerate() {
        let key = format!("notify.receivers[{i}]");
        let name = r
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| missing(&format!("{key}.name"), "the receiver's name"))?;
        if receivers.iter().any(|x: &ReceiverConfig| x.name == name) {
            return Err(invalid(
                &format!("{key}.name"),
                &name,
                "a name not used by another receiver",
            ));
        }
        let webhooks = r
            .webhook_configs
            .into_iter()
            .enumerate()
            .map(|(j, w)| WebhookConfig::from_raw(w, &format!("{key}.webhook_configs[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let emails = r
            .email_configs
            .into_iter()
            .enumerate()
            .map(|(j, e)| EmailConfig::from_raw(e, &format!("{key}.email_configs[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        receivers.push(ReceiverConfig {
            name,
            webhooks,
            emails,
        });
    }
    let names: Vec<String> = receivers.iter().map(|r| r.name.clone()).collect();
    let root_defaults = Route {
        receiver: names.first().cloned().unwrap_or_default(),
        group_by: Some(Vec::new()),
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(4 * 3600),
        matchers: Vec::new(),
        continue_: false,
        routes: Vec::new(),
    };
    let route = match raw.route {
        Some(r) => validate_route(r, &root_defaults, "notify.route", &names)?,
        None => root_defaults,
    };
    let matchers = |key: String, texts: Vec<String>| -> Result<Vec<Matcher>, ConfigError> {
        texts
            .iter()
            .enumerate()
            .map(|(j, t)| {
                Matcher::parse(t).map_err(|e| ConfigError::Invalid {
                    key: format!("{key}[{j}]"),
                    value: format!("{t:?}"),
                    allowed: format!(
                        "a matcher such as severity=\"critical\" or alertname=~\"Rabbitmq.*\": {e}"
                    ),
                })
            })
            .collect()
    };
    let mut inhibit_rules = Vec::new();
    for (i, r) in raw.inhibit_rules.into_iter().enumerate() {
        let key = format!("notify.inhibit_rules[{i}]");
        inhibit_rules.push(InhibitRule {
            source: matchers(format!("{key}.source_matchers"), r.source_matchers)?,
            target: matchers(format!("{key}.target_matchers"), r.target_matchers)?,
            equal: r.equal,
        });
    }
    let alertmanagers = raw
        .alertmanagers
        .into_iter()
        .enumerate()
        .map(|(i, a)| AlertmanagerConfig::from_raw(a, &format!("notify.alertmanagers[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let alertmanager_resend_delay = parse_duration(
        "notify.alertmanager_resend_delay",
        raw.alertmanager_resend_delay.as_deref().unwrap_or("1m"),
    )?;
    Ok(NotifyConfig {
        external_url,
        state_file: raw.state_file.filter(|s| !s.is_empty()).map(PathBuf::from),
        route,
        receivers,
        inhibit_rules,
        alertmanagers,
        alertmanager_resend_delay,
    })
}

/// Validates a route node at `key`; unset fields are inherited from `parent`.
fn validate_route(
    r: RawRoute,
    parent: &Route,
    key: &str,
    receivers: &[String],
) -> Result<Route, ConfigError> {
    let receiver = r.receiver.unwrap_or_else(|| parent.receiver.clone());
    if !receivers.contains(&receiver) {
        return Err(ConfigError::Invalid {
            key: format!("{key}.receiver"),
            value: format!("{receiver:?}"),
            allowed: if receivers.is_empty() {
                "a receiver defined under notify.receivers (there is none)".to_owned()
            } else {
                format!("one of the receivers: {}", receivers.join(", "))
            },
        });
    }
    let timing = |field: &str, text: Option<String>, inherited: Duration| match text {
        None => Ok(inherited),
        Some(t) => parse_duration(&format!("{key}.{field}"), &t),
    };
    let group_by = match r.group_by {
        None => parent.group_by.clone(),
        Some(names) if names.iter().any(|n| n == "...") => None,
        Some(names) => Some(names),
    };
    let mut matchers = Vec::new();
    for (j, t) in r.matchers.iter().enumerate() {
        matchers.push(Matcher::parse(t).map_err(|e| ConfigError::Invalid {
            key: format!("{key}.matchers[{j}]"),
            value: format!("{t:?}"),
            allowed: format!("a matcher such as severity=\"critical\": {e}"),
        })?);
    }
    let mut route = Route {
        receiver,
        group_by,
        // 0 is allowed (as in Alertmanager): a new group is notified at once.
        group_wait: match r.group_wait {
            None => parent.group_wait,
            Some(t) => parse_duration_or_zero(&format!("{key}.group_wait"), &t)?,
        },
        group_interval: timing("group_interval", r.group_interval, parent.group_interval)?,
        repeat_interval: timing("repeat_interval", r.repeat_interval, parent.repeat_interval)?,
        matchers,
        continue_: parse_bool(
            &format!("{key}.continue"),
            r.continue_.as_deref().unwrap_or("false"),
        )?,
        routes: Vec::new(),
    };
    for (i, child) in r.routes.into_iter().enumerate() {
        let child = validate_route(child, &route, &format!("{key}.routes[{i}]"), receivers)?;
        route.routes.push(child);
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::matcher::Matcher;

    fn route(group_by: &[&str]) -> Route {
        Route {
            receiver: "team".into(),
            group_by: Some(group_by.iter().map(ToString::to_string).collect()),
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
