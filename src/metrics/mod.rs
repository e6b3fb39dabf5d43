//! Snapshot → Prometheus exposition (OpenMetrics text).
//!
//! The exposition is a pure function of the latest [`Snapshot`] ([`encode`]); [`run`] encodes
//! it once per snapshot and publishes the bytes, so a scrape only copies a buffer and never
//! reaches the broker. Series of objects that are gone from the snapshot are gone from the
//! output; a field the broker did not report gives no series (absent = unknown, never 0).
//!
//! One file per family group: [`overview`] (`/api/overview`), [`nodes`] (`/api/nodes` and the
//! alarm check), [`queues`] (`/api/queues`), [`sidecar`] (the sidecar's own health),
//! [`cluster`] (the cluster detector's verdict: every member's own view), [`backlog`] (the
//! backlog detector's report), [`capacity`] (node limits, predictions, churn, distribution
//! links, versions, queue latency), [`alerts`] and [`notify`] (the alert engine and notifiers),
//! [`audit`] (the reliability audit's latest report, taken when the exposition is encoded),
//! [`replication`] (quorum queue members and leaders, mirrors, every member's health checks).

pub mod alerts;
pub mod audit;
pub mod backlog;
pub mod capacity;
pub mod cluster;
pub mod clusters;
pub mod config_reload;
pub mod format;
pub mod nodes;
pub mod notify;
pub mod overview;
pub mod queues;
pub mod replication;
pub mod sidecar;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::alerting::AssessmentReceiver;
use crate::alerting::cluster::ClusterStatus;
use crate::rabbitmq::Endpoint;
use crate::snapshot::Snapshot;

/// Facts about the sidecar that are not in a snapshot but go into the exposition.
#[derive(Debug, Clone)]
pub struct SidecarInfo {
    /// `poll.interval`, exported as `rabbitmq_watch_poll_interval_seconds`.
    pub poll_interval: Duration,
    /// Names of the alert rules, so `rabbitmq_watch_alerts` has a 0 series for each.
    pub rule_names: Vec<String>,
    /// Delivery counters of the notifiers (`None`: no notifier runs).
    pub notify_stats: Option<Arc<crate::notify::NotifyStats>>,
    /// The reliability audit's reports (`None`: `audit.enabled` is false).
    pub audit: Option<audit::AuditSource>,
    /// The configuration reloads' outcome (`None`: no reloads, the families are not exported).
    pub config_reload: Option<Arc<config_reload::ReloadStatus>>,
}

/// An encoded exposition and the poll it was built from.
#[derive(Debug)]
pub struct Exposition {
    /// [`Snapshot::seq`] of the snapshot encoded; 0 before the first poll.
    pub seq: u64,
    /// The exposition in every format and encoding, each built once.
    pub variants: format::Variants,
}

/// A metric family: what every family in this module declares once, as a constant, so the
/// name, help, unit and source live in one place.
#[derive(Debug)]
pub struct Family {
    /// Name without the unit or `_total`/`_info` suffix (prometheus-client appends those).
    pub name: &'static str,
    /// What the value means.
    pub help: &'static str,
    /// Base unit, appended to the name (`_bytes`, `_seconds`).
    pub unit: Option<Unit>,
    /// Where the value comes from: management API endpoint and field, or `sidecar`.
    pub source: &'static str,
}

impl Family {
    fn help_text(&self) -> String {
        if self.source == "sidecar" {
            self.help.to_owned()
        } else {
            format!(
                "{} Source: {}. As of the last poll (up to one poll interval old).",
                self.help, self.source
            )
        }
    }

    /// Writes this family as a gauge with one sample per `(labels, value)`.
    fn gauge<L, V>(
        &self,
        enc: &mut DescriptorEncoder,
        samples: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result
    where
        L: EncodeLabelSet,
        V: EncodeGaugeValue,
    {
        let help = self.help_text();
        let mut family =
            enc.encode_descriptor(self.name, &help, self.unit.as_ref(), MetricType::Gauge)?;
        for (labels, value) in samples {
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// Writes this family as a gauge with one unlabelled sample, or none when `value` is unknown.
    fn gauge_value<V: EncodeGaugeValue>(
        &self,
        enc: &mut DescriptorEncoder,
        value: Option<V>,
    ) -> fmt::Result {
        let help = self.help_text();
        let family =
            enc.encode_descriptor(self.name, &help, self.unit.as_ref(), MetricType::Gauge)?;
        match value {
            Some(v) => ConstGauge::new(v).encode(family),
            None => Ok(()),
        }
    }

    /// Writes this family as a counter with one unlabelled sample.
    fn counter_value(&self, enc: &mut DescriptorEncoder, value: u64) -> fmt::Result {
        self.counter_opt(enc, Some(value))
    }

    /// Writes this family as a counter with one unlabelled sample, or none when unknown.
    fn counter_opt(&self, enc: &mut DescriptorEncoder, value: Option<u64>) -> fmt::Result {
        let help = self.help_text();
        let family =
            enc.encode_descriptor(self.name, &help, self.unit.as_ref(), MetricType::Counter)?;
        match value {
            Some(v) => ConstCounter::new(v).encode(family),
            None => Ok(()),
        }
    }

    /// Writes this family as a counter (`_total`) with one sample per `(labels, value)`.
    fn counter<L: EncodeLabelSet>(
        &self,
        enc: &mut DescriptorEncoder,
        samples: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        let help = self.help_text();
        let mut family =
            enc.encode_descriptor(self.name, &help, self.unit.as_ref(), MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// Writes this family as an info metric (`_info`, value 1) with one sample per label set.
    fn info<L: EncodeLabelSet>(
        &self,
        enc: &mut DescriptorEncoder,
        samples: impl IntoIterator<Item = L>,
    ) -> fmt::Result {
        let help = self.help_text();
        let mut family = enc.encode_descriptor(self.name, &help, None, MetricType::Info)?;
        for labels in samples {
            family.encode_info(&labels)?;
        }
        Ok(())
    }
}

/// Per (endpoint, field): how many objects of the last poll lacked a field the sidecar exports
/// (their series are absent). Filled while encoding, written last as
/// `rabbitmq_watch_missing_fields`.
#[derive(Debug, Default)]
pub struct MissingFields(Vec<(Endpoint, String, u64)>);

impl MissingFields {
    /// Records `misses` objects lacking `source`'s field; `source` is a [`Family::source`]
    /// such as `/api/queues messages_ready` (the endpoint prefix is dropped).
    pub fn count(&mut self, endpoint: Endpoint, source: &str, misses: usize) {
        let field = source
            .strip_prefix(endpoint.path())
            .unwrap_or(source)
            .trim()
            .to_owned();
        self.0.push((endpoint, field, misses as u64));
    }
}

/// `rabbitmq_watch_missing_fields{endpoint,field}`.
pub const MISSING: Family = Family {
    name: "rabbitmq_watch_missing_fields",
    help: "Objects (queues, nodes) in the last poll that did not report this field, so their series for it are absent: statistics not emitted yet (new queue), a node that is down, or statistics disabled on the broker (RabbitMQ 4.x management_agent.disable_metrics_collector).",
    unit: None,
    source: "sidecar",
};

/// A family fed by one numeric field of an API object (`None`: the broker did not report it).
type Field<T> = (&'static Family, fn(&T) -> Option<u64>);

/// Converts a flag to a 0/1 sample value.
fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// The collector handed to prometheus-client: encodes one snapshot and its alerts.
#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Option<Arc<Snapshot>>,
    backlog: Option<Arc<crate::alerting::backlog::Report>>,
    cluster: Option<Arc<ClusterStatus>>,
    alerts: alerts::AlertCounts,
    info: SidecarInfo,
}

impl prometheus_client::collector::Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let report = self
            .info
            .audit
            .as_ref()
            .and_then(|a| a.reports.borrow().clone());
        sidecar::encode(
            &mut enc,
            self.snapshot.as_deref(),
            report.as_deref(),
            &self.info,
        )?;
        if let (Some(r), Some(a)) = (&report, &self.info.audit) {
            audit::encode(&mut enc, r, a.max_findings)?;
        }
        alerts::encode(&mut enc, &self.alerts, &self.info)?;
        if let Some(status) = &self.info.config_reload {
            config_reload::encode(&mut enc, status)?;
        }
        if let Some(stats) = &self.info.notify_stats {
            notify::encode(&mut enc, stats)?;
        }
        if let Some(s) = &self.snapshot {
            let mut missing = MissingFields::default();
            overview::encode(&mut enc, s)?;
            nodes::encode(&mut enc, s, &mut missing)?;
            // Without a verdict (a snapshot encoded on its own), the families with no samples.
            match &self.cluster {
                Some(c) => cluster::encode(&mut enc, c)?,
                None => cluster::encode(&mut enc, &ClusterStatus::default())?,
            }
            queues::encode(&mut enc, s, &mut missing)?;
            replication::encode(&mut enc, s)?;
            if let Some(report) = &self.backlog {
                backlog::encode(&mut enc, s, report)?;
            }
            capacity::encode(
                &mut enc,
                s,
                self.backlog.as_deref(),
                self.cluster.as_deref(),
                &mut missing,
            )?;
            MISSING.gauge(
                &mut enc,
                missing
                    .0
                    .iter()
                    .map(|(e, f, n)| ([("endpoint", e.path()), ("field", f.as_str())], *n)),
            )?;
        }
        Ok(())
    }
}

/// Encodes the exposition for `snapshot`, the detectors' judgements of it (`backlog`,
/// `cluster`) and the alerts evaluated on it (`snapshot` `None`: before the first poll, only
/// the sidecar's own families, with `rabbitmq_up 0`).
pub fn encode(
    snapshot: Option<Arc<Snapshot>>,
    backlog: Option<Arc<crate::alerting::backlog::Report>>,
    cluster: Option<Arc<ClusterStatus>>,
    alerts: &[crate::alerting::Alert],
    info: &SidecarInfo,
) -> Exposition {
    let seq = snapshot.as_ref().map_or(0, |s| s.seq);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector {
        snapshot,
        backlog,
        cluster,
        alerts: alerts::count(alerts),
        info: info.clone(),
    }));
    let mut writer = format::GzipWriter::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut writer, &registry) {
        // Our collectors and the compressor do not fail; keep serving rather than panic.
        tracing::error!(error = %e, "encoding the exposition failed");
        writer = format::GzipWriter::new();
        let _ = fmt::Write::write_str(&mut writer, "# EOF\n");
    }
    Exposition {
        seq,
        variants: format::Variants::from_openmetrics_gzip(writer.finish()),
    }
}

/// Encodes every new assessment (snapshot + alerts), and the latest one again on every new
/// audit report, and publishes the result on `tx` until `shutdown`.
///
/// A configuration reload hands a new `info` on `updates` (rule names, poll interval, the
/// reload's outcome): the latest assessment is encoded again with it at once.
pub async fn run(
    mut assessments: AssessmentReceiver,
    tx: watch::Sender<Arc<Exposition>>,
    mut info: SidecarInfo,
    mut updates: crate::util::Updates<SidecarInfo>,
    shutdown: CancellationToken,
) {
    // A new audit report is encoded with the latest assessment at once, not at the next poll.
    let mut audit = info.audit.as_ref().map(|a| a.reports.clone());
    loop {
        let mut taken = None;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = assessments.changed() => if changed.is_err() { break },
            Some(update) = updates.recv() => {
                // Encoded below, before the reload is reported as applied.
                info = update.value;
                taken = Some(update.taken);
            }
            changed = async {
                match audit.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    // The audit task is gone (its failure is the supervisor's business).
                    audit = None;
                    continue;
                }
            }
        }
        if let Some(rx) = audit.as_mut() {
            rx.borrow_and_update();
        }
        let Some(assessment) = assessments.borrow_and_update().clone() else {
            if let Some(taken) = taken {
                let _ = taken.send(());
            }
            continue;
        };
        let info = info.clone();
        // Encoding 10k queues takes tens of milliseconds of CPU: keep it off the async workers.
        let job = move || {
            encode(
                Some(assessment.snapshot.clone()),
                Some(assessment.backlog.clone()),
                Some(assessment.cluster.clone()),
                &assessment.alerts,
                &info,
            )
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(exposition) => {
                tx.send_replace(Arc::new(exposition));
            }
            Err(e) => tracing::error!(error = %e, "encoding task failed"),
        }
        if let Some(taken) = taken {
            let _ = taken.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::rabbitmq::model::{Alarms, Node, Overview, Queue};
    use crate::rabbitmq::{Endpoint, Error};
    use crate::snapshot::{Fetched, PollTotals};

    fn fetched<T>(result: Result<T, Error>) -> Fetched<T> {
        let f = match result {
            Ok(v) => Fetched::answered(v),
            Err(e) => Fetched::failed(e),
        };
        f.took(Duration::from_millis(5), 100)
    }

    fn snapshot(nodes: Result<Vec<Node>, Error>, queues: Vec<Queue>) -> Arc<Snapshot> {
        let s = Snapshot::builder()
            .started_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .duration(Duration::from_millis(7))
            .overview(fetched(Ok(Overview::default())))
            .nodes(fetched(nodes))
            .queues(fetched(Ok(queues)))
            .alarms(fetched(Ok(Alarms {
                status: "ok".into(),
                alarms: vec![],
            })))
            .counted_after(PollTotals::default())
            .build();
        Arc::new(s)
    }

    fn text(s: Arc<Snapshot>) -> String {
        let info = SidecarInfo {
            poll_interval: Duration::from_secs(15),
            rule_names: vec![],
            config_reload: None,
            notify_stats: None,
            audit: None,
        };
        let exposition = encode(Some(s), None, None, &[], &info);
        String::from_utf8(
            exposition
                .variants
                .get(format::Format::OpenMetrics, false)
                .to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn a_down_node_reports_running_0_and_nothing_it_did_not_say() {
        let nodes = vec![
            Node {
                name: "rabbit@up".into(),
                running: Some(true),
                mem_used: Some(100),
                mem_limit: Some(1000),
                mem_alarm: Some(false),
                ..Node::default()
            },
            Node {
                name: "rabbit@down".into(),
                running: Some(false),
                ..Node::default()
            },
        ];
        let t = text(snapshot(Ok(nodes), vec![]));
        assert!(
            t.contains("rabbitmq_node_running{node=\"rabbit@down\"} 0\n"),
            "{t}"
        );
        assert!(t.contains("rabbitmq_process_resident_memory_bytes{node=\"rabbit@up\"} 100\n"));
        assert!(!t.contains("rabbitmq_process_resident_memory_bytes{node=\"rabbit@down\"}"));
        // The alarm check covers running nodes only: the down node's alarm is unknown.
        assert!(t.contains("rabbitmq_alarms_memory_used_watermark{node=\"rabbit@up\"} 0\n"));
        assert!(!t.contains("rabbitmq_alarms_memory_used_watermark{node=\"rabbit@down\"}"));
        assert!(t.contains("rabbitmq_up 1\n"));
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn a_queue_without_statistics_has_no_series_rather_than_zero() {
        let queues = vec![
            Queue {
                vhost: "/".into(),
                name: "fresh".into(),
                ..Queue::default()
            },
            Queue {
                vhost: "/".into(),
                name: "busy".into(),
                messages: Some(3),
                messages_ready: Some(2),
                messages_unacknowledged: Some(1),
                consumers: Some(1),
                ..Queue::default()
            },
        ];
        let t = text(snapshot(Ok(vec![]), queues));
        assert!(t.contains("rabbitmq_queue_messages_unacked{vhost=\"/\",queue=\"busy\"} 1\n"));
        // Its static facts are known; none of its figures are.
        assert!(
            t.contains("rabbitmq_queue_info{vhost=\"/\",queue=\"fresh\""),
            "{t}"
        );
        let figures = t
            .lines()
            .filter(|l| l.contains("queue=\"fresh\"") && !l.starts_with("rabbitmq_queue_info"));
        assert_eq!(figures.count(), 0, "{t}");
        assert!(t.contains(
            "rabbitmq_watch_missing_fields{endpoint=\"/api/queues\",field=\"messages_ready\"} 1\n"
        ));
    }

    #[test]
    fn a_failed_endpoint_removes_its_families_and_sets_up_0() {
        let err = Error::Timeout {
            endpoint: Endpoint::Nodes,
            timeout_ms: 2000,
        };
        let t = text(snapshot(Err(err), vec![]));
        assert!(t.contains("rabbitmq_up 0\n"));
        assert!(!t.contains("rabbitmq_node_running{"));
        assert!(t.contains("rabbitmq_watch_endpoint_success{endpoint=\"/api/nodes\"} 0\n"));
        assert!(t.contains(
            "rabbitmq_watch_endpoint_failures_total{endpoint=\"/api/nodes\",reason=\"timeout\"} 1\n"
        ));
        assert!(t.contains("rabbitmq_watch_last_successful_poll_timestamp_seconds 0.0\n"));
    }

    #[test]
    fn before_the_first_poll_only_sidecar_families_with_up_0() {
        let info = SidecarInfo {
            poll_interval: Duration::from_secs(15),
            rule_names: vec![],
            config_reload: None,
            notify_stats: None,
            audit: None,
        };
        let exposition = encode(None, None, None, &[], &info);
        let t = String::from_utf8(
            exposition
                .variants
                .get(format::Format::OpenMetrics, false)
                .to_vec(),
        )
        .unwrap();
        assert!(t.contains("rabbitmq_up 0\n"));
        assert!(t.contains("rabbitmq_watch_polls_total 0\n"));
        assert!(t.contains(
            "rabbitmq_watch_endpoint_failures_total{endpoint=\"/api/queues\",reason=\"connect\"} 0\n"
        ));
        assert!(!t.contains("rabbitmq_queue_"));
    }
}
