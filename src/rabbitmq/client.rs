//! HTTP client for the management API: basic auth, per-request timeout, optional extra CA,
//! paging of `/api/queues`, and translation of every failure into [`Error`].

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::model::{
    Alarms, Binding, NODE_COLUMNS, Node, OVERVIEW_COLUMNS, Overview, Page, QUEUE_COLUMNS,
    QUEUE_SETTINGS_COLUMNS, Queue, Vhost,
};
use super::{Body, Endpoint, Error};
use crate::config::{QueuesConfig, RabbitmqConfig, Secret};
use crate::util::error_chain;

/// Queues requested per page of `/api/queues`: the API's maximum, 500.
pub const QUEUE_PAGE_SIZE: u32 = 500;

/// Largest rabbitmq_prometheus answer read, in bytes: a 10,000-queue `/metrics/detailed`
/// with the queue families is about 16 MB; a larger body is a decode failure, not a
/// truncated read taken as complete.
pub const MAX_EXPOSITION_BYTES: usize = 256 * 1024 * 1024;

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
        let endpoint = Endpoint::Overview;
        let url = self.endpoint_url(endpoint)?;
        self.get_json(
            endpoint,
            url,
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
        let endpoint = Endpoint::Nodes;
        let url = self.endpoint_url(endpoint)?;
        self.get_json(endpoint, url, &[("columns", NODE_COLUMNS.to_owned())], &[])
            .await
    }

    /// Reads every queue from `GET /api/queues` (`/api/queues/detailed` when `detailed`, for
    /// RabbitMQ 3.13+), [`QUEUE_PAGE_SIZE`] per request, with only the columns in
    /// [`QUEUE_COLUMNS`]. Asks the API to leave out what `filter` excludes where it can: a
    /// `queues.include` other than `.*` is sent as `name=^(?:RE)$&use_regex=true`, and with a
    /// vhost filter the vhosts are listed (`/api/vhosts`) and only the wanted ones' queues are
    /// read (`/api/queues/{vhost}`). The result is sorted by (vhost, name) and free of
    /// duplicates (pages can shift while queues come and go); the caller still applies the
    /// exact filters ([`crate::selection`]).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Queues`] when any request fails.
    ///
    /// With `settings_only` (the prometheus source reads the figures elsewhere) the broker is
    /// asked for no statistics (`disable_stats=true`) and only the settings columns
    /// ([`QUEUE_SETTINGS_COLUMNS`]); the figure fields are then `None`.
    pub async fn queues(
        &self,
        filter: &QueuesConfig,
        detailed: bool,
        settings_only: bool,
    ) -> Result<Body<Vec<Queue>>, Error> {
        let endpoint = Endpoint::Queues;
        let mut bytes = 0;
        let vhosts: Vec<Option<String>> =
            if filter.include_vhosts.is_match_all() && filter.exclude_vhosts.is_none() {
                vec![None]
            } else {
                let listed: Body<Vec<Vhost>> = self
                    .get_json(
                        endpoint,
                        self.url(&["api", "vhosts"], endpoint)?,
                        &[("columns", "name".to_owned())],
                        &[],
                    )
                    .await?;
                bytes += listed.bytes;
                listed
                    .value
                    .into_iter()
                    .map(|v| v.name)
                    .filter(|name| {
                        filter.include_vhosts.is_match(name)
                            && !filter
                                .exclude_vhosts
                                .as_ref()
                                .is_some_and(|r| r.is_match(name))
                    })
                    .map(Some)
                    .collect()
            };
        let mut base_query = vec![
            ("page_size", QUEUE_PAGE_SIZE.to_string()),
            ("pagination", "true".to_owned()),
        ];
        if settings_only {
            base_query.push(("columns", QUEUE_SETTINGS_COLUMNS.to_owned()));
            base_query.push(("disable_stats", "true".to_owned()));
        } else {
            base_query.push(("columns", QUEUE_COLUMNS.to_owned()));
        }
        if !filter.include.is_match_all() {
            base_query.push(("name", filter.include.anchored().to_owned()));
            base_query.push(("use_regex", "true".to_owned()));
        }
        let mut queues = Vec::new();
        for vhost in &vhosts {
            let mut segments = vec!["api", "queues"];
            if detailed && !settings_only {
                segments.push("detailed");
            }
            if let Some(v) = vhost {
                segments.push(v);
            }
            let url = self.url(&segments, endpoint)?;
            let mut page = 1u64;
            loop {
                let mut query = base_query.clone();
                query.push(("page", page.to_string()));
                let result: Result<Body<Page<Queue>>, Error> =
                    self.get_json(endpoint, url.clone(), &query, &[]).await;
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
                    // The vhost was deleted since it was listed.
                    Err(Error::Status { status: 404, .. }) if vhost.is_some() => break,
                    Err(e) => return Err(e),
                };
                queues.extend(p.items);
                if page >= p.page_count {
                    break;
                }
                page += 1;
            }
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
        let endpoint = Endpoint::Alarms;
        let url = self.endpoint_url(endpoint)?;
        let alarms: Body<Alarms> = self
            .get_json(endpoint, url, &[], &[StatusCode::SERVICE_UNAVAILABLE])
            .await?;
        alarms.value.validate().map_err(|detail| Error::Decode {
            endpoint: Endpoint::Alarms,
            detail,
        })?;
        Ok(alarms)
    }

    /// Reads the queues bound to each of `exchanges` ((vhost, exchange) pairs) with
    /// `GET /api/exchanges/{vhost}/{name}/bindings/source?columns=destination,destination_type`,
    /// one request per exchange, and returns them as sorted (vhost, queue) pairs. An exchange
    /// that does not exist (404: a queue may name a dead-letter exchange nobody declared) has
    /// no queues; exchange-to-exchange bindings are not followed.
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Bindings`] when any request fails otherwise.
    pub async fn bound_queues(
        &self,
        exchanges: &std::collections::BTreeSet<(String, String)>,
    ) -> Result<Body<Vec<(String, String)>>, Error> {
        let endpoint = Endpoint::Bindings;
        let mut bytes = 0;
        let mut queues = Vec::new();
        for (vhost, exchange) in exchanges {
            let url = self.url(
                &["api", "exchanges", vhost, exchange, "bindings", "source"],
                endpoint,
            )?;
            let query = [("columns", "destination,destination_type".to_owned())];
            match self
                .get_json::<Vec<Binding>>(endpoint, url, &query, &[])
                .await
            {
                Ok(body) => {
                    bytes += body.bytes;
                    queues.extend(
                        body.value
                            .into_iter()
                            .filter(|b| b.destination_type == "queue")
                            .map(|b| (vhost.clone(), b.destination)),
                    );
                }
                Err(Error::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        queues.sort_unstable();
        queues.dedup();
        Ok(Body {
            value: queues,
            bytes,
        })
    }

    /// GETs `path` (below the base URL) with `query` from a rabbitmq_prometheus plugin and
    /// returns the body as text, at most [`MAX_EXPOSITION_BYTES`]; the read is counted for
    /// `endpoint`.
    ///
    /// # Errors
    /// [`Error`] for `endpoint`: transport failures, a status other than 200, a body over
    /// the cap or not UTF-8 ([`Error::Decode`]).
    pub async fn exposition(
        &self,
        endpoint: Endpoint,
        query: &[(&str, String)],
    ) -> Result<Body<String>, Error> {
        let url = self.endpoint_url(endpoint)?;
        tracing::debug!(endpoint = endpoint.path(), url = %url, query = ?query, "request");
        let mut response = self
            .http
            .get(url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?
        {
            if body.len() + chunk.len() > MAX_EXPOSITION_BYTES {
                return Err(Error::Decode {
                    endpoint,
                    detail: format!("response larger than {MAX_EXPOSITION_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status != StatusCode::OK {
            return Err(Error::Status {
                endpoint,
                status: status.as_u16(),
                hint: status_hint(endpoint, status),
                body: body_excerpt(&body),
            });
        }
        let bytes = body.len() as u64;
        let value = String::from_utf8(body).map_err(|e| Error::Decode {
            endpoint,
            detail: format!("not UTF-8: {e}"),
        })?;
        Ok(Body { value, bytes })
    }

    /// GETs `endpoint` with `query`, accepts 200 and `also_ok`, decodes the body as `T`.
    /// Reads the whole body into memory (at most one page for `/api/queues`).
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: Url,
        query: &[(&str, String)],
        also_ok: &[StatusCode],
    ) -> Result<Body<T>, Error> {
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
                hint: status_hint(endpoint, status),
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

    /// The base URL with `segments` appended, each percent-encoded (a vhost `/` becomes `%2F`).
    fn url(&self, segments: &[&str], endpoint: Endpoint) -> Result<Url, Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Request {
                endpoint,
                detail: "rabbitmq.url cannot be a base URL".to_owned(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The URL of `endpoint`'s fixed path.
    fn endpoint_url(&self, endpoint: Endpoint) -> Result<Url, Error> {
        let segments: Vec<&str> = endpoint
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        self.url(&segments, endpoint)
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

fn status_hint(endpoint: Endpoint, status: StatusCode) -> &'static str {
    if endpoint.is_prometheus() {
        return match status.as_u16() {
            401 | 403 => {
                " (check rabbitmq.username and rabbitmq.password: prometheus.authentication is on)"
            }
            404 => " (is rabbitmq.prometheus_url the rabbitmq_prometheus plugin?)",
            _ => "",
        };
    }
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
