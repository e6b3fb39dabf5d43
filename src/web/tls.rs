//! TLS pieces of the HTTPS server: exporter-toolkit's `client_auth_type` values mapped onto
//! rustls verifiers, and the server certificate re-read when its files change.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::config::ClientAuth;

/// (key, value, allowed) of a configuration error.
type Invalid = (String, String, String);

/// The verifier for `auth`, with the client CA (`(key, PEM)`) where one is configured.
pub(super) fn client_verifier(
    auth: ClientAuth,
    client_ca: Option<(String, Vec<u8>)>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Invalid> {
    let verify = |allow_unauthenticated: bool| -> Result<Arc<dyn ClientCertVerifier>, Invalid> {
        let Some((key, pem)) = &client_ca else {
            return Err((
                "tls_server_config.client_ca_file".to_owned(),
                String::new(),
                format!(
                    "a client CA file (or `client_ca`): client_auth_type {auth:?} verifies client certificates against it"
                ),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                (
                    key.clone(),
                    format!("PEM error: {e}"),
                    "PEM certificates".to_owned(),
                )
            })?;
            roots.add(cert).map_err(|e| {
                (
                    key.clone(),
                    format!("unusable certificate: {e}"),
                    "CA certificates".to_owned(),
                )
            })?;
        }
        if roots.is_empty() {
            return Err((
                key.clone(),
                "no CERTIFICATE block".to_owned(),
                "PEM CA certificates".to_owned(),
            ));
        }
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let builder = if allow_unauthenticated {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map(|v| v as Arc<dyn ClientCertVerifier>)
            .map_err(|e| {
                (
                    key.clone(),
                    e.to_string(),
                    "CA certificates usable as client trust anchors".to_owned(),
                )
            })
    };
    match auth {
        ClientAuth::NoClientCert => Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Ok(Arc::new(AnyClientCert {
                mandatory: auth == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
        ClientAuth::VerifyClientCertIfGiven => verify(true),
        ClientAuth::RequireAndVerifyClientCert => verify(false),
    }
}

/// Go's `RequestClientCert` / `RequireAnyClientCert`: a client certificate is asked for (and
/// with `mandatory`, required) but not checked against any CA. The handshake signature is
/// still verified, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    /// Whether a client without a certificate is refused.
    mandatory: bool,
    /// The provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
}

/// How often, at most, the certificate and key files are checked for changes (on a handshake).
pub const CERT_RECHECK: Duration = Duration::from_secs(2);

/// The server certificate, re-read when its files change (as exporter-toolkit re-reads them
/// for every connection), so that a renewed certificate (cert-manager, certbot) is served
/// without a restart. A renewal that cannot be loaded (a key that does not match, a
/// half-written file) is logged and the previous certificate stays in use.
#[derive(Debug)]
pub(super) struct ReloadingCert {
    /// `cert_file` and `key_file`, resolved; `None` for inline `cert`/`key` (never reloaded).
    files: Option<(PathBuf, PathBuf)>,
    /// Loads keys.
    provider: Arc<CryptoProvider>,
    /// The certificate in use and what its files looked like.
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

/// Modification time and length of the certificate and key files.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(files: &(PathBuf, PathBuf)) -> Stamp {
    let one = |p: &PathBuf| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    [one(&files.0), one(&files.1)]
}

impl ReloadingCert {
    pub(super) fn new(
        key: CertifiedKey,
        files: Option<(PathBuf, PathBuf)>,
        provider: Arc<CryptoProvider>,
    ) -> ReloadingCert {
        let stamp = files.as_ref().map(stamp).unwrap_or_default();
        ReloadingCert {
            files,
            provider,
            state: Mutex::new(Loaded {
                key: Arc::new(key),
                stamp,
                checked: Instant::now(),
            }),
        }
    }

    fn load(&self, files: &(PathBuf, PathBuf)) -> Result<CertifiedKey, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.0)
            .and_then(Iterator::collect::<Result<_, _>>)
            .map_err(|e| format!("{}: {e}", files.0.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", files.0.display()));
        }
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&files.1)
            .map_err(|_| format!("{}: no usable private key", files.1.display()))?;
        CertifiedKey::from_der(certs, key, &self.provider).map_err(|e| e.to_string())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(files) = &self.files
            && state.checked.elapsed() >= CERT_RECHECK
        {
            state.checked = Instant::now();
            let now = stamp(files);
            if now != state.stamp {
                state.stamp = now;
                match self.load(files) {
                    Ok(key) => {
                        state.key = Arc::new(key);
                        tracing::info!(cert_file = %files.0.display(), "TLS certificate reloaded");
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate files changed but cannot be loaded; still serving the previous certificate"
                    ),
                }
            }
        }
        Some(state.key.clone())
    }
}
