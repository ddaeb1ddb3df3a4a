//! Atlas error bodies for the HTTP/1 requests hyper refuses before any service sees them.
//!
//! # Why this exists
//!
//! hyper's HTTP/1 parser answers some requests itself: a request line or header it cannot parse
//! (invalid UTF-8 or a NUL in the target, a bad method, version or header) gets `400`, a head
//! over the size or header-count limit `431`, a target over 65,534 bytes `414` — each with an
//! empty body, written by `Server::on_error` (hyper `proto/h1/role.rs`) right after the parse
//! error, after which hyper closes the connection. hyper has no hook to change that response
//! (no setting, no callback: the service never sees the request), and the limits are hyper's
//! protections, which we keep. Every other error of the gateway carries the Atlas body
//! (`error`, `errorCode`, `detail`, …) and `X-Error-Code`; this module gives these three the
//! same (`tests/integration/hostile_inputs.rs` pins them down).
//!
//! # What would let it go
//!
//! A hyper server option to set the response of its own parse errors. One is proposed upstream:
//! hyper pull request #3911, "feat(http1): customizable error messages" (for hyper issue
//! #3844), open when this was written. Once hyper has it, configure the three responses on the
//! HTTP/1 builder in `src/http_server.rs`, delete this module, and run
//! `tests/integration/hostile_inputs.rs`.
//!
//! # How
//!
//! [`RefusalIo`] wraps the connection under hyper and swaps that one response for an Atlas error
//! (`Content-Type: application/json`, `X-Error-Code`, the Atlas body, `Connection: close`). It
//! tells hyper's own response from the service's without guessing from content:
//!
//! - [`RequestLog`] (`requests.rs`) records every HTTP/1 request hyper hands to the service,
//!   synchronously in hyper's dispatch ([`Recorded`]), before any byte of its response can be
//!   written;
//! - the writer (`io.rs`) follows the HTTP/1 framing of what hyper writes (`framing.rs`): each
//!   response head, then its body by `Content-Length` or chunked encoding, with no body for
//!   `HEAD`, 1xx, 204 and 304;
//! - a final response head that answers no recorded request was written by hyper itself. HTTP/1
//!   answers requests in order, and hyper writes a response of its own only from `on_error`, so
//!   that head is the parse-error response; only a `400`, `414` or `431` with
//!   `content-length: 0` (what `on_error` writes) is replaced, by [`Refusals`] (this file).
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

mod framing;
mod io;
mod requests;

use std::sync::Arc;

use http::StatusCode;

use crate::gateway::response::{ApiError, JSON_CONTENT_TYPE, X_ERROR_CODE};

pub use self::io::RefusalIo;
pub use self::requests::{Recorded, RequestLog};

/// The longest request target hyper accepts (its `MAX_URI_LEN`).
pub const HYPER_MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// The Atlas errors that replace hyper's refusals, rendered once per server.
#[derive(Clone, Debug)]
pub struct Refusals {
    bad_request: Arc<Rendered>,
    uri_too_long: Arc<Rendered>,
    head_too_large: Arc<Rendered>,
}

/// One Atlas error, ready to write.
#[derive(Debug)]
struct Rendered {
    status: StatusCode,
    error_code: String,
    body: Vec<u8>,
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

    /// Appends to `out` the replacement of hyper's bodiless refusal with `status`: the Atlas
    /// error, closing the connection, keeping hyper's HTTP/1 minor `version` and `Date`.
    /// Returns false (and appends nothing) for a status hyper's parser does not refuse with.
    fn write_replacement(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        version: u8,
        date: Option<&[u8]>,
    ) -> bool {
        let rendered = match status {
            400 => &self.bad_request,
            414 => &self.uri_too_long,
            431 => &self.head_too_large,
            _ => return false,
        };
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
        true
    }
}
