//! The uncompressed `/metrics` body, streamed: a blocking task decompresses (and converts) the
//! exposition chunk by chunk while the client takes it, so no plain copy is ever held (issue
//! #13), and gives up on a client that takes no chunk within a bound, so a client that stops
//! reading cannot hold a blocking thread and its chunks for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::mpsc;

use crate::metrics::Exposition;
use crate::metrics::format::Format;

/// Chunks of a plain `/metrics` body waiting for the client, per request.
const PLAIN_CHUNKS_QUEUED: usize = 4;

/// The uncompressed exposition as a streamed body: decompressed (and converted) off the async
/// workers by [`crate::metrics::format::Variants::write_plain`] while it is sent, at most
/// [`PLAIN_CHUNKS_QUEUED`] chunks of 64 KiB ahead of the client. A client that goes away stops
/// the work; one that takes no chunk for `stall` (the server passes
/// [`crate::web::WRITE_STALL_TIMEOUT`], 30 s) stops it too (logged at debug level), and the
/// body then ends with an error instead of its end, so hyper aborts the connection rather
/// than finish a truncated exposition as if it were whole. No plain copy of the exposition is
/// held (issue #13). Call from within the runtime (it captures the runtime's handle).
pub(super) fn plain_body(
    exposition: Arc<Exposition>,
    format: Format,
    stall: Duration,
) -> axum::body::Body {
    let (tx, rx) = mpsc::channel(PLAIN_CHUNKS_QUEUED);
    let complete = Arc::new(AtomicBool::new(false));
    let written = complete.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut taken = true;
        exposition.variants.write_plain(format, |chunk| {
            taken = hand_over(&runtime, &tx, chunk, stall);
            taken
        });
        if taken {
            written.store(true, Ordering::Release);
        }
    });
    axum::body::Body::new(ChunkBody {
        chunks: rx,
        complete,
    })
}

/// Queues `chunk` for the client, waiting (on `runtime`'s timer, without spinning) at most
/// `stall` for room. `false`: the client went away or took nothing for `stall`; the producer
/// then stops.
fn hand_over(
    runtime: &tokio::runtime::Handle,
    tx: &mpsc::Sender<Bytes>,
    chunk: Bytes,
    stall: Duration,
) -> bool {
    let chunk = match tx.try_send(chunk) {
        Ok(()) => return true,
        Err(mpsc::error::TrySendError::Closed(_)) => return false,
        Err(mpsc::error::TrySendError::Full(chunk)) => chunk,
    };
    match runtime.block_on(tokio::time::timeout(stall, tx.send(chunk))) {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::debug!(
                limit = %humantime::format_duration(stall),
                "plain /metrics body abandoned: the client took no chunk within the write timeout"
            );
            false
        }
    }
}

/// Why a plain `/metrics` body stopped before the exposition's end: its producer gave up (the
/// client took no chunk in time) or failed. Yielded as the body's last frame so that hyper
/// aborts the connection instead of ending the chunked body as if complete.
#[derive(Debug, thiserror::Error)]
#[error("the plain /metrics body stopped before the end of the exposition")]
pub(super) struct Unfinished;

/// A response body of the chunks a blocking task sends; ends when the task has written the
/// whole exposition, or fails with [`Unfinished`] when it stopped before.
struct ChunkBody {
    /// The chunks, in order; closed when the producer ends.
    chunks: mpsc::Receiver<Bytes>,
    /// Set by the producer once every chunk was queued.
    complete: Arc<AtomicBool>,
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Unfinished;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.chunks.poll_recv(cx).map(|chunk| match chunk {
            Some(c) => Some(Ok(http_body::Frame::data(c))),
            None if self.complete.load(Ordering::Acquire) => None,
            None => Some(Err(Unfinished)),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::http::{AppState, ServerInfo, app};
    use crate::metrics::format::{GzipWriter, Variants};

    /// Longest a test waits for something that must happen (a guard against hanging, not a
    /// measure of speed).
    const GUARD: Duration = Duration::from_secs(60);

    /// An exposition of `series` queue series (about 80 bytes each uncompressed), built as
    /// the sidecar builds one: gzip-compressed OpenMetrics.
    fn exposition(series: usize) -> Arc<Exposition> {
        let mut om = String::from("# TYPE rabbitmq_queue_messages gauge\n");
        for i in 0..series {
            om.push_str(&format!(
                "rabbitmq_queue_messages{{vhost=\"/\",queue=\"orders.eu-west.q{i:08}\"}} {i}\n"
            ));
        }
        om.push_str("# EOF\n");
        let mut gzip = GzipWriter::new();
        std::fmt::Write::write_str(&mut gzip, &om).unwrap();
        Arc::new(Exposition {
            seq: 1,
            variants: Variants::from_openmetrics_gzip(gzip.finish()),
        })
    }

    /// Routes serving `exposition` (nothing else is read by `/metrics`).
    fn state(exposition: Arc<Exposition>) -> AppState {
        AppState {
            snapshots: watch::channel(None).1,
            assessments: watch::channel(None).1,
            audit: None,
            exposition: watch::channel(exposition).1,
            info: watch::channel(Arc::new(ServerInfo {
                target: "http://mq/".into(),
                poll_interval: Duration::from_secs(15),
                admin_api: false,
                ready_max_age: Duration::from_secs(40),
                inhibit_rules: vec![],
            }))
            .1,
            silences: Arc::default(),
            health: crate::supervise::Health::default(),
        }
    }

    /// A real server (the sidecar's accept loop and connection handling) for `exposition`,
    /// closing connections whose writes make no progress for `write_timeout`.
    async fn server(
        exposition: Arc<Exposition>,
        write_timeout: Duration,
    ) -> (SocketAddr, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            crate::web::serve_with_write_timeout(
                listener,
                app(state(exposition)),
                None,
                token,
                write_timeout,
            )
            .await;
        });
        (addr, shutdown)
    }

    /// Waits until only `holders` references to `exposition` remain (the plain body's
    /// producer holds one while it runs); panics after `within`.
    async fn wait_for_holders(exposition: &Arc<Exposition>, holders: usize, within: Duration) {
        let started = std::time::Instant::now();
        while Arc::strong_count(exposition) != holders {
            assert!(
                started.elapsed() < within,
                "{} holders of the exposition, expected {holders}",
                Arc::strong_count(exposition)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A response as a client reads it: the head, the chunked body decoded, and whether the
    /// body's last (zero-length) chunk arrived.
    struct Read {
        head: String,
        body: Vec<u8>,
        complete: bool,
    }

    /// Decodes `raw`, an HTTP/1.1 response with a chunked body, as far as it goes.
    fn decode(raw: &[u8]) -> Read {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        let mut rest = &raw[end + 4..];
        let mut body = Vec::new();
        loop {
            let Some(line) = rest.windows(2).position(|w| w == b"\r\n") else {
                return Read {
                    head,
                    body,
                    complete: false,
                };
            };
            let size = std::str::from_utf8(&rest[..line]).unwrap();
            let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
            rest = &rest[line + 2..];
            if size == 0 {
                return Read {
                    head,
                    body,
                    complete: true,
                };
            }
            if rest.len() < size + 2 {
                body.extend_from_slice(rest);
                return Read {
                    head,
                    body,
                    complete: false,
                };
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }

    /// Reads until the server closes the connection (EOF or reset); panics after [`GUARD`].
    async fn read_to_close(stream: &mut tokio::net::TcpStream, raw: &mut Vec<u8>) {
        let read = async {
            let mut buf = vec![0u8; 64 * 1024];
            // A reset also ends the response.
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                raw.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(GUARD, read)
            .await
            .expect("the server closes the connection");
    }

    /// A plain body whose chunks nobody takes: the producer queues what fits, gives up after
    /// its bound (it no longer holds the exposition) and the body ends with an error after
    /// the queued chunks, never with an end that would make the truncated exposition look
    /// complete.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_producer_whose_chunks_are_not_taken_gives_up_and_the_body_ends_in_error() {
        let exposition = exposition(100_000);
        let expected = exposition.variants.get(Format::OpenMetrics, false);
        let mut body = plain_body(
            exposition.clone(),
            Format::OpenMetrics,
            Duration::from_millis(100),
        );
        wait_for_holders(&exposition, 1, GUARD).await;
        let mut taken = Vec::new();
        let end = loop {
            match body.frame().await {
                Some(Ok(frame)) => taken.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        let error = end
            .unwrap_or_else(|| panic!("the body ended as if complete after {} bytes", taken.len()));
        assert!(
            error.to_string().contains("stopped before the end"),
            "{error}"
        );
        assert!(!taken.is_empty() && taken.len() < expected.len());
        assert_eq!(&taken[..], &expected[..taken.len()]);
    }

    /// A client that asks for the plain exposition (several MB, more than the socket buffers
    /// hold) and stops reading after the response head: the server closes the connection after
    /// the write bound, the producer stops (it no longer holds the exposition), and what the
    /// client reads afterwards is a truncated chunked body without its last chunk, never a
    /// complete-looking one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_disconnected_and_frees_the_producer() {
        let exposition = exposition(100_000);
        let expected = exposition.variants.get(Format::Text, false);
        assert!(expected.len() > 6_000_000, "{} bytes", expected.len());
        let (addr, shutdown) = server(exposition.clone(), Duration::from_millis(300)).await;
        // Read the head only: the response has started (its producer holds the exposition).
        let (mut stream, mut raw) =
            crate::web::stall_testing::head_then_stop_reading(addr, "/metrics").await;
        assert!(raw.starts_with(b"HTTP/1.1 200"), "{raw:?}");
        // Then nothing: after the write bound (300 ms) the connection is closed, which stops
        // the producer. Waited for less than the producer's own bound (30 s), so that it is the
        // connection's close that freed it.
        wait_for_holders(&exposition, 2, crate::web::WRITE_STALL_TIMEOUT / 2).await;
        read_to_close(&mut stream, &mut raw).await;
        let read = decode(&raw);
        assert!(
            !read.complete,
            "a complete-looking body of {} bytes",
            read.body.len()
        );
        assert!(read.body.len() < expected.len());
        assert_eq!(&read.body[..], &expected[..read.body.len()]);
        shutdown.cancel();
    }

    /// A client that reads normally gets the whole plain exposition, in both formats, byte for
    /// byte equal to the variant built in one piece, with the chunked body's end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reading_client_gets_the_whole_plain_exposition() {
        let exposition = exposition(100_000);
        let (addr, shutdown) = server(exposition.clone(), crate::web::WRITE_STALL_TIMEOUT).await;
        for (format, accept) in [
            (Format::Text, "text/plain"),
            (Format::OpenMetrics, "application/openmetrics-text"),
        ] {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET /metrics HTTP/1.1\r\nHost: sidecar\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            read_to_close(&mut stream, &mut raw).await;
            let read = decode(&raw);
            assert!(read.head.starts_with("http/1.1 200"), "{}", read.head);
            assert!(
                read.complete,
                "{format:?}: body cut after {} bytes",
                read.body.len()
            );
            let whole = exposition.variants.get(format, false);
            assert!(read.body == whole, "{format:?}: the bodies differ");
        }
        shutdown.cancel();
    }
}
