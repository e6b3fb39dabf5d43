//! Configuration reload: SIGHUP and `POST /-/reload` read the configuration again (the same
//! file, environment and command line as at start-up, secret files included), validate it as
//! start-up does (the management API client, the notifiers and the web configuration file are
//! built), and hand it to the running tasks only when all of that succeeded; otherwise the
//! running configuration stays and the reason is logged (never a secret: the messages are
//! [`ConfigError`]'s and the builders', which redact them).
//!
//! What the tasks keep (see each one's `run`): the poller its counters and what it learnt of
//! the cluster ([`crate::poller::Replacement`]); the engine every alert instance of a rule that
//! still exists, with its `active_since`, and the detectors' history
//! ([`crate::alerting::Engine::reconfigure`]); the dispatcher its notification log and
//! undelivered notifications; the silences are not touched. Keys that only take effect at
//! start-up ([`RESTART_ONLY`]) keep their running values: a reload that changes them succeeds
//! with a warning naming them.
//!
//! The outcome is exported as `rabbitmq_watch_config_last_reload_successful` and
//! `rabbitmq_watch_config_last_reload_success_timestamp_seconds`
//! ([`crate::metrics::config_reload`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::alerting;
use crate::clusters::ClusterUpdates;
use crate::config::{Config, ConfigError};
use crate::http::ServerInfo;
use crate::metrics::SidecarInfo;
use crate::metrics::config_reload::ReloadStatus;
use crate::notify::dispatch::Dispatcher;
use crate::poller::Replacement;
use crate::util::{Update, Updates, error_chain};

/// Reads the configuration again, as at start-up (the binary's file, environment variables
/// and command-line overrides).
pub type Loader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// The longest a reload waits for every task to take the new configuration.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Keys read only at start-up: a reload that changes them keeps their running values and
/// warns. `listen` and `web.*` (the socket, TLS, basic auth, the admin API switch), `log.*`
/// (the subscriber is installed once), `audit.*` (the audit task keeps its settings and its
/// management API client), `notify.state_file` and the Alertmanager push
/// (`notify.alertmanagers`, `notify.alertmanager_resend_delay`).
pub const RESTART_ONLY: [&str; 7] = [
    "listen",
    "web",
    "log",
    "audit",
    "notify.state_file",
    "notify.alertmanagers",
    "notify.alertmanager_resend_delay",
];

/// The restart-only keys ([`RESTART_ONLY`]) whose values differ between `running` and `new`.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let text = |c: &Config| -> [String; 7] {
        [
            format!("{:?}", c.listen),
            format!("{:?}", c.web),
            format!("{:?}", c.log),
            format!("{:?}", c.audit),
            format!("{:?}", c.notify.state_file),
            format!("{:?}", c.notify.alertmanagers),
            format!("{:?}", c.notify.alertmanager_resend_delay),
        ]
    };
    let (a, b) = (text(running), text(new));
    RESTART_ONLY
        .iter()
        .zip(a.iter().zip(&b))
        .filter(|(_, (a, b))| a != b)
        .map(|(k, _)| *k)
        .collect()
}

/// One cluster's poller and alert engine, as a reload reaches them.
#[derive(Debug)]
pub struct ClusterSenders {
    /// The cluster's name (`None`: the single cluster of the top level).
    pub name: Option<String>,
    /// To its poller.
    pub poller: mpsc::Sender<Update<Replacement>>,
    /// To its alert engine.
    pub engine: mpsc::Sender<Update<alerting::Settings>>,
}

/// What a running task is handed on a reload, one channel per task.
#[derive(Debug)]
pub struct Senders {
    /// To each cluster's poller and engine, in the order of the start-up configuration.
    pub clusters: Vec<ClusterSenders>,
    /// To the notification dispatcher.
    pub dispatcher: mpsc::Sender<Update<Dispatcher>>,
    /// To the metrics encoder.
    pub metrics: mpsc::Sender<Update<SidecarInfo>>,
    /// The HTTP routes' facts (readiness age, status page, inhibition display).
    pub server: watch::Sender<Arc<ServerInfo>>,
}

/// The receiving ends of [`Senders`] but the HTTP one, for the tasks' `run` functions.
#[derive(Debug)]
pub struct Receivers {
    /// For each cluster's [`crate::poller::Poller::run`] and [`crate::alerting::run`], in the
    /// order of the names given to [`channels`].
    pub clusters: Vec<ClusterUpdates>,
    /// For [`crate::notify::dispatch::run`].
    pub dispatcher: Updates<Dispatcher>,
    /// For [`crate::metrics::run`] or [`crate::metrics::clusters::run`].
    pub metrics: Updates<SidecarInfo>,
}

/// The update channels of every task (a poller and an engine for each of the clusters
/// `names`), and the HTTP facts' channel starting at `server`.
pub fn channels(
    names: Vec<Option<String>>,
    server: ServerInfo,
) -> (Senders, Receivers, watch::Receiver<Arc<ServerInfo>>) {
    let (mut cluster_senders, mut cluster_receivers) = (Vec::new(), Vec::new());
    for name in names {
        let (poller, poller_rx) = mpsc::channel(1);
        let (engine, engine_rx) = mpsc::channel(1);
        cluster_senders.push(ClusterSenders {
            name,
            poller,
            engine,
        });
        cluster_receivers.push(ClusterUpdates {
            poller: poller_rx,
            engine: engine_rx,
        });
    }
    let (dispatcher, dispatcher_rx) = mpsc::channel(1);
    let (metrics, metrics_rx) = mpsc::channel(1);
    let (server, server_rx) = watch::channel(Arc::new(server));
    (
        Senders {
            clusters: cluster_senders,
            dispatcher,
            metrics,
            server,
        },
        Receivers {
            clusters: cluster_receivers,
            dispatcher: dispatcher_rx,
            metrics: metrics_rx,
        },
        server_rx,
    )
}

/// The HTTP routes' facts for `config`: the target(s) as the status page shows them, and a
/// readiness age of two poll intervals plus the longest management API timeout.
pub fn server_info(config: &Config) -> ServerInfo {
    let timeout = config
        .targets()
        .iter()
        .map(|t| t.rabbitmq.timeout)
        .max()
        .unwrap_or(config.rabbitmq.timeout);
    ServerInfo {
        target: crate::clusters::describe_targets(config),
        poll_interval: config.poll.interval,
        admin_api: config.web.enable_admin_api,
        ready_max_age: config
            .poll
            .interval
            .saturating_mul(2)
            .saturating_add(timeout),
        inhibit_rules: config.notify.inhibit_rules.clone(),
    }
}

/// A successful reload: the warnings about the new configuration (restart-only keys that
/// changed, [`Config::warnings`]).
pub type Outcome = Result<Vec<String>, String>;

/// A reload request: answered once the reload has been applied or rejected.
type Request = oneshot::Sender<Outcome>;

/// Where `POST /-/reload` sends its requests.
#[derive(Debug, Clone)]
pub struct Handle(mpsc::Sender<Request>);

/// The reload task's inputs.
pub struct Reloader {
    /// Reads the configuration again.
    pub loader: Loader,
    /// The configuration at start-up (the restart-only keys keep its values).
    pub started: Config,
    /// The channels to the tasks.
    pub senders: Senders,
    /// The outcome, exported.
    pub status: Arc<ReloadStatus>,
    /// What the metrics encoder was started with (rule names and poll interval change).
    pub sidecar: SidecarInfo,
}

impl Reloader {
    /// Reloads on SIGHUP and on every request of the returned [`Handle`], one at a time, until
    /// `shutdown`. Returns the handle and the task to run.
    pub fn start(self, shutdown: CancellationToken) -> (Handle, impl Future<Output = ()> + Send) {
        let (tx, mut requests) = mpsc::channel::<Request>(8);
        // Installed now, before the server answers: a SIGHUP from then on reloads (the
        // default action would end the process).
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let task = async move {
            let mut running = self.started.clone();
            loop {
                #[cfg(unix)]
                let sighup = async {
                    match hangup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let sighup = std::future::pending::<Option<()>>();
                let reply = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = sighup => {
                        tracing::info!("SIGHUP: reloading the configuration");
                        None
                    }
                    Some(reply) = requests.recv() => {
                        tracing::info!("POST /-/reload: reloading the configuration");
                        Some(reply)
                    }
                };
                let outcome = self.reload(&mut running).await;
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
        };
        (Handle(tx), task)
    }

    /// One reload: load, validate, apply; the outcome recorded, logged and exported.
    async fn reload(&self, running: &mut Config) -> Outcome {
        let outcome = match (self.loader)() {
            Err(e) => Err(e.to_string()),
            Ok(new) => match self.apply(running, &new).await {
                Ok(warnings) => {
                    *running = new;
                    Ok(warnings)
                }
                Err(e) => Err(e),
            },
        };
        let now = SystemTime::now();
        self.status.record(outcome.is_ok(), now);
        match &outcome {
            Ok(warnings) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!("configuration reloaded");
            }
            Err(e) => tracing::error!(
                error = %e,
                "configuration reload failed; the running configuration is kept"
            ),
        }
        // The metrics encoder exports the outcome (and, after a success, the new rule names
        // and poll interval) before the reload is answered.
        let mut sidecar = self.sidecar.clone();
        sidecar.poll_interval = running.poll.interval;
        sidecar.rule_names = running
            .alerting
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect();
        sidecar.config_reload = Some(self.status.clone());
        let _ = hand(&self.senders.metrics, sidecar).await;
        outcome
    }

    /// Builds everything `new` needs and hands it to the tasks; nothing is handed when a
    /// part fails to build.
    async fn apply(&self, running: &Config, new: &Config) -> Result<Vec<String>, String> {
        if let Some(path) = &new.web.config_file {
            crate::web::WebFile::load(path).map_err(|e| error_chain(&e))?;
        }
        // Every cluster's poller is built before anything is handed: one that fails to build
        // rejects the whole reload.
        let running_targets = running.targets();
        let new_targets = new.targets();
        let mut handed = Vec::new();
        for senders in &self.senders.clusters {
            let Some(target) = new_targets.iter().find(|t| t.name == senders.name) else {
                continue;
            };
            let poller = crate::clusters::build_poller(new, target).map_err(|e| error_chain(&e))?;
            let new_target = running_targets
                .iter()
                .find(|t| t.name == senders.name)
                .is_none_or(|t| t.rabbitmq.url != target.rabbitmq.url);
            let settings = crate::clusters::engine_settings(new, target);
            handed.push((senders, Replacement { poller, new_target }, settings));
        }
        let dispatcher = crate::build_dispatcher(new).map_err(|e| error_chain(&e))?;
        let mut warnings: Vec<String> = restart_only_changes(&self.started, new)
            .into_iter()
            .map(|k| {
                format!(
                    "{k} changed: it takes effect only after a restart; the running value is kept"
                )
            })
            .collect();
        let running_names: Vec<_> = self.senders.clusters.iter().map(|c| &c.name).collect();
        let new_names: Vec<_> = new_targets.iter().map(|t| &t.name).collect();
        if running_names != new_names {
            warnings.push(format!(
                "clusters changed from {} to {}: adding, removing or renaming a cluster takes effect only after a restart; the clusters running keep polling, those still configured with the new settings",
                names_of(&running_names),
                names_of(&new_names)
            ));
        }
        warnings.extend(new.warnings());
        let mut server = server_info(new);
        server.admin_api = self.started.web.enable_admin_api;
        for (senders, _, settings) in &handed {
            hand(&senders.engine, settings.clone()).await?;
        }
        hand(&self.senders.dispatcher, dispatcher).await?;
        for (senders, replacement, _) in handed {
            hand(&senders.poller, replacement).await?;
        }
        self.senders.server.send_replace(Arc::new(server));
        Ok(warnings)
    }
}

/// Cluster names as a reload's warning shows them (`[a, b]`; `(top level)` for the single
/// unnamed cluster).
fn names_of(names: &[&Option<String>]) -> String {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.as_deref().unwrap_or("(top level)"))
        .collect();
    format!("[{}]", names.join(", "))
}

/// Sends `value` to a task and waits until it took it.
async fn hand<T>(tx: &mpsc::Sender<Update<T>>, value: T) -> Result<(), String> {
    let (taken, done) = oneshot::channel();
    let handed = async {
        tx.send(Update { value, taken })
            .await
            .map_err(|_| "a task has stopped".to_owned())?;
        done.await.map_err(|_| "a task has stopped".to_owned())
    };
    tokio::time::timeout(APPLY_TIMEOUT, handed)
        .await
        .map_err(|_| format!("a task did not take the configuration within {APPLY_TIMEOUT:?}"))?
}

/// `POST /-/reload`, behind the admin API switch ([`crate::http::admin_only`]): 200
/// `{"status":"success","warnings":[…]}` once the new configuration is applied; 500
/// `{"status":"error","error":"…"}` (the key and what is wrong, never a secret) when it was
/// rejected and the running one kept, as Prometheus answers; 503 while shutting down.
pub fn routes(handle: Handle, admin_api: bool) -> Router {
    Router::new()
        .route("/-/reload", axum::routing::post(reload))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                crate::http::admin_only(admin_api, request, next)
            },
        ))
        .with_state(handle)
}

/// The `POST /-/reload` handler.
async fn reload(axum::extract::State(handle): axum::extract::State<Handle>) -> Response {
    let (reply, answer) = oneshot::channel();
    let outcome = match handle.0.send(reply).await {
        Ok(()) => answer.await.ok(),
        Err(_) => None,
    };
    let json = |status, body| (status, axum::Json(body)).into_response();
    match outcome {
        Some(Ok(warnings)) => json(
            StatusCode::OK,
            serde_json::json!({"status": "success", "warnings": warnings}),
        ),
        Some(Err(error)) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"status": "error", "error": format!("configuration not reloaded, the running one is kept: {error}")}),
        ),
        None => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "error", "error": "shutting down"}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(yaml: &str) -> Config {
        crate::config::load_yaml(yaml, HashMap::new(), &[]).expect("valid configuration")
    }

    /// Only the restart-only keys that differ are named; reloadable ones (rules, poll
    /// interval, receivers) are not.
    #[test]
    fn restart_only_changes_name_exactly_the_changed_keys() {
        let base = load("poll:\n  interval: 10s\n");
        let reloadable = load(
            "poll:\n  interval: 20s\nalerting:\n  rules:\n    - alert: Deep\n      kind: queue\n      expr: messages > 5\n",
        );
        assert_eq!(restart_only_changes(&base, &reloadable), Vec::<&str>::new());
        let restart = load(
            "listen: 127.0.0.1:9999\nlog:\n  level: debug\nweb:\n  enable_admin_api: true\nnotify:\n  state_file: /tmp/x.json\n",
        );
        assert_eq!(
            restart_only_changes(&base, &restart),
            vec!["listen", "web", "log", "notify.state_file"]
        );
    }
}
