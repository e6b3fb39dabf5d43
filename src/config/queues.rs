//! `queues.*`: which queues are exported, and how many at most.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::parse::{parse_bool, parse_count, parse_regex};
use crate::types::Regex;
use crate::util::ser;

/// Default `queues.exclude`: server-named queues (`amq.gen-…`).
pub const DEFAULT_QUEUE_EXCLUDE: &str = r"amq\.gen-.*";
/// Default `queues.max_total`.
pub const DEFAULT_MAX_QUEUES: u64 = 25_000;

/// `queues.*`: which queues are exported. Regexes are RE2-style (Rust `regex`) and fully
/// anchored, like Prometheus relabelling: `orders` matches only the queue named `orders`.
#[derive(Debug, Clone, Serialize)]
pub struct QueuesConfig {
    /// `queues.include`: queue names to export. Default `.*`. When set, it is also sent to the
    /// management API (`name=^(?:RE)$&use_regex=true`) so that other queues are not downloaded;
    /// the API matches case-insensitively, so it is applied again exactly here.
    #[serde(serialize_with = "ser::display")]
    pub include: Regex,
    /// `queues.exclude`: queue names not to export. Default `amq\.gen-.*` (server-named
    /// queues); set `""` to exclude nothing.
    #[serde(serialize_with = "ser::opt_display")]
    pub exclude: Option<Regex>,
    /// `queues.include_vhosts`: vhosts whose queues are exported. Default `.*`. When this or
    /// `exclude_vhosts` is set, queues are listed per vhost (`/api/queues/{vhost}`) so that
    /// other vhosts' queues are not downloaded, whatever `rabbitmq.queue_read` says; not on
    /// RabbitMQ 3.13+ with statistics (`/api/queues/detailed` has no per-vhost form), where
    /// they are filtered as they are decoded.
    #[serde(serialize_with = "ser::display")]
    pub include_vhosts: Regex,
    /// `queues.exclude_vhosts`: vhosts whose queues are not exported. Default: none.
    #[serde(serialize_with = "ser::opt_display")]
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

/// `queues.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawQueues {
    include: Option<String>,
    exclude: Option<String>,
    include_vhosts: Option<String>,
    exclude_vhosts: Option<String>,
    exclude_exclusive: Option<String>,
    max_total: Option<String>,
    max_per_vhost: Option<String>,
}

/// Validates `queues.*`.
pub(super) fn validate_queues(q: RawQueues) -> Result<QueuesConfig, ConfigError> {
    // An empty pattern means "no exclusion".
    let optional = |key: &str, text: Option<String>, default: Option<&str>| match text
        .as_deref()
        .or(default)
    {
        None | Some("") => Ok(None),
        Some(t) => parse_regex(key, t).map(Some),
    };
    Ok(QueuesConfig {
        include: parse_regex("queues.include", q.include.as_deref().unwrap_or(".*"))?,
        exclude: optional("queues.exclude", q.exclude, Some(DEFAULT_QUEUE_EXCLUDE))?,
        include_vhosts: parse_regex(
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
