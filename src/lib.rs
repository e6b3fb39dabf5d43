//! rabbitmq-watch: a Prometheus exporter and alerting sidecar for RabbitMQ, built on the
//! management HTTP API.
//!
//! # Layout
//!
//! Data flows one way: **poll → snapshot → alert evaluation → (metrics | HTTP API | notifier)**:
//! each snapshot is evaluated by the alert rules first, and the pair is what every reader sees.
//!
//! - [`config`]: YAML + environment + CLI layers, validated into [`config::Config`].
//! - [`rabbitmq`]: the management API client and its response types; the only module that
//!   talks to the broker.
//! - [`selection`]: the `queues.*` filters and caps applied to each queue listing.
//! - [`snapshot`]: one immutable [`snapshot::Snapshot`] per poll.
//! - [`poller`]: the interval loop that reads the API and publishes snapshots.
//! - [`alerting`]: alert rules and the state machine of alert instances.
//! - [`metrics`]: snapshot (+ alerts) → OpenMetrics text, encoded once per snapshot.
//! - [`http`]: the axum routes (`/`, `/metrics`, `/-/healthy`, `/-/ready`).
//!
//! [`run`] wires them together; the binary (`src/main.rs`) only parses the command line, sets
//! up logging, loads the configuration, binds the listener and turns signals into shutdown.

pub mod alerting;
pub mod config;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod poller;
pub mod rabbitmq;
pub mod selection;
pub mod snapshot;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::SidecarInfo;
use crate::poller::Poller;

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The management API client could not be built (TLS, CA file).
    #[error(transparent)]
    Client(#[from] rabbitmq::client::BuildError),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(#[from] std::io::Error),
}

/// Installs rustls's ring crypto provider for the process, once. Call before building any
/// [`rabbitmq::Client`]; calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the sidecar until `shutdown` is cancelled: polls the management API, encodes metrics
/// and serves HTTP on `listener`. Returns once every task has stopped.
///
/// # Errors
/// [`RunError`] when the client cannot be built or the server fails.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    install_crypto_provider();
    let client = rabbitmq::Client::new(&config.rabbitmq)?;
    let sidecar = SidecarInfo {
        poll_interval: config.poll.interval,
        rule_names: config
            .alerting
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect(),
    };
    let (snapshot_tx, snapshot_rx) = watch::channel(None);
    let (assessment_tx, assessment_rx) = watch::channel(None);
    let (exposition_tx, exposition_rx) =
        watch::channel(Arc::new(metrics::encode(None, &[], &sidecar)));
    let engine = alerting::Engine::new(config.alerting.rules.clone());

    let tasks = TaskTracker::new();
    tasks.spawn(
        Poller::new(client, config.poll.interval, config.queues.clone())
            .run(snapshot_tx, shutdown.clone()),
    );
    tasks.spawn(alerting::run(
        engine,
        snapshot_rx.clone(),
        assessment_tx,
        shutdown.clone(),
    ));
    tasks.spawn(metrics::run(
        assessment_rx.clone(),
        exposition_tx,
        sidecar,
        shutdown.clone(),
    ));
    tasks.close();

    let state = http::AppState {
        snapshots: snapshot_rx,
        assessments: assessment_rx,
        exposition: exposition_rx,
        info: Arc::new(http::ServerInfo {
            target: config.rabbitmq.url.to_string(),
            poll_interval: config.poll.interval,
            ready_max_age: config
                .poll
                .interval
                .saturating_mul(2)
                .saturating_add(config.rabbitmq.timeout),
        }),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, target = %config.rabbitmq.url, interval = ?config.poll.interval, "serving");
    }
    let served = axum::serve(listener, http::app(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    tasks.wait().await;
    tracing::info!("stopped");
    served.map_err(RunError::from)
}
