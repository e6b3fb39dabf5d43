//! Value types shared by the configuration and the components that use it: [`Regex`] (an
//! anchored regex that prints as written) and [`Secret`] (a string that never prints).
//!
//! This is a leaf module: it imports nothing of the crate.

use std::fmt;

use serde::{Serialize, Serializer};

/// A validated, anchored regex that prints as the user wrote it.
#[derive(Debug, Clone)]
pub struct Regex {
    /// The pattern as configured.
    source: String,
    /// `^(?:source)$`, compiled.
    anchored: regex::Regex,
}

impl Regex {
    /// Compiles `source` fully anchored.
    ///
    /// # Errors
    /// The regex crate's message.
    pub fn new(source: &str) -> Result<Self, String> {
        let anchored = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_owned(),
            anchored,
        })
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The anchored pattern, `^(?:source)$`.
    pub fn anchored(&self) -> &str {
        self.anchored.as_str()
    }

    /// Whether it matches everything (`.*`), i.e. filters nothing.
    pub fn is_match_all(&self) -> bool {
        self.source == ".*"
    }
}

impl fmt::Display for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A secret string (password). `Debug`, `Display` and `Serialize` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value itself: only for sending it where it belongs (HTTP basic auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}
