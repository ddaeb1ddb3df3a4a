//! Tower layers shared by both servers: a global concurrency limit that sheds load instead of
//! queueing, a per-request timeout, and the layer that turns their errors into each protocol's
//! answer (REST: an Atlas error body; gRPC: a status with `google.rpc` details).
//!
//! Order, outermost first (each `.layer()` of a `ServiceBuilder` wraps the ones after it):
//! [`LimitErrorsLayer`] → [`AdmissionLayer`] → `tower::timeout::TimeoutLayer` → the service. So
//! a shed request never starts its timer, and both errors reach the renderer.
//!
//! Errors inside the stack are `Box<dyn Error + Send + Sync>`, with one named type per cause
//! ([`OverloadedError`], tower's `Elapsed`), found again with [`is_caused_by`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::{Layer, Service};
use tracing::{debug, error};

/// A boxed error inside the stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an overloaded client is told to wait (`Retry-After`).
pub const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The gRPC path prefix never shed: health must answer while the server is busy.
const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// The limits of both listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests in progress at once over both listeners; more are refused (503/UNAVAILABLE).
    pub max_concurrent_requests: usize,
    /// Open connections per listener; more are closed as they are accepted (`listener.rs`).
    pub max_connections: usize,
    /// Open connections per client address (IPv4, or IPv6 /64) and listener.
    pub max_connections_per_address: usize,
    /// The longest a request may run (504/DEADLINE_EXCEEDED).
    pub request_timeout: Duration,
    /// The longest a client may take to send a request's head (HTTP/1, from its first byte)
    /// or a TLS handshake.
    pub header_read_timeout: Duration,
    /// How long a kept-alive HTTP/1 connection may wait for the first byte of its next request
    /// (`keep_alive.rs`).
    pub http_idle_timeout: Duration,
    /// The largest request head: HTTP/1 header bytes, HTTP/2 header list size.
    pub max_header_bytes: u32,
    /// Concurrent HTTP/2 streams per connection.
    pub http2_max_concurrent_streams: u32,
}

/// Why a request was refused by a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitError {
    /// The global concurrency limit is reached: 503 / UNAVAILABLE, retry after a second.
    Overloaded,
    /// The request took longer than the timeout: 504 / DEADLINE_EXCEEDED.
    TimedOut,
    /// Any other error of the stack: 500 / INTERNAL (logged).
    Internal,
}

/// Renders a [`LimitError`] as a protocol's response.
pub trait RenderLimitError<B>: Clone + Send + Sync + 'static {
    /// Builds the response for `error` to a request to `path`.
    fn render(&self, error: LimitError, path: &str) -> http::Response<B>;
}

/// The global concurrency limit refused the request.
#[derive(Clone, Copy, Debug, Default, thiserror::Error)]
#[error("server overloaded")]
pub struct OverloadedError;

/// Whether `error` or one of its sources is an `E`.
pub fn is_caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<E>() {
            return true;
        }
        current = error.source();
    }
    false
}

// === impl Limits ===

impl Limits {
    /// The bounds on each listener's open connections.
    pub fn connections(&self) -> crate::listener::ConnectionLimits {
        crate::listener::ConnectionLimits {
            total: self.max_connections,
            per_address: self.max_connections_per_address,
        }
    }
}

impl Default for Limits {
    /// The command line's defaults (`crate::config`'s `DEFAULT_*`).
    fn default() -> Self {
        use crate::config::{
            DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_HTTP_IDLE_TIMEOUT,
            DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_CONCURRENT_REQUESTS,
            DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_MAX_HEADER_BYTES,
            DEFAULT_REQUEST_TIMEOUT, default_duration,
        };
        Self {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            request_timeout: default_duration(DEFAULT_REQUEST_TIMEOUT),
            header_read_timeout: default_duration(DEFAULT_HEADER_READ_TIMEOUT),
            http_idle_timeout: default_duration(DEFAULT_HTTP_IDLE_TIMEOUT),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
        }
    }
}

// === Admission ===

/// Admits a request only if a permit of the shared semaphore is free right now; otherwise fails
/// it with [`OverloadedError`] at once (load shedding, no queue). Every clone shares the
/// semaphore, so the limit is global across connections and listeners.
#[derive(Clone, Debug)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
}

/// The service of [`AdmissionLayer`].
#[derive(Clone, Debug)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl AdmissionLayer {
    /// A layer drawing on `permits`.
    pub fn new(permits: Arc<Semaphore>) -> Self {
        Self { permits }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            permits: self.permits.clone(),
        }
    }
}

impl<S, B> Service<http::Request<B>> for Admission<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let permit = if request.uri().path().starts_with(EXEMPT_PREFIX) {
            None
        } else {
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Box::pin(async { Err(OverloadedError.into()) }),
            }
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            drop(permit);
            result
        })
    }
}

// === GrpcDeadline ===

/// The longest head start taken on a caller's `grpc-timeout` (see [`GrpcDeadlineLayer`]).
const MAX_DEADLINE_LEAD: Duration = Duration::from_millis(50);
/// The shortest head start, when the timeout allows it.
const MIN_DEADLINE_LEAD: Duration = Duration::from_millis(5);

/// The request timeout of the gRPC server, shortened to the caller's deadline: a call runs at
/// most `max`, and at most its `grpc-timeout` header (gRPC over HTTP/2: 1–8 digits and a unit
/// `H`, `M`, `S`, `m`, `u` or `n`), minus a head start. A call past either fails with tower's
/// `Elapsed`, which [`LimitErrorsLayer`] renders as `DEADLINE_EXCEEDED` with the Atlas
/// `TIMEOUT` error.
///
/// Why a head start of a tenth of the timeout (5 to 50 ms): tonic's server honours
/// `grpc-timeout` too, outside every layer of ours, with a timer of the same length started
/// just before ours, and answers `CANCELLED` ("Timeout expired", bare, no Atlas error) when it
/// fires first. The gRPC protocol says a call past its deadline ends in `DEADLINE_EXCEEDED`.
/// Firing a little earlier makes ours the answer, and lets it reach the caller while the caller
/// still waits for it rather than after it gave up.
#[derive(Clone, Copy, Debug)]
pub struct GrpcDeadlineLayer {
    max: Duration,
}

/// The service of [`GrpcDeadlineLayer`].
#[derive(Clone, Debug)]
pub struct GrpcDeadline<S> {
    inner: S,
    max: Duration,
}

impl GrpcDeadlineLayer {
    /// A layer that lets no call run longer than `max`.
    pub fn new(max: Duration) -> Self {
        Self { max }
    }
}

impl<S> Layer<S> for GrpcDeadlineLayer {
    type Service = GrpcDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcDeadline {
            inner,
            max: self.max,
        }
    }
}

impl<S, B> Service<http::Request<B>> for GrpcDeadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let limit = match request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| parse_grpc_timeout(v.as_bytes()))
        {
            Some(timeout) => self.max.min(timeout.saturating_sub(deadline_lead(timeout))),
            None => self.max,
        };
        // The deadline counts from now, not from the first poll.
        let deadline = tokio::time::Instant::now() + limit;
        let future = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, future).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(tower::timeout::error::Elapsed::new().into()),
            }
        })
    }
}

/// The head start taken on a caller's timeout: a tenth, from 5 to 50 ms.
fn deadline_lead(timeout: Duration) -> Duration {
    (timeout / 10).clamp(MIN_DEADLINE_LEAD, MAX_DEADLINE_LEAD)
}

/// Parses a `grpc-timeout` value; `None` for anything malformed (then only the server's own
/// timeout applies, as in tonic).
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

// === LimitErrors ===

/// Turns the stack's errors into responses rendered by `R`; its error type is `Infallible`.
#[derive(Clone, Debug)]
pub struct LimitErrorsLayer<R> {
    renderer: R,
}

/// The service of [`LimitErrorsLayer`].
#[derive(Clone, Debug)]
pub struct LimitErrors<S, R> {
    inner: S,
    renderer: R,
}

impl<R> LimitErrorsLayer<R> {
    /// A layer rendering with `renderer`.
    pub fn new(renderer: R) -> Self {
        Self { renderer }
    }
}

impl<S, R: Clone> Layer<S> for LimitErrorsLayer<R> {
    type Service = LimitErrors<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitErrors {
            inner,
            renderer: self.renderer.clone(),
        }
    }
}

impl<S, R, B, ResBody> Service<http::Request<B>> for LimitErrors<S, R>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    R: RenderLimitError<ResBody>,
{
    type Response = http::Response<ResBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner services of both servers are always ready (admission decides in `call`);
        // an error here would be a bug, answered per request below.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let renderer = self.renderer.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            match future.await {
                Ok(response) => Ok(response),
                Err(error) => {
                    let error: BoxError = error.into();
                    let kind = classify(error.as_ref());
                    match kind {
                        LimitError::Overloaded => debug!(%path, "overloaded: request shed"),
                        LimitError::TimedOut => debug!(%path, "request timed out"),
                        LimitError::Internal => error!(%path, %error, "request failed"),
                    }
                    Ok(renderer.render(kind, &path))
                }
            }
        })
    }
}

fn classify(error: &(dyn std::error::Error + 'static)) -> LimitError {
    if is_caused_by::<OverloadedError>(error) {
        LimitError::Overloaded
    } else if is_caused_by::<tower::timeout::error::Elapsed>(error) {
        LimitError::TimedOut
    } else {
        LimitError::Internal
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;

    #[derive(Clone)]
    struct Text;

    impl RenderLimitError<String> for Text {
        fn render(&self, error: LimitError, path: &str) -> http::Response<String> {
            http::Response::new(format!("{error:?} {path}"))
        }
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn sheds_beyond_the_global_limit_and_exempts_health() {
        let permits = Arc::new(Semaphore::new(1));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let stack = ServiceBuilder::new()
            .layer(LimitErrorsLayer::new(Text))
            .layer(AdmissionLayer::new(permits.clone()))
            .service_fn(move |_: http::Request<()>| {
                let mut release = release_rx.clone();
                async move {
                    let _ = release.wait_for(|r| *r).await;
                    Ok::<_, Infallible>(http::Response::new("ok".to_owned()))
                }
            });
        // One request holds the only permit; a second, through another clone, is shed.
        let first = tokio::spawn(stack.clone().oneshot(request("/a")));
        while permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let shed = stack.clone().oneshot(request("/b")).await.unwrap();
        assert_eq!(shed.body(), "Overloaded /b");
        let health = tokio::spawn(
            stack
                .clone()
                .oneshot(request("/grpc.health.v1.Health/Check")),
        );
        release_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap().body(), "ok");
        assert_eq!(health.await.unwrap().unwrap().body(), "ok");
        assert_eq!(permits.available_permits(), 1);
    }

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout(b"10S"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_grpc_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_grpc_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"1.5S",
            b"-1S",
            b"10s",
            b"10",
            b"\xff1S",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(deadline_lead(Duration::from_millis(20)), MIN_DEADLINE_LEAD);
        assert_eq!(
            deadline_lead(Duration::from_millis(200)),
            Duration::from_millis(20)
        );
        assert_eq!(deadline_lead(Duration::from_secs(60)), MAX_DEADLINE_LEAD);
    }

    #[tokio::test]
    async fn a_callers_deadline_shortens_the_timeout() {
        let stack = ServiceBuilder::new()
            .layer(LimitErrorsLayer::new(Text))
            .layer(GrpcDeadlineLayer::new(Duration::from_secs(3600)))
            .service_fn(|_: http::Request<()>| async {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(http::Response::new(String::new()))
            });
        let request = http::Request::builder()
            .uri("/slow")
            .header("grpc-timeout", "20m")
            .body(())
            .unwrap();
        let response = stack.clone().oneshot(request).await.unwrap();
        assert_eq!(response.body(), "TimedOut /slow");
        // A malformed header leaves the server's own timeout (here: the call stays pending).
        let request = http::Request::builder()
            .uri("/slow")
            .header("grpc-timeout", "soon")
            .body(())
            .unwrap();
        let pending =
            tokio::time::timeout(Duration::from_millis(100), stack.oneshot(request)).await;
        assert!(pending.is_err());
    }

    #[tokio::test]
    async fn timeouts_are_rendered() {
        let stack = ServiceBuilder::new()
            .layer(LimitErrorsLayer::new(Text))
            .layer(AdmissionLayer::new(Arc::new(Semaphore::new(4))))
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(10)))
            .service_fn(|_: http::Request<()>| async {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(http::Response::new(String::new()))
            });
        let response = stack.oneshot(request("/slow")).await.unwrap();
        assert_eq!(response.body(), "TimedOut /slow");
    }
}
