//! Incremental decoding of a JSON array of objects as its body arrives: [`ArraySplitter`]
//! cuts the chunks into the array's elements, each decoded on its own by serde_json, so the
//! memory a read needs is one element plus what the caller keeps, not the whole body.
//!
//! The splitter checks the array's own structure (`[`, `,`, `]`, nothing after it) and finds
//! where each object ends by counting brackets outside strings; serde_json checks everything
//! inside an element.

/// Why a body is not a JSON array of objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A byte that cannot stand where it was found.
    #[error("expected {expected} at byte {offset}, found {found:?}")]
    Unexpected {
        /// What the splitter expected there.
        expected: &'static str,
        /// The byte found, as a character (lossy).
        found: char,
        /// Offset of that byte in the body.
        offset: u64,
    },
    /// The body ended before the array did.
    #[error("body ended inside the array after {bytes} bytes (truncated?)")]
    Truncated {
        /// Body bytes received.
        bytes: u64,
    },
    /// Objects nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep {
        /// Offset of the bracket that went too deep.
        offset: u64,
    },
}

/// Deepest nesting accepted inside one element (serde_json's own recursion limit is 128).
pub const MAX_DEPTH: u32 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    Separator,
    /// After `,`: an element.
    Element,
    /// Inside an element.
    Inside,
    /// After the closing `]`: only whitespace.
    Done,
}

/// Splits a JSON array of objects, fed in chunks of any size, into the bytes of each element.
#[derive(Debug)]
pub struct ArraySplitter {
    /// Where in the array the next byte falls.
    state: State,
    /// The bytes of the element being read (only while [`State::Inside`]).
    element: Vec<u8>,
    /// Bracket depth inside the element.
    depth: u32,
    /// Inside a string of the element.
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
    /// Body bytes fed so far.
    offset: u64,
}

impl Default for ArraySplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl ArraySplitter {
    /// A splitter expecting the start of the array.
    pub fn new() -> Self {
        Self {
            state: State::Start,
            element: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            offset: 0,
        }
    }

    /// Feeds the next `chunk` of the body; calls `on_element` with the bytes of every element
    /// completed by it, in order. An error from `on_element` stops the feed and is returned.
    ///
    /// # Errors
    /// `E::from(SplitError)` when the bytes are not a JSON array of objects, or the error of
    /// `on_element`.
    pub fn feed<E: From<SplitError>>(
        &mut self,
        chunk: &[u8],
        mut on_element: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut i = 0;
        // Start of the current element's bytes within `chunk`, while inside one.
        let mut from = if self.state == State::Inside {
            Some(0)
        } else {
            None
        };
        while i < chunk.len() {
            let b = chunk[i];
            let at = self.offset + i as u64;
            match self.state {
                State::Inside => {
                    if self.in_string {
                        if self.escaped {
                            self.escaped = false;
                        } else if b != b'"' && b != b'\\' {
                            // Skip to the string's next quote or backslash at once: most of
                            // a listing's bytes are inside strings.
                            i = memchr::memchr2(b'"', b'\\', &chunk[i..])
                                .map_or(chunk.len(), |at| i + at);
                            continue;
                        } else if b == b'\\' {
                            self.escaped = true;
                        } else if b == b'"' {
                            self.in_string = false;
                        }
                    } else {
                        match b {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => {
                                self.depth += 1;
                                if self.depth > MAX_DEPTH {
                                    return Err(SplitError::TooDeep { offset: at }.into());
                                }
                            }
                            b'}' | b']' => {
                                self.depth -= 1;
                                if self.depth == 0 {
                                    let start = from.take().unwrap_or(0);
                                    self.element.extend_from_slice(&chunk[start..=i]);
                                    self.state = State::Separator;
                                    let result = on_element(&self.element);
                                    self.element.clear();
                                    result?;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ if matches!(b, b' ' | b'\t' | b'\n' | b'\r') => {}
                State::Start => {
                    if b != b'[' {
                        return Err(unexpected("`[`", b, at).into());
                    }
                    self.state = State::First;
                }
                State::First | State::Element => {
                    if b == b']' && self.state == State::First {
                        self.state = State::Done;
                    } else if b == b'{' {
                        self.state = State::Inside;
                        self.depth = 1;
                        from = Some(i);
                    } else {
                        return Err(unexpected("an object", b, at).into());
                    }
                }
                State::Separator => match b {
                    b',' => self.state = State::Element,
                    b']' => self.state = State::Done,
                    _ => return Err(unexpected("`,` or `]`", b, at).into()),
                },
                State::Done => return Err(unexpected("the end of the body", b, at).into()),
            }
            i += 1;
        }
        if let Some(start) = from {
            self.element.extend_from_slice(&chunk[start..]);
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// Checks that the body held one complete array.
    ///
    /// # Errors
    /// [`SplitError::Truncated`] when it ended early.
    pub fn finish(&self) -> Result<(), SplitError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(SplitError::Truncated { bytes: self.offset })
        }
    }

    /// Bytes held for the element being read (for tests of the memory bound).
    pub fn pending(&self) -> usize {
        self.element.len()
    }
}

fn unexpected(expected: &'static str, b: u8, offset: u64) -> SplitError {
    SplitError::Unexpected {
        expected,
        found: char::from(b),
        offset,
    }
}

/// Decodes a whole JSON array of `T` from `body` with the splitter, calling `keep` for each
/// element; the error names the failing element. Used by tests and by reads whose body is
/// already in memory.
///
/// # Errors
/// The splitter's or serde_json's message.
pub fn decode_each<T: serde::de::DeserializeOwned>(
    body: &[u8],
    chunk: usize,
    mut keep: impl FnMut(T),
) -> Result<(), String> {
    let mut splitter = ArraySplitter::new();
    let mut index = 0u64;
    for part in body.chunks(chunk.max(1)) {
        splitter.feed(part, |element| -> Result<(), String> {
            let value =
                serde_json::from_slice(element).map_err(|e| format!("element {index}: {e}"))?;
            index += 1;
            keep(value);
            Ok(())
        })?;
    }
    splitter.finish().map_err(|e| e.to_string())
}

impl From<SplitError> for String {
    fn from(e: SplitError) -> Self {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rabbitmq::model::Queue;
    use proptest::prelude::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn split(body: &[u8], chunk: usize) -> Result<Vec<serde_json::Value>, String> {
        let mut out = Vec::new();
        decode_each(body, chunk, |v| out.push(v))?;
        Ok(out)
    }

    #[test]
    fn every_chunk_size_gives_the_same_elements_as_a_whole_parse() {
        for path in [
            "3.10/queues-full.json",
            "3.10.8/queues.json",
            "4.0.5/queues.json",
            "4.0.5-stats-off/queues.json",
            "4.0.5/queues-detailed.json",
        ] {
            let body = fixture(path);
            let whole: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
            assert!(!whole.is_empty(), "{path}");
            for chunk in [1, 2, 3, 7, 64, 4096, body.len()] {
                assert_eq!(split(&body, chunk).unwrap(), whole, "{path} chunk {chunk}");
            }
            let mut queues = 0;
            decode_each::<Queue>(&body, 100, |_| queues += 1).unwrap();
            assert_eq!(queues, whole.len());
        }
    }

    #[test]
    fn structure_errors_are_named() {
        assert_eq!(split(b" [ ] ", 1).unwrap(), Vec::<serde_json::Value>::new());
        assert!(split(b"[", 1).unwrap_err().contains("truncated"));
        assert!(
            split(b"[{\"a\":\"}\"", 3)
                .unwrap_err()
                .contains("truncated")
        );
        assert!(split(b"", 1).unwrap_err().contains("truncated"));
        assert!(
            split(b"{\"items\":[]}", 1)
                .unwrap_err()
                .contains("expected `[`")
        );
        assert!(
            split(b"[{},]", 1)
                .unwrap_err()
                .contains("expected an object")
        );
        assert!(
            split(b"[{} {}]", 1)
                .unwrap_err()
                .contains("expected `,` or `]`")
        );
        assert!(split(b"[1]", 1).unwrap_err().contains("expected an object"));
        assert!(split(b"[]x", 1).unwrap_err().contains("end of the body"));
        assert!(split(b"[{\"a\":]}]", 1).unwrap_err().contains("element 0"));
        let deep = format!("[{{\"a\":{}{}}}]", "[".repeat(200), "]".repeat(200));
        assert!(split(deep.as_bytes(), 5).unwrap_err().contains("nesting"));
        // Brackets and quotes inside strings do not count.
        let tricky = br#"[{"a":"}]\"{["},{"b":"\\"}]"#;
        assert_eq!(split(tricky, 1).unwrap().len(), 2);
    }

    #[test]
    fn memory_held_is_one_element() {
        let body = fixture("3.10/queues-full.json");
        let whole: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        let largest = whole
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap().len())
            .max()
            .unwrap();
        let mut splitter = ArraySplitter::new();
        let mut most = 0;
        for part in body.chunks(10) {
            splitter
                .feed(part, |e| -> Result<(), SplitError> {
                    most = most.max(e.len());
                    Ok(())
                })
                .unwrap();
        }
        splitter.finish().unwrap();
        // The fixture is pretty-printed: an element's bytes are its pretty form, bounded.
        assert!(most < largest * 4, "{most} vs {largest}");
        assert!(most < body.len() / 2);
    }

    fn fixtures() -> Vec<Vec<u8>> {
        [
            "3.10/queues-full.json",
            "3.10.8/queues.json",
            "4.0.5/queues.json",
            "4.0.5-stats-off/queues.json",
        ]
        .iter()
        .map(|p| fixture(p))
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any truncation of a recorded body: an error naming the truncation, or (cut after
        /// the closing bracket) the whole array; never a panic.
        #[test]
        fn truncated_bodies_fail_cleanly(which in 0usize..4, cut in 0.0f64..1.0, chunk in 1usize..5000) {
            let body = &fixtures()[which];
            let cut = ((body.len() as f64) * cut) as usize;
            let result = split(&body[..cut], chunk);
            let queues: Result<(), String> = decode_each::<Queue>(&body[..cut], chunk, |_| {});
            prop_assert_eq!(result.is_ok(), queues.is_ok());
            if let Ok(v) = result {
                let whole: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
                prop_assert_eq!(v, whole);
            }
        }

        /// Any bytes overwritten, inserted or removed: an error or a valid result, never a
        /// panic; when both parsers accept it they agree.
        #[test]
        fn mutated_bodies_never_panic(
            which in 0usize..4,
            edits in proptest::collection::vec((0.0f64..1.0, any::<u8>(), 0u8..3), 1..8),
            chunk in 1usize..5000,
        ) {
            let mut body = fixtures()[which].clone();
            for (at, byte, kind) in edits {
                let at = ((body.len() as f64) * at) as usize;
                match kind {
                    0 if at < body.len() => body[at] = byte,
                    1 => body.insert(at.min(body.len()), byte),
                    _ if at < body.len() => { body.remove(at); }
                    _ => {}
                }
            }
            let ours = split(&body, chunk);
            let _ = decode_each::<Queue>(&body, chunk, |_| {});
            if let (Ok(ours), Ok(whole)) = (&ours, serde_json::from_slice::<Vec<serde_json::Value>>(&body)) {
                prop_assert_eq!(ours, &whole);
            }
        }
    }
}
