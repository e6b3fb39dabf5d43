//! A `notify.alertmanagers` entry: [`RawAlertmanager`] as written, validated into
//! [`AlertmanagerConfig`] for the Alertmanager integration (`notify::alertmanager`).

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::parse::{missing, parse_base_url, parse_duration};
use crate::util::ser;

/// Default `timeout` of one push (one HTTP request).
pub const DEFAULT_TIMEOUT: &str = "10s";

/// A `notify.alertmanagers` entry as written in YAML: every value is text, checked by
/// [`AlertmanagerConfig::from_raw`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlertmanager {
    /// `url`: base URL of the Alertmanager (required), e.g. `http://alertmanager:9093`.
    pub url: Option<String>,
    /// `timeout`: timeout of one HTTP request, e.g. `10s` (default).
    pub timeout: Option<String>,
}

/// A validated `notify.alertmanagers` entry.
#[derive(Debug, Clone, Serialize)]
pub struct AlertmanagerConfig {
    /// `url`: base URL of the Alertmanager, `http` or `https`, without credentials, query or
    /// fragment; a path prefix (reverse proxy, `--web.route-prefix`) is kept, and always ends
    /// with `/`. Alerts go to `{url}api/v2/alerts`.
    #[serde(serialize_with = "ser::display")]
    pub url: Url,
    /// `timeout`: timeout of one HTTP request to it (connecting included). Default 10 s.
    #[serde(serialize_with = "ser::duration")]
    pub timeout: Duration,
}

impl AlertmanagerConfig {
    /// Validates `raw`; `key` is its dotted key, e.g. `notify.alertmanagers[0]`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `{key}.url` or `{key}.timeout`, the value (credentials
    /// in a URL redacted) and what is allowed.
    pub fn from_raw(raw: RawAlertmanager, key: &str) -> Result<AlertmanagerConfig, ConfigError> {
        let url_key = format!("{key}.url");
        let text = raw.url.as_deref().ok_or_else(|| {
            missing(
                &url_key,
                &format!("the base URL of an Alertmanager, such as {EXAMPLE_URL}"),
            )
        })?;
        let url = parse_base_url(
            &url_key,
            text,
            EXAMPLE_URL,
            "a URL without credentials (user:password@); put an authenticating proxy's \
             credentials elsewhere",
        )?;
        let timeout = parse_duration(
            &format!("{key}.timeout"),
            raw.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT),
        )?;
        Ok(AlertmanagerConfig { url, timeout })
    }

    /// Where alerts are POSTed: `{url}api/v2/alerts`.
    pub fn alerts_endpoint(&self) -> Url {
        // `url` ends with `/`, so the prefix is kept; joining a relative path cannot fail.
        self.url
            .join("api/v2/alerts")
            .unwrap_or_else(|_| self.url.clone())
    }
}

/// An example URL for error messages.
const EXAMPLE_URL: &str = "http://alertmanager:9093";

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: Option<&str>, timeout: Option<&str>) -> RawAlertmanager {
        RawAlertmanager {
            url: url.map(str::to_owned),
            timeout: timeout.map(str::to_owned),
        }
    }

    fn err(raw: RawAlertmanager) -> String {
        AlertmanagerConfig::from_raw(raw, "notify.alertmanagers[1]")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn valid_entry_keeps_the_path_prefix_and_defaults_the_timeout() {
        let c =
            AlertmanagerConfig::from_raw(raw(Some("https://am.example/am"), None), "k").unwrap();
        assert_eq!(c.url.as_str(), "https://am.example/am/");
        assert_eq!(
            c.alerts_endpoint().as_str(),
            "https://am.example/am/api/v2/alerts"
        );
        assert_eq!(c.timeout, Duration::from_secs(10));
        let c = AlertmanagerConfig::from_raw(raw(Some("http://am:9093"), Some("2s")), "k").unwrap();
        assert_eq!(c.alerts_endpoint().as_str(), "http://am:9093/api/v2/alerts");
        assert_eq!(c.timeout, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_key_the_value_and_what_is_allowed() {
        let e = err(raw(None, None));
        assert!(e.contains("`notify.alertmanagers[1].url`"), "{e}");
        assert!(e.contains(": missing;"), "{e}");
        assert!(e.contains("http://alertmanager:9093"), "{e}");

        let e = err(raw(Some("ftp://am:21"), None));
        assert_eq!(
            e,
            "invalid value for `notify.alertmanagers[1].url`: \"ftp://am:21\"; expected a URL with scheme http or https"
        );

        let e = err(raw(Some("am:9093/x y"), None));
        assert!(e.contains("`notify.alertmanagers[1].url`"), "{e}");

        let e = err(raw(Some("http://am:9093/?x=1"), None));
        assert!(e.contains("without query or fragment"), "{e}");

        let e = err(raw(Some("http://am:9093"), Some("soon")));
        assert_eq!(
            e,
            "invalid value for `notify.alertmanagers[1].timeout`: \"soon\"; expected a duration with a unit, such as 500ms, 15s, 1m or 1h30m"
        );
        let e = err(raw(Some("http://am:9093"), Some("0s")));
        assert!(e.contains("`notify.alertmanagers[1].timeout`"), "{e}");
    }

    #[test]
    fn credentials_in_the_url_are_rejected_without_being_echoed() {
        for url in [
            "http://admin:hunter2@am:9093",
            "http://hunter2@am:9093",
            "http://admin:hunter2@am:99999",
            "admin:hunter2@am:9093",
        ] {
            let e = err(raw(Some(url), None));
            assert!(!e.contains("hunter2"), "{url}: {e}");
            assert!(e.contains("notify.alertmanagers[1].url"), "{url}: {e}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e =
            serde_json::from_str::<RawAlertmanager>(r#"{"url":"http://am","api_version":"v1"}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("api_version"), "{e}");
    }
}
