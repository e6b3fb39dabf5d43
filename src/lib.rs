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
//! - [`cluster`]: the cluster detector: every member's own view, merged (partitions, node
//!   loss, unreachable members, restarts, alarms).
//! - [`alerting`]: alert rules and the state machine of alert instances; the backlog detector
//!   ([`alerting::backlog`]: per-queue sliding windows, classification, predictions), whose
//!   report travels with the alerts to the metrics.
//! - [`metrics`]: snapshot (+ backlog report, alerts) → OpenMetrics text, encoded once per
//!   snapshot.
//! - [`notify`]: routing, grouping, silences, inhibition, delivery with retries, the state
//!   file; one file per integration (webhook, email, Alertmanager).
//! - [`http`]: the axum routes (`/`, `/metrics`, `/-/healthy`, `/-/ready`).
//!
//! [`run`] wires them together; the binary (`src/main.rs`) only parses the command line, sets
//! up logging, loads the configuration, binds the listener and turns signals into shutdown.

pub mod alerting;
pub mod cluster;
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
    /// The state file exists but cannot be read.
    #[error("{0}")]
    State(String),
    /// A notification integration could not be set up.
    #[error("notify.receivers: {0}")]
    Notify(#[from] notify::NotifyError),
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

/// The dispatcher of `notify.*`, with every integration built (HTTP clients, SMTP transports).
fn build_dispatcher(config: &Config) -> Result<notify::dispatch::Dispatcher, RunError> {
    use notify::dispatch::{Integration, Receiver};
    let mut receivers = Vec::new();
    for r in &config.notify.receivers {
        let mut integrations = Vec::new();
        for w in &r.webhooks {
            integrations.push(Integration::Webhook(notify::webhook::Webhook::new(
                w.clone(),
            )?));
        }
        for e in &r.emails {
            integrations.push(Integration::Email(notify::email::Email::new(e.clone())?));
        }
        receivers.push(Receiver {
            name: r.name.clone(),
            integrations,
        });
    }
    Ok(notify::dispatch::Dispatcher {
        route: config.notify.route.clone(),
        receivers,
        inhibit_rules: config.notify.inhibit_rules.clone(),
        external_url: config.notify.external_url.clone(),
    })
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
    let saved = match &config.notify.state_file {
        Some(path) => notify::dispatch::SavedState::load(path),
        None => notify::dispatch::SavedState::default(),
    };
    let notify_stats = Arc::new(notify::NotifyStats::default());
    let dispatcher = build_dispatcher(&config)?;
    let sidecar = SidecarInfo {
        poll_interval: config.poll.interval,
        rule_names: config
            .alerting
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        notify_stats: Some(notify_stats.clone()),
    };
    let (snapshot_tx, snapshot_rx) = watch::channel(None);
    let (assessment_tx, assessment_rx) = watch::channel(None);
    let (exposition_tx, exposition_rx) =
        watch::channel(Arc::new(metrics::encode(None, None, &[], &sidecar)));
    let mut engine = alerting::Engine::with_backlog(
        config.alerting.rules.clone(),
        config.alerting.backlog.clone(),
    );
    engine.restore(saved.alerts.clone());
    let silences = Arc::new(notify::dispatch::Silences::from_saved(
        saved.silences.clone(),
    ));

    let tasks = TaskTracker::new();
    let poller = Poller::new(
        client,
        config.poll.interval,
        config.queues.clone(),
        config.alerting.backlog.discover_dead_letter_queues,
    )
    .with_cluster(cluster::Reader::new(
        config.cluster.clone(),
        config.rabbitmq.clone(),
    )?);
    tasks.spawn(poller.run(snapshot_tx, shutdown.clone()));
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
    tasks.spawn(notify::dispatch::run(
        dispatcher,
        notify::dispatch::Runtime {
            state_file: config.notify.state_file.clone(),
            saved,
            silences: silences.clone(),
            stats: notify_stats.clone(),
            backoff: notify::Backoff::default(),
        },
        assessment_rx.clone(),
        shutdown.clone(),
    ));
    if !config.notify.alertmanagers.is_empty() {
        let pusher = notify::alertmanager::Alertmanagers::new(
            config.notify.alertmanagers.clone(),
            config.notify.alertmanager_resend_delay,
            config.notify.external_url.clone(),
            notify_stats.clone(),
        );
        tasks.spawn(pusher.run(assessment_rx.clone(), shutdown.clone()));
    }
    tasks.close();

    let state = http::AppState {
        silences,
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
