//! Several clusters (`clusters:`) in one exposition: each cluster's families are encoded from
//! its own latest assessment with the constant label `rabbitmq_cluster="NAME"` on every
//! sample, then the expositions are merged family by family (each family once, its samples
//! from every cluster in the order of `clusters:`), and the sidecar-wide families (the
//! notifiers' deliveries and state file) are added once, without the label.
//!
//! A cluster not polled yet has only its sidecar families, with `rabbitmq_up 0`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Exposition, SidecarInfo, SnapshotCollector, alerts, format, notify};
use crate::alerting::{Assessment, AssessmentReceiver};
use crate::config::CLUSTER_LABEL;

/// One cluster's name and latest assessment (`None`: not evaluated yet).
pub type ClusterPart = (String, Option<Arc<Assessment>>);

/// The sidecar-wide families: the notifiers' counters and the configuration reloads.
#[derive(Debug)]
struct SidecarWide {
    notify: Option<Arc<crate::notify::NotifyStats>>,
    reload: Option<Arc<super::config_reload::ReloadStatus>>,
}

impl prometheus_client::collector::Collector for SidecarWide {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        if let Some(stats) = &self.notify {
            notify::encode(&mut enc, stats)?;
        }
        if let Some(status) = &self.reload {
            super::config_reload::encode(&mut enc, status)?;
        }
        Ok(())
    }
}

/// The OpenMetrics text (without `# EOF`) of one cluster's families, every sample labelled
/// `rabbitmq_cluster=name`.
fn cluster_text(name: &str, assessment: Option<&Assessment>, info: &SidecarInfo) -> String {
    let label = [(Cow::Borrowed(CLUSTER_LABEL), Cow::Owned(name.to_owned()))];
    let mut registry = Registry::with_labels(label.into_iter());
    registry.register_collector(Box::new(SnapshotCollector {
        snapshot: assessment.map(|a| a.snapshot.clone()),
        backlog: assessment.map(|a| a.backlog.clone()),
        cluster: assessment.map(|a| a.cluster.clone()),
        alerts: alerts::count(assessment.map_or(&[][..], |a| a.alerts.as_slice())),
        info: SidecarInfo {
            notify_stats: None,
            audit: None,
            config_reload: None,
            ..info.clone()
        },
    }));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut out, &registry) {
        // Our collectors do not fail; keep serving the other clusters rather than panic.
        tracing::error!(error = %e, cluster = name, "encoding a cluster's exposition failed");
        out.clear();
    }
    rename_broker_cluster_name(&out)
}

/// `rabbitmq_identity_info`'s own label `rabbitmq_cluster` is the broker's `cluster_name`;
/// with several clusters that label is the configured name (written first, as a constant
/// label), so the broker's name moves to the label `cluster_name` (a label may appear once).
fn rename_broker_cluster_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.strip_prefix("rabbitmq_identity_info{") {
            Some(rest) => {
                out.push_str("rabbitmq_identity_info{");
                out.push_str(&rest.replacen(",rabbitmq_cluster=\"", ",cluster_name=\"", 1));
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Merges OpenMetrics texts (without `# EOF`) so that each family appears once: a family
/// starts at its `# HELP` line; its metadata is taken from the first text that has it and
/// its samples from every text, in order. Ends with `# EOF`.
pub fn merge<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    // (metadata lines, sample lines) per family, in the order first seen.
    let mut families: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for text in texts {
        let mut current: Option<usize> = None;
        let mut header = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("");
                let i = *index.entry(name).or_insert_with(|| {
                    families.push((String::new(), String::new()));
                    families.len() - 1
                });
                header = families[i].0.is_empty();
                current = Some(i);
                if header {
                    families[i].0.push_str(line);
                    families[i].0.push('\n');
                }
                continue;
            }
            let Some(i) = current else { continue };
            if line.starts_with('#') {
                if header {
                    families[i].0.push_str(line);
                    families[i].0.push('\n');
                }
            } else if !line.is_empty() {
                families[i].1.push_str(line);
                families[i].1.push('\n');
            }
        }
    }
    for (header, samples) in &families {
        out.write_str(header)?;
        out.write_str(samples)?;
    }
    out.write_str("# EOF\n")
}

/// Encodes the exposition of several clusters: each cluster's families with its label, the
/// sidecar-wide ones once.
pub fn encode_clusters(parts: &[ClusterPart], info: &SidecarInfo) -> Exposition {
    let texts: Vec<Arc<str>> = parts
        .iter()
        .map(|(name, a)| cluster_text(name, a.as_deref(), info).into())
        .collect();
    assemble(&texts, seq_of(parts.iter().map(|(_, a)| a)), info)
}

/// Grows with every poll of any cluster: the sum of the clusters' snapshot numbers.
fn seq_of<'a>(assessments: impl Iterator<Item = &'a Option<Arc<Assessment>>>) -> u64 {
    assessments
        .filter_map(|a| a.as_ref().map(|a| a.snapshot.seq))
        .sum()
}

/// The exposition of the clusters' `texts` ([`cluster_text`]) and the sidecar-wide families.
fn assemble(texts: &[Arc<str>], seq: u64, info: &SidecarInfo) -> Exposition {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SidecarWide {
        notify: info.notify_stats.clone(),
        reload: info.config_reload.clone(),
    }));
    let mut wide = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut wide, &registry).is_err() {
        wide.clear();
    }
    let mut writer = format::GzipWriter::new();
    if merge(
        texts.iter().map(|t| &**t).chain([wide.as_str()]),
        &mut writer,
    )
    .is_err()
    {
        tracing::error!("merging the clusters' expositions failed");
        writer = format::GzipWriter::new();
        let _ = fmt::Write::write_str(&mut writer, "# EOF\n");
    }
    Exposition {
        seq,
        variants: format::Variants::from_openmetrics_gzip(writer.finish()),
    }
}

/// One cluster's assessment last encoded and its text.
type Encoded = (Option<Arc<Assessment>>, Arc<str>);

/// Encodes the clusters' latest assessments whenever any of them changes, and publishes the
/// result on `tx` until `shutdown`. `clusters` holds each cluster's name and assessment
/// channel, in the order of `clusters:`. Only the clusters whose assessment changed are
/// encoded again; the others' text is kept from before. A reloaded configuration's
/// [`SidecarInfo`] arrives on `updates`: every cluster is then encoded again with it before
/// the reload is reported as applied.
pub async fn run(
    clusters: Vec<(String, AssessmentReceiver)>,
    tx: watch::Sender<Arc<Exposition>>,
    mut info: SidecarInfo,
    mut updates: crate::util::Updates<SidecarInfo>,
    shutdown: CancellationToken,
) {
    let (names, mut receivers): (Vec<String>, Vec<AssessmentReceiver>) =
        clusters.into_iter().unzip();
    // Per cluster: the assessment last encoded and its text.
    let mut cache: Arc<Vec<Encoded>> = Arc::new(
        names
            .iter()
            .map(|n| (None, cluster_text(n, None, &info).into()))
            .collect(),
    );
    loop {
        let mut taken = None;
        let changed = crate::alerting::any_changed(&mut receivers);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ok = changed => if !ok { break },
            Some(update) = updates.recv() => {
                info = update.value;
                taken = Some(update.taken);
            }
        }
        let latest: Vec<Option<Arc<Assessment>>> = receivers
            .iter_mut()
            .map(|rx| rx.borrow_and_update().clone())
            .collect();
        let everything = taken.is_some();
        let (info, names, previous) = (info.clone(), names.clone(), cache.clone());
        // Encoding thousands of queues is CPU work: keep it off the async workers.
        let job = move || {
            let next: Vec<Encoded> = previous
                .iter()
                .zip(latest)
                .zip(&names)
                .map(|(((before, text), now), name)| {
                    let same = match (before, &now) {
                        (Some(b), Some(n)) => Arc::ptr_eq(b, n),
                        (None, None) => true,
                        _ => false,
                    };
                    let text = if same && !everything {
                        text.clone()
                    } else {
                        cluster_text(name, now.as_deref(), &info).into()
                    };
                    (now, text)
                })
                .collect();
            let texts: Vec<Arc<str>> = next.iter().map(|(_, t)| t.clone()).collect();
            let exposition = assemble(&texts, seq_of(next.iter().map(|(a, _)| a)), &info);
            (next, exposition)
        };
        match tokio::task::spawn_blocking(job).await {
            Ok((next, exposition)) => {
                cache = Arc::new(next);
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
    use std::time::Duration;

    use super::*;

    fn text(parts: &[ClusterPart]) -> String {
        let info = SidecarInfo {
            poll_interval: Duration::from_secs(15),
            rule_names: vec!["RabbitmqNodeDown".to_owned()],
            notify_stats: Some(Arc::default()),
            audit: None,
            config_reload: None,
        };
        let e = encode_clusters(parts, &info);
        String::from_utf8(e.variants.get(format::Format::OpenMetrics, false).to_vec()).unwrap()
    }

    #[test]
    fn each_family_once_with_every_clusters_samples_and_sidecar_wide_ones_unlabelled() {
        let t = text(&[("a".to_owned(), None), ("b".to_owned(), None)]);
        assert_eq!(t.matches("# TYPE rabbitmq_up gauge\n").count(), 1, "{t}");
        assert!(t.contains("rabbitmq_up{rabbitmq_cluster=\"a\"} 0\n"), "{t}");
        assert!(t.contains("rabbitmq_up{rabbitmq_cluster=\"b\"} 0\n"), "{t}");
        assert!(t.contains(
            "rabbitmq_watch_alerts{rabbitmq_cluster=\"b\",alertname=\"RabbitmqNodeDown\",state=\"firing\"} 0\n"
        ), "{t}");
        // The notifiers serve every cluster: their families have no cluster label.
        assert_eq!(
            t.matches("# TYPE rabbitmq_watch_notifications counter\n")
                .count(),
            1,
            "{t}"
        );
        assert_eq!(t.matches("# EOF").count(), 1);
        assert!(t.ends_with("# EOF\n"));
        // Every family's samples follow its own metadata (a valid exposition).
        let mut families = std::collections::HashSet::new();
        for line in t.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(families.insert(line.to_owned()), "{line} twice");
        }
    }
}
