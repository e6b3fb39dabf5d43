//! The configuration reloads' outcome (SIGHUP, `POST /-/reload`; see [`crate::reload`]):
//! `rabbitmq_watch_config_last_reload_successful` and
//! `rabbitmq_watch_config_last_reload_success_timestamp_seconds`, Prometheus's own names for
//! the same facts.

use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{Family, flag};

/// `rabbitmq_watch_config_last_reload_successful`: 1 when the last reload attempt applied the
/// configuration (or none was attempted since start-up), 0 when it was rejected.
pub const LAST_RELOAD_SUCCESSFUL: Family = Family {
    name: "rabbitmq_watch_config_last_reload_successful",
    help: "Whether the last configuration reload attempt (SIGHUP, POST /-/reload) succeeded: 1, or 0 when the new configuration was invalid and the running one was kept. 1 at start-up.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_config_last_reload_success_timestamp_seconds`: when the running
/// configuration was loaded (start-up or the last successful reload).
pub const LAST_RELOAD_SUCCESS: Family = Family {
    name: "rabbitmq_watch_config_last_reload_success_timestamp",
    help: "Unix time at which the running configuration was loaded: start-up, or the last successful reload.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// The outcome of the last reload, shared by the reload task (writer) and the encoder (reader).
#[derive(Debug)]
pub struct ReloadStatus {
    /// (last attempt succeeded, when the running configuration was loaded).
    inner: Mutex<(bool, SystemTime)>,
}

impl ReloadStatus {
    /// A status for a configuration loaded at `at` (start-up): successful.
    pub fn new(at: SystemTime) -> Self {
        Self {
            inner: Mutex::new((true, at)),
        }
    }

    /// Records a reload attempt at `at`: `ok` sets both values, a failure only the flag.
    pub fn record(&self, ok: bool, at: SystemTime) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.0 = ok;
            if ok {
                inner.1 = at;
            }
        }
    }

    /// (last attempt succeeded, when the running configuration was loaded).
    pub fn get(&self) -> (bool, SystemTime) {
        self.inner
            .lock()
            .map_or((true, SystemTime::UNIX_EPOCH), |inner| *inner)
    }
}

/// Writes both families from `status`.
pub fn encode(enc: &mut DescriptorEncoder, status: &ReloadStatus) -> fmt::Result {
    let (ok, at) = status.get();
    LAST_RELOAD_SUCCESSFUL.gauge_value(enc, Some(flag(ok)))?;
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    LAST_RELOAD_SUCCESS.gauge_value(enc, Some(secs))
}
