//! Silences: the store shared by the HTTP API (create, list, expire) and the dispatcher
//! (mute, save), validation (as Alertmanager's API validates), matching, and expiry.
//!
//! Everything a silence holds comes from an unauthenticated-by-default HTTP API or from the
//! state file, so it is bounded: see the `MAX_*` constants. Silences read from the state file
//! are validated again (a file written by hand or by an older version may hold anything).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::representable;
use crate::matcher::{Matcher, all_match};

/// The longest silence: 366 days. A silence is a temporary mute for maintenance or an
/// incident; muting something for longer belongs in the reviewed configuration (a route or an
/// inhibition rule). The bound also keeps every end far inside what RFC 3339 can write (year
/// 9999), so `"duration": "10000y"` is a clear 400 instead of a state file that cannot be saved.
pub const MAX_SILENCE_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// How far ahead a silence may start: 366 days (same reasoning as [`MAX_SILENCE_DURATION`]).
pub const MAX_START_AHEAD: Duration = Duration::from_secs(366 * 86_400);

/// Most silences that are active or pending at once: 1,000. Every silence is checked against
/// every alert at each evaluation, so the count bounds that work; expired silences do not count
/// (they are kept a day, at most [`MAX_SILENCES`] of them).
pub const MAX_SILENCES: usize = 1_000;

/// Most matchers in one silence: 32.
pub const MAX_MATCHERS: usize = 32;

/// Longest matcher text: 1,024 bytes (a regex is compiled from it).
pub const MAX_MATCHER_BYTES: usize = 1_024;

/// Longest comment: 4,096 bytes.
pub const MAX_COMMENT_BYTES: usize = 4_096;

/// Longest `createdBy`: 256 bytes.
pub const MAX_CREATED_BY_BYTES: usize = 256;

/// Longest silence id (ids this sidecar makes are 32 hex digits; saved ones are re-checked).
pub const MAX_ID_BYTES: usize = 64;

/// How long expired silences stay listed: one day.
const EXPIRED_RETENTION: Duration = Duration::from_secs(86_400);

/// Why a silence was refused: the field and what is wrong, for a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// A field is missing, malformed or out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// The API field (`matchers`, `startsAt`, `endsAt`, `duration`, `comment`, …).
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// [`MAX_SILENCES`] silences are already active or pending.
    #[error(
        "{MAX_SILENCES} silences are already active or pending (the most allowed); expire some first"
    )]
    TooMany,
}

fn invalid(field: &'static str, message: impl Into<String>) -> SilenceError {
    SilenceError::Invalid {
        field,
        message: message.into(),
    }
}

/// `starts_at + duration` for a silence given a `duration` (the API's `duration` field).
///
/// # Errors
/// The duration is zero or longer than [`MAX_SILENCE_DURATION`], or the end cannot be written.
pub fn end_after(starts_at: SystemTime, duration: Duration) -> Result<SystemTime, SilenceError> {
    if duration.is_zero() {
        return Err(invalid("duration", "must be more than 0"));
    }
    if duration > MAX_SILENCE_DURATION {
        return Err(invalid(
            "duration",
            format!(
                "{} is longer than the longest silence, {} (a longer mute belongs in the route or inhibition configuration)",
                humantime::format_duration(duration),
                humantime::format_duration(MAX_SILENCE_DURATION)
            ),
        ));
    }
    starts_at
        .checked_add(duration)
        .filter(|t| representable(*t))
        .ok_or_else(|| invalid("duration", "the end cannot be written as RFC 3339"))
}

/// A silence: alerts matching every matcher are not notified between `starts_at` and
/// `ends_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    /// Identifier (32 hex digits).
    pub id: String,
    /// Matchers, as written (`name="value"`, …).
    pub matchers: Vec<String>,
    /// Start of the silence.
    #[serde(with = "super::rfc3339_checked")]
    pub starts_at: SystemTime,
    /// End of the silence (expiring sets it to now).
    #[serde(with = "super::rfc3339_checked")]
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

    /// Checks everything but the times against the bounds; returns the parsed matchers.
    ///
    /// # Errors
    /// The first problem found.
    fn validate_content(&self) -> Result<Vec<Matcher>, SilenceError> {
        if self.id.len() > MAX_ID_BYTES {
            return Err(invalid("id", format!("longer than {MAX_ID_BYTES} bytes")));
        }
        if self.matchers.is_empty() {
            return Err(invalid("matchers", "a silence needs at least one matcher"));
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(invalid(
                "matchers",
                format!(
                    "{} matchers, at most {MAX_MATCHERS} are allowed",
                    self.matchers.len()
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(self.matchers.len());
        for text in &self.matchers {
            if text.len() > MAX_MATCHER_BYTES {
                return Err(invalid(
                    "matchers",
                    format!("a matcher is longer than {MAX_MATCHER_BYTES} bytes"),
                ));
            }
            parsed.push(Matcher::parse(text).map_err(|e| invalid("matchers", e))?);
        }
        // As Alertmanager: a silence whose matchers all match the empty label set would
        // mute every alert without the labels it names (e.g. `nosuch=""`).
        if all_match(&parsed, &BTreeMap::new()) {
            return Err(invalid(
                "matchers",
                "at least one matcher must not match the empty string (these would mute every alert that lacks the labels)",
            ));
        }
        if self.comment.len() > MAX_COMMENT_BYTES {
            return Err(invalid(
                "comment",
                format!("longer than {MAX_COMMENT_BYTES} bytes"),
            ));
        }
        if self.created_by.len() > MAX_CREATED_BY_BYTES {
            return Err(invalid(
                "createdBy",
                format!("longer than {MAX_CREATED_BY_BYTES} bytes"),
            ));
        }
        Ok(parsed)
    }

    /// Checks the times: representable, end after start, at most [`MAX_SILENCE_DURATION`]
    /// long, starting at most [`MAX_START_AHEAD`] after `now`.
    ///
    /// # Errors
    /// The first problem found.
    fn validate_times(&self, now: SystemTime, loading: bool) -> Result<(), SilenceError> {
        if !representable(self.starts_at) {
            return Err(invalid("startsAt", "not a time RFC 3339 can write"));
        }
        if !representable(self.ends_at) {
            return Err(invalid("endsAt", "not a time RFC 3339 can write"));
        }
        // A silence expired before it started ends where it starts: valid in the state file.
        if self.ends_at < self.starts_at || (self.ends_at == self.starts_at && !loading) {
            return Err(invalid("endsAt", "must be after startsAt"));
        }
        if self
            .ends_at
            .duration_since(self.starts_at)
            .is_ok_and(|d| d > MAX_SILENCE_DURATION)
        {
            return Err(invalid(
                "endsAt",
                format!(
                    "the silence is longer than the longest allowed, {}",
                    humantime::format_duration(MAX_SILENCE_DURATION)
                ),
            ));
        }
        if self
            .starts_at
            .duration_since(now)
            .is_ok_and(|ahead| ahead > MAX_START_AHEAD)
        {
            return Err(invalid(
                "startsAt",
                format!(
                    "more than {} ahead",
                    humantime::format_duration(MAX_START_AHEAD)
                ),
            ));
        }
        Ok(())
    }
}

/// A stored silence and its parsed matchers (parsed once, not at every evaluation).
#[derive(Debug)]
struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
}

/// Silences, shared by the HTTP API (create, list, expire) and the dispatcher (mute, save).
#[derive(Debug, Default)]
pub struct Silences {
    inner: Mutex<Vec<Entry>>,
}

impl Silences {
    /// Silences restored from the state file, validated again: invalid ones (and any beyond
    /// [`MAX_SILENCES`] active or pending) are dropped with a warning.
    pub fn from_saved(saved: Vec<Silence>) -> Self {
        Self::from_saved_at(saved, SystemTime::now())
    }

    /// [`Silences::from_saved`] at `now`.
    pub fn from_saved_at(saved: Vec<Silence>, now: SystemTime) -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        for silence in saved {
            let checked = silence.validate_content().and_then(|matchers| {
                silence.validate_times(now, true)?;
                if silence.id.is_empty() || entries.iter().any(|e| e.silence.id == silence.id) {
                    return Err(invalid("id", "missing or duplicate"));
                }
                Ok(matchers)
            });
            let checked = checked.and_then(|matchers| {
                let live = entries
                    .iter()
                    .filter(|e| e.silence.state(now) != "expired")
                    .count();
                if silence.state(now) != "expired" && live >= MAX_SILENCES {
                    return Err(SilenceError::TooMany);
                }
                Ok(matchers)
            });
            match checked {
                Ok(matchers) => entries.push(Entry { silence, matchers }),
                Err(e) => {
                    let id: String = silence.id.chars().take(MAX_ID_BYTES).collect();
                    tracing::warn!(silence = %id, error = %e, "dropping a saved silence that is not valid");
                }
            }
        }
        Self {
            inner: Mutex::new(entries),
        }
    }

    /// Adds a silence at `now`, validated as Alertmanager's API validates: matchers that parse,
    /// not all matching the empty string; an end after the start and after `now`; the bounds
    /// of the `MAX_*` constants. A start in the past becomes `now`. Returns the id.
    ///
    /// # Errors
    /// What is wrong with the silence, or [`SilenceError::TooMany`].
    pub fn add(&self, mut silence: Silence, now: SystemTime) -> Result<String, SilenceError> {
        let matchers = silence.validate_content()?;
        if silence.starts_at < now {
            silence.starts_at = now;
        }
        if silence.ends_at <= now {
            return Err(invalid("endsAt", "must be in the future"));
        }
        silence.validate_times(now, false)?;
        let Ok(mut v) = self.inner.lock() else {
            return Err(invalid("silences", "the silence store is unavailable"));
        };
        Self::prune(&mut v, now);
        let live = v
            .iter()
            .filter(|e| e.silence.state(now) != "expired")
            .count();
        if live >= MAX_SILENCES {
            return Err(SilenceError::TooMany);
        }
        if silence.id.is_empty() || v.iter().any(|e| e.silence.id == silence.id) {
            silence.id = new_id();
        }
        let id = silence.id.clone();
        v.push(Entry { silence, matchers });
        Ok(id)
    }

    /// Drops silences expired for more than a day, and the oldest expired ones beyond
    /// [`MAX_SILENCES`].
    fn prune(v: &mut Vec<Entry>, now: SystemTime) {
        v.retain(|e| now.duration_since(e.silence.ends_at).unwrap_or_default() < EXPIRED_RETENTION);
        let mut expired: Vec<SystemTime> = v
            .iter()
            .filter(|e| e.silence.state(now) == "expired")
            .map(|e| e.silence.ends_at)
            .collect();
        if expired.len() > MAX_SILENCES {
            expired.sort_unstable();
            let cutoff = expired[expired.len() - MAX_SILENCES];
            v.retain(|e| e.silence.state(now) != "expired" || e.silence.ends_at >= cutoff);
        }
    }

    /// Expires silence `id` at `now`; false when there is none.
    pub fn expire(&self, id: &str, now: SystemTime) -> bool {
        let Ok(mut v) = self.inner.lock() else {
            return false;
        };
        match v.iter_mut().find(|e| e.silence.id == id) {
            Some(e) => {
                let s = &mut e.silence;
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
        Self::prune(&mut v, now);
        v.iter().map(|e| e.silence.clone()).collect()
    }

    /// Whether an active silence mutes `labels` at `now`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: SystemTime) -> bool {
        self.inner.lock().is_ok_and(|v| {
            v.iter()
                .filter(|e| e.silence.state(now) == "active")
                .any(|e| all_match(&e.matchers, labels))
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn silence(matchers: &[&str], start: u64, end: u64) -> Silence {
        Silence {
            id: String::new(),
            matchers: matchers.iter().map(|m| (*m).to_owned()).collect(),
            starts_at: at(start),
            ends_at: at(end),
            created_by: "ops".into(),
            comment: "maintenance".into(),
        }
    }

    fn refused(s: Silence) -> String {
        Silences::default().add(s, at(0)).unwrap_err().to_string()
    }

    #[test]
    fn absurd_durations_and_ends_are_refused_with_the_field_and_the_bound() {
        let e = end_after(at(0), Duration::from_secs(10_000 * 365 * 86_400)).unwrap_err();
        assert!(e.to_string().starts_with("duration: "), "{e}");
        assert!(e.to_string().contains("longest silence"), "{e}");
        assert!(end_after(at(0), Duration::ZERO).is_err());
        assert_eq!(
            end_after(at(0), Duration::from_secs(3600)).unwrap(),
            at(3600)
        );
        assert_eq!(
            end_after(at(0), MAX_SILENCE_DURATION).unwrap(),
            at(0) + MAX_SILENCE_DURATION
        );
        let mut s = silence(&["alertname=\"x\""], 0, 3600);
        s.ends_at = UNIX_EPOCH + Duration::from_secs(253_402_300_799 + 86_400);
        assert!(refused(s).starts_with("endsAt: "));
        let mut s = silence(&["alertname=\"x\""], 0, 3600);
        s.ends_at = at(0) + MAX_SILENCE_DURATION + Duration::from_secs(1);
        assert!(refused(s).contains("longer than the longest allowed"));
        let far = 2 * MAX_START_AHEAD.as_secs();
        assert!(refused(silence(&["alertname=\"x\""], far, far + 60)).starts_with("startsAt: "));
    }

    #[test]
    fn silences_are_validated_like_alertmanagers_api() {
        assert!(refused(silence(&[], 0, 60)).contains("at least one matcher"));
        assert!(refused(silence(&["queue"], 0, 60)).contains("has no =, !=, =~ or !~"));
        for empty in [
            &["nosuch=\"\""][..],
            &["a=~\".*\"", "b!=\"x\""],
            &["a!~\"x+\""],
        ] {
            let e = refused(silence(empty, 0, 60));
            assert!(
                e.contains("must not match the empty string"),
                "{empty:?}: {e}"
            );
        }
        // One matcher that needs a label is enough.
        let ok = Silences::default();
        ok.add(silence(&["nosuch=\"\"", "queue=\"q\""], 0, 60), at(0))
            .unwrap();
        assert!(refused(silence(&["a=\"x\""], 60, 60)).contains("must be after startsAt"));
        assert!(refused(silence(&["a=\"x\""], 60, 30)).contains("must be after startsAt"));
        // An end already past is refused; a start in the past becomes now.
        let past = Silences::default();
        assert!(
            past.add(silence(&["a=\"x\""], 0, 10), at(20))
                .unwrap_err()
                .to_string()
                .contains("in the future")
        );
        past.add(silence(&["a=\"x\""], 0, 100), at(20)).unwrap();
        assert_eq!(past.list(at(20))[0].starts_at, at(20));
    }

    #[test]
    fn sizes_and_counts_are_capped() {
        let many: Vec<String> = (0..=MAX_MATCHERS).map(|i| format!("l{i}=\"v\"")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(refused(silence(&many, 0, 60)).contains("at most 32"));
        let long = format!("a=\"{}\"", "x".repeat(MAX_MATCHER_BYTES));
        assert!(refused(silence(&[&long], 0, 60)).contains("longer than 1024 bytes"));
        let mut s = silence(&["a=\"x\""], 0, 60);
        s.comment = "c".repeat(MAX_COMMENT_BYTES + 1);
        assert!(refused(s).starts_with("comment: "));
        let mut s = silence(&["a=\"x\""], 0, 60);
        s.created_by = "c".repeat(MAX_CREATED_BY_BYTES + 1);
        assert!(refused(s).starts_with("createdBy: "));
        let store = Silences::default();
        for _ in 0..MAX_SILENCES {
            store.add(silence(&["a=\"x\""], 0, 60), at(0)).unwrap();
        }
        assert_eq!(
            store.add(silence(&["a=\"x\""], 0, 60), at(0)),
            Err(SilenceError::TooMany)
        );
        // Expired ones do not count.
        let id = store.list(at(0))[0].id.clone();
        assert!(store.expire(&id, at(1)));
        store.add(silence(&["a=\"x\""], 1, 60), at(1)).unwrap();
    }

    #[test]
    fn saved_silences_are_validated_again_and_invalid_ones_dropped() {
        let mut valid = silence(&["queue=\"q\""], 0, 3600);
        valid.id = "a".into();
        let mut empty_matchers = silence(&["nosuch=\"\""], 0, 3600);
        empty_matchers.id = "b".into();
        let mut too_long = silence(&["queue=\"q\""], 0, 3600);
        too_long.id = "c".into();
        too_long.ends_at = at(0) + Duration::from_secs(10_000 * 365 * 86_400);
        let mut duplicate = valid.clone();
        duplicate.comment = "again".into();
        // Expired before it started (expire() on a pending silence): kept.
        let mut expired_pending = silence(&["queue=\"q\""], 100, 100);
        expired_pending.id = "d".into();
        let restored = Silences::from_saved_at(
            vec![valid, empty_matchers, too_long, duplicate, expired_pending],
            at(10),
        );
        let ids: Vec<String> = restored.list(at(10)).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["a", "d"]);
        let labels = BTreeMap::from([("queue".to_owned(), "q".to_owned())]);
        assert!(restored.mutes(&labels, at(10)));
        assert!(!restored.mutes(&BTreeMap::new(), at(10)));
    }
}
