//! Atlas error bodies for the HTTP/1 requests hyper refuses before any service sees them.
//!
//! hyper's HTTP/1 parser answers some requests itself: a request line or header it cannot parse
//! (invalid UTF-8 or a NUL in the target, a bad method, version or header) gets `400`, a head
//! over the size or header-count limit `431`, a target over 65,534 bytes `414` — each with an
//! empty body, written by `Server::on_error` (hyper `proto/h1/role.rs`) right after the parse
//! error, after which hyper closes the connection. hyper has no hook to change that response,
//! and the limits are hyper's protections, which we keep.
//!
//! [`RefusalIo`] wraps the connection under hyper and swaps that one response for an Atlas error
//! (`Content-Type: application/json`, `X-Error-Code`, the Atlas body, `Connection: close`). It
//! tells hyper's own response from the service's without guessing from content:
//!
//! - [`RequestLog`] records every HTTP/1 request hyper hands to the service, synchronously in
//!   hyper's dispatch, before any byte of its response can be written;
//! - the writer follows the HTTP/1 framing of what hyper writes (hyper's own, well-formed
//!   output): each response head, then its body by `Content-Length` or chunked encoding, with
//!   no body for `HEAD`, 1xx, 204 and 304;
//! - a final response head that answers no recorded request was written by hyper itself. HTTP/1
//!   answers requests in order, and hyper writes a response of its own only from `on_error`, so
//!   that head is the parse-error response; only a `400`, `414` or `431` with
//!   `content-length: 0` (what `on_error` writes) is replaced.
//!
//! After a replacement the connection closes lingering, as HTTP/1 servers do after an error:
//! the write side is shut and what the client still sends (the rest of an oversized head) is
//! read and dropped for up to 2 s or 1 MiB, so that closing with unread bytes does not reset
//! the connection and destroy the answer before the client reads it.
//!
//! Everything else passes through unchanged, byte for byte: only response heads are held back
//! until complete (to be classified), bodies are written straight from hyper's buffers. Whatever
//! the writer does not understand — HTTP/2 (the first bytes are not `HTTP/1.`), an upgrade, a
//! close-delimited body, a head it cannot parse — switches it to passing everything through for
//! the rest of the connection, so it can leave hyper's bare answer in place but never alter a
//! response of the service.
//!
//! The alternatives were weaker: hyper exposes no setting for the body of these responses, and
//! recognising them by their bytes alone (a bodiless 400 in the output) would depend on how
//! hyper batches writes and on the service never sending such a response.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use crate::gateway::response::{ApiError, JSON_CONTENT_TYPE, X_ERROR_CODE};

/// How long a refused connection reads and discards what the client still sends before
/// closing (see [`RefusalIo`]'s shutdown).
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most bytes a refused connection discards before closing.
const LINGER_BYTES: usize = 1024 * 1024;
/// The longest response head followed; a longer one switches the connection to pass-through.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields of a response head that are parsed.
const MAX_HEAD_FIELDS: usize = 64;
/// The longest request target hyper accepts (its `MAX_URI_LEN`).
pub const HYPER_MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// The Atlas errors that replace hyper's refusals, rendered once per server.
#[derive(Clone, Debug)]
pub struct Refusals {
    bad_request: Arc<Rendered>,
    uri_too_long: Arc<Rendered>,
    head_too_large: Arc<Rendered>,
}

#[derive(Debug)]
struct Rendered {
    status: StatusCode,
    error_code: String,
    body: Vec<u8>,
}

/// The HTTP/1 requests of one connection that hyper handed to the service and whose response
/// head has not been written yet (in HTTP/1, at most a few: responses go out in order).
#[derive(Debug, Default)]
pub struct RequestLog {
    pending: Mutex<VecDeque<RequestKind>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestKind {
    /// `HEAD`: the response has no body whatever its headers say.
    Head,
    /// `CONNECT`: a 2xx response turns the connection into a tunnel.
    Connect,
    /// Any other method.
    Other,
}

/// A connection whose writes are followed as HTTP/1 responses, with hyper's own parse-error
/// responses replaced by Atlas errors (see the module documentation).
#[derive(Debug)]
pub struct RefusalIo<T> {
    inner: T,
    log: Arc<RequestLog>,
    refusals: Refusals,
    framing: Framing,
    /// The bytes of a response head not complete yet (not passed on).
    head: Vec<u8>,
    /// Bytes accepted from hyper and not yet written: complete heads, or a replacement.
    out: Vec<u8>,
    /// How much of `out` is written.
    out_pos: usize,
    /// After a replacement: discarding the client's further bytes before closing.
    linger: Option<Linger>,
}

/// A lingering close (as HTTP/1 servers do after an error): the write side is shut, and what
/// the client still sends is read and dropped for a bounded time, so that closing the socket
/// with unread bytes does not reset the connection and destroy the refusal before the client
/// has read it.
#[derive(Debug)]
struct Linger {
    started: bool,
    discarded: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// Where the writer is in the HTTP/1 response stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Between responses: the next bytes are a response head.
    Head,
    /// In a body with this many bytes left.
    Body(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// Not followed: HTTP/2, a tunnel, a close-delimited body, or something not understood.
    Opaque,
}

/// Where the writer is in a chunked body (RFC 9112 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: the size so far, whether an extension started.
    Size {
        size: u64,
        digits: bool,
        extension: bool,
    },
    /// In chunk data, with this many bytes left.
    Data(u64),
    /// In the CRLF after chunk data, with this many bytes left.
    DataEnd(u8),
    /// In the trailer section: the length of the current line (CR excluded).
    Trailer { line: usize },
}

// === impl Refusals ===

impl Refusals {
    /// Renders the three errors; `max_header_bytes` and `max_headers` are the limits hyper
    /// enforces on the request head, named in the 431's detail.
    pub fn new(max_header_bytes: usize, max_headers: usize) -> Self {
        let render = |error: ApiError| {
            Arc::new(Rendered {
                status: error.status,
                body: serde_json::to_vec(&error.body()).expect("a JSON value must serialize"),
                error_code: error.error_code,
            })
        };
        Self {
            bad_request: render(ApiError::unparsable_request()),
            uri_too_long: render(ApiError::uri_too_long(HYPER_MAX_URI_LEN)),
            head_too_large: render(ApiError::request_head_too_large(
                max_header_bytes,
                max_headers,
            )),
        }
    }

    fn for_status(&self, status: u16) -> Option<&Rendered> {
        match status {
            400 => Some(&self.bad_request),
            414 => Some(&self.uri_too_long),
            431 => Some(&self.head_too_large),
            _ => None,
        }
    }
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

    /// The oldest request not answered yet.
    fn answer(&self) -> Option<RequestKind> {
        self.lock().pop_front()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RequestKind>> {
        // A queue of plain values: a panic elsewhere leaves nothing half-updated.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A hyper service that records each request in a [`RequestLog`] as hyper dispatches it.
#[derive(Clone, Debug)]
pub struct Recorded<S> {
    inner: S,
    log: Arc<RequestLog>,
}

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

// === impl RefusalIo ===

impl<T> RefusalIo<T> {
    /// Wraps a connection whose requests are recorded in `log`.
    pub fn new(inner: T, log: Arc<RequestLog>, refusals: Refusals) -> Self {
        Self {
            inner,
            log,
            refusals,
            framing: Framing::Head,
            head: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            linger: None,
        }
    }

    /// Takes head bytes from `bytes` until the head is complete; returns how many were taken.
    fn take_head(&mut self, bytes: &[u8]) -> usize {
        debug_assert_eq!(self.framing, Framing::Head);
        for (i, &byte) in bytes.iter().enumerate() {
            self.head.push(byte);
            let len = self.head.len();
            if len <= 5 && !b"HTTP/".starts_with(&self.head) {
                // Not an HTTP/1 response (an HTTP/2 connection): never look again.
                self.give_up();
                return i + 1;
            }
            if len >= 4 && self.head[len - 4..] == *b"\r\n\r\n" {
                self.complete_head();
                return i + 1;
            }
            if len > MAX_HEAD_BYTES {
                self.give_up();
                return i + 1;
            }
        }
        bytes.len()
    }

    /// Stops following the stream: what is held goes out as it came.
    fn give_up(&mut self) {
        self.out.append(&mut self.head);
        self.framing = Framing::Opaque;
    }

    fn complete_head(&mut self) {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEAD_FIELDS];
        let mut response = httparse::Response::new(&mut fields);
        let parsed = matches!(
            response.parse(&self.head),
            Ok(httparse::Status::Complete(n)) if n == self.head.len()
        );
        let (Some(code), Some(version), true) = (response.code, response.version, parsed) else {
            self.give_up();
            return;
        };
        let header = |name: &str| -> Vec<&[u8]> {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect()
        };
        let content_length = header("content-length");
        let transfer_encoding = header("transfer-encoding");
        let framing = match code {
            101 => Framing::Opaque,
            100..=199 => Framing::Head,
            _ => {
                let Some(request) = self.log.answer() else {
                    // No request is waiting for this response: hyper wrote it on its own.
                    let replacement = (content_length == [b"0".as_slice()]
                        && transfer_encoding.is_empty())
                    .then(|| self.refusals.for_status(code))
                    .flatten();
                    if let Some(rendered) = replacement {
                        let date = header("date").first().map(|d| d.to_vec());
                        debug!(
                            status = code,
                            "request refused by the http/1 parser: atlas error"
                        );
                        write_replacement(&mut self.out, version, rendered, date.as_deref());
                        self.linger.get_or_insert_with(|| Linger {
                            started: false,
                            discarded: 0,
                            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        });
                        self.head.clear();
                        self.framing = Framing::Head;
                        return;
                    }
                    // Not a response `on_error` writes: leave it, and stop following.
                    self.give_up();
                    return;
                };
                body_framing(request, code, &content_length, &transfer_encoding)
            }
        };
        self.out.append(&mut self.head);
        self.framing = framing;
    }

    /// Bytes accepted from hyper and not yet written.
    fn unwritten(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    fn consume_out(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }
}

impl<T: AsyncWrite + Unpin> RefusalIo<T> {
    fn poll_write_bufs(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.framing == Framing::Opaque && self.unwritten().is_empty() {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        // Bytes of `bufs` taken into `head` or `out`: accepted, whatever the socket does.
        let mut accepted = 0;
        while self.framing == Framing::Head && accepted < total {
            let rest = slices(bufs, accepted, total);
            let taken = match rest.first() {
                Some(first) => self.take_head(first),
                None => break,
            };
            accepted += taken;
        }
        loop {
            // Body bytes that follow, up to the end of the response they belong to.
            let mut probe = self.framing;
            let mut pass = 0;
            for slice in slices(bufs, accepted, total) {
                let n = probe.advance(slice);
                pass += n;
                if n < slice.len() {
                    break;
                }
            }
            let mut iovs = Vec::with_capacity(bufs.len() + 1);
            let unwritten = &self.out[self.out_pos..];
            if !unwritten.is_empty() {
                iovs.push(IoSlice::new(unwritten));
            }
            let passing = slices(bufs, accepted, accepted + pass);
            iovs.extend(passing.iter().map(|s| IoSlice::new(s)));
            if iovs.is_empty() {
                return Poll::Ready(Ok(accepted));
            }
            let written = match Pin::new(&mut self.inner).poll_write_vectored(cx, &iovs) {
                Poll::Pending if accepted > 0 => return Poll::Ready(Ok(accepted)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
            };
            let from_out = written.min(unwritten.len());
            let from_bufs = written - from_out;
            drop(iovs);
            self.consume_out(from_out);
            let mut left = from_bufs;
            for slice in slices(bufs, accepted, accepted + from_bufs) {
                let n = self.framing.advance(slice);
                debug_assert_eq!(n, slice.len());
                left -= n;
            }
            debug_assert_eq!(left, 0);
            if accepted + from_bufs > 0 {
                return Poll::Ready(Ok(accepted + from_bufs));
            }
            // Only held bytes went out: go on until some of hyper's bytes are taken.
        }
    }

    /// Writes out everything accepted; a head left incomplete is passed on as it is.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            // hyper flushes only after handing over whole heads: this is a stream we misread.
            self.give_up();
        }
        while !self.unwritten().is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume_out(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for RefusalIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> RefusalIo<T> {
    /// Shuts the write side, then discards the client's bytes until it closes, the time is up
    /// or enough was read.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(linger) = self.linger.as_mut() else {
            return Pin::new(&mut self.inner).poll_shutdown(cx);
        };
        if !linger.started {
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            linger.started = true;
            linger
                .deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + LINGER_TIME);
        }
        let mut buf = [0u8; 8192];
        while linger.discarded < LINGER_BYTES && linger.deadline.as_mut().poll(cx).is_pending() {
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if read.filled().is_empty() => break,
                Poll::Ready(Ok(())) => linger.discarded += read.filled().len(),
                Poll::Ready(Err(_)) => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RefusalIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bufs(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bufs(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.poll_linger(cx)
    }
}

// === impl Framing ===

impl Framing {
    /// Follows body bytes; returns how many belong to the current response (all of them, unless
    /// it ends inside `bytes`, after which the state is [`Framing::Head`]).
    fn advance(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            match self {
                Self::Head => return used,
                Self::Opaque => return bytes.len(),
                Self::Body(left) => {
                    let n = (*left).min((bytes.len() - used) as u64);
                    *left -= n;
                    used += n as usize;
                    if *left == 0 {
                        *self = Self::Head;
                    }
                }
                Self::Chunked(Chunk::Data(left)) => {
                    let n = (*left).min((bytes.len() - used) as u64);
                    *left -= n;
                    used += n as usize;
                    if *left == 0 {
                        *self = Self::Chunked(Chunk::DataEnd(2));
                    }
                }
                Self::Chunked(chunk) => {
                    let byte = bytes[used];
                    used += 1;
                    *self = match chunk.step(byte) {
                        Some(Step::Continue(next)) => Self::Chunked(next),
                        Some(Step::End) => Self::Head,
                        None => Self::Opaque,
                    };
                }
            }
        }
        used
    }
}

/// The next state after one byte of chunked framing.
enum Step {
    Continue(Chunk),
    End,
}

impl Chunk {
    /// `None`: not chunked framing as hyper writes it.
    fn step(self, byte: u8) -> Option<Step> {
        let next = match self {
            Self::Size {
                size,
                digits,
                extension,
            } => match byte {
                b'\n' if !digits => return None,
                b'\n' if size == 0 => Self::Trailer { line: 0 },
                b'\n' => Self::Data(size),
                b'\r' | b';' | b' ' | b'\t' => Self::Size {
                    size,
                    digits,
                    extension: true,
                },
                _ if extension => self,
                _ => {
                    let digit = char::from(byte).to_digit(16)?;
                    Self::Size {
                        size: size.checked_mul(16)?.checked_add(u64::from(digit))?,
                        digits: true,
                        extension,
                    }
                }
            },
            Self::Data(_) => return None,
            Self::DataEnd(left) => match (left, byte) {
                (2, b'\r') => Self::DataEnd(1),
                (1, b'\n') => Self::Size {
                    size: 0,
                    digits: false,
                    extension: false,
                },
                _ => return None,
            },
            Self::Trailer { line } => match byte {
                b'\n' if line == 0 => return Some(Step::End),
                b'\n' => Self::Trailer { line: 0 },
                b'\r' => self,
                _ => Self::Trailer { line: line + 1 },
            },
        };
        Some(Step::Continue(next))
    }
}

/// The framing of a response body (RFC 9112 §6.3).
fn body_framing(
    request: RequestKind,
    code: u16,
    content_length: &[&[u8]],
    transfer_encoding: &[&[u8]],
) -> Framing {
    if request == RequestKind::Head || code == 204 || code == 304 {
        return Framing::Head;
    }
    if request == RequestKind::Connect && (200..300).contains(&code) {
        return Framing::Opaque;
    }
    if let Some(last) = transfer_encoding.last() {
        let chunked = last
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return if chunked {
            Framing::Chunked(Chunk::Size {
                size: 0,
                digits: false,
                extension: false,
            })
        } else {
            Framing::Opaque
        };
    }
    let [length] = content_length else {
        // None (close-delimited) or several: not followed.
        return Framing::Opaque;
    };
    match std::str::from_utf8(length)
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(0) => Framing::Head,
        Some(n) => Framing::Body(n),
        None => Framing::Opaque,
    }
}

/// The replacement of hyper's bodiless refusal: the Atlas error, closing the connection.
fn write_replacement(out: &mut Vec<u8>, version: u8, rendered: &Rendered, date: Option<&[u8]>) {
    let status = rendered.status;
    out.extend_from_slice(
        format!(
            "HTTP/1.{version} {} {}\r\ncontent-type: {JSON_CONTENT_TYPE}\r\n{X_ERROR_CODE}: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            rendered.error_code,
            rendered.body.len(),
        )
        .as_bytes(),
    );
    if let Some(date) = date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&rendered.body);
}

/// The bytes of `bufs` from offset `start` to `end`, as slices.
fn slices<'a>(bufs: &'a [IoSlice<'a>], start: usize, end: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut offset = 0;
    for buf in bufs {
        let (from, to) = (offset, offset + buf.len());
        offset = to;
        if to <= start || from >= end {
            continue;
        }
        let lo = start.saturating_sub(from);
        let hi = end.min(to) - from;
        if lo < hi {
            out.push(&buf[lo..hi]);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    /// A sink that accepts at most `max` bytes per write.
    struct Sink {
        bytes: Vec<u8>,
        max: usize,
    }

    impl AsyncRead for Sink {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            // The client has closed.
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = buf.len().min(this.max);
            this.bytes.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn request(method: Method) -> http::Request<()> {
        http::Request::builder().method(method).body(()).unwrap()
    }

    /// Writes `stream` in pieces of `piece` bytes to a sink taking `max` bytes at a time, after
    /// recording `requests`; returns what reached the sink.
    async fn run(requests: &[Method], stream: &[u8], piece: usize, max: usize) -> Vec<u8> {
        let log = Arc::new(RequestLog::default());
        for method in requests {
            log.record(&request(method.clone()));
        }
        let sink = Sink {
            bytes: Vec::new(),
            max,
        };
        let mut io = RefusalIo::new(sink, log, Refusals::new(16384, 100));
        for chunk in stream.chunks(piece) {
            io.write_all(chunk).await.unwrap();
        }
        io.shutdown().await.unwrap();
        io.inner.bytes
    }

    const OURS: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"error\":400}";

    fn hyper_refusal(status: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn responses_of_the_service_pass_unchanged_in_any_pieces() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        let continued = b"HTTP/1.1 100 Continue\r\n\r\n";
        let stream = [OURS, chunked.as_slice(), head, continued, no_content, OURS].concat();
        let requests = [
            Method::GET,
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::GET,
        ];
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            for max in [1, 5, 1000] {
                let written = run(&requests, &stream, piece, max).await;
                assert_eq!(written, stream, "piece {piece}, max {max}");
            }
        }
    }

    #[tokio::test]
    async fn a_refusal_answering_no_request_becomes_an_atlas_error() {
        for (status, code) in [
            ("400 Bad Request", "INVALID_REQUEST"),
            ("414 URI Too Long", "URI_TOO_LONG"),
            (
                "431 Request Header Fields Too Large",
                "REQUEST_HEADERS_TOO_LARGE",
            ),
        ] {
            // After one answered request (pipelined), in pieces.
            let stream = [OURS, &hyper_refusal(status)].concat();
            for piece in [1, 10, stream.len()] {
                let written = run(&[Method::GET], &stream, piece, 7).await;
                let text = String::from_utf8(written).unwrap();
                let (first, second) = text.split_at(OURS.len());
                assert_eq!(first.as_bytes(), OURS);
                assert!(
                    second.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                    "{second}"
                );
                assert!(
                    second.contains(&format!("x-error-code: {code}\r\n")),
                    "{second}"
                );
                assert!(second.contains("connection: close\r\n"), "{second}");
                assert!(second.contains("date: Thu, 01 Jan 2026"), "{second}");
                let (head, body) = second.split_once("\r\n\r\n").unwrap();
                assert!(head.contains(&format!("content-length: {}", body.len())));
                let body: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(body["errorCode"], code);
                assert_eq!(body["error"], status[..3].parse::<u16>().unwrap());
            }
        }
    }

    #[tokio::test]
    async fn a_bodiless_400_of_the_service_is_left_alone() {
        let stream = hyper_refusal("400 Bad Request");
        assert_eq!(run(&[Method::GET], &stream, 3, 1000).await, stream);
    }

    #[tokio::test]
    async fn other_streams_pass_through() {
        // HTTP/2 frames.
        let h2 = b"\x00\x00\x12\x04\x00\x00\x00\x00\x00HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(run(&[], h2, 4, 1000).await, h2);
        // A close-delimited body that happens to contain a refusal.
        let close = [
            b"HTTP/1.1 200 OK\r\n\r\n".as_slice(),
            &hyper_refusal("400 Bad Request"),
        ]
        .concat();
        assert_eq!(run(&[Method::GET], &close, 5, 1000).await, close);
        // An unexpected status from hyper is not replaced, and not followed further.
        let other = [
            hyper_refusal("500 Internal Server Error"),
            hyper_refusal("400 Bad Request"),
        ]
        .concat();
        assert_eq!(run(&[], &other, 5, 1000).await, other);
    }

    #[test]
    fn slices_cut_across_buffers() {
        let (a, b) = (b"abc".as_slice(), b"defg".as_slice());
        let bufs = [IoSlice::new(a), IoSlice::new(b)];
        assert_eq!(slices(&bufs, 0, 7), vec![a, b]);
        assert_eq!(slices(&bufs, 2, 5), vec![b"c".as_slice(), b"de"]);
        assert_eq!(slices(&bufs, 3, 3), Vec::<&[u8]>::new());
    }
}
