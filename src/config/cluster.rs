//! `cluster.*`: the cluster detector's members, expected size, timeout and the inhibit rule it
//! adds to the notifications.

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize, Serializer};

use super::ConfigError;
use super::notify::InhibitRule;
use super::parse::{invalid, parse_bool, parse_count, parse_duration, redact_url_text};
use crate::matcher::Matcher;
use crate::util::ser;

/// Default `cluster.timeout`: per-member request timeout of the cluster detector.
pub const DEFAULT_CLUSTER_TIMEOUT: &str = "5s";

/// `cluster.*`: the cluster detector (the `cluster` module).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterConfig {
    /// `cluster.nodes`: each member's name and the base URL of its own management API, as
    /// `NAME=URL` items (a YAML list, or one string separated by commas or spaces, e.g.
    /// `RABBITMQ_WATCH__CLUSTER__NODES="rabbit@n1=http://n1:15672,rabbit@n2=http://n2:15672"`).
    /// Credentials and CA file are those of `rabbitmq.*`. Default: none.
    #[serde(serialize_with = "ser_cluster_nodes")]
    pub nodes: Vec<(String, Url)>,
    /// `cluster.url_template`: discover members from `/api/nodes` of `rabbitmq.url` and read
    /// each at this URL; `{host}` is replaced by the part of the name after `@`, `{node}` by
    /// the whole name, e.g. `http://{host}:15672`. Ignored when `cluster.nodes` is set.
    /// Default: none (without both keys only `rabbitmq.url`'s view is used).
    pub url_template: Option<String>,
    /// `cluster.expected_nodes`: the cluster size to expect; 0 or unset means the largest
    /// number of members seen since the sidecar started. Default 0.
    pub expected_nodes: Option<u64>,
    /// `cluster.timeout`: timeout of one member's `/api/nodes` request. Default 5 s.
    #[serde(serialize_with = "ser::duration")]
    pub timeout: Duration,
    /// `cluster.inhibit_node_alerts`: add the notification inhibit rule "a firing
    /// RabbitmqClusterPartition mutes RabbitmqNodeDown, RabbitmqNodeUnreachable and
    /// RabbitmqNodeNotRunning". Default `true`.
    pub inhibit_node_alerts: bool,
    /// `cluster.expected_protocols`: protocols whose listener must run on every member,
    /// checked each poll with `/api/health/checks/protocol-listener/{protocol}` besides those
    /// each member served when first seen (`/api/overview` `listeners`), as the check names
    /// them: `amqp`, `amqp/ssl`, `http`, `https`, `mqtt`, `stomp`, `clustering`, … (a YAML
    /// list, or one string separated by commas or spaces). Default: none.
    pub expected_protocols: Vec<String>,
}

/// Writes each member as `NAME=URL`.
fn ser_cluster_nodes<S: Serializer>(nodes: &[(String, Url)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nodes.iter().map(|(n, u)| format!("{n}={u}")))
}

/// A list written as a YAML list or as one string (environment variables).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawList {
    One(String),
    Many(Vec<String>),
}

impl RawList {
    /// The items: the list's, or the string's separated by commas or whitespace.
    fn items(self) -> Vec<String> {
        match self {
            RawList::One(text) => text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            RawList::Many(list) => list,
        }
    }
}

/// `cluster.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawCluster {
    nodes: Option<RawList>,
    url_template: Option<String>,
    expected_nodes: Option<String>,
    timeout: Option<String>,
    inhibit_node_alerts: Option<String>,
    expected_protocols: Option<RawList>,
}

/// The inhibit rule added by `cluster.inhibit_node_alerts`.
pub fn cluster_inhibit_rule() -> InhibitRule {
    InhibitRule {
        source: vec![Matcher::parse(r#"alertname="RabbitmqClusterPartition""#).expect("valid")],
        target: vec![
            Matcher::parse(
                r#"alertname=~"RabbitmqNodeDown|RabbitmqNodeUnreachable|RabbitmqNodeNotRunning""#,
            )
            .expect("valid"),
        ],
        equal: Vec::new(),
    }
}

/// A member's management API URL: absolute http(s), without credentials.
fn cluster_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let allowed =
        "an absolute http:// or https:// URL without credentials, such as http://n1:15672";
    let url = Url::parse(text.trim()).map_err(|_| invalid(key, &redact_url_text(text), allowed))?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(key, &redact_url_text(text), allowed));
    }
    Ok(url)
}

/// Validates `cluster.*`.
pub(super) fn validate_cluster(raw: RawCluster) -> Result<ClusterConfig, ConfigError> {
    let items = raw.nodes.map(RawList::items).unwrap_or_default();
    let mut nodes: Vec<(String, Url)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("cluster.nodes[{i}]");
        let Some((name, url)) = item.split_once('=') else {
            return Err(invalid(
                &key,
                &redact_url_text(item),
                "NAME=URL, such as rabbit@n1=http://n1:15672",
            ));
        };
        let name = name.trim();
        if !name.contains('@') || nodes.iter().any(|(n, _)| n == name) {
            return Err(invalid(
                &key,
                name,
                "a node name such as rabbit@n1, each listed once",
            ));
        }
        nodes.push((name.to_owned(), cluster_url(&key, url)?));
    }
    let url_template = raw.url_template.filter(|t| !t.trim().is_empty());
    if let Some(t) = &url_template {
        if !t.contains("{host}") && !t.contains("{node}") {
            return Err(invalid(
                "cluster.url_template",
                t,
                "a URL containing {host} or {node}, such as http://{host}:15672",
            ));
        }
        cluster_url(
            "cluster.url_template",
            &t.replace("{host}", "example")
                .replace("{node}", "rabbit@example"),
        )?;
    }
    let expected = parse_count("cluster.expected_nodes", raw.expected_nodes.as_deref(), 0)?;
    let timeout = parse_duration(
        "cluster.timeout",
        raw.timeout.as_deref().unwrap_or(DEFAULT_CLUSTER_TIMEOUT),
    )?;
    let inhibit_node_alerts = match raw.inhibit_node_alerts.as_deref() {
        None => true,
        Some(t) => parse_bool("cluster.inhibit_node_alerts", t)?,
    };
    let mut expected_protocols = Vec::new();
    for (i, p) in raw
        .expected_protocols
        .map(RawList::items)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let p = p.trim().to_ascii_lowercase();
        let valid = !p.is_empty()
            && p.len() <= 64
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
        if !valid {
            return Err(invalid(
                &format!("cluster.expected_protocols[{i}]"),
                &p,
                "a protocol name as the protocol-listener check names it, such as amqp, amqp/ssl, http, mqtt or stomp",
            ));
        }
        if !expected_protocols.contains(&p) {
            expected_protocols.push(p);
        }
    }
    Ok(ClusterConfig {
        nodes,
        url_template,
        expected_nodes: (expected > 0).then_some(expected),
        timeout,
        inhibit_node_alerts,
        expected_protocols,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(raw: RawList) -> Result<Vec<String>, String> {
        validate_cluster(RawCluster {
            expected_protocols: Some(raw),
            ..RawCluster::default()
        })
        .map(|c| c.expected_protocols)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn expected_protocols_are_a_list_or_one_string_lowercased_each_once() {
        let one = RawList::One("amqp, MQTT amqp/ssl,amqp".to_owned());
        assert_eq!(expected(one).unwrap(), ["amqp", "mqtt", "amqp/ssl"]);
        let many = RawList::Many(vec!["stomp".to_owned(), "http/web-mqtt".to_owned()]);
        assert_eq!(expected(many).unwrap(), ["stomp", "http/web-mqtt"]);
        let e = expected(RawList::Many(vec!["amqp".to_owned(), "a?b".to_owned()])).unwrap_err();
        assert!(
            e.contains("`cluster.expected_protocols[1]`") && e.contains("amqp/ssl"),
            "{e}"
        );
    }
}
