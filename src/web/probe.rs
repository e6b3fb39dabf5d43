//! The HTTP client of `rabbitmq-watch probe`: TLS and basic auth to match the server's web
//! configuration.
//!
//! Which server certificate is trusted, first match wins:
//! 1. `ca_file` (`--ca-file`): ordinary verification against that CA, host name included;
//! 2. the web configuration's own certificate (`tls_server_config.cert_file` / `cert`): the
//!    probe accepts exactly that certificate (pinned, so the host name does not matter: the
//!    probe talks to the sidecar beside it, usually at 127.0.0.1, which a certificate issued
//!    for a service name does not cover).
//!
//! Credentials never come from the command line only (it is visible to every local user in
//! `ps`): the password is read from an environment variable or a file.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::WebFile;

/// What the probe needs besides the URL.
#[derive(Debug, Default)]
pub struct ProbeTls<'a> {
    /// `--ca-file`: a PEM CA bundle to verify the server against.
    pub ca_file: Option<&'a Path>,
    /// `--client-cert` and `--client-key`: a client certificate for servers that ask for one.
    pub client_cert: Option<(&'a Path, &'a Path)>,
}

/// The rustls client configuration for an `https` probe.
///
/// # Errors
/// A message naming the file or option at fault.
pub fn client_config(
    tls: &ProbeTls<'_>,
    web: Option<&WebFile>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if let Some(ca) = tls.ca_file {
        let mut roots = rustls::RootCertStore::empty();
        let certs = read_certs(ca, "--ca-file")?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "--ca-file {}: no usable CA certificate",
                ca.display()
            ));
        }
        builder.with_root_certificates(roots)
    } else if let Some(pem) = web.and_then(|w| w.cert_pem.as_deref()) {
        let leaf = CertificateDer::pem_slice_iter(pem)
            .next()
            .and_then(Result::ok)
            .ok_or("the web config's certificate cannot be read")?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                leaf,
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        return Err(
            "an https URL needs --ca-file, or a web config (--web.config.file) whose certificate the probe can trust"
                .to_owned(),
        );
    };
    let mut config = match tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = read_certs(cert, "--client-cert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| format!("--client-key {}: no usable private key", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("--client-cert/--client-key: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{option} {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{option} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{option} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The basic-auth password of the probe: `RABBITMQ_WATCH_PROBE_PASSWORD`, or the first line of
/// `password_file` (`--password-file`). `None` when neither is set.
///
/// # Errors
/// When the file cannot be read.
pub fn password(
    env: Option<String>,
    password_file: Option<&Path>,
) -> Result<Option<String>, String> {
    if let Some(p) = env {
        return Ok(Some(p));
    }
    let Some(path) = password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--password-file {}: {e}", path.display()))?;
    Ok(Some(
        text.lines()
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_owned(),
    ))
}

/// Accepts exactly one certificate (the server's own, from the web config), whatever the host
/// name; handshake signatures are still verified, so the server holds its key.
#[derive(Debug)]
struct Pinned {
    /// The accepted end-entity certificate.
    leaf: CertificateDer<'static>,
    /// The provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the one in the web config (give --ca-file)"
                    .to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
