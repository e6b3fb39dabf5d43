//! `log.*`: the sidecar's own logs.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::parse::invalid;

/// Default log level filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";

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

/// `log.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

/// Validates `log.*`: the level must be a valid `tracing` filter.
pub(super) fn validate_log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let level = raw.level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(invalid(
            "log.level",
            &level,
            "a log filter such as error, warn, info, debug, trace or rabbitmq_watch=debug,info",
        ));
    }
    let format = match raw.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(invalid("log.format", other, "one of: text, json")),
    };
    Ok(LogConfig { level, format })
}
