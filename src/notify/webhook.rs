//! Webhook integration: one `POST` of the [`Message`] (Alertmanager's webhook JSON, version
//! "4") per notification, with optional extra headers and an HMAC-SHA256 signature of the body
//! in `X-Rabbitmq-Watch-Signature: sha256=<hex>`. One attempt per call; retries are the
//! caller's ([`super::deliver`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::Sha256;

use super::{Message, NotifyError, http_error, http_status_error};
use crate::config::{ConfigError, Secret};

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-Rabbitmq-Watch-Signature";

/// A `webhook_configs` entry as written in YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWebhook {
    url: Option<String>,
    send_resolved: Option<String>,
    headers: BTreeMap<String, String>,
    hmac_secret: Option<String>,
    hmac_secret_file: Option<String>,
    timeout: Option<String>,
}

/// A validated `webhook_configs` entry.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `url`: where to POST (http or https). Treated as secret: never logged.
    pub url: Url,
    /// `send_resolved`: also notify when alerts resolve. Default `true` (as Alertmanager).
    pub send_resolved: bool,
    /// `headers`: extra request headers (e.g. an `Authorization`); values are never logged.
    pub headers: HeaderMap,
    /// `hmac_secret` or the first line of `hmac_secret_file`: key of the body signature.
    pub hmac_secret: Option<Secret>,
    /// `timeout`: of one request. Default 10 s.
    pub timeout: Duration,
}

fn invalid(key: String, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: format!("{value:?}"),
        allowed: allowed.to_owned(),
    }
}

impl WebhookConfig {
    /// Validates `raw`; `key` is its dotted key, e.g. `notify.receivers[0].webhook_configs[0]`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key (a URL or secret is never echoed).
    pub fn from_raw(raw: RawWebhook, key: &str) -> Result<WebhookConfig, ConfigError> {
        let url_text = raw.url.ok_or_else(|| ConfigError::Invalid {
            key: format!("{key}.url"),
            value: "missing".to_owned(),
            allowed: "the receiver's http:// or https:// URL".to_owned(),
        })?;
        let url = Url::parse(&url_text)
            .ok()
            .filter(|u| u.scheme() == "http" || u.scheme() == "https")
            .ok_or_else(|| ConfigError::Invalid {
                key: format!("{key}.url"),
                value: "(not shown: may hold a secret)".to_owned(),
                allowed: "an absolute http:// or https:// URL".to_owned(),
            })?;
        let send_resolved = match raw.send_resolved.as_deref().unwrap_or("true") {
            "true" => true,
            "false" => false,
            other => {
                return Err(invalid(
                    format!("{key}.send_resolved"),
                    other,
                    "true or false",
                ));
            }
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &raw.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("{key}.headers"), name, "an HTTP header name"))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| ConfigError::Invalid {
                key: format!("{key}.headers.{name}"),
                value: "(not shown)".to_owned(),
                allowed: "visible ASCII text".to_owned(),
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let hmac_secret = match (raw.hmac_secret, raw.hmac_secret_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.hmac_secret_file"),
                    value: "set together with hmac_secret".to_owned(),
                    allowed: "only one of hmac_secret and hmac_secret_file".to_owned(),
                });
            }
            (Some(s), None) => Some(Secret::new(s)),
            (None, Some(path)) => {
                let path = PathBuf::from(path);
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::File {
                    key: format!("{key}.hmac_secret_file"),
                    path: path.clone(),
                    source,
                })?;
                Some(Secret::new(text.lines().next().unwrap_or("")))
            }
            (None, None) => None,
        };
        if hmac_secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(ConfigError::Invalid {
                key: format!("{key}.hmac_secret"),
                value: "empty".to_owned(),
                allowed: "a non-empty secret".to_owned(),
            });
        }
        let timeout = match raw.timeout.as_deref() {
            None => Duration::from_secs(10),
            Some(t) => humantime::parse_duration(t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| invalid(format!("{key}.timeout"), t, "a duration such as 10s"))?,
        };
        Ok(WebhookConfig {
            url,
            send_resolved,
            headers,
            hmac_secret,
            timeout,
        })
    }
}

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

    fn raw(url: &str) -> RawWebhook {
        RawWebhook {
            url: Some(url.to_owned()),
            ..RawWebhook::default()
        }
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn validation_names_the_key_and_hides_secrets() {
        let err = WebhookConfig::from_raw(raw("ftp://x"), "notify.receivers[0].webhook_configs[0]")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value for `notify.receivers[0].webhook_configs[0].url`: (not shown: may hold a secret); expected an absolute http:// or https:// URL"
        );
        let mut r = raw("https://hooks.example/T0k3n");
        r.send_resolved = Some("yes".into());
        let err = WebhookConfig::from_raw(r, "w").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid value for `w.send_resolved`: \"yes\"; expected true or false"
        );
        let c = WebhookConfig::from_raw(raw("https://hooks.example/T0k3n"), "w").unwrap();
        assert!(c.send_resolved);
        assert_eq!(c.timeout, Duration::from_secs(10));
    }
}
