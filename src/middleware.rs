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
    /// The longest a request may run (504/DEADLINE_EXCEEDED).
    pub request_timeout: Duration,
    /// The longest a client may take to send a request's headers (HTTP/1) or a TLS handshake.
    pub header_read_timeout: Duration,
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

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 64,
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            http2_max_concurrent_streams: 100,
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
