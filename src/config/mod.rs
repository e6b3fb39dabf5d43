//! Configuration: the YAML file, `RABBITMQ_WATCH__SECTION__KEY` environment overrides and CLI
//! overrides, layered in that order over the defaults, then validated into a [`Config`].
//!
//! Everything is read as text first and parsed here, so every error names the key, the bad
//! value and what is allowed (see [`ConfigError`]). Secrets are held in [`Secret`], which never
//! prints its value.
//!
//! This is a low layer, as in Alertmanager: every component imports its validated
//! configuration from here, and this module imports only the leaf modules ([`crate::util`],
//! [`crate::types`], [`crate::matcher`]). One file per section:
//! [`rabbitmq`] (with `poll.*`), [`queues`], [`alerting`] (with the backlog detector),
//! [`rules`] (rule definitions, the default catalogue and their merging; [`fields`] the fields
//! conditions read, resolved when parsed), [`notify`] (receivers,
//! route, inhibition) with one file per integration ([`email`], [`webhook`], [`alertmanager`]),
//! [`cluster`], [`audit`] and [`log`]; `parse` holds the field parsers they share and `redact` the
//! check-config view ([`Config::to_redacted_json`]).

pub mod alerting;
pub mod alertmanager;
pub mod audit;
pub mod cluster;
pub mod clusters;
pub mod email;
pub mod fields;
pub mod log;
pub mod notify;
pub(crate) mod parse;
pub mod queues;
pub mod rabbitmq;
mod redact;
mod rule_merge;
pub mod rules;
pub mod web;
pub mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::alerting::queue_inhibit_rule;
pub use self::alerting::{AlertingConfig, BacklogConfig};
pub use self::audit::AuditConfig;
pub use self::cluster::{ClusterConfig, DEFAULT_CLUSTER_TIMEOUT, cluster_inhibit_rule};
pub use self::clusters::{CLUSTER_LABEL, NamedCluster, Target};
pub use self::log::{DEFAULT_LOG_LEVEL, LogConfig, LogFormat};
pub use self::notify::{InhibitRule, NotifyConfig, ReceiverConfig, Route};
pub use self::queues::{DEFAULT_MAX_QUEUES, DEFAULT_QUEUE_EXCLUDE, QueuesConfig};
pub use self::rabbitmq::{
    DEFAULT_INTERVAL, DEFAULT_PASSWORD, DEFAULT_PROMETHEUS_PORT, DEFAULT_TIMEOUT, DEFAULT_URL,
    DEFAULT_USERNAME, MIN_INTERVAL, PollConfig, QueueRead, RabbitmqConfig, Source,
};
pub use self::web::WebConfig;
pub use crate::types::{Regex, Secret};
use parse::invalid;

/// Prefix of environment overrides: `RABBITMQ_WATCH__RABBITMQ__URL` sets `rabbitmq.url`.
pub const ENV_PREFIX: &str = "RABBITMQ_WATCH";

/// Default listen address of the HTTP server (port 9419).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9419";

/// A validated configuration. Built only by [`load`]; every field has a default.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// How to reach the RabbitMQ management API (`rabbitmq.*`).
    pub rabbitmq: RabbitmqConfig,
    /// When to poll (`poll.*`).
    pub poll: PollConfig,
    /// Which queues to export, and how many at most (`queues.*`).
    pub queues: QueuesConfig,
    /// Address the HTTP server binds (`listen`, default `0.0.0.0:9419`).
    pub listen: SocketAddr,
    /// Logging (`log.*`).
    pub log: LogConfig,
    /// Alert rules (`alerting.*`).
    pub alerting: AlertingConfig,
    /// Notifications (`notify.*`).
    pub notify: NotifyConfig,
    /// The cluster detector (`cluster.*`).
    pub cluster: ClusterConfig,
    /// The HTTP server's security settings (`web.*`).
    pub web: WebConfig,
    /// The reliability audit (`audit.*`).
    pub audit: AuditConfig,
    /// Several clusters (`clusters:`, see [`clusters`]); empty: the top-level `rabbitmq`,
    /// `cluster` and `queues` sections describe the one cluster ([`Config::targets`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<NamedCluster>,
}

/// Why a configuration was rejected. The messages name the key, the value and what is allowed;
/// they never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or of the wrong shape
    /// (the message comes from the `config` crate and names the key).
    #[error("cannot load configuration: {0}")]
    Load(String),
    /// A key has a value outside what is allowed.
    #[error("invalid value for `{key}`: {value}; expected {allowed}")]
    Invalid {
        /// Dotted key, e.g. `poll.interval` or `alerting.rules[2].expr`.
        key: String,
        /// The offending value as given (quoted), or a description for secrets.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A file named by the configuration could not be read.
    #[error("cannot read `{key}` file {path}: {source}")]
    File {
        /// Dotted key naming the file.
        key: String,
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The configuration as read, before validation: every value is text.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    rabbitmq: rabbitmq::RawRabbitmq,
    poll: rabbitmq::RawPoll,
    queues: queues::RawQueues,
    alerting: alerting::RawAlerting,
    notify: notify::RawNotify,
    listen: Option<String>,
    log: log::RawLog,
    cluster: cluster::RawCluster,
    web: web::RawWeb,
    audit: audit::RawAudit,
    clusters: Vec<clusters::RawNamedCluster>,
}

/// Loads and validates the configuration.
///
/// Layers, lowest first: built-in defaults, the YAML `file` (if any), the variables in `env`
/// that start with `RABBITMQ_WATCH__` (`RABBITMQ_WATCH__POLL__INTERVAL=30s` sets
/// `poll.interval`; pass `std::env::vars()` in production, a map in tests), then `overrides`
/// (dotted key, value) from CLI flags.
///
/// # Errors
/// [`ConfigError`] naming the first offending key.
pub fn load(
    file: Option<&Path>,
    env: HashMap<String, String>,
    overrides: &[(&str, String)],
) -> Result<Config, ConfigError> {
    let file = file.map(|path| {
        config::File::from(path)
            .format(config::FileFormat::Yaml)
            .required(true)
    });
    load_from(file, env, overrides)
}

/// [`load`] with the YAML `text` in place of a file (property tests, embedded configurations).
///
/// # Errors
/// [`ConfigError`] naming the first offending key.
pub fn load_yaml(
    text: &str,
    env: HashMap<String, String>,
    overrides: &[(&str, String)],
) -> Result<Config, ConfigError> {
    let file = config::File::from_str(text, config::FileFormat::Yaml);
    load_from(Some(file), env, overrides)
}

/// [`load`] from any YAML source.
fn load_from<S>(
    file: Option<S>,
    env: HashMap<String, String>,
    overrides: &[(&str, String)],
) -> Result<Config, ConfigError>
where
    S: config::Source + Send + Sync + 'static,
{
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(file);
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(Some(env)),
    );
    for (key, value) in overrides {
        builder = builder
            .set_override(*key, value.as_str())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
    }
    let layered = builder
        .build()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    // The tree as read, before serde turns YAML numbers into text: secrets must be strings.
    let tree: config::Value = layered
        .clone()
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    parse::check_secrets("", &tree)?;
    let raw: RawConfig = layered
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    // With `clusters:`, the top-level per-cluster sections would be ignored: an error.
    let top_level: Vec<&str> = match &tree.kind {
        config::ValueKind::Table(t) => ["rabbitmq", "cluster", "queues", "audit"]
            .into_iter()
            .filter(|s| t.contains_key(*s))
            .collect(),
        _ => Vec::new(),
    };
    validate(raw, &top_level)
}

/// Validates every section, in the order of the documentation, and adds the cluster
/// detector's inhibit rule to the notifications when it is on.
fn validate(raw: RawConfig, top_level: &[&str]) -> Result<Config, ConfigError> {
    let clusters = clusters::validate_clusters(raw.clusters, top_level)?;
    let rabbitmq = rabbitmq::validate_rabbitmq(raw.rabbitmq)?;
    let poll = rabbitmq::validate_poll(raw.poll)?;
    let queues = queues::validate_queues(raw.queues)?;
    let alerting = alerting::validate_alerting(raw.alerting, poll.interval)?;

    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        invalid(
            "listen",
            &listen_text,
            "an IP address and port such as 0.0.0.0:9419 or [::]:9419",
        )
    })?;

    let mut notify = notify::validate_notify(raw.notify, listen.port())?;
    let cluster = cluster::validate_cluster(raw.cluster)?;
    if clusters.is_empty() && cluster.inhibit_node_alerts {
        notify.inhibit_rules.push(cluster_inhibit_rule());
    }
    if clusters.iter().any(|c| c.cluster.inhibit_node_alerts) {
        // One cluster's partition mutes only its own node alerts.
        let mut rule = cluster_inhibit_rule();
        rule.equal.push(CLUSTER_LABEL.to_owned());
        notify.inhibit_rules.push(rule);
    }
    if alerting.inhibit_growing {
        notify.inhibit_rules.push(queue_inhibit_rule());
    }
    let log = log::validate_log(raw.log)?;
    let mut audit = audit::validate_audit(raw.audit)?;
    if !clusters.is_empty() {
        // The reliability audit watches one cluster: off with `clusters:`.
        if top_level.contains(&"audit") {
            return Err(invalid(
                "audit",
                "given beside `clusters`",
                "no audit section with `clusters` (the reliability audit watches one cluster)",
            ));
        }
        audit.enabled = false;
        audit.alerts = false;
    }
    let mut alerting = alerting;
    if audit.alerts && !alerting.rules.iter().any(|r| r.name == audit::AUDIT_ALERT) {
        alerting.rules.push(audit::audit_rule());
    }
    clusters::check_rule_selectors(&clusters, &alerting.rules)?;
    Ok(Config {
        rabbitmq,
        poll,
        queues,
        listen,
        log,
        alerting,
        notify,
        cluster,
        web: web::validate_web(raw.web)?,
        audit,
        clusters,
    })
}

impl Config {
    /// Warnings about a valid but doubtful configuration, e.g. a request timeout at least as
    /// long as the poll interval (a hanging broker then delays every poll).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.rabbitmq.timeout >= self.poll.interval {
            out.push(format!(
                "rabbitmq.timeout ({}) is not shorter than poll.interval ({}): a slow broker will delay polls",
                humantime::format_duration(self.rabbitmq.timeout),
                humantime::format_duration(self.poll.interval)
            ));
        }
        let url = &self.rabbitmq.url;
        if url.scheme() == "http" && !parse::is_loopback(url.host_str().unwrap_or("")) {
            out.push(format!(
                "rabbitmq.url is plain http:// to {}, which is not a loopback address: the \
                 management API password (basic auth) crosses the network in clear text; use \
                 https:// (and rabbitmq.ca_file for a private CA)",
                url.host_str().unwrap_or("")
            ));
        }
        if self.alerting.backlog.window < Duration::from_secs(60) {
            out.push(format!(
                "alerting.backlog.window ({}) is shorter than 1m: RabbitMQ refreshes queue statistics every 5 s by default (collect_statistics_interval, management sample_retention_policies), so a short window can see frozen figures and misjudge queues",
                humantime::format_duration(self.alerting.backlog.window)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn source_defaults_to_auto_and_the_plugin_on_the_management_host() {
        let c = load(None, HashMap::new(), &[]).unwrap();
        assert_eq!(c.rabbitmq.source, Source::Auto);
        assert_eq!(
            c.rabbitmq.prometheus_url.as_str(),
            "http://localhost:15692/"
        );
        let c = load(
            None,
            env(&[
                (
                    "RABBITMQ_WATCH__RABBITMQ__URL",
                    "https://mq.example:15671/admin",
                ),
                ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "prometheus"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rabbitmq.source, Source::Prometheus);
        assert_eq!(
            c.rabbitmq.prometheus_url.as_str(),
            "https://mq.example:15692/"
        );
        let c = load(
            None,
            env(&[
                ("RABBITMQ_WATCH__RABBITMQ__SOURCE", "management"),
                (
                    "RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL",
                    "http://p.example:9999/x",
                ),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rabbitmq.source, Source::Management);
        assert_eq!(
            c.rabbitmq.prometheus_url.as_str(),
            "http://p.example:9999/x/"
        );
    }

    #[test]
    fn defaults_are_rabbitmq_defaults() {
        let c = load(None, HashMap::new(), &[]).unwrap();
        assert_eq!(c.rabbitmq.url.as_str(), "http://localhost:15672/");
        assert_eq!(c.rabbitmq.username, "guest");
        assert_eq!(c.rabbitmq.password.expose(), "guest");
        assert_eq!(c.rabbitmq.timeout, Duration::from_secs(10));
        assert_eq!(c.poll.interval, Duration::from_secs(15));
        assert_eq!(c.listen, "0.0.0.0:9419".parse().unwrap());
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.queues.include.is_match_all());
        assert!(
            c.queues
                .exclude
                .as_ref()
                .unwrap()
                .is_match("amq.gen-JzTY20BRgKO")
        );
        assert!(!c.queues.exclude.as_ref().unwrap().is_match("orders"));
        assert!(c.queues.exclude_exclusive);
        assert_eq!(c.queues.max_total, 25_000);
        assert_eq!(c.queues.max_per_vhost, 0);
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn env_overrides_with_double_underscore() {
        let c = load(
            None,
            env(&[
                (
                    "RABBITMQ_WATCH__RABBITMQ__URL",
                    "https://mq.example:15671/admin",
                ),
                ("RABBITMQ_WATCH__POLL__INTERVAL", "1m"),
                ("RABBITMQ_WATCH__RABBITMQ__PASSWORD", "s3cret"),
                ("RABBITMQ_WATCH_CONFIG", "ignored.yaml"),
                ("UNRELATED", "x"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rabbitmq.url.as_str(), "https://mq.example:15671/admin/");
        assert_eq!(c.poll.interval, Duration::from_secs(60));
        assert_eq!(c.rabbitmq.password.expose(), "s3cret");
    }

    #[test]
    fn queue_regexes_are_anchored_and_empty_exclude_means_none() {
        let c = load(
            None,
            env(&[
                ("RABBITMQ_WATCH__QUEUES__INCLUDE", "orders|payments\\..*"),
                ("RABBITMQ_WATCH__QUEUES__EXCLUDE", ""),
            ]),
            &[],
        )
        .unwrap();
        assert!(c.queues.include.is_match("orders"));
        assert!(c.queues.include.is_match("payments.eu"));
        assert!(!c.queues.include.is_match("old-orders"));
        assert_eq!(c.queues.include.anchored(), "^(?:orders|payments\\..*)$");
        assert!(c.queues.exclude.is_none());
    }

    #[test]
    fn cli_overrides_beat_env() {
        let c = load(
            None,
            env(&[("RABBITMQ_WATCH__LISTEN", "127.0.0.1:1")]),
            &[("listen", "127.0.0.1:2".to_owned())],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2);
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let c = load(
            None,
            env(&[("RABBITMQ_WATCH__RABBITMQ__PASSWORD", "hunter2")]),
            &[],
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let json = c.to_redacted_json();
        assert!(!json.contains("hunter2"));
        assert!(json.contains("<redacted>"));
    }

    #[test]
    fn url_with_credentials_is_rejected_without_echoing_them() {
        let err = load(
            None,
            env(&[(
                "RABBITMQ_WATCH__RABBITMQ__URL",
                "http://admin:hunter2@mq:15672",
            )]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("rabbitmq.url"), "{err}");
    }

    #[test]
    fn malformed_urls_with_credentials_are_redacted_too() {
        for url in [
            "http:/admin:hunter2@mq",
            "http:admin:hunter2@mq",
            "admin:hunter2@mq:15672",
            "http//admin:hunter2@mq",
            "http://admin:hunter2@mq:15672/?x=1",
        ] {
            let err = load(None, env(&[("RABBITMQ_WATCH__RABBITMQ__URL", url)]), &[])
                .unwrap_err()
                .to_string();
            assert!(!err.contains("hunter2"), "{url}: {err}");
            assert!(err.contains("rabbitmq.url"), "{url}: {err}");
        }
    }

    #[test]
    fn warns_when_timeout_not_below_interval() {
        let c = load(
            None,
            env(&[
                ("RABBITMQ_WATCH__RABBITMQ__TIMEOUT", "20s"),
                ("RABBITMQ_WATCH__POLL__INTERVAL", "15s"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.warnings().len(), 1);
    }

    #[test]
    fn cluster_section_from_yaml_list_and_env_string() {
        let c = load(None, HashMap::new(), &[]).unwrap();
        assert!(c.cluster.nodes.is_empty());
        assert_eq!(c.cluster.timeout, Duration::from_secs(5));
        assert!(c.cluster.inhibit_node_alerts);
        assert_eq!(
            c.notify.inhibit_rules.len(),
            2,
            "the partition and queue inhibitions are on by default"
        );
        let c = load(
            None,
            env(&[
                (
                    "RABBITMQ_WATCH__CLUSTER__NODES",
                    "rabbit@n1=http://10.0.0.1:15672, rabbit@n2=http://10.0.0.2:15672",
                ),
                ("RABBITMQ_WATCH__CLUSTER__EXPECTED_NODES", "3"),
                ("RABBITMQ_WATCH__CLUSTER__INHIBIT_NODE_ALERTS", "false"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.cluster.nodes.len(), 2);
        assert_eq!(c.cluster.nodes[1].0, "rabbit@n2");
        assert_eq!(c.cluster.nodes[1].1.as_str(), "http://10.0.0.2:15672/");
        assert_eq!(c.cluster.expected_nodes, Some(3));
        assert_eq!(c.notify.inhibit_rules.len(), 1, "only the queue inhibition");
        let dir = std::env::temp_dir().join(format!("rw-cluster-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(
            &file,
            "cluster:\n  nodes:\n    - rabbit@a=http://a:15672\n  url_template: http://{host}:15672\n  timeout: 2s\n",
        )
        .unwrap();
        let c = load(Some(&file), HashMap::new(), &[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.cluster.nodes[0].0, "rabbit@a");
        assert_eq!(
            c.cluster.url_template.as_deref(),
            Some("http://{host}:15672")
        );
        assert_eq!(c.cluster.timeout, Duration::from_secs(2));
    }

    #[test]
    fn cluster_errors_name_the_key_and_hide_credentials() {
        let err = |k: &str, v: &str| load(None, env(&[(k, v)]), &[]).unwrap_err().to_string();
        let e = err("RABBITMQ_WATCH__CLUSTER__NODES", "http://n1:15672");
        assert!(
            e.contains("`cluster.nodes[0]`") && e.contains("NAME=URL"),
            "{e}"
        );
        let e = err(
            "RABBITMQ_WATCH__CLUSTER__NODES",
            "rabbit@n1=http://u:secret@n1:15672",
        );
        assert!(
            e.contains("`cluster.nodes[0]`") && !e.contains("secret"),
            "{e}"
        );
        let e = err("RABBITMQ_WATCH__CLUSTER__URL_TEMPLATE", "http://n1:15672");
        assert!(
            e.contains("`cluster.url_template`") && e.contains("{host}"),
            "{e}"
        );
        let e = err("RABBITMQ_WATCH__CLUSTER__EXPECTED_NODES", "three");
        assert!(e.contains("`cluster.expected_nodes`"), "{e}");
        let e = err("RABBITMQ_WATCH__CLUSTER__TIMEOUT", "0s");
        assert!(e.contains("`cluster.timeout`"), "{e}");
    }

    #[test]
    fn warns_when_basic_auth_crosses_the_network_in_clear_text() {
        let warn = |url: &str| {
            load(None, env(&[("RABBITMQ_WATCH__RABBITMQ__URL", url)]), &[])
                .unwrap()
                .warnings()
                .into_iter()
                .filter(|w| w.contains("clear text"))
                .collect::<Vec<_>>()
        };
        let w = warn("http://mq.example.com:15672");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("rabbitmq.url is plain http:// to mq.example.com"),
            "{w:?}"
        );
        assert!(warn("https://mq.example.com:15671").is_empty());
        assert!(warn("http://localhost:15672").is_empty());
        assert!(warn("http://127.0.0.2:15672").is_empty());
        assert!(warn("http://[::1]:15672").is_empty());
    }

    #[test]
    fn empty_secrets_from_the_environment_are_errors_too() {
        let e = load(
            None,
            env(&[("RABBITMQ_WATCH__RABBITMQ__PASSWORD", "")]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid value for `rabbitmq.password`: empty;"),
            "{e}"
        );
        // Environment values are text: digits are a valid password there.
        let c = load(
            None,
            env(&[("RABBITMQ_WATCH__RABBITMQ__PASSWORD", "007")]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rabbitmq.password.expose(), "007");
    }

    #[test]
    fn debug_of_the_configuration_never_shows_a_secret() {
        let dir = std::env::temp_dir().join(format!("rw-debug-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(
            &path,
            r#"
rabbitmq:
  url: https://mq.example.com:15671
  password: "pw-SECRET-1"
notify:
  receivers:
    - name: team
      webhook_configs:
        - url: "https://hooks.example.com/services/TOKEN-SECRET-2?key=SECRET-3"
          hmac_secret: "hmac-SECRET-4"
          headers:
            Authorization: "Bearer SECRET-5"
      email_configs:
        - to: [ops@example.com]
          from: watch@example.com
          smarthost: smtp.example.com:587
          auth_username: watch
          auth_password: "smtp-SECRET-6"
"#,
        )
        .unwrap();
        let c = load(Some(&path), HashMap::new(), &[]).unwrap();
        let debug = format!("{c:?} {c:#?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(
            debug.contains("https://hooks.example.com/<redacted>"),
            "{debug}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_specific_queue_cause_mutes_growing_on_the_same_queue_by_default() {
        use crate::matcher::all_match;
        let labels = |name: &str, queue: &str| -> BTreeMap<String, String> {
            [
                ("alertname".to_owned(), name.to_owned()),
                ("vhost".to_owned(), "/".to_owned()),
                ("queue".to_owned(), queue.to_owned()),
            ]
            .into()
        };
        let mutes =
            |c: &Config, source: &BTreeMap<String, String>, target: &BTreeMap<String, String>| {
                c.notify.inhibit_rules.iter().any(|r| {
                    all_match(&r.target, target)
                        && all_match(&r.source, source)
                        && r.equal.iter().all(|l| source.get(l) == target.get(l))
                })
            };
        let c = load(None, HashMap::new(), &[]).unwrap();
        assert!(c.alerting.inhibit_growing);
        let growing = labels("RabbitmqQueueGrowing", "orders");
        for cause in [
            "RabbitmqQueueStalled",
            "RabbitmqQueueRedelivering",
            "RabbitmqQueueNoConsumers",
        ] {
            assert!(mutes(&c, &labels(cause, "orders"), &growing), "{cause}");
            assert!(
                !mutes(&c, &labels(cause, "other"), &growing),
                "{cause}: other queue"
            );
        }
        assert!(!mutes(
            &c,
            &labels("RabbitmqQueueOverflowSoon", "orders"),
            &growing
        ));
        // Visible in check-config.
        let shown = serde_json::to_string(&c.notify).unwrap();
        assert!(shown.contains("RabbitmqQueueGrowing"), "{shown}");
        let c = load(
            None,
            env(&[("RABBITMQ_WATCH__ALERTING__INHIBIT_GROWING", "false")]),
            &[],
        )
        .unwrap();
        assert!(!mutes(
            &c,
            &labels("RabbitmqQueueStalled", "orders"),
            &growing
        ));
    }

    #[test]
    fn group_wait_may_be_zero_as_in_alertmanager() {
        let dir = std::env::temp_dir().join(format!("p15-gw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yml");
        let write = |timing: &str| {
            std::fs::write(
                &path,
                format!(
                    "notify:\n  route:\n    receiver: team\n    {timing}\n  receivers:\n    - name: team\n      webhook_configs:\n        - url: http://127.0.0.1:9/hook\n"
                ),
            )
            .unwrap();
        };
        write("group_wait: 0s");
        let c = load(Some(&path), HashMap::new(), &[]).unwrap();
        assert_eq!(c.notify.route.group_wait, Duration::ZERO);
        write("group_interval: 0s");
        let err = load(Some(&path), HashMap::new(), &[]).unwrap_err();
        assert!(
            err.to_string().contains("notify.route.group_interval"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
