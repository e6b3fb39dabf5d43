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
