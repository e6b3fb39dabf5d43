//! The HTTP server's routes: `/` (status page), `/metrics` (the pre-encoded exposition),
//! `/-/healthy` (every supervised task runs) and `/-/ready` (healthy, and a poll succeeded
//! recently), the alert API and the silence API. Handlers only read the latest snapshot and
//! exposition; none reaches the broker.
//!
//! Write requests (any method but GET and HEAD: creating and expiring silences) are the admin
//! API: refused with 403 unless `web.enable_admin_api` is true, as Prometheus refuses them
//! without `--web.enable-admin-api`. TLS and authentication are the server's ([`crate::web`]).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
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

use crate::alerting::AssessmentReceiver;
use crate::metrics::Exposition;
use crate::metrics::format::{Format, accepts_gzip};
use crate::notify::dispatch::{Silence, Silences};
use crate::rabbitmq::Endpoint;
use crate::snapshot::{Snapshot, SnapshotReceiver};
use crate::supervise::Health;
use crate::util::elapsed;
use crate::util::html::escape;
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
    /// Latest encoded exposition.
    pub exposition: watch::Receiver<Arc<Exposition>>,
    /// Static facts for the status page and readiness.
    pub info: Arc<ServerInfo>,
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
}

/// Largest `POST /api/v1/silences` body: 64 KiB, room for a silence at every bound of
/// [`crate::notify::silence`] (32 matchers of 1 KiB, a 4 KiB comment) with JSON escaping.
const SILENCE_BODY_LIMIT: usize = 64 * 1024;

/// The router with every route, the admin API switch, request tracing and the request
/// timeout.
pub fn app(state: AppState) -> Router {
    let admin_api = state.info.admin_api;
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/api/v1/alerts", get(alerts))
        .route(
            "/api/v1/silences",
            get(list_silences)
                .post(create_silence)
                .layer(axum::extract::DefaultBodyLimit::max(SILENCE_BODY_LIMIT)),
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
pub const ADMIN_API_DISABLED: &str = "the admin API (creating and expiring silences) is disabled: set web.enable_admin_api: true in the configuration (or RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API=true) to enable it";

/// Refuses write requests (any method but GET and HEAD) with 403 unless `enabled`.
async fn admin_only(
    enabled: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method();
    if enabled || method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"status": "error", "error": ADMIN_API_DISABLED})),
    )
        .into_response()
}

/// Serves the latest exposition in the format `Accept` prefers, gzip-compressed when
/// `Accept-Encoding` allows; a variant not built yet for this snapshot is built off the async
/// workers, once.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(text(header::ACCEPT));
    let gzip = accepts_gzip(text(header::ACCEPT_ENCODING));
    let exposition = state.exposition.borrow().clone();
    let body = if exposition.variants.is_built(format, gzip) {
        exposition.variants.get(format, gzip)
    } else {
        match tokio::task::spawn_blocking(move || exposition.variants.get(format, gzip)).await {
            Ok(body) => body,
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

/// `GET /api/v1/alerts`: `{"status":"success","data":{"alerts":[…]}}`, each alert with
/// `fingerprint`, `labels`, `annotations`, `state` (pending, firing, resolved), `value`,
/// `active_since`, `fired_at`, `resolved_at`, `last_true` (RFC 3339) and `unknown` (the last
/// evaluation could not tell; the state is held).
async fn alerts(State(state): State<AppState>) -> Response {
    let assessment = state.assessments.borrow().clone();
    let alerts = assessment.as_ref().map_or(&[][..], |a| a.alerts.as_slice());
    axum::Json(serde_json::json!({
        "status": "success",
        "data": { "alerts": alerts },
    }))
    .into_response()
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
    let verdict = state.health.check().and_then(|()| {
        readiness(
            snapshot.as_deref(),
            state.info.ready_max_age,
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

async fn index(State(state): State<AppState>) -> Html<String> {
    let snapshot = state.snapshots.borrow().clone();
    let assessment = state.assessments.borrow().clone();
    let mut page = status_page(&state.info, snapshot.as_deref());
    if let Some(a) = assessment {
        let section = alerts_section(&a.alerts);
        page = page.replace("</body></html>\n", &format!("{section}</body></html>\n"));
    }
    Html(page)
}

/// Firing and pending alerts as an HTML table (escaped).
fn alerts_section(alerts: &[crate::alerting::Alert]) -> String {
    use crate::alerting::State as AlertState;
    let active: Vec<_> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Resolved)
        .collect();
    if active.is_empty() {
        return "<p>Alerts: none firing or pending. (<a href=\"api/v1/alerts\">/api/v1/alerts</a>)</p>\n".to_owned();
    }
    let mut html = String::from(
        "<h2>Alerts</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th>state</th><th>alert</th><th>labels</th><th>summary</th></tr>\n",
    );
    for a in active {
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            html,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if a.state == AlertState::Firing {
                "FIRING"
            } else {
                "pending"
            },
            if a.unknown {
                " (unknown: data missing)"
            } else {
                ""
            },
            escape(a.labels.get("alertname").map_or("", String::as_str)),
            escape(&labels.join(", ")),
            escape(a.annotations.get("summary").map_or("", String::as_str)),
        );
    }
    html.push_str("</table>\n");
    html
}

fn ago(t: SystemTime) -> String {
    let secs = elapsed(t, SystemTime::now()).as_secs();
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(secs))
    )
}

fn status_page(info: &ServerInfo, snapshot: Option<&Snapshot>) -> String {
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>rabbitmq-watch</title></head><body>\n\
         <h1>rabbitmq-watch {}</h1>\n\
         <p><a href=\"metrics\">/metrics</a> · <a href=\"-/healthy\">/-/healthy</a> · <a href=\"-/ready\">/-/ready</a></p>\n\
         <p>Management API: <code>{}</code>, polled every {}.</p>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&info.target),
        humantime::format_duration(info.poll_interval),
    );
    let Some(s) = snapshot else {
        html.push_str("<p>Status: <b>no poll has finished yet</b>.</p>\n</body></html>\n");
        return html;
    };
    let _ = writeln!(
        html,
        "<p>Status: <b>{}</b>. Poll #{} ended {}, took {} ms. Last fully successful poll: {}.</p>",
        if s.is_up() { "up" } else { "DOWN" },
        s.seq,
        ago(s.finished_at()),
        s.duration.as_millis(),
        s.totals
            .last_success
            .map_or_else(|| "never".to_owned(), ago),
    );
    html.push_str("<table border=\"1\" cellpadding=\"4\"><tr><th>endpoint</th><th>outcome</th><th>duration</th></tr>\n");
    for endpoint in Endpoint::ALL {
        let outcome = match s.error(endpoint) {
            None => "ok".to_owned(),
            Some(e) => escape(&e.to_string()),
        };
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{} ms</td></tr>",
            endpoint.path(),
            outcome,
            s.duration_of(endpoint).as_millis()
        );
    }
    html.push_str("</table>\n");
    if let Some(queues) = s.queues.ok() {
        let _ = writeln!(html, "<p>{} queues.</p>", queues.len());
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PollTotals;

    fn snapshot_with_last_success(last: Option<SystemTime>) -> Snapshot {
        Snapshot::builder()
            .seq(3)
            .totals(PollTotals {
                polls: 3,
                failures: Default::default(),
                last_success: last,
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
            notify_stats: None,
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
            assessments,
            exposition,
            info: Arc::new(ServerInfo {
                target: "http://mq/".into(),
                poll_interval: Duration::from_secs(15),
                admin_api: false,
                ready_max_age: Duration::from_secs(40),
            }),
        }
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
        let info = ServerInfo {
            target: "http://mq/".into(),
            poll_interval: Duration::from_secs(15),
            admin_api: false,
            ready_max_age: Duration::from_secs(40),
        };
        let page = status_page(&info, Some(&s));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("DOWN"));
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
        state.info = Arc::new(ServerInfo {
            target: state.info.target.clone(),
            poll_interval: state.info.poll_interval,
            admin_api: true,
            ready_max_age: state.info.ready_max_age,
        });
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
}
