//! The status page's view model: display-ready values (text, counts, CSS classes) built from
//! the [`Inputs`], laid out by `templates/status.html`. Every string here is plain text; the
//! template escapes it.
//!
//! Queues are ordered problem first (no consumers, redelivering, stalled, growing: the backlog
//! detector's [`Status`] order), then deepest first, then by name; the filter and the page
//! pick at most [`PAGE_SIZE`] of them, so the page's size and its rendering cost do not grow
//! with the queue count (sorting 10,000 keys is the only per-queue work).

use std::cmp::Reverse;
use std::time::{Duration, SystemTime};

use askama::Template;

use super::sparkline::{self, Sparkline};
use super::{Inputs, PAGE_SIZE};
use crate::alerting::backlog::{Analysis, Status, human};
use crate::alerting::{Alert, State};
use crate::notify::suppress::Suppressor;
use crate::rabbitmq::Endpoint;
use crate::rabbitmq::model::{Node, Queue};
use crate::util::elapsed;
use crate::util::time::format_rfc3339;

/// Alert rows shown (firing first, longest first); the rest are counted and left to
/// `/api/v1/alerts`, so the page stays small when thousands of queues alert at once.
pub const MAX_ALERT_ROWS: usize = 50;

/// The whole page.
#[derive(Debug, Template)]
#[template(path = "status.html")]
pub struct Page {
    /// The sidecar's version.
    pub version: &'static str,
    /// The cluster's name (`/api/overview` `cluster_name`), when read.
    pub cluster_name: String,
    /// The management API URL watched.
    pub target: String,
    /// Seconds between reloads; `None` when paused (`?refresh=0`).
    pub refresh: Option<u64>,
    /// When the page was built (RFC 3339).
    pub generated_at: String,
    /// Headline: poll state (`up` / `DOWN` / `waiting`) and its CSS class.
    pub poll_state: (&'static str, &'static str),
    /// One-line poll summary.
    pub poll_line: String,
    /// Firing alerts.
    pub firing: usize,
    /// Pending alerts.
    pub pending: usize,
    /// Queues with a backlog problem (all queues, not only the listed ones).
    pub problem_queues: usize,
    /// The cluster section; `None` before the first evaluation.
    pub cluster: Option<ClusterView>,
    /// Firing then pending alerts, at most [`MAX_ALERT_ROWS`].
    pub alerts: Vec<AlertRow>,
    /// The queue section.
    pub queues: QueuesView,
    /// Silences, newest end first.
    pub silences: Vec<SilenceRow>,
    /// Whether the silence forms are shown (`web.enable_admin_api`).
    pub admin_api: bool,
    /// The sidecar's own health.
    pub sidecar: SidecarView,
    /// The reliability audit section (`templates/status_audit.html`); `None` when the
    /// audit is off.
    pub audit: Option<super::audit::AuditSection>,
}

/// The cluster summary.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// `3 of 3`, or `2 of 3` (with the missing ones in `down`); `unknown` when no view answered.
    pub running: String,
    /// Whether fewer run than expected (or it cannot be told).
    pub running_bad: bool,
    /// `no`, `yes: …`, or `unknown`.
    pub partitioned: String,
    /// Whether the cluster is (or may be) partitioned.
    pub partitioned_bad: bool,
    /// Resource alarms in effect, as `node: resource`; `None` when unknown.
    pub alarms: Option<Vec<String>>,
    /// Members reported not running or unreachable, with who says so.
    pub problems: Vec<String>,
    /// One row per member, as the node behind `rabbitmq.url` sees them.
    pub nodes: Vec<NodeRow>,
}

/// One cluster member.
#[derive(Debug)]
pub struct NodeRow {
    /// `rabbit@host`.
    pub name: String,
    /// `running`, `NOT RUNNING`, `unknown`.
    pub running: &'static str,
    /// Memory used against the high watermark.
    pub memory: Headroom,
    /// Free disk against the low watermark.
    pub disk: Headroom,
    /// Uptime in words.
    pub uptime: String,
}

/// A resource's distance from its alarm.
#[derive(Debug, Default)]
pub struct Headroom {
    /// E.g. `1.2 GiB used of 3.1 GiB limit (61 % headroom)`, or `unknown`.
    pub text: String,
    /// How full the bar is drawn, 0 to 100.
    pub fill: u32,
    /// `ok`, `warn` (under 20 % headroom), `bad` (alarm in effect) or `unknown`.
    pub level: &'static str,
}

/// One alert.
#[derive(Debug)]
pub struct AlertRow {
    /// `firing` or `pending`.
    pub state: &'static str,
    /// `alertname`.
    pub name: String,
    /// `severity`.
    pub severity: String,
    /// What it is about: `vhost/queue`, the node, or the other labels.
    pub object: String,
    /// The `summary` annotation.
    pub summary: String,
    /// `firing for 3m` / `pending for 40s`.
    pub since: String,
    /// Whether the last evaluation could not tell (state held).
    pub unknown: bool,
    /// `silenced by <id>` / `inhibited by <alertname>`: not notified (empty: notified).
    pub muted: String,
    /// Matchers that select this alert, one per line (the silence form's prefill).
    pub matchers: String,
}

/// The queue table and its navigation.
#[derive(Debug, Default)]
pub struct QueuesView {
    /// The filter as given.
    pub q: String,
    /// Queues in the listing.
    pub total: usize,
    /// Queues that pass the filter.
    pub matched: usize,
    /// The rows of this page.
    pub rows: Vec<QueueRow>,
    /// This page (1-based) and the number of pages.
    pub page: usize,
    /// Number of pages (at least 1).
    pub pages: usize,
    /// 1-based position of the first row shown.
    pub first: usize,
    /// Position of the last row shown.
    pub last: usize,
    /// Why there is no listing (the queue read failed), if so.
    pub error: Option<String>,
    /// Backlog windows not complete yet (their queues show no status).
    pub incomplete: usize,
}

/// One queue.
#[derive(Debug)]
pub struct QueueRow {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// `NO CONSUMERS`, `STALLED`, …, `OK`, or `…` while the window fills.
    pub status: String,
    /// CSS class: `bad`, `warn`, `ok`, `unknown`.
    pub level: &'static str,
    /// The detector's cause (`ingress 5 msg/s > egress 2 msg/s`), or empty.
    pub cause: String,
    /// `messages_ready`, formatted.
    pub ready: String,
    /// `messages_unacknowledged`, formatted.
    pub unacked: String,
    /// `consumers`.
    pub consumers: String,
    /// Time to drain at the window's rates.
    pub drain: String,
    /// Time to the length limit.
    pub overflow: String,
    /// Whether it receives dead-lettered messages.
    pub dead_letter: bool,
    /// The depth window.
    pub spark: Option<Sparkline>,
}

/// One silence.
#[derive(Debug)]
pub struct SilenceRow {
    /// Identifier.
    pub id: String,
    /// Matchers, comma-separated.
    pub matchers: String,
    /// `active`, `pending`, `expired`.
    pub state: &'static str,
    /// `until … (in 2h)` or `ended … ago`.
    pub ends: String,
    /// Who and why.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// The sidecar's own health.
#[derive(Debug, Default)]
pub struct SidecarView {
    /// `None` while every supervised task runs; else the failures.
    pub failed: Option<String>,
    /// Poll interval in words.
    pub interval: String,
    /// One row per endpoint of the last poll.
    pub endpoints: Vec<EndpointRow>,
    /// Backlog windows complete / filling, samples held.
    pub windows: String,
    /// Alert rules evaluated at (RFC 3339).
    pub evaluated_at: String,
}

/// One management API endpoint in the last poll.
#[derive(Debug)]
pub struct EndpointRow {
    /// Path.
    pub path: &'static str,
    /// `ok` or the error.
    pub outcome: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Duration in ms.
    pub ms: u128,
}

impl Page {
    /// The query string of queue page `page` keeping the filter and refresh choice, e.g.
    /// `?q=orders&page=2` (percent-encoded; the template escapes it for the attribute).
    pub fn page_link(&self, page: usize) -> String {
        let mut link = format!("?page={page}");
        if !self.queues.q.is_empty() {
            link.push_str("&q=");
            link.push_str(&percent_encode(&self.queues.q));
        }
        if self.refresh.is_none() {
            link.push_str("&refresh=0");
        }
        link
    }

    /// The current view's link with the automatic reload switched `on` or off.
    pub fn refresh_link(&self, on: bool) -> String {
        let mut link = format!("?page={}", self.queues.page);
        if !self.queues.q.is_empty() {
            link.push_str("&q=");
            link.push_str(&percent_encode(&self.queues.q));
        }
        if !on {
            link.push_str("&refresh=0");
        }
        link
    }
}

/// `text` with every byte but unreserved ones (`A-Z a-z 0-9 - . _ ~`) percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units: `512 B`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn words(d: Duration) -> String {
    human(d.as_secs_f64())
}

/// Builds the page.
pub fn build(inputs: &Inputs<'_>) -> Page {
    let now = inputs.now;
    let snapshot = inputs.snapshot;
    let assessment = inputs.assessment;
    let refresh = inputs
        .query
        .refresh()
        .then(|| inputs.settings.poll_interval.as_secs().clamp(5, 300));
    let (poll_state, poll_line) = match snapshot {
        None => (
            ("waiting", "unknown"),
            "no poll has finished yet".to_owned(),
        ),
        Some(s) => (
            if s.is_up() {
                ("up", "ok")
            } else {
                ("DOWN", "bad")
            },
            format!(
                "poll #{} ended {} ago, took {} ms; last fully successful poll: {}",
                s.seq,
                words(elapsed(s.finished_at(), now)),
                s.duration.as_millis(),
                s.totals.last_success.map_or_else(
                    || "never".to_owned(),
                    |t| format!("{} ago", words(elapsed(t, now)))
                ),
            ),
        ),
    };
    let all_alerts = assessment.map_or(&[][..], |a| a.alerts.as_slice());
    let firing = all_alerts
        .iter()
        .filter(|a| a.state == State::Firing)
        .count();
    let pending = all_alerts
        .iter()
        .filter(|a| a.state == State::Pending)
        .count();
    let rules = inputs.inhibit_rules;
    let muting = Suppressor::new(rules, all_alerts, inputs.silences, now);
    let alerts = alert_rows(all_alerts, &muting, now);
    let problem_queues = assessment.map_or(0, |a| {
        a.backlog
            .queues
            .iter()
            .filter(|q| q.analysis.as_ref().is_some_and(|x| x.status != Status::Ok))
            .count()
    });
    Page {
        version: env!("CARGO_PKG_VERSION"),
        cluster_name: snapshot
            .and_then(|s| s.overview.ok())
            .and_then(|o| o.cluster_name.clone())
            .unwrap_or_default(),
        target: inputs.settings.target.clone(),
        refresh,
        generated_at: format_rfc3339(now),
        poll_state,
        poll_line,
        firing,
        pending,
        problem_queues,
        cluster: assessment.map(|a| cluster_view(a, snapshot)),
        alerts,
        queues: queues_view(inputs),
        silences: silence_rows(inputs.silences, now),
        admin_api: inputs.settings.admin_api,
        sidecar: sidecar_view(inputs),
        audit: super::audit::section(inputs.audit, now),
    }
}

fn cluster_view(
    a: &crate::alerting::Assessment,
    snapshot: Option<&crate::snapshot::Snapshot>,
) -> ClusterView {
    let c = &a.cluster;
    let running = c.running_nodes();
    let expected = c.expected_nodes;
    let (running_text, running_bad) = match (running, expected) {
        (Some(r), Some(e)) => (format!("{r} of {e} running"), r < e),
        (Some(r), None) => (format!("{r} running"), false),
        _ => ("unknown (no member's API answered)".to_owned(), true),
    };
    let (partitioned, partitioned_bad) = match c.partitioned() {
        None => ("unknown".to_owned(), true),
        Some(false) => ("no".to_owned(), false),
        Some(true) => {
            let mut text = "YES".to_owned();
            if let Some(members) = c.partition_members().filter(|m| !m.is_empty()) {
                let names: Vec<&str> = members.into_iter().collect();
                text.push_str(&format!(": {}", names.join(", ")));
            }
            if let Some(split) = c.split.as_ref().filter(|s| !s.is_empty()) {
                let pairs: Vec<String> = split
                    .iter()
                    .map(|(v, m)| format!("{v} sees {m} down"))
                    .collect();
                text.push_str(&format!(" (views disagree: {})", pairs.join("; ")));
            }
            (text, true)
        }
    };
    let alarms = c.alarms.as_ref().map(|set| {
        set.iter()
            .map(|(node, resource)| format!("{node}: {resource}"))
            .collect()
    });
    let mut problems: Vec<String> = c
        .down
        .iter()
        .map(|(member, views)| format!("{member} reported not running by {}", views.join(", ")))
        .collect();
    for (member, reason) in c.unreachable.iter().flatten() {
        problems.push(format!("{member}: management API unreachable ({reason})"));
    }
    for member in &c.restarted {
        problems.push(format!("{member} restarted since the last poll"));
    }
    let nodes = snapshot
        .and_then(|s| s.nodes.ok())
        .map(|nodes| nodes.iter().map(node_row).collect())
        .unwrap_or_default();
    ClusterView {
        running: running_text,
        running_bad,
        partitioned,
        partitioned_bad,
        alarms,
        problems,
        nodes,
    }
}

fn node_row(n: &Node) -> NodeRow {
    let memory = match (n.mem_used, n.mem_limit) {
        (Some(used), Some(limit)) if limit > 0 => {
            let headroom = 100.0 - used as f64 / limit as f64 * 100.0;
            Headroom {
                text: format!(
                    "{} used of {} ({:.0} % headroom)",
                    bytes(used),
                    bytes(limit),
                    headroom.max(0.0)
                ),
                fill: (100.0 - headroom).clamp(0.0, 100.0) as u32,
                level: level(n.mem_alarm, headroom),
            }
        }
        _ => Headroom {
            text: "unknown".to_owned(),
            fill: 0,
            level: "unknown",
        },
    };
    let disk = match (n.disk_free, n.disk_free_limit) {
        (Some(free), Some(limit)) => {
            // Headroom: how far free space is above the limit, as a share of free space.
            let headroom = if free == 0 {
                0.0
            } else {
                (free.saturating_sub(limit)) as f64 / free as f64 * 100.0
            };
            Headroom {
                text: format!(
                    "{} free, alarm below {} ({:.0} % headroom)",
                    bytes(free),
                    bytes(limit),
                    headroom
                ),
                fill: (100.0 - headroom).clamp(0.0, 100.0) as u32,
                level: level(n.disk_free_alarm, headroom),
            }
        }
        _ => Headroom {
            text: "unknown".to_owned(),
            fill: 0,
            level: "unknown",
        },
    };
    NodeRow {
        name: n.name.clone(),
        running: match n.running {
            Some(true) => "running",
            Some(false) => "NOT RUNNING",
            None => "unknown",
        },
        memory,
        disk,
        uptime: n.uptime.map_or_else(
            || "unknown".to_owned(),
            |ms| words(Duration::from_millis(ms)),
        ),
    }
}

fn level(alarm: Option<bool>, headroom: f64) -> &'static str {
    if alarm == Some(true) || headroom <= 0.0 {
        "bad"
    } else if headroom < 20.0 {
        "warn"
    } else {
        "ok"
    }
}

fn alert_rows(alerts: &[Alert], muting: &Suppressor<'_>, now: SystemTime) -> Vec<AlertRow> {
    let mut active: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.state != State::Resolved)
        .collect();
    // Firing first, longest-standing first; at most MAX_ALERT_ROWS.
    active.sort_by_key(|a| {
        (
            Reverse(a.state == State::Firing),
            a.fired_at.unwrap_or(a.active_since),
        )
    });
    active
        .into_iter()
        .take(MAX_ALERT_ROWS)
        .map(|a| {
            let label = |k: &str| a.labels.get(k).cloned().unwrap_or_default();
            let object = match (
                a.labels.get("vhost"),
                a.labels.get("queue"),
                a.labels.get("node"),
            ) {
                (Some(v), Some(q), _) if v != "/" => format!("{q} (vhost {v})"),
                (_, Some(q), _) => q.clone(),
                (_, _, Some(n)) => n.clone(),
                _ => String::new(),
            };
            let object = match a.labels.get("rabbitmq_cluster") {
                Some(c) => format!("{object} (cluster {c})").trim_start().to_owned(),
                None => object,
            };
            let firing = a.state == State::Firing;
            let since = if firing {
                format!(
                    "firing for {}",
                    words(elapsed(a.fired_at.unwrap_or(a.active_since), now))
                )
            } else {
                format!("pending for {}", words(elapsed(a.active_since, now)))
            };
            let matchers = ["alertname", "vhost", "queue", "node", "rabbitmq_cluster"]
                .iter()
                .filter_map(|k| {
                    a.labels
                        .get(*k)
                        .map(|v| format!("{k}=\"{}\"", matcher_value(v)))
                })
                .collect::<Vec<_>>()
                .join("\n");
            AlertRow {
                state: if firing { "firing" } else { "pending" },
                name: label("alertname"),
                severity: label("severity"),
                object,
                summary: a.annotations.get("summary").cloned().unwrap_or_default(),
                since,
                unknown: a.unknown,
                muted: muting.status(a).describe(alerts).unwrap_or_default(),
                matchers,
            }
        })
        .collect()
}

/// A label value quoted for a matcher (`\` and `"` escaped).
fn matcher_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

fn status_rank(a: Option<&Analysis>) -> u8 {
    match a.map(|a| a.status) {
        Some(Status::NoConsumers) => 0,
        Some(Status::Redelivering) => 1,
        Some(Status::Stalled) => 2,
        Some(Status::Growing) => 3,
        Some(Status::Ok) | None => 4,
    }
}

fn queues_view(inputs: &Inputs<'_>) -> QueuesView {
    let q = inputs.query.filter();
    let mut view = QueuesView {
        q: q.clone(),
        page: 1,
        pages: 1,
        ..QueuesView::default()
    };
    let Some(snapshot) = inputs.snapshot else {
        view.error = Some("no poll has finished yet".to_owned());
        return view;
    };
    let queues = match &snapshot.queues.result {
        Ok(queues) => queues,
        Err(e) => {
            view.error = Some(format!("the queue listing failed: {e}"));
            return view;
        }
    };
    view.total = queues.len();
    // The assessment's report is in the listing's order when it is of this snapshot.
    let report = inputs
        .assessment
        .filter(|a| a.snapshot.seq == snapshot.seq && a.backlog.queues.len() == queues.len())
        .map(|a| &a.backlog);
    view.incomplete = report.map_or(queues.len(), |r| r.incomplete);
    let needle = q.to_lowercase();
    let mut picked: Vec<(u8, Reverse<u64>, usize)> = queues
        .iter()
        .enumerate()
        .filter(|(_, queue)| {
            needle.is_empty()
                || contains_ignore_case(&queue.name, &needle)
                || contains_ignore_case(&queue.vhost, &needle)
        })
        .map(|(i, queue)| {
            let analysis = report.and_then(|r| r.queues[i].analysis.as_ref());
            (
                status_rank(analysis),
                Reverse(queue.messages_ready.unwrap_or(0)),
                i,
            )
        })
        .collect();
    view.matched = picked.len();
    view.pages = picked.len().div_ceil(PAGE_SIZE).max(1);
    view.page = inputs.query.page().min(view.pages);
    let start = (view.page - 1) * PAGE_SIZE;
    let end = (start + PAGE_SIZE).min(picked.len());
    // Only the shown page needs ordering in full: select it, then sort it.
    if end > start {
        if start > 0 {
            picked.select_nth_unstable(start);
        }
        let rest = &mut picked[start..];
        if end - start < rest.len() {
            rest.select_nth_unstable(end - start);
        }
        picked[start..end].sort_unstable();
    }
    view.first = if end > start { start + 1 } else { 0 };
    view.last = end;
    view.rows = picked[start..end]
        .iter()
        .map(|&(_, _, i)| {
            let backlog = report.map(|r| &r.queues[i]);
            queue_row(&queues[i], backlog)
        })
        .collect();
    view
}

/// Whether `haystack` contains `needle_lower` (already lower-case), ignoring case.
fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    if haystack.is_ascii() && needle_lower.is_ascii() {
        haystack
            .as_bytes()
            .windows(needle_lower.len())
            .any(|w| w.eq_ignore_ascii_case(needle_lower.as_bytes()))
    } else {
        haystack.to_lowercase().contains(needle_lower)
    }
}

fn queue_row(q: &Queue, backlog: Option<&crate::alerting::backlog::QueueBacklog>) -> QueueRow {
    let analysis = backlog.and_then(|b| b.analysis.as_ref());
    let count = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), thousands);
    let (status, level, cause, drain, overflow) = match analysis {
        None => (
            "…".to_owned(),
            "unknown",
            "window filling".to_owned(),
            String::new(),
            String::new(),
        ),
        Some(a) => {
            let details = a.details();
            let level = match a.status {
                Status::Ok => "ok",
                Status::Growing => "warn",
                _ => "bad",
            };
            (
                a.status.label().replace('_', " ").to_uppercase(),
                level,
                if a.status == Status::Ok {
                    String::new()
                } else {
                    a.cause()
                },
                details.get("time_to_drain").cloned().unwrap_or_default(),
                details
                    .get("time_to_overflow")
                    .map(|t| match details.get("overflow") {
                        Some(then) if t != "not growing" => format!("{t} (then {then})"),
                        _ => t.clone(),
                    })
                    .unwrap_or_default(),
            )
        }
    };
    QueueRow {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        status,
        level,
        cause,
        ready: count(q.messages_ready),
        unacked: count(q.messages_unacknowledged),
        consumers: count(q.consumers),
        drain,
        overflow,
        dead_letter: backlog.and_then(|b| b.dead_letter).unwrap_or(false),
        spark: backlog.and_then(|b| sparkline::draw(&b.depth.points())),
    }
}

fn silence_rows(silences: &[crate::notify::dispatch::Silence], now: SystemTime) -> Vec<SilenceRow> {
    let mut rows: Vec<&crate::notify::dispatch::Silence> = silences.iter().collect();
    rows.sort_by_key(|s| (s.state(now) == "expired", Reverse(s.ends_at)));
    rows.into_iter()
        .map(|s| {
            let state = s.state(now);
            let ends = if state == "expired" {
                format!("ended {} ago", words(elapsed(s.ends_at, now)))
            } else {
                format!(
                    "until {} (in {})",
                    format_rfc3339(s.ends_at),
                    words(elapsed(now, s.ends_at))
                )
            };
            SilenceRow {
                id: s.id.clone(),
                matchers: s.matchers.join(", "),
                state,
                ends,
                created_by: s.created_by.clone(),
                comment: s.comment.clone(),
            }
        })
        .collect()
}

fn sidecar_view(inputs: &Inputs<'_>) -> SidecarView {
    let endpoints = inputs.snapshot.map_or_else(Vec::new, |s| {
        Endpoint::ALL
            .iter()
            .map(|&endpoint| {
                let error = s.error(endpoint);
                EndpointRow {
                    path: endpoint.path(),
                    outcome: error.map_or_else(|| "ok".to_owned(), ToString::to_string),
                    ok: error.is_none(),
                    ms: s.duration_of(endpoint).as_millis(),
                }
            })
            .collect()
    });
    SidecarView {
        failed: inputs.health.err().map(str::to_owned),
        interval: words(inputs.settings.poll_interval),
        endpoints,
        windows: inputs.assessment.map_or_else(
            || "not evaluated yet".to_owned(),
            |a| {
                format!(
                    "{} complete, {} filling, {} samples held",
                    thousands(a.backlog.complete as u64),
                    thousands(a.backlog.incomplete as u64),
                    thousands(a.backlog.samples as u64)
                )
            },
        ),
        evaluated_at: inputs
            .assessment
            .map_or_else(String::new, |a| format_rfc3339(a.evaluated_at)),
    }
}
