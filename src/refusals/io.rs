//! [`RefusalIo`]: the connection under hyper, whose writes are followed as HTTP/1 responses
//! (see `framing.rs`) so that a response hyper wrote on its own is replaced by an Atlas error
//! (see the module documentation), and which then closes lingering.
//!
//! Bytes hyper writes take one of two paths: response heads are collected in `head` until
//! complete, classified, and moved to `out` (as they came, or replaced); body bytes are written
//! straight from hyper's buffers, after whatever `out` still holds, in order. A write returns
//! how many of hyper's bytes were taken, collected or written.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use super::Refusals;
use super::framing::{Framing, ResponseHead};
use super::requests::RequestLog;

/// How long a refused connection reads and discards what the client still sends before
/// closing (see [`RefusalIo`]'s shutdown).
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most bytes a refused connection discards before closing.
const LINGER_BYTES: usize = 1024 * 1024;
/// The longest response head followed; a longer one switches the connection to pass-through.
const MAX_HEAD_BYTES: usize = 64 * 1024;

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

    /// Classifies the complete head in `head` and moves it, or its replacement, to `out`.
    fn complete_head(&mut self) {
        let Self {
            log,
            refusals,
            framing,
            head,
            out,
            linger,
            ..
        } = self;
        let next = match ResponseHead::parse(head) {
            // Not understood: passed on as it is, and not followed.
            None => Framing::Opaque,
            Some(parsed) => match parsed.code {
                101 => Framing::Opaque,
                100..=199 => Framing::Head,
                _ => match log.answer() {
                    Some(request) => parsed.body_framing(request),
                    // No request is waiting for this response: hyper wrote it on its own.
                    None => {
                        if parsed.declares_no_body()
                            && refusals.write_replacement(
                                out,
                                parsed.code,
                                parsed.version,
                                parsed.date,
                            )
                        {
                            debug!(
                                status = parsed.code,
                                "request refused by the http/1 parser: atlas error"
                            );
                            linger.get_or_insert_with(|| Linger {
                                started: false,
                                discarded: 0,
                                deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                            });
                            head.clear();
                            *framing = Framing::Head;
                            return;
                        }
                        // Not a response `on_error` writes: leave it, and stop following.
                        Framing::Opaque
                    }
                },
            },
        };
        out.append(head);
        *framing = next;
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
    /// One write of hyper's, in three steps:
    /// 1. between responses, head bytes are collected (a complete head is classified and moved
    ///    to `out`, as it came or replaced);
    /// 2. what `out` holds and the body bytes that follow, up to the end of the current
    ///    response, go out in one vectored write;
    /// 3. the bytes collected and the body bytes the socket took are reported written; body
    ///    bytes past the end of the response are left for hyper's next write, whose head then
    ///    goes through step 1.
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
    use http::Method;
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
