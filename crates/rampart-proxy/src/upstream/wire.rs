//! HTTP/1.1 on the wire to an upstream, as pure functions over byte
//! buffers: the request head written from a request's parts, the response
//! head parsed and judged, and the response body's framing decoded.
//! [`super::h1`] drives them over a connection.
//!
//! Responses are read strictly, as nginx reads them: a response with both
//! `Transfer-Encoding` and `Content-Length`, with a transfer coding other
//! than `chunked`, or with `Content-Length` values that disagree is refused
//! (each is how one response is smuggled into the next on a kept-alive
//! connection), and so are heads larger than [`MAX_HEAD`] or with more than
//! [`MAX_HEADERS`] fields.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::SizeHint;

/// Largest response head (and trailer section) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most fields in a response head (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with its extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Why an upstream's response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The head does not parse (or has too many fields).
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    /// The head is larger than [`MAX_HEAD`].
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// A field name or value that HTTP does not allow.
    #[error("invalid response header field")]
    Field,
    /// `Content-Length` is not a number, or its values disagree.
    #[error("invalid Content-Length")]
    ContentLength,
    /// `Transfer-Encoding` other than `chunked`, or with `Content-Length`.
    #[error("unsupported or conflicting Transfer-Encoding")]
    TransferEncoding,
    /// A `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("101 to a request that asked for no upgrade")]
    UnexpectedSwitch,
    /// A chunk-size line that does not parse or is too long.
    #[error("invalid chunk size line")]
    ChunkSize,
    /// A chunk not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// The trailer section does not parse or is too large.
    #[error("invalid trailer section")]
    Trailers,
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a `HEAD` request, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// The status code.
    pub status: StatusCode,
    /// The fields, as sent.
    pub headers: HeaderMap,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after it.
    pub keep_alive: bool,
}

impl Head {
    /// An interim response (`100 Continue`, `103 Early Hints`), which
    /// precedes the final one.
    pub fn is_interim(&self) -> bool {
        self.status.is_informational() && self.status != StatusCode::SWITCHING_PROTOCOLS
    }
}

/// Takes the response head off the start of `buf`, the answer to a
/// `method` request; `None` (and `buf` untouched) while it is incomplete.
///
/// Field values are slices of the head's bytes, not copies (as hyper's
/// are): whoever keeps them longer than the response (the cache) copies
/// them.
pub fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, Malformed> {
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
        .map_err(Malformed::Head)?
    {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(Malformed::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    if len > MAX_HEAD {
        return Err(Malformed::HeadTooLarge);
    }
    let status = StatusCode::from_u16(resp.code.unwrap_or(0))
        .map_err(|_| Malformed::Head(httparse::Error::Status))?;
    let http10 = resp.version == Some(0);
    let mut keep_alive = !http10;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut coded = false;
    // Where each field's name and value lie in the head.
    let start = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = resp.headers.len();
    for (field, span) in resp.headers.iter().zip(spans.iter_mut()) {
        let (name, value) = (field.name.as_bytes(), field.value);
        let at = |s: &[u8]| (s.as_ptr() as usize - start) as u32;
        *span = (
            at(name),
            at(name) + name.len() as u32,
            at(value),
            at(value) + value.len() as u32,
        );
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in value.split(|&b| b == b',') {
                let n = content_length(part).ok_or(Malformed::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Malformed::ContentLength);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in tokens(value) {
                // Only `chunked`, once and last, is understood.
                if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(Malformed::TransferEncoding);
                }
                chunked = true;
            }
            coded = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        }
    }
    if coded && (!chunked || length.is_some()) {
        return Err(Malformed::TransferEncoding);
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(ns, ne, vs, ve) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
            .map_err(|_| Malformed::Field)?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
            .map_err(|_| Malformed::Field)?;
        headers.append(name, value);
    }
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (bodiless, chunked, length) {
        (true, _, _) | (false, false, Some(0)) => Framing::Empty,
        (false, true, _) => Framing::Chunked,
        (false, false, Some(n)) => Framing::Length(n),
        (false, false, None) => {
            keep_alive = false;
            Framing::UntilClose
        }
    };
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// A `Content-Length` value: digits only (around optional whitespace).
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The comma-separated tokens of a field value, trimmed, empty ones
/// skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// How a request's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// No body.
    Nothing,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Writes a request head to `out`: `method target HTTP/1.1`, the fields
/// (except any `Content-Length` and `Transfer-Encoding`, which describe the
/// client's framing, not this one), then this request's framing: the
/// client's `Content-Length` when it gave a valid one, else the body's
/// exact size, else chunked. A body known empty gets `Content-Length: 0`
/// only on methods that carry a body.
pub fn write_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    empty: bool,
    hint: &SizeHint,
) -> Sending {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut declared = None;
    let mut te = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            declared = content_length(value.as_bytes());
            continue;
        }
        if name == TRANSFER_ENCODING {
            continue;
        }
        te |= name == TE;
        write_field(out, name, value);
    }
    if te {
        // A sender of `TE` names it in `Connection` (RFC 9110 §10.1.4).
        out.extend_from_slice(b"connection: te\r\n");
    }
    let sending = match (declared, empty, hint.exact()) {
        (Some(n), _, _) => Sending::Length(n),
        (None, true, _) if matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            Sending::Length(0)
        }
        (None, true, _) => Sending::Nothing,
        (None, false, Some(n)) => Sending::Length(n),
        (None, false, None) => Sending::Chunked,
    };
    match sending {
        Sending::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Sending::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Sending::Nothing => {}
    }
    out.extend_from_slice(b"\r\n");
    sending
}

/// Appends one chunk of a chunked body (never an empty one, which would
/// end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let mut at = size.len();
    let mut n = data.len();
    loop {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Ends a chunked body, with its trailer fields.
pub fn write_last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        write_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// One field line, `name: value` and CRLF.
fn write_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Where the reading of a response body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Inside a chunk, bytes still to come.
    ChunkData(u64),
    /// After a chunk's data, before its CRLF.
    ChunkEnd,
    /// After the last chunk: the trailer section.
    Trailers,
    /// Until the connection closes.
    UntilClose,
    /// The body has ended.
    Done,
}

impl Reading {
    /// Where a body framed by `framing` starts.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Reading::Done,
            Framing::Length(n) => Reading::Length(n),
            Framing::Chunked => Reading::ChunkSize,
            Framing::UntilClose => Reading::UntilClose,
        }
    }

    /// What is known of the body's remaining size.
    pub fn size_hint(&self) -> SizeHint {
        match *self {
            Reading::Length(n) => SizeHint::with_exact(n),
            Reading::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// What decoding found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailer fields (the body has ended).
    Trailers(HeaderMap),
    /// The body has ended.
    End,
    /// More bytes are needed.
    More,
}

/// Takes what the body's framing allows from the start of `buf`.
pub fn decode(state: &mut Reading, buf: &mut BytesMut) -> Result<Decoded, Malformed> {
    loop {
        match *state {
            Reading::Done => return Ok(Decoded::End),
            Reading::UntilClose if buf.is_empty() => return Ok(Decoded::More),
            Reading::UntilClose => return Ok(Decoded::Data(buf.split().freeze())),
            Reading::Length(_) | Reading::ChunkData(_) if buf.is_empty() => {
                return Ok(Decoded::More)
            }
            Reading::Length(left) => {
                let take = left.min(buf.len() as u64);
                let rest = left - take;
                *state = if rest == 0 {
                    Reading::Done
                } else {
                    Reading::Length(rest)
                };
                return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
            }
            Reading::ChunkData(left) => {
                let take = left.min(buf.len() as u64);
                let rest = left - take;
                *state = if rest == 0 {
                    Reading::ChunkEnd
                } else {
                    Reading::ChunkData(rest)
                };
                return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
            }
            Reading::ChunkEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(Malformed::ChunkEnd);
                }
                buf.advance(2);
                *state = Reading::ChunkSize;
            }
            Reading::ChunkSize => {
                let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err(Malformed::ChunkSize);
                    }
                    return Ok(Decoded::More);
                };
                if end > MAX_CHUNK_LINE {
                    return Err(Malformed::ChunkSize);
                }
                let size = chunk_size(&buf[..end])?;
                buf.advance(end + 1);
                *state = if size == 0 {
                    Reading::Trailers
                } else {
                    Reading::ChunkData(size)
                };
            }
            Reading::Trailers => {
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    *state = Reading::Done;
                    return Ok(Decoded::End);
                }
                if buf.len() < 2 {
                    return Ok(Decoded::More);
                }
                return trailers(state, buf);
            }
        }
    }
}

/// A chunk-size line without its LF: hex digits, then optional
/// whitespace and extensions, then CR.
fn chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let line = line.strip_suffix(b"\r").ok_or(Malformed::ChunkSize)?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    // 15 hex digits: no overflow, and far beyond any body.
    if digits == 0 || digits > 15 {
        return Err(Malformed::ChunkSize);
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) || rest.contains(&b'\r') {
        return Err(Malformed::ChunkSize);
    }
    Ok(line[..digits].iter().fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        n << 4 | u64::from(v)
    }))
}

/// The trailer section at the start of `buf`, once it is whole.
fn trailers(state: &mut Reading, buf: &mut BytesMut) -> Result<Decoded, Malformed> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (len, map) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) if len <= MAX_HEAD => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields.iter() {
                let name = HeaderName::from_bytes(f.name.as_bytes());
                let value = HeaderValue::from_bytes(f.value);
                let (Ok(name), Ok(value)) = (name, value) else {
                    return Err(Malformed::Trailers);
                };
                map.append(name, value);
            }
            (len, map)
        }
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(Decoded::More),
        _ => return Err(Malformed::Trailers),
    };
    buf.advance(len);
    *state = Reading::Done;
    Ok(Decoded::Trailers(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<Head>, Malformed> {
        parse_head(&mut BytesMut::from(raw), &Method::GET)
    }

    fn framing(raw: &str) -> Result<(Framing, bool), Malformed> {
        head(raw).map(|h| {
            let h = h.expect("complete");
            (h.framing, h.keep_alive)
        })
    }

    #[test]
    fn framing_follows_the_head() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Ok((Framing::Length(12), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
            Ok((Framing::Length(5), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok((Framing::Chunked, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            Ok((Framing::Empty, false))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n"),
            Ok((Framing::UntilClose, false)),
            "no length: until close, never reused"
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"),
            Ok((Framing::Length(1), false))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n"),
            Ok((Framing::Length(1), true))
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 90\r\n\r\n"),
            Ok((Framing::Empty, true)),
            "a 304's length describes the stored body"
        );
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n");
        let to_head = parse_head(&mut buf, &Method::HEAD);
        assert_eq!(to_head.unwrap().unwrap().framing, Framing::Empty);
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
        ] {
            assert!(head(raw).is_err(), "{raw:?} must be refused");
        }
    }

    #[test]
    fn heads_arrive_in_pieces_and_are_bounded() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for cut in 0..raw.len() - 2 {
            let mut buf = BytesMut::from(&raw[..cut]);
            assert!(
                parse_head(&mut buf, &Method::GET).unwrap().is_none(),
                "cut at {cut}"
            );
            assert_eq!(buf.len(), cut, "an incomplete head stays");
        }
        let mut buf = BytesMut::from(raw);
        let parsed = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(&buf[..], b"ok", "the head is taken, the body left");
        assert_eq!(parsed.headers["content-length"], "2");
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(head(&huge).unwrap_err(), Malformed::HeadTooLarge);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(matches!(head(&many), Err(Malformed::Head(_))));
        let interim = head("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n").unwrap();
        assert!(interim.unwrap().is_interim());
    }

    fn decode_all(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>), Malformed> {
        let mut state = Reading::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match decode(&mut state, &mut buf)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((body, trailers)),
                Decoded::More if fed == wire.len() => return Err(Malformed::ChunkEnd),
                Decoded::More => {
                    let next = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let wire = b"4;name=value\r\nwiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 9\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, trailers) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"wikipedia in\r\n\r\nchunks.", "step {step}");
            assert_eq!(trailers.unwrap()["x-sum"], "9");
        }
        let (body, trailers) = decode_all(Framing::Chunked, b"3\r\nabc\r\n0\r\n\r\n", 1).unwrap();
        assert_eq!((body.as_slice(), trailers), (&b"abc"[..], None));
        let (body, _) = decode_all(Framing::Length(3), b"abc", 2).unwrap();
        assert_eq!(body, b"abc");
    }

    #[test]
    fn bad_chunks_are_refused() {
        for wire in [
            &b"x\r\n"[..],
            b"3\r\nabcX\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"1234567890abcdef0\r\n",
            b"3 x\r\nabc\r\n",
            b"0\r\nBad Name: v\r\n\r\n",
        ] {
            assert!(
                decode_all(Framing::Chunked, wire, 64).is_err(),
                "{:?} must be refused",
                String::from_utf8_lossy(wire)
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert_eq!(
            decode_all(Framing::Chunked, long.as_bytes(), 64),
            Err(Malformed::ChunkSize)
        );
    }

    #[test]
    fn request_heads_carry_their_own_framing() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("origin"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let mut out = Vec::new();
        let s = write_head(
            &mut out,
            &Method::GET,
            "/a?b",
            &h,
            true,
            &SizeHint::with_exact(0),
        );
        assert_eq!(s, Sending::Nothing);
        assert_eq!(out, b"GET /a?b HTTP/1.1\r\nhost: origin\r\n\r\n");
        out.clear();
        let s = write_head(
            &mut out,
            &Method::POST,
            "/",
            &HeaderMap::new(),
            true,
            &SizeHint::with_exact(0),
        );
        assert_eq!(s, Sending::Length(0));
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"));
        out.clear();
        let s = write_head(
            &mut out,
            &Method::PUT,
            "/",
            &HeaderMap::new(),
            false,
            &SizeHint::default(),
        );
        assert_eq!(s, Sending::Chunked);
        assert!(out.ends_with(b"transfer-encoding: chunked\r\n\r\n"));
        out.clear();
        h.insert("content-length", HeaderValue::from_static("7"));
        let s = write_head(&mut out, &Method::PUT, "/", &h, false, &SizeHint::default());
        assert_eq!(s, Sending::Length(7));
        assert_eq!(
            out,
            b"PUT / HTTP/1.1\r\nhost: origin\r\ncontent-length: 7\r\n\r\n"
        );
        out.clear();
        write_chunk(&mut out, &[b'x'; 300]);
        assert!(out.starts_with(b"12c\r\nxxx"));
        out.clear();
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        write_last_chunk(&mut out, Some(&t));
        assert_eq!(out, b"0\r\ngrpc-status: 0\r\n\r\n");
    }
}
