//! The health checks read on every poll, on every member's own management API
//! (`GET /api/health/checks/...`): whether stopping the member now would cost quorum queues
//! their majority (`node-is-quorum-critical`) or classic mirrored queues their last
//! synchronised mirror (`node-is-mirror-sync-critical`, 3.x), whether all its virtual hosts
//! run (`virtual-hosts`), and whether a TLS listener's certificate expires within
//! [`CERTIFICATE_WINDOW_DAYS`] (`certificate-expiration/30/days`); and whether a listener runs
//! for each protocol it should serve (`protocol-listener/{protocol}`: [`super::listeners`]).
//!
//! The checks are cheap and answer even with management statistics disabled. Each answers
//! 200 (`{"status":"ok"}`) or 503 (`{"status":"failed","reason":…}` plus what failed); both are
//! verdicts. A 404 is a check this broker version does not have (`node-is-mirror-sync-critical`
//! on 4.x): "not available", logged once at info, never a failed poll. Any other failure
//! (refused, timed out, HTTP 500) leaves the verdict unknown. What was read goes into the
//! snapshot as [`Health`]; the alert engine judges it.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::StatusCode;
use serde::Deserialize;

use super::listeners::Protocols;
use super::model::{Overview, lenient};
use super::{Body, Client, Endpoint, Error, Fetched};

/// The window of the certificate check, in days: a TLS listener whose certificate (or CA
/// certificate) expires within it fails the check.
pub const CERTIFICATE_WINDOW_DAYS: u32 = 30;

/// The checks read from every member, as (name, path below `/api/health/checks/`).
pub const CHECKS: [(Check, &str); 4] = [
    (Check::QuorumCritical, "node-is-quorum-critical"),
    (Check::MirrorSyncCritical, "node-is-mirror-sync-critical"),
    (Check::VirtualHosts, "virtual-hosts"),
    (Check::Certificates, "certificate-expiration/30/days"),
];

/// One health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// `node-is-quorum-critical`: fails when stopping the member would leave a quorum queue
    /// without a majority of online members.
    QuorumCritical,
    /// `node-is-mirror-sync-critical` (3.x): fails when the member holds the only
    /// synchronised copy of a classic mirrored queue.
    MirrorSyncCritical,
    /// `virtual-hosts`: fails when a virtual host is down on the member.
    VirtualHosts,
    /// `certificate-expiration/30/days`: fails when a TLS listener's certificate expires
    /// within [`CERTIFICATE_WINDOW_DAYS`].
    Certificates,
}

impl Check {
    /// The `check` label value: the check's name in the API.
    pub fn label(self) -> &'static str {
        match self {
            Check::QuorumCritical => "node-is-quorum-critical",
            Check::MirrorSyncCritical => "node-is-mirror-sync-critical",
            Check::VirtualHosts => "virtual-hosts",
            Check::Certificates => "certificate-expiration",
        }
    }
}

/// The answer of one health check (HTTP 200 or 503). `status` is required, so an unrelated
/// JSON body never reads as a verdict.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Verdict {
    /// `status`: `ok` (HTTP 200) or `failed` (HTTP 503).
    pub status: String,
    /// `reason`: why it failed (or, when ok, e.g. `single node cluster`).
    #[serde(default, deserialize_with = "lenient")]
    pub reason: Option<String>,
    /// `queues` (`node-is-quorum-critical`, `node-is-mirror-sync-critical`): the queues that
    /// would lose availability.
    #[serde(default, deserialize_with = "lenient")]
    pub queues: Option<Vec<CriticalQueue>>,
    /// `expired` (`certificate-expiration`): the listeners whose certificate expires within
    /// the window.
    #[serde(default, deserialize_with = "lenient")]
    pub expired: Option<Vec<ExpiringListener>>,
    /// `virtual-hosts` (`virtual-hosts`, 503 only): the virtual hosts that are down.
    #[serde(default, rename = "virtual-hosts", deserialize_with = "lenient")]
    pub virtual_hosts: Option<Vec<String>>,
    /// `protocols` (`protocol-listener`, 503 only): the protocols whose listeners do run on
    /// the member.
    #[serde(default, deserialize_with = "lenient")]
    pub protocols: Option<Vec<String>>,
}

impl Verdict {
    /// Whether the check passed (`status` `ok`).
    pub fn passing(&self) -> bool {
        self.status == "ok"
    }

    /// The queues named, as `name (vhost V)`, sorted.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .queues
            .iter()
            .flatten()
            .map(|q| {
                format!(
                    "{} (vhost {})",
                    q.name.as_deref().unwrap_or("?"),
                    q.virtual_host.as_deref().unwrap_or("?")
                )
            })
            .collect();
        names.sort();
        names
    }

    /// The earliest expiry of a certificate listed (certificate or CA certificate of any
    /// listener), if one is listed and readable.
    pub fn earliest_expiry(&self) -> Option<SystemTime> {
        self.expired
            .iter()
            .flatten()
            .filter_map(ExpiringListener::expires)
            .min()
    }
}

/// A queue listed by `node-is-quorum-critical` / `node-is-mirror-sync-critical`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CriticalQueue {
    /// `name` of the queue.
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// `virtual_host` of the queue.
    #[serde(deserialize_with = "lenient")]
    pub virtual_host: Option<String>,
}

/// A listener listed by `certificate-expiration` (3.10:
/// `{"node":…,"protocol":"amqp/ssl","port":5671,"certfile":…,"certfile_expires_on":["2026-12-02 15:42:02"],…}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ExpiringListener {
    /// `node` the listener runs on.
    #[serde(deserialize_with = "lenient")]
    pub node: Option<String>,
    /// `protocol`, e.g. `amqp/ssl`, `https`.
    #[serde(deserialize_with = "lenient")]
    pub protocol: Option<String>,
    /// `port` of the listener.
    #[serde(deserialize_with = "lenient")]
    pub port: Option<u64>,
    /// `certfile_expires_on`: when the certificate expires (UTC, `YYYY-MM-DD HH:MM:SS`).
    #[serde(deserialize_with = "lenient")]
    pub certfile_expires_on: Option<Vec<String>>,
    /// `cacertfile_expires_on`: when the CA certificates expire.
    #[serde(deserialize_with = "lenient")]
    pub cacertfile_expires_on: Option<Vec<String>>,
}

impl ExpiringListener {
    /// The earliest of its certificate and CA certificate expiries that can be read.
    pub fn expires(&self) -> Option<SystemTime> {
        self.certfile_expires_on
            .iter()
            .chain(self.cacertfile_expires_on.iter())
            .flatten()
            .filter_map(|t| parse_expiry(t))
            .min()
    }
}

/// An expiry as the check writes it: UTC `YYYY-MM-DD H:MM:SS`, the hour without a leading zero
/// (RabbitMQ formats it with `~w-~2.2.0w-~2.2.0w ~w:~2.2.0w:~2.2.0w`), e.g.
/// `2026-12-06 2:28:36`; a zero-padded hour reads too. `None` when it is not such a time.
fn parse_expiry(text: &str) -> Option<SystemTime> {
    let (date, time) = text.trim().split_once(' ')?;
    let time = if time.find(':') == Some(1) {
        format!("0{time}")
    } else {
        time.to_owned()
    };
    humantime::parse_rfc3339_weak(&format!("{date} {time}")).ok()
}

/// One member's answers to the checks. Each is `Ok(Some(verdict))`, `Ok(None)` when this
/// broker version lacks the check (HTTP 404), or the failure of the read (unknown).
#[derive(Debug, Clone)]
pub struct MemberHealth {
    /// The member whose API was read (the `node` label).
    pub node: String,
    /// Each check of [`CHECKS`] and its outcome.
    pub checks: Vec<(Check, Fetched<Option<Verdict>>)>,
    /// Each protocol checked with `protocol-listener/{protocol}` and its outcome, sorted by
    /// protocol ([`super::listeners`]: those the member served when first seen, plus
    /// `cluster.expected_protocols`).
    pub listeners: Vec<(String, Fetched<Option<Verdict>>)>,
}

impl MemberHealth {
    /// The verdict of `check`, when it was read and exists on this version.
    pub fn verdict(&self, check: Check) -> Option<&Verdict> {
        self.checks
            .iter()
            .find(|(c, _)| *c == check)
            .and_then(|(_, f)| f.ok())
            .and_then(Option::as_ref)
    }

    /// Whether `check` failed on this member (`None`: unknown or not available).
    pub fn failing(&self, check: Check) -> Option<bool> {
        self.verdict(check).map(|v| !v.passing())
    }

    /// Whether no listener for `protocol` runs on this member (`None`: not checked, unknown,
    /// or the version lacks the check).
    pub fn listener_down(&self, protocol: &str) -> Option<bool> {
        self.listeners
            .iter()
            .find(|(p, _)| p == protocol)
            .and_then(|(_, f)| f.ok())
            .and_then(Option::as_ref)
            .map(|v| !v.passing())
    }
}

/// Every member's health checks as read in one poll (empty: none read, e.g. the node behind
/// `rabbitmq.url` could not be named).
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// One entry per member read, sorted by node name.
    pub members: Vec<MemberHealth>,
}

impl Health {
    /// The checks of `node`, if read.
    pub fn of(&self, node: &str) -> Option<&MemberHealth> {
        self.members.iter().find(|m| m.node == node)
    }
}

impl Client {
    /// Reads `GET /api/health/checks/{check}`: 200 and 503 are verdicts, 404 is `None` (the
    /// version lacks the check).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::HealthChecks`]: transport failures, other statuses, a body
    /// that is not a verdict.
    pub async fn health_check(&self, check: &str) -> Result<Body<Option<Verdict>>, Error> {
        self.verdict_at(&check.split('/').collect::<Vec<_>>()).await
    }

    /// Reads the check at `/api/health/checks/` followed by `segments` (each one path segment,
    /// percent-encoded: a `/` inside one becomes `%2F`), as [`Client::health_check`] does.
    pub(super) async fn verdict_at(
        &self,
        segments: &[&str],
    ) -> Result<Body<Option<Verdict>>, Error> {
        let endpoint = Endpoint::HealthChecks;
        let mut path = vec!["api", "health", "checks"];
        path.extend(segments);
        let url = self.url(&path, endpoint)?;
        match self
            .get_json::<Verdict>(endpoint, url, &[], &[StatusCode::SERVICE_UNAVAILABLE])
            .await
        {
            Ok(body) => match body.value.status.as_str() {
                "ok" | "failed" => Ok(Body {
                    value: Some(body.value),
                    bytes: body.bytes,
                }),
                other => Err(Error::Decode {
                    endpoint,
                    detail: format!("unexpected status {other:?}, expected \"ok\" or \"failed\""),
                }),
            },
            Err(Error::Status { status: 404, .. }) => Ok(Body {
                value: None,
                bytes: 0,
            }),
            Err(e) => Err(e),
        }
    }
}

/// Reads the checks of every member; remembers which checks were found missing so that is
/// logged once, and which protocols each member serves.
#[derive(Debug, Default)]
pub struct Reader {
    /// (member, check) pairs already logged as not available.
    logged: Mutex<BTreeSet<(String, Check)>>,
    /// The protocols whose listeners are checked on each member.
    protocols: Protocols,
}

impl Reader {
    /// A reader that also checks the listeners of `expected` protocols on every member
    /// (`cluster.expected_protocols`), besides those each member served when first seen.
    pub fn new(expected: Vec<String>) -> Self {
        Self {
            logged: Mutex::default(),
            protocols: Protocols::new(expected),
        }
    }

    /// Takes over the protocols `previous` learnt (see [`Protocols::adopt`]).
    pub fn adopt(&self, previous: &Reader) {
        self.protocols.adopt(&previous.protocols);
    }

    /// Learns the protocols each member serves from an `/api/overview` read
    /// ([`Protocols::learn`]).
    pub fn learn(&self, overview: &Overview) {
        self.protocols.learn(overview);
    }

    /// Reads every check of [`CHECKS`] and every protocol listener check from each of
    /// `members` ((name, client) pairs; `""`: the node behind `rabbitmq.url`, named by the
    /// last overview), concurrently; each read is bounded by its client's timeout.
    pub async fn read(&self, members: Vec<(String, Client)>) -> Health {
        let mut tasks = tokio::task::JoinSet::new();
        for (node, client) in members {
            let protocols = self.protocols.of(&node);
            tasks.spawn(async move {
                let reads = CHECKS.map(|(check, path)| {
                    let client = client.clone();
                    async move { (check, Fetched::timed(client.health_check(path)).await) }
                });
                let [a, b, c, d] = reads;
                let (a, b, c, d, listeners) =
                    tokio::join!(a, b, c, d, super::listeners::read(&client, protocols));
                MemberHealth {
                    node,
                    checks: vec![a, b, c, d],
                    listeners,
                }
            });
        }
        let mut members = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(m) => members.push(m),
                Err(e) => tracing::error!(error = %e, "health check task failed"),
            }
        }
        members.sort_by(|a, b| a.node.cmp(&b.node));
        self.log_missing(&members);
        Health { members }
    }

    /// Logs, once per member and check, a check this broker version does not have.
    fn log_missing(&self, members: &[MemberHealth]) {
        let Ok(mut logged) = self.logged.lock() else {
            return;
        };
        for m in members {
            for (check, fetched) in &m.checks {
                if matches!(fetched.result, Ok(None)) && logged.insert((m.node.clone(), *check)) {
                    tracing::info!(
                        node = %m.node,
                        check = check.label(),
                        "health check not available on this RabbitMQ version (HTTP 404): its metrics are absent"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_failed_certificate_check_of_3_10() {
        let body = r#"{"status":"failed","reason":"Certificates expiring","expired":[{"cacertfile":"/tmp/c.pem","cacertfile_expires_on":["2026-12-03 15:42:02"],"certfile":"/tmp/c.pem","certfile_expires_on":["2026-12-02 15:42:02"],"interface":"::","node":"rabbit@a","port":25671,"protocol":"amqp/ssl"}]}"#;
        let v: Verdict = serde_json::from_str(body).unwrap();
        assert!(!v.passing());
        let expected = humantime::parse_rfc3339("2026-12-02T15:42:02Z").unwrap();
        assert_eq!(v.earliest_expiry(), Some(expected));
        let l = &v.expired.as_ref().unwrap()[0];
        assert_eq!(
            (l.port, l.protocol.as_deref()),
            (Some(25671), Some("amqp/ssl"))
        );
    }

    #[test]
    fn parses_quorum_critical_queues_and_odd_fields_leniently() {
        let body = r#"{"status":"failed","reason":"x","queues":[{"name":"q1","virtual_host":"/","type":"quorum"},{"name":7}]}"#;
        let v: Verdict = serde_json::from_str(body).unwrap();
        assert_eq!(v.queue_names(), ["? (vhost ?)", "q1 (vhost /)"]);
        let ok: Verdict =
            serde_json::from_str(r#"{"status":"ok","reason":"single node cluster"}"#).unwrap();
        assert!(ok.passing());
        assert!(serde_json::from_str::<Verdict>(r#"{"error":"Object Not Found"}"#).is_err());
    }

    #[test]
    fn an_expiry_with_the_hour_unpadded_as_rabbitmq_writes_it_is_read() {
        let padded = humantime::parse_rfc3339("2026-12-06T02:28:36Z").unwrap();
        assert_eq!(parse_expiry("2026-12-06 2:28:36"), Some(padded));
        assert_eq!(parse_expiry("2026-12-06 02:28:36"), Some(padded));
        let late = humantime::parse_rfc3339("2026-12-02T15:42:02Z").unwrap();
        assert_eq!(parse_expiry(" 2026-12-02 15:42:02 "), Some(late));
        assert_eq!(parse_expiry("2026-12-06"), None);
        assert_eq!(parse_expiry("soon"), None);
    }

    proptest::proptest! {
        /// Any second from 1970 to 2199, written as RabbitMQ writes it, reads back exactly.
        #[test]
        fn every_expiry_written_as_rabbitmq_does_reads_back(secs in 0u64..7_258_118_400) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let iso = humantime::format_rfc3339_seconds(t).to_string();
            let (date, time) = iso.trim_end_matches('Z').split_once('T').unwrap();
            let hour: u32 = time[..2].parse().unwrap();
            let written = format!("{date} {hour}{}", &time[2..]);
            proptest::prop_assert_eq!(parse_expiry(&written), Some(t));
        }
    }
}
