//! The state file (`notify.state_file`): alert instances, the groups' timers and
//! notification log, undelivered notifications and silences, saved atomically and read at
//! start-up so a restart neither loses nor repeats a notification.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dispatch::{GroupState, Job};
use super::silence::Silence;
use crate::alerting::Alert;

/// The state file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedState {
    /// Format version, 1.
    pub version: u32,
    /// Alert instances, restored into the engine.
    pub alerts: Vec<Alert>,
    /// Groups by key.
    pub groups: BTreeMap<String, GroupState>,
    /// Undelivered notifications.
    pub pending: Vec<Job>,
    /// Silences.
    pub silences: Vec<Silence>,
}

impl SavedState {
    /// Reads `path`; a missing file is an empty state.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<SavedState, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("state file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedState::default()),
            Err(e) => Err(format!("state file {}: {e}", path.display())),
        }
    }

    /// Writes `path` atomically (temporary file, fsync, rename).
    ///
    /// # Errors
    /// The I/O error.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::alerting::{State, fingerprint};

    fn alert() -> Alert {
        let labels: BTreeMap<String, String> = [("alertname", "X"), ("queue", "q")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Alert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: BTreeMap::new(),
            analysis: None,
            state: State::Firing,
            value: 1.0,
            active_since: at,
            fired_at: Some(at),
            resolved_at: None,
            last_true: at,
            unknown: false,
        }
    }

    #[test]
    fn state_file_round_trips_atomically() {
        let dir = std::env::temp_dir().join(format!("rw-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(SavedState::load(&path).unwrap().alerts.len(), 0);
        let state = SavedState {
            version: 1,
            alerts: vec![alert()],
            ..SavedState::default()
        };
        state.save(&path).unwrap();
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(SavedState::load(&path).unwrap().alerts, state.alerts);
        std::fs::write(&path, "{broken").unwrap();
        assert!(SavedState::load(&path).unwrap_err().contains("state.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
