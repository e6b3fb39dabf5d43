//! A streaming parser for the Prometheus text exposition format (0.0.4) as rabbitmq_prometheus
//! emits it: `# HELP` / `# TYPE` / other comment lines, and samples
//! `name{label="value",...} value [timestamp]` with the escapes `\\`, `\"` and `\n` in label
//! values; `NaN`, `+Inf` and `-Inf` values; an OpenMetrics `# EOF` ends the input.
//!
//! Why our own: the crates judged for #12 (`prometheus-parse` 0.2.5, `openmetrics-parser`
//! 0.5.1, `prom_text_format_parser` 0.1.0) either silently skip malformed or truncated lines,
//! reject real rabbitmq_prometheus output (families with HELP and no samples), drop samples,
//! or take over a minute on a 10,000-queue `/metrics/detailed` (see docs/operations.md,
//! "Dependencies"). This one borrows from the input, allocates only for escaped label values,
//! and reports the first bad line with its number instead of skipping it.
//!
//! Input that does not end with a newline is reported as truncated: rabbitmq_prometheus always
//! ends its answer with one, so a body cut short by a reset or a size cap is never read as
//! complete.

use std::borrow::Cow;

/// One sample line: metric name, labels (in the order written) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name, e.g. `rabbitmq_detailed_queue_messages_ready`.
    pub name: &'a str,
    /// The labels, unescaped, in the order written.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value; `NaN` and infinities as written.
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Why an exposition could not be parsed: the 1-based line and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What was expected.
    pub detail: String,
}

/// Parses `text`, calling `visit` for every sample in order; stops at the first bad line.
///
/// # Errors
/// [`ParseError`] for the first malformed line, or when the text does not end with a newline
/// (truncated).
pub fn parse<'a>(
    text: &'a str,
    mut visit: impl FnMut(Sample<'a>) -> Result<(), String>,
) -> Result<(), ParseError> {
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let mut number = 0;
    if lines(&text[..complete], &mut number, &mut visit)? {
        return Ok(());
    }
    if complete < text.len() {
        return Err(truncated(number + 1));
    }
    Ok(())
}

/// The error of a last line without its newline.
fn truncated(line: usize) -> ParseError {
    ParseError {
        line,
        detail: "truncated: the last line has no newline".to_owned(),
    }
}

/// Parses `text`, complete lines only (empty, or ending with a newline), numbering them after
/// `number` (left at the last line read); true when it met `# EOF` (the rest is not read).
fn lines<'a>(
    text: &'a str,
    number: &mut usize,
    visit: &mut impl FnMut(Sample<'a>) -> Result<(), String>,
) -> Result<bool, ParseError> {
    for raw in text.split_terminator('\n') {
        *number += 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |detail: String| ParseError {
            line: *number,
            detail,
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.trim_end() == " EOF" {
                return Ok(true);
            }
            check_comment(comment).map_err(err)?;
            continue;
        }
        let sample = parse_sample(line).map_err(err)?;
        visit(sample).map_err(err)?;
    }
    Ok(false)
}

/// [`parse`] for a text that arrives in pieces (an HTTP body as it is read): each piece's
/// complete lines are parsed at once, and only the unfinished last line is kept, so memory is
/// bounded by the longest line, not by the body. Fed the same bytes in any pieces, it visits
/// the same samples and fails with the same error as [`parse`] of the whole.
#[derive(Debug, Default)]
pub struct Incremental {
    /// The bytes after the last newline fed.
    carry: Vec<u8>,
    /// Lines read so far.
    number: usize,
    /// `# EOF` was read: what follows is ignored.
    ended: bool,
}

impl Incremental {
    /// Parses the complete lines that `piece` finishes, calling `visit` for each sample.
    ///
    /// # Errors
    /// [`ParseError`] for the first malformed line, or a line that is not UTF-8; after an
    /// error the parser must not be fed again.
    pub fn feed(
        &mut self,
        piece: &[u8],
        visit: &mut impl FnMut(Sample<'_>) -> Result<(), String>,
    ) -> Result<(), ParseError> {
        if self.ended {
            return Ok(());
        }
        let Some(last) = memchr::memrchr(b'\n', piece) else {
            self.carry.extend_from_slice(piece);
            return Ok(());
        };
        let (head, tail) = piece.split_at(last + 1);
        let ended = if self.carry.is_empty() {
            self.complete(head, visit)?
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(head);
            let ended = self.complete(&joined, visit);
            // Keep the allocation for the next unfinished line.
            joined.clear();
            self.carry = joined;
            ended?
        };
        self.ended = ended;
        if !ended {
            self.carry.extend_from_slice(tail);
        }
        Ok(())
    }

    /// Parses `bytes`, complete lines; true at `# EOF`.
    fn complete(
        &mut self,
        bytes: &[u8],
        visit: &mut impl FnMut(Sample<'_>) -> Result<(), String>,
    ) -> Result<bool, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            // The line of the first bad byte.
            let line =
                self.number + 1 + memchr::memchr_iter(b'\n', &bytes[..e.valid_up_to()]).count();
            ParseError {
                line,
                detail: format!("not UTF-8: {e}"),
            }
        })?;
        lines(text, &mut self.number, visit)
    }

    /// Ends the text.
    ///
    /// # Errors
    /// [`ParseError`] when the last line fed has no newline (truncated), unless `# EOF` came
    /// before it.
    pub fn finish(self) -> Result<(), ParseError> {
        if self.ended || self.carry.is_empty() {
            Ok(())
        } else {
            Err(truncated(self.number + 1))
        }
    }
}

/// Checks a `# HELP name text` / `# TYPE name type` line (without the `#`); other comments
/// pass.
fn check_comment(comment: &str) -> Result<(), String> {
    let mut words = comment.trim_start().splitn(3, ' ');
    let keyword = words.next().unwrap_or_default();
    if keyword != "HELP" && keyword != "TYPE" {
        return Ok(());
    }
    let name = words.next().unwrap_or_default();
    if !is_metric_name(name) {
        return Err(format!("# {keyword}: bad metric name {name:?}"));
    }
    if keyword == "TYPE" {
        let kind = words.next().unwrap_or_default().trim();
        const KINDS: [&str; 9] = [
            "counter",
            "gauge",
            "histogram",
            "summary",
            "untyped",
            "unknown",
            "gaugehistogram",
            "stateset",
            "info",
        ];
        if !KINDS.contains(&kind) {
            return Err(format!("# TYPE {name}: unknown type {kind:?}"));
        }
    }
    Ok(())
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses one sample line.
fn parse_sample(line: &str) -> Result<Sample<'_>, String> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or_else(|| "expected a value after the metric name".to_owned())?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("{name}: expected a value"))?;
    let value = parse_value(value).ok_or_else(|| format!("{name}: bad value {value:?}"))?;
    if let Some(ts) = fields.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("{name}: bad timestamp {ts:?}"));
    }
    if let Some(extra) = fields.next() {
        return Err(format!("{name}: unexpected {extra:?} after the value"));
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(format!("{name}: expected a space before the value"));
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `name="value",...}` (after the `{`), returning what follows the `}`.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| "unterminated label set".to_owned())?;
        let key = rest[..eq].trim();
        if !is_label_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        rest = rest[eq + 1..].trim_start();
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key}: expected '\"'"))?;
        let (value, after) = parse_label_value(rest)
            .ok_or_else(|| format!("label {key}: unterminated or badly escaped value"))?;
        if labels.iter().any(|(k, _)| *k == key) {
            return Err(format!("label {key} given twice"));
        }
        labels.push((key, value));
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("label {key}: expected ',' or '}}'"));
        }
    }
}

/// Parses a label value after its opening quote: the unescaped value and what follows the
/// closing quote; `None` when unterminated or an escape is not `\\`, `\"` or `\n`.
fn parse_label_value(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut owned: Option<String> = None;
    let mut start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let value = match owned {
                    Some(mut s) => {
                        s.push_str(&text[start..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&text[..i]),
                };
                return Some((value, &text[i + 1..]));
            }
            b'\\' => {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&text[start..i]);
                match bytes.get(i + 1)? {
                    b'\\' => s.push('\\'),
                    b'"' => s.push('"'),
                    b'n' => s.push('\n'),
                    _ => return None,
                }
                i += 2;
                start = i;
            }
            _ => i += 1,
        }
    }
    None
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf` (Go's spellings).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust also accepts "inf", "infinity" and "nan" in any case: not Prometheus.
            if text
                .bytes()
                .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
            {
                return None;
            }
            text.parse().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Sample<'_>>, ParseError> {
        let mut out = Vec::new();
        parse(text, |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn samples_labels_escapes_and_special_values() {
        let text = "# HELP a_b Help text with \\ and \"\n# TYPE a_b gauge\na_b{vhost=\"/\",queue=\"q\\\"1\\\\\\n\",} 7\nc 1.5e3 1700000000000\nd NaN\ne{} +Inf\nf -Inf\n";
        let s = all(text).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].name, "a_b");
        assert_eq!(s[0].label("vhost"), Some("/"));
        assert_eq!(s[0].label("queue"), Some("q\"1\\\n"));
        assert_eq!(s[0].value, 7.0);
        assert_eq!(s[1].value, 1500.0);
        assert!(s[2].value.is_nan());
        assert_eq!(s[3].value, f64::INFINITY);
        assert_eq!(s[4].value, f64::NEG_INFINITY);
    }

    #[test]
    fn eof_ends_the_input() {
        assert_eq!(all("a 1\n# EOF\n").unwrap().len(), 1);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        for (text, line) in [
            ("a 1\nb{x=\"1} 2\n", 2),
            ("a 1x\n", 1),
            ("a{x=\"1\"}2\n", 1),
            ("a{1x=\"1\"} 2\n", 1),
            ("a{x=\"1\",x=\"2\"} 2\n", 1),
            ("a{x=\"\\t\"} 2\n", 1),
            ("a\n", 1),
            ("a 1 2 3\n", 1),
            ("a 1 x\n", 1),
            ("# TYPE a weird\n", 1),
            ("# HELP 1a x\n", 1),
            ("a inf\n", 1),
            ("a 1\nb 2", 2),
            ("-a 1\n", 1),
        ] {
            let e = all(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }

    #[test]
    fn visitor_errors_carry_the_line() {
        let e = parse("a 1\na 1\n", |s| {
            if s.value > 0.0 {
                Err("no".to_owned())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(e.line, 1);
    }
}
