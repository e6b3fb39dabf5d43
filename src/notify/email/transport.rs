//! The SMTP side of the email integration: the pooled lettre transport an [`EmailConfig`]
//! describes (TLS mode, EHLO name, credentials, timeout) and the classification of lettre's
//! errors into retryable or permanent [`NotifyError`]s.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::config::email::{EmailConfig, EmailTls, hello_id};
use crate::notify::NotifyError;

/// Longest excerpt of an SMTP server's answer kept in an error message, in characters.
const MAX_ANSWER: usize = 300;

/// The pooled transport `config` describes.
pub(super) fn build_transport(
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
pub(super) fn classify(smarthost: &str, e: &smtp::Error) -> NotifyError {
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
