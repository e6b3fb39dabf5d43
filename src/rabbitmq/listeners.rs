//! The protocol listener check (`GET /api/health/checks/protocol-listener/{protocol}`,
//! RabbitMQ 3.8+), read on every member's own API each poll: 200 when a listener for the
//! protocol runs on the member, 503 (`{"status":"failed","reason":"No active listener",
//! "missing":"mqtt","protocols":[…]}`) when none does; 404 on a version without the check
//! ("not available": no verdict, never a failure).
//!
//! Which protocols to check is deployment knowledge: [`Protocols`] takes those each member
//! served when the sidecar first saw it in `/api/overview` `listeners` (remembered for the
//! sidecar's lifetime, so a listener that stops later is noticed), plus
//! `cluster.expected_protocols` on every member (a protocol the deployment needs even if the
//! node never served it since the sidecar started). With management statistics disabled (4.x)
//! the overview has no `listeners`: then only `cluster.expected_protocols` are checked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::health::Verdict;
use super::model::Overview;
use super::{Client, Fetched};

/// The protocols checked on each member.
#[derive(Debug, Default)]
pub struct Protocols {
    /// `cluster.expected_protocols`: checked on every member.
    expected: Vec<String>,
    /// What the overviews told so far.
    learned: Mutex<Learned>,
}

/// What the overviews told so far.
#[derive(Debug, Default)]
struct Learned {
    /// Every protocol listed for each member since the sidecar started.
    by_node: BTreeMap<String, BTreeSet<String>>,
    /// The node that answered the last overview (`rabbitmq.url`'s node, read as `""` without
    /// member clients).
    answering: Option<String>,
}

impl Protocols {
    /// Takes over what `previous` learnt (a reloaded configuration's reader for the same
    /// cluster), so a listener that stopped before the reload stays checked.
    pub fn adopt(&self, previous: &Protocols) {
        let learned = previous
            .learned
            .lock()
            .map(|l| (l.by_node.clone(), l.answering.clone()));
        if let (Ok((by_node, answering)), Ok(mut mine)) = (learned, self.learned.lock()) {
            mine.by_node = by_node;
            mine.answering = answering;
        }
    }

    /// Checks `expected` on every member, besides what [`Protocols::learn`] learns.
    pub fn new(expected: Vec<String>) -> Self {
        Self {
            expected,
            learned: Mutex::default(),
        }
    }

    /// Remembers the protocols each member's listeners serve, from an `/api/overview` read
    /// (`listeners[].node`, `listeners[].protocol`), and the node that answered it.
    pub fn learn(&self, overview: &Overview) {
        let Ok(mut learned) = self.learned.lock() else {
            return;
        };
        if let Some(node) = &overview.node {
            learned.answering = Some(node.clone());
        }
        for l in overview.listeners.iter().flatten() {
            if let (Some(node), Some(protocol)) = (&l.node, &l.protocol)
                && !protocol.is_empty()
            {
                learned
                    .by_node
                    .entry(node.clone())
                    .or_default()
                    .insert(protocol.clone());
            }
        }
    }

    /// The protocols to check on `node` (`""`: the node that answered the last overview),
    /// sorted, each once.
    pub fn of(&self, node: &str) -> Vec<String> {
        let mut protocols: BTreeSet<String> = self.expected.iter().cloned().collect();
        if let Ok(learned) = self.learned.lock() {
            let name = if node.is_empty() {
                learned.answering.as_deref().unwrap_or_default()
            } else {
                node
            };
            if let Some(served) = learned.by_node.get(name) {
                protocols.extend(served.iter().cloned());
            }
        }
        protocols.into_iter().collect()
    }
}

/// Reads `protocol-listener/{protocol}` for each of `protocols` through `client`,
/// concurrently (each bounded by the client's timeout); sorted by protocol.
pub async fn read(
    client: &Client,
    protocols: Vec<String>,
) -> Vec<(String, Fetched<Option<Verdict>>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for protocol in protocols {
        let client = client.clone();
        tasks.spawn(async move {
            let path = ["protocol-listener", protocol.as_str()];
            let fetched = Fetched::timed(client.verdict_at(&path)).await;
            (protocol, fetched)
        });
    }
    let mut read = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => read.push(r),
            Err(e) => tracing::error!(error = %e, "protocol listener check task failed"),
        }
    }
    read.sort_by(|a, b| a.0.cmp(&b.0));
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::model::Listener;

    fn listener(node: &str, protocol: &str) -> Listener {
        Listener {
            node: Some(node.to_owned()),
            protocol: Some(protocol.to_owned()),
        }
    }

    #[test]
    fn remembers_what_each_member_served_and_adds_the_expected_protocols() {
        let p = Protocols::new(vec!["mqtt".to_owned(), "amqp".to_owned()]);
        assert_eq!(p.of("rabbit@a"), ["amqp", "mqtt"]);
        p.learn(&Overview {
            node: Some("rabbit@a".to_owned()),
            listeners: Some(vec![
                listener("rabbit@a", "amqp"),
                listener("rabbit@a", "http"),
                listener("rabbit@b", "stomp"),
            ]),
            ..Overview::default()
        });
        assert_eq!(p.of("rabbit@a"), ["amqp", "http", "mqtt"]);
        assert_eq!(p.of("rabbit@b"), ["amqp", "mqtt", "stomp"]);
        // The node behind rabbitmq.url, read before it is named, is the one that answered.
        assert_eq!(p.of(""), ["amqp", "http", "mqtt"]);
        // A listener that is no longer listed is still checked.
        p.learn(&Overview {
            node: Some("rabbit@b".to_owned()),
            listeners: Some(vec![listener("rabbit@a", "amqp")]),
            ..Overview::default()
        });
        assert_eq!(p.of("rabbit@a"), ["amqp", "http", "mqtt"]);
        assert_eq!(p.of(""), ["amqp", "mqtt", "stomp"]);
    }

    #[test]
    fn parses_the_failed_answer_of_3_10_and_4_0() {
        let body = r#"{"status":"failed","reason":"No active listener","missing":"mqtt","protocols":["http","clustering","amqp"]}"#;
        let v: Verdict = serde_json::from_str(body).unwrap();
        assert!(!v.passing());
        assert_eq!(
            v.protocols.as_deref(),
            Some(
                &[
                    "http".to_owned(),
                    "clustering".to_owned(),
                    "amqp".to_owned()
                ][..]
            )
        );
        let ok: Verdict = serde_json::from_str(r#"{"status":"ok","protocol":"amqp"}"#).unwrap();
        assert!(ok.passing());
    }
}
