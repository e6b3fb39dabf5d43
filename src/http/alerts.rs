//! `GET /api/v1/alerts`: the alerts of the latest assessment with Alertmanager's `status`
//! object, filtered as Alertmanager's API v2 filters them, streamed in chunks.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{AppState, bad_request};
use crate::alerting::{Alert, Assessment, State as AlertState};
use crate::matcher::Matcher;
use crate::notify::suppress::{self, Suppressor};

/// `GET /api/v1/alerts`: `{"status":"success","data":{"alerts":[…]}}`, each alert with
/// `fingerprint`, `labels`, `annotations`, `state` (pending, firing, resolved), `value`,
/// `active_since`, `fired_at`, `resolved_at`, `last_true` (RFC 3339), `unknown` (the last
/// evaluation could not tell; the state is held), `keep_firing_since` (present while only
/// `keep_firing_for` keeps it firing) and Alertmanager's `status` object: `state` `active`
/// or `suppressed`, `silencedBy` (silence ids), `inhibitedBy` (fingerprints).
///
/// Filters (all must hold): `alertname=NAME`, `state=pending|firing|resolved` (repeatable or
/// comma-separated: any of them), `filter=MATCHER` as Alertmanager's API takes them
/// (repeatable: `filter=queue=~"orders.*"&filter=severity!="info"`), and Alertmanager's
/// booleans `active`, `silenced`, `inhibited` (each `true` by default; `false` leaves out
/// the alerts not muted, the silenced ones, the inhibited ones). A bad filter answers 400
/// naming it. The body is streamed, a few dozen alerts per chunk, so a response with 10,000
/// alerts never exists as one string. Each chunk is serialized when hyper asks for it (no task
/// of its own); a client that stops reading holds the assessment until the server's write bound
/// ([`crate::web::WRITE_STALL_TIMEOUT`]) closes its connection.
pub(super) async fn alerts(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let filter = match AlertFilter::parse(query.as_deref().unwrap_or("")) {
        Ok(f) => f,
        Err(message) => return bad_request(message),
    };
    let assessment = state.assessments.borrow().clone();
    let alerts = assessment.as_ref().map_or(&[][..], |a| a.alerts.as_slice());
    let silences = state.silences.list(SystemTime::now());
    let info = state.info.borrow().clone();
    let suppressor = Suppressor::new(&info.inhibit_rules, alerts, &silences, SystemTime::now());
    let statuses = alerts.iter().map(|a| suppressor.status(a)).collect();
    let body = AlertsBody {
        assessment,
        statuses,
        filter,
        next: 0,
        written: 0,
        started: false,
        done: false,
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::new(body),
    )
        .into_response()
}

/// Which alerts `GET /api/v1/alerts` lists.
#[derive(Debug)]
pub(super) struct AlertFilter {
    /// `alertname=`: these names only (any of them).
    names: Vec<String>,
    /// `state=`: these states only (any of them).
    states: Vec<AlertState>,
    /// `filter=`: label matchers, all of which must hold.
    matchers: Vec<Matcher>,
    /// `active=`: list the alerts that are neither silenced nor inhibited (default true).
    active: bool,
    /// `silenced=`: list silenced alerts (default true).
    silenced: bool,
    /// `inhibited=`: list inhibited alerts (default true).
    inhibited: bool,
}

impl Default for AlertFilter {
    fn default() -> Self {
        AlertFilter {
            names: Vec::new(),
            states: Vec::new(),
            matchers: Vec::new(),
            active: true,
            silenced: true,
            inhibited: true,
        }
    }
}

/// A boolean query parameter as Alertmanager's API takes it (`true`/`false`, `1`/`0`).
fn boolean(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!("invalid {key} {other:?}: expected true or false")),
    }
}

impl AlertFilter {
    /// Parses the query string; unknown parameters are errors (a typo must not list
    /// everything).
    pub(super) fn parse(query: &str) -> Result<AlertFilter, String> {
        let mut f = AlertFilter::default();
        let url = reqwest::Url::parse(&format!("http://q/?{query}"))
            .map_err(|e| format!("invalid query string: {e}"))?;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "alertname" => f.names.push(value.into_owned()),
                "state" => {
                    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        f.states.push(match part {
                            "pending" => AlertState::Pending,
                            "firing" => AlertState::Firing,
                            "resolved" => AlertState::Resolved,
                            other => {
                                return Err(format!(
                                    "invalid state {other:?}: expected pending, firing or resolved"
                                ));
                            }
                        });
                    }
                }
                "filter" => f.matchers.push(
                    Matcher::parse(&value)
                        .map_err(|e| format!("invalid filter {:?}: {e}", value.as_ref()))?,
                ),
                "active" => f.active = boolean("active", &value)?,
                "silenced" => f.silenced = boolean("silenced", &value)?,
                "inhibited" => f.inhibited = boolean("inhibited", &value)?,
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: expected alertname, state, filter, active, silenced or inhibited"
                    ));
                }
            }
        }
        Ok(f)
    }

    /// Whether `alert`, muted as `status` says, is listed.
    fn matches(&self, alert: &Alert, status: &suppress::Status) -> bool {
        let muted = !status.silenced_by.is_empty() || !status.inhibited_by.is_empty();
        (self.active || muted)
            && (self.silenced || status.silenced_by.is_empty())
            && (self.inhibited || status.inhibited_by.is_empty())
            && (self.names.is_empty()
                || alert
                    .labels
                    .get("alertname")
                    .is_some_and(|n| self.names.iter().any(|w| w == n)))
            && (self.states.is_empty() || self.states.contains(&alert.state))
            && self.matchers.iter().all(|m| m.matches(&alert.labels))
    }
}

/// Bytes per chunk of the alerts body (a chunk ends after the alert that crosses it).
pub(super) const ALERTS_CHUNK_BYTES: usize = 64 * 1024;

/// The `/api/v1/alerts` body, serialized chunk by chunk from the shared assessment.
struct AlertsBody {
    /// The assessment listed (`None`: no evaluation yet, an empty list).
    assessment: Option<Arc<Assessment>>,
    /// Each alert's silences and inhibitions, in the assessment's order.
    statuses: Vec<suppress::Status>,
    /// Which alerts to list.
    filter: AlertFilter,
    /// Index of the next alert to look at.
    next: usize,
    /// Alerts written so far.
    written: usize,
    /// The opening was written.
    started: bool,
    /// The closing was written.
    done: bool,
}

impl hyper::body::Body for AlertsBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(None);
        }
        let mut buf = Vec::with_capacity(ALERTS_CHUNK_BYTES + 4096);
        if !this.started {
            buf.extend_from_slice(br#"{"status":"success","data":{"alerts":["#);
            this.started = true;
        }
        let alerts = this
            .assessment
            .as_ref()
            .map_or(&[][..], |a| a.alerts.as_slice());
        let none = suppress::Status::default();
        while this.next < alerts.len() && buf.len() < ALERTS_CHUNK_BYTES {
            let alert = &alerts[this.next];
            let status = this.statuses.get(this.next).unwrap_or(&none);
            this.next += 1;
            if !this.filter.matches(alert, status) {
                continue;
            }
            if this.written > 0 {
                buf.push(b',');
            }
            let mark = buf.len();
            match serde_json::to_writer(&mut buf, &Listed { alert, status }) {
                Ok(()) => this.written += 1,
                Err(e) => {
                    buf.truncate(mark - usize::from(this.written > 0));
                    tracing::warn!(
                        fingerprint = %alert.fingerprint,
                        error = %e,
                        "alert left out of /api/v1/alerts: cannot serialize it"
                    );
                }
            }
        }
        if this.next >= alerts.len() {
            buf.extend_from_slice(b"]}}");
            this.done = true;
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(buf.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// An alert as `/api/v1/alerts` lists it: its fields and Alertmanager's `status` object.
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    alert: &'a Alert,
    status: &'a suppress::Status,
}
