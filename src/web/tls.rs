//! Client certificate policies for the HTTPS server: exporter-toolkit's `client_auth_type`
//! values mapped onto rustls verifiers.

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

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
