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

/// `cluster.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawCluster {
    nodes: Option<RawList>,
    url_template: Option<String>,
    expected_nodes: Option<String>,
    timeout: Option<String>,
    inhibit_node_alerts: Option<String>,
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
    let items: Vec<String> = match raw.nodes {
        None => Vec::new(),
        Some(RawList::One(text)) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(RawList::Many(list)) => list,
    };
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
    Ok(ClusterConfig {
        nodes,
        url_template,
        expected_nodes: (expected > 0).then_some(expected),
        timeout,
        inhibit_node_alerts,
    })
}
