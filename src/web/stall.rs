//! The write bound of a connection: [`WriteTimeout`] wraps a connection's stream and fails a
//! write (or flush, or shutdown) that has waited longer than its bound without the client
//! taking any bytes, so a client that stops reading a response cannot hold the connection,
//! its response body and what the body holds (the plain `/metrics` body's blocking producer
//! and chunks, an alert list's assessment) for ever.
//!
//! The bound is on the absence of progress, not on the response's length: a slow client that
//! keeps taking bytes is served, however long the whole response takes. hyper answers the
//! error by dropping the connection without the chunked body's last chunk, so a client that
//! reads later sees a truncated response (curl: "transfer closed with outstanding read data
//! remaining"), never one that looks complete.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A connection's stream whose writes fail with [`io::ErrorKind::TimedOut`] after `limit` of
/// no progress. Reads pass through unchanged (the header-read timeout bounds those).
pub(super) struct WriteTimeout<I> {
    /// The connection's stream (TCP or TLS).
    io: I,
    /// Longest wait of a write, flush or shutdown that makes no progress.
    limit: Duration,
    /// The client's address, for the log line.
    peer: SocketAddr,
    /// The deadline of the write that is waiting, created at the first wait and then reused.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether a write is waiting (`sleep` then holds its deadline).
    armed: bool,
}

impl<I> WriteTimeout<I> {
    /// Wraps `io`, the connection from `peer`, with the write bound `limit`.
    pub(super) fn new(io: I, limit: Duration, peer: SocketAddr) -> Self {
        WriteTimeout {
            io,
            limit,
            peer,
            sleep: None,
            armed: false,
        }
    }

    /// Judges the outcome of a write-side call: any answer but `Pending` is progress (the
    /// bound starts again at the next wait); a `Pending` starts the bound, or, once the bound
    /// has passed since the wait began, becomes a `TimedOut` error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let deadline = Instant::now() + self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::debug!(
                    peer = %self.peer,
                    limit = %humantime::format_duration(self.limit),
                    "closing the connection: the client took no response bytes within the write timeout"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client took no response bytes for {}",
                        humantime::format_duration(self.limit)
                    ),
                )))
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteTimeout<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

/// Test clients of the write bound.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// A client that sends `GET {path}` to `addr` with a 4 KiB receive buffer, reads the
    /// response head (up to its blank line) and then nothing more: returns the connection and
    /// the head's bytes. Panics when the connection ends before the head is complete.
    pub(crate) async fn head_then_stop_reading(
        addr: SocketAddr,
        path: &str,
    ) -> (TcpStream, Vec<u8>) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: sidecar\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{raw:?}");
            raw.push(byte[0]);
        }
        (stream, raw)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Bytes;
    use tokio::io::AsyncReadExt as _;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Bytes of the `/big` response: far more than a connection's socket buffers hold.
    const BIG: usize = 16 * 1024 * 1024;

    /// A streamed body of [`BIG`] zero bytes in 64 KiB chunks, produced on demand as the
    /// alert list is; counted in `live` until hyper drops it.
    struct Zeros {
        /// Bytes still to send.
        left: usize,
        /// Bodies not dropped yet.
        live: Arc<AtomicUsize>,
    }

    impl Zeros {
        /// A new body, counted in `live`.
        fn new(live: Arc<AtomicUsize>) -> Self {
            live.fetch_add(1, Ordering::SeqCst);
            Zeros { left: BIG, live }
        }
    }

    impl Drop for Zeros {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl http_body::Body for Zeros {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let n = self.left.min(64 * 1024);
            self.left -= n;
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![0u8; n])))))
        }
    }

    /// A client that stops reading a response whose body nothing else bounds (produced on
    /// demand, no timer of its own) is disconnected after the write bound: the connection
    /// lets the body go without the client reading anything more, and what the client reads
    /// afterwards ends before the chunked body's last chunk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_disconnected_after_the_write_bound() {
        let live = Arc::new(AtomicUsize::new(0));
        let counted = live.clone();
        let app = axum::Router::new().route(
            "/big",
            axum::routing::get(move || {
                let live = counted.clone();
                async move { axum::body::Body::new(Zeros::new(live)) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            super::super::serve_with_write_timeout(
                listener,
                app,
                None,
                token,
                Duration::from_millis(300),
            )
            .await;
        });
        let (mut stream, raw) = testing::head_then_stop_reading(addr, "/big").await;
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        // The head came, so the body exists; it is held while the response is being written:
        // with nothing read, only the write bound ends that. (Guard against hanging only.)
        let started = std::time::Instant::now();
        while live.load(Ordering::SeqCst) > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the body is still held"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            let mut buf = vec![0u8; 64 * 1024];
            // A reset also ends the response.
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                rest.extend_from_slice(&buf[..n]);
            }
        });
        read.await.expect("the server closed the connection");
        assert!(rest.len() < BIG, "{} bytes", rest.len());
        assert!(!rest.ends_with(b"\r\n0\r\n\r\n"), "a complete chunked body");
        shutdown.cancel();
        server.await.unwrap();
    }
}
