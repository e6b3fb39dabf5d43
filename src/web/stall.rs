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
