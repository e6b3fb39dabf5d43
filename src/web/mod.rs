//! The HTTP(S) server under the routes of [`crate::http`]: the accept loop with a connection
//! limit, TLS (rustls) and its handshake timeout, HTTP/1.1 with a header-read timeout, the
//! [`auth`] gate (extra headers, basic auth), and graceful shutdown. Its settings come from the
//! exporter-toolkit web configuration file ([`config`]).
//!
//! Bounds, so that nothing a client does holds resources for long:
//! - at most [`MAX_CONNECTIONS`] connections at once; further clients wait in the kernel's
//!   accept queue until one closes (as Go's `netutil.LimitListener`);
//! - a TLS handshake must finish within [`TLS_HANDSHAKE_TIMEOUT`];
//! - a request's headers must arrive within [`HEADER_READ_TIMEOUT`] (hyper closes the
//!   connection otherwise; this also ends idle keep-alive connections);
//! - a request is handled within [`crate::http::REQUEST_TIMEOUT`];
//! - a response must be taken: a write that makes no progress for [`WRITE_STALL_TIMEOUT`] closes the
//!   connection (the `stall` module), so a client that stops reading frees what its response holds;
//! - on shutdown, open connections get [`SHUTDOWN_GRACE`] to finish.

pub mod auth;
pub mod config;
pub mod probe;
mod stall;
#[cfg(test)]
pub(crate) use stall::testing as stall_testing;
mod tls;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

pub use config::{WebConfigError, WebFile};

/// The most connections served at once (default; not configurable yet). A Prometheus server
/// or two, probes and a few people need far fewer.
pub const MAX_CONNECTIONS: usize = 256;
/// Time allowed for a client to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish when the server shuts down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest time a client may take no bytes of a response before its connection is closed
/// (the `stall` module): 30 s. Progress (the client taking some bytes) starts it again, so a slow
/// but reading client is served in full. Three times Prometheus' default scrape timeout.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` is cancelled, with TLS and authentication as
/// `web` says (plain HTTP without authentication when `None`). Accept errors (out of file
/// descriptors, a client that went away) are logged and waited out, never fatal.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<&WebFile>,
    shutdown: CancellationToken,
) {
    serve_with_write_timeout(listener, app, web, shutdown, WRITE_STALL_TIMEOUT).await;
}

/// [`serve`] with the write bound `write_timeout` instead of [`WRITE_STALL_TIMEOUT`]: a
/// connection whose response write makes no progress for that long is closed (tests use a
/// short one).
pub async fn serve_with_write_timeout(
    listener: TcpListener,
    app: Router,
    web: Option<&WebFile>,
    shutdown: CancellationToken,
    write_timeout: Duration,
) {
    let gate = Arc::new(auth::Gate::new(
        web.map(|w| w.users.clone()).unwrap_or_default(),
        web.map(|w| w.headers.clone()).unwrap_or_default(),
    ));
    let app = app.layer(axum::middleware::from_fn_with_state(gate, auth::gate));
    let acceptor = web
        .and_then(|w| w.tls.clone())
        .map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "accept failed; retrying in 1s");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => {
                    let io = stall::WriteTimeout::new(stream, write_timeout, peer);
                    serve_connection(io, app, watcher).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            let io = stall::WriteTimeout::new(tls, write_timeout, peer);
                            serve_connection(io, app, watcher).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open after the shutdown grace period; closing them");
    }
}

/// One HTTP/1.1 connection, with the header-read timeout and graceful shutdown (the write
/// bound is `io`'s: [`stall::WriteTimeout`]).
async fn serve_connection<I>(io: I, app: Router, watcher: hyper_util::server::graceful::Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(
        app.map_request(|r: axum::http::Request<Incoming>| r.map(axum::body::Body::new))
            .map_err(|e: Infallible| match e {}),
    );
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Errors of one connection that `accept` reports: not a reason to pause accepting.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
