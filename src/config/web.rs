//! `web.*`: who may reach the HTTP server and what it lets them change. The exporter-toolkit
//! file that `web.config_file` names (TLS, basic auth, extra headers) is parsed by
//! [`crate::web::config`], not here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::parse::parse_bool;

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

/// `web.*` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawWeb {
    config_file: Option<String>,
    enable_admin_api: Option<String>,
}

/// Validates `web.*`: the file must exist (it is parsed later, by [`crate::web`]).
pub(super) fn validate_web(raw: RawWeb) -> Result<WebConfig, ConfigError> {
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
