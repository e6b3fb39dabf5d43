//! rabbitmq-watch: a Prometheus exporter and alerting sidecar for RabbitMQ, built on the
//! management HTTP API.
//!
//! # Layout
//!
//! Data flows one way: **poll → snapshot → alert evaluation → (metrics | HTTP API | notifier)**:
//! each snapshot is evaluated by the alert rules first, and the pair is what every reader sees.
//! One line per module, saying what it owns:
//!
//! - [`util`]: helpers shared so that copies cannot drift: error chains
//!   ([`util::error_chain`]), the one HTML escaper ([`util::html`]), RFC 3339 times and their
//!   serde adapters ([`util::time`]), duration and `Display` serializers ([`util::ser`]).
//! - [`types`]: the [`types::Regex`] (anchored) and [`types::Secret`] (never printed) value types.
//! - [`matcher`]: label matchers (`=`, `!=`, `=~`, `!~`) and their parser, shared by routes,
//!   inhibition rules and silences.
//! - [`config`]: YAML + environment + CLI layers validated into [`config::Config`]; one file
//!   per section: [`config::rabbitmq`], [`config::queues`], [`config::cluster`],
//!   [`config::alerting`] (backlog settings), [`config::rules`] (rule definitions and the
//!   default catalogue `DEFAULTS`; their merging with `alerting.rules` in
//!   `config/rule_merge.rs`), [`config::notify`] (receivers, route, inhibit rules),
//!   [`config::email`], [`config::webhook`], [`config::alertmanager`], [`config::log`],
//!   [`config::web`]; shared field parsers in `config/parse.rs`, the `check-config` redacted
//!   view in `config/redact.rs`.
//! - [`rabbitmq`]: the only module that talks to the broker: [`rabbitmq::client`] (the
//!   management API client: paging, columns, timeouts), [`rabbitmq::model`] (response types;
//!   a field the broker did not report is `None`, never 0; [`rabbitmq::queue`]: a queue as
//!   held, compact), [`rabbitmq::members`] (every
//!   cluster member's own `/api/nodes`, for the cluster detector), [`rabbitmq::prometheus`]
//!   (every member's rabbitmq_prometheus: the second source of queue and node figures,
//!   `rabbitmq.source`) with its text parser [`rabbitmq::exposition`], [`rabbitmq::health`]
//!   (every member's own health checks: quorum / mirror sync critical, vhosts, certificates).
//! - [`snapshot`]: one immutable [`snapshot::Snapshot`] per poll: only what was read, and
//!   the channel types that carry it.
//! - [`selection`]: the `queues.*` filters and caps applied to each queue listing, and what
//!   they left out.
//! - [`poller`]: the interval loop that reads the API and publishes snapshots.
//! - [`alerting`]: the engine (state machine of alert instances, `unknown` kept apart from
//!   resolved) and its [`alerting::Assessment`]; [`alerting::rules`] (rule evaluation),
//!   [`alerting::backlog`] (per-queue sliding windows, classification, predictions),
//!   [`alerting::cluster`] (every member's view merged: partitions, node loss, unreachable
//!   members, restarts, alarms), [`alerting::replication`] (quorum queue, mirror and health
//!   check fields and alert details), [`alerting::capacity`] (node limits, free-disk forecast,
//!   churn and unroutable rates, distribution links, versions, CPU, queue latency).
//! - [`audit`]: the reliability audit on its own interval: reads consumers, channels,
//!   exchanges and bindings ([`rabbitmq::audit_reads`]), takes the queues and backlog verdicts
//!   from the latest assessment, and reports findings (settings and client behaviour that
//!   lose messages); pure checks in [`audit::queues`], [`audit::clients`],
//!   [`audit::dead_letter`]. It also publishes its findings on a channel of their own
//!   ([`alerting::findings`]) that the alert engine reads for `kind: audit` rules (the
//!   advisory alerts of `audit.alerts`), so alerting never imports the audit.
//! - [`notify`]: what is sent ([`notify::Message`]), how a delivery fails
//!   ([`notify::NotifyError`]), the one retry loop ([`notify::deliver`]) and the delivery
//!   counters;
//!   [`notify::dispatch`] (routing, grouping, the notification log), [`notify::silence`]
//!   (silences: validation, bounds, matching), [`notify::inhibit`] (inhibition),
//!   [`notify::state`] (the state file), [`notify::email`] (SMTP transport and rendering),
//!   [`notify::webhook`], [`notify::alertmanager`] (the push to Alertmanagers).
//! - [`metrics`]: assessment → exposition, encoded once per snapshot: [`metrics::overview`],
//!   [`metrics::nodes`], [`metrics::queues`], [`metrics::backlog`], [`metrics::cluster`]
//!   (the cluster detector's verdict), [`metrics::capacity`] (node limits, churn, links,
//!   versions, CPU, queue latency), [`metrics::alerts`], [`metrics::notify`] (deliveries,
//!   state file), [`metrics::sidecar`] (the sidecar's own health), [`metrics::format`]
//!   (OpenMetrics or Prometheus text, gzip), [`metrics::audit`] (the audit's findings),
//!   [`metrics::replication`] (quorum queues, mirrors, the members' health checks).
//! - [`status`]: the status page at `/`: a view model built from the snapshot, the
//!   assessment, the silences and the sidecar's health ([`status::view`]), depth sparklines
//!   ([`status::sparkline`]), askama templates in `templates/` escaping with [`util::html`].
//! - [`http`]: the axum routes (`/`, `/metrics`, `/-/healthy`, `/-/ready`, the alert and
//!   silence API, the status page's silence forms, the reliability audit's `/api/v1/audit`),
//!   the admin API switch, request timeout and panic catching.
//! - [`web`]: the server under them: the exporter-toolkit web configuration file
//!   ([`web::config`]), TLS with certificate reloading, basic auth and headers
//!   ([`web::auth`]), connection limit and timeouts, and the `probe` client ([`web::probe`]).
//! - [`reload`]: SIGHUP and `POST /-/reload`: the configuration read and validated again,
//!   then handed to the poller, the engine, the dispatcher, the metrics encoder and the HTTP
//!   routes over one update channel each, each keeping its state.
//! - [`supervise`]: every long-lived task is watched; one that stops or panics fails
//!   `/-/healthy` and `/-/ready` and, after a grace period, stops the process with an error.
//!
//! **Layering** (checked by `tests/layering.rs`): no top-level module imports a module that
//! imports it back, directly or through others; `util`, `types` and `matcher` import nothing
//! of the crate. The direction is util/types/matcher → config → rabbitmq → snapshot/selection
//! → poller; snapshot → alerting → notify; alerting → audit; metrics, status, http, web and
//! supervise on top, and reload above them.
//!
//! [`run`] wires them together; the binary (`src/main.rs`) only parses the command line, sets
//! up logging, loads the configuration, binds the listener and turns signals into shutdown
//! ([`run_reloadable`] with a loader that reads the configuration again).

#![warn(missing_docs)]

pub mod alerting;
pub mod audit;
pub mod clusters;
pub mod config;
pub mod http;
pub mod matcher;
pub mod metrics;
pub mod notify;
pub mod poller;
pub mod rabbitmq;
pub mod reload;
pub mod selection;
pub mod snapshot;
pub mod status;
pub mod supervise;
pub mod types;
pub mod util;
pub mod web;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::SidecarInfo;

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The management API client could not be built (TLS, CA file).
    #[error(transparent)]
    Client(#[from] rabbitmq::client::BuildError),
    /// A notification integration could not be set up.
    #[error("notify.receivers: {0}")]
    Notify(#[from] notify::NotifyError),
    /// The web configuration file (`web.config_file`) is invalid.
    #[error(transparent)]
    Web(#[from] web::WebConfigError),
    /// A supervised task stopped or panicked before shutdown was requested (see
    /// [`supervise`]); the reasons name the tasks.
    #[error("stopped because a task failed: {0}")]
    TaskFailed(String),
}

/// A task to run beside the sidecar's own, under supervision (tests inject failing ones).
type ExtraTask = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

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

/// [`run`], reloading the configuration through `loader` on SIGHUP and `POST /-/reload`
/// (see [`reload`]).
///
/// # Errors
/// As [`run`].
pub async fn run_reloadable(
    config: Config,
    loader: reload::Loader,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    run_with(config, listener, shutdown, Vec::new(), Some(loader)).await
}

/// Runs the sidecar until `shutdown` is cancelled: polls the management API, encodes metrics
/// and serves HTTP(S) on `listener`. Returns once every task has stopped.
///
/// Every long-lived task is supervised ([`supervise`]): when one stops or panics before
/// `shutdown` was requested, `/-/healthy` and `/-/ready` answer 503 naming it, and after
/// [`supervise::FAILURE_GRACE`] everything stops and this returns [`RunError::TaskFailed`].
///
/// # Errors
/// [`RunError`] when the client, the notifiers or the web configuration cannot be set up, or
/// when a task failed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    run_with(config, listener, shutdown, Vec::new(), None).await
}

/// [`run`] with `extra` tasks under the same supervision, reloading through `loader` if any.
async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    extra: Vec<ExtraTask>,
    loader: Option<reload::Loader>,
) -> Result<(), RunError> {
    install_crypto_provider();
    let web = match &config.web.config_file {
        Some(path) => Some(web::WebFile::load(path)?),
        None => None,
    };
    let saved = match &config.notify.state_file {
        Some(path) => notify::dispatch::SavedState::load(path),
        None => notify::dispatch::SavedState::default(),
    };
    let notify_stats = Arc::new(notify::NotifyStats::default());
    let dispatcher = build_dispatcher(&config)?;
    let (audit_tx, audit_rx) = watch::channel(None);
    let audit_rx = config.audit.enabled.then_some(audit_rx);
    // Reloads: one update channel per task, a poller and an engine per cluster (see `reload`).
    let targets = config.targets();
    let (senders, updates, info_rx) = reload::channels(
        targets.iter().map(|t| t.name.clone()).collect(),
        reload::server_info(&config),
    );
    let reload_status = Arc::new(metrics::config_reload::ReloadStatus::new(
        std::time::SystemTime::now(),
    ));
    let sidecar = SidecarInfo {
        poll_interval: config.poll.interval,
        rule_names: config
            .alerting
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        notify_stats: Some(notify_stats.clone()),
        audit: audit_rx.clone().map(|reports| metrics::audit::AuditSource {
            reports,
            max_findings: config.audit.max_findings,
        }),
        config_reload: loader.is_some().then(|| reload_status.clone()),
    };
    // The audit's findings for `kind: audit` rules (audit.alerts): the audit publishes, the
    // engine reads (the engine cannot read the audit's report, which sits above it).
    let (findings_tx, findings_rx) = watch::channel(None);
    let silences = Arc::new(notify::dispatch::Silences::from_saved(
        saved.silences.clone(),
    ));

    let supervisor = supervise::Supervisor::new(shutdown.clone());
    // One poller and alert engine per cluster (see `clusters`); the rest reads one assessment.
    let several = !config.clusters.is_empty();
    let mut pipelines = Vec::new();
    for (target, cluster_updates) in targets.into_iter().zip(updates.clusters) {
        let findings = (!several).then(|| findings_rx.clone());
        pipelines.push(clusters::spawn_cluster(
            &supervisor,
            &config,
            target,
            &saved.alerts,
            findings,
            cluster_updates,
            &shutdown,
        )?);
    }
    let (snapshot_rx, assessment_rx, exposition_rx) = clusters::spawn_readers(
        &supervisor,
        &pipelines,
        &sidecar,
        updates.metrics,
        &shutdown,
    );
    if config.audit.enabled {
        supervisor.spawn(
            "reliability audit",
            audit::run(
                pipelines[0].client.clone(),
                config.audit.clone(),
                assessment_rx.clone(),
                audit_tx,
                findings_tx,
                shutdown.clone(),
            ),
        );
    }
    supervisor.spawn(
        "notification dispatcher",
        notify::dispatch::run(
            dispatcher,
            notify::dispatch::Runtime {
                state_file: config.notify.state_file.clone(),
                saved,
                silences: silences.clone(),
                stats: notify_stats.clone(),
                backoff: notify::Backoff::default(),
            },
            assessment_rx.clone(),
            updates.dispatcher,
            shutdown.clone(),
        ),
    );
    if !config.notify.alertmanagers.is_empty() {
        let pusher = notify::alertmanager::Alertmanagers::new(
            config.notify.alertmanagers.clone(),
            config.notify.alertmanager_resend_delay,
            config.notify.external_url.clone(),
            notify_stats.clone(),
        );
        supervisor.spawn(
            "alertmanager pusher",
            pusher.run(assessment_rx.clone(), shutdown.clone()),
        );
    }
    for (name, task) in extra {
        supervisor.spawn(name, task);
    }

    // A state file that cannot be saved fails readiness, not health: alerting goes on.
    let state_file_stats = notify_stats.clone();
    supervisor
        .health()
        .add_readiness_check(move || state_file_stats.state_file_readiness());
    let state = http::AppState {
        health: supervisor.health(),
        silences,
        snapshots: snapshot_rx,
        assessments: assessment_rx,
        audit: audit_rx,
        exposition: exposition_rx,
        info: info_rx,
    };
    // Before "serving" is logged: SIGHUP reloads from then on.
    let reload_routes = loader.map(|loader| {
        let reloader = reload::Reloader {
            loader,
            started: config.clone(),
            senders,
            status: reload_status,
            sidecar,
        };
        let (handle, task) = reloader.start(shutdown.clone());
        supervisor.spawn("configuration reloader", task);
        reload::routes(handle, config.web.enable_admin_api)
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            target = %clusters::describe_targets(&config),
            interval = ?config.poll.interval,
            tls = web.as_ref().is_some_and(|w| w.tls.is_some()),
            basic_auth = web.as_ref().is_some_and(|w| !w.users.is_empty()),
            admin_api = config.web.enable_admin_api,
            "serving"
        );
    }
    for warning in web.iter().flat_map(|w| &w.warnings) {
        tracing::warn!("{warning}");
    }
    let exposed = !config.listen.ip().is_loopback();
    let tls = web.as_ref().is_some_and(|w| w.tls.is_some());
    let auth = web.as_ref().is_some_and(|w| !w.users.is_empty());
    if exposed && auth && !tls {
        tracing::warn!(listen = %config.listen, "basic auth without TLS: passwords cross the network in clear text; set tls_server_config in the web config file");
    }
    if exposed && config.web.enable_admin_api && !auth {
        tracing::warn!(listen = %config.listen, "web.enable_admin_api is on without basic_auth_users: anyone who reaches this address can create silences");
    }
    let mut app = http::app(state);
    if let Some(routes) = reload_routes {
        app = app.merge(routes);
    }
    let token = shutdown.clone();
    supervisor.spawn("http server", async move {
        web::serve(listener, app, web.as_ref(), token).await;
    });
    shutdown.cancelled().await;
    supervisor.wait().await;
    match supervisor.health().check() {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(())
        }
        Err(reasons) => Err(RunError::TaskFailed(reasons)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    /// A task that panics makes `/-/healthy` and `/-/ready` answer 503 naming it, and `run`
    /// return an error; no broker is needed (nothing listens at the management URL).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_fails_health_and_run() {
        let env = HashMap::from([(
            "RABBITMQ_WATCH__RABBITMQ__URL".to_owned(),
            "http://127.0.0.1:9/".to_owned(),
        )]);
        let config = config::load(None, env, &[]).expect("config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let broken: ExtraTask = (
            "test-injected",
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                panic!("injected failure");
            }),
        );
        let run = tokio::spawn(run_with(
            config,
            listener,
            shutdown.clone(),
            vec![broken],
            None,
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let healthy = client
            .get(format!("{base}/-/healthy"))
            .send()
            .await
            .expect("healthy");
        assert_eq!(healthy.status(), 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let body = loop {
            let r = client
                .get(format!("{base}/-/healthy"))
                .send()
                .await
                .expect("healthy");
            if r.status() == 503 {
                break r.text().await.expect("body");
            }
            assert!(tokio::time::Instant::now() < deadline, "still healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            body.contains("task test-injected panicked: injected failure"),
            "{body}"
        );
        let ready = client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .expect("ready");
        assert_eq!(ready.status(), 503);
        assert!(ready.text().await.expect("body").contains("test-injected"));
        let outcome = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("run stops by itself")
            .expect("join");
        match outcome {
            Err(RunError::TaskFailed(reason)) => assert!(reason.contains("test-injected")),
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        assert!(shutdown.is_cancelled());
    }
}
