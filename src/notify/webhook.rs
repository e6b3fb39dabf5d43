//! Webhook integration: one `POST` of the [`Message`] (Alertmanager's webhook JSON, version
//! "4") per notification, with optional extra headers and, with a secret, a signature that
//! cannot be replayed: `X-Rabbitmq-Watch-Timestamp: <unix seconds>` and
//! `X-Rabbitmq-Watch-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` (each attempt
//! signs with its own time; receivers reject old timestamps, see docs/notifications.md). One
//! attempt per call; retries are the caller's ([`super::deliver`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Message, NotifyError, http_error, http_status_error};
pub use crate::config::webhook::{RawWebhook, WebhookConfig};

/// Name of the signature header (the name is unchanged since the body-only signature; what it
/// signs now includes the timestamp).
pub const SIGNATURE_HEADER: &str = "X-Rabbitmq-Watch-Signature";

/// Name of the timestamp header: Unix seconds when the request was signed.
pub const TIMESTAMP_HEADER: &str = "X-Rabbitmq-Watch-Timestamp";

/// A configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The configuration.
    pub config: WebhookConfig,
    /// The HTTP client (connection pool).
    http: reqwest::Client,
}

/// `sha256=` and the hex HMAC-SHA256, keyed with `secret`, of the decimal `timestamp`, a `.`
/// and `body`: the value of [`SIGNATURE_HEADER`], sent with `timestamp` in [`TIMESTAMP_HEADER`].
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

impl Webhook {
    /// Builds the HTTP client (needs the rustls provider: [`crate::install_crypto_provider`]).
    ///
    /// # Errors
    /// A permanent [`NotifyError`] when the client cannot be built.
    pub fn new(config: WebhookConfig) -> Result<Webhook, NotifyError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("rabbitmq-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::permanent("invalid", e.to_string()))?;
        Ok(Webhook { config, http })
    }

    /// POSTs `msg` once.
    ///
    /// # Errors
    /// Retryable for connection errors, timeouts, 5xx and 429; permanent for other 4xx.
    pub async fn notify(&self, msg: &Message) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(msg)
            .map_err(|e| NotifyError::permanent("invalid", e.to_string()))?;
        let mut request = self
            .http
            .post(self.config.url.clone())
            .headers(self.config.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.config.hmac_secret {
            // Signed at each attempt: a retry an hour later carries a fresh timestamp.
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    signature(secret.expose(), timestamp, &body),
                );
        }
        let response = request.body(body).send().await.map_err(http_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(http_status_error(status, &text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex_of_timestamp_dot_body() {
        // The construction against an HMAC computed directly over "1700000000.{body}".
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            signature("Jefe", 1_700_000_000, br#"{"a":1}"#),
            format!("sha256={hex}")
        );
        // Another time, another signature: a captured request cannot be re-dated.
        assert_ne!(
            signature("Jefe", 1_700_000_000, b"x"),
            signature("Jefe", 1_700_000_001, b"x")
        );
    }
}
