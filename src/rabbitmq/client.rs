//! HTTP client for the management API: basic auth, per-request timeout, optional extra CA,
//! paging of `/api/queues`, and translation of every failure into [`Error`].

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::model::{
    Alarms, NODE_COLUMNS, Node, OVERVIEW_COLUMNS, Overview, Page, QUEUE_COLUMNS, Queue,
};
use super::{Body, Endpoint, Error};
use crate::config::{RabbitmqConfig, Secret};

/// Queues requested per page of `/api/queues`: the API's maximum, 500.
pub const QUEUE_PAGE_SIZE: u32 = 500;

/// Why a [`Client`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `rabbitmq.ca_file` could not be read or holds no PEM certificate.
    #[error("rabbitmq.ca_file {path}: {detail}")]
    CaFile {
        /// The file as configured.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The HTTP client itself could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// A management API client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    /// The reqwest client: connection pool, TLS roots, timeout.
    http: reqwest::Client,
    /// Base URL, ending in `/` (a reverse-proxy path prefix is kept).
    base: Url,
    /// Basic-auth user.
    username: String,
    /// Basic-auth password.
    password: Secret,
    /// Per-request timeout, for the [`Error::Timeout`] message.
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client from `rabbitmq.*`. Needs a rustls crypto provider installed
    /// (see [`crate::install_crypto_provider`]).
    ///
    /// # Errors
    /// [`BuildError`] when the CA file is unreadable or the TLS setup fails.
    pub fn new(cfg: &RabbitmqConfig) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("rabbitmq-watch/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(4);
        if let Some(path) = &cfg.ca_file {
            let ca_err = |detail: String| BuildError::CaFile {
                path: path.display().to_string(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no PEM certificate found".to_owned()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| BuildError::Http(error_chain(&e)))?;
        Ok(Self {
            http,
            base: cfg.url.clone(),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            timeout: cfg.timeout,
        })
    }

    /// Reads `GET /api/overview` (only the columns in [`OVERVIEW_COLUMNS`]).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Overview`].
    pub async fn overview(&self) -> Result<Body<Overview>, Error> {
        self.get_json(
            Endpoint::Overview,
            &[("columns", OVERVIEW_COLUMNS.to_owned())],
            &[],
        )
        .await
    }

    /// Reads `GET /api/nodes` (only the columns in [`NODE_COLUMNS`]).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Nodes`].
    pub async fn nodes(&self) -> Result<Body<Vec<Node>>, Error> {
        self.get_json(
            Endpoint::Nodes,
            &[("columns", NODE_COLUMNS.to_owned())],
            &[],
        )
        .await
    }

    /// Reads every queue from `GET /api/queues`, [`QUEUE_PAGE_SIZE`] per request, with only
    /// the columns in [`QUEUE_COLUMNS`]. The result is sorted by (vhost, name) and free of
    /// duplicates (pages can shift while queues come and go).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Queues`] when any page fails.
    pub async fn queues(&self) -> Result<Body<Vec<Queue>>, Error> {
        let mut queues = Vec::new();
        let mut bytes = 0;
        let mut page = 1u64;
        loop {
            let query = [
                ("page", page.to_string()),
                ("page_size", QUEUE_PAGE_SIZE.to_string()),
                ("pagination", "true".to_owned()),
                ("columns", QUEUE_COLUMNS.to_owned()),
            ];
            let result: Result<Body<Page<Queue>>, Error> =
                self.get_json(Endpoint::Queues, &query, &[]).await;
            let p = match result {
                Ok(body) => {
                    bytes += body.bytes;
                    body.value
                }
                // Queues were deleted since the first page: there is no page `page` any more.
                Err(Error::Status {
                    status: 400, body, ..
                }) if page > 1 && body.contains("page_out_of_range") => {
                    break;
                }
                Err(e) => return Err(e),
            };
            queues.extend(p.items);
            if page >= p.page_count {
                break;
            }
            page += 1;
        }
        queues.sort_unstable_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        queues.dedup_by(|a, b| a.vhost == b.vhost && a.name == b.name);
        Ok(Body {
            value: queues,
            bytes,
        })
    }

    /// Reads `GET /api/health/checks/alarms`. Both 200 (no alarm) and 503 (alarms in effect)
    /// are answers, not failures.
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Alarms`].
    pub async fn alarms(&self) -> Result<Body<Alarms>, Error> {
        let alarms: Body<Alarms> = self
            .get_json(Endpoint::Alarms, &[], &[StatusCode::SERVICE_UNAVAILABLE])
            .await?;
        alarms.value.validate().map_err(|detail| Error::Decode {
            endpoint: Endpoint::Alarms,
            detail,
        })?;
        Ok(alarms)
    }

    /// GETs `endpoint` with `query`, accepts 200 and `also_ok`, decodes the body as `T`.
    /// Reads the whole body into memory (at most one page for `/api/queues`).
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        query: &[(&str, String)],
        also_ok: &[StatusCode],
    ) -> Result<Body<T>, Error> {
        let url = self
            .base
            .join(endpoint.path().trim_start_matches('/'))
            .map_err(|e| Error::Request {
                endpoint,
                detail: e.to_string(),
            })?;
        tracing::debug!(endpoint = endpoint.path(), url = %url, query = ?query, "request");
        let response = self
            .http
            .get(url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        if status != StatusCode::OK && !also_ok.contains(&status) {
            return Err(Error::Status {
                endpoint,
                status: status.as_u16(),
                hint: status_hint(status),
                body: body_excerpt(&body),
            });
        }
        let value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            endpoint,
            detail: e.to_string(),
        })?;
        Ok(Body {
            value,
            bytes: body.len() as u64,
        })
    }

    fn transport_error(&self, endpoint: Endpoint, e: reqwest::Error) -> Error {
        let e = e.without_url();
        if e.is_timeout() {
            Error::Timeout {
                endpoint,
                timeout_ms: self.timeout.as_millis(),
            }
        } else if e.is_connect() {
            Error::Connect {
                endpoint,
                detail: error_chain(&e),
            }
        } else {
            Error::Request {
                endpoint,
                detail: error_chain(&e),
            }
        }
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => " (check rabbitmq.username and rabbitmq.password)",
        403 => " (the user needs the `monitoring` tag)",
        404 => " (is rabbitmq.url the management API and the management plugin enabled?)",
        _ => "",
    }
}

/// The first 200 bytes of a body, lossily decoded, on one line.
fn body_excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(200)];
    let text = String::from_utf8_lossy(cut).replace(['\n', '\r'], " ");
    if body.len() > 200 {
        format!("{text}…")
    } else {
        text
    }
}

/// An error and its sources joined with ": " (reqwest's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
