//! The HTTP server's routes: `/` (the status page, [`crate::status`]), `/metrics` (the pre-encoded exposition),
//! `/-/healthy` (every supervised task runs) and `/-/ready` (healthy, state file saved, a poll succeeded
//! recently), the alert API, the reliability audit's report (`/api/v1/audit`), the silence
//! API and the status page's silence forms (`POST /-/silences`, `POST /-/silences/expire`:
//! form-encoded, answered with a redirect to the page, through the same code as the JSON
//! API). Handlers only read the latest snapshot and
//! exposition; none reaches the broker.
//!
//! Write requests (any method but GET and HEAD: creating and expiring silences, and
//! `POST /-/reload`, routed in [`crate::reload`] through [`admin_only`]) are the admin API:
//! refused with 403 unless `web.enable_admin_api` is true, as Prometheus refuses them
//! without `--web.enable-admin-api`; with it on, still refused when a browser marks them as
//! sent by another site (`Sec-Fetch-Site`). TLS and authentication are the server's
//! ([`crate::web`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

mod alerts;
mod plain;

use crate::alerting::AssessmentReceiver;
use crate::metrics::Exposition;
use crate::metrics::format::{Format, accepts_gzip};
use crate::notify::dispatch::{Silence, Silences};
use crate::snapshot::{Snapshot, SnapshotReceiver};
use crate::status;
use crate::supervise::Health;
use crate::util::elapsed;
use crate::util::time::{format_rfc3339, parse_rfc3339};

/// Time limit for handling one HTTP request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the routes read. Cheap to clone: watch receivers and an `Arc`.
#[derive(Clone)]
pub struct AppState {
    /// Latest snapshot (`None` before the first poll).
    pub snapshots: SnapshotReceiver,
    /// Latest snapshot with its alerts (`None` before the first evaluation).
    pub assessments: AssessmentReceiver,
    /// The reliability audit's latest report (`None`: `audit.enabled` is false).
    pub audit: Option<crate::audit::AuditReceiver>,
    /// Latest encoded exposition.
    pub exposition: watch::Receiver<Arc<Exposition>>,
    /// Facts of the running configuration for the status page and readiness (a reload
    /// publishes new ones).
    pub info: watch::Receiver<Arc<ServerInfo>>,
    /// Silences (created, listed and expired through the API).
    pub silences: Arc<Silences>,
    /// Whether every supervised task still runs (`/-/healthy`, `/-/ready`).
    pub health: Health,
}

/// Static facts the routes need.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The management API base URL (never holds credentials), for the status page.
    pub target: String,
    /// `poll.interval`.
    pub poll_interval: Duration,
    /// `web.enable_admin_api`: whether write requests are served.
    pub admin_api: bool,
    /// `/-/ready` answers 200 while the last fully successful poll ended at most this long ago:
    /// `2 × poll.interval + rabbitmq.timeout`.
    pub ready_max_age: Duration,
    /// `notify.inhibit_rules` (with the default ones): which alerts `/api/v1/alerts` and the
    /// status page show as inhibited.
    pub inhibit_rules: Vec<crate::config::InhibitRule>,
}

/// Largest `POST /api/v1/silences` body: 64 KiB, room for a silence at every bound of
/// [`crate::notify::silence`] (32 matchers of 1 KiB, a 4 KiB comment) with JSON escaping.
const SILENCE_BODY_LIMIT: usize = 64 * 1024;

/// The router with every route, the admin API switch, request tracing and the request
/// timeout.
pub fn app(state: AppState) -> Router {
    let admin_api = state.info.borrow().admin_api;
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/api/v1/alerts", get(alerts::alerts))
        .route("/api/v1/audit", get(audit))
        .route(
            "/api/v1/silences",
            get(list_silences)
                .post(create_silence)
                .layer(axum::extract::DefaultBodyLimit::max(SILENCE_BODY_LIMIT)),
        )
        .route(
            "/-/silences",
            axum::routing::post(create_silence_form)
                .layer(axum::extract::DefaultBodyLimit::max(SILENCE_BODY_LIMIT)),
        )
        .route(
            "/-/silences/expire",
            axum::routing::post(expire_silence_form),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                admin_only(admin_api, request, next)
            },
        ))
        .layer(catch_panic())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(trace_layer())
        .with_state(state)
}

/// `GET /api/v1/audit`: the reliability audit's last run, `{"status":"success","data":
/// {"findings":[…],"skipped":[…],"last_run":…,"duration":…,"reads":[…],"runs":N}}`
/// (`last_run` null and no findings before the first run); 404 when the audit is disabled.
async fn audit(State(state): State<AppState>) -> Response {
    let Some(reports) = &state.audit else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"status": "error",
                "error": "the reliability audit is disabled (audit.enabled: false)"})),
        )
            .into_response();
    };
    let report = reports.borrow().clone();
    let data = match report {
        Some(r) => serde_json::to_value(&*r).unwrap_or_else(|e| {
            tracing::error!(error = %e, "serializing the audit report failed");
            serde_json::Value::Null
        }),
        None => serde_json::json!({"findings": [], "skipped": [], "last_run": null,
            "duration": null, "reads": [], "runs": 0}),
    };
    axum::Json(serde_json::json!({"status": "success", "data": data})).into_response()
}

/// Request tracing: server errors are logged at error level, except the 503 of `/-/ready`,
/// which is an expected answer (before the first poll, or while the broker cannot be read),
/// not a failure of the sidecar.
fn trace_layer() -> TraceLayer<ReadinessAware> {
    TraceLayer::new(ReadinessAware)
}

/// Classifies responses as tower-http's [`ServerErrorsAsFailures`] does, except a 503 from
/// `/-/ready`, which is a success.
#[derive(Debug, Clone, Copy)]
struct ReadinessAware;

/// The classifier of one request: whether it asked `/-/ready`.
#[derive(Debug, Clone, Copy)]
struct ReadinessClassifier {
    /// The request was for `/-/ready`.
    ready: bool,
}

impl MakeClassifier for ReadinessAware {
    type Classifier = ReadinessClassifier;
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn make_classifier<B>(&self, req: &axum::http::Request<B>) -> Self::Classifier {
        ReadinessClassifier {
            ready: req.uri().path() == "/-/ready",
        }
    }
}

impl ClassifyResponse for ReadinessClassifier {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        res: &axum::http::Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if self.ready && res.status() == StatusCode::SERVICE_UNAVAILABLE {
            ClassifiedResponse::Ready(Ok(()))
        } else {
            ServerErrorsAsFailures::new().classify_response(res)
        }
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}

/// Turns a panicking handler into a 500 logged at error level (instead of a dropped
/// connection). A handler's panic ends one request, not a supervised task.
fn catch_panic()
-> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send>) -> Response> {
    fn on_panic(payload: Box<dyn std::any::Any + Send>) -> Response {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %message, "request handler panicked");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(on_panic as fn(_) -> Response)
}

/// What a write request gets while `web.enable_admin_api` is false.
pub const ADMIN_API_DISABLED: &str = "the admin API (creating and expiring silences, reloading the configuration) is disabled: set web.enable_admin_api: true in the configuration (or RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API=true) to enable it";

/// What a write request gets when a browser says another site sent it.
pub const CROSS_SITE_WRITE: &str =
    "write requests sent by another web site (Sec-Fetch-Site: cross-site or same-site) are refused";

/// Refuses write requests (any method but GET and HEAD) with 403 unless `enabled`, and, even
/// then, those a browser marks as sent by another site (`Sec-Fetch-Site` other than
/// `same-origin` or `none`): a page elsewhere cannot post the status page's forms (cross-site
/// request forgery). Clients that are not browsers (curl, scripts) send no such header.
pub async fn admin_only(
    enabled: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    let error = if !enabled {
        ADMIN_API_DISABLED
    } else if request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v != "same-origin" && v != "none")
    {
        CROSS_SITE_WRITE
    } else {
        return next.run(request).await;
    };
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"status": "error", "error": error})),
    )
        .into_response()
}

/// Serves the latest exposition in the format `Accept` prefers, gzip-compressed when
/// `Accept-Encoding` allows; a variant not built yet for this snapshot is built off the async
/// workers, once. The plain variants are streamed (`plain::plain_body`), given up on after
/// [`crate::web::WRITE_STALL_TIMEOUT`] without a chunk taken.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(text(header::ACCEPT));
    let gzip = accepts_gzip(text(header::ACCEPT_ENCODING));
    let exposition = state.exposition.borrow().clone();
    let body = if !gzip {
        plain::plain_body(exposition, format, crate::web::WRITE_STALL_TIMEOUT)
    } else if exposition.variants.is_built(format, gzip) {
        axum::body::Body::from(exposition.variants.get(format, gzip))
    } else {
        match tokio::task::spawn_blocking(move || exposition.variants.get(format, gzip)).await {
            Ok(body) => axum::body::Body::from(body),
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept, Accept-Encoding"),
        ],
        body,
    )
        .into_response();
    if gzip {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            axum::http::HeaderValue::from_static("gzip"),
        );
    }
    response
}

/// Body of `POST /api/v1/silences`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    /// Matchers such as `alertname="RabbitmqQueueMessagesReady"`, `queue=~"orders.*"`.
    matchers: Vec<String>,
    /// Start (RFC 3339); default now.
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    /// End (RFC 3339); or give `duration`.
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    /// Length from the start, e.g. `2h`, instead of `endsAt`.
    #[serde(default)]
    duration: Option<String>,
    /// Who silences.
    #[serde(default, rename = "createdBy")]
    created_by: String,
    /// Why.
    #[serde(default)]
    comment: String,
}

fn silence_json(s: &Silence, now: SystemTime) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "matchers": s.matchers,
        "startsAt": format_rfc3339(s.starts_at),
        "endsAt": format_rfc3339(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
        "status": {"state": s.state(now)},
    })
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({"status": "error", "error": message})),
    )
        .into_response()
}

/// `GET /api/v1/silences`: every silence (expired ones for a day), with `status.state`
/// `active`, `pending` or `expired`.
async fn list_silences(State(state): State<AppState>) -> Response {
    let now = SystemTime::now();
    let list: Vec<serde_json::Value> = state
        .silences
        .list(now)
        .iter()
        .map(|s| silence_json(s, now))
        .collect();
    axum::Json(serde_json::json!({"status": "success", "data": list})).into_response()
}

/// `POST /api/v1/silences` with [`NewSilence`]: 200 `{"status":"success","data":{"silenceId":…}}`
/// or 400 with the error.
async fn create_silence(
    State(state): State<AppState>,
    body: Result<axum::Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let axum::Json(new) = match body {
        Ok(b) => b,
        Err(e) => return bad_request(e.body_text()),
    };
    let now = SystemTime::now();
    let starts_at = match new.starts_at.as_deref().map(parse_rfc3339) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(e)) => return bad_request(format!("startsAt: {e}")),
    };
    let ends_at = match (new.ends_at.as_deref(), new.duration.as_deref()) {
        (Some(t), None) => match parse_rfc3339(t) {
            Ok(t) => t,
            Err(e) => return bad_request(format!("endsAt: {e}")),
        },
        (None, Some(d)) => match humantime::parse_duration(d) {
            Ok(d) => match crate::notify::silence::end_after(starts_at, d) {
                Ok(t) => t,
                Err(e) => return bad_request(e.to_string()),
            },
            Err(e) => return bad_request(format!("duration: `{d}`: {e}")),
        },
        _ => return bad_request("give exactly one of endsAt and duration".to_owned()),
    };
    let silence = Silence {
        id: String::new(),
        matchers: new.matchers,
        starts_at,
        ends_at,
        created_by: new.created_by,
        comment: new.comment,
    };
    match state.silences.add(silence, now) {
        Ok(id) => axum::Json(serde_json::json!({"status": "success", "data": {"silenceId": id}}))
            .into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

/// `DELETE /api/v1/silences/{id}`: expires the silence now; 404 when unknown.
async fn expire_silence(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if state.silences.expire(&id, SystemTime::now()) {
        axum::Json(serde_json::json!({"status": "success"})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"status": "error", "error": format!("no silence {id}")})),
        )
            .into_response()
    }
}

/// 200 while every supervised task runs; 503 naming the tasks that failed.
async fn healthy(State(state): State<AppState>) -> Response {
    match state.health.check() {
        Ok(()) => (StatusCode::OK, "OK\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        )
            .into_response(),
    }
}

/// Whether a poll that read every endpoint ended within `max_age` of `now`; the reason if not.
pub fn readiness(
    snapshot: Option<&Snapshot>,
    max_age: Duration,
    now: SystemTime,
) -> Result<(), String> {
    let Some(s) = snapshot else {
        return Err("no poll has finished yet".to_owned());
    };
    let Some(last) = s.totals.last_success else {
        return Err("no poll has succeeded yet".to_owned());
    };
    let age = elapsed(last, now);
    if age > max_age {
        return Err(format!(
            "the last successful poll ended {} ago (limit {})",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(max_age)
        ));
    }
    Ok(())
}

async fn ready(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    let verdict = state.health.check_ready().and_then(|()| {
        readiness(
            snapshot.as_deref(),
            state.info.borrow().ready_max_age,
            SystemTime::now(),
        )
    });
    match verdict {
        Ok(()) => (StatusCode::OK, "OK\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// `GET /`: the status page ([`crate::status`]).
async fn index(
    State(state): State<AppState>,
    query: Result<Query<status::Query>, axum::extract::rejection::QueryRejection>,
) -> Html<String> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let snapshot = state.snapshots.borrow().clone();
    let assessment = state.assessments.borrow().clone();
    let now = SystemTime::now();
    let silences = state.silences.list(now);
    let health = state.health.check();
    let info = state.info.borrow().clone();
    let audit = state.audit.as_ref().map(|rx| rx.borrow().clone());
    let settings = status::Settings {
        target: info.target.clone(),
        poll_interval: info.poll_interval,
        admin_api: info.admin_api,
    };
    // Sorting thousands of queues is CPU work: off the async workers.
    let page = tokio::task::spawn_blocking(move || {
        status::render(&status::Inputs {
            settings: &settings,
            snapshot: snapshot.as_deref(),
            assessment: assessment.as_deref(),
            silences: &silences,
            inhibit_rules: &info.inhibit_rules,
            health: health.as_ref().map(|_| ()).map_err(String::as_str),
            query: &query,
            now,
            audit: match &audit {
                None => status::audit::AuditState::Off,
                Some(None) => status::audit::AuditState::Waiting,
                Some(Some(report)) => status::audit::AuditState::Ran(report),
            },
        })
    })
    .await
    .unwrap_or_else(|_| {
        "<!doctype html><title>rabbitmq-watch</title><p>status page error</p>".to_owned()
    });
    Html(page)
}

/// The status page's silence form (`POST /-/silences`, form-encoded): matchers one per line.
#[derive(Debug, serde::Deserialize)]
struct SilenceForm {
    /// Matchers, one per line.
    matchers: String,
    /// Length, e.g. `2h`.
    #[serde(default)]
    duration: String,
    /// Who silences.
    #[serde(default)]
    created_by: String,
    /// Why.
    #[serde(default)]
    comment: String,
}

/// The status page's expire button (`POST /-/silences/expire`).
#[derive(Debug, serde::Deserialize)]
struct ExpireForm {
    /// The silence's identifier.
    id: String,
}

/// Back to the status page (`/-/silences…` → `/`, relative so a path prefix is kept).
fn back_to_status_page() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "../")]).into_response()
}

/// The refusal page for a form, with the status of the API's answer.
async fn form_refused(action: &str, response: Response) -> Response {
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let reason = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let page = status::FormError {
        action: action.to_owned(),
        reason,
    };
    (status, Html(page.html())).into_response()
}

/// `POST /-/silences` (admin API): creates a silence from the status page's form through the
/// same path as `POST /api/v1/silences`, then redirects back to the page.
async fn create_silence_form(
    State(state): State<AppState>,
    form: Result<axum::Form<SilenceForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return form_refused("create the silence", bad_request(e.body_text())).await,
    };
    let new = NewSilence {
        matchers: form
            .matchers
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        starts_at: None,
        ends_at: None,
        duration: Some(if form.duration.trim().is_empty() {
            "2h".to_owned()
        } else {
            form.duration.trim().to_owned()
        }),
        created_by: form.created_by,
        comment: form.comment,
    };
    let response = create_silence(State(state), Ok(axum::Json(new))).await;
    if response.status().is_success() {
        back_to_status_page()
    } else {
        form_refused("create the silence", response).await
    }
}

/// `POST /-/silences/expire` (admin API): expires a silence from the status page, through the
/// same path as `DELETE /api/v1/silences/{id}`, then redirects back to the page.
async fn expire_silence_form(
    State(state): State<AppState>,
    form: Result<axum::Form<ExpireForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let id = match form {
        Ok(axum::Form(f)) => f.id,
        Err(e) => return form_refused("expire the silence", bad_request(e.body_text())).await,
    };
    let response = expire_silence(State(state), axum::extract::Path(id)).await;
    if response.status().is_success() {
        back_to_status_page()
    } else {
        form_refused("expire the silence", response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::Endpoint;
    use crate::snapshot::PollTotals;

    fn snapshot_with_last_success(last: Option<SystemTime>) -> Snapshot {
        Snapshot::builder()
            .seq(3)
            .totals(PollTotals {
                polls: 3,
                failures: Default::default(),
                last_success: last,
                ..PollTotals::default()
            })
            .build()
    }

    #[test]
    fn ready_only_while_the_last_success_is_recent() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let max = Duration::from_secs(40);
        assert!(readiness(None, max, now).is_err());
        assert!(readiness(Some(&snapshot_with_last_success(None)), max, now).is_err());
        let recent = snapshot_with_last_success(Some(now - Duration::from_secs(40)));
        assert!(readiness(Some(&recent), max, now).is_ok());
        let stale = snapshot_with_last_success(Some(now - Duration::from_secs(41)));
        let reason = readiness(Some(&stale), max, now).unwrap_err();
        assert!(reason.contains("41s ago"), "{reason}");
    }

    fn state() -> AppState {
        let info = crate::metrics::SidecarInfo {
            poll_interval: Duration::from_secs(15),
            rule_names: vec![],
            config_reload: None,
            notify_stats: None,
            audit: None,
        };
        let snapshot = Arc::new(snapshot_with_last_success(Some(SystemTime::now())));
        let exposition = crate::metrics::encode(Some(snapshot.clone()), None, None, &[], &info);
        let (_snapshot_tx, snapshots) = watch::channel(Some(snapshot));
        let (_assessment_tx, assessments) = watch::channel(None);
        let (_exposition_tx, exposition) = watch::channel(Arc::new(exposition));
        AppState {
            health: Health::default(),
            silences: Arc::new(Silences::default()),
            snapshots,
            audit: None,
            assessments,
            exposition,
            info: watch::channel(Arc::new(ServerInfo {
                target: "http://mq/".into(),
                poll_interval: Duration::from_secs(15),
                admin_api: false,
                ready_max_age: Duration::from_secs(40),
                inhibit_rules: vec![crate::config::queue_inhibit_rule()],
            }))
            .1,
        }
    }

    fn alert(name: &str, queue: &str, state: crate::alerting::State) -> crate::alerting::Alert {
        let labels: crate::alerting::rules::Labels = [("alertname", name), ("queue", queue)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        crate::alerting::Alert {
            fingerprint: format!("{name}-{queue}"),
            labels: Arc::new(labels),
            annotations: Default::default(),
            analysis: None,
            state,
            value: 1.0,
            active_since: SystemTime::UNIX_EPOCH,
            fired_at: None,
            resolved_at: None,
            last_true: SystemTime::UNIX_EPOCH,
            unknown: false,
            keep_firing_since: None,
        }
    }

    async fn list_alerts(query: &str, count: usize) -> (StatusCode, String) {
        use crate::alerting::State as S;
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let mut alerts = vec![
            alert("A", "orders", S::Firing),
            alert("A", "billing", S::Pending),
            alert("B", "orders", S::Resolved),
        ];
        alerts.extend((0..count).map(|i| alert("C", &format!("q{i:05}"), S::Pending)));
        let assessment = crate::alerting::Assessment {
            snapshot: Arc::new(Snapshot::builder().build()),
            backlog: Default::default(),
            cluster: Default::default(),
            alerts,
            evaluated_at: SystemTime::UNIX_EPOCH,
        };
        let mut st = state();
        let (tx, rx) = watch::channel(Some(Arc::new(assessment)));
        st.assessments = rx;
        let response = app(st)
            .oneshot(
                axum::http::Request::get(format!("/api/v1/alerts{query}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        drop(tx);
        let status = response.status();
        let mut body = response.into_body();
        let mut text = Vec::new();
        let mut chunks = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                assert!(data.len() < 2 * alerts::ALERTS_CHUNK_BYTES);
                text.extend_from_slice(&data);
                chunks += 1;
            }
        }
        if count > 1000 {
            assert!(chunks > 2, "{chunks} chunks");
        }
        (status, String::from_utf8(text).unwrap())
    }

    fn names(body: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], "success");
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["labels"]["alertname"].as_str().unwrap(),
                    a["labels"]["queue"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn alerts_are_filtered_by_name_state_and_matchers() {
        let (code, body) = list_alerts("", 0).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(names(&body), ["A/orders", "A/billing", "B/orders"]);
        let (_, body) = list_alerts("?alertname=A", 0).await;
        assert_eq!(names(&body), ["A/orders", "A/billing"]);
        let (_, body) = list_alerts("?state=firing,resolved", 0).await;
        assert_eq!(names(&body), ["A/orders", "B/orders"]);
        let (_, body) = list_alerts("?state=pending&state=firing&alertname=A&alertname=B", 0).await;
        assert_eq!(names(&body), ["A/orders", "A/billing"]);
        let (_, body) = list_alerts(
            "?filter=queue%3D%22orders%22&filter=alertname!%3D%22A%22",
            0,
        )
        .await;
        assert_eq!(names(&body), ["B/orders"]);
        let (_, body) = list_alerts("?filter=queue%3D~%22bill.*%22", 0).await;
        assert_eq!(names(&body), ["A/billing"]);
        let (_, body) = list_alerts("?alertname=none", 0).await;
        assert!(names(&body).is_empty());
        for (bad, says) in [
            ("?state=sleeping", "invalid state"),
            ("?filter=queue", "invalid filter"),
            ("?filter=queue%3D~%22(%22", "invalid filter"),
            ("?alertnme=A", "unknown parameter"),
        ] {
            let (code, body) = list_alerts(bad, 0).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
            assert!(body.contains(says), "{bad}: {body}");
        }
    }

    /// Issue #15: muted alerts stay visible, marked as Alertmanager marks them, in
    /// `/api/v1/alerts` and on the status page.
    #[tokio::test]
    async fn inhibited_and_silenced_alerts_are_listed_as_suppressed() {
        use crate::alerting::State as S;
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let alerts = vec![
            alert("RabbitmqQueueStalled", "orders", S::Firing),
            alert("RabbitmqQueueGrowing", "orders", S::Firing),
            alert("RabbitmqQueueMessagesReady", "audit", S::Firing),
        ];
        let st = state();
        let now = SystemTime::now();
        let id = st
            .silences
            .add(
                Silence {
                    id: String::new(),
                    matchers: vec![r#"queue="audit""#.to_owned()],
                    starts_at: now,
                    ends_at: now + Duration::from_secs(3600),
                    created_by: "ops".to_owned(),
                    comment: "maintenance".to_owned(),
                },
                now,
            )
            .unwrap();
        let assessment = crate::alerting::Assessment {
            snapshot: Arc::new(Snapshot::builder().build()),
            backlog: Default::default(),
            cluster: Default::default(),
            alerts,
            evaluated_at: SystemTime::UNIX_EPOCH,
        };
        let mut st = st;
        let (_tx, rx) = watch::channel(Some(Arc::new(assessment)));
        st.assessments = rx;
        let get = |path: &'static str| {
            let app = app(st.clone());
            async move {
                let response = app
                    .oneshot(
                        axum::http::Request::get(path)
                            .body(axum::body::Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(bytes.to_vec()).unwrap()
            }
        };
        let body: serde_json::Value = serde_json::from_str(&get("/api/v1/alerts").await).unwrap();
        let by_name = |name: &str| {
            body["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            by_name("RabbitmqQueueStalled")["status"],
            serde_json::json!({"state": "active", "silencedBy": [], "inhibitedBy": []})
        );
        assert_eq!(
            by_name("RabbitmqQueueGrowing")["status"],
            serde_json::json!({"state": "suppressed", "silencedBy": [], "inhibitedBy": ["RabbitmqQueueStalled-orders"]})
        );
        assert_eq!(
            by_name("RabbitmqQueueMessagesReady")["status"],
            serde_json::json!({"state": "suppressed", "silencedBy": [id.clone()], "inhibitedBy": []})
        );
        assert_eq!(
            by_name("RabbitmqQueueGrowing")["state"],
            "firing",
            "still listed as firing"
        );
        // Alertmanager's booleans: `false` leaves out the alerts not muted, the silenced
        // ones, the inhibited ones.
        let listed = |body: String| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned())
                .collect()
        };
        for (query, expected) in [
            (
                "?active=false",
                &["RabbitmqQueueGrowing", "RabbitmqQueueMessagesReady"][..],
            ),
            (
                "?silenced=false",
                &["RabbitmqQueueStalled", "RabbitmqQueueGrowing"],
            ),
            (
                "?inhibited=false",
                &["RabbitmqQueueStalled", "RabbitmqQueueMessagesReady"],
            ),
            ("?silenced=false&inhibited=false", &["RabbitmqQueueStalled"]),
            ("?active=false&silenced=false", &["RabbitmqQueueGrowing"]),
            (
                "?active=true&silenced=1&inhibited=true",
                &[
                    "RabbitmqQueueStalled",
                    "RabbitmqQueueGrowing",
                    "RabbitmqQueueMessagesReady",
                ],
            ),
        ] {
            let path: &'static str = format!("/api/v1/alerts{query}").leak();
            assert_eq!(listed(get(path).await), expected, "{query}");
        }
        let path = "/api/v1/alerts?silenced=maybe";
        let body = get(path).await;
        assert!(
            body.contains("invalid silenced") && body.contains("maybe"),
            "{body}"
        );

        let page = get("/").await;
        let row = |name: &str| {
            page.split("<tr")
                .find(|r| r.contains(&format!("<td>{name} ")))
                .unwrap_or_else(|| panic!("no row for {name}: {page}"))
                .to_owned()
        };
        let stalled = row("RabbitmqQueueStalled");
        assert!(
            !stalled.contains("suppressed") && stalled.contains("tag bad"),
            "{stalled}"
        );
        let growing = row("RabbitmqQueueGrowing");
        assert!(
            growing.starts_with(r#" class="suppressed">"#)
                && growing.contains("tag off")
                && growing.contains("inhibited by RabbitmqQueueStalled"),
            "{growing}"
        );
        let ready = row("RabbitmqQueueMessagesReady");
        assert!(
            ready.starts_with(r#" class="suppressed">"#)
                && ready.contains(&format!("silenced by {id}")),
            "{ready}"
        );
    }

    #[tokio::test]
    async fn a_long_alert_list_is_streamed_in_chunks() {
        let (_, body) = list_alerts("?alertname=C", 5000).await;
        assert_eq!(names(&body).len(), 5000);
    }

    /// `GET /api/v1/audit`: 404 when disabled; the report's findings with their fix once a
    /// run ended; the exposition carries the audit families.
    #[tokio::test]
    async fn audit_api_lists_findings() {
        use crate::audit::{Check, Finding, Outcome, Report, Severity};
        use tower::ServiceExt as _;
        let request = || {
            axum::http::Request::get("/api/v1/audit")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let r = app(state()).oneshot(request()).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let report = Report {
            outcome: Outcome {
                findings: vec![Finding {
                    check: Check::AutoAck,
                    vhost: "/".into(),
                    object: "orders".into(),
                    object_type: "queue",
                    severity: Severity::Warning,
                    summary: "1 consumer(s) …".into(),
                    fix: "consume with manual acknowledgement".into(),
                }],
                skipped: vec![],
            },
            last_run: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(20),
            reads: vec![],
            failures: Default::default(),
            runs: 1,
        };
        let (tx, rx) = watch::channel(None);
        let mut s = state();
        s.audit = Some(rx);
        let body = |r: Response| async {
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let before = body(app(s.clone()).oneshot(request()).await.unwrap()).await;
        assert_eq!(before["data"]["last_run"], serde_json::Value::Null);
        tx.send_replace(Some(Arc::new(report)));
        let after = body(app(s).oneshot(request()).await.unwrap()).await;
        assert_eq!(after["status"], "success");
        let f = &after["data"]["findings"][0];
        assert_eq!(f["check"], "auto_ack_consumer");
        assert_eq!(f["severity"], "warning");
        assert_eq!(f["object"], "orders");
        assert_eq!(f["fix"], "consume with manual acknowledgement");
        assert_eq!(after["data"]["last_run"], "2023-11-14T22:13:20.000Z");
        // The exposition: counts per check (0 included) and one series per finding.
        let info = crate::metrics::SidecarInfo {
            poll_interval: Duration::from_secs(15),
            rule_names: vec![],
            config_reload: None,
            notify_stats: None,
            audit: Some(crate::metrics::audit::AuditSource {
                reports: tx.subscribe(),
                max_findings: 0,
            }),
        };
        let e = crate::metrics::encode(None, None, None, &[], &info);
        let text = String::from_utf8(e.variants.get(Format::OpenMetrics, false).to_vec()).unwrap();
        assert!(
            text.contains(
                "rabbitmq_audit_findings{check=\"auto_ack_consumer\",severity=\"warning\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rabbitmq_audit_findings{check=\"requeue_loop\",severity=\"warning\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains("rabbitmq_audit_finding{check=\"auto_ack_consumer\",vhost=\"/\",object=\"orders\",severity=\"warning\"} 1\n"), "{text}");
        assert!(text.contains("rabbitmq_watch_endpoint_failures_total{endpoint=\"/api/consumers\",reason=\"timeout\"} 0\n"), "{text}");
    }

    async fn get(headers: &[(&str, &str)]) -> Response {
        use tower::ServiceExt as _;
        let mut request = axum::http::Request::get("/metrics");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        app(state())
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn metrics_negotiates_format_and_gzip() {
        let prometheus = get(&[
            (
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ),
            ("accept-encoding", "gzip"),
        ])
        .await;
        assert_eq!(prometheus.status(), StatusCode::OK);
        let h = prometheus.headers();
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::VARY], "Accept, Accept-Encoding");

        let plain = get(&[]).await;
        let h = plain.headers();
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        let body = axum::body::to_bytes(plain.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("# TYPE rabbitmq_watch_polls_total counter\n"));
        assert!(!text.contains("# EOF"));
    }

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        use tower::ServiceExt as _;
        let app: Router = Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(catch_panic());
        let response = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn status_page_escapes_error_text() {
        let mut s = snapshot_with_last_success(None);
        s.queues.result = Err(crate::rabbitmq::Error::Decode {
            endpoint: Endpoint::Queues,
            detail: "<script>alert(1)</script>".into(),
        });
        let settings = status::Settings {
            target: "http://mq/".into(),
            poll_interval: Duration::from_secs(15),
            admin_api: false,
        };
        let page = status::render(&status::Inputs {
            settings: &settings,
            snapshot: Some(&s),
            assessment: None,
            silences: &[],
            inhibit_rules: &[],
            health: Ok(()),
            query: &status::Query::default(),
            now: SystemTime::now(),
            audit: status::audit::AuditState::Off,
        });
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("DOWN"));
    }

    #[tokio::test]
    async fn status_page_is_served_and_forms_need_the_admin_api() {
        use tower::ServiceExt as _;
        let page = app(state())
            .oneshot(
                axum::http::Request::get("/?q=%3Cb%3E&page=x")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let body = axum::body::to_bytes(page.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("value=\"&lt;b&gt;\""), "{text}");
        assert!(text.contains("http-equiv=\"refresh\""));
        let form = app(state())
            .oneshot(
                axum::http::Request::post("/-/silences")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(axum::body::Body::from("matchers=alertname%3D%22X%22"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn writes_a_browser_marks_as_cross_site_are_refused() {
        use tower::ServiceExt as _;
        let mut st = state();
        let mut info = (**st.info.borrow()).clone();
        info.admin_api = true;
        st.info = watch::channel(Arc::new(info)).1;
        let post = |site: Option<&str>| {
            let mut r = axum::http::Request::post("/-/silences")
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(site) = site {
                r = r.header("sec-fetch-site", site);
            }
            r.body(axum::body::Body::from(
                "matchers=alertname%3D%22X%22&duration=1h&created_by=ops&comment=c",
            ))
            .unwrap()
        };
        for site in ["cross-site", "same-site"] {
            let r = app(st.clone()).oneshot(post(Some(site))).await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{site}");
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            assert!(String::from_utf8_lossy(&body).contains("Sec-Fetch-Site"));
        }
        assert!(
            st.silences.list(SystemTime::now()).is_empty(),
            "nothing created"
        );
        for site in [Some("same-origin"), Some("none"), None] {
            let r = app(st.clone()).oneshot(post(site)).await.unwrap();
            assert_ne!(r.status(), StatusCode::FORBIDDEN, "{site:?}");
        }
        assert_eq!(st.silences.list(SystemTime::now()).len(), 3);
    }

    #[tokio::test]
    async fn silence_forms_create_and_expire_then_redirect() {
        use tower::ServiceExt as _;
        let mut st = state();
        let mut info = (**st.info.borrow()).clone();
        info.admin_api = true;
        st.info = watch::channel(Arc::new(info)).1;
        let post = |uri: &str, body: &str| {
            axum::http::Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(body.to_owned()))
                .unwrap()
        };
        let created = app(st.clone())
            .oneshot(post(
                "/-/silences",
                "matchers=alertname%3D%22X%22%0D%0Aqueue%3D%22q%22&duration=1h&created_by=me&comment=c",
            ))
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::SEE_OTHER);
        assert_eq!(created.headers()[header::LOCATION], "../");
        let list = st.silences.list(SystemTime::now());
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].matchers, ["alertname=\"X\"", "queue=\"q\""]);
        let refused = app(st.clone())
            .oneshot(post("/-/silences", "matchers=nonsense&duration=1h"))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(refused.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("Could not create the silence"));
        let id = list[0].id.clone();
        let expired = app(st.clone())
            .oneshot(post("/-/silences/expire", &format!("id={id}")))
            .await
            .unwrap();
        assert_eq!(expired.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            st.silences.list(SystemTime::now())[0].state(SystemTime::now()),
            "expired"
        );
    }

    /// A writer collecting log output.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

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
    async fn an_expected_503_from_ready_is_not_logged_as_an_error() {
        use tower::ServiceExt as _;
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        async fn unavailable() -> (StatusCode, &'static str) {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
        let app: Router = Router::new()
            .route("/-/ready", axum::routing::get(unavailable))
            .route("/other", axum::routing::get(unavailable))
            .layer(trace_layer());
        let get_path = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let response = app.clone().oneshot(get_path("/-/ready")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("ERROR"), "{text}");
        // Any other 503 is still a failure.
        app.oneshot(get_path("/other")).await.unwrap();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("ERROR"), "{text}");
    }

    /// POSTs `body` to `/api/v1/silences`; the status and the decoded answer.
    async fn post_silence(app: Router, body: String) -> (StatusCode, serde_json::Value) {
        use tower::ServiceExt as _;
        let request = axum::http::Request::post("/api/v1/silences")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    #[tokio::test]
    async fn absurd_and_unsafe_silences_are_refused_with_400_and_the_reason() {
        let mut state = state();
        let old = state.info.borrow().clone();
        state.info = watch::channel(Arc::new(ServerInfo {
            target: old.target.clone(),
            poll_interval: old.poll_interval,
            admin_api: true,
            ready_max_age: old.ready_max_age,
            inhibit_rules: Vec::new(),
        }))
        .1;
        let app = app(state.clone());
        for (body, expect) in [
            // Issue #14 (1): the end cannot be written, the next save used to panic.
            (
                r#"{"matchers":["alertname=\"x\""],"duration":"10000y"}"#,
                "duration: ",
            ),
            (
                r#"{"matchers":["alertname=\"x\""],"endsAt":"9999-12-31T23:59:59Z"}"#,
                "endsAt: ",
            ),
            // Issue #14 (2): would mute every alert.
            (
                r#"{"matchers":["nosuch=\"\""],"duration":"1h"}"#,
                "must not match the empty string",
            ),
            (
                r#"{"matchers":["alertname=\"x\""],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2029-01-01T00:00:00Z"}"#,
                "endsAt: must be after startsAt",
            ),
            (r#"{"matchers":["x=~\"(\""],"duration":"1h"}"#, "matchers: "),
        ] {
            let (status, json) = post_silence(app.clone(), body.to_owned()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
            let error = json["error"].as_str().unwrap_or_default();
            assert!(error.contains(expect), "{body}: {error}");
        }
        let comment = "c".repeat(100 * 1024);
        let (status, _) = post_silence(
            app.clone(),
            format!(r#"{{"matchers":["a=\"x\""],"duration":"1h","comment":"{comment}"}}"#),
        )
        .await;
        assert!(status.is_client_error(), "{status}");
        assert!(state.silences.list(SystemTime::now()).is_empty());
        let (status, json) = post_silence(
            app,
            r#"{"matchers":["alertname=\"x\""],"duration":"366d"}"#.to_owned(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }

    #[tokio::test]
    async fn a_failed_state_file_save_makes_ready_fail_with_its_reason_but_not_healthy() {
        use crate::notify::NotifyStats;
        use tower::ServiceExt as _;
        let get = |s: AppState, path: &'static str| async move {
            let r = app(s)
                .oneshot(
                    axum::http::Request::get(path)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = r.status();
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        };
        let stats = Arc::new(NotifyStats::default());
        let s = state();
        let source = stats.clone();
        s.health
            .add_readiness_check(move || source.state_file_readiness());
        // No state file, then one not saved yet: ready.
        assert_eq!(get(s.clone(), "/-/ready").await.0, StatusCode::OK);
        stats.register_state_file();
        assert_eq!(get(s.clone(), "/-/ready").await.0, StatusCode::OK);
        stats.state_file_write_failed(
            "cannot save the state file /nowhere/state.json: Not a directory".into(),
        );
        let (status, text) = get(s.clone(), "/-/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            text.contains("cannot save the state file /nowhere/state.json: Not a directory"),
            "{text}"
        );
        // The process is alive and alerting goes on.
        assert_eq!(
            get(s.clone(), "/-/healthy").await,
            (StatusCode::OK, "OK\n".to_owned())
        );
        stats.state_file_saved();
        assert_eq!(get(s, "/-/ready").await.0, StatusCode::OK);
        assert_eq!(stats.state_file().unwrap().write_failures, 1);
    }
}
