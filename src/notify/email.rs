//! Email integration: one email per [`Message`], sent over SMTP with lettre (STARTTLS, implicit
//! TLS or plain; optional AUTH PLAIN/LOGIN), with a text and an HTML body listing the alerts.
//!
//! The configuration is Alertmanager's `email_configs` vocabulary ([`RawEmail`]), validated by
//! [`EmailConfig::from_raw`]. [`Email::new`] builds one pooled SMTP transport that every
//! [`Email::notify`] reuses. `notify` makes exactly one attempt; retries are done by the caller
//! through [`super::deliver`], guided by [`NotifyError::retryable`].
//!
//! The subject follows Alertmanager's default template: `[FIRING:2] <group label values>
//! (<common labels not in the group, name=value>)`, or `[RESOLVED] ...`.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::{Message, MessageAlert, NotifyError};
use crate::config::{ConfigError, Secret, read_password_file};
use crate::util::html::escape;

/// Default `timeout` of one delivery attempt.
pub const DEFAULT_TIMEOUT: &str = "10s";

/// Longest excerpt of an SMTP server's answer kept in an error message, in characters.
const MAX_ANSWER: usize = 300;

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

        let send_resolved = match raw.send_resolved.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(invalid(&field("send_resolved"), other, "true or false")),
        };

        let timeout_text = raw.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT);
        const DURATION: &str = "a duration with a unit, such as 500ms, 15s, 1m or 1h30m";
        let timeout = humantime::parse_duration(timeout_text.trim())
            .map_err(|_| invalid(&field("timeout"), timeout_text, DURATION))?;
        if timeout.is_zero() {
            return Err(invalid(
                &field("timeout"),
                timeout_text,
                &format!("{DURATION}, greater than zero"),
            ));
        }

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
        return Err(ConfigError::Invalid {
            key: field("auth_password_file"),
            value: format!("set together with {}", field("auth_password")),
            allowed: format!(
                "only one of {} and {}",
                field("auth_password"),
                field("auth_password_file")
            ),
        });
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
        (Some(p), _) => p,
        (None, Some(path)) => read_password_file(&field("auth_password_file"), path)?,
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
        password: Secret::new(password),
        password_file,
    }))
}

/// An error about `value` (quoted) at `key`.
fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: format!("{value:?}"),
        allowed: allowed.to_owned(),
    }
}

/// An error about a required `key` that is not set.
fn missing(key: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: "missing".to_owned(),
        allowed: allowed.to_owned(),
    }
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

/// The EHLO identity for `hello`: an IP address literal or a host name.
fn hello_id(hello: &str) -> Option<ClientId> {
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

/// Whether `host` is `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A configured email integration: the validated configuration and one pooled SMTP transport
/// (connections are reused between notifications and closed after 60 s idle). Clones share
/// the transport.
#[derive(Debug, Clone)]
pub struct Email {
    /// The configuration.
    pub config: EmailConfig,
    /// The pooled transport; replaced by a fresh one after a timed-out attempt, whose
    /// connection may be left in the middle of an SMTP exchange.
    transport: Arc<RwLock<AsyncSmtpTransport<Tokio1Executor>>>,
}

impl Email {
    /// Builds the pooled SMTP transport (nothing is connected yet: the first
    /// [`Email::notify`] connects). Must be called within a Tokio runtime, which runs the
    /// pool's clean-up task. TLS uses the process's rustls crypto provider (see
    /// [`crate::install_crypto_provider`]) and the platform's certificate verifier.
    ///
    /// # Errors
    /// [`NotifyError`] (permanent, reason `invalid`) when there is no Tokio runtime or TLS
    /// cannot be set up.
    pub fn new(config: EmailConfig) -> Result<Email, NotifyError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NotifyError::permanent(
                "invalid",
                format!(
                    "smtp {}: the email notifier must be built within a Tokio runtime",
                    config.smarthost()
                ),
            ));
        }
        let transport = build_transport(&config)?;
        Ok(Email {
            config,
            transport: Arc::new(RwLock::new(transport)),
        })
    }

    /// Sends one email for `msg` to every recipient, in one attempt of at most
    /// `config.timeout`. Sends what it is given: leaving out resolved notifications when
    /// `send_resolved` is false is the caller's job.
    ///
    /// # Errors
    /// [`NotifyError`], naming the smarthost, never the credentials, with reason:
    /// - `connect` (retryable): the connection could not be made (refused, unreachable, name
    ///   not resolved, TLS handshake failed) or was lost;
    /// - `timeout` (retryable): no answer within `config.timeout`;
    /// - `smtp`: the server refused, retryable for a transient (4xx) reply, permanent for a
    ///   permanent (5xx) one (e.g. a rejected recipient or bad credentials);
    /// - `invalid` (permanent): the email could not be built;
    /// - `other` (retryable): anything else (e.g. an unexpected answer).
    pub async fn notify(&self, msg: &Message) -> Result<(), NotifyError> {
        let smarthost = self.config.smarthost();
        let email = self.build_email(msg).map_err(|e| {
            NotifyError::permanent(
                "invalid",
                format!("smtp {smarthost}: cannot build the email: {e}"),
            )
        })?;
        let transport = match self.transport.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match tokio::time::timeout(self.config.timeout, transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&smarthost, &e)),
            Err(_) => {
                // The pooled connection may be waiting for an answer that will arrive later;
                // reusing it would mismatch answers and commands. Start a fresh pool.
                if let Ok(fresh) = build_transport(&self.config) {
                    match self.transport.write() {
                        Ok(mut t) => *t = fresh,
                        Err(poisoned) => *poisoned.into_inner() = fresh,
                    }
                }
                Err(NotifyError::retryable(
                    "timeout",
                    format!(
                        "smtp {smarthost}: no answer within {}",
                        humantime::format_duration(self.config.timeout)
                    ),
                ))
            }
        }
    }

    /// The email for `msg`: headers and a multipart/alternative text + HTML body.
    fn build_email(&self, msg: &Message) -> Result<lettre::Message, lettre::error::Error> {
        let mut builder = lettre::Message::builder()
            .from(self.config.from.clone())
            .subject(subject(msg))
            .message_id(None)
            .user_agent(format!("rabbitmq-watch/{}", env!("CARGO_PKG_VERSION")));
        for to in &self.config.to {
            builder = builder.to(to.clone());
        }
        builder.multipart(MultiPart::alternative_plain_html(
            text_body(msg),
            html_body(msg),
        ))
    }
}

/// The pooled transport `config` describes.
fn build_transport(
    config: &EmailConfig,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    let tls_parameters = || {
        TlsParameters::builder(config.host.clone())
            .build_rustls()
            .map_err(|e| {
                NotifyError::permanent(
                    "invalid",
                    format!("smtp {}: cannot set up TLS: {e}", config.smarthost()),
                )
            })
    };
    let tls = match config.tls {
        EmailTls::StartTls => Tls::Required(tls_parameters()?),
        EmailTls::Tls => Tls::Wrapper(tls_parameters()?),
        EmailTls::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
        .port(config.port)
        .tls(tls)
        .timeout(Some(config.timeout))
        .pool_config(PoolConfig::new().idle_timeout(Duration::from_secs(60)));
    if let Some(id) = config.hello.as_deref().and_then(hello_id) {
        builder = builder.hello_name(id);
    }
    if let Some(auth) = &config.auth {
        builder = builder.credentials(Credentials::new(
            auth.username.clone(),
            auth.password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// The [`NotifyError`] for a failed send to `smarthost`. lettre's messages carry the server's
/// answer or the I/O error, never the credentials.
fn classify(smarthost: &str, e: &smtp::Error) -> NotifyError {
    let mut detail: String = e.to_string();
    if detail.chars().count() > MAX_ANSWER {
        detail = detail.chars().take(MAX_ANSWER).collect::<String>() + "…";
    }
    let message = format!("smtp {smarthost}: {detail}");
    if e.is_timeout() {
        NotifyError::retryable("timeout", message)
    } else if e.is_transient() {
        NotifyError::retryable("smtp", message)
    } else if e.is_permanent() {
        NotifyError::permanent("smtp", message)
    } else if is_connect_error(e) {
        NotifyError::retryable("connect", message)
    } else {
        NotifyError::retryable("other", message)
    }
}

/// Whether `e` is about making or keeping the connection: an I/O error of a connection kind
/// anywhere in its sources, or lettre's connection error kind (resolving the name, connecting,
/// TLS handshake), which lettre only exposes through its message.
fn is_connect_error(e: &smtp::Error) -> bool {
    use std::io::ErrorKind as K;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::AddrNotAvailable
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::NetworkDown
                    | K::BrokenPipe
                    | K::UnexpectedEof
            )
        {
            return true;
        }
        source = s.source();
    }
    e.to_string().starts_with("Connection error")
}

/// Alertmanager's default subject: `[FIRING:<firing alerts>]` or `[RESOLVED]`, the group
/// labels' values (sorted by label name), then the common labels not in the group labels as
/// `name=value` in parentheses. Control characters become spaces.
fn subject(msg: &Message) -> String {
    let mut parts = Vec::new();
    if msg.status == "firing" {
        let firing = msg.alerts.iter().filter(|a| a.status == "firing").count();
        parts.push(format!("[FIRING:{firing}]"));
    } else {
        parts.push(format!("[{}]", msg.status.to_uppercase()));
    }
    parts.extend(msg.group_labels.values().filter(|v| !v.is_empty()).cloned());
    let rest: Vec<String> = msg
        .common_labels
        .iter()
        .filter(|(k, _)| !msg.group_labels.contains_key(*k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !rest.is_empty() {
        parts.push(format!("({})", rest.join(" ")));
    }
    parts
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The alerts of `msg` with `status`.
fn with_status<'a>(msg: &'a Message, status: &'a str) -> impl Iterator<Item = &'a MessageAlert> {
    msg.alerts.iter().filter(move |a| a.status == status)
}

/// Annotations shown under their own heading before the others.
const MAIN_ANNOTATIONS: [&str; 2] = ["summary", "description"];

/// The text/plain body: the subject, then each alert (firing first, then resolved) with its
/// summary, description, labels, other annotations, start/end and source link.
fn text_body(msg: &Message) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", subject(msg));
    let _ = writeln!(out, "Receiver: {}", msg.receiver);
    if !msg.group_labels.is_empty() {
        let group: Vec<String> = msg
            .group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "Group: {}", group.join(" "));
    }
    if !msg.external_url.is_empty() {
        let _ = writeln!(out, "Sent by: {}", msg.external_url);
    }
    for (status, title) in [("firing", "Firing"), ("resolved", "Resolved")] {
        let alerts: Vec<&MessageAlert> = with_status(msg, status).collect();
        if alerts.is_empty() {
            continue;
        }
        let heading = format!("{title} alerts ({})", alerts.len());
        let _ = writeln!(out, "\n{heading}\n{}", "=".repeat(heading.chars().count()));
        for (i, a) in alerts.iter().enumerate() {
            let name = a.labels.get("alertname").map_or("", String::as_str);
            let _ = writeln!(out, "\n{}. [{}] {name}", i + 1, a.status.to_uppercase());
            for key in MAIN_ANNOTATIONS {
                if let Some(v) = a.annotations.get(key) {
                    let label = if key == "summary" {
                        "Summary"
                    } else {
                        "Description"
                    };
                    let _ = writeln!(out, "   {label}: {}", indent(v, "     "));
                }
            }
            let _ = writeln!(out, "   Labels:");
            for (k, v) in &a.labels {
                let _ = writeln!(out, "     {k} = {}", indent(v, "       "));
            }
            let others: Vec<_> = a
                .annotations
                .iter()
                .filter(|(k, _)| !MAIN_ANNOTATIONS.contains(&k.as_str()))
                .collect();
            if !others.is_empty() {
                let _ = writeln!(out, "   Annotations:");
                for (k, v) in others {
                    let _ = writeln!(out, "     {k} = {}", indent(v, "       "));
                }
            }
            let _ = writeln!(out, "   Started: {}", a.starts_at);
            if a.status == "resolved" {
                let _ = writeln!(out, "   Ended: {}", a.ends_at);
            }
            let _ = writeln!(out, "   Source: {}", a.generator_url);
        }
    }
    out
}

/// `text` with every line after the first prefixed by `prefix`.
fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{prefix}"))
}

/// The text/html body: the same content as [`text_body`], every value HTML-escaped.
fn html_body(msg: &Message) -> String {
    let mut out = String::new();
    let title = escape(&subject(msg));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: sans-serif; font-size: 14px;\">\n<h2>{title}</h2>\n"
    );
    let _ = writeln!(out, "<p>Receiver: {}", escape(&msg.receiver));
    if !msg.group_labels.is_empty() {
        let group: Vec<String> = msg
            .group_labels
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        let _ = write!(out, "<br>Group: {}", group.join(" "));
    }
    if !msg.external_url.is_empty() {
        let _ = write!(out, "<br>Sent by: {}", link(&msg.external_url));
    }
    out.push_str("</p>\n");
    for (status, title, color) in [
        ("firing", "Firing", "#d9534f"),
        ("resolved", "Resolved", "#5cb85c"),
    ] {
        let alerts: Vec<&MessageAlert> = with_status(msg, status).collect();
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<h3 style=\"color: {color};\">{title} alerts ({})</h3>",
            alerts.len()
        );
        for a in alerts {
            let name = a.labels.get("alertname").map_or("", String::as_str);
            let _ = writeln!(
                out,
                "<table style=\"border-collapse: collapse; margin-bottom: 16px;\" cellpadding=\"4\">\n\
                 <tr><th colspan=\"2\" style=\"text-align: left; background: {color}; color: #fff;\">[{}] {}</th></tr>",
                escape(&a.status.to_uppercase()),
                escape(name)
            );
            let row = |out: &mut String, k: &str, v: &str| {
                let _ = writeln!(
                    out,
                    "<tr><td style=\"vertical-align: top;\"><b>{k}</b></td>\
                     <td style=\"white-space: pre-wrap;\">{v}</td></tr>"
                );
            };
            for key in MAIN_ANNOTATIONS {
                if let Some(v) = a.annotations.get(key) {
                    let label = if key == "summary" {
                        "Summary"
                    } else {
                        "Description"
                    };
                    row(&mut out, label, &escape(v));
                }
            }
            let labels: Vec<String> = a
                .labels
                .iter()
                .map(|(k, v)| format!("{} = {}", escape(k), escape(v)))
                .collect();
            row(&mut out, "Labels", &labels.join("<br>"));
            let others: Vec<String> = a
                .annotations
                .iter()
                .filter(|(k, _)| !MAIN_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| format!("{} = {}", escape(k), escape(v)))
                .collect();
            if !others.is_empty() {
                row(&mut out, "Annotations", &others.join("<br>"));
            }
            row(&mut out, "Started", &escape(&a.starts_at));
            if a.status == "resolved" {
                row(&mut out, "Ended", &escape(&a.ends_at));
            }
            row(&mut out, "Source", &link(&a.generator_url));
            out.push_str("</table>\n");
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// `url` as a link when it is http(s), else as escaped text.
fn link(url: &str) -> String {
    let url = escape(url);
    if url.starts_with("http://") || url.starts_with("https://") {
        format!("<a href=\"{url}\">{url}</a>")
    } else {
        url
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use std::path::Path;

    use super::*;
    use crate::notify::NO_END;

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

    fn alert(status: &str, queue: &str, summary: &str) -> MessageAlert {
        let labels = [
            ("alertname", "RabbitmqQueueMessagesReady"),
            ("severity", "warning"),
            ("vhost", "/"),
            ("queue", queue),
        ];
        MessageAlert {
            status: status.into(),
            labels: labels.map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
            annotations: [
                ("summary".to_owned(), summary.to_owned()),
                (
                    "description".to_owned(),
                    "Ready messages <b>grow</b> & grow".to_owned(),
                ),
            ]
            .into(),
            starts_at: "2026-01-01T00:00:00.000Z".into(),
            ends_at: if status == "resolved" {
                "2026-01-01T00:10:00.000Z".into()
            } else {
                NO_END.into()
            },
            generator_url: "http://watch:9419/api/v1/alerts".into(),
            fingerprint: "0123456789abcdef".into(),
        }
    }

    fn message(group_by: &[&str], alerts: Vec<MessageAlert>) -> Message {
        let group_labels: BTreeMap<String, String> = group_by
            .iter()
            .map(|k| ((*k).to_owned(), alerts[0].labels[*k].clone()))
            .collect();
        Message::new("team", "{}:{}", group_labels, alerts, "http://watch:9419")
    }

    #[test]
    fn subject_is_status_count_group_values_then_other_common_labels() {
        let m = message(
            &["alertname"],
            vec![
                alert("firing", "orders", "a"),
                alert("firing", "orders", "b"),
                alert("resolved", "orders", "c"),
            ],
        );
        assert_eq!(
            subject(&m),
            "[FIRING:2] RabbitmqQueueMessagesReady (queue=orders severity=warning vhost=/)"
        );
        let m = message(
            &["alertname", "vhost"],
            vec![
                alert("firing", "orders", "a"),
                alert("firing", "billing", "b"),
            ],
        );
        assert_eq!(
            subject(&m),
            "[FIRING:2] RabbitmqQueueMessagesReady / (severity=warning)"
        );
        let m = message(&["alertname"], vec![alert("resolved", "orders", "a")]);
        assert_eq!(
            subject(&m),
            "[RESOLVED] RabbitmqQueueMessagesReady (queue=orders severity=warning vhost=/)"
        );
        let mut m = message(&[], vec![alert("firing", "new\nline", "a")]);
        m.common_labels.retain(|k, _| k == "queue");
        assert_eq!(subject(&m), "[FIRING:1] (queue=new line)");
    }

    #[test]
    fn bodies_list_every_alert_and_html_escapes_values() {
        let m = message(
            &["alertname"],
            vec![
                alert("firing", "orders", "Queue orders is <late>"),
                alert("resolved", "billing", "Queue billing is back"),
            ],
        );
        let text = text_body(&m);
        for needle in [
            "Firing alerts (1)",
            "Resolved alerts (1)",
            "Summary: Queue orders is <late>",
            "Description: Ready messages <b>grow</b> & grow",
            "queue = orders",
            "queue = billing",
            "Started: 2026-01-01T00:00:00.000Z",
            "Ended: 2026-01-01T00:10:00.000Z",
            "Source: http://watch:9419/api/v1/alerts",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
        let html = html_body(&m);
        assert!(html.contains("Queue orders is &lt;late&gt;"), "{html}");
        assert!(html.contains("Ready messages &lt;b&gt;grow&lt;/b&gt; &amp; grow"));
        assert!(!html.contains("<late>") && !html.contains("<b>grow"));
        assert!(html.contains(
            "<a href=\"http://watch:9419/api/v1/alerts\">http://watch:9419/api/v1/alerts</a>"
        ));
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(link("javascript:alert(1)"), "javascript:alert(1)");
    }

    #[test]
    fn new_needs_a_tokio_runtime() {
        let e = Email::new(EmailConfig::from_raw(raw(), KEY).unwrap()).unwrap_err();
        assert!(!e.retryable);
        assert_eq!(e.reason, "invalid");
        assert!(e.message.contains("smtp.example.com:587"), "{}", e.message);
    }

    #[tokio::test]
    async fn new_builds_tls_transports_without_connecting() {
        crate::install_crypto_provider();
        for tls in ["starttls", "tls", "none"] {
            let config = EmailConfig::from_raw(
                RawEmail {
                    tls: Some(tls.into()),
                    ..raw()
                },
                KEY,
            )
            .unwrap();
            let email = Email::new(config).unwrap();
            assert_eq!(email.config.tls.as_str(), tls);
        }
    }
}
