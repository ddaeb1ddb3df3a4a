//! Which HTTP/1 requests of a connection hyper handed to the service: a response head that
//! answers none of them was written by hyper itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::{Method, Version};

/// The HTTP/1 requests of one connection that hyper handed to the service and whose response
/// head has not been written yet (in HTTP/1, at most a few: responses go out in order).
#[derive(Debug, Default)]
pub struct RequestLog {
    pending: Mutex<VecDeque<RequestKind>>,
}

/// What of a request decides how its response is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RequestKind {
    /// `HEAD`: the response has no body whatever its headers say.
    Head,
    /// `CONNECT`: a 2xx response turns the connection into a tunnel.
    Connect,
    /// Any other method.
    Other,
}

/// A hyper service that records each request in a [`RequestLog`] as hyper dispatches it:
/// synchronously, before any byte of its response can be written.
#[derive(Clone, Debug)]
pub struct Recorded<S> {
    inner: S,
    log: Arc<RequestLog>,
}

// === impl RequestLog ===

impl RequestLog {
    /// Records a request hyper hands to the service (HTTP/2 requests are not followed).
    pub fn record<B>(&self, request: &http::Request<B>) {
        let version = request.version();
        if version != Version::HTTP_09 && version != Version::HTTP_10 && version != Version::HTTP_11
        {
            return;
        }
        let kind = match *request.method() {
            Method::HEAD => RequestKind::Head,
            Method::CONNECT => RequestKind::Connect,
            _ => RequestKind::Other,
        };
        self.lock().push_back(kind);
    }

    /// The oldest request not answered yet, now answered; `None`: no request is waiting.
    pub(super) fn answer(&self) -> Option<RequestKind> {
        self.lock().pop_front()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<RequestKind>> {
        // A queue of plain values: a panic elsewhere leaves nothing half-updated.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Recorded ===

impl<S> Recorded<S> {
    /// Wraps `inner`, recording into `log`.
    pub fn new(inner: S, log: Arc<RequestLog>) -> Self {
        Self { inner, log }
    }
}

impl<S, B> hyper::service::Service<http::Request<B>> for Recorded<S>
where
    S: hyper::service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: http::Request<B>) -> Self::Future {
        self.log.record(&request);
        self.inner.call(request)
    }
}
