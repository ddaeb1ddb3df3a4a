//! Following the HTTP/1 framing of what hyper writes (RFC 9112): where a response head ends,
//! and where its body ends (by `Content-Length`, by chunked encoding, or not at all for `HEAD`,
//! 1xx, 204 and 304), so the next response head is found. It reads hyper's own, well-formed
//! output; whatever it does not understand makes it stop following ([`Framing::Opaque`]),
//! never guess.

use super::requests::RequestKind;

/// The most header fields of a response head that are parsed.
const MAX_HEAD_FIELDS: usize = 64;

/// Where the writer is in the HTTP/1 response stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
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
pub(super) enum Chunk {
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

/// The parts of a complete response head that matter here.
#[derive(Debug)]
pub(super) struct ResponseHead<'a> {
    /// The status code.
    pub(super) code: u16,
    /// The minor HTTP version (`1` for HTTP/1.1).
    pub(super) version: u8,
    /// The first `Date` value, if any.
    pub(super) date: Option<&'a [u8]>,
    content_length: Vec<&'a [u8]>,
    transfer_encoding: Vec<&'a [u8]>,
}

/// The next state after one byte of chunked framing.
enum Step {
    Continue(Chunk),
    End,
}

// === impl ResponseHead ===

impl<'a> ResponseHead<'a> {
    /// Parses `head`, which ends with its blank line; `None` unless it is exactly one
    /// well-formed response head.
    pub(super) fn parse(head: &'a [u8]) -> Option<Self> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEAD_FIELDS];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            _ => return None,
        }
        let values = |name: &str| -> Vec<&'a [u8]> {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect()
        };
        Some(Self {
            code: response.code?,
            version: response.version?,
            date: values("date").first().copied(),
            content_length: values("content-length"),
            transfer_encoding: values("transfer-encoding"),
        })
    }

    /// Whether the head declares an empty body the way hyper's `on_error` does:
    /// `content-length: 0` and no transfer coding.
    pub(super) fn declares_no_body(&self) -> bool {
        self.content_length == [b"0".as_slice()] && self.transfer_encoding.is_empty()
    }

    /// The framing of the body of this final (non-1xx) response to `request` (RFC 9112 §6.3).
    pub(super) fn body_framing(&self, request: RequestKind) -> Framing {
        let code = self.code;
        if request == RequestKind::Head || code == 204 || code == 304 {
            return Framing::Head;
        }
        if request == RequestKind::Connect && (200..300).contains(&code) {
            return Framing::Opaque;
        }
        if let Some(last) = self.transfer_encoding.last() {
            let chunked = last
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return if chunked {
                Framing::Chunked(Chunk::START)
            } else {
                Framing::Opaque
            };
        }
        let [length] = self.content_length[..] else {
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
}

// === impl Framing ===

impl Framing {
    /// Follows body bytes; returns how many belong to the current response (all of them, unless
    /// it ends inside `bytes`, after which the state is [`Framing::Head`]).
    pub(super) fn advance(&mut self, bytes: &[u8]) -> usize {
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

// === impl Chunk ===

impl Chunk {
    /// The start of a chunk-size line.
    const START: Self = Self::Size {
        size: 0,
        digits: false,
        extension: false,
    };

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
                (1, b'\n') => Self::START,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Follows `stream` (the bytes after a head) in pieces of `piece` bytes; returns how many
    /// bytes the body took and the state after.
    fn follow(mut framing: Framing, stream: &[u8], piece: usize) -> (usize, Framing) {
        let mut used = 0;
        for chunk in stream.chunks(piece) {
            let n = framing.advance(chunk);
            used += n;
            if n < chunk.len() {
                break;
            }
        }
        (used, framing)
    }

    #[test]
    fn a_chunked_body_ends_after_its_trailers_in_any_pieces() {
        let body = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        let stream = [body.as_slice(), b"HTTP/1.1 200 OK\r\n"].concat();
        for piece in [1, 2, 5, stream.len()] {
            assert_eq!(
                follow(Framing::Chunked(Chunk::START), &stream, piece),
                (body.len(), Framing::Head),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn malformed_chunked_framing_is_not_followed() {
        for body in [b"\r\n".as_slice(), b"5\r\nhelloXY", b"zz\r\n"] {
            let (_, framing) = follow(Framing::Chunked(Chunk::START), body, 1);
            assert_eq!(framing, Framing::Opaque, "{body:?}");
        }
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        let head = |text: &str| format!("HTTP/1.1 {text}\r\n\r\n").into_bytes();
        let framing = |text: &str, request| {
            ResponseHead::parse(&head(text))
                .unwrap()
                .body_framing(request)
        };
        use RequestKind::{Connect, Head, Other};
        assert_eq!(
            framing("200 OK\r\ncontent-length: 7", Other),
            Framing::Body(7)
        );
        assert_eq!(framing("200 OK\r\ncontent-length: 7", Head), Framing::Head);
        assert_eq!(framing("204 No Content", Other), Framing::Head);
        assert_eq!(framing("304 Not Modified", Other), Framing::Head);
        assert_eq!(framing("200 OK", Connect), Framing::Opaque);
        assert_eq!(framing("200 OK", Other), Framing::Opaque);
        assert_eq!(
            framing("200 OK\r\ntransfer-encoding: gzip, chunked", Other),
            Framing::Chunked(Chunk::START)
        );
        assert_eq!(
            framing("200 OK\r\ntransfer-encoding: chunked, gzip", Other),
            Framing::Opaque
        );
        assert_eq!(
            framing("200 OK\r\ncontent-length: 1\r\ncontent-length: 1", Other),
            Framing::Opaque
        );
    }

    #[test]
    fn only_a_complete_single_head_parses() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: d\r\n\r\n";
        let parsed = ResponseHead::parse(head).unwrap();
        assert_eq!((parsed.code, parsed.version), (400, 1));
        assert_eq!(parsed.date, Some(b"d".as_slice()));
        assert!(parsed.declares_no_body());
        assert!(ResponseHead::parse(&head[..head.len() - 2]).is_none());
        assert!(ResponseHead::parse(&[head.as_slice(), b"x"].concat()).is_none());
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(!ResponseHead::parse(chunked).unwrap().declares_no_body());
    }
}
