//! The reads of the cluster detector: every member's own `GET /api/nodes`, read through that
//! member's management API ([`Reader`]), concurrently, each bounded by `cluster.timeout`.
//!
//! Each member answers with *its* view of the cluster ([`View`]): which members it sees
//! running and which it is partitioned from. The members come from `cluster.nodes` (a fixed
//! list of names and URLs) or are discovered: every member listed so far gets the URL
//! `cluster.url_template` gives it. Without either key nothing is read here and the view of
//! the node behind `rabbitmq.url` (the poll's own `/api/nodes`) is the only one.
//!
//! What was read goes into the snapshot as [`MemberViews`]; the judgement of the views
//! (partitions, node loss, restarts) is the alert engine's ([`crate::alerting::cluster`]).
//! A read that failed is unknown, never "not running".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;

use super::client::BuildError;
use super::model::Node;
use super::{Client, Error, Fetched};
use crate::config::{ClusterConfig, RabbitmqConfig};

/// One member's own view: `GET /api/nodes` read through that member's management API.
#[derive(Debug, Clone)]
pub struct View {
    /// The member whose API was read, e.g. `rabbit@n1` (the `view` label).
    pub node: String,
    /// Its answer; an `Err` (refused, timed out, HTTP error) means its API could not be read.
    pub nodes: Fetched<Vec<Node>>,
}

impl View {
    /// A view of `node` whose read failed with `error`, taking no time.
    pub fn failed(node: &str, error: Error) -> Self {
        Self {
            node: node.to_owned(),
            nodes: Fetched::failed(error),
        }
    }

    /// The members it lists, when the read succeeded.
    pub fn listed(&self) -> Option<&[Node]> {
        self.nodes.ok().map(Vec::as_slice)
    }

    /// How many members it sees running; `None` when the read failed or a `running` flag is
    /// missing.
    pub fn running(&self) -> Option<u64> {
        let nodes = self.listed()?;
        let mut n = 0;
        for node in nodes {
            n += u64::from(node.running?);
        }
        Some(n)
    }

    /// Whether it sees `member` running (`None`: read failed, member not listed, flag missing).
    pub fn sees_running(&self, member: &str) -> Option<bool> {
        self.listed()?
            .iter()
            .find(|n| n.name == member)
            .and_then(|n| n.running)
    }

    /// The members it sees running, sorted (`None` when the read failed).
    pub fn running_set(&self) -> Option<Vec<&str>> {
        let mut set: Vec<&str> = self
            .listed()?
            .iter()
            .filter(|n| n.running == Some(true))
            .map(|n| n.name.as_str())
            .collect();
        set.sort_unstable();
        Some(set)
    }
}

/// Where the views come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// Only `rabbitmq.url` is read: one view, that of the node behind it.
    #[default]
    Single,
    /// `cluster.nodes`: a fixed list of member names and management URLs.
    Configured,
    /// `cluster.url_template`: one URL per member listed by `/api/nodes`.
    Discovered,
}

/// Every member's own view as read in one poll. `Default` is [`Source::Single`] with no
/// views (nothing read beyond `rabbitmq.url`).
#[derive(Debug, Clone, Default)]
pub struct MemberViews {
    /// Where the views come from.
    pub source: Source,
    /// Each member's own view, sorted by member name; empty with [`Source::Single`] (the one
    /// view is then the poll's own `/api/nodes`).
    pub views: Vec<View>,
}

impl MemberViews {
    /// The names every answering view lists (with repeats), for discovery.
    pub fn listed_members(&self) -> impl Iterator<Item = &str> {
        self.views
            .iter()
            .filter_map(View::listed)
            .flatten()
            .map(|n| n.name.as_str())
    }
}

/// `template` with `{node}` replaced by the member's name and `{host}` by its host part (after
/// `@`): `http://{host}:15672` and `rabbit@n1` give `http://n1:15672`.
///
/// # Errors
/// The text of the URL parser's complaint.
pub fn expand_template(template: &str, node: &str) -> Result<Url, String> {
    let host = node.split_once('@').map_or(node, |(_, h)| h);
    let text = template.replace("{node}", node).replace("{host}", host);
    Url::parse(&text).map_err(|e| format!("{text}: {e}"))
}

/// Reads every member's own `/api/nodes`, concurrently, each within `cluster.timeout`.
#[derive(Debug)]
pub struct Reader {
    /// `cluster.*`.
    config: ClusterConfig,
    /// `rabbitmq.*` (credentials, CA file), with the URL and timeout replaced per member.
    base: RabbitmqConfig,
    /// One client per member, built on first use (discovered members) or up front
    /// (configured ones).
    clients: Mutex<BTreeMap<String, Client>>,
    /// Members whose API failed at the last read: a failure is logged when it starts and the
    /// recovery when it ends, not at every poll.
    failing: Mutex<BTreeSet<String>>,
}

impl Reader {
    /// A reader for `config`, using the credentials and CA file of `base`. Builds the clients
    /// of `cluster.nodes` at once.
    ///
    /// # Errors
    /// [`BuildError`] when a client cannot be built (CA file).
    pub fn new(config: ClusterConfig, base: RabbitmqConfig) -> Result<Self, BuildError> {
        let mut clients = BTreeMap::new();
        for (name, url) in &config.nodes {
            clients.insert(
                name.clone(),
                client_for(&base, url.clone(), config.timeout)?,
            );
        }
        Ok(Self {
            config,
            base,
            clients: Mutex::new(clients),
            failing: Mutex::new(BTreeSet::new()),
        })
    }

    /// The clients of every member known so far (configured, or discovered and built), by
    /// name: the poller reads cluster-wide endpoints through one of them when `rabbitmq.url`
    /// fails.
    pub fn clients(&self) -> Vec<(String, Client)> {
        self.clients
            .lock()
            .map(|c| c.iter().map(|(n, c)| (n.clone(), c.clone())).collect())
            .unwrap_or_default()
    }

    /// Where the views come from, as configured.
    pub fn source(&self) -> Source {
        if !self.config.nodes.is_empty() {
            Source::Configured
        } else if self.config.url_template.is_some() {
            Source::Discovered
        } else {
            Source::Single
        }
    }

    /// Reads the views of every member: the configured ones, or `members` (every member
    /// listed so far, for discovery). No views with [`Source::Single`]. A member whose URL
    /// cannot be built from the template is logged and left out.
    pub async fn read(&self, members: &BTreeSet<String>) -> MemberViews {
        let source = self.source();
        let targets: Vec<(String, Client)> = match source {
            Source::Single => Vec::new(),
            Source::Configured => self
                .clients
                .lock()
                .map(|c| c.iter().map(|(n, c)| (n.clone(), c.clone())).collect())
                .unwrap_or_default(),
            Source::Discovered => self.discovered(members),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (node, client) in targets {
            tasks.spawn(async move {
                View {
                    node,
                    nodes: Fetched::timed(client.nodes()).await,
                }
            });
        }
        let mut views = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(v) => views.push(v),
                Err(e) => tracing::error!(error = %e, "cluster view task failed"),
            }
        }
        views.sort_by(|a, b| a.node.cmp(&b.node));
        self.log_changes(&views);
        MemberViews { source, views }
    }

    /// Logs a member's API failing (warning, with the error) when it starts failing, and its
    /// recovery (info) when it answers again.
    fn log_changes(&self, views: &[View]) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        for v in views {
            match &v.nodes.result {
                Err(e) => {
                    if failing.insert(v.node.clone()) {
                        tracing::warn!(
                            node = %v.node,
                            reason = e.reason(),
                            error = %e,
                            "cluster member's management API cannot be read"
                        );
                    }
                }
                Ok(_) => {
                    if failing.remove(&v.node) {
                        tracing::info!(node = %v.node, "cluster member's management API answers again");
                    }
                }
            }
        }
    }

    /// The clients of `members` under `cluster.url_template`, building those not built yet.
    fn discovered(&self, members: &BTreeSet<String>) -> Vec<(String, Client)> {
        let template = self.config.url_template.as_deref().unwrap_or_default();
        let Ok(mut clients) = self.clients.lock() else {
            return Vec::new();
        };
        let mut targets = Vec::new();
        for member in members {
            if !clients.contains_key(member) {
                match expand_template(template, member)
                    .map_err(|e| e.clone())
                    .and_then(|url| {
                        client_for(&self.base, url, self.config.timeout).map_err(|e| e.to_string())
                    }) {
                    Ok(c) => {
                        clients.insert(member.clone(), c);
                    }
                    Err(e) => {
                        tracing::warn!(node = %member, error = %e, "cluster.url_template: no client for this member");
                        continue;
                    }
                }
            }
            if let Some(c) = clients.get(member) {
                targets.push((member.clone(), c.clone()));
            }
        }
        targets
    }
}

fn client_for(base: &RabbitmqConfig, url: Url, timeout: Duration) -> Result<Client, BuildError> {
    Client::new(&RabbitmqConfig {
        url,
        timeout,
        ..base.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_templates_expand_host_and_node() {
        assert_eq!(
            expand_template("http://{host}:15672/", "rabbit@n1.example")
                .unwrap()
                .as_str(),
            "http://n1.example:15672/"
        );
        assert_eq!(
            expand_template("https://mgmt/{node}/", "rabbit@n1")
                .unwrap()
                .as_str(),
            "https://mgmt/rabbit@n1/"
        );
        assert!(expand_template("{host}", "rabbit@n1").is_err());
    }

    /// A writer collecting log output.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_member_whose_api_fails_is_logged_once() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A port nothing listens on: connection refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let env = [(
            "RABBITMQ_WATCH__CLUSTER__NODES".to_owned(),
            format!("rabbit@gone=http://127.0.0.1:{port}"),
        )]
        .into();
        let config = crate::config::load(None, env, &[]).unwrap();
        let reader = Reader::new(config.cluster, config.rabbitmq).unwrap();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let views = reader.read(&BTreeSet::new()).await;
        assert!(views.views[0].nodes.err().is_some());
        reader.read(&BTreeSet::new()).await;
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.matches("cluster member's management API cannot be read")
                .count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("WARN") && text.contains("rabbit@gone"),
            "{text}"
        );
    }
}
