//! A receiver's `webhook_configs` entry: [`RawWebhook`] as written, validated into
//! [`WebhookConfig`] for the webhook integration (`notify::webhook`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::ConfigError;
use super::parse::{invalid, missing, parse_bool, parse_duration, secret_or_file};
use crate::types::Secret;

/// Default `timeout` of one request.
pub const DEFAULT_TIMEOUT: &str = "10s";

/// A `webhook_configs` entry as written in YAML: every value is text, checked by
/// [`WebhookConfig::from_raw`]. `Debug` never prints the URL (its path often holds a token),
/// header values or the secret.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWebhook {
    /// `url`: where to POST (required).
    pub url: Option<String>,
    /// `send_resolved`: `true` (default) or `false`.
    pub send_resolved: Option<String>,
    /// `headers`: extra request headers.
    pub headers: BTreeMap<String, String>,
    /// `hmac_secret`: key of the body signature. Exclusive with `hmac_secret_file`.
    pub hmac_secret: Option<String>,
    /// `hmac_secret_file`: file whose first line is the key, read when the configuration is
    /// loaded. Exclusive with `hmac_secret`.
    pub hmac_secret_file: Option<String>,
    /// `timeout`: of one request, a duration with a unit such as `10s` (default).
    pub timeout: Option<String>,
}

/// A validated `webhook_configs` entry. `Debug` shows only the URL's scheme and host, never
/// its path, query or credentials (which often hold a token), header values or the secret.
#[derive(Clone)]
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

impl fmt::Debug for RawWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawWebhook")
            .field("url", &self.url.as_deref().map(redacted_url_text))
            .field("send_resolved", &self.send_resolved)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("hmac_secret_file", &self.hmac_secret_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redacted_url(&self.url))
            .field("send_resolved", &self.send_resolved)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("hmac_secret", &self.hmac_secret)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `scheme://host:port/<redacted>`: what of a webhook URL may be shown.
fn redacted_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/<redacted>", url.scheme()),
        None => format!("{}://{host}/<redacted>", url.scheme()),
    }
}

/// [`redacted_url`] of URL text as written; text that is not a URL is not shown at all.
fn redacted_url_text(text: &str) -> String {
    Url::parse(text).map_or_else(|_| "<redacted>".to_owned(), |u| redacted_url(&u))
}

impl WebhookConfig {
    /// Validates `raw`; `key` is its dotted key, e.g. `notify.receivers[0].webhook_configs[0]`.
    /// Reads `hmac_secret_file` if given.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key (a URL or secret is never echoed).
    pub fn from_raw(raw: RawWebhook, key: &str) -> Result<WebhookConfig, ConfigError> {
        let field = |name: &str| format!("{key}.{name}");
        let url_text = raw
            .url
            .ok_or_else(|| missing(&field("url"), "the receiver's http:// or https:// URL"))?;
        let url = Url::parse(&url_text)
            .ok()
            .filter(|u| u.scheme() == "http" || u.scheme() == "https")
            .ok_or_else(|| ConfigError::Invalid {
                key: field("url"),
                value: "(not shown: may hold a secret)".to_owned(),
                allowed: "an absolute http:// or https:// URL".to_owned(),
            })?;
        let send_resolved = parse_bool(
            &field("send_resolved"),
            raw.send_resolved.as_deref().unwrap_or("true"),
        )?;
        let mut headers = HeaderMap::new();
        for (name, value) in &raw.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&field("headers"), name, "an HTTP header name"))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| ConfigError::Invalid {
                key: field(&format!("headers.{name}")),
                value: "(not shown)".to_owned(),
                allowed: "visible ASCII text".to_owned(),
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let hmac_secret = secret_or_file(
            &field("hmac_secret"),
            &field("hmac_secret_file"),
            raw.hmac_secret,
            raw.hmac_secret_file,
            "secret",
        )?
        .map(|(secret, _)| secret);
        if hmac_secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(ConfigError::Invalid {
                key: field("hmac_secret"),
                value: "empty".to_owned(),
                allowed: "a non-empty secret".to_owned(),
            });
        }
        let timeout = parse_duration(
            &field("timeout"),
            raw.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT),
        )?;
        Ok(WebhookConfig {
            url,
            send_resolved,
            headers,
            hmac_secret,
            timeout,
        })
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
        let mut r = raw("https://hooks.example/T0k3n");
        r.hmac_secret = Some("k3y".into());
        r.hmac_secret_file = Some("/run/secrets/hook".into());
        let err = WebhookConfig::from_raw(r, "w").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid value for `w.hmac_secret_file`: set together with w.hmac_secret; expected only one of w.hmac_secret and w.hmac_secret_file"
        );
        let mut r = raw("https://hooks.example/T0k3n");
        r.timeout = Some("0s".into());
        let err = WebhookConfig::from_raw(r, "w").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid value for `w.timeout`: \"0s\""),
            "{err}"
        );
        let c = WebhookConfig::from_raw(raw("https://hooks.example/T0k3n"), "w").unwrap();
        assert!(c.send_resolved);
        assert_eq!(c.timeout, Duration::from_secs(10));
    }
}
