//! HTML escaping: the one escaper used by every HTML page and email body. The status page's
//! askama templates use it too, through [`Html`] (configured in `askama.toml`), so what a
//! template prints and what [`escape`] returns agree by construction.

use std::fmt;

/// Writes `text` to `out` with `& < > " '` escaped.
pub fn write_escaped<W: fmt::Write>(mut out: W, text: &str) -> fmt::Result {
    let mut last = 0;
    for (i, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&text[last..i])?;
        out.write_str(entity)?;
        last = i + 1;
    }
    out.write_str(&text[last..])
}

/// `text` with `& < > " '` escaped, safe in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut out, text);
    out
}

/// [`escape`] as askama's escaper for `.html` templates (see `askama.toml`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: fmt::Write>(&self, dest: W, string: &str) -> fmt::Result {
        write_escaped(dest, string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_special_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(escape("é<é"), "é&lt;é");
    }

    #[test]
    fn templates_escape_with_the_same_escaper() {
        use askama::Template as _;
        #[derive(askama::Template)]
        #[template(source = "<p title=\"{{ text }}\">{{ text }}</p>", ext = "html")]
        struct Probe<'a> {
            text: &'a str,
        }
        let text = r#"<script>alert('x' & "y")</script> é"#;
        let html = Probe { text }.render().unwrap();
        let e = escape(text);
        assert_eq!(html, format!("<p title=\"{e}\">{e}</p>"));
    }
}
