//! The RabbitMQ management HTTP API: the HTTP client ([`client`]), the response types
//! ([`model`]; a queue as held, compact: [`queue`]), the incremental decoder of listings
//! ([`stream`]), the per-member reads of the
//! cluster detector ([`members`]), the reads of the reliability audit ([`audit_reads`]), the endpoints
//! read ([`Endpoint`]), the outcome of one read ([`Fetched`]) and the ways a read can fail
//! ([`Error`]). Also the second source of queue and node figures, every member's
//! rabbitmq_prometheus plugin ([`prometheus`], parsed by [`exposition`]; which source a poll
//! used: [`FigureSource`]).
//!
//! This is the only module that talks to the broker.

pub mod audit_reads;
pub mod client;
pub mod exposition;
pub mod health;
pub mod listeners;
pub mod members;
pub mod model;
pub mod prometheus;
pub mod queue;
pub mod stream;

pub use client::Client;

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// A decoded answer and how many body bytes it took (all pages, for paged reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Body<T> {
    /// The decoded value.
    pub value: T,
    /// Response body bytes received (after any transfer decoding).
    pub bytes: u64,
}

/// The outcome of reading one endpoint during one poll.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The decoded answer, or why there is none. An `Err` means "unknown", not "empty".
    pub result: Result<T, Error>,
    /// Wall time of the read (all pages, for `/api/queues`).
    pub duration: Duration,
    /// Response body bytes received by a successful read (all pages); 0 for a failed one.
    pub bytes: u64,
}

impl<T> Fetched<T> {
    /// Awaits `read` and records its outcome, wall time and body bytes.
    pub async fn timed(read: impl Future<Output = Result<Body<T>, Error>>) -> Self {
        let start = Instant::now();
        let (result, bytes) = match read.await {
            Ok(body) => (Ok(body.value), body.bytes),
            Err(e) => (Err(e), 0),
        };
        Self {
            result,
            duration: start.elapsed(),
            bytes,
        }
    }

    /// A successful read of `value` that took no time and no bytes (for snapshots built by
    /// hand; also `Fetched::from(value)`).
    pub fn answered(value: T) -> Self {
        Self {
            result: Ok(value),
            duration: Duration::ZERO,
            bytes: 0,
        }
    }

    /// A failed read that took no time (for snapshots built by hand).
    pub fn failed(error: Error) -> Self {
        Self {
            result: Err(error),
            duration: Duration::ZERO,
            bytes: 0,
        }
    }

    /// The same outcome, read in `duration` with `bytes` body bytes.
    #[must_use]
    pub fn took(self, duration: Duration, bytes: u64) -> Self {
        Self {
            duration,
            bytes,
            ..self
        }
    }

    /// The value when the read succeeded.
    pub fn ok(&self) -> Option<&T> {
        self.result.as_ref().ok()
    }

    /// The error when the read failed.
    pub fn err(&self) -> Option<&Error> {
        self.result.as_ref().err()
    }
}

impl<T> From<T> for Fetched<T> {
    /// [`Fetched::answered`].
    fn from(value: T) -> Self {
        Self::answered(value)
    }
}

/// A management API endpoint: read on every poll ([`Endpoint::ALL`]) or by the reliability
/// audit ([`Endpoint::AUDIT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `GET /api/overview`: cluster name, versions, object and message totals.
    Overview,
    /// `GET /api/nodes`: cluster members, memory, disk, alarms, partitions.
    Nodes,
    /// `GET /api/queues` (or `/api/vhosts` then `/api/queues/{vhost}` per vhost,
    /// `rabbitmq.queue_read`), unpaged streamed reads: per-queue depth and consumers.
    Queues,
    /// `GET /api/health/checks/alarms`: resource alarms in effect (answers even while
    /// `/api/nodes` hangs).
    Alarms,
    /// `GET /api/exchanges/{vhost}/{name}/bindings/source` for each dead-letter exchange the
    /// queues name: which queues receive dead-lettered messages (read only when some queue
    /// has a dead-letter exchange and `alerting.backlog.discover_dead_letter_queues` is on).
    Bindings,
    /// `GET /api/consumers` (audit): every consumer's queue, acknowledgement mode and prefetch.
    Consumers,
    /// `GET /api/channels`, paged (audit): publisher confirms and publish counters.
    Channels,
    /// `GET /api/exchanges`, paged (audit): which exchanges exist.
    Exchanges,
    /// `GET /api/bindings` (audit): where each exchange routes.
    AllBindings,
    /// rabbitmq_prometheus `GET /metrics/detailed?family=queue_coarse_metrics&...` of every
    /// member: per-queue depth, consumers, memory, bytes (read with `rabbitmq.source`
    /// `prometheus`, or `auto` while the broker collects no statistics).
    PrometheusQueues,
    /// rabbitmq_prometheus `GET /metrics` of every member: node memory and its limit, disk
    /// and its limit, file descriptors, alarms (read with the prometheus source).
    PrometheusNodes,
    /// `GET /api/health/checks/{check}` of every member ([`health`]): quorum and mirror
    /// sync criticality, virtual hosts, certificate expiry. Not in [`Endpoint::ALL`]: a
    /// check that fails to read leaves its verdict unknown without failing the poll.
    HealthChecks,
}

impl Endpoint {
    /// Every endpoint the reliability audit reads, in order.
    pub const AUDIT: [Endpoint; 4] = [
        Endpoint::Consumers,
        Endpoint::Channels,
        Endpoint::Exchanges,
        Endpoint::AllBindings,
    ];

    /// Every endpoint the poll reads, in poll order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Overview,
        Endpoint::Nodes,
        Endpoint::Queues,
        Endpoint::Alarms,
        Endpoint::Bindings,
        Endpoint::PrometheusQueues,
        Endpoint::PrometheusNodes,
    ];

    /// Whether the endpoint is rabbitmq_prometheus's (port 15692) rather than the
    /// management API's.
    pub fn is_prometheus(self) -> bool {
        matches!(self, Endpoint::PrometheusQueues | Endpoint::PrometheusNodes)
    }

    /// The path below the management API's base URL, e.g. `/api/queues`; also the value of
    /// the `endpoint` label on the sidecar's own metrics.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Overview => "/api/overview",
            Endpoint::Nodes => "/api/nodes",
            Endpoint::Queues => "/api/queues",
            Endpoint::Alarms => "/api/health/checks/alarms",
            Endpoint::Bindings => "/api/exchanges/{vhost}/{name}/bindings/source",
            Endpoint::Consumers => "/api/consumers",
            Endpoint::Channels => "/api/channels",
            Endpoint::Exchanges => "/api/exchanges",
            Endpoint::AllBindings => "/api/bindings",
            Endpoint::PrometheusQueues => "/metrics/detailed",
            Endpoint::PrometheusNodes => "/metrics",
            Endpoint::HealthChecks => "/api/health/checks/{check}",
        }
    }
}

/// Where the last poll read queue and node figures from: the value of the `source` label of
/// `rabbitmq_watch_source_info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FigureSource {
    /// The management API's statistics (`/api/queues`, `/api/nodes`).
    #[default]
    Management,
    /// rabbitmq_prometheus (`/metrics/detailed`, `/metrics`), with the management API's queue
    /// and node listings.
    Prometheus,
}

impl FigureSource {
    /// `management` or `prometheus`.
    pub fn label(self) -> &'static str {
        match self {
            FigureSource::Management => "management",
            FigureSource::Prometheus => "prometheus",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// Why reading an endpoint failed. Messages name the endpoint and never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No complete answer within `rabbitmq.timeout`.
    #[error("{endpoint}: timed out after {timeout_ms} ms")]
    Timeout {
        /// The endpoint read.
        endpoint: Endpoint,
        /// The timeout that expired, in milliseconds.
        timeout_ms: u128,
    },
    /// The TCP or TLS connection could not be established (refused, unreachable, bad certificate).
    #[error("{endpoint}: cannot connect: {detail}")]
    Connect {
        /// The endpoint read.
        endpoint: Endpoint,
        /// What the connection attempt said.
        detail: String,
    },
    /// The broker answered with an unexpected HTTP status.
    #[error("{endpoint}: HTTP {status}{hint}: {body}")]
    Status {
        /// The endpoint read.
        endpoint: Endpoint,
        /// The HTTP status code.
        status: u16,
        /// An operator hint for well-known causes (401, 403, 404), else empty.
        hint: &'static str,
        /// The start of the response body (at most 200 bytes).
        body: String,
    },
    /// The answer was not the JSON expected.
    #[error("{endpoint}: cannot decode response: {detail}")]
    Decode {
        /// The endpoint read.
        endpoint: Endpoint,
        /// The parser's message (position and expectation).
        detail: String,
    },
    /// Any other transport failure (connection reset mid-body, protocol error).
    #[error("{endpoint}: request failed: {detail}")]
    Request {
        /// The endpoint read.
        endpoint: Endpoint,
        /// The error chain of the HTTP client.
        detail: String,
    },
}

impl Error {
    /// Every value of [`Error::reason`], for exporting failure counters at 0 up front.
    pub const REASONS: [&'static str; 5] = ["timeout", "connect", "status", "decode", "request"];

    /// A short, bounded name of the failure kind: the `reason` label of
    /// `rabbitmq_watch_endpoint_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Timeout { .. } => "timeout",
            Error::Connect { .. } => "connect",
            Error::Status { .. } => "status",
            Error::Decode { .. } => "decode",
            Error::Request { .. } => "request",
        }
    }

    /// What happened, in an operator's words, for alert texts: `timed out`,
    /// `connection refused`, `cannot connect`, `connection closed`, `HTTP 503`,
    /// `unreadable answer`, `request failed`.
    pub fn describe(&self) -> String {
        let lower = |d: &str| d.to_ascii_lowercase();
        match self {
            Error::Timeout { .. } => "timed out".to_owned(),
            Error::Connect { detail, .. } if lower(detail).contains("refused") => {
                "connection refused".to_owned()
            }
            Error::Connect { .. } => "cannot connect".to_owned(),
            Error::Status { status, .. } => format!("HTTP {status}"),
            Error::Decode { .. } => "unreadable answer".to_owned(),
            Error::Request { detail, .. }
                if ["closed", "reset", "incomplete", "eof", "broken pipe"]
                    .iter()
                    .any(|w| lower(detail).contains(w)) =>
            {
                "connection closed".to_owned()
            }
            Error::Request { .. } => "request failed".to_owned(),
        }
    }

    /// The endpoint whose read failed.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Error::Timeout { endpoint, .. }
            | Error::Connect { endpoint, .. }
            | Error::Status { endpoint, .. }
            | Error::Decode { endpoint, .. }
            | Error::Request { endpoint, .. } => *endpoint,
        }
    }
}
