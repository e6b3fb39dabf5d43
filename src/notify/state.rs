//! The state file (`notify.state_file`): alert instances, the groups' timers and
//! notification log, undelivered notifications and silences, saved atomically and read at
//! start-up so a restart neither loses nor repeats a notification.
//!
//! The file never blocks start-up: one that cannot be read, is corrupt or truncated, or was
//! written by a newer version (a downgrade) is moved aside (`<file>.corrupt-<time>`, or
//! `<file>.v<version>-<time>` for a newer version, so an upgrade can still use it) and the
//! sidecar starts with an empty state, with an error log and
//! `rabbitmq_watch_state_file_load_failures_total`. Refusing to start instead would stop all
//! alerting (a crash loop under a supervisor) to protect a few silences and timers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::NotifyStats;
use super::dispatch::{GroupState, Job};
use super::silence::Silence;
use crate::alerting::Alert;

/// The format version this build writes and reads (files without a version are version 1).
pub const VERSION: u32 = 1;

/// The state file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedState {
    /// Format version ([`VERSION`]).
    #[serde(default)]
    pub version: u32,
    /// Alert instances, restored into the engine.
    pub alerts: Vec<Alert>,
    /// Groups by key.
    pub groups: BTreeMap<String, GroupState>,
    /// Undelivered notifications.
    pub pending: Vec<Job>,
    /// Silences (validated again when restored: see [`super::silence::Silences::from_saved`]).
    pub silences: Vec<Silence>,
    /// Set by [`SavedState::load`] when the file was set aside: what was wrong (not saved).
    #[serde(skip)]
    pub set_aside: Option<String>,
}

/// Just the version, read before the rest so a newer file is recognised even when the rest of
/// its format changed.
#[derive(Deserialize)]
struct Version {
    #[serde(default)]
    version: u32,
}

impl SavedState {
    /// Reads `path`: a missing file is an empty state; a file that cannot be read or used is
    /// set aside (see the module docs) and is an empty state too, with
    /// [`SavedState::set_aside`] saying why.
    pub fn load(path: &Path) -> SavedState {
        Self::load_at(path, SystemTime::now())
    }

    /// [`SavedState::load`], naming a set-aside file after `now`.
    pub fn load_at(path: &Path, now: SystemTime) -> SavedState {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SavedState::default(),
            Err(e) => {
                let problem = format!("cannot read the state file {}: {e}", path.display());
                tracing::error!(path = %path.display(), error = %e, "cannot read the state file; starting with an empty state (silences, notification log and undelivered notifications are lost)");
                return SavedState {
                    set_aside: Some(problem),
                    ..SavedState::default()
                };
            }
        };
        let (problem, suffix) = match serde_json::from_slice::<Version>(&bytes) {
            Ok(v) if v.version > VERSION => (
                format!(
                    "written by a newer rabbitmq-watch (format version {}, this one reads up to {VERSION})",
                    v.version
                ),
                format!("v{}", v.version),
            ),
            Ok(_) => match serde_json::from_slice::<SavedState>(&bytes) {
                Ok(mut state) => {
                    state.version = VERSION;
                    return state;
                }
                Err(e) => (format!("corrupt: {e}"), "corrupt".to_owned()),
            },
            Err(e) => (format!("corrupt: {e}"), "corrupt".to_owned()),
        };
        let aside = aside_path(path, &suffix, now);
        match std::fs::rename(path, &aside) {
            Ok(()) => {
                tracing::error!(path = %path.display(), moved_to = %aside.display(), problem = %problem, "the state file cannot be used; it was moved aside and the sidecar starts with an empty state (silences, notification log and undelivered notifications are lost)");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), problem = %problem, error = %e, "the state file cannot be used nor moved aside; the sidecar starts with an empty state and the next save replaces the file");
            }
        }
        SavedState {
            set_aside: Some(format!("state file {}: {problem}", path.display())),
            ..SavedState::default()
        }
    }

    /// Writes `path` atomically: serializes first (a state that cannot be written fails here,
    /// leaving the previous file alone), then a temporary file, fsync, rename, fsync of the
    /// directory.
    ///
    /// # Errors
    /// The serialization or I/O error.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let tmp = temporary_path(path);
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The temporary file a save writes before its rename: the state file's own name plus `.tmp`
/// (`state.json` → `state.json.tmp`), so two state files that differ only in their extension
/// never share one.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Saves the state file off the async runtime and reports failures: each is counted in
/// `rabbitmq_watch_state_file_write_failures_total`; the first of a streak is logged as an
/// error (the rest at debug), and recovery is logged. A save that panics is contained and
/// counted like any other failure. While the last save failed, [`NotifyStats`] keeps the
/// reason (`/-/ready` answers 503 with it, `rabbitmq_watch_state_file_writable` is 0) until a
/// save succeeds again.
#[derive(Debug)]
pub struct StateWriter {
    /// `notify.state_file`; `None`: nothing is saved.
    path: Option<PathBuf>,
    /// Counters.
    stats: Arc<NotifyStats>,
    /// Whether the last save failed.
    failing: bool,
}

impl StateWriter {
    /// A writer of `path` (none: saves nothing) counting into `stats`.
    pub fn new(path: Option<PathBuf>, stats: Arc<NotifyStats>) -> Self {
        Self {
            path,
            stats,
            failing: false,
        }
    }

    /// Whether a state file is configured.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// Saves `state` (see [`SavedState::save`]) on a blocking thread.
    pub async fn save(&mut self, state: SavedState) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let target = path.clone();
        let result = match tokio::task::spawn_blocking(move || state.save(&target)).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(format!("the save stopped: {e}"))),
        };
        match result {
            Ok(()) => {
                if self.failing {
                    tracing::info!(path = %path.display(), "the state file is saved again");
                }
                self.failing = false;
                self.stats.state_file_saved();
            }
            Err(e) => {
                self.stats.state_file_write_failed(format!(
                    "cannot save the state file {}: {e}",
                    path.display()
                ));
                if self.failing {
                    tracing::debug!(path = %path.display(), error = %e, "cannot save the state file");
                } else {
                    tracing::error!(path = %path.display(), error = %e, "cannot save the state file; notifications go on, a restart would lose what changed since the last save");
                }
                self.failing = true;
            }
        }
    }
}

/// `<path>.<suffix>-<time>`, the time as `20261130T131500Z`.
fn aside_path(path: &Path, suffix: &str, now: SystemTime) -> PathBuf {
    let stamp: String =
        humantime::format_rfc3339_seconds(now.clamp(SystemTime::UNIX_EPOCH, super::latest_time()))
            .to_string()
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{suffix}-{stamp}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn alert() -> Alert {
        let labels: BTreeMap<String, String> = [("alertname", "X"), ("queue", "q")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Alert::firing_since(labels, at)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rw-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn set_aside_files(dir: &Path, prefix: &str) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    #[test]
    fn state_files_that_differ_in_extension_use_different_temporary_files() {
        let a = temporary_path(Path::new("/var/lib/w/state.json"));
        let b = temporary_path(Path::new("/var/lib/w/state.yaml"));
        assert_eq!(a, Path::new("/var/lib/w/state.json.tmp"));
        assert_ne!(a, b);
    }

    #[test]
    fn state_file_round_trips_atomically() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("state.json");
        let empty = SavedState::load(&path);
        assert_eq!(empty.alerts.len(), 0);
        assert!(empty.set_aside.is_none(), "a missing file is not a problem");
        let state = SavedState {
            version: VERSION,
            alerts: vec![alert()],
            ..SavedState::default()
        };
        state.save(&path).unwrap();
        assert!(!temporary_path(&path).exists());
        let loaded = SavedState::load(&path);
        assert_eq!(loaded.alerts, state.alerts);
        assert!(loaded.set_aside.is_none());
        // A file without a version (written before versions were checked) is version 1.
        std::fs::write(
            &path,
            r#"{"alerts":[],"groups":{},"pending":[],"silences":[]}"#,
        )
        .unwrap();
        assert_eq!(SavedState::load(&path).set_aside, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_or_truncated_file_is_moved_aside_and_the_state_starts_empty() {
        let dir = temp_dir("corrupt");
        let path = dir.join("state.json");
        let state = SavedState {
            version: VERSION,
            alerts: vec![alert()],
            ..SavedState::default()
        };
        state.save(&path).unwrap();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let loaded = SavedState::load_at(&path, now);
        assert!(loaded.alerts.is_empty());
        let problem = loaded.set_aside.unwrap();
        assert!(
            problem.contains("state.json") && problem.contains("corrupt"),
            "{problem}"
        );
        assert!(!path.exists(), "moved aside");
        assert_eq!(
            set_aside_files(&dir, "state.json."),
            ["state.json.corrupt-20270115T080000Z"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_of_a_newer_version_is_refused_and_kept_aside() {
        let dir = temp_dir("newer");
        let path = dir.join("state.json");
        std::fs::write(&path, r#"{"version":2,"something":"else"}"#).unwrap();
        let loaded = SavedState::load(&path);
        let problem = loaded.set_aside.unwrap();
        assert!(
            problem.contains("newer") && problem.contains('2'),
            "{problem}"
        );
        let aside = set_aside_files(&dir, "state.json.v2-");
        assert_eq!(aside.len(), 1, "{aside:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_time_that_cannot_be_written_fails_the_save_without_panicking() {
        let dir = temp_dir("unwritable");
        let path = dir.join("state.json");
        let before = SavedState::default();
        before.save(&path).unwrap();
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let state = SavedState {
            silences: vec![Silence {
                id: "0123".into(),
                matchers: vec!["alertname=\"x\"".into()],
                starts_at: start,
                // 10000 years: past 9999-12-31, as `"duration": "10000y"` made.
                ends_at: start + Duration::from_secs(10_000 * 365 * 86_400),
                created_by: String::new(),
                comment: String::new(),
            }],
            ..SavedState::default()
        };
        let error = state.save(&path).unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
        // The previous file is untouched and no empty temporary file is left.
        assert!(SavedState::load(&path).set_aside.is_none());
        assert!(!temporary_path(&path).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_writer_counts_failed_and_panicking_saves_and_recovers() {
        let dir = temp_dir("writer");
        let stats = Arc::new(NotifyStats::default());
        let mut writer = StateWriter::new(Some(dir.join("none").join("state.json")), stats.clone());
        writer.save(SavedState::default()).await;
        assert_eq!(stats.state_file().unwrap_or_default().write_failures, 1);
        // An alert time past year 9999 makes the alerts' RFC 3339 writer panic inside
        // serde_json: contained, counted, and the previous file is kept.
        let path = dir.join("state.json");
        let mut writer = StateWriter::new(Some(path.clone()), stats.clone());
        writer.save(SavedState::default()).await;
        let mut absurd = alert();
        absurd.last_true = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        writer
            .save(SavedState {
                alerts: vec![absurd],
                ..SavedState::default()
            })
            .await;
        assert_eq!(stats.state_file().unwrap_or_default().write_failures, 2);
        assert!(SavedState::load(&path).set_aside.is_none());
        writer.save(SavedState::default()).await;
        assert_eq!(stats.state_file().unwrap_or_default().write_failures, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_writer_keeps_the_reason_of_a_failed_save_until_one_succeeds() {
        let dir = temp_dir("reason");
        let stats = Arc::new(NotifyStats::default());
        // A parent that is a regular file: the save fails even as root.
        std::fs::write(dir.join("file"), b"").unwrap();
        let path = dir.join("file").join("state.json");
        let mut writer = StateWriter::new(Some(path.clone()), stats.clone());
        writer.save(SavedState::default()).await;
        let reason = stats.state_file().unwrap().write_error.unwrap();
        assert!(reason.contains(&path.display().to_string()), "{reason}");
        writer.save(SavedState::default()).await;
        assert_eq!(stats.state_file().unwrap().write_failures, 2);
        assert!(stats.state_file().unwrap().write_error.is_some());
        std::fs::remove_file(dir.join("file")).unwrap();
        std::fs::create_dir(dir.join("file")).unwrap();
        writer.save(SavedState::default()).await;
        assert_eq!(stats.state_file().unwrap().write_error, None);
        assert!(SavedState::load(&path).set_aside.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
