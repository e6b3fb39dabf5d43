//! Times as the APIs, payloads and state file show them: RFC 3339 with milliseconds in UTC
//! (`2026-01-01T00:00:00.000Z`), with serde adapters, and [`elapsed`].

use std::time::{Duration, SystemTime};

/// `t` as RFC 3339 with milliseconds, e.g. `2026-01-01T00:00:00.000Z`.
pub fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 time (a `T` or a space between date and time, any precision, `Z`).
///
/// # Errors
/// The text and what is wrong with it.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| format!("`{text}`: {e}"))
}

/// Time from `since` to `now`; zero when `since` is later (a clock that stepped back).
pub fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or_default()
}

/// Serde for `SystemTime` as RFC 3339 with milliseconds (`#[serde(with = "...")]`).
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as RFC 3339.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    /// Reads RFC 3339.
    ///
    /// # Errors
    /// Not a string, or not an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde for `Option<SystemTime>` as RFC 3339 or null (`#[serde(with = "...")]`).
pub mod rfc3339_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as RFC 3339 or null.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
            None => s.serialize_none(),
        }
    }

    /// Reads RFC 3339 or null.
    ///
    /// # Errors
    /// Not a string or null, or not an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn rfc3339_round_trips_and_elapsed_never_underflows() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(format_rfc3339(t), "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00.123Z"), Ok(t));
        assert!(
            parse_rfc3339("yesterday")
                .unwrap_err()
                .contains("`yesterday`")
        );
        assert_eq!(
            elapsed(t, t + Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(elapsed(t + Duration::from_secs(5), t), Duration::ZERO);
    }
}
