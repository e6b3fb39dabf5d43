//! Times as the APIs, payloads and state file show them: RFC 3339 with milliseconds in UTC
//! (`2026-01-01T00:00:00.000Z`), with serde adapters, and [`elapsed`].

use std::time::{Duration, SystemTime};

/// `t` as RFC 3339 with milliseconds, e.g. `2026-01-01T00:00:00.000Z`. Never panics: a time
/// outside what RFC 3339 can write (before 1970 or after [`latest_time`]) is written as the
/// nearest one it can.
pub fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.clamp(SystemTime::UNIX_EPOCH, latest_time())).to_string()
}

/// The last instant RFC 3339 (four-digit years) can write: 9999-12-31T23:59:59Z. Every time
/// the sidecar computes or accepts is kept at or before it, so formatting never fails.
pub fn latest_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// Whether `t` can be written as RFC 3339 (1970 to year 9999).
pub fn representable(t: SystemTime) -> bool {
    t >= SystemTime::UNIX_EPOCH && t <= latest_time()
}

/// `t + d`, saturating at [`latest_time`] instead of overflowing (`now + group_wait` with an
/// absurd configured duration must not panic).
pub fn add_time(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .map_or(latest_time(), |sum| sum.min(latest_time()))
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

/// Serde for `SystemTime` as RFC 3339 with milliseconds (`#[serde(with = "...")]`). Writing a
/// time RFC 3339 cannot express fails with an error instead of panicking (as formatting a
/// time past year 9999 would).
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as RFC 3339.
    ///
    /// # Errors
    /// A time outside 1970..=9999, or the serializer's.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        if !super::representable(*t) {
            return Err(serde::ser::Error::custom(format!(
                "{t:?} cannot be written as RFC 3339 (years 1970 to 9999)"
            )));
        }
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
    /// A time outside 1970..=9999, or the serializer's.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
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

    #[test]
    fn times_past_year_9999_never_panic() {
        let far = add_time(UNIX_EPOCH, Duration::MAX);
        assert_eq!(far, latest_time());
        assert!(representable(far));
        assert_eq!(format_rfc3339(far), "9999-12-31T23:59:59.000Z");
        let beyond = latest_time() + Duration::from_secs(1);
        assert!(!representable(beyond));
        assert_eq!(format_rfc3339(beyond), "9999-12-31T23:59:59.000Z");
        #[derive(serde::Serialize)]
        struct T(#[serde(with = "rfc3339")] SystemTime);
        let err = serde_json::to_string(&T(beyond)).unwrap_err();
        assert!(
            err.to_string().contains("cannot be written as RFC 3339"),
            "{err}"
        );
    }
}
