//! The timeouts of a connection under hyper: on the HTTP listener, HTTP/1 keep-alive (the idle
//! timeout between requests, and the header read timeout from the first byte of a request until
//! its head is complete); on both listeners, the bound on a connection's first byte and on a
//! peer that stops reading.
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
//!   response to the first byte of the next request, on a kept-alive connection only. When it
//!   passes, the connection reads as closed by the client: hyper, idle, then closes it cleanly
//!   (TLS `close_notify`, then FIN), between requests, never while one is in flight. A client
//!   sees the close on an idle connection, before it sends (urllib3, Go and hyper's pools check
//!   for it).
//! - **header read** ([`ConnTimeouts::header_read`], `--header-read-timeout`): from the accept
//!   (after the TLS handshake) to the first byte of the connection, then from the first byte of
//!   a request to its complete head (hyper hands the request to the service). A new connection
//!   that sends nothing reads as closed by the client when it passes; a head not complete in
//!   time fails the read, and hyper drops the connection (a slow or stalled head, slowloris).
//! - **write** ([`ConnTimeouts::write`], the request timeout): how long a write (or flush, or
//!   the close) may wait for the peer to make room, in any state, HTTP/2 included. When it
//!   passes, the write fails and hyper drops the connection: a client that asks for a response
//!   and never reads it does not hold the connection. (An HTTP/2 peer that keeps reading but
//!   never opens its flow-control window makes hyper wait without writing: nothing here bounds
//!   that; the request timeout bounds the service only.)
//!
//! # How
//!
//! [`KeepAliveIo`] wraps the connection under hyper and [`Tracked`] wraps the service; they
//! share an [`Activity`]: requests handed to the service (counted when hyper calls it) and
//! requests answered (counted when hyper drops the response body, after writing its last
//! byte). The IO applies the timer of its state when a read finds nothing to read:
//!
//! - first (nothing read yet on the connection): the header read timeout;
//! - idle (a request answered, none in progress, no byte of the next one): the idle timeout;
//! - head (a byte arrived, the head is not complete): the header read timeout;
//! - busy (a request handed over and not answered): none (the request timeout bounds the
//!   service, `middleware.rs`; the write timeout bounds the writing of its response);
//! - HTTP/2 (the connection began with the HTTP/2 preface): none; HTTP/2 has its own pings
//!   (`http_server.rs`).
//!
//! On the gRPC listener (tonic, HTTP/2 only) no service is tracked: a connection is first, then
//! head from its first byte until the HTTP/2 preface is complete, then HTTP/2. A peer that
//! never completes the preface is closed at the header read timeout.
//!
//! A request pipelined behind another, whose first bytes hyper read together with the previous
//! request, is timed from the end of the previous response by the idle timeout (bytes already
//! read cannot be told apart here); with its next byte the header read timeout applies. If the
//! idle timeout passes first, the connection reads as closed, and hyper closes it without
//! answering the bytes it holds (the pipelining client retries, RFC 9112, section 9.3.2).

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
    /// From the accept to the first byte, and from the first byte of a request to its complete
    /// head.
    pub header_read: Duration,
    /// How long a write, flush or shutdown may wait for the peer to read.
    pub write: Duration,
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
    /// Runs while a write waits for the peer (see `stalled`).
    write_timer: Pin<Box<Sleep>>,
    /// Whether the last write, flush or shutdown returned `Pending` (the write timer runs).
    stalled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing read yet on the connection (the header read timer runs).
    First,
    /// Waiting for the first byte of a request after an answer (the idle timer runs).
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
            state: State::First,
            seen_started: 0,
            preface: Preface::Matched(0),
            timer: Box::pin(tokio::time::sleep(timeouts.header_read)),
            write_timer: Box::pin(tokio::time::sleep(timeouts.write)),
            stalled: false,
        }
    }

    /// Applies the write timer to the result of a write, flush or shutdown of the inner IO.
    fn time_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.stalled = false;
            return result;
        }
        if !self.stalled {
            self.stalled = true;
            self.write_timer
                .as_mut()
                .reset(Instant::now() + self.timeouts.write);
        }
        if self.write_timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        debug!(write = ?self.timeouts.write, "peer not reading: connection closed");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer read nothing within the write timeout",
        )))
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
        if matches!(self.state, State::First | State::Idle) {
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
            State::First | State::Idle | State::Head => {}
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
        match this.state {
            State::Idle => {
                debug!(idle = ?this.timeouts.idle, "idle keep-alive connection closed");
                this.state = State::Closed;
                return Poll::Ready(Ok(()));
            }
            State::First => {
                debug!(header_read = ?this.timeouts.header_read, "nothing received on a new connection: closed");
                this.state = State::Closed;
                return Poll::Ready(Ok(()));
            }
            _ => {}
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
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.time_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.time_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.time_write(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.time_write(cx, result)
    }
}

/// tonic reads the peer of a connection from the IO it serves (the gRPC listener).
impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected
    for KeepAliveIo<T>
{
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
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
        write: Duration::from_secs(3600),
    };
    /// Longer than the header read timeout, far shorter than the idle timeout.
    const WAIT: Duration = Duration::from_millis(600);
    /// Far longer than any timeout a test expects to fire; far shorter than the hour of a
    /// timeout it expects not to decide. It only bounds a hang.
    const BOUND: Duration = Duration::from_secs(60);

    fn pair() -> (KeepAliveIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        pair_with(TIMEOUTS)
    }

    fn pair_with(
        timeouts: ConnTimeouts,
    ) -> (KeepAliveIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let io = KeepAliveIo::new(server, activity.clone(), timeouts);
        (io, client, activity)
    }

    #[tokio::test]
    async fn a_new_connection_gets_the_header_read_timeout_for_its_first_byte() {
        // An hour of idle timeout: only the header read timeout can close it within BOUND.
        let (mut io, _client, _) = pair_with(ConnTimeouts {
            idle: Duration::from_secs(3600),
            ..TIMEOUTS
        });
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(BOUND, io.read(&mut buf)).await;
        assert_eq!(
            read.expect("a silent new connection was held past the header read timeout")
                .unwrap(),
            0,
            "a silent new connection reads as closed"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_outlives_the_header_read_timeout_then_reads_as_closed() {
        let (mut io, mut client, activity) = pair();
        let request = b"GET / HTTP/1.1\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut buf = [0u8; 64];
        io.read_exact(&mut buf[..request.len()]).await.unwrap();
        drop(activity.start());
        let read = tokio::time::timeout(WAIT, io.read(&mut buf)).await;
        assert!(read.is_err(), "an idle connection was cut early: {read:?}");
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_fails_the_write_at_the_write_timeout() {
        let (mut io, _client, _) = pair_with(ConnTimeouts {
            write: Duration::from_millis(100),
            ..TIMEOUTS
        });
        // Far more than the pipe holds, and the client reads nothing.
        let response = vec![b'x'; 64 * 1024];
        let written = tokio::time::timeout(BOUND, io.write_all(&response)).await;
        let error = written
            .expect("a write to a peer that never reads was never failed")
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_reading_peer_gets_a_response_larger_than_the_buffers() {
        let (mut io, mut client, _) = pair_with(ConnTimeouts {
            write: Duration::from_secs(30),
            ..TIMEOUTS
        });
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        io.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), 64 * 1024);
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
