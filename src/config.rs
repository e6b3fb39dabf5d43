//! Configuration: the YAML file, `RABBITMQ_WATCH__SECTION__KEY` environment overrides and CLI
//! overrides, layered in that order over the defaults, then validated into a [`Config`].
//!
//! Everything is read as text first and parsed here, so every error names the key, the bad
//! value and what is allowed (see [`ConfigError`]). Secrets are held in [`Secret`], which never
//! prints its value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize, Serializer};

use crate::alerting::rules::{Condition, DEFAULTS, Kind, Rule, Selector};
use crate::notify::alertmanager::{AlertmanagerConfig, RawAlertmanager};
use crate::notify::dispatch::{InhibitRule, Matcher, Route};
use crate::notify::email::{EmailConfig, RawEmail};
use crate::notify::webhook::{RawWebhook, WebhookConfig};

/// Prefix of environment overrides: `RABBITMQ_WATCH__RABBITMQ__URL` sets `rabbitmq.url`.
pub const ENV_PREFIX: &str = "RABBITMQ_WATCH";

/// Default management API URL (RabbitMQ's own default).
pub const DEFAULT_URL: &str = "http://localhost:15672";
/// Default management API user and password (RabbitMQ's default user, loopback only).
pub const DEFAULT_USERNAME: &str = "guest";
/// Default password of [`DEFAULT_USERNAME`].
pub const DEFAULT_PASSWORD: &str = "guest";
/// Default per-request timeout for management API calls.
pub const DEFAULT_TIMEOUT: &str = "10s";
/// Default interval between two polls of the management API.
pub const DEFAULT_INTERVAL: &str = "15s";
/// Default listen address of the HTTP server (port 9419).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9419";
/// Default log level filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `queues.exclude`: server-named queues (`amq.gen-…`).
pub const DEFAULT_QUEUE_EXCLUDE: &str = r"amq\.gen-.*";
/// Default `queues.max_total`.
pub const DEFAULT_MAX_QUEUES: u64 = 25_000;

/// Shortest accepted `poll.interval`: polling faster only loads the broker, whose own
/// statistics refresh every 5 s by default.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

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
}

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
    #[serde(serialize_with = "ser_route")]
    pub route: Route,
    /// `notify.receivers`.
    #[serde(serialize_with = "ser_receivers")]
    pub receivers: Vec<ReceiverConfig>,
    /// `notify.inhibit_rules`.
    #[serde(serialize_with = "ser_inhibit")]
    pub inhibit_rules: Vec<InhibitRule>,
    /// `notify.alertmanagers`: Alertmanagers to push alerts to.
    #[serde(serialize_with = "ser_count")]
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// `notify.alertmanager_resend_delay`: how often firing alerts are re-sent to
    /// Alertmanagers. Default 1 min.
    #[serde(serialize_with = "ser_duration")]
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

fn route_json(r: &Route) -> serde_json::Value {
    serde_json::json!({
        "receiver": r.receiver,
        "group_by": r.group_by.clone().unwrap_or_else(|| vec!["...".to_owned()]),
        "group_wait": humantime::format_duration(r.group_wait).to_string(),
        "group_interval": humantime::format_duration(r.group_interval).to_string(),
        "repeat_interval": humantime::format_duration(r.repeat_interval).to_string(),
        "matchers": r.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "continue": r.continue_,
        "routes": r.routes.iter().map(route_json).collect::<Vec<_>>(),
    })
}

fn ser_route<S: Serializer>(r: &Route, s: S) -> Result<S::Ok, S::Error> {
    route_json(r).serialize(s)
}

fn ser_receivers<S: Serializer>(rs: &[ReceiverConfig], s: S) -> Result<S::Ok, S::Error> {
    // URLs, headers and credentials are secrets: only the shape is shown.
    let v: Vec<serde_json::Value> = rs
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "webhook_configs": r.webhooks.len(),
                "email_configs": r.emails.len(),
            })
        })
        .collect();
    v.serialize(s)
}

fn ser_inhibit<S: Serializer>(rules: &[InhibitRule], s: S) -> Result<S::Ok, S::Error> {
    let text = |ms: &[Matcher]| ms.iter().map(ToString::to_string).collect::<Vec<_>>();
    let v: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "source_matchers": text(&r.source),
                "target_matchers": text(&r.target),
                "equal": r.equal,
            })
        })
        .collect();
    v.serialize(s)
}

fn ser_count<S: Serializer, T>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(v.len() as u64)
}

/// `alerting.*`: the effective alert rules.
#[derive(Debug, Clone, Serialize)]
pub struct AlertingConfig {
    /// The default rules (unless `alerting.default_rules` is false, minus `alerting.disable`),
    /// with the fields given under `alerting.rules` for the same name replacing theirs, followed
    /// by the other rules of `alerting.rules`.
    #[serde(serialize_with = "ser_rules")]
    pub rules: Vec<Rule>,
    /// `alerting.backlog.*`: the backlog detector's window and thresholds.
    pub backlog: BacklogConfig,
}

/// `alerting.backlog.*`: the backlog detector ([`crate::alerting::backlog`]). Each queue keeps
/// a sliding window of samples; the trend rules judge a queue only once its window is complete.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogConfig {
    /// `alerting.backlog.window`: how far back the window reaches. Default 10 m (the span of
    /// RabbitMQ's own QueueIsGrowing rule); at least twice `poll.interval`.
    #[serde(serialize_with = "ser_duration")]
    pub window: Duration,
    /// `alerting.backlog.min_completeness`: share of `window` the samples must cover before the
    /// queue is judged (a new queue, or a sidecar that just started, is not). Default 0.9;
    /// above 0, at most 1.
    pub min_completeness: f64,
    /// `alerting.backlog.max_samples`: samples kept per queue; samples closer together than
    /// `window / max_samples` replace each other, so memory is bounded at about
    /// `(max_samples + 2) × 72` bytes per queue whatever the poll interval. Default 20, 3 to 1000.
    pub max_samples: usize,
    /// `alerting.backlog.redelivery_threshold`: redelivered / delivered over the window above
    /// which a queue is REDELIVERING. Default 0.05; between 0 and 1.
    pub redelivery_threshold: f64,
    /// `alerting.backlog.dead_letter_queues`: queue names (anchored regex) that are dead-letter
    /// queues, in addition to those discovered. Default: none.
    #[serde(serialize_with = "ser_opt_display")]
    pub dead_letter_queues: Option<Regex>,
    /// `alerting.backlog.discover_dead_letter_queues`: find dead-letter queues through the
    /// queues' dead-letter exchange settings (`x-dead-letter-exchange` argument or policy key)
    /// and that exchange's bindings (`/api/exchanges/{vhost}/{name}/bindings/source`). Default
    /// `true`.
    pub discover_dead_letter_queues: bool,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            min_completeness: 0.9,
            max_samples: 20,
            redelivery_threshold: 0.05,
            dead_letter_queues: None,
            discover_dead_letter_queues: true,
        }
    }
}

fn ser_rules<S: Serializer>(rules: &[Rule], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(rules.len()))?;
    for r in rules {
        seq.serialize_element(&serde_json::json!({
            "alert": r.name,
            "kind": format!("{:?}", r.kind).to_lowercase(),
            "expr": r.condition.to_string(),
            "for": humantime::format_duration(r.for_).to_string(),
            "keep_firing_for": humantime::format_duration(r.keep_firing_for).to_string(),
            "severity": r.severity,
            "labels": r.labels,
        }))?;
    }
    seq.end()
}

/// `rabbitmq.*`: the management API endpoint and its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct RabbitmqConfig {
    /// `rabbitmq.url`: base URL of the management API, `http` or `https`, without credentials;
    /// a path prefix (reverse proxy) is kept. Default `http://localhost:15672`.
    #[serde(serialize_with = "ser_display")]
    pub url: Url,
    /// `rabbitmq.username`: management user; needs at least the `monitoring` tag. Default `guest`.
    pub username: String,
    /// `rabbitmq.password`, or the first line of the file named by `rabbitmq.password_file`.
    /// Default `guest`.
    pub password: Secret,
    /// `rabbitmq.password_file`: where the password was read from, if it was.
    pub password_file: Option<PathBuf>,
    /// `rabbitmq.timeout`: timeout of one HTTP request to the management API. Default 10 s.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// `rabbitmq.ca_file`: PEM file with extra CA certificates trusted for `https` URLs,
    /// in addition to the system's roots. Default: none.
    pub ca_file: Option<PathBuf>,
}

/// `poll.*`: the polling schedule.
#[derive(Debug, Clone, Serialize)]
pub struct PollConfig {
    /// `poll.interval`: time between the starts of two polls; a poll that overruns delays the
    /// next one (polls never overlap). Default 15 s, at least 100 ms.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
}

/// `queues.*`: which queues are exported. Regexes are RE2-style (Rust `regex`) and fully
/// anchored, like Prometheus relabelling: `orders` matches only the queue named `orders`.
#[derive(Debug, Clone, Serialize)]
pub struct QueuesConfig {
    /// `queues.include`: queue names to export. Default `.*`. When set, it is also sent to the
    /// management API (`name=^(?:RE)$&use_regex=true`) so that other queues are not downloaded;
    /// the API matches case-insensitively, so it is applied again exactly here.
    #[serde(serialize_with = "ser_display")]
    pub include: Regex,
    /// `queues.exclude`: queue names not to export. Default `amq\.gen-.*` (server-named
    /// queues); set `""` to exclude nothing.
    #[serde(serialize_with = "ser_opt_display")]
    pub exclude: Option<Regex>,
    /// `queues.include_vhosts`: vhosts whose queues are exported. Default `.*`. When this or
    /// `exclude_vhosts` is set, queues are listed per vhost (`/api/queues/{vhost}`) so that
    /// other vhosts' queues are not downloaded.
    #[serde(serialize_with = "ser_display")]
    pub include_vhosts: Regex,
    /// `queues.exclude_vhosts`: vhosts whose queues are not exported. Default: none.
    #[serde(serialize_with = "ser_opt_display")]
    pub exclude_vhosts: Option<Regex>,
    /// `queues.exclude_exclusive`: skip exclusive queues (owned by one connection, usually
    /// short-lived). Default `true`.
    pub exclude_exclusive: bool,
    /// `queues.max_total`: at most this many queues are exported; the rest (last by vhost,
    /// name) are dropped and counted in `rabbitmq_watch_queues_dropped`. Default 25000; 0 means
    /// no limit.
    pub max_total: u64,
    /// `queues.max_per_vhost`: at most this many queues per vhost. Default 0 (no limit).
    pub max_per_vhost: u64,
}

/// A validated, anchored regex that prints as the user wrote it.
#[derive(Debug, Clone)]
pub struct Regex {
    /// The pattern as configured.
    source: String,
    /// `^(?:source)$`, compiled.
    anchored: regex::Regex,
}

impl Regex {
    /// Compiles `source` fully anchored.
    ///
    /// # Errors
    /// The regex crate's message.
    pub fn new(source: &str) -> Result<Self, String> {
        let anchored = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_owned(),
            anchored,
        })
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The anchored pattern, `^(?:source)$`.
    pub fn anchored(&self) -> &str {
        self.anchored.as_str()
    }

    /// Whether it matches everything (`.*`), i.e. filters nothing.
    pub fn is_match_all(&self) -> bool {
        self.source == ".*"
    }
}

impl fmt::Display for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn ser_opt_display<S: Serializer, T: fmt::Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

/// `log.*`: the sidecar's own logs (to stderr).
#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    /// `log.level`: a `tracing` filter such as `info` or `rabbitmq_watch=debug,info`; the
    /// `RUST_LOG` environment variable wins when set. Default `info`.
    pub level: String,
    /// `log.format`: `text` (default) or `json` (one JSON object per line).
    pub format: LogFormat,
}

/// Log line format, `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines with `key=value` fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret string (password). `Debug`, `Display` and `Serialize` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value itself: only for sending it where it belongs (HTTP basic auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_display<S: Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
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
    rabbitmq: RawRabbitmq,
    poll: RawPoll,
    queues: RawQueues,
    alerting: RawAlerting,
    notify: RawNotify,
    listen: Option<String>,
    log: RawLog,
    cluster: RawCluster,
    web: RawWeb,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRabbitmq {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    timeout: Option<String>,
    ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPoll {
    interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawQueues {
    include: Option<String>,
    exclude: Option<String>,
    include_vhosts: Option<String>,
    exclude_vhosts: Option<String>,
    exclude_exclusive: Option<String>,
    max_total: Option<String>,
    max_per_vhost: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAlerting {
    default_rules: Option<String>,
    disable: Vec<String>,
    rules: Vec<RawRule>,
    backlog: RawBacklog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawBacklog {
    window: Option<String>,
    min_completeness: Option<String>,
    max_samples: Option<String>,
    redelivery_threshold: Option<String>,
    dead_letter_queues: Option<String>,
    discover_dead_letter_queues: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRule {
    alert: Option<String>,
    kind: Option<String>,
    expr: Option<String>,
    select: RawSelect,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    severity: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSelect {
    vhost: Option<String>,
    queue: Option<String>,
    node: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawNotify {
    external_url: Option<String>,
    state_file: Option<String>,
    route: Option<RawRoute>,
    receivers: Vec<RawReceiver>,
    inhibit_rules: Vec<RawInhibit>,
    alertmanagers: Vec<RawAlertmanager>,
    alertmanager_resend_delay: Option<String>,
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReceiver {
    name: Option<String>,
    webhook_configs: Vec<RawWebhook>,
    email_configs: Vec<RawEmail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawInhibit {
    source_matchers: Vec<String>,
    target_matchers: Vec<String>,
    equal: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
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
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Yaml)
                .required(true),
        );
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
    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    validate(raw)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let r = raw.rabbitmq;
    let url = parse_url(r.url.as_deref().unwrap_or(DEFAULT_URL))?;
    let username = r.username.unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
    if username.is_empty() {
        return Err(invalid("rabbitmq.username", "", "a non-empty user name"));
    }
    let password_file = r.password_file.map(PathBuf::from);
    let password = match (r.password, &password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "rabbitmq.password_file".to_owned(),
                value: "set together with rabbitmq.password".to_owned(),
                allowed: "only one of rabbitmq.password and rabbitmq.password_file".to_owned(),
            });
        }
        (Some(p), None) => Secret::new(p),
        (None, Some(path)) => Secret::new(read_password_file("rabbitmq.password_file", path)?),
        (None, None) => Secret::new(DEFAULT_PASSWORD),
    };
    let timeout = parse_duration(
        "rabbitmq.timeout",
        r.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT),
    )?;
    let ca_file = r.ca_file.map(PathBuf::from);
    if let Some(path) = &ca_file {
        std::fs::metadata(path).map_err(|source| ConfigError::File {
            key: "rabbitmq.ca_file".to_owned(),
            path: path.clone(),
            source,
        })?;
    }

    let interval = parse_duration(
        "poll.interval",
        raw.poll.interval.as_deref().unwrap_or(DEFAULT_INTERVAL),
    )?;
    if interval < MIN_INTERVAL {
        return Err(invalid(
            "poll.interval",
            &humantime::format_duration(interval).to_string(),
            "a duration of at least 100ms",
        ));
    }

    let queues = validate_queues(raw.queues)?;
    let alerting = validate_alerting(raw.alerting, interval)?;

    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        invalid(
            "listen",
            &listen_text,
            "an IP address and port such as 0.0.0.0:9419 or [::]:9419",
        )
    })?;

    let mut notify = validate_notify(raw.notify, listen.port())?;
    let cluster = validate_cluster(raw.cluster)?;
    if cluster.inhibit_node_alerts {
        notify.inhibit_rules.push(cluster_inhibit_rule());
    }

    let level = raw
        .log
        .level
        .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(invalid(
            "log.level",
            &level,
            "a log filter such as error, warn, info, debug, trace or rabbitmq_watch=debug,info",
        ));
    }
    let format = match raw.log.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(invalid("log.format", other, "one of: text, json")),
    };

    Ok(Config {
        rabbitmq: RabbitmqConfig {
            url,
            username,
            password,
            password_file,
            timeout,
            ca_file,
        },
        poll: PollConfig { interval },
        queues,
        listen,
        log: LogConfig { level, format },
        alerting,
        notify,
        cluster,
        web: validate_web(raw.web)?,
    })
}

fn validate_queues(q: RawQueues) -> Result<QueuesConfig, ConfigError> {
    let regex = |key: &str, text: &str| {
        Regex::new(text).map_err(|e| ConfigError::Invalid {
            key: key.to_owned(),
            value: format!("{text:?}"),
            allowed: format!(
                "a regular expression (RE2 syntax, matched against the whole name): {}",
                e.lines().last().unwrap_or("invalid").trim()
            ),
        })
    };
    // An empty pattern means "no exclusion".
    let optional = |key: &str, text: Option<String>, default: Option<&str>| match text
        .as_deref()
        .or(default)
    {
        None | Some("") => Ok(None),
        Some(t) => regex(key, t).map(Some),
    };
    Ok(QueuesConfig {
        include: regex("queues.include", q.include.as_deref().unwrap_or(".*"))?,
        exclude: optional("queues.exclude", q.exclude, Some(DEFAULT_QUEUE_EXCLUDE))?,
        include_vhosts: regex(
            "queues.include_vhosts",
            q.include_vhosts.as_deref().unwrap_or(".*"),
        )?,
        exclude_vhosts: optional("queues.exclude_vhosts", q.exclude_vhosts, None)?,
        exclude_exclusive: parse_bool(
            "queues.exclude_exclusive",
            q.exclude_exclusive.as_deref().unwrap_or("true"),
        )?,
        max_total: parse_count(
            "queues.max_total",
            q.max_total.as_deref(),
            DEFAULT_MAX_QUEUES,
        )?,
        max_per_vhost: parse_count("queues.max_per_vhost", q.max_per_vhost.as_deref(), 0)?,
    })
}

fn validate_notify(raw: RawNotify, port: u16) -> Result<NotifyConfig, ConfigError> {
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
            .ok_or_else(|| ConfigError::Invalid {
                key: format!("{key}.name"),
                value: "missing".to_owned(),
                allowed: "the receiver's name".to_owned(),
            })?;
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
        group_wait: timing("group_wait", r.group_wait, parent.group_wait)?,
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

/// Severities a rule may have.
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

fn validate_alerting(
    mut raw: RawAlerting,
    interval: Duration,
) -> Result<AlertingConfig, ConfigError> {
    let backlog = validate_backlog(std::mem::take(&mut raw.backlog), interval)?;
    let with_defaults = parse_bool(
        "alerting.default_rules",
        raw.default_rules.as_deref().unwrap_or("true"),
    )?;
    let default_names: Vec<&str> = DEFAULTS.iter().map(|d| d.name).collect();
    for (i, name) in raw.disable.iter().enumerate() {
        if !default_names.contains(&name.as_str()) {
            return Err(ConfigError::Invalid {
                key: format!("alerting.disable[{i}]"),
                value: format!("{name:?}"),
                allowed: format!("a default rule: {}", default_names.join(", ")),
            });
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    if with_defaults {
        for d in DEFAULTS
            .iter()
            .filter(|d| !raw.disable.iter().any(|n| n == d.name))
        {
            rules.push(Rule {
                name: d.name.to_owned(),
                kind: d.kind,
                // The catalogue is checked by the rules tests; an error here is a bug.
                condition: Condition::parse(d.expr, d.kind).unwrap_or(Condition(Vec::new())),
                selector: Selector::default(),
                for_: humantime::parse_duration(d.for_).unwrap_or_default(),
                keep_firing_for: humantime::parse_duration(d.keep_firing_for).unwrap_or_default(),
                severity: d.severity.to_owned(),
                labels: BTreeMap::new(),
                annotations: [
                    ("summary".to_owned(), d.summary.to_owned()),
                    ("description".to_owned(), d.description.to_owned()),
                ]
                .into(),
            });
        }
    }
    let mut own: Vec<String> = Vec::new();
    for (i, r) in raw.rules.into_iter().enumerate() {
        let key = |field: &str| format!("alerting.rules[{i}].{field}");
        let name =
            r.alert
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    key: key("alert"),
                    value: "missing".to_owned(),
                    allowed: "the alert's name, e.g. OrdersBacklog".to_owned(),
                })?;
        if own.contains(&name) {
            return Err(invalid(
                &key("alert"),
                &name,
                "a name not used by another rule",
            ));
        }
        own.push(name.clone());
        let existing = rules.iter().position(|rule| rule.name == name);
        let rule = match existing {
            Some(at) => rules[at].clone(),
            None => {
                let kind_text = r.kind.as_deref().ok_or_else(|| ConfigError::Invalid {
                    key: key("kind"),
                    value: "missing".to_owned(),
                    allowed: "queue, node or cluster".to_owned(),
                })?;
                let kind = Kind::parse(kind_text)
                    .ok_or_else(|| invalid(&key("kind"), kind_text, "queue, node or cluster"))?;
                if r.expr.is_none() {
                    return Err(ConfigError::Invalid {
                        key: key("expr"),
                        value: "missing".to_owned(),
                        allowed: "a condition such as `messages_ready > 1000`".to_owned(),
                    });
                }
                Rule {
                    name: name.clone(),
                    kind,
                    condition: Condition(Vec::new()),
                    selector: Selector::default(),
                    for_: Duration::ZERO,
                    keep_firing_for: Duration::ZERO,
                    severity: "warning".to_owned(),
                    labels: BTreeMap::new(),
                    annotations: [("summary".to_owned(), format!("{name}: {{{{ $value }}}}"))]
                        .into(),
                }
            }
        };
        let rule = override_rule(rule, r, &key)?;
        match existing {
            Some(at) => rules[at] = rule,
            None => rules.push(rule),
        }
    }
    Ok(AlertingConfig { rules, backlog })
}

fn validate_backlog(b: RawBacklog, interval: Duration) -> Result<BacklogConfig, ConfigError> {
    let d = BacklogConfig::default();
    let window = match &b.window {
        Some(text) => parse_duration("alerting.backlog.window", text)?,
        None => d.window,
    };
    if window < interval.saturating_mul(2) {
        return Err(invalid(
            "alerting.backlog.window",
            &humantime::format_duration(window).to_string(),
            &format!(
                "a duration of at least twice poll.interval ({})",
                humantime::format_duration(interval.saturating_mul(2))
            ),
        ));
    }
    let fraction = |key: &str, text: Option<&str>, default: f64, zero_ok: bool| match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| (if zero_ok { *v >= 0.0 } else { *v > 0.0 }) && *v <= 1.0)
            .ok_or_else(|| {
                let range = if zero_ok { "from 0" } else { "above 0" };
                invalid(key, t, &format!("a number {range} up to 1, such as 0.9"))
            }),
    };
    let min_completeness = fraction(
        "alerting.backlog.min_completeness",
        b.min_completeness.as_deref(),
        d.min_completeness,
        false,
    )?;
    let redelivery_threshold = fraction(
        "alerting.backlog.redelivery_threshold",
        b.redelivery_threshold.as_deref(),
        d.redelivery_threshold,
        true,
    )?;
    let max_samples = match &b.max_samples {
        None => d.max_samples,
        Some(t) => t
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (3..=1000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "alerting.backlog.max_samples",
                    t,
                    "a whole number from 3 to 1000",
                )
            })?,
    };
    let dead_letter_queues = match b.dead_letter_queues.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Regex::new(text).map_err(|e| ConfigError::Invalid {
            key: "alerting.backlog.dead_letter_queues".to_owned(),
            value: format!("{text:?}"),
            allowed: format!(
                "a regular expression (RE2 syntax, matched against the whole name): {}",
                e.lines().last().unwrap_or("invalid").trim()
            ),
        })?),
    };
    let discover_dead_letter_queues = match &b.discover_dead_letter_queues {
        None => d.discover_dead_letter_queues,
        Some(t) => parse_bool("alerting.backlog.discover_dead_letter_queues", t)?,
    };
    Ok(BacklogConfig {
        window,
        min_completeness,
        max_samples,
        redelivery_threshold,
        dead_letter_queues,
        discover_dead_letter_queues,
    })
}

/// Applies the fields given in `r` to `rule`.
fn override_rule(
    mut rule: Rule,
    r: RawRule,
    key: &dyn Fn(&str) -> String,
) -> Result<Rule, ConfigError> {
    if let Some(text) = &r.kind {
        rule.kind = Kind::parse(text)
            .ok_or_else(|| invalid(&key("kind"), text, "queue, node or cluster"))?;
    }
    if let Some(text) = &r.expr {
        rule.condition = Condition::parse(text, rule.kind).map_err(|e| ConfigError::Invalid {
            key: key("expr"),
            value: format!("{text:?}"),
            allowed: format!("a condition such as `messages_ready > 1000`: {e}"),
        })?;
    } else if r.kind.is_some() {
        // A new kind needs a condition over its own fields.
        rule.condition = Condition::parse(&rule.condition.to_string(), rule.kind).map_err(|e| {
            ConfigError::Invalid {
                key: key("expr"),
                value: "missing".to_owned(),
                allowed: format!("a condition for kind {:?}: {e}", rule.kind),
            }
        })?;
    }
    let regex = |field: &str, text: &Option<String>| -> Result<Option<Regex>, ConfigError> {
        text.as_deref()
            .map(|t| {
                Regex::new(t).map_err(|e| ConfigError::Invalid {
                    key: key(&format!("select.{field}")),
                    value: format!("{t:?}"),
                    allowed: format!(
                        "a regular expression: {}",
                        e.lines().last().unwrap_or("").trim()
                    ),
                })
            })
            .transpose()
    };
    let allowed: &[&str] = match rule.kind {
        Kind::Queue => &["vhost", "queue"],
        Kind::Node => &["node"],
        Kind::Cluster => &[],
    };
    for (field, given) in [
        ("vhost", &r.select.vhost),
        ("queue", &r.select.queue),
        ("node", &r.select.node),
    ] {
        if given.is_some() && !allowed.contains(&field) {
            return Err(ConfigError::Invalid {
                key: key(&format!("select.{field}")),
                value: format!("{:?}", given.as_deref().unwrap_or("")),
                allowed: format!(
                    "select keys of a {:?} rule: {}",
                    rule.kind,
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            });
        }
    }
    if let Some(v) = regex("vhost", &r.select.vhost)? {
        rule.selector.vhost = Some(v);
    }
    if let Some(v) = regex("queue", &r.select.queue)? {
        rule.selector.queue = Some(v);
    }
    if let Some(v) = regex("node", &r.select.node)? {
        rule.selector.node = Some(v);
    }
    if let Some(text) = &r.for_ {
        rule.for_ = parse_duration_or_zero(&key("for"), text)?;
    }
    if let Some(text) = &r.keep_firing_for {
        rule.keep_firing_for = parse_duration_or_zero(&key("keep_firing_for"), text)?;
    }
    if let Some(text) = &r.severity {
        if !SEVERITIES.contains(&text.as_str()) {
            return Err(invalid(&key("severity"), text, "critical, warning or info"));
        }
        rule.severity = text.clone();
    }
    for (name, _) in r.labels.iter() {
        if name == "alertname" || name == "severity" || !valid_label_name(name) {
            return Err(invalid(
                &key("labels"),
                name,
                "label names of letters, digits and _ (not starting with a digit), other than alertname and severity",
            ));
        }
    }
    rule.labels.extend(r.labels);
    rule.annotations.extend(r.annotations);
    Ok(rule)
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_duration_or_zero(key: &str, text: &str) -> Result<Duration, ConfigError> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text.trim()).map_err(|_| {
        invalid(
            key,
            text,
            "a duration with a unit, such as 0s, 30s, 5m or 1h",
        )
    })
}

// ---- `web.*` (issue #14). Kept in one block: the exporter-toolkit file it names is parsed by
// `crate::web::config`, not here.

/// `web.*`: who may reach the HTTP server and what it lets them change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebConfig {
    /// `web.config_file` (CLI `--web.config.file`): a Prometheus exporter-toolkit web
    /// configuration file (TLS, basic auth, extra response headers), read at start-up by
    /// [`crate::web::config::WebFile::load`]. Default: none (plain HTTP, no authentication).
    pub config_file: Option<PathBuf>,
    /// `web.enable_admin_api` (env `RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API`): whether the write
    /// endpoints (`POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`) are served. Default
    /// `false`: they answer 403, as Prometheus does without `--web.enable-admin-api`.
    pub enable_admin_api: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawWeb {
    config_file: Option<String>,
    enable_admin_api: Option<String>,
}

fn validate_web(raw: RawWeb) -> Result<WebConfig, ConfigError> {
    let config_file = match raw.config_file.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(path) => {
            let path = PathBuf::from(path);
            std::fs::metadata(&path).map_err(|source| ConfigError::File {
                key: "web.config_file".to_owned(),
                path: path.clone(),
                source,
            })?;
            Some(path)
        }
    };
    Ok(WebConfig {
        config_file,
        enable_admin_api: parse_bool(
            "web.enable_admin_api",
            raw.enable_admin_api.as_deref().unwrap_or("false"),
        )?,
    })
}
// ---- end of `web.*`.

fn parse_bool(key: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, text, "true or false")),
    }
}

fn parse_count(key: &str, text: Option<&str>, default: u64) -> Result<u64, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse()
            .map_err(|_| invalid(key, t, "a whole number, 0 for no limit")),
    }
}

impl Config {
    /// The effective configuration as pretty JSON (which is also YAML), secrets redacted:
    /// what `rabbitmq-watch check-config` prints.
    pub fn to_redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<unprintable: {e}>"))
    }

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
        if self.alerting.backlog.window < Duration::from_secs(60) {
            out.push(format!(
                "alerting.backlog.window ({}) is shorter than 1m: RabbitMQ refreshes queue statistics every 5 s by default (collect_statistics_interval, management sample_retention_policies), so a short window can see frozen figures and misjudge queues",
                humantime::format_duration(self.alerting.backlog.window)
            ));
        }
        out
    }
}

fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: format!("{value:?}"),
        allowed: allowed.to_owned(),
    }
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let allowed = "a duration with a unit, such as 500ms, 15s, 1m or 1h30m";
    let d = humantime::parse_duration(text.trim()).map_err(|_| invalid(key, text, allowed))?;
    if d.is_zero() {
        return Err(invalid(key, text, &format!("{allowed}, greater than zero")));
    }
    Ok(d)
}

fn parse_url(text: &str) -> Result<Url, ConfigError> {
    const KEY: &str = "rabbitmq.url";
    let mut url = Url::parse(text.trim()).map_err(|e| ConfigError::Invalid {
        key: KEY.to_owned(),
        value: format!("{:?} ({e})", redact_url_text(text)),
        allowed: "an absolute http:// or https:// URL such as http://localhost:15672".to_owned(),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(
            KEY,
            &redact_url_text(text),
            "a URL with scheme http or https",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            KEY,
            &redact_url_text(text),
            "a URL without credentials; set rabbitmq.username and rabbitmq.password instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            KEY,
            &redact_url_text(text),
            "a URL without query or fragment, such as http://localhost:15672",
        ));
    }
    // A trailing slash makes `Url::join("api/...")` keep any path prefix.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Replaces whatever stands before the last `@` (after a `scheme://`, if any) with
/// `<redacted>`, so an error about a URL with embedded credentials never echoes the password,
/// however malformed the URL.
pub(crate) fn redact_url_text(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_owned();
    };
    match text.find("://") {
        Some(scheme_end) if scheme_end < at => {
            format!("{}<redacted>{}", &text[..scheme_end + 3], &text[at..])
        }
        _ => format!("<redacted>{}", &text[at..]),
    }
}

/// The first line of the secret file at `path`, named by config key `key`.
///
/// # Errors
/// [`ConfigError::File`] when unreadable, [`ConfigError::Invalid`] when the first line is empty.
pub(crate) fn read_password_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            value: format!("{path:?} (empty first line)"),
            allowed: "a file whose first line is the password".to_owned(),
        });
    }
    Ok(password)
}

/// Default `cluster.timeout`: per-member request timeout of the cluster detector.
pub const DEFAULT_CLUSTER_TIMEOUT: &str = "5s";

/// `cluster.*`: the cluster detector (see [`crate::cluster`]).
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
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// `cluster.inhibit_node_alerts`: add the notification inhibit rule "a firing
    /// RabbitmqClusterPartition mutes RabbitmqNodeDown, RabbitmqNodeUnreachable and
    /// RabbitmqNodeNotRunning". Default `true`.
    pub inhibit_node_alerts: bool,
}

fn ser_cluster_nodes<S: Serializer>(nodes: &[(String, Url)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nodes.iter().map(|(n, u)| format!("{n}={u}")))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawCluster {
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

fn validate_cluster(raw: RawCluster) -> Result<ClusterConfig, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
            1,
            "the partition inhibition is on by default"
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
        assert!(c.notify.inhibit_rules.is_empty());
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
}
