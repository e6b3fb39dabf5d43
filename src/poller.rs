//! The poll loop: once per `poll.interval`, read every endpoint concurrently into a
//! [`Snapshot`] and publish it on a `tokio::sync::watch` channel. Polls never overlap; a poll
//! that overruns the interval delays the next one. Failures are logged here, one line per
//! failed endpoint, and counted in the snapshot's [`PollTotals`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::rabbitmq::{Body, Client, Endpoint, Error};
use crate::snapshot::{Fetched, PollTotals, Snapshot};

/// The receiving side of the snapshot channel: `None` until the first poll has finished.
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;
/// The sending side of the snapshot channel, owned by the [`Poller`].
pub type SnapshotSender = watch::Sender<Option<Arc<Snapshot>>>;

/// Reads the management API on a fixed interval and publishes snapshots.
#[derive(Debug)]
pub struct Poller {
    /// The management API client.
    client: Client,
    /// Time between the starts of two polls (`poll.interval`).
    interval: Duration,
}

impl Poller {
    /// A poller reading through `client` every `interval`.
    pub fn new(client: Client, interval: Duration) -> Self {
        Self { client, interval }
    }

    /// Polls until `shutdown` is cancelled, publishing each snapshot on `tx`. The first poll
    /// starts at once. A poll in progress is abandoned on shutdown.
    pub async fn run(self, tx: SnapshotSender, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut totals = PollTotals::default();
        let mut was_up = true;
        for seq in 1.. {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let snapshot = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = self.poll(seq, &totals) => s,
            };
            totals = snapshot.totals.clone();
            log_outcome(&snapshot, &mut was_up);
            tx.send_replace(Some(Arc::new(snapshot)));
        }
        tracing::debug!("poller stopped");
    }

    /// Reads every endpoint once, concurrently, and returns the snapshot numbered `seq` with
    /// `previous` totals updated by this poll.
    pub async fn poll(&self, seq: u64, previous: &PollTotals) -> Snapshot {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let (overview, nodes, queues, alarms) = tokio::join!(
            timed(self.client.overview()),
            timed(self.client.nodes()),
            timed(self.client.queues()),
            timed(self.client.alarms()),
        );
        let mut snapshot = Snapshot {
            seq,
            started_at,
            duration: start.elapsed(),
            overview,
            nodes,
            queues,
            alarms,
            totals: previous.clone(),
        };
        let mut totals = previous.clone();
        totals.record(&snapshot);
        snapshot.totals = totals;
        snapshot
    }
}

async fn timed<T>(f: impl Future<Output = Result<Body<T>, Error>>) -> Fetched<T> {
    let start = Instant::now();
    let (result, bytes) = match f.await {
        Ok(body) => (Ok(body.value), body.bytes),
        Err(e) => (Err(e), 0),
    };
    Fetched {
        result,
        duration: start.elapsed(),
        bytes,
    }
}

/// One warning per failed endpoint; one info line when a failing sidecar recovers.
fn log_outcome(snapshot: &Snapshot, was_up: &mut bool) {
    for endpoint in Endpoint::ALL {
        if let Some(e) = snapshot.error(endpoint) {
            tracing::warn!(
                endpoint = endpoint.path(),
                reason = e.reason(),
                error = %e,
                seq = snapshot.seq,
                "poll failed"
            );
        }
    }
    let up = snapshot.is_up();
    if up && !*was_up {
        tracing::info!(
            seq = snapshot.seq,
            "poll recovered: every endpoint answered"
        );
    }
    tracing::debug!(
        seq = snapshot.seq,
        up,
        duration_ms = snapshot.duration.as_millis() as u64,
        queues = snapshot.queues.ok().map(Vec::len),
        "poll finished"
    );
    *was_up = up;
}
