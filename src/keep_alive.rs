//! HTTP/1 keep-alive on the HTTP listener: the idle timeout between requests, and the header
//! read timeout from the first byte of a request until its head is complete.
//!
//! # Why not hyper's `header_read_timeout`
//!
//! hyper (1.x, `proto/h1/conn.rs`) starts its header read timer when it begins waiting for a
//! request head, which on a kept-alive connection is as soon as the previous response is
//! written: the same timer bounds the idle wait and the head. A client whose pool kept a
//! connection for longer than the timer then found it closed ("Remote end closed connection
//! without response"). hyper has no separate idle timeout (hyper pull request #3743 proposed
//! one and was closed) and hyper-util has none either, so the two timeouts are kept here, with
//! hyper's disabled (`src/http_server.rs`):
//!
//! - **idle** ([`ConnTimeouts::idle`], `--http-idle-timeout`): from the end of the last
//!   response (or from the accept) to the first byte of the next request. When it passes, the
//!   connection reads as closed by the client: hyper, idle, then closes it cleanly (TLS
//!   `close_notify`, then FIN), between requests, never while one is in flight. A client sees
//!   the close on an idle connection, before it sends (urllib3, Go and hyper's pools check for
//!   it).
//! - **header read** ([`ConnTimeouts::header_read`], `--header-read-timeout`): from the first
//!   byte of a request to its complete head (hyper hands the request to the service). When it
//!   passes, the read fails and hyper drops the connection (a slow or stalled head, slowloris).
//!
//! # How
//!
//! [`KeepAliveIo`] wraps the connection under hyper and [`Tracked`] wraps the service; they
//! share an [`Activity`]: requests handed to the service (counted when hyper calls it) and
//! requests answered (counted when hyper drops the response body, after writing its last
//! byte). The IO applies the timer of its state when a read finds nothing to read:
//!
//! - idle (no request in progress, no byte of the next one): the idle timeout;
//! - head (a byte arrived, the head is not complete): the header read timeout;
//! - busy (a request handed over and not answered): none (the request timeout bounds the
//!   service, `middleware.rs`);
//! - HTTP/2 (the connection began with the HTTP/2 preface): none; HTTP/2 has its own pings
//!   (`http_server.rs`).
//!
//! A request pipelined behind another, whose first bytes hyper read together with the previous
//! request, is timed from the end of the previous response by the idle timeout (bytes already
//! read cannot be told apart here); with its next byte the header read timeout applies.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tracing::debug;

/// The first bytes of every HTTP/2 connection (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The two timeouts of a kept-alive HTTP/1 connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// From the end of a response (or the accept) to the first byte of the next request.
    pub idle: Duration,
    /// From the first byte of a request to its complete head.
    pub header_read: Duration,
}

/// What the IO and the service of one connection share: how many requests hyper handed to the
/// service, and how many of them are answered.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// The connection task's waker, woken when a request is answered: hyper may be waiting on
    /// the socket, and the idle timer must start.
    waker: Mutex<Option<Waker>>,
}

/// A connection whose reads apply the idle and header read timeouts (see the module
/// documentation).
#[derive(Debug)]
pub struct KeepAliveIo<T> {
    inner: T,
    activity: Arc<Activity>,
    timeouts: ConnTimeouts,
    state: State,
    /// The requests handed to the service when the state last changed.
    seen_started: u64,
    /// How many bytes of the HTTP/2 preface the connection began with, until it is decided.
    preface: Preface,
    timer: Pin<Box<Sleep>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the first byte of a request (the idle timer runs).
    Idle,
    /// A request's first bytes arrived, its head is not complete (the header read timer runs).
    Head,
    /// Requests handed to the service and not answered yet (no timer).
    Busy,
    /// An HTTP/2 connection: passed through.
    Http2,
    /// The idle timeout passed: reads end (hyper then closes the connection).
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preface {
    /// This many bytes matched the preface so far.
    Matched(usize),
    /// Decided: HTTP/1 (or not HTTP/2 at least).
    NotHttp2,
}

/// A service counting the requests hyper hands to it and the responses it finished writing.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// A response body that counts its request as answered when hyper drops it.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _answered: Answered,
}

/// Counts a request as answered when dropped (its response written, or the connection gone).
#[derive(Debug)]
struct Answered(Arc<Activity>);

// === impl Activity ===

impl Activity {
    fn start(self: &Arc<Self>) -> Answered {
        self.started.fetch_add(1, Ordering::AcqRel);
        Answered(self.clone())
    }

    fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::AcqRel);
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

// === impl KeepAliveIo ===

impl<T> KeepAliveIo<T> {
    /// Wraps a connection whose service is wrapped by [`Tracked`] with the same `activity`.
    pub fn new(inner: T, activity: Arc<Activity>, timeouts: ConnTimeouts) -> Self {
        Self {
            inner,
            activity,
            timeouts,
            state: State::Idle,
            seen_started: 0,
            preface: Preface::Matched(0),
            timer: Box::pin(tokio::time::sleep(timeouts.idle)),
        }
    }

    /// Moves to the state the shared counts imply.
    fn update_state(&mut self) {
        if matches!(self.state, State::Http2 | State::Closed) {
            return;
        }
        let started = self.activity.started.load(Ordering::Acquire);
        if started != self.seen_started {
            // hyper handed a request (or several) over since: its head is complete.
            self.seen_started = started;
            self.state = State::Busy;
        }
        if self.state == State::Busy && self.activity.finished.load(Ordering::Acquire) == started {
            self.state = State::Idle;
            self.timer
                .as_mut()
                .reset(Instant::now() + self.timeouts.idle);
        }
    }

    /// Notes bytes read: the first of a request starts the header read timer; the preface of
    /// HTTP/2 switches to passing through.
    fn observe(&mut self, bytes: &[u8]) {
        if let Preface::Matched(matched) = self.preface {
            let len = bytes.len().min(HTTP2_PREFACE.len() - matched);
            self.preface = if bytes[..len] != HTTP2_PREFACE[matched..matched + len] {
                Preface::NotHttp2
            } else if matched + len == HTTP2_PREFACE.len() {
                self.state = State::Http2;
                return;
            } else {
                Preface::Matched(matched + len)
            };
        }
        if self.state == State::Idle {
            self.state = State::Head;
            self.timer
                .as_mut()
                .reset(Instant::now() + self.timeouts.header_read);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for KeepAliveIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.update_state();
        match this.state {
            State::Closed => return Poll::Ready(Ok(())),
            State::Http2 => return Pin::new(&mut this.inner).poll_read(cx, buf),
            State::Busy => {
                this.activity.register(cx.waker());
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            State::Idle | State::Head => {}
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.observe(read);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => {}
        }
        // Nothing to read: the state's timer decides.
        this.activity.register(cx.waker());
        if this.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if this.state == State::Idle {
            debug!(idle = ?this.timeouts.idle, "idle keep-alive connection closed");
            this.state = State::Closed;
            return Poll::Ready(Ok(()));
        }
        debug!(header_read = ?this.timeouts.header_read, "request head not complete in time: connection closed");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received within the header read timeout",
        )))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for KeepAliveIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

// === impl Tracked ===

impl<S> Tracked<S> {
    /// Wraps the service of a connection whose IO is a [`KeepAliveIo`] with `activity`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, Req, B> hyper::service::Service<http::Request<Req>> for Tracked<S>
where
    S: hyper::service::Service<http::Request<Req>, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, request: http::Request<Req>) -> Self::Future {
        // Counted before the service runs: the head is complete from here on.
        let answered = self.activity.start();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| TrackedBody {
                inner,
                _answered: answered,
            }))
        })
    }
}

// === impl TrackedBody ===

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Real time, with margins: a timer never fires early, so "still open after a third of a
    //! timeout" holds however slow the machine; nothing here measures speed.

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    use super::*;

    const TIMEOUTS: ConnTimeouts = ConnTimeouts {
        idle: Duration::from_secs(5),
        header_read: Duration::from_millis(100),
    };
    /// Longer than the header read timeout, far shorter than the idle timeout.
    const WAIT: Duration = Duration::from_millis(600);

    fn pair() -> (KeepAliveIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let io = KeepAliveIo::new(server, activity.clone(), TIMEOUTS);
        (io, client, activity)
    }

    #[tokio::test]
    async fn an_idle_connection_outlives_the_header_read_timeout_then_reads_as_closed() {
        let (mut io, _client, _) = pair();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(WAIT, io.read(&mut buf)).await;
        assert!(read.is_err(), "an idle connection was cut early: {read:?}");
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_started_head_is_cut_at_the_header_read_timeout() {
        let (mut io, mut client, _) = pair();
        client.write_all(b"GET / HT").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(io.read(&mut buf).await.unwrap(), 8);
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_request_in_progress_is_not_timed_and_idle_follows_its_answer() {
        let (mut io, mut client, activity) = pair();
        let request = b"GET / HTTP/1.1\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut buf = [0u8; 64];
        io.read_exact(&mut buf[..request.len()]).await.unwrap();
        // hyper hands the request to the service: no header read timer any more.
        let answered = activity.start();
        let read = tokio::time::timeout(WAIT, io.read(&mut buf)).await;
        assert!(
            read.is_err(),
            "a request in progress was timed out: {read:?}"
        );
        // Answered: idle, closed (not failed) at the idle timeout.
        drop(answered);
        let read = tokio::time::timeout(WAIT, io.read(&mut buf)).await;
        assert!(read.is_err(), "an idle connection was cut early: {read:?}");
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn http2_passes_through() {
        let (mut io, mut client, _) = pair();
        client.write_all(HTTP2_PREFACE).await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), HTTP2_PREFACE.len());
        let read = tokio::time::timeout(WAIT, io.read(&mut buf)).await;
        assert!(
            read.is_err(),
            "an HTTP/2 connection was timed out: {read:?}"
        );
    }
}
