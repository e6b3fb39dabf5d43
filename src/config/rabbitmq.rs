//! `rabbitmq.*` (the management API endpoint and its credentials) and `poll.*` (when it is
//! read).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::parse::{invalid, parse_base_url, parse_count, parse_duration, secret_or_file};
use crate::types::Secret;
use crate::util::ser;

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

/// Default port of the rabbitmq_prometheus plugin, used for `rabbitmq.prometheus_url` (on the
/// management URL's host) and for every cluster member's plugin URL.
pub const DEFAULT_PROMETHEUS_PORT: u16 = 15692;

/// `rabbitmq.source`: where queue and node figures are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The management statistics while the broker collects them (`/api/overview` says
    /// `disable_stats: false`), else rabbitmq_prometheus. The default.
    #[default]
    Auto,
    /// Always the management API's statistics (`/api/queues`, `/api/nodes`).
    Management,
    /// Always rabbitmq_prometheus (`/metrics/detailed` and `/metrics` of every member); the
    /// management API still lists queues (type, arguments, policies) and nodes.
    Prometheus,
}

impl Source {
    /// The accepted spellings, for error messages.
    pub const ALLOWED: &'static str = "one of auto, management, prometheus";

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "auto" => Some(Self::Auto),
            "management" => Some(Self::Management),
            "prometheus" => Some(Self::Prometheus),
            _ => None,
        }
    }
}

/// `rabbitmq.queue_read`: how the queue listing is read from the management API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueRead {
    /// One unpaged `GET /api/queues/{vhost}` per vhost (vhosts from `/api/vhosts`), one after
    /// the other: each answer covers one vhost, so the wait before its first byte grows with
    /// the largest vhost, not the cluster (one answer for 100,000 queues outlasted the broker's
    /// 60 s `management.tcp.idle_timeout`, bench/SCALE.md). Costs the broker about the same
    /// CPU as one read (equal at 10,000 queues, within the noise at 30,000: bench/ANALYSIS.md).
    /// The default. Not for RabbitMQ 3.13+'s `/api/queues/detailed` (no per-vhost form),
    /// which is always one read.
    #[default]
    PerVhost,
    /// One unpaged `GET /api/queues` (vhost filters still read per vhost).
    Whole,
}

impl QueueRead {
    /// The accepted spellings, for error messages.
    pub const ALLOWED: &'static str = "one of per_vhost, whole";

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "per_vhost" => Some(Self::PerVhost),
            "whole" => Some(Self::Whole),
            _ => None,
        }
    }
}

/// Default `rabbitmq.max_response_bytes`: 256 MB, room for 100,000 queues at ~2.5 KB each
/// (the sidecar's columns take ~0.5 KB per queue; arguments and policies add to it).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256_000_000;
/// Default `poll.deadline`.
pub const DEFAULT_DEADLINE: &str = "60s";

/// Shortest accepted `poll.interval`: polling faster only loads the broker, whose own
/// statistics refresh every 5 s by default.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `rabbitmq.*`: the management API endpoint and its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct RabbitmqConfig {
    /// `rabbitmq.url`: base URL of the management API, `http` or `https`, without credentials;
    /// a path prefix (reverse proxy) is kept. Default `http://localhost:15672`.
    #[serde(serialize_with = "ser::display")]
    pub url: Url,
    /// `rabbitmq.username`: management user; needs at least the `monitoring` tag. Default `guest`.
    pub username: String,
    /// `rabbitmq.password`, or the first line of the file named by `rabbitmq.password_file`.
    /// Default `guest`.
    pub password: Secret,
    /// `rabbitmq.password_file`: where the password was read from, if it was.
    pub password_file: Option<PathBuf>,
    /// `rabbitmq.timeout`: timeout of one HTTP request to the management API. Default 10 s.
    #[serde(serialize_with = "ser::duration")]
    pub timeout: Duration,
    /// `rabbitmq.ca_file`: PEM file with extra CA certificates trusted for `https` URLs,
    /// in addition to the system's roots. Default: none.
    pub ca_file: Option<PathBuf>,
    /// `rabbitmq.source`: `auto` (default), `management` or `prometheus` (see [`Source`]).
    pub source: Source,
    /// `rabbitmq.prometheus_url`: base URL of the rabbitmq_prometheus plugin when one URL
    /// serves the cluster; its port (and path) is also used for every member's plugin under
    /// `cluster.nodes` / `cluster.url_template`. Same credentials, CA file and timeout as the
    /// management API. Default: the management URL's scheme and host, port 15692.
    #[serde(serialize_with = "ser::display")]
    pub prometheus_url: Url,
    /// `rabbitmq.max_response_bytes`: the largest response body read from the management
    /// API; a larger one fails that read (`rabbitmq_up` 0, reason in the log and on `/`).
    /// Default 256 MB (100,000 queues); 0 for no limit. With `queue_read: per_vhost` it
    /// bounds the queue listing's bodies together.
    pub max_response_bytes: u64,
    /// `rabbitmq.queue_read`: `per_vhost` (default) or `whole` (see [`QueueRead`]).
    pub queue_read: QueueRead,
}

/// `poll.*`: the polling schedule.
#[derive(Debug, Clone, Serialize)]
pub struct PollConfig {
    /// `poll.interval`: time between the starts of two polls; a poll that overruns delays the
    /// next one (polls never overlap). Default 15 s, at least 100 ms.
    #[serde(serialize_with = "ser::duration")]
    pub interval: Duration,
    /// `poll.deadline`: the longest a whole poll may take, every read included; a read still
    /// running then fails as timed out. Default 60 s.
    #[serde(serialize_with = "ser::duration")]
    pub deadline: Duration,
}

/// `rabbitmq.*` as written. `Debug` never prints the password.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRabbitmq {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    timeout: Option<String>,
    ca_file: Option<String>,
    source: Option<String>,
    prometheus_url: Option<String>,
    max_response_bytes: Option<String>,
    queue_read: Option<String>,
}

impl std::fmt::Debug for RawRabbitmq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRabbitmq")
            .field(
                "url",
                &self.url.as_deref().map(super::parse::redact_url_text),
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("source", &self.source)
            .field(
                "prometheus_url",
                &self
                    .prometheus_url
                    .as_deref()
                    .map(super::parse::redact_url_text),
            )
            .field("max_response_bytes", &self.max_response_bytes)
            .field("queue_read", &self.queue_read)
            .finish()
    }
}

/// `poll.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPoll {
    interval: Option<String>,
    deadline: Option<String>,
}

/// Validates `rabbitmq.*`; reads `rabbitmq.password_file` and checks that `rabbitmq.ca_file`
/// exists.
pub(super) fn validate_rabbitmq(r: RawRabbitmq) -> Result<RabbitmqConfig, ConfigError> {
    let url = parse_base_url(
        "rabbitmq.url",
        r.url.as_deref().unwrap_or(DEFAULT_URL),
        DEFAULT_URL,
        "a URL without credentials; set rabbitmq.username and rabbitmq.password instead",
    )?;
    let username = r.username.unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
    if username.is_empty() {
        return Err(invalid("rabbitmq.username", "", "a non-empty user name"));
    }
    let (password, password_file) = secret_or_file(
        "rabbitmq.password",
        "rabbitmq.password_file",
        r.password,
        r.password_file,
        "password",
    )?
    .unwrap_or_else(|| (Secret::new(DEFAULT_PASSWORD), None));
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
    let source = match r.source.as_deref() {
        None => Source::Auto,
        Some(text) => {
            Source::parse(text).ok_or_else(|| invalid("rabbitmq.source", text, Source::ALLOWED))?
        }
    };
    let prometheus_url = match r.prometheus_url.as_deref() {
        Some(text) => parse_base_url(
            "rabbitmq.prometheus_url",
            text,
            "http://localhost:15692",
            "a URL without credentials; the plugin is read with rabbitmq.username and rabbitmq.password",
        )?,
        None => default_prometheus_url(&url),
    };
    let max_response_bytes = parse_count(
        "rabbitmq.max_response_bytes",
        r.max_response_bytes.as_deref(),
        DEFAULT_MAX_RESPONSE_BYTES,
    )?;
    let queue_read = match r.queue_read.as_deref() {
        None => QueueRead::default(),
        Some(text) => QueueRead::parse(text)
            .ok_or_else(|| invalid("rabbitmq.queue_read", text, QueueRead::ALLOWED))?,
    };
    Ok(RabbitmqConfig {
        url,
        username,
        password,
        password_file,
        timeout,
        ca_file,
        source,
        prometheus_url,
        max_response_bytes,
        queue_read,
    })
}

/// The plugin URL on the management URL's host: same scheme and host, port 15692, path `/`.
pub fn default_prometheus_url(management: &Url) -> Url {
    let mut url = management.clone();
    // Only URLs with a host reach here (parse_base_url accepts http and https only).
    let _ = url.set_port(Some(DEFAULT_PROMETHEUS_PORT));
    url.set_path("/");
    url
}

/// Validates `poll.*`.
pub(super) fn validate_poll(raw: RawPoll) -> Result<PollConfig, ConfigError> {
    let interval = parse_duration(
        "poll.interval",
        raw.interval.as_deref().unwrap_or(DEFAULT_INTERVAL),
    )?;
    if interval < MIN_INTERVAL {
        return Err(invalid(
            "poll.interval",
            &humantime::format_duration(interval).to_string(),
            "a duration of at least 100ms",
        ));
    }
    let deadline = parse_duration(
        "poll.deadline",
        raw.deadline.as_deref().unwrap_or(DEFAULT_DEADLINE),
    )?;
    if deadline < MIN_INTERVAL {
        return Err(invalid(
            "poll.deadline",
            &humantime::format_duration(deadline).to_string(),
            "a duration of at least 100ms",
        ));
    }
    Ok(PollConfig { interval, deadline })
}
