//! Webhook integration: one `POST` of the [`Message`] (Alertmanager's webhook JSON, version
//! "4") per notification, with optional extra headers and an HMAC-SHA256 signature of the body
//! in `X-Rabbitmq-Watch-Signature: sha256=<hex>`. One attempt per call; retries are the
//! caller's ([`super::deliver`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Message, NotifyError, http_error, http_status_error};
pub use crate::config::webhook::{RawWebhook, WebhookConfig};

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-Rabbitmq-Watch-Signature";

/// A configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The configuration.
    pub config: WebhookConfig,
    /// The HTTP client (connection pool).
    http: reqwest::Client,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
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
            request = request.header(SIGNATURE_HEADER, signature(secret.expose(), &body));
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
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
