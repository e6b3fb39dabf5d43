//! Small helpers shared by several modules, each in one place so that copies cannot drift:
//! error-chain formatting ([`error_chain`]), HTML escaping ([`html::escape`]), RFC 3339 times
//! ([`time`]: formatting, parsing, serde adapters, [`time::elapsed`]) and serde serializers for
//! durations and displayable values ([`ser`]), and the [`Update`] a configuration reload hands
//! to a running task.
//!
//! This is a leaf module: it imports nothing of the crate.

pub mod html;
pub mod ser;
pub mod time;

pub use time::elapsed;

/// `error: cause: cause…`: an error followed by each of its sources, joined with `": "`, so
/// that "connection refused" or "timed out" is visible (reqwest's and lettre's own messages
/// are terse). A source whose text is already contained in what precedes is left out, so that
/// errors that repeat their cause are not printed twice.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A new setting handed to a running task by a configuration reload, and how the task says
/// it took it: it sends `()` on `taken` once the value is in place (the reload waits for every
/// task before it reports success).
#[derive(Debug)]
pub struct Update<T> {
    /// The new setting.
    pub value: T,
    /// Answered once `value` is in place.
    pub taken: tokio::sync::oneshot::Sender<()>,
}

/// Where a task receives its [`Update`]s; a closed channel (no reloads) never yields.
pub type Updates<T> = tokio::sync::mpsc::Receiver<Update<T>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Chained {
        text: &'static str,
        #[source]
        source: Option<Box<Chained>>,
    }

    #[test]
    fn error_chain_joins_sources_once() {
        let e = Chained {
            text: "error sending request",
            source: Some(Box::new(Chained {
                text: "client error (Connect)",
                source: Some(Box::new(Chained {
                    text: "Connection refused",
                    source: None,
                })),
            })),
        };
        assert_eq!(
            error_chain(&e),
            "error sending request: client error (Connect): Connection refused"
        );
        let repeats = Chained {
            text: "tcp connect error: Connection refused",
            source: Some(Box::new(Chained {
                text: "Connection refused",
                source: None,
            })),
        };
        assert_eq!(
            error_chain(&repeats),
            "tcp connect error: Connection refused"
        );
    }
}
