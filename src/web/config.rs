//! The web configuration file (`--web.config.file`, `web.config_file`), in the format of
//! Prometheus's exporter-toolkit, so that a file written for node_exporter works unchanged:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # or `cert:` with the PEM text
//!   key_file: server.key           # or `key:`
//!   client_ca_file: clients-ca.crt # or `client_ca:`
//!   client_auth_type: RequireAndVerifyClientCert
//!   min_version: TLS12             # TLS10 and TLS11 are read as TLS12: rustls has nothing older
//!   max_version: TLS13
//!   cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]  # TLS 1.2 only, as in Go
//!   curve_preferences: [X25519, CurveP256]
//!   prefer_server_cipher_suites: true
//! http_server_config:
//!   http2: true                    # accepted; the server speaks HTTP/1.1
//!   headers: {X-Frame-Options: deny}
//! basic_auth_users:
//!   alice: $2y$10$…                # bcrypt hash (htpasswd -nBC 10 alice)
//! ```
//!
//! As in exporter-toolkit: relative paths are relative to the file's directory; TLS is on when
//! any `tls_server_config` key is set, and then needs a certificate and a key; a client CA
//! without a `client_auth_type` that asks for certificates is an error; only the headers
//! exporter-toolkit allows can be added. Unlike it: `client_allowed_sans` and `rate_limit` are
//! refused (not implemented, and ignoring a security setting silently is worse), and the
//! verifying client auth types need a client CA (Go would fall back to the system roots).
//! The file is read once at start-up; only the certificate and key files it names are re-read
//! when they change (see `tls.rs`). Unknown keys are an error naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use yaml_rust2::Yaml;

/// Why the web configuration file cannot be used. Every message starts with the file's path
/// and names the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file (or a file it names) cannot be read.
    #[error("web config file {path}: cannot read {what}: {source}")]
    Read {
        /// The web configuration file.
        path: PathBuf,
        /// What was read: the file itself or `key` (file).
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("web config file {path}: not valid YAML: {detail}")]
    Yaml {
        /// The web configuration file.
        path: PathBuf,
        /// The parser's message (line and column).
        detail: String,
    },
    /// A key that exporter-toolkit does not have.
    #[error("web config file {path}: unknown key `{key}`; expected one of: {allowed}")]
    UnknownKey {
        /// The web configuration file.
        path: PathBuf,
        /// Dotted key, e.g. `tls_server_config.certfile`.
        key: String,
        /// The keys allowed at that place.
        allowed: String,
    },
    /// A key with a value outside what is allowed.
    #[error("web config file {path}: invalid value for `{key}`: {value}; expected {allowed}")]
    Invalid {
        /// The web configuration file.
        path: PathBuf,
        /// Dotted key.
        key: String,
        /// The offending value (quoted), or a description where it is a secret.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// Which client certificates the server asks for (`tls_server_config.client_auth_type`),
/// with Go's `crypto/tls` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (default): none asked for.
    NoClientCert,
    /// `RequestClientCert`: asked for, not required, not verified.
    RequestClientCert,
    /// `RequireAnyClientCert` (or the old `RequireClientCert`): required, not verified.
    RequireAnyClientCert,
    /// `VerifyClientCertIfGiven`: not required; verified against the client CA if given.
    VerifyClientCertIfGiven,
    /// `RequireAndVerifyClientCert`: required and verified against the client CA.
    RequireAndVerifyClientCert,
}

const CLIENT_AUTH_TYPES: &str = "one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert";

/// The HTTP headers exporter-toolkit lets a web config add, with the values it allows
/// (empty: any value).
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// The validated web configuration file.
#[derive(Clone)]
pub struct WebFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The TLS server configuration, when `tls_server_config` turns TLS on.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The server's certificate chain (PEM text as read), when TLS is on: what `probe` trusts
    /// when no CA is given.
    pub cert_pem: Option<Vec<u8>>,
    /// The client certificate policy (meaningful when `tls` is set).
    pub client_auth: ClientAuth,
    /// `basic_auth_users`: user name → bcrypt hash. Empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// `http_server_config.headers`, added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Remarks about settings read differently from Go (e.g. `min_version: TLS10`), to log.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for WebFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The users' hashes are not printed: a hash is a brute-force target.
        f.debug_struct("WebFile")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Reads a YAML mapping, checking every key against `allowed`.
struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn invalid(&self, key: &str, value: &str, allowed: &str) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            value: format!("{value:?}"),
            allowed: allowed.to_owned(),
        }
    }

    /// The entries of the mapping at `key` (`""` for the top level); null or absent is empty.
    fn mapping<'y>(
        &self,
        node: &'y Yaml,
        key: &str,
        allowed: Option<&[&str]>,
    ) -> Result<Vec<(String, &'y Yaml)>, WebConfigError> {
        let hash = match node {
            Yaml::Null | Yaml::BadValue => return Ok(Vec::new()),
            Yaml::Hash(h) => h,
            other => {
                return Err(self.invalid(
                    if key.is_empty() { "(top level)" } else { key },
                    &describe(other),
                    "a mapping of keys to values",
                ));
            }
        };
        let mut out = Vec::with_capacity(hash.len());
        for (k, v) in hash {
            let Some(name) = scalar_text(k) else {
                return Err(self.invalid(key, &describe(k), "text keys"));
            };
            let dotted = if key.is_empty() {
                name.clone()
            } else {
                format!("{key}.{name}")
            };
            if let Some(allowed) = allowed
                && !allowed.contains(&name.as_str())
            {
                return Err(WebConfigError::UnknownKey {
                    path: self.path.to_owned(),
                    key: dotted,
                    allowed: allowed.join(", "),
                });
            }
            out.push((name, v));
        }
        Ok(out)
    }

    /// A scalar as text (numbers and booleans too, as Go's YAML does for string fields).
    fn text(&self, key: &str, node: &Yaml) -> Result<Option<String>, WebConfigError> {
        match node {
            Yaml::Null => Ok(None),
            other => scalar_text(other)
                .map(Some)
                .ok_or_else(|| self.invalid(key, &describe(other), "a text value")),
        }
    }

    fn boolean(&self, key: &str, node: &Yaml) -> Result<Option<bool>, WebConfigError> {
        match node {
            Yaml::Null => Ok(None),
            Yaml::Boolean(b) => Ok(Some(*b)),
            other => Err(self.invalid(key, &describe(other), "true or false")),
        }
    }

    fn list(&self, key: &str, node: &Yaml) -> Result<Vec<String>, WebConfigError> {
        match node {
            Yaml::Null => Ok(Vec::new()),
            Yaml::Array(items) => items
                .iter()
                .map(|i| {
                    self.text(key, i)?
                        .ok_or_else(|| self.invalid(key, "null", "a list of text values"))
                })
                .collect(),
            other => Err(self.invalid(key, &describe(other), "a list of text values")),
        }
    }

    /// Reads a file named by `key`, relative to the web config file's directory.
    fn read_file(&self, key: &str, name: &str) -> Result<Vec<u8>, WebConfigError> {
        let path = self.resolve(name);
        std::fs::read(&path).map_err(|source| WebConfigError::Read {
            path: self.path.to_owned(),
            what: format!("`{key}` file {}", path.display()),
            source,
        })
    }

    fn resolve(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

fn scalar_text(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(node: &Yaml) -> String {
    match node {
        Yaml::Array(_) => "a list".to_owned(),
        Yaml::Hash(_) => "a mapping".to_owned(),
        Yaml::Null => "null".to_owned(),
        Yaml::Alias(_) | Yaml::BadValue => "an unresolved alias".to_owned(),
        other => scalar_text(other).unwrap_or_default(),
    }
}

/// `tls_server_config` as written, before the certificates are read.
#[derive(Default)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    cipher_suites: Vec<String>,
    curve_preferences: Vec<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
}

impl RawTls {
    /// exporter-toolkit's `IsEnabled`: any of these set turns TLS on.
    fn is_enabled(&self) -> bool {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.cert_file,
            &self.key_file,
            &self.client_ca_file,
            &self.client_auth_type,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
    }
}

const TOP_KEYS: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
    "rate_limit",
];
const TLS_KEYS: &[&str] = &[
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
];
const HTTP_KEYS: &[&str] = &["http2", "headers"];

impl WebFile {
    /// Reads and validates the file at `path`, reading the certificates and keys it names.
    ///
    /// # Errors
    /// [`WebConfigError`] naming the key, the value and what is allowed.
    pub fn load(path: &Path) -> Result<WebFile, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            what: "it".to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as the content of the file at `path` (relative paths in it are
    /// relative to `path`'s directory).
    ///
    /// # Errors
    /// [`WebConfigError`] naming the key, the value and what is allowed.
    pub fn parse(path: &Path, text: &str) -> Result<WebFile, WebConfigError> {
        let r = Reader { path };
        let docs =
            yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| WebConfigError::Yaml {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        let root = docs.into_iter().next().unwrap_or(Yaml::Null);
        let mut raw = RawTls::default();
        let mut users = BTreeMap::new();
        let mut headers = Vec::new();
        let mut warnings = Vec::new();
        for (key, value) in r.mapping(&root, "", Some(TOP_KEYS))? {
            match key.as_str() {
                "tls_server_config" => raw = read_tls(&r, value)?,
                "http_server_config" => headers = read_http(&r, value)?,
                "basic_auth_users" => users = read_users(&r, value)?,
                // "rate_limit": refused unless empty.
                _ => {
                    if !r.mapping(value, "rate_limit", None)?.is_empty() {
                        return Err(r.invalid(
                            "rate_limit",
                            "set",
                            "nothing: rate limiting is not implemented by rabbitmq-watch (the server limits connections instead)",
                        ));
                    }
                }
            }
        }
        let (tls, cert_pem, client_auth) = if raw.is_enabled() {
            let built = build_tls(&r, &raw, &mut warnings)?;
            (Some(Arc::new(built.0)), Some(built.1), built.2)
        } else {
            (None, None, ClientAuth::NoClientCert)
        };
        Ok(WebFile {
            path: path.to_owned(),
            tls,
            cert_pem,
            client_auth,
            users,
            headers,
            warnings,
        })
    }
}

fn read_tls(r: &Reader<'_>, node: &Yaml) -> Result<RawTls, WebConfigError> {
    let mut raw = RawTls::default();
    for (key, value) in r.mapping(node, "tls_server_config", Some(TLS_KEYS))? {
        let dotted = format!("tls_server_config.{key}");
        let k = dotted.as_str();
        match key.as_str() {
            "cert" => raw.cert = r.text(k, value)?,
            "key" => raw.key = r.text(k, value)?,
            "client_ca" => raw.client_ca = r.text(k, value)?,
            "cert_file" => raw.cert_file = r.text(k, value)?,
            "key_file" => raw.key_file = r.text(k, value)?,
            "client_ca_file" => raw.client_ca_file = r.text(k, value)?,
            "client_auth_type" => raw.client_auth_type = r.text(k, value)?,
            "cipher_suites" => raw.cipher_suites = r.list(k, value)?,
            "curve_preferences" => raw.curve_preferences = r.list(k, value)?,
            "min_version" => raw.min_version = r.text(k, value)?,
            "max_version" => raw.max_version = r.text(k, value)?,
            "prefer_server_cipher_suites" => {
                raw.prefer_server_cipher_suites = r.boolean(k, value)?;
            }
            // "client_allowed_sans"
            _ => {
                if !r.list(k, value)?.is_empty() {
                    return Err(r.invalid(
                        k,
                        "set",
                        "nothing: client_allowed_sans is not implemented by rabbitmq-watch; use a client CA that issues only the allowed clients' certificates",
                    ));
                }
            }
        }
    }
    Ok(raw)
}

fn read_http(
    r: &Reader<'_>,
    node: &Yaml,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut headers = Vec::new();
    for (key, value) in r.mapping(node, "http_server_config", Some(HTTP_KEYS))? {
        if key == "http2" {
            // HTTP/2 is only offered over TLS by exporter-toolkit; we serve HTTP/1.1 either way.
            r.boolean("http_server_config.http2", value)?;
            continue;
        }
        for (name, value) in r.mapping(value, "http_server_config.headers", None)? {
            let k = format!("http_server_config.headers.{name}");
            let text = r.text(&k, value)?.unwrap_or_default();
            let allowed_names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            // Go compares the canonical form exactly; so do we.
            let Some((_, values)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
                return Err(WebConfigError::UnknownKey {
                    path: r.path.to_owned(),
                    key: k,
                    allowed: format!(
                        "{} (the headers exporter-toolkit allows)",
                        allowed_names.join(", ")
                    ),
                });
            };
            if !values.is_empty() && !values.contains(&text.as_str()) {
                return Err(r.invalid(&k, &text, &format!("one of: {}", values.join(", "))));
            }
            let value = HeaderValue::from_str(&text)
                .map_err(|_| r.invalid(&k, &text, "a header value without control characters"))?;
            // Every name in EXTRA_HEADERS is a valid header name.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| r.invalid(&k, &name, "a header name"))?;
            headers.push((name, value));
        }
    }
    Ok(headers)
}

fn read_users(r: &Reader<'_>, node: &Yaml) -> Result<BTreeMap<String, String>, WebConfigError> {
    let mut users = BTreeMap::new();
    for (user, value) in r.mapping(node, "basic_auth_users", None)? {
        let k = format!("basic_auth_users.{user}");
        let hash = r.text(&k, value)?.unwrap_or_default();
        // The hash is not echoed: it can be brute-forced offline.
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(r.invalid(
                &k,
                "(a value that is not a bcrypt hash)",
                "a bcrypt hash such as $2y$10$… (htpasswd -nBC 10 USER)",
            ));
        }
        if user.contains(':') {
            return Err(r.invalid(
                "basic_auth_users",
                &user,
                "user names without `:` (HTTP basic auth separates user and password with it)",
            ));
        }
        users.insert(user, hash);
    }
    Ok(users)
}

/// Builds the rustls configuration: (config, the server certificate's PEM, client auth).
fn build_tls(
    r: &Reader<'_>,
    raw: &RawTls,
    warnings: &mut Vec<String>,
) -> Result<(rustls::ServerConfig, Vec<u8>, ClientAuth), WebConfigError> {
    let pem = |inline: &Option<String>,
               file: &Option<String>,
               key_inline: &str,
               key_file: &str|
     -> Result<Option<(String, Vec<u8>)>, WebConfigError> {
        match (
            file.as_deref().filter(|s| !s.is_empty()),
            inline.as_deref().filter(|s| !s.is_empty()),
        ) {
            (Some(f), _) => Ok(Some((
                format!("tls_server_config.{key_file}"),
                r.read_file(&format!("tls_server_config.{key_file}"), f)?,
            ))),
            (None, Some(text)) => Ok(Some((
                format!("tls_server_config.{key_inline}"),
                text.as_bytes().to_vec(),
            ))),
            (None, None) => Ok(None),
        }
    };
    let Some((cert_key, cert_pem)) = pem(&raw.cert, &raw.cert_file, "cert", "cert_file")? else {
        return Err(r.invalid(
            "tls_server_config.cert_file",
            "",
            "a certificate file (or `cert`): TLS is on because tls_server_config is set",
        ));
    };
    let Some((key_key, key_pem)) = pem(&raw.key, &raw.key_file, "key", "key_file")? else {
        return Err(r.invalid(
            "tls_server_config.key_file",
            "",
            "a private key file (or `key`): TLS is on because tls_server_config is set",
        ));
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| r.invalid(&cert_key, &format!("PEM error: {e}"), "PEM certificates"))?;
    if certs.is_empty() {
        return Err(r.invalid(
            &cert_key,
            "no CERTIFICATE block",
            "PEM certificates (-----BEGIN CERTIFICATE-----)",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        // The key's content is never echoed.
        r.invalid(
            &key_key,
            "(no usable private key)",
            "a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)",
        )
    })?;

    let client_auth = match raw.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(r.invalid(
                "tls_server_config.client_auth_type",
                other,
                CLIENT_AUTH_TYPES,
            ));
        }
    };
    let client_ca = pem(
        &raw.client_ca,
        &raw.client_ca_file,
        "client_ca",
        "client_ca_file",
    )?;
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(r.invalid(
            "tls_server_config.client_auth_type",
            raw.client_auth_type.as_deref().unwrap_or(""),
            "a type that asks for client certificates (RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert): a client CA is configured",
        ));
    }

    let mut provider = rustls::crypto::ring::default_provider();
    if !raw.cipher_suites.is_empty() {
        // Go's cipher_suites apply to TLS 1.2 only; TLS 1.3 suites stay.
        let tls12: Vec<&str> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .filter_map(|s| s.suite().as_str())
            .collect();
        for name in &raw.cipher_suites {
            if !tls12.contains(&name.as_str()) {
                return Err(r.invalid(
                    "tls_server_config.cipher_suites",
                    name,
                    &format!("TLS 1.2 cipher suites among: {}", tls12.join(", ")),
                ));
            }
        }
        provider.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13
                || s.suite()
                    .as_str()
                    .is_some_and(|n| raw.cipher_suites.iter().any(|c| c == n))
        });
    }
    if !raw.curve_preferences.is_empty() {
        use rustls::crypto::ring::kx_group;
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for name in &raw.curve_preferences {
            groups.push(match name.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                other => {
                    return Err(r.invalid(
                        "tls_server_config.curve_preferences",
                        other,
                        "curves among: X25519, CurveP256, CurveP384 (CurveP521 is not offered by rustls)",
                    ));
                }
            });
        }
        provider.kx_groups = groups;
    }

    let mut version = |key: &str, text: Option<&str>, default: u8| -> Result<u8, WebConfigError> {
        match text.unwrap_or("") {
            "" => Ok(default),
            "TLS10" | "TLS11" => {
                warnings.push(format!(
                    "{}: {key}: {} is read as TLS12 (rustls speaks TLS 1.2 and 1.3 only)",
                    r.path.display(),
                    text.unwrap_or("")
                ));
                Ok(12)
            }
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            other => Err(r.invalid(key, other, "one of TLS10, TLS11, TLS12, TLS13")),
        }
    };
    let min = version(
        "tls_server_config.min_version",
        raw.min_version.as_deref(),
        12,
    )?;
    let max_text = raw.max_version.as_deref();
    if matches!(max_text, Some("TLS10" | "TLS11")) {
        return Err(r.invalid(
            "tls_server_config.max_version",
            max_text.unwrap_or(""),
            "TLS12 or TLS13 (rustls speaks nothing older)",
        ));
    }
    let max = version("tls_server_config.max_version", max_text, 13)?;
    if min > max {
        return Err(r.invalid(
            "tls_server_config.min_version",
            raw.min_version.as_deref().unwrap_or(""),
            "a version not above max_version",
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let provider = Arc::new(provider);
    let certified = rustls::sign::CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        r.invalid(
            &key_key,
            &format!("rejected with the certificate: {e}"),
            "the private key of the certificate",
        )
    })?;
    // Certificates from files are re-read when the files change; inline ones never.
    let files = match (
        raw.cert_file.as_deref().filter(|s| !s.is_empty()),
        raw.key_file.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(c), Some(k)) => Some((r.resolve(c), r.resolve(k))),
        _ => None,
    };
    let provider_for_keys = provider.clone();
    let verifier = super::tls::client_verifier(client_auth, client_ca, provider.clone())
        .map_err(|(key, value, allowed)| r.invalid(&key, &value, &allowed))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| {
            r.invalid(
                "tls_server_config.cipher_suites",
                &e.to_string(),
                "suites that work with the chosen versions",
            )
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(super::tls::ReloadingCert::new(
            certified,
            files,
            provider_for_keys,
        )));
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, cert_pem, client_auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebFile, String> {
        WebFile::parse(Path::new("/nonexistent/web.yml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_is_plain_http_without_auth() {
        let w = parse("").unwrap();
        assert!(w.tls.is_none() && w.users.is_empty() && w.headers.is_empty());
        let w = parse("tls_server_config:\nbasic_auth_users:\n").unwrap();
        assert!(w.tls.is_none());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("tls_server_config:\n  certfile: x\n").unwrap_err();
        assert!(
            e.contains("unknown key `tls_server_config.certfile`"),
            "{e}"
        );
        assert!(e.contains("cert_file"), "{e}");
        let e = parse("basic_auth: {}\n").unwrap_err();
        assert!(e.contains("unknown key `basic_auth`"), "{e}");
        let e = parse("http_server_config:\n  headers:\n    Server: x\n").unwrap_err();
        assert!(
            e.contains("`http_server_config.headers.Server`")
                && e.contains("Strict-Transport-Security"),
            "{e}"
        );
    }

    #[test]
    fn header_values_are_checked_as_exporter_toolkit_does() {
        let e = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").unwrap_err();
        assert!(
            e.contains("\"allow\"") && e.contains("deny, sameorigin"),
            "{e}"
        );
        let w = parse(
            "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: default-src 'self'\n",
        )
        .unwrap();
        assert_eq!(w.headers.len(), 2);
    }

    #[test]
    fn users_need_bcrypt_hashes_that_are_not_echoed() {
        let e = parse("basic_auth_users:\n  alice: hunter2\n").unwrap_err();
        assert!(e.contains("basic_auth_users.alice"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let hash = bcrypt::hash("pw", 4).unwrap();
        let w = parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        assert_eq!(w.users["alice"], hash);
        assert!(!format!("{w:?}").contains(&hash));
    }

    #[test]
    fn tls_settings_are_validated() {
        let e = parse("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n")
            .unwrap_err();
        assert!(e.contains("tls_server_config.cert_file"), "{e}");
        let e = parse("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n").unwrap_err();
        assert!(
            e.contains("/nonexistent/c.pem") && e.contains("tls_server_config.cert_file"),
            "relative to the file's directory: {e}"
        );
        let e = parse("tls_server_config:\n  cert: x\n  key: y\n  client_allowed_sans: [a]\n")
            .unwrap_err();
        assert!(e.contains("client_allowed_sans"), "{e}");
        let e = parse("rate_limit:\n  burst: 1\n").unwrap_err();
        assert!(e.contains("rate_limit"), "{e}");
        let e = parse("tls_server_config:\n  cert: x\n  key: y\n").unwrap_err();
        assert!(e.contains("tls_server_config.cert"), "{e}");
    }
}
