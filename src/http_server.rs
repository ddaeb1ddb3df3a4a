//! Serving the HTTP listener's connections with hyper: HTTP/1.1 and HTTP/2 on each accepted
//! connection (plain or TLS, from [`crate::listener`]), with the head limits, the HTTP/1 idle
//! and header read timeouts ([`crate::keep_alive`]), each request carrying its connection's
//! [`PeerInfo`], hyper's own HTTP/1 refusals answered with Atlas errors ([`crate::refusals`]),
//! and a graceful end at shutdown.
//!
//! The gRPC listener is served by tonic's own server (in [`crate::app`]); the HTTP/2 protections
//! and keep-alive both share are the constants here. An HTTP/2 connection (gRPC, or REST over
//! h2) has no idle timeout: it stays open while its peer answers the pings sent every
//! [`HTTP2_KEEPALIVE_INTERVAL`] of silence, and is closed when a ping goes unanswered for
//! [`HTTP2_KEEPALIVE_TIMEOUT`].
//!
//! [`PeerInfo`]: crate::listener::PeerInfo

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_stream::StreamExt as _;
use tower::ServiceExt as _;
use tracing::debug;

use crate::keep_alive::{Activity, ConnTimeouts, KeepAliveIo, Tracked};
use crate::listener::Incoming;
use crate::middleware::Limits;
use crate::refusals::{Recorded, RefusalIo, Refusals, RequestLog};

/// The most headers an HTTP/1 request may carry.
const MAX_HTTP1_HEADERS: usize = 100;
/// hyper's floor for its HTTP/1 read buffer: the request head must fit in the buffer.
const MIN_HTTP1_BUF_SIZE: usize = 8192;
/// HTTP/2 streams a client may open and reset before the server answers (rapid reset), on
/// both listeners.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 50;
/// How often idle HTTP/2 connections are pinged, so dead peers are noticed (both listeners).
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long an HTTP/2 ping may go unanswered before the connection is closed (both listeners).
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves HTTP/1.1 and HTTP/2 (hyper) on the gateway's connections, with the head limits and
/// the HTTP/1 timeouts, until `shutdown`; then lets open connections finish their requests.
pub async fn serve<S>(
    mut incoming: Incoming,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<axum::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let max_head_bytes = (limits.max_header_bytes as usize).max(MIN_HTTP1_BUF_SIZE);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // hyper's header read timer would also run while a kept-alive connection waits for its
    // next request: `keep_alive` keeps the two timeouts apart instead.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(max_head_bytes)
        .max_headers(MAX_HTTP1_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let timeouts = ConnTimeouts {
        idle: limits.http_idle_timeout,
        header_read: limits.header_read_timeout,
        write: limits.request_timeout,
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let refusals = Refusals::new(max_head_bytes, MAX_HTTP1_HEADERS);
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = incoming.next() => conn,
            () = &mut shutdown => break,
        };
        let Some(Ok(conn)) = conn else {
            break;
        };
        let peer = conn.peer().clone();
        let service = service.clone().map_request(
            move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(peer.clone());
                request
            },
        );
        // hyper's own answers to requests it cannot parse become Atlas errors (see refusals):
        // the log learns of each request hyper hands to the service, the wrapped connection
        // tells hyper's responses from the service's by it.
        let requests = Arc::new(RequestLog::default());
        // The idle and header read timeouts learn of requests and answers from the service.
        let activity = Arc::new(Activity::default());
        let io = KeepAliveIo::new(conn, activity.clone(), timeouts);
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(RefusalIo::new(io, requests.clone(), refusals.clone())),
                Tracked::new(
                    Recorded::new(
                        hyper_util::service::TowerToHyperService::new(service),
                        requests,
                    ),
                    activity,
                ),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "http connection ended with an error");
            }
        });
    }
    drop(incoming);
    graceful.shutdown().await;
    Ok(())
}
