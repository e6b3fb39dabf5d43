//! The status page at `/`: one server-rendered HTML page a person can read at a glance, built
//! from the latest [`Snapshot`] and [`Assessment`] (the same pair the metrics and the alert API
//! read), the silences and the sidecar's own health. No JavaScript: it reloads itself (meta
//! refresh), the queue filter is a GET form (`?q=`), and silences are created and expired with
//! plain HTML forms (only while `web.enable_admin_api` is on).
//!
//! [`view`] turns the inputs into a view model of display-ready values (sorting, filtering,
//! paging: at most [`PAGE_SIZE`] queue rows per page, whatever the queue count); the askama
//! templates in `templates/` lay it out, escaping every value with the crate's one escaper
//! ([`crate::util::html::escape`], see `askama.toml`). [`sparkline`] draws the backlog
//! detector's depth window as a small inline SVG.
//!
//! Pure: [`render`] takes every input and `now`; the HTTP handlers in [`crate::http`] only
//! gather them.

pub mod sparkline;
pub mod view;

use std::time::{Duration, SystemTime};

use askama::Template;

use crate::alerting::Assessment;
use crate::notify::dispatch::Silence;
use crate::snapshot::Snapshot;

pub use view::Page;

/// Queue rows per page.
pub const PAGE_SIZE: usize = 50;

/// Longest queue filter kept (longer ones are cut): bounds the work per request.
pub const MAX_FILTER_CHARS: usize = 200;

/// What the status page shows that does not change while the sidecar runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The management API base URL (never holds credentials).
    pub target: String,
    /// `poll.interval`: also the page's refresh period (at least 5 s).
    pub poll_interval: Duration,
    /// `web.enable_admin_api`: whether the silence forms are shown.
    pub admin_api: bool,
}

/// The page's query string: `?q=` (queue name filter), `?page=` (1-based), `?refresh=0`
/// (stop reloading). Unknown or malformed values fall back to the defaults.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Query {
    /// Case-insensitive substring of `vhost/name` that listed queues must contain.
    #[serde(default)]
    pub q: Option<String>,
    /// The page of queue rows, from 1.
    #[serde(default)]
    pub page: Option<String>,
    /// `0` or `off` stops the automatic reload.
    #[serde(default)]
    pub refresh: Option<String>,
}

impl Query {
    /// The filter, trimmed and cut to [`MAX_FILTER_CHARS`]; empty when none.
    pub fn filter(&self) -> String {
        self.q
            .as_deref()
            .unwrap_or("")
            .trim()
            .chars()
            .take(MAX_FILTER_CHARS)
            .collect()
    }

    /// The page number (1 when missing or not a number).
    pub fn page(&self) -> usize {
        self.page
            .as_deref()
            .and_then(|p| p.trim().parse::<usize>().ok())
            .filter(|&p| p > 0)
            .unwrap_or(1)
    }

    /// Whether the page reloads itself.
    pub fn refresh(&self) -> bool {
        !matches!(self.refresh.as_deref(), Some("0" | "off" | "false"))
    }
}

/// Everything the page is built from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Static settings.
    pub settings: &'a Settings,
    /// The latest snapshot (`None` before the first poll).
    pub snapshot: Option<&'a Snapshot>,
    /// The latest assessment (`None` before the first evaluation).
    pub assessment: Option<&'a Assessment>,
    /// Every silence (expired ones for a day).
    pub silences: &'a [Silence],
    /// `notify.inhibit_rules`: alerts they mute are marked inhibited.
    pub inhibit_rules: &'a [crate::config::InhibitRule],
    /// The supervised tasks' health ([`crate::supervise::Health::check`]).
    pub health: Result<(), &'a str>,
    /// The query string.
    pub query: &'a Query,
    /// The current time.
    pub now: SystemTime,
}

/// The status page's HTML.
pub fn render(inputs: &Inputs<'_>) -> String {
    let page = view::build(inputs);
    page.render().unwrap_or_else(|e| {
        format!(
            "<!doctype html><title>rabbitmq-watch</title><p>status page error: {}</p>",
            crate::util::html::escape(&e.to_string())
        )
    })
}

/// The page shown when a silence form was refused: the reason and a link back.
#[derive(Debug, Template)]
#[template(path = "form_error.html")]
pub struct FormError {
    /// What was attempted, e.g. `create the silence`.
    pub action: String,
    /// Why it was refused.
    pub reason: String,
}

impl FormError {
    /// The page's HTML.
    pub fn html(&self) -> String {
        self.render()
            .unwrap_or_else(|_| crate::util::html::escape(&self.reason))
    }
}
