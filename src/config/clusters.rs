//! `clusters:`: several RabbitMQ clusters watched by one sidecar. Each entry has a `name` and
//! the same `rabbitmq`, `cluster` and `queues` sections as the top level; without `clusters:`
//! the top-level sections describe the one cluster (whose name is the broker's own
//! `cluster_name`, and whose series carry no `rabbitmq_cluster` label).
//!
//! Environment overrides (`RABBITMQ_WATCH__…`) do not reach list entries: set a cluster's
//! keys in the file (secrets through `password_file`).

use serde::{Deserialize, Serialize};

use super::cluster::{RawCluster, validate_cluster};
use super::parse::{invalid, missing};
use super::queues::{RawQueues, validate_queues};
use super::rabbitmq::{RawRabbitmq, validate_rabbitmq};
use super::rules::Rule;
use super::{ClusterConfig, Config, ConfigError, QueuesConfig, RabbitmqConfig, Regex};

/// The label every series and alert of a cluster listed under `clusters:` carries, with the
/// cluster's `name` (rabbitmq_prometheus's own label for the cluster).
pub const CLUSTER_LABEL: &str = "rabbitmq_cluster";

/// The sections `clusters:` replaces at the top level.
pub(super) const PER_CLUSTER_SECTIONS: [&str; 3] = ["rabbitmq", "cluster", "queues"];

/// One entry of `clusters:`.
#[derive(Debug, Clone, Serialize)]
pub struct NamedCluster {
    /// `clusters[].name`: the value of the `rabbitmq_cluster` label on this cluster's series
    /// and alerts. Required, unique, 1 to 100 characters of letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// `clusters[].rabbitmq`: how to reach this cluster's management API (as `rabbitmq.*`).
    pub rabbitmq: RabbitmqConfig,
    /// `clusters[].cluster`: this cluster's members (as `cluster.*`).
    pub cluster: ClusterConfig,
    /// `clusters[].queues`: this cluster's queue filters and caps (as `queues.*`).
    pub queues: QueuesConfig,
}

/// One entry of `clusters:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawNamedCluster {
    name: Option<String>,
    rabbitmq: RawRabbitmq,
    cluster: RawCluster,
    queues: RawQueues,
}

/// Prefixes the key of a section's error with `clusters[i].`.
fn within(i: usize, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid {
            key,
            value,
            allowed,
        } => ConfigError::Invalid {
            key: format!("clusters[{i}].{key}"),
            value,
            allowed,
        },
        ConfigError::File { key, path, source } => ConfigError::File {
            key: format!("clusters[{i}].{key}"),
            path,
            source,
        },
        other => other,
    }
}

/// What a cluster name may be.
const NAME_ALLOWED: &str =
    "a unique name of 1 to 100 letters, digits, `_`, `-` or `.` (the rabbitmq_cluster label)";

/// Validates `clusters:`; `top_level` names the per-cluster sections also given at the top
/// level (an error: they would be ignored).
pub(super) fn validate_clusters(
    raw: Vec<RawNamedCluster>,
    top_level: &[&str],
) -> Result<Vec<NamedCluster>, ConfigError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(section) = top_level.iter().find(|s| PER_CLUSTER_SECTIONS.contains(s)) {
        return Err(invalid(
            section,
            "given beside `clusters`",
            "the section inside each `clusters[]` entry (with `clusters:`, the top-level \
             rabbitmq, cluster and queues sections are not used)",
        ));
    }
    let mut out: Vec<NamedCluster> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let key = format!("clusters[{i}].name");
        let name = entry.name.ok_or_else(|| missing(&key, NAME_ALLOWED))?;
        let valid = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid || out.iter().any(|c| c.name == name) {
            return Err(invalid(&key, &name, NAME_ALLOWED));
        }
        out.push(NamedCluster {
            name,
            rabbitmq: validate_rabbitmq(entry.rabbitmq).map_err(|e| within(i, e))?,
            cluster: validate_cluster(entry.cluster).map_err(|e| within(i, e))?,
            queues: validate_queues(entry.queues).map_err(|e| within(i, e))?,
        });
    }
    Ok(out)
}

/// One cluster to watch: an entry of `clusters:` (named) or, without it, the top-level
/// sections (unnamed: no `rabbitmq_cluster` label, the output of a single-cluster sidecar).
#[derive(Debug, Clone)]
pub struct Target {
    /// The `rabbitmq_cluster` label's value; `None` for the single cluster of the top level.
    pub name: Option<String>,
    /// How to reach its management API.
    pub rabbitmq: RabbitmqConfig,
    /// Its members.
    pub cluster: ClusterConfig,
    /// Its queue filters and caps.
    pub queues: QueuesConfig,
}

impl Target {
    /// Whether `rule` applies to this cluster: a rule whose `labels` set `rabbitmq_cluster`
    /// selects the clusters whose name that (anchored) regular expression matches; other
    /// rules apply to every cluster. The single unnamed cluster runs every rule.
    pub fn selects(&self, rule: &Rule) -> bool {
        match (&self.name, rule.labels.get(CLUSTER_LABEL)) {
            (Some(name), Some(pattern)) => Regex::new(pattern).is_ok_and(|re| re.is_match(name)),
            _ => true,
        }
    }
}

impl Config {
    /// The clusters to watch, in the order of `clusters:`; without it, the one cluster of the
    /// top-level `rabbitmq`, `cluster` and `queues` sections.
    pub fn targets(&self) -> Vec<Target> {
        if self.clusters.is_empty() {
            return vec![Target {
                name: None,
                rabbitmq: self.rabbitmq.clone(),
                cluster: self.cluster.clone(),
                queues: self.queues.clone(),
            }];
        }
        self.clusters
            .iter()
            .map(|c| Target {
                name: Some(c.name.clone()),
                rabbitmq: c.rabbitmq.clone(),
                cluster: c.cluster.clone(),
                queues: c.queues.clone(),
            })
            .collect()
    }
}

/// With `clusters:`, a rule's `labels.rabbitmq_cluster` selects clusters: it must be a valid
/// regular expression matching at least one cluster's name.
pub(super) fn check_rule_selectors(
    clusters: &[NamedCluster],
    rules: &[Rule],
) -> Result<(), ConfigError> {
    if clusters.is_empty() {
        return Ok(());
    }
    for rule in rules {
        let Some(pattern) = rule.labels.get(CLUSTER_LABEL) else {
            continue;
        };
        let matches =
            Regex::new(pattern).is_ok_and(|re| clusters.iter().any(|c| re.is_match(&c.name)));
        if !matches {
            return Err(invalid(
                &format!("alerting.rules[{}].labels.{CLUSTER_LABEL}", rule.name),
                pattern,
                "a regular expression matching the name of at least one entry of `clusters`",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::load_yaml;

    #[test]
    fn two_clusters_each_with_their_own_sections() {
        let c = load_yaml(
            "clusters:\n  - name: prod\n    rabbitmq: {url: 'http://a:15672'}\n    queues: {max_total: 10}\n  - name: staging\n    rabbitmq: {url: 'http://b:15672'}\n",
            HashMap::new(),
            &[],
        )
        .unwrap();
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.clusters[0].name, "prod");
        assert_eq!(c.clusters[0].rabbitmq.url.as_str(), "http://a:15672/");
        assert_eq!(c.clusters[0].queues.max_total, 10);
        assert_eq!(c.clusters[1].rabbitmq.url.as_str(), "http://b:15672/");
        let targets = c.targets();
        assert_eq!(targets[1].name.as_deref(), Some("staging"));
    }

    #[test]
    fn without_clusters_one_unnamed_target_from_the_top_level() {
        let c = load_yaml("rabbitmq: {url: 'http://a:15672'}\n", HashMap::new(), &[]).unwrap();
        let targets = c.targets();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].name, None);
        assert_eq!(targets[0].rabbitmq.url.as_str(), "http://a:15672/");
    }

    #[test]
    fn errors_name_the_entry() {
        let err = |yaml: &str| {
            load_yaml(yaml, HashMap::new(), &[])
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("clusters:\n  - name: a\n  - name: a\n")
                .starts_with("invalid value for `clusters[1].name`: \"a\"; expected a unique name")
        );
        assert!(
            err("clusters:\n  - rabbitmq: {}\n").starts_with(
                "invalid value for `clusters[0].name`: missing; expected a unique name"
            )
        );
        assert!(
            err("clusters:\n  - name: a\n    rabbitmq: {timeout: soon}\n")
                .starts_with("invalid value for `clusters[0].rabbitmq.timeout`: \"soon\"")
        );
        assert!(
            err("rabbitmq: {url: 'http://a:15672'}\nclusters:\n  - name: a\n")
                .starts_with("invalid value for `rabbitmq`: \"given beside `clusters`\"")
        );
    }
}
