//! Field parsers shared by every section of the configuration and by the integrations'
//! configurations, so that a key of one section is checked, and its errors are worded, like the
//! same kind of key anywhere else: every error names the key, the value (never a secret) and
//! what is allowed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use super::ConfigError;
use crate::types::{Regex, Secret};

/// What a duration key accepts.
const DURATION: &str = "a duration with a unit, such as 500ms, 15s, 1m or 1h30m";

/// An error about `value` (quoted) at `key`.
pub(crate) fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: format!("{value:?}"),
        allowed: allowed.to_owned(),
    }
}

/// An error about a required `key` that is not set.
pub(crate) fn missing(key: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: "missing".to_owned(),
        allowed: allowed.to_owned(),
    }
}

/// An error about `second` being set together with `first`, which excludes it (a secret and
/// the file holding it).
pub(crate) fn both_set(first: &str, second: &str) -> ConfigError {
    ConfigError::Invalid {
        key: second.to_owned(),
        value: format!("set together with {first}"),
        allowed: format!("only one of {first} and {second}"),
    }
}

/// A duration with a unit, greater than zero.
pub(crate) fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| invalid(key, text, DURATION))?;
    if d.is_zero() {
        return Err(invalid(
            key,
            text,
            &format!("{DURATION}, greater than zero"),
        ));
    }
    Ok(d)
}

/// A duration with a unit, where 0 is allowed (`0`, `0s`): rules' `for`/`keep_firing_for`,
/// a route's `group_wait` (as in Alertmanager: notify a new group at once).
pub(crate) fn parse_duration_or_zero(key: &str, text: &str) -> Result<Duration, ConfigError> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text.trim()).map_err(|_| {
        invalid(
            key,
            text,
            "a duration with a unit, such as 0s, 30s, 5m or 1h",
        )
    })
}

/// `true` or `false`.
pub(crate) fn parse_bool(key: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, text, "true or false")),
    }
}

/// A whole number where 0 means no limit; `default` when not set.
pub(crate) fn parse_count(key: &str, text: Option<&str>, default: u64) -> Result<u64, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse()
            .map_err(|_| invalid(key, t, "a whole number, 0 for no limit")),
    }
}

/// A regular expression matched against whole names ([`Regex`], anchored).
pub(crate) fn parse_regex(key: &str, text: &str) -> Result<Regex, ConfigError> {
    Regex::new(text).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        value: format!("{text:?}"),
        allowed: format!(
            "a regular expression (RE2 syntax, matched against the whole name): {}",
            e.lines().last().unwrap_or("invalid").trim()
        ),
    })
}

/// The base URL of an HTTP API: absolute, `http` or `https`, without credentials, query or
/// fragment; a path prefix (reverse proxy) is kept and always ends with `/`, so that joining
/// `api/...` keeps it. `example` is a valid URL shown in errors; `no_credentials` is what is
/// allowed instead of a URL with credentials (where they go instead). Errors never echo
/// credentials ([`redact_url_text`]).
pub(crate) fn parse_base_url(
    key: &str,
    text: &str,
    example: &str,
    no_credentials: &str,
) -> Result<Url, ConfigError> {
    let shown = redact_url_text(text);
    let mut url = Url::parse(text.trim()).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        value: format!("{shown:?} ({e})"),
        allowed: format!("an absolute http:// or https:// URL such as {example}"),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(key, &shown, "a URL with scheme http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, &shown, no_credentials));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            key,
            &shown,
            &format!("a base URL without query or fragment, such as {example}"),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Replaces whatever stands before the last `@` (after a `scheme://`, if any) with
/// `<redacted>`, so an error about a URL with embedded credentials never echoes the password,
/// however malformed the URL.
pub(crate) fn redact_url_text(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_owned();
    };
    match text.find("://") {
        Some(scheme_end) if scheme_end < at => {
            format!("{}<redacted>{}", &text[..scheme_end + 3], &text[at..])
        }
        _ => format!("<redacted>{}", &text[at..]),
    }
}

/// The first line of the secret file at `path`, named by config key `key`; `what` names the
/// secret in errors (`password`, `secret`).
///
/// # Errors
/// [`ConfigError::File`] when unreadable, [`ConfigError::Invalid`] when the first line is empty.
pub(crate) fn read_secret_file(key: &str, path: &Path, what: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let secret = text.lines().next().unwrap_or("");
    if secret.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            value: format!("{path:?} (empty first line)"),
            allowed: format!("a file whose first line is the {what}"),
        });
    }
    Ok(Secret::new(secret))
}

/// A secret given either inline (`value_key`) or as a file (`file_key`, read now), not both.
/// `None` when neither is set; otherwise the secret and the file it was read from, if any.
///
/// # Errors
/// Both keys set ([`both_set`]), or the file cannot be read ([`read_secret_file`]).
pub(crate) fn secret_or_file(
    value_key: &str,
    file_key: &str,
    value: Option<String>,
    file: Option<String>,
    what: &str,
) -> Result<Option<(Secret, Option<PathBuf>)>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(both_set(value_key, file_key)),
        (Some(v), None) => Ok(Some((Secret::new(v), None))),
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            let secret = read_secret_file(file_key, &path, what)?;
            Ok(Some((secret, Some(path))))
        }
        (None, None) => Ok(None),
    }
}

/// Whether `host` is `localhost` or a loopback address (`127.0.0.0/8`, `::1`, also written
/// in brackets as in a URL).
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Keys whose value is a secret, wherever they appear in the tree (`rabbitmq.password`,
/// `email_configs[].auth_password`, `webhook_configs[].hmac_secret`).
pub(crate) const SECRET_KEYS: &[&str] = &["password", "auth_password", "hmac_secret"];

/// Checks every secret key in the layered tree as the `config` crate read it, before serde
/// turns scalars into text: a YAML number or boolean (`password: 007` would become `"7"`) is an
/// error that suggests quotes, and an empty value (`hmac_secret:`) is an error, never a fallback
/// to the default password or to unsigned requests. `path` is the dotted key of `value`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the first offending key; the value itself is never shown.
pub(crate) fn check_secrets(path: &str, value: &config::Value) -> Result<(), ConfigError> {
    use config::ValueKind;
    match &value.kind {
        ValueKind::Table(table) => {
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            for key in keys {
                let child = &table[key];
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if SECRET_KEYS.contains(&key.as_str()) {
                    check_secret(&child_path, key, child)?;
                } else {
                    check_secrets(&child_path, child)?;
                }
            }
            Ok(())
        }
        ValueKind::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_secrets(&format!("{path}[{i}]"), item)),
        _ => Ok(()),
    }
}

/// One secret value at `path` (leaf name `name`): a non-empty string.
fn check_secret(path: &str, name: &str, value: &config::Value) -> Result<(), ConfigError> {
    use config::ValueKind;
    let what = match &value.kind {
        ValueKind::String(s) if !s.is_empty() => return Ok(()),
        ValueKind::String(_) | ValueKind::Nil => {
            return Err(ConfigError::Invalid {
                key: path.to_owned(),
                value: "empty".to_owned(),
                allowed: "a non-empty secret: an empty value is not a fallback to the default \
                          or to no authentication or signature; remove the key if you mean none"
                    .to_owned(),
            });
        }
        ValueKind::I64(_)
        | ValueKind::I128(_)
        | ValueKind::U64(_)
        | ValueKind::U128(_)
        | ValueKind::Float(_) => "a YAML number",
        ValueKind::Boolean(_) => "a YAML boolean",
        ValueKind::Table(_) => "a YAML mapping",
        ValueKind::Array(_) => "a YAML list",
    };
    Err(ConfigError::Invalid {
        key: path.to_owned(),
        value: format!("{what} (not shown)"),
        allowed: format!(
            "a string: put the secret in quotes, such as {name}: \"007\" (unquoted, YAML reads \
             007 as the number 7)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_their_prefix_and_never_echo_credentials() {
        let url = |t: &str| parse_base_url("k", t, "http://x:1", "a URL without credentials");
        assert_eq!(
            url("http://am:9093/am").unwrap().as_str(),
            "http://am:9093/am/"
        );
        let e = url("http://u:hunter2@am:9093").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid value for `k`: \"http://<redacted>@am:9093\"; expected a URL without credentials"
        );
        let e = url("http://am:9093/?a=1").unwrap_err().to_string();
        assert!(e.ends_with("a base URL without query or fragment, such as http://x:1"));
        assert_eq!(redact_url_text("u:p@h"), "<redacted>@h");
    }

    #[test]
    fn durations_counts_and_bools() {
        assert_eq!(
            parse_duration("k", " 1m ").unwrap(),
            Duration::from_secs(60)
        );
        assert!(
            parse_duration("k", "0s")
                .unwrap_err()
                .to_string()
                .ends_with("greater than zero")
        );
        assert_eq!(parse_count("k", None, 7).unwrap(), 7);
        assert!(parse_count("k", Some("-1"), 7).is_err());
        assert!(parse_bool("k", "true ").unwrap());
        assert!(parse_bool("k", "yes").is_err());
    }

    #[test]
    fn secrets_come_inline_or_from_the_first_line_of_a_file_never_both() {
        let dir = std::env::temp_dir().join(format!("rw-parse-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "k3y\nignored\n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\nk3y\n").unwrap();
        let read = |value: Option<&str>, file: Option<&Path>| {
            secret_or_file(
                "w.hmac_secret",
                "w.hmac_secret_file",
                value.map(str::to_owned),
                file.map(|p| p.to_string_lossy().into_owned()),
                "secret",
            )
        };
        assert!(read(None, None).unwrap().is_none());
        let (secret, from) = read(Some("inline"), None).unwrap().unwrap();
        assert_eq!((secret.expose(), from), ("inline", None));
        let (secret, from) = read(None, Some(&good)).unwrap().unwrap();
        assert_eq!(secret.expose(), "k3y");
        assert_eq!(from.as_deref(), Some(good.as_path()));
        let e = read(Some("inline"), Some(&good)).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid value for `w.hmac_secret_file`: set together with w.hmac_secret; expected only one of w.hmac_secret and w.hmac_secret_file"
        );
        let e = read(None, Some(&empty)).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid value for `w.hmac_secret_file`: ")
                && e.ends_with(
                    "(empty first line); expected a file whose first line is the secret"
                )
                && !e.contains("k3y"),
            "{e}"
        );
        let e = read(None, Some(&dir.join("absent"))).unwrap_err();
        assert!(matches!(e, ConfigError::File { ref key, .. } if key == "w.hmac_secret_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
