//! Exposition formats: OpenMetrics 1.0 (what prometheus-client writes) and the classic
//! Prometheus text format 0.0.4 (derived from it), chosen by the scraper's `Accept` header, each
//! optionally gzip-compressed per `Accept-Encoding`. Each gzip variant of one snapshot's
//! exposition is built at most once and then shared by all scrapes; the plain variants are
//! decompressed chunk by chunk for each scrape and never held whole.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::sync::OnceLock;

use axum::body::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0` (Prometheus asks for it first).
    OpenMetrics,
    /// `text/plain; version=0.0.4` (the default without an `Accept` header: curl, browsers,
    /// promtool, older scrapers).
    Text,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it is accepted with a quality
    /// at least that of `text/plain` (or `*/*`), else the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = quality(parts);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// The `q=` parameter among `params` (1 when absent or malformed).
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> f32 {
    params
        .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
        .filter_map(|q| q.trim().parse::<f32>().ok())
        .next()
        .unwrap_or(1.0)
}

/// Whether an `Accept-Encoding` header accepts gzip (with a quality above 0).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|header| {
        header.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            (name == "gzip" || name == "x-gzip") && quality(parts) > 0.0
        })
    })
}

/// One snapshot's exposition in every variant. Only the gzip-compressed OpenMetrics text (what
/// Prometheus asks for, typically 1/25 of the plain size) is kept from the start; the gzip of
/// the text format is built from it on first request and then kept. The plain variants are
/// never kept: [`Variants::write_plain`] decompresses (and converts) them chunk by chunk for
/// each request, so a plain scrape holds 64 KiB chunks instead of a ~15 MB copy per snapshot
/// at 10,000 queues (issue #13: those copies were the RSS growth of the plain-text soak).
#[derive(Debug)]
pub struct Variants {
    /// gzip of the OpenMetrics text, `# EOF` included.
    openmetrics_gzip: Bytes,
    /// gzip of the text format 0.0.4.
    text_gzip: OnceLock<Bytes>,
}

impl Variants {
    /// Wraps a gzip-compressed OpenMetrics exposition (see [`GzipWriter`]).
    pub fn from_openmetrics_gzip(openmetrics_gzip: Bytes) -> Self {
        Self {
            openmetrics_gzip,
            text_gzip: OnceLock::new(),
        }
    }

    /// Whether `get(format, gzip)` is ready without work (never for a plain variant).
    pub fn is_built(&self, format: Format, gzip: bool) -> bool {
        match (format, gzip) {
            (Format::OpenMetrics, true) => true,
            (Format::Text, true) => self.text_gzip.get().is_some(),
            (_, false) => false,
        }
    }

    /// The body for `format`, gzip-compressed when `gzip`. A gzip variant is built on the
    /// first ask and then kept; a plain one is built for this call (milliseconds for thousands
    /// of queues: call from a blocking-friendly thread; to serve it, prefer
    /// [`Variants::write_plain`], which never holds it whole).
    pub fn get(&self, format: Format, gzip: bool) -> Bytes {
        match (format, gzip) {
            (Format::OpenMetrics, true) => self.openmetrics_gzip.clone(),
            // Converted while decompressing and compressed as converted: neither plain text
            // is kept for it.
            (Format::Text, true) => self
                .text_gzip
                .get_or_init(|| convert_to_text(&self.openmetrics_gzip, GzipWriter::new()).finish())
                .clone(),
            (format, false) => {
                // The plain text is about as long as the OpenMetrics it comes from.
                let size = stated_size(&self.openmetrics_gzip);
                let mut out = Vec::with_capacity(size + size / 32);
                self.write_plain(format, |chunk| {
                    out.extend_from_slice(&chunk);
                    true
                });
                Bytes::from(out)
            }
        }
    }
}

/// A `fmt::Write` that gzip-compresses what is written (fast level), buffering small writes,
/// so an exposition is compressed as it is encoded without ever being held uncompressed.
pub struct GzipWriter {
    /// Text not yet handed to the compressor.
    buffer: String,
    /// The compressor and its output.
    encoder: GzEncoder<Vec<u8>>,
}

impl GzipWriter {
    const BUFFER: usize = 64 * 1024;

    /// An empty writer.
    pub fn new() -> Self {
        Self {
            buffer: String::with_capacity(Self::BUFFER),
            encoder: GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::fast()),
        }
    }

    /// The compressed bytes of everything written.
    pub fn finish(mut self) -> Bytes {
        // Writing into a Vec cannot fail.
        let _ = self.encoder.write_all(self.buffer.as_bytes());
        Bytes::from(self.encoder.finish().unwrap_or_default())
    }
}

impl Default for GzipWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for GzipWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buffer.push_str(s);
        if self.buffer.len() >= Self::BUFFER {
            self.encoder
                .write_all(self.buffer.as_bytes())
                .map_err(|_| fmt::Error)?;
            self.buffer.clear();
        }
        Ok(())
    }
}

/// The text format of a gzip-compressed OpenMetrics exposition, converted line by line into
/// `out`.
fn convert_to_text<W: fmt::Write>(data: &[u8], out: W) -> W {
    use std::io::BufRead as _;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, GzDecoder::new(data));
    let mut converter = TextConverter { out, help: None };
    let mut line = String::new();
    // Our own gzip output: cannot be corrupt short of a bug; serve what decodes.
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        converter.line(line.strip_suffix('\n').unwrap_or(&line));
        line.clear();
    }
    converter.flush_help();
    converter.out
}

/// The uncompressed size stated in the trailer of gzip data (`ISIZE`, the size modulo 2^32),
/// bounded by deflate's largest ratio: a capacity, so the plain variants are allocated once
/// at their size instead of growing by doubling (up to twice the memory).
fn stated_size(data: &[u8]) -> usize {
    let stated = data
        .len()
        .checked_sub(4)
        .and_then(|start| <[u8; 4]>::try_from(&data[start..]).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize);
    stated.min(data.len().saturating_mul(1032))
}

/// Converts prometheus-client's OpenMetrics output to the text format 0.0.4: `# EOF` and
/// `# UNIT` lines go; a counter's `HELP`/`TYPE` name its `_total` samples; an info family
/// becomes a gauge named `…_info`; `\"` in HELP (not an escape in 0.0.4) becomes `"`.
pub fn openmetrics_to_text(openmetrics: &[u8]) -> String {
    let mut converter = TextConverter {
        out: String::new(),
        help: None,
    };
    for line in String::from_utf8_lossy(openmetrics).lines() {
        converter.line(line);
    }
    converter.flush_help();
    converter.out
}

/// Size of the chunks a plain body is written in.
const CHUNK: usize = 64 * 1024;

impl Variants {
    /// Writes the uncompressed body of `format` to `sink` in chunks of about 64 KiB as it is
    /// decompressed (and, for the text format, converted), so nothing of the exposition's size
    /// is held. Stops decompressing once `sink` returns `false` (the client went away); a text
    /// conversion then finishes its input without writing. Blocking work (milliseconds per MB).
    pub fn write_plain(&self, format: Format, sink: impl FnMut(Bytes) -> bool) {
        let mut out = ChunkWriter {
            buffer: Vec::with_capacity(CHUNK),
            sink,
            open: true,
        };
        match format {
            Format::OpenMetrics => {
                let mut decoder = GzDecoder::new(&self.openmetrics_gzip[..]);
                let mut buf = vec![0u8; CHUNK];
                // Our own gzip output: cannot be corrupt short of a bug; serve what decodes.
                while let Ok(n @ 1..) = decoder.read(&mut buf) {
                    out.push(&buf[..n]);
                    if !out.open {
                        return;
                    }
                }
                out.flush();
            }
            Format::Text => convert_to_text(&self.openmetrics_gzip, &mut out).flush(),
        }
    }
}

/// Collects written bytes into chunks of about [`CHUNK`] bytes and hands each to `sink`;
/// after `sink` returned `false` it drops what is written (`open` is then false).
struct ChunkWriter<F> {
    /// Bytes not yet handed over.
    buffer: Vec<u8>,
    /// Takes each chunk; `false`: take no more.
    sink: F,
    /// Whether `sink` still takes chunks.
    open: bool,
}

impl<F: FnMut(Bytes) -> bool> ChunkWriter<F> {
    /// Appends `bytes`, handing over a chunk once [`CHUNK`] bytes are buffered.
    fn push(&mut self, bytes: &[u8]) {
        if !self.open {
            return;
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush();
        }
    }

    /// Hands over what is buffered, if anything.
    fn flush(&mut self) {
        if self.open && !self.buffer.is_empty() {
            let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
            self.open = (self.sink)(Bytes::from(chunk));
        }
    }
}

impl<F: FnMut(Bytes) -> bool> fmt::Write for &mut ChunkWriter<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        if self.open { Ok(()) } else { Err(fmt::Error) }
    }
}

/// Line-by-line OpenMetrics → text 0.0.4 conversion. prometheus-client writes `HELP` right
/// before `TYPE`, so a `HELP` line is held until the `TYPE` line names the kind.
struct TextConverter<W> {
    /// Where the converted text goes (a string, or a [`GzipWriter`]).
    out: W,
    /// A `HELP` line waiting for its `TYPE`: (name, help).
    help: Option<(String, String)>,
}

impl<W: fmt::Write> TextConverter<W> {
    /// Converts one line (without its newline). Writing to a string or a [`GzipWriter`]
    /// does not fail.
    fn line(&mut self, line: &str) {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            return;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            self.flush_help();
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            self.help = Some((name.to_owned(), help.replace("\\\"", "\"")));
            return;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                other => (name.to_owned(), other),
            };
            if let Some((_, help)) = self.help.take() {
                let _ = writeln!(self.out, "# HELP {name} {help}");
            }
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
            return;
        }
        self.flush_help();
        let _ = self.out.write_str(line);
        let _ = self.out.write_char('\n');
    }

    /// A `HELP` without a `TYPE` (not written by prometheus-client) is kept as is.
    fn flush_help(&mut self) {
        if let Some((name, help)) = self.help.take() {
            let _ = writeln!(self.out, "# HELP {name} {help}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_plain_clients_get_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.2, application/openmetrics-text;q=0.3")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, gzip;q=0.5, deflate")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn converts_counters_infos_and_units() {
        let om = "# HELP a_polls Polls.\n# TYPE a_polls counter\na_polls_total 3\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # HELP a_mem_bytes Memory \\\"used\\\".\n# TYPE a_mem_bytes gauge\n# UNIT a_mem_bytes bytes\na_mem_bytes{node=\"n\"} 5\n# EOF\n";
        let text = openmetrics_to_text(om.as_bytes());
        assert_eq!(
            text,
            "# HELP a_polls_total Polls.\n# TYPE a_polls_total counter\na_polls_total 3\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
             # HELP a_mem_bytes Memory \"used\".\n# TYPE a_mem_bytes gauge\na_mem_bytes{node=\"n\"} 5\n"
        );
    }

    fn gunzip(data: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(stated_size(data));
        // Our own gzip output: cannot be corrupt short of a bug; serve what decodes.
        let _ = GzDecoder::new(data).read_to_end(&mut out);
        Bytes::from(out)
    }

    fn gunzip_text(data: &[u8]) -> String {
        String::from_utf8(gunzip(data).to_vec()).unwrap()
    }

    #[test]
    fn each_variant_is_built_once_and_gzip_round_trips() {
        let om = "# HELP x X.\n# TYPE x gauge\nx 1\n# EOF\n";
        let mut w = GzipWriter::new();
        fmt::Write::write_str(&mut w, om).unwrap();
        let v = Variants::from_openmetrics_gzip(w.finish());
        assert!(v.is_built(Format::OpenMetrics, true));
        assert!(!v.is_built(Format::OpenMetrics, false));
        assert_eq!(v.get(Format::OpenMetrics, false), om.as_bytes());
        assert!(!v.is_built(Format::Text, true));
        let gz = v.get(Format::Text, true);
        assert!(v.is_built(Format::Text, true));
        assert!(v.get(Format::Text, true).as_ptr() == gz.as_ptr());
        assert_eq!(gunzip_text(&gz), "# HELP x X.\n# TYPE x gauge\nx 1\n");
    }

    #[test]
    fn gzip_writer_handles_more_than_its_buffer() {
        let line = "rabbitmq_queue_messages{vhost=\"/\",queue=\"q\"} 1\n";
        let mut w = GzipWriter::new();
        let mut expected = String::new();
        for _ in 0..5000 {
            fmt::Write::write_str(&mut w, line).unwrap();
            expected.push_str(line);
        }
        assert_eq!(gunzip_text(&w.finish()), expected);
    }

    /// An exposition of `series` gauge lines, gzip-compressed as the encoder writes it.
    fn big_exposition(series: usize) -> (String, Variants) {
        let mut om = String::from(
            "# HELP rabbitmq_queue_messages Messages.\n# TYPE rabbitmq_queue_messages gauge\n",
        );
        for i in 0..series {
            om.push_str(&format!(
                "rabbitmq_queue_messages{{vhost=\"/\",queue=\"q{i}\"}} {i}\n"
            ));
        }
        om.push_str("# EOF\n");
        let mut w = GzipWriter::new();
        fmt::Write::write_str(&mut w, &om).unwrap();
        (om, Variants::from_openmetrics_gzip(w.finish()))
    }

    #[test]
    fn plain_variants_are_written_in_bounded_chunks_and_not_kept() {
        let (om, v) = big_exposition(20_000);
        assert!(om.len() > 4 * CHUNK);
        for (format, expected) in [
            (Format::OpenMetrics, om.clone()),
            (Format::Text, openmetrics_to_text(om.as_bytes())),
        ] {
            let mut chunks = Vec::new();
            v.write_plain(format, |c| {
                chunks.push(c);
                true
            });
            assert!(chunks.len() > 4, "{format:?}: {} chunks", chunks.len());
            // A chunk is handed over once it holds CHUNK bytes; one write adds at most a line
            // (OpenMetrics: one read of at most CHUNK bytes).
            assert!(chunks.iter().all(|c| c.len() < 2 * CHUNK && !c.is_empty()));
            assert_eq!(chunks.concat(), expected.as_bytes(), "{format:?}");
            assert_eq!(v.get(format, false), expected.as_bytes());
            assert!(!v.is_built(format, false));
        }
    }

    #[test]
    fn a_plain_write_stops_when_the_sink_stops_taking() {
        let (_, v) = big_exposition(20_000);
        for format in [Format::OpenMetrics, Format::Text] {
            let mut calls = 0;
            v.write_plain(format, |_| {
                calls += 1;
                calls < 2
            });
            assert_eq!(calls, 2, "{format:?}");
        }
    }
}
