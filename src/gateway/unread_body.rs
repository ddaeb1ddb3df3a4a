//! `Connection: close` on an HTTP/1 response to a request whose body the gateway did not read
//! to its end (a Digest challenge, a refused `Content-Length`, any error answered before the
//! body extractor ran).
//!
//! hyper (1.x, `proto/h1/conn.rs`, `poll_drain_or_close_read`) keeps such a connection only if
//! the rest of the body is already in its buffer when the response is done; otherwise it
//! closes the connection after the response, without saying so in it. Python's `http.client`
//! sends a request's head and body in two writes, so a body often arrives after the head: a
//! Digest client (Python `requests`, and the Atlas clients built on it) gets its 401 on a
//! connection about to close, puts it back in its pool, and when its retry with credentials
//! goes out before the close is seen (a loaded machine), fails with "Remote end closed
//! connection without response". Saying `Connection: close` makes the client open a new
//! connection for the retry (RFC 9112, section 9.6), and costs nothing: hyper closes these
//! connections anyway. HTTP/2 has no such header and no such problem (streams end alone).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Runs the request, then adds `Connection: close` to the response if the request's HTTP/1
/// body was not read to its end.
pub async fn close_after_unread_body(request: Request, next: Next) -> Response {
    use http_body::Body as _;
    if request.version() > Version::HTTP_11 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let watched = Arc::clone(&finished);
    let request = request.map(|inner| {
        Body::new(Watched {
            inner,
            finished: watched,
        })
    });
    let mut response = next.run(request).await;
    if !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct Watched {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
