//! Alertmanager integration: the sidecar's firing (and recently resolved) alerts are POSTed to
//! every configured Alertmanager's `/api/v2/alerts`, and re-sent while they fire, as Prometheus
//! does, so an Alertmanager cluster can dedup, route, silence and inhibit them at scale.
//!
//! STUB: to be implemented. Interface used by the rest of the crate:
//! - `RawAlertmanager` (YAML entry of `notify.alertmanagers`), validated by
//!   `AlertmanagerConfig::from_raw(raw, key)`.
//! - `Alertmanagers::new(configs, resend_delay, external_url, stats)` and
//!   `Alertmanagers::run(self, assessments, shutdown)`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::NotifyStats;
use crate::alerting::AssessmentReceiver;
use crate::config::ConfigError;

/// A `notify.alertmanagers` entry as written in YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlertmanager {}

/// A validated `notify.alertmanagers` entry.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {}

impl AlertmanagerConfig {
    /// Validates `raw`; `key` is its dotted key, e.g. `notify.alertmanagers[0]`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn from_raw(_raw: RawAlertmanager, _key: &str) -> Result<AlertmanagerConfig, ConfigError> {
        Ok(AlertmanagerConfig {})
    }
}

/// The Alertmanager pusher.
#[derive(Debug)]
pub struct Alertmanagers {}

impl Alertmanagers {
    /// A pusher to `configs`, re-sending firing alerts every `resend_delay`.
    pub fn new(
        _configs: Vec<AlertmanagerConfig>,
        _resend_delay: Duration,
        _external_url: String,
        _stats: Arc<NotifyStats>,
    ) -> Self {
        Alertmanagers {}
    }

    /// Pushes alerts of every new assessment (and re-sends) until `shutdown`.
    pub async fn run(self, _assessments: AssessmentReceiver, _shutdown: CancellationToken) {}
}
