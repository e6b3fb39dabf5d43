//! A receiver's `email_configs` entry, in Alertmanager's vocabulary: [`RawEmail`] as written,
//! validated into [`EmailConfig`] for the email integration (`notify::email`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;
use serde::Deserialize;

use super::ConfigError;
use super::parse::{
    both_set, invalid, is_loopback, missing, parse_bool, parse_duration, read_secret_file,
};
use crate::types::Secret;

/// Default `timeout` of one delivery attempt.
pub const DEFAULT_TIMEOUT: &str = "10s";

/// An `email_configs` entry as written in YAML: every value is text, checked by
/// [`EmailConfig::from_raw`]. `Debug` never prints `auth_password`.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawEmail {
    /// `to`: recipients, each an address such as `ops@example.com` or
    /// `Ops <ops@example.com>`. Required, at least one.
    pub to: Vec<String>,
    /// `from`: the sender, same forms as `to`. Required.
    pub from: Option<String>,
    /// `smarthost`: the SMTP server as `host:port` (`[IPv6]:port` for an IPv6 address).
    /// Required.
    pub smarthost: Option<String>,
    /// `hello`: the name sent with EHLO, a host name or an IP address. Default: this machine's
    /// host name.
    pub hello: Option<String>,
    /// `auth_username`: user for SMTP AUTH (PLAIN or LOGIN, whichever the server offers first).
    /// Default: no authentication.
    pub auth_username: Option<String>,
    /// `auth_password`: password for SMTP AUTH. Exclusive with `auth_password_file`.
    pub auth_password: Option<String>,
    /// `auth_password_file`: file whose first line is the password, read when the
    /// configuration is loaded. Exclusive with `auth_password`.
    pub auth_password_file: Option<String>,
    /// `tls`: `starttls` (default: plain connection upgraded with STARTTLS, which the server
    /// must offer), `tls` (implicit TLS from the start, usually port 465) or `none`.
    pub tls: Option<String>,
    /// `send_resolved`: `true` or `false` (default, as in Alertmanager).
    pub send_resolved: Option<String>,
    /// `timeout`: limit of one delivery attempt (connect, TLS, SMTP dialogue), a duration with a
    /// unit such as `10s` (default).
    pub timeout: Option<String>,
}

impl fmt::Debug for RawEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEmail")
            .field("to", &self.to)
            .field("from", &self.from)
            .field("smarthost", &self.smarthost)
            .field("hello", &self.hello)
            .field("auth_username", &self.auth_username)
            .field(
                "auth_password",
                &self.auth_password.as_ref().map(|_| "<redacted>"),
            )
            .field("auth_password_file", &self.auth_password_file)
            .field("tls", &self.tls)
            .field("send_resolved", &self.send_resolved)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How the connection to the smarthost is secured (`tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// `starttls`: connect in plain text, then upgrade with STARTTLS before anything else is
    /// sent; fails if the server does not offer it. The default.
    StartTls,
    /// `tls`: TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// `none`: no encryption at all.
    None,
}

impl EmailTls {
    /// The configuration value: `starttls`, `tls` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTls::StartTls => "starttls",
            EmailTls::Tls => "tls",
            EmailTls::None => "none",
        }
    }
}

/// SMTP AUTH credentials. `Debug` never prints the password.
#[derive(Debug, Clone)]
pub struct EmailAuth {
    /// `auth_username`.
    pub username: String,
    /// `auth_password`, or the first line of `auth_password_file`.
    pub password: Secret,
    /// `auth_password_file`: where the password was read from, if it was.
    pub password_file: Option<PathBuf>,
}

/// A validated `email_configs` entry.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `to`: the recipients (at least one), in `To` and in the envelope.
    pub to: Vec<Mailbox>,
    /// `from`: the sender, in `From` and in the envelope.
    pub from: Mailbox,
    /// Host part of `smarthost`: a name or an IP address (IPv6 without brackets).
    pub host: String,
    /// Port part of `smarthost`.
    pub port: u16,
    /// `hello`: the EHLO name; `None` means this machine's host name.
    pub hello: Option<String>,
    /// `auth_*`: SMTP AUTH credentials; `None` means no authentication.
    pub auth: Option<EmailAuth>,
    /// `tls`: how the connection is secured. Default [`EmailTls::StartTls`].
    pub tls: EmailTls,
    /// `send_resolved`: whether the dispatcher also sends notifications whose alerts have all
    /// resolved. Default `false`.
    pub send_resolved: bool,
    /// `timeout`: limit of one delivery attempt, connect included. Default 10 s.
    pub timeout: Duration,
}

impl EmailConfig {
    /// Validates `raw`; `key` is its dotted key, e.g. `notify.receivers[0].email_configs[1]`,
    /// and errors name `{key}.{field}` (`{key}.to[i]` for one recipient). Reads
    /// `auth_password_file` if given.
    ///
    /// Authentication with `tls: none` is accepted only towards a loopback smarthost
    /// (`localhost`, `127.0.0.0/8`, `::1`): elsewhere the password would cross the network in
    /// clear text.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key, the value (never a password) and what is
    /// allowed; [`ConfigError::File`] when `auth_password_file` cannot be read.
    pub fn from_raw(raw: RawEmail, key: &str) -> Result<EmailConfig, ConfigError> {
        let field = |name: &str| format!("{key}.{name}");
        const ADDRESS: &str = "an email address such as ops@example.com or Ops <ops@example.com>";

        if raw.to.is_empty() {
            return Err(missing(
                &field("to"),
                "a list of at least one email address, e.g. [ops@example.com]",
            ));
        }
        let to = raw
            .to
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse_mailbox(text).ok_or_else(|| {
                    invalid(
                        &field(&format!("to[{i}]")),
                        text,
                        &format!("{ADDRESS}, one per list entry"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let from_text = raw
            .from
            .as_deref()
            .ok_or_else(|| missing(&field("from"), ADDRESS))?;
        let from =
            parse_mailbox(from_text).ok_or_else(|| invalid(&field("from"), from_text, ADDRESS))?;

        const SMARTHOST: &str =
            "host:port, such as smtp.example.com:587, 192.0.2.1:25 or [2001:db8::1]:25";
        let smarthost_text = raw
            .smarthost
            .as_deref()
            .ok_or_else(|| missing(&field("smarthost"), SMARTHOST))?;
        let (host, port) = parse_smarthost(smarthost_text)
            .ok_or_else(|| invalid(&field("smarthost"), smarthost_text, SMARTHOST))?;

        let hello = match raw.hello {
            Some(h) if hello_id(&h).is_some() => Some(h),
            Some(h) => {
                return Err(invalid(
                    &field("hello"),
                    &h,
                    "a host name such as mail.example.com, or an IP address",
                ));
            }
            None => None,
        };

        let auth = validate_auth(
            raw.auth_username,
            raw.auth_password,
            raw.auth_password_file,
            &field,
        )?;

        let tls = match raw.tls.as_deref().map(str::trim) {
            None | Some("starttls") => EmailTls::StartTls,
            Some("tls") => EmailTls::Tls,
            Some("none") => EmailTls::None,
            Some(other) => {
                return Err(invalid(&field("tls"), other, "one of: starttls, tls, none"));
            }
        };
        if tls == EmailTls::None && auth.is_some() && !is_loopback(&host) {
            return Err(invalid(
                &field("tls"),
                "none",
                "starttls or tls when auth_username is set and the smarthost is not a loopback \
                 address (the password would cross the network in clear text)",
            ));
        }

        let send_resolved = parse_bool(
            &field("send_resolved"),
            raw.send_resolved.as_deref().unwrap_or("false"),
        )?;
        let timeout = parse_duration(
            &field("timeout"),
            raw.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT),
        )?;

        Ok(EmailConfig {
            to,
            from,
            host,
            port,
            hello,
            auth,
            tls,
            send_resolved,
            timeout,
        })
    }

    /// The smarthost as `host:port` (`[IPv6]:port`), for messages.
    pub fn smarthost(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Checks the `auth_*` fields together.
fn validate_auth(
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    field: &dyn Fn(&str) -> String,
) -> Result<Option<EmailAuth>, ConfigError> {
    if password.is_some() && password_file.is_some() {
        return Err(both_set(
            &field("auth_password"),
            &field("auth_password_file"),
        ));
    }
    let Some(username) = username else {
        if password.is_some() || password_file.is_some() {
            return Err(missing(
                &field("auth_username"),
                "a user name when a password is set",
            ));
        }
        return Ok(None);
    };
    if username.is_empty() {
        return Err(invalid(
            &field("auth_username"),
            "",
            "a non-empty user name (leave the key out for no authentication)",
        ));
    }
    let password_file = password_file.map(PathBuf::from);
    let password = match (password, &password_file) {
        (Some(p), _) if p.is_empty() => {
            return Err(ConfigError::Invalid {
                key: field("auth_password"),
                value: "empty".to_owned(),
                allowed: "a non-empty password".to_owned(),
            });
        }
        (Some(p), _) => Secret::new(p),
        (None, Some(path)) => read_secret_file(&field("auth_password_file"), path, "password")?,
        (None, None) => {
            return Err(missing(
                &field("auth_password"),
                &format!(
                    "a password ({} or {}) since auth_username is set",
                    field("auth_password"),
                    field("auth_password_file")
                ),
            ));
        }
    };
    Ok(Some(EmailAuth {
        username,
        password,
        password_file,
    }))
}

/// One mailbox, `a@b` or `Name <a@b>` (lettre's parser refuses anything more, such as a
/// second address).
fn parse_mailbox(text: &str) -> Option<Mailbox> {
    text.trim().parse().ok()
}

/// `host:port` → (host, port); the host of `[v6]:port` is returned without brackets.
fn parse_smarthost(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        inner.parse::<Ipv6Addr>().ok()?;
        inner
    } else {
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return None;
        }
        host
    };
    Some((host.to_owned(), port))
}

/// The EHLO identity for `hello`: an IP address literal or a host name; `None` when it is
/// neither.
pub fn hello_id(hello: &str) -> Option<ClientId> {
    match hello.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Some(ClientId::Ipv4(ip)),
        Ok(IpAddr::V6(ip)) => Some(ClientId::Ipv6(ip)),
        Err(_) => {
            let ok = !hello.is_empty()
                && hello
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            ok.then(|| ClientId::Domain(hello.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const KEY: &str = "notify.receivers[0].email_configs[1]";

    fn raw() -> RawEmail {
        RawEmail {
            to: vec!["ops@example.com".into(), "Team <team@example.com>".into()],
            from: Some("rabbitmq-watch@example.com".into()),
            smarthost: Some("smtp.example.com:587".into()),
            ..RawEmail::default()
        }
    }

    fn err(raw: RawEmail) -> String {
        EmailConfig::from_raw(raw, KEY)
            .expect_err("accepted")
            .to_string()
    }

    #[test]
    fn defaults_are_alertmanager_defaults() {
        let c = EmailConfig::from_raw(raw(), KEY).unwrap();
        assert_eq!(c.to.len(), 2);
        assert_eq!(c.to[1].to_string(), "Team <team@example.com>");
        assert_eq!((c.host.as_str(), c.port), ("smtp.example.com", 587));
        assert_eq!(c.tls, EmailTls::StartTls);
        assert!(!c.send_resolved);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(c.hello.is_none() && c.auth.is_none());
    }

    #[test]
    fn missing_and_malformed_values_name_the_key_value_and_what_is_allowed() {
        assert_eq!(
            err(RawEmail {
                to: vec![],
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].to`: missing; expected a \
             list of at least one email address, e.g. [ops@example.com]"
        );
        assert_eq!(
            err(RawEmail {
                to: vec![
                    "ops@example.com".into(),
                    "a@example.com, b@example.com".into()
                ],
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].to[1]`: \
             \"a@example.com, b@example.com\"; expected an email address such as \
             ops@example.com or Ops <ops@example.com>, one per list entry"
        );
        assert_eq!(
            err(RawEmail {
                from: None,
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].from`: missing; expected an \
             email address such as ops@example.com or Ops <ops@example.com>"
        );
        assert_eq!(
            err(RawEmail {
                smarthost: Some("smtp.example.com".into()),
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].smarthost`: \
             \"smtp.example.com\"; expected host:port, such as smtp.example.com:587, \
             192.0.2.1:25 or [2001:db8::1]:25"
        );
        assert_eq!(
            err(RawEmail {
                tls: Some("ssl".into()),
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].tls`: \"ssl\"; expected one \
             of: starttls, tls, none"
        );
        assert_eq!(
            err(RawEmail {
                timeout: Some("soon".into()),
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].timeout`: \"soon\"; expected \
             a duration with a unit, such as 500ms, 15s, 1m or 1h30m"
        );
        assert_eq!(
            err(RawEmail {
                send_resolved: Some("yes".into()),
                ..raw()
            }),
            "invalid value for `notify.receivers[0].email_configs[1].send_resolved`: \"yes\"; \
             expected true or false"
        );
        for (field, value) in [
            ("smarthost", "smtp.example.com:smtp"),
            ("smarthost", "smtp.example.com:0"),
            ("smarthost", ":25"),
            ("smarthost", "2001:db8::1:25"),
            ("smarthost", "user@smtp.example.com:25"),
            ("hello", "my host"),
            ("hello", ""),
            ("timeout", "0s"),
            ("from", "not an address"),
        ] {
            let mut r = raw();
            match field {
                "smarthost" => r.smarthost = Some(value.into()),
                "hello" => r.hello = Some(value.into()),
                "timeout" => r.timeout = Some(value.into()),
                _ => r.from = Some(value.into()),
            }
            let e = err(r);
            assert!(
                e.starts_with(&format!(
                    "invalid value for `{KEY}.{field}`: {value:?}; expected "
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn ipv6_smarthosts_and_hello_addresses_are_accepted() {
        let c = EmailConfig::from_raw(
            RawEmail {
                smarthost: Some("[2001:db8::1]:25".into()),
                hello: Some("192.0.2.7".into()),
                ..raw()
            },
            KEY,
        )
        .unwrap();
        assert_eq!(c.host, "2001:db8::1");
        assert_eq!(c.smarthost(), "[2001:db8::1]:25");
        assert!(matches!(hello_id("192.0.2.7"), Some(ClientId::Ipv4(_))));
        assert!(matches!(
            hello_id("mail.example.com"),
            Some(ClientId::Domain(_))
        ));
    }

    #[test]
    fn passwords_are_checked_without_being_echoed() {
        let secret = "s3cr3t-Pa55";
        let both = err(RawEmail {
            auth_username: Some("alerts".into()),
            auth_password: Some(secret.into()),
            auth_password_file: Some("/run/secrets/smtp".into()),
            ..raw()
        });
        assert_eq!(
            both,
            "invalid value for `notify.receivers[0].email_configs[1].auth_password_file`: set \
             together with notify.receivers[0].email_configs[1].auth_password; expected only one \
             of notify.receivers[0].email_configs[1].auth_password and \
             notify.receivers[0].email_configs[1].auth_password_file"
        );
        let no_user = err(RawEmail {
            auth_password: Some(secret.into()),
            ..raw()
        });
        assert_eq!(
            no_user,
            "invalid value for `notify.receivers[0].email_configs[1].auth_username`: missing; \
             expected a user name when a password is set"
        );
        let no_password = err(RawEmail {
            auth_username: Some("alerts".into()),
            ..raw()
        });
        assert!(
            no_password.contains(".auth_password`: missing"),
            "{no_password}"
        );
        let clear_text = err(RawEmail {
            auth_username: Some("alerts".into()),
            auth_password: Some(secret.into()),
            tls: Some("none".into()),
            ..raw()
        });
        assert!(clear_text.starts_with(&format!("invalid value for `{KEY}.tls`: \"none\"")));
        for e in [both, no_user, clear_text] {
            assert!(!e.contains(secret), "{e}");
        }
        // Loopback is fine in clear text (a local relay).
        let local = EmailConfig::from_raw(
            RawEmail {
                auth_username: Some("alerts".into()),
                auth_password: Some(secret.into()),
                tls: Some("none".into()),
                smarthost: Some("127.0.0.1:25".into()),
                ..raw()
            },
            KEY,
        )
        .unwrap();
        assert!(!format!("{local:?}").contains(secret));
        let raw_debug = format!(
            "{:?}",
            RawEmail {
                auth_password: Some(secret.into()),
                ..raw()
            }
        );
        assert!(!raw_debug.contains(secret), "{raw_debug}");
    }

    #[test]
    fn password_file_first_line_is_the_password() {
        let dir = std::env::temp_dir().join(format!("rabbitmq-watch-email-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "from-file\nignored\n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\nsecond-line\n").unwrap();
        let with = |path: &Path| RawEmail {
            auth_username: Some("alerts".into()),
            auth_password_file: Some(path.to_string_lossy().into_owned()),
            ..raw()
        };
        let c = EmailConfig::from_raw(with(&good), KEY).unwrap();
        let auth = c.auth.unwrap();
        assert_eq!(auth.password.expose(), "from-file");
        assert_eq!(auth.password_file.as_deref(), Some(good.as_path()));
        let e = err(with(&empty));
        assert!(
            e.starts_with(&format!("invalid value for `{KEY}.auth_password_file`: ")),
            "{e}"
        );
        assert!(
            e.ends_with("(empty first line); expected a file whose first line is the password")
        );
        let e = EmailConfig::from_raw(with(&dir.join("absent")), KEY).unwrap_err();
        assert!(
            matches!(e, ConfigError::File { ref key, .. } if key == &format!("{KEY}.auth_password_file"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e =
            serde_json::from_str::<RawEmail>(r#"{"to": ["a@example.com"], "requier_tls": "true"}"#)
                .unwrap_err();
        assert!(e.to_string().contains("requier_tls"), "{e}");
    }
}
