//! HTTP client for the management API: basic auth, per-request timeout, optional extra CA,
//! a cap on response bytes, the streamed unpaged `/api/queues` read, the bounded dead-letter
//! bindings reads, and translation of every failure into [`Error`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::model::{Alarms, Binding, Exchange, NODE_COLUMNS, Node, OVERVIEW_COLUMNS, Overview};
use super::stream::{ArraySplitter, SplitError};
use super::{Body, Endpoint, Error};
use crate::config::{QueueRead, RabbitmqConfig, Secret};
use crate::util::error_chain;

mod queue_read;

/// Most dead-letter exchanges whose bindings are read per poll (their names come from queue
/// arguments and policies, which users choose).
pub const MAX_DEAD_LETTER_EXCHANGES: usize = 1000;

/// Bindings reads in flight at once.
pub const BINDINGS_CONCURRENCY: usize = 4;

/// What [`Client::bound_queues`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundQueues {
    /// (vhost, queue) pairs bound to the dead-letter exchanges read, sorted, no duplicates.
    pub queues: Vec<(String, String)>,
}

/// How the reads of dead-letter exchanges' bindings went (one read per exchange,
/// `GET /api/exchanges/{vhost}/{name}/bindings/source`), counted as they complete so that the
/// counts survive a read cut off by the poll's deadline. Per poll in
/// [`crate::snapshot::Snapshot::dead_letter_reads`], summed over the sidecar's lifetime in
/// [`crate::snapshot::PollTotals::dead_letter_reads`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindingsReads {
    /// Reads that answered (an exchange deleted since it was listed, HTTP 404, included).
    pub ok: u64,
    /// Reads that failed (transport error, timeout, unexpected status, undecodable body):
    /// the queues bound to those exchanges are not marked as dead-letter queues.
    pub failed: u64,
    /// Existing dead-letter exchanges not read: over [`MAX_DEAD_LETTER_EXCHANGES`], or still
    /// unread when the poll's deadline cut the reads off.
    pub skipped: u64,
    /// Reads started and not finished yet (moved to `skipped` by [`BindingsReads::cut_off`]).
    pub pending: u64,
}

impl BindingsReads {
    /// Counts the reads still pending as skipped: call once the reads have ended or were
    /// dropped (the poll's deadline).
    pub fn cut_off(&mut self) {
        self.skipped = self.skipped.saturating_add(self.pending);
        self.pending = 0;
    }

    /// Adds `other` (lifetime totals), saturating.
    pub fn add(&mut self, other: &BindingsReads) {
        self.ok = self.ok.saturating_add(other.ok);
        self.failed = self.failed.saturating_add(other.failed);
        self.skipped = self.skipped.saturating_add(other.skipped);
        self.pending = self.pending.saturating_add(other.pending);
    }
}

/// A streamed read stopped: by the splitter or by the element handler.
enum Feed {
    Split(SplitError),
    Stop(Error),
}

impl From<SplitError> for Feed {
    fn from(e: SplitError) -> Self {
        Feed::Split(e)
    }
}

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
    /// `rabbitmq.max_response_bytes` (0: no limit).
    max_response_bytes: u64,
    /// The broker answered `sort=` with HTTP 500 (RabbitMQ 3.13.0): list without it.
    sort_rejected: Arc<AtomicBool>,
    /// `rabbitmq.queue_read`: the queue listing in one read or one per vhost.
    queue_read: QueueRead,
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
            max_response_bytes: cfg.max_response_bytes,
            sort_rejected: Arc::new(AtomicBool::new(false)),
            queue_read: cfg.queue_read,
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

    /// Reads the queues bound to each of `exchanges` ((vhost, exchange) pairs, names users
    /// chose in queue arguments and policies), bounded: first one unpaged
    /// `GET /api/exchanges?columns=vhost,name&sort=` tells which of them exist; then at most
    /// [`MAX_DEAD_LETTER_EXCHANGES`] existing ones (in (vhost, name) order) are read with
    /// `GET /api/exchanges/{vhost}/{name}/bindings/source?columns=destination,destination_type`,
    /// [`BINDINGS_CONCURRENCY`] at a time. Exchange-to-exchange bindings are not followed.
    ///
    /// A failed read of one exchange's bindings (or one deleted meanwhile) does not fail the
    /// others: it is logged with the exchange's name and counted in `tally`
    /// ([`BindingsReads::failed`]), as each read ends (reads answered in `ok`, exchanges over
    /// the cap in `skipped`, reads started and not ended in `pending`).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Bindings`] when the exchange listing fails, or when every
    /// bindings read failed.
    pub async fn bound_queues(
        &self,
        exchanges: &BTreeSet<(String, String)>,
        tally: &mut BindingsReads,
    ) -> Result<Body<BoundQueues>, Error> {
        let endpoint = Endpoint::Bindings;
        let mut found = BoundQueues::default();
        if exchanges.is_empty() {
            return Ok(Body {
                value: found,
                bytes: 0,
            });
        }
        let mut existing = BTreeSet::new();
        let mut decode = |element: &[u8]| {
            let e = serde_json::from_slice::<Exchange>(element).map_err(|e| Error::Decode {
                endpoint,
                detail: format!("/api/exchanges: {e}"),
            })?;
            let key = (e.vhost, e.name);
            if exchanges.contains(&key) {
                existing.insert(key);
            }
            Ok(())
        };
        let mut bytes = self
            .get_stream(
                endpoint,
                self.url(&["api", "exchanges"], endpoint)?,
                &[
                    ("columns", "vhost,name".to_owned()),
                    ("sort", String::new()),
                ],
                0,
                &mut decode,
            )
            .await?;
        let skipped = existing.len().saturating_sub(MAX_DEAD_LETTER_EXCHANGES) as u64;
        tally.skipped = tally.skipped.saturating_add(skipped);
        if skipped > 0 {
            tracing::warn!(
                exchanges = existing.len(),
                read = MAX_DEAD_LETTER_EXCHANGES,
                "more dead-letter exchanges than the sidecar reads bindings of: the last ones (by vhost, name) are not read"
            );
        }
        let semaphore = Arc::new(tokio::sync::Semaphore::new(BINDINGS_CONCURRENCY));
        let mut reads = tokio::task::JoinSet::new();
        for (vhost, exchange) in existing.into_iter().take(MAX_DEAD_LETTER_EXCHANGES) {
            let client = self.clone();
            let semaphore = semaphore.clone();
            reads.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let result = client.bindings_of(&vhost, &exchange).await;
                (vhost, exchange, result)
            });
            tally.pending += 1;
        }
        let mut first_error = None;
        let mut answered = 0u64;
        while let Some(joined) = reads.join_next().await {
            tally.pending = tally.pending.saturating_sub(1);
            let Ok((vhost, exchange, result)) = joined else {
                tally.failed += 1;
                continue;
            };
            match result {
                Ok(body) => {
                    answered += 1;
                    tally.ok += 1;
                    bytes += body.bytes;
                    found.queues.extend(
                        body.value
                            .into_iter()
                            .filter(|b| b.destination_type == "queue")
                            .map(|b| (vhost.clone(), b.destination)),
                    );
                }
                // Deleted since it was listed: no queues.
                Err(Error::Status { status: 404, .. }) => {
                    answered += 1;
                    tally.ok += 1;
                }
                Err(e) => {
                    tracing::warn!(
                        vhost = %vhost,
                        exchange = %exchange,
                        error = %e,
                        "cannot read a dead-letter exchange's bindings"
                    );
                    tally.failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if answered == 0
            && let Some(e) = first_error
        {
            return Err(e);
        }
        found.queues.sort_unstable();
        found.queues.dedup();
        Ok(Body {
            value: found,
            bytes,
        })
    }

    /// One exchange's bindings as a source.
    async fn bindings_of(&self, vhost: &str, exchange: &str) -> Result<Body<Vec<Binding>>, Error> {
        let endpoint = Endpoint::Bindings;
        let url = self.url(
            &["api", "exchanges", vhost, exchange, "bindings", "source"],
            endpoint,
        )?;
        let query = [("columns", "destination,destination_type".to_owned())];
        self.get_json(endpoint, url, &query, &[]).await
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
        let mut body = Vec::new();
        let bytes = self
            .exposition_each(endpoint, query, &mut |piece| {
                body.extend_from_slice(piece);
                Ok(())
            })
            .await?;
        let value = String::from_utf8(body).map_err(|e| Error::Decode {
            endpoint,
            detail: format!("not UTF-8: {e}"),
        })?;
        Ok(Body { value, bytes })
    }

    /// Like [`Client::exposition`], but hands the body to `on_piece` as it arrives (pieces as
    /// the connection delivers them, cut anywhere), so that nothing but what `on_piece` keeps
    /// is held; returns the body's size in bytes. A status other than 200 is an error before
    /// any piece is handed over.
    ///
    /// # Errors
    /// [`Error`] for `endpoint`: transport failures, a status other than 200, a body over
    /// [`MAX_EXPOSITION_BYTES`] ([`Error::Decode`]), or the first error of `on_piece` (the rest
    /// of the body is not read).
    pub async fn exposition_each(
        &self,
        endpoint: Endpoint,
        query: &[(&str, String)],
        on_piece: &mut impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
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
        let mut error_body = Vec::new();
        let mut bytes = 0usize;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?
        {
            if bytes + chunk.len() > MAX_EXPOSITION_BYTES {
                return Err(Error::Decode {
                    endpoint,
                    detail: format!("response larger than {MAX_EXPOSITION_BYTES} bytes"),
                });
            }
            bytes += chunk.len();
            if status == StatusCode::OK {
                on_piece(&chunk)?;
            } else {
                error_body.extend_from_slice(&chunk);
            }
        }
        if status != StatusCode::OK {
            return Err(Error::Status {
                endpoint,
                status: status.as_u16(),
                hint: status_hint(endpoint, status),
                body: body_excerpt(&error_body),
            });
        }
        Ok(bytes as u64)
    }

    /// GETs `endpoint` with `query`, accepts only 200, and feeds the body, as it arrives,
    /// through an [`ArraySplitter`] into `on_element`. Returns the body bytes; `prior` bytes
    /// of the same listing were read before and count towards `rabbitmq.max_response_bytes`.
    async fn get_stream(
        &self,
        endpoint: Endpoint,
        url: Url,
        query: &[(&str, String)],
        prior: u64,
        on_element: &mut impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let mut response = self.send(endpoint, url, query).await?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = self.read_capped(endpoint, response).await?;
            return Err(Error::Status {
                endpoint,
                status: status.as_u16(),
                hint: status_hint(endpoint, status),
                body: body_excerpt(&body),
            });
        }
        self.check_length(
            endpoint,
            response.content_length().map(|n| n.saturating_add(prior)),
        )?;
        let mut splitter = ArraySplitter::new();
        let mut bytes = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?
        {
            bytes += chunk.len() as u64;
            self.check_length(endpoint, Some(prior.saturating_add(bytes)))?;
            splitter
                .feed(&chunk, |element| on_element(element).map_err(Feed::Stop))
                .map_err(|e| match e {
                    Feed::Split(e) => Error::Decode {
                        endpoint,
                        detail: e.to_string(),
                    },
                    Feed::Stop(e) => e,
                })?;
        }
        splitter.finish().map_err(|e| Error::Decode {
            endpoint,
            detail: e.to_string(),
        })?;
        Ok(bytes)
    }

    /// Sends one GET with basic auth.
    async fn send(
        &self,
        endpoint: Endpoint,
        url: Url,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, Error> {
        tracing::debug!(endpoint = endpoint.path(), url = %url, query = ?query, "request");
        self.http
            .get(url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))
    }

    /// Fails when `bytes` (announced or received so far) exceed `rabbitmq.max_response_bytes`.
    fn check_length(&self, endpoint: Endpoint, bytes: Option<u64>) -> Result<(), Error> {
        match bytes {
            Some(n) if self.max_response_bytes > 0 && n > self.max_response_bytes => {
                // The audit's reads grow with connections, consumers and bindings, not with
                // the exported queues.
                let what = match endpoint {
                    Endpoint::Consumers
                    | Endpoint::Channels
                    | Endpoint::Exchanges
                    | Endpoint::AllBindings => {
                        "raise it, or turn the reliability audit off (audit.enabled: false)"
                    }
                    _ => "raise it, or export fewer queues (queues.include_vhosts)",
                };
                Err(Error::Request {
                    endpoint,
                    detail: format!(
                        "response larger than rabbitmq.max_response_bytes ({} bytes): {what}",
                        self.max_response_bytes
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The whole body, at most `rabbitmq.max_response_bytes`.
    async fn read_capped(
        &self,
        endpoint: Endpoint,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, Error> {
        self.check_length(endpoint, response.content_length())?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?
        {
            self.check_length(endpoint, Some((body.len() + chunk.len()) as u64))?;
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GETs `endpoint` with `query`, accepts 200 and `also_ok`, decodes the body as `T`.
    /// Reads the whole body into memory, at most `rabbitmq.max_response_bytes` (small
    /// answers: overview, nodes, alarms, vhosts, one exchange's bindings, the audit's reads).
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: Url,
        query: &[(&str, String)],
        also_ok: &[StatusCode],
    ) -> Result<Body<T>, Error> {
        let response = self.send(endpoint, url, query).await?;
        let status = response.status();
        let body = self.read_capped(endpoint, response).await?;
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
    pub(super) fn url(&self, segments: &[&str], endpoint: Endpoint) -> Result<Url, Error> {
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
    pub(super) fn endpoint_url(&self, endpoint: Endpoint) -> Result<Url, Error> {
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
            // Verified on 4.0.5 with `prometheus.authentication.enabled = true`: a wrong
            // password and a user without the `monitoring` tag (e.g. only `management`) are both
            // answered 401.
            401 | 403 => {
                " (the plugin requires authentication, prometheus.authentication.enabled: check rabbitmq.username and rabbitmq.password, and that the user has the monitoring or administrator tag)"
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
