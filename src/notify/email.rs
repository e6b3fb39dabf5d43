//! Email integration: SMTP via lettre (STARTTLS, implicit TLS or plain; optional AUTH), one
//! email per [`Message`], with a text and an HTML body listing the alerts.
//!
//! STUB: to be implemented (see the helper task). Interface:
//! - `EmailConfig` (validated `email_configs` entry of a receiver), built by
//!   `EmailConfig::from_raw(raw: RawEmail, key: &str) -> Result<EmailConfig, ConfigError>`.
//! - `Email::new(cfg: EmailConfig) -> Result<Email, NotifyError>`
//! - `Email::notify(&self, msg: &Message) -> Result<(), NotifyError>` (one attempt; retries
//!   are done by the caller through `notify::deliver`).

use serde::Deserialize;

use super::{Message, NotifyError};
use crate::config::ConfigError;

/// An `email_configs` entry as written in YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawEmail {}

/// A validated `email_configs` entry.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Whether resolved alerts are sent too.
    pub send_resolved: bool,
}

impl EmailConfig {
    /// Validates `raw`; `key` is its dotted key, e.g. `notify.receivers[0].email_configs[1]`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn from_raw(_raw: RawEmail, _key: &str) -> Result<EmailConfig, ConfigError> {
        Ok(EmailConfig {
            send_resolved: false,
        })
    }
}

/// A configured email integration.
#[derive(Debug, Clone)]
pub struct Email {
    /// The configuration.
    pub config: EmailConfig,
}

impl Email {
    /// Builds the SMTP transport.
    ///
    /// # Errors
    /// [`NotifyError`] (permanent) when the configuration cannot work.
    pub fn new(config: EmailConfig) -> Result<Email, NotifyError> {
        Ok(Email { config })
    }

    /// Sends one email for `msg`.
    ///
    /// # Errors
    /// [`NotifyError`]: retryable for connection errors, timeouts and SMTP 4xx.
    pub async fn notify(&self, _msg: &Message) -> Result<(), NotifyError> {
        Err(NotifyError::permanent(
            "invalid",
            "email is not implemented yet",
        ))
    }
}
