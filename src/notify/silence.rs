//! Silences: the store shared by the HTTP API (create, list, expire) and the dispatcher
//! (mute, save), matching, and expiry.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::matcher::{Matcher, all_match};
use super::rfc3339;

/// A silence: alerts matching every matcher are not notified between `starts_at` and
/// `ends_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    /// Identifier (32 hex digits).
    pub id: String,
    /// Matchers, as written (`name="value"`, …).
    pub matchers: Vec<String>,
    /// Start of the silence.
    #[serde(with = "crate::alerting::rfc3339")]
    pub starts_at: SystemTime,
    /// End of the silence (expiring sets it to now).
    #[serde(with = "crate::alerting::rfc3339")]
    pub ends_at: SystemTime,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// `active`, `pending` (not started) or `expired` at `now`.
    pub fn state(&self, now: SystemTime) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    fn parsed(&self) -> Vec<Matcher> {
        self.matchers
            .iter()
            .filter_map(|m| Matcher::parse(m).ok())
            .collect()
    }
}

/// Silences, shared by the HTTP API (create, list, expire) and the dispatcher (mute, save).
#[derive(Debug, Default)]
pub struct Silences {
    inner: Mutex<Vec<Silence>>,
}

impl Silences {
    /// Silences restored from the state file.
    pub fn from_saved(saved: Vec<Silence>) -> Self {
        Self {
            inner: Mutex::new(saved),
        }
    }

    /// Adds a silence; its matchers must parse.
    ///
    /// # Errors
    /// The first matcher that does not parse, or an end not after the start.
    pub fn add(&self, mut silence: Silence) -> Result<String, String> {
        if silence.matchers.is_empty() {
            return Err("a silence needs at least one matcher".to_owned());
        }
        for m in &silence.matchers {
            Matcher::parse(m)?;
        }
        if silence.ends_at <= silence.starts_at {
            return Err("endsAt must be after startsAt".to_owned());
        }
        if silence.id.is_empty() {
            silence.id = new_id();
        }
        let id = silence.id.clone();
        if let Ok(mut v) = self.inner.lock() {
            v.push(silence);
        }
        Ok(id)
    }

    /// Expires silence `id` at `now`; false when there is none.
    pub fn expire(&self, id: &str, now: SystemTime) -> bool {
        let Ok(mut v) = self.inner.lock() else {
            return false;
        };
        match v.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                if s.ends_at > now {
                    s.ends_at = now.max(s.starts_at);
                }
                true
            }
            None => false,
        }
    }

    /// Every silence, expired ones included (those expired for more than a day are dropped).
    pub fn list(&self, now: SystemTime) -> Vec<Silence> {
        let Ok(mut v) = self.inner.lock() else {
            return Vec::new();
        };
        v.retain(|s| {
            now.duration_since(s.ends_at).unwrap_or_default() < Duration::from_secs(86_400)
        });
        v.clone()
    }

    /// Whether an active silence mutes `labels` at `now`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: SystemTime) -> bool {
        self.inner.lock().is_ok_and(|v| {
            v.iter()
                .filter(|s| s.state(now) == "active")
                .any(|s| all_match(&s.parsed(), labels))
        })
    }
}

/// 32 hex digits from the system's randomness (via std's hasher seeds) and the clock.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Parses an RFC 3339 time (for the silences API).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| format!("`{text}`: {e}"))
}

/// Formats a time as the API shows it.
pub fn format_time(t: SystemTime) -> String {
    rfc3339(t)
}
