//! One cluster's pipeline (management API client, members and rabbitmq_prometheus readers,
//! poller, alert engine), and the combination of several clusters' assessments
//! (`clusters:`).
//!
//! Each cluster has its own poller task on its own `poll.interval` schedule, so a slow or
//! unreachable cluster never delays the others, and its own alert engine (backlog windows,
//! cluster detector, alert instances labelled `rabbitmq_cluster`). The notifiers, the alert
//! API, the status page and the Alertmanager pusher read one combined assessment
//! ([`combine`]): every cluster's alerts, and the first cluster's snapshot and verdicts.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::alerting::findings::FindingsReceiver;
use crate::alerting::{self, Alert, Assessment, AssessmentReceiver};
use crate::config::{CLUSTER_LABEL, Config, Target};
use crate::metrics::clusters::ClusterPart;
use crate::metrics::{self, Exposition, SidecarInfo};
use crate::poller::{Poller, Replacement};
use crate::rabbitmq::{self, client::BuildError};
use crate::snapshot::SnapshotReceiver;
use crate::supervise::Supervisor;
use crate::util::Updates;

/// One running cluster pipeline: what its poller and engine publish.
#[derive(Debug)]
pub struct Pipeline {
    /// The cluster's name (`None`: the single cluster of the top level).
    pub name: Option<String>,
    /// The management API client (the reliability audit reads through it).
    pub client: rabbitmq::Client,
    /// Its snapshots, one per poll.
    pub snapshots: SnapshotReceiver,
    /// Its assessments, one per snapshot.
    pub assessments: AssessmentReceiver,
    /// The alerts restored from the state file for this cluster: what it contributes to the
    /// combined assessment until its first evaluation.
    pub restored: Vec<Alert>,
}

/// A task name that lives as long as the process: `what` alone for the single cluster,
/// `what (cluster NAME)` for a named one (built once per cluster at start).
fn task_name(what: &'static str, name: Option<&str>) -> &'static str {
    match name {
        None => what,
        Some(n) => Box::leak(format!("{what} (cluster {n})").into_boxed_str()),
    }
}

/// The rules that apply to `target` (every rule but those whose `labels.rabbitmq_cluster`
/// selects other clusters), with the backlog and node settings: what `target`'s alert engine
/// runs with, at start-up and after a reload.
pub fn engine_settings(config: &Config, target: &Target) -> alerting::Settings {
    alerting::Settings {
        rules: config
            .alerting
            .rules
            .iter()
            .filter(|r| target.selects(r))
            .cloned()
            .collect(),
        backlog: config.alerting.backlog.clone(),
        expected_nodes: target.cluster.expected_nodes,
    }
}

/// `target`'s poller: its management API client, queue filters, members and
/// rabbitmq_prometheus readers, on `poll.interval`.
///
/// # Errors
/// [`BuildError`] when a management API or rabbitmq_prometheus client cannot be built (TLS,
/// CA file).
pub fn build_poller(config: &Config, target: &Target) -> Result<Poller, BuildError> {
    let client = rabbitmq::Client::new(&target.rabbitmq)?;
    Ok(Poller::new(
        client,
        config.poll.interval,
        target.queues.clone(),
        config.alerting.backlog.discover_dead_letter_queues,
    )
    .with_deadline(config.poll.deadline)
    .with_expected_protocols(target.cluster.expected_protocols.clone())
    .with_cluster(rabbitmq::members::Reader::new(
        target.cluster.clone(),
        target.rabbitmq.clone(),
    )?)
    .with_prometheus(
        target.rabbitmq.source,
        rabbitmq::prometheus::Reader::new(target.rabbitmq.clone(), Some(target.cluster.clone()))?,
    ))
}

/// Where one cluster's poller and engine receive a reloaded configuration.
#[derive(Debug)]
pub struct ClusterUpdates {
    /// For [`Poller::run`].
    pub poller: Updates<Replacement>,
    /// For [`alerting::run`].
    pub engine: Updates<alerting::Settings>,
}

/// Builds and starts `target`'s poller and alert engine under `supervisor`: the engine
/// restores the alerts of `saved` that belong to this cluster and reads the audit's
/// `findings` (single cluster only); reloads arrive on `updates`.
///
/// # Errors
/// [`BuildError`] when a management API or rabbitmq_prometheus client cannot be built (TLS,
/// CA file).
pub fn spawn_cluster(
    supervisor: &Supervisor,
    config: &Config,
    target: Target,
    saved: &[Alert],
    findings: Option<FindingsReceiver>,
    updates: ClusterUpdates,
    shutdown: &CancellationToken,
) -> Result<Pipeline, BuildError> {
    let poller = build_poller(config, &target)?;
    let client = poller.client().clone();
    let settings = engine_settings(config, &target);
    let mut engine = alerting::Engine::with_backlog(settings.rules, settings.backlog)
        .with_expected_nodes(settings.expected_nodes)
        .for_cluster(target.name.clone());
    if let Some(findings) = findings {
        engine = engine.with_findings(findings);
    }
    let restored: Vec<Alert> = saved
        .iter()
        .filter(|a| a.labels.get(CLUSTER_LABEL) == target.name.as_ref())
        .filter(|a| {
            engine
                .rules()
                .iter()
                .any(|r| a.labels.get("alertname") == Some(&r.name))
        })
        .cloned()
        .collect();
    engine.restore(restored.clone());
    let (snapshot_tx, snapshots) = watch::channel(None);
    let (assessment_tx, assessments) = watch::channel(None);
    let name = target.name.as_deref();
    supervisor.spawn(
        task_name("poller", name),
        poller.run(snapshot_tx, updates.poller, shutdown.clone()),
    );
    supervisor.spawn(
        task_name("alert engine", name),
        alerting::run(
            engine,
            snapshots.clone(),
            updates.engine,
            assessment_tx,
            shutdown.clone(),
        ),
    );
    Ok(Pipeline {
        name: target.name,
        client,
        snapshots,
        assessments,
        restored,
    })
}

/// The management URL of the single cluster, or `NAME=URL` of each cluster, comma-separated:
/// what the status page and the start-up log show as the target.
pub fn describe_targets(config: &Config) -> String {
    if config.clusters.is_empty() {
        return config.rabbitmq.url.to_string();
    }
    config
        .clusters
        .iter()
        .map(|c| format!("{}={}", c.name, c.rabbitmq.url))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starts what turns `pipelines` into what the sidecar-wide readers use, and returns them:
/// the snapshots (the first cluster's: status page and readiness), the assessments (the one
/// cluster's, or [`run_combiner`]'s) and the encoded exposition ([`crate::metrics::run`] for
/// the single cluster, [`crate::metrics::clusters::run`] for several).
pub fn spawn_readers(
    supervisor: &Supervisor,
    pipelines: &[Pipeline],
    sidecar: &SidecarInfo,
    metrics_updates: Updates<SidecarInfo>,
    shutdown: &CancellationToken,
) -> (
    SnapshotReceiver,
    AssessmentReceiver,
    watch::Receiver<Arc<Exposition>>,
) {
    let snapshots = pipelines
        .first()
        .map_or_else(|| watch::channel(None).1, |p| p.snapshots.clone());
    if let [single] = pipelines
        && single.name.is_none()
    {
        let (exposition_tx, exposition_rx) =
            watch::channel(Arc::new(metrics::encode(None, None, None, &[], sidecar)));
        supervisor.spawn(
            "metrics encoder",
            metrics::run(
                single.assessments.clone(),
                exposition_tx,
                sidecar.clone(),
                metrics_updates,
                shutdown.clone(),
            ),
        );
        return (snapshots, single.assessments.clone(), exposition_rx);
    }
    let named: Vec<(String, AssessmentReceiver)> = pipelines
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.assessments.clone()))
        .collect();
    let empty: Vec<ClusterPart> = named.iter().map(|(n, _)| (n.clone(), None)).collect();
    let (exposition_tx, exposition_rx) = watch::channel(Arc::new(
        metrics::clusters::encode_clusters(&empty, sidecar),
    ));
    supervisor.spawn(
        "metrics encoder",
        metrics::clusters::run(
            named,
            exposition_tx,
            sidecar.clone(),
            metrics_updates,
            shutdown.clone(),
        ),
    );
    let (assessment_tx, assessments) = watch::channel(None);
    supervisor.spawn(
        "cluster combiner",
        run_combiner(
            pipelines
                .iter()
                .map(|p| (p.assessments.clone(), p.restored.clone()))
                .collect(),
            assessment_tx,
            shutdown.clone(),
        ),
    );
    (snapshots, assessments, exposition_rx)
}

/// The assessment the sidecar-wide readers see for several clusters: every cluster's alerts
/// (for a cluster not evaluated yet, its `restored` alerts, so that nothing looks resolved),
/// sorted by fingerprint; the snapshot, backlog report and cluster verdict of the first
/// cluster evaluated, in the order of `clusters:`. `None` until some cluster was evaluated.
pub fn combine(parts: &[(Option<Arc<Assessment>>, &[Alert])]) -> Option<Assessment> {
    let first = parts.iter().find_map(|(a, _)| a.as_ref())?;
    let mut alerts: Vec<Alert> = parts
        .iter()
        .flat_map(|(a, restored)| match a {
            Some(a) => a.alerts.iter(),
            None => restored.iter(),
        })
        .cloned()
        .collect();
    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    let evaluated_at = parts
        .iter()
        .filter_map(|(a, _)| a.as_ref().map(|a| a.evaluated_at))
        .max()
        .unwrap_or_else(SystemTime::now);
    Some(Assessment {
        snapshot: first.snapshot.clone(),
        backlog: first.backlog.clone(),
        cluster: first.cluster.clone(),
        alerts,
        evaluated_at,
    })
}

/// Publishes [`combine`] of `pipelines`' assessments on `tx` whenever any of them changes,
/// until `shutdown`.
pub async fn run_combiner(
    pipelines: Vec<(AssessmentReceiver, Vec<Alert>)>,
    tx: watch::Sender<Option<Arc<Assessment>>>,
    shutdown: CancellationToken,
) {
    let (mut receivers, restored): (Vec<AssessmentReceiver>, Vec<Vec<Alert>>) =
        pipelines.into_iter().unzip();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ok = alerting::any_changed(&mut receivers) => if !ok { break },
        }
        let latest: Vec<Option<Arc<Assessment>>> = receivers
            .iter_mut()
            .map(|rx| rx.borrow_and_update().clone())
            .collect();
        let parts: Vec<(Option<Arc<Assessment>>, &[Alert])> = latest
            .into_iter()
            .zip(restored.iter().map(Vec::as_slice))
            .collect();
        if let Some(combined) = combine(&parts) {
            tx.send_replace(Some(Arc::new(combined)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::snapshot::Snapshot;

    fn alert(cluster: &str) -> Alert {
        let labels = BTreeMap::from([
            ("alertname".to_owned(), "RabbitmqNodeDown".to_owned()),
            (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
        ]);
        Alert::firing_since(labels, UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    fn assessment(alerts: Vec<Alert>) -> Arc<Assessment> {
        Arc::new(Assessment {
            snapshot: Arc::new(Snapshot::builder().build()),
            backlog: Arc::default(),
            cluster: Arc::default(),
            alerts,
            evaluated_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        })
    }

    #[test]
    fn a_cluster_not_evaluated_yet_contributes_its_restored_alerts() {
        assert!(combine(&[(None, &[alert("a")][..])]).is_none());
        let restored_b = [alert("b")];
        let combined = combine(&[
            (Some(assessment(vec![alert("a")])), &[][..]),
            (None, &restored_b[..]),
        ])
        .expect("one cluster evaluated");
        let clusters: Vec<&str> = combined
            .alerts
            .iter()
            .map(|a| a.labels[CLUSTER_LABEL].as_str())
            .collect();
        assert_eq!(clusters.len(), 2);
        assert!(clusters.contains(&"a") && clusters.contains(&"b"));
        // Once evaluated, its assessment replaces what was restored.
        let combined = combine(&[
            (Some(assessment(vec![alert("a")])), &[][..]),
            (Some(assessment(vec![])), &restored_b[..]),
        ])
        .expect("evaluated");
        assert_eq!(combined.alerts.len(), 1);
    }
}
