//! Serde serializers for `#[serde(serialize_with = "...")]`: durations as humantime text
//! (`1m 30s`), values through their `Display`, and shared values (`Arc<T>`) as `T`.

use std::fmt;
use std::time::Duration;

use serde::Serializer;

/// Writes `d` as humantime text, e.g. `15s` or `1h 30m`.
///
/// # Errors
/// The serializer's.
pub fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Writes `v` through its `Display`.
///
/// # Errors
/// The serializer's.
pub fn display<S: Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Writes `v` through its `Display`, `None` as the empty string.
///
/// # Errors
/// The serializer's.
pub fn opt_display<S: Serializer, T: fmt::Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

/// Writes the length of `v` (for lists whose items may hold secrets).
///
/// # Errors
/// The serializer's.
pub fn count<S: Serializer, T>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(v.len() as u64)
}

/// Serde for a shared value (`Arc<T>`) as the value itself, the same JSON as `T`:
/// `#[serde(with = "crate::util::ser::shared")]`.
pub mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the shared value as `T`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<T: Serialize, S: Serializer>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
        T::serialize(v, s)
    }

    /// Reads a `T` and shares it.
    ///
    /// # Errors
    /// The deserializer's.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}
