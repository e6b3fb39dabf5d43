//! Supervision of the long-lived tasks (poller, alert engine, metrics encoder, dispatcher,
//! Alertmanager pusher): each runs in its own tokio task and is watched. A task that returns
//! before shutdown was requested, or that panics at any time, is a failure: it is logged at
//! error level with the task's name, recorded in [`Health`] (so `/-/healthy` and `/-/ready`
//! answer 503 naming it), and after [`FAILURE_GRACE`] the whole sidecar is shut down so that
//! [`crate::run`] returns [`crate::RunError::TaskFailed`] and the process exits non-zero: its
//! supervisor (systemd, Kubernetes, Docker) restarts it, and the state file restores alert
//! states, the notification log and silences.
//!
//! Why not restart the task in place: a task that died left its channels closed and its state
//! unknown (a half-written state file, a dispatcher queue that nobody drains); a fresh process
//! is the only state that is known to be consistent.
//!
//! [`Health`] also holds readiness-only conditions ([`Health::add_readiness_check`]): a state
//! file whose last save failed makes `/-/ready` answer 503 with the reason while `/-/healthy`
//! stays 200, since the process is alive and alerting goes on.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the HTTP server keeps answering after a task failed, before everything stops:
/// long enough for a probe or an operator to read the 503 and its reason, short enough that
/// alerting is not left half-dead.
pub const FAILURE_GRACE: Duration = Duration::from_secs(2);

/// A readiness-only condition: `Err(reason)` makes `/-/ready` answer 503 with the reason,
/// never `/-/healthy` (the process is alive).
type ReadinessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Whether every supervised task is still running as it should, and the readiness-only
/// conditions (a state file that cannot be saved). Cheap to clone (clones share everything);
/// read by the HTTP health routes.
#[derive(Clone, Default)]
pub struct Health {
    /// One line per failed task, in the order they failed.
    failures: Arc<Mutex<Vec<String>>>,
    /// Conditions checked by [`Health::check_ready`] only, in the order they were added.
    readiness: Arc<Mutex<Vec<ReadinessCheck>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Adds a condition that fails readiness only ([`Health::check_ready`]), for every clone.
    pub fn add_readiness_check(
        &self,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(check));
    }

    /// [`Health::check`], then every readiness condition: `Ok` while no task failed and every
    /// condition holds (`/-/ready` also needs a recent poll, see [`crate::http::readiness`]).
    ///
    /// # Errors
    /// The tasks' failures, else the first failing condition's reason.
    pub fn check_ready(&self) -> Result<(), String> {
        self.check()?;
        let checks = self
            .readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        checks.iter().try_for_each(|check| check())
    }

    /// `Ok` while no supervised task has failed; else every failure, `; `-separated.
    ///
    /// # Errors
    /// The reasons, each naming its task.
    pub fn check(&self) -> Result<(), String> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    fn record(&self, reason: String) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(reason);
    }
}

/// Spawns and watches the long-lived tasks; see the module docs.
#[derive(Debug)]
pub struct Supervisor {
    /// Tracks the watchers (one per task), so that [`Supervisor::wait`] waits for every task.
    tracker: TaskTracker,
    /// The sidecar's shutdown: requested by a signal, or by the supervisor after a failure.
    shutdown: CancellationToken,
    /// Failures so far.
    health: Health,
}

impl Supervisor {
    /// A supervisor that cancels `shutdown` after a task failed.
    pub fn new(shutdown: CancellationToken) -> Self {
        Supervisor {
            tracker: TaskTracker::new(),
            shutdown,
            health: Health::default(),
        }
    }

    /// The health handle the HTTP routes read.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Runs `task` under supervision as `name` (used in logs and health reasons). The task must
    /// return only once the shutdown token is cancelled.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        let shutdown = self.shutdown.clone();
        let health = self.health.clone();
        self.tracker.spawn(async move {
            let reason = match handle.await {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => format!("task {name} stopped before shutdown was requested"),
                Err(e) if e.is_panic() => {
                    format!("task {name} panicked: {}", panic_message(e.into_panic()))
                }
                Err(_) => format!("task {name} was cancelled"),
            };
            tracing::error!(task = name, reason = %reason, "supervised task failed; stopping the sidecar");
            health.record(reason);
            tokio::select! {
                () = tokio::time::sleep(FAILURE_GRACE) => {}
                () = shutdown.cancelled() => {}
            }
            shutdown.cancel();
        });
    }

    /// Waits until every supervised task (and its watcher) has ended. Call after cancelling
    /// the shutdown token.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The text of a panic payload (`panic!("…")` gives a `&str` or a `String`).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panic_or_an_early_end_is_a_failure_and_stops_everything() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let health = supervisor.health();
        let token = shutdown.clone();
        supervisor.spawn("well-behaved", async move { token.cancelled().await });
        supervisor.spawn("early", async {});
        supervisor.spawn("broken", async { panic!("boom") });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let reason = health.check().unwrap_err();
        assert!(
            reason.contains("task early stopped before shutdown"),
            "{reason}"
        );
        assert!(reason.contains("task broken panicked: boom"), "{reason}");
        assert!(!reason.contains("well-behaved"), "{reason}");
        assert!(
            !shutdown.is_cancelled(),
            "probes get FAILURE_GRACE to see it"
        );
        tokio::time::sleep(FAILURE_GRACE).await;
        assert!(shutdown.is_cancelled());
        supervisor.wait().await;
    }

    #[tokio::test]
    async fn tasks_that_end_on_shutdown_are_healthy() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let token = shutdown.clone();
        supervisor.spawn("poller", async move { token.cancelled().await });
        shutdown.cancel();
        supervisor.wait().await;
        assert_eq!(supervisor.health().check(), Ok(()));
    }
}
