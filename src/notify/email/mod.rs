//! Email integration: one email per [`Message`], sent over SMTP with lettre (STARTTLS, implicit
//! TLS or plain; optional AUTH PLAIN/LOGIN), with a text and an HTML body listing the alerts.
//!
//! The configuration is Alertmanager's `email_configs` vocabulary ([`RawEmail`]), validated by
//! [`EmailConfig::from_raw`] (both in [`crate::config::email`]). [`Email::new`] builds one
//! pooled SMTP transport ([`transport`]) that every [`Email::notify`] reuses; the subject and
//! bodies are rendered by [`render`]. `notify` makes exactly one attempt; retries are done by
//! the caller through [`super::deliver`], guided by [`NotifyError::retryable`].
//!
//! The subject follows Alertmanager's default template: `[FIRING:2] <group label values>
//! (<common labels not in the group, name=value>)`, or `[RESOLVED] ...`.

pub mod render;
pub mod transport;

use std::sync::{Arc, RwLock};

use lettre::message::MultiPart;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Message, NotifyError};
pub use crate::config::email::{DEFAULT_TIMEOUT, EmailAuth, EmailConfig, EmailTls, RawEmail};
use render::{html_body, subject, text_body};
use transport::{build_transport, classify};

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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "notify.receivers[0].email_configs[1]";

    fn raw() -> RawEmail {
        RawEmail {
            to: vec!["ops@example.com".into()],
            from: Some("rabbitmq-watch@example.com".into()),
            smarthost: Some("smtp.example.com:587".into()),
            ..RawEmail::default()
        }
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
