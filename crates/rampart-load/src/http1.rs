//! A lean HTTP/1.1 client connection for virtual users: one request at a
//! time on one keep-alive TCP connection, driven entirely by the user's own
//! task (no connection task, no channel between them), headers parsed with
//! `httparse`. Bodies are framed by `Content-Length`, chunked coding, or the
//! end of the connection; only the first `keep` bytes are kept.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::failure::{Failed, Failure};
use crate::tls::Tls;

/// How long after a response a connection is reused without asking the
/// socket whether the server closed it.
pub const FRESH: Duration = Duration::from_millis(20);

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 128;

/// A response as the virtual user sees it (over any transport).
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The first `keep` bytes of the body.
    pub body: Bytes,
    /// Bytes sent for the request (head and body).
    pub bytes_sent: u64,
    /// Bytes of the response read off the connection (head and body).
    pub bytes_received: u64,
}

impl Response {
    /// No response at all (the request failed).
    pub fn none() -> Self {
        Self {
            status: 0,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            bytes_sent: 0,
            bytes_received: 0,
        }
    }
}

/// A connection's bytes: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP connection under it.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Connects to `address` (`host:port`), with TLS for `host` when `tls`
    /// is given.
    pub async fn connect(address: &str, tls: Option<(&Tls, &str)>) -> Result<Self, Failed> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| Failed::new(Failure::of_connect(&e), format!("connect {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => Ok(Stream::Plain(stream)),
            Some((tls, host)) => Ok(Stream::Tls(Box::new(tls.handshake(host, stream).await?))),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One keep-alive connection (over TCP or TLS, or any byte stream).
#[derive(Debug)]
pub struct Conn<S = Stream> {
    stream: S,
    buf: BytesMut,
    out: Vec<u8>,
    reusable: bool,
    /// Whether a request was sent on it before the current one.
    used: bool,
    /// Whether any byte of the current response has arrived.
    received: bool,
    /// Bytes read off the connection since the current request was sent.
    read: u64,
    /// When the last response was read whole.
    answered: Option<Instant>,
    /// Whether the last failed request may be sent again on a new connection.
    retry: bool,
}

impl Conn {
    /// Connects to `authority` (`host:port`) over plain TCP.
    pub async fn connect(authority: &str) -> Result<Self, Failed> {
        Ok(Self::over(Stream::connect(authority, None).await?))
    }

    /// Whether another request may be sent on it: the last exchange left
    /// it clean and the server has not closed it meanwhile. A server closes
    /// idle keep-alive connections after its own timeout (the FIN waits
    /// unread here); sending on such a connection would fail a request the
    /// target never saw, so the user connects again instead, as browsers
    /// and k6 do.
    ///
    /// Asking the socket costs a system call per request, a third of those
    /// a request makes; a connection answered less than [`FRESH`] ago is
    /// taken as it is (no server's idle timeout is that short, and a GET
    /// that meets a close is still sent again once).
    pub fn reusable(&self) -> bool {
        if !self.reusable {
            return false;
        }
        if self.answered.is_some_and(|at| at.elapsed() < FRESH) {
            return true;
        }
        // A peek: TLS records must stay for the TLS layer to read.
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(self.stream.tcp()).peek(&mut probe) {
            // Closed by the server (0) or unsolicited bytes (such as a 408
            // or a TLS close_notify).
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    /// Whether the request that just failed may be sent again on a new
    /// connection, as browsers, k6 and Go's HTTP client do: the connection
    /// had served earlier requests (so the server may have closed it as idle
    /// while the request was on its way) and either the request could not
    /// be written or it is a GET, HEAD or OPTIONS request that got no byte
    /// of response. A request that failed on its first connection, or a
    /// POST the server may have acted on, is never sent twice.
    pub fn may_retry(&self) -> bool {
        self.retry
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// A connection over an open byte stream.
    pub fn over(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(512),
            reusable: true,
            used: false,
            received: false,
            read: 0,
            answered: None,
            retry: false,
        }
    }

    /// Sends one request and reads its whole response.
    pub async fn send(
        &mut self,
        method: &Method,
        target: &str,
        authority: &str,
        headers: &HeaderMap,
        body: &[u8],
        keep: usize,
    ) -> Result<Response, Failed> {
        self.send_with(method, target, authority, headers, body, keep, true)
            .await
    }

    /// [`Conn::send`], keeping every response header only with
    /// `all_headers` (else only `Cache-Status` and `X-Cache`: building a
    /// header map costs more than the rest of reading a small response).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_with(
        &mut self,
        method: &Method,
        target: &str,
        authority: &str,
        headers: &HeaderMap,
        body: &[u8],
        keep: usize,
        all_headers: bool,
    ) -> Result<Response, Failed> {
        self.out.clear();
        self.out.extend_from_slice(method.as_str().as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(target.as_bytes());
        self.out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        self.out.extend_from_slice(authority.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            if name == CONTENT_LENGTH || name == http::header::HOST {
                continue;
            }
            self.out.extend_from_slice(name.as_str().as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            self.out
                .extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.reusable = false;
        let reused = std::mem::replace(&mut self.used, true);
        self.received = false;
        self.read = 0;
        self.retry = false;
        if let Err(e) = self.stream.write_all(&self.out).await {
            self.retry = reused;
            return Err(Failed::new(Failure::of_io(&e), format!("write: {e}")));
        }
        let response = self
            .read_response(method == Method::HEAD, keep, all_headers)
            .await
            .map(|r| Response {
                bytes_sent: self.out.len() as u64,
                bytes_received: self.read,
                ..r
            });
        self.answered = response.is_ok().then(Instant::now);
        if response.is_err() {
            self.retry = reused
                && !self.received
                && matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        }
        response
    }

    async fn fill(&mut self) -> Result<usize, Failed> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Failed::new(Failure::of_io(&e), format!("read: {e}")))?;
        self.received |= n > 0;
        self.read += n as u64;
        Ok(n)
    }

    async fn read_response(
        &mut self,
        head_request: bool,
        keep: usize,
        all_headers: bool,
    ) -> Result<Response, Failed> {
        let (status, head) = loop {
            let parsed = {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut slots);
                match resp.parse(&self.buf).map_err(|e| {
                    Failed::new(Failure::BadResponse, format!("bad response head: {e}"))
                })? {
                    httparse::Status::Complete(n) => {
                        let head = Head::read(resp.headers, resp.version == Some(0), all_headers);
                        Some((n, resp.code.unwrap_or(0), head))
                    }
                    httparse::Status::Partial => None,
                }
            };
            match parsed {
                Some((n, status, head)) => {
                    self.buf.advance(n);
                    // Interim responses (100 Continue, 103 Early Hints) precede the real one.
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    break (status, head);
                }
                None => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(bad("response head too large"));
                    }
                    if self.fill().await? == 0 {
                        return Err(closed("connection closed before a response"));
                    }
                }
            }
        };
        let Head {
            headers,
            close,
            chunked,
            length,
        } = head;
        let mut kept = Vec::new();
        let mut until_close = false;
        if head_request || status == 204 || status == 304 {
            // No body.
        } else if chunked {
            self.read_chunked(&mut kept, keep).await?;
        } else if let Some(len) = length {
            let mut left = len;
            while left > 0 {
                if self.buf.is_empty() && self.fill().await? == 0 {
                    return Err(closed("connection closed mid-body"));
                }
                let take = (self.buf.len() as u64).min(left) as usize;
                keep_some(&mut kept, &self.buf[..take], keep);
                self.buf.advance(take);
                left -= take as u64;
            }
        } else {
            until_close = true;
            loop {
                keep_some(&mut kept, &self.buf, keep);
                self.buf.clear();
                if self.fill().await? == 0 {
                    break;
                }
            }
        }
        self.reusable = !(close || until_close);
        Ok(Response {
            status,
            headers,
            body: Bytes::from(kept),
            bytes_sent: 0,
            bytes_received: 0,
        })
    }

    async fn line(&mut self) -> Result<Bytes, Failed> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(pos).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(closed("connection closed mid-chunk"));
            }
        }
    }

    async fn read_chunked(&mut self, kept: &mut Vec<u8>, keep: usize) -> Result<(), Failed> {
        loop {
            let line = self.line().await?;
            let size_text = std::str::from_utf8(&line).map_err(|_| bad("bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| bad(&format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, up to an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            let mut left = size;
            while left > 0 {
                if self.buf.is_empty() && self.fill().await? == 0 {
                    return Err(closed("connection closed mid-chunk"));
                }
                let take = (self.buf.len() as u64).min(left) as usize;
                keep_some(kept, &self.buf[..take], keep);
                self.buf.advance(take);
                left -= take as u64;
            }
            if !self.line().await?.is_empty() {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
    }
}

/// What a response head says about its body and connection, and the
/// headers kept.
struct Head {
    headers: HeaderMap,
    close: bool,
    chunked: bool,
    length: Option<u64>,
}

impl Head {
    /// Reads the framing from the parsed fields and keeps the headers
    /// asked for (`all`, or only the cache status ones).
    fn read(fields: &[httparse::Header<'_>], http10: bool, all: bool) -> Self {
        let mut head = Head {
            headers: HeaderMap::new(),
            close: http10,
            chunked: false,
            length: None,
        };
        let has = |value: &[u8], token: &str| {
            value
                .windows(token.len())
                .any(|w| w.eq_ignore_ascii_case(token.as_bytes()))
        };
        for h in fields {
            let name = h.name;
            if name.eq_ignore_ascii_case(CONNECTION.as_str()) {
                head.close |= has(h.value, "close");
            } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
                head.chunked |= has(h.value, "chunked");
            } else if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
                head.length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
            let wanted = all
                || name.eq_ignore_ascii_case("cache-status")
                || name.eq_ignore_ascii_case("x-cache");
            if wanted {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(h.value),
                ) {
                    head.headers.append(name, value);
                }
            }
        }
        head
    }
}

fn bad(what: &str) -> Failed {
    Failed::new(Failure::BadResponse, what)
}

fn closed(what: &str) -> Failed {
    Failed::new(Failure::Closed, what)
}

fn keep_some(kept: &mut Vec<u8>, data: &[u8], keep: usize) {
    let room = keep.saturating_sub(kept.len());
    kept.extend_from_slice(&data[..data.len().min(room)]);
}

/// The size of a request as HTTP/1.1 writes it (HTTP/2 compresses
/// headers, so this is an upper bound there).
pub fn request_size(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: usize,
) -> u64 {
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    let head = method.as_str().len() + target + 12 + head_size(headers) + 2;
    (head + body) as u64
}

/// A response head's size as HTTP/1.1 writes it: the status line
/// (`HTTP/1.1 200 OK\r\n`, 17 bytes) and the fields.
pub fn response_head_size(headers: &http::HeaderMap) -> u64 {
    17 + head_size(headers) as u64
}

/// Header fields' size as HTTP/1.1 writes them.
pub fn head_size(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A server that answers each request with the next canned bytes.
    async fn server(replies: Vec<&'static [u8]>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            for reply in replies {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                // Dribble the reply in small pieces to exercise partial reads.
                for piece in reply.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn frames_bodies_every_way() {
        let addr = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Status: rampart; hit\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        ])
        .await;
        let authority = addr.to_string();
        let mut c = Conn::connect(&authority).await.unwrap();
        let h = HeaderMap::new();
        let r = c
            .send(&Method::GET, "/a", &authority, &h, b"", 1024)
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
        assert_eq!(r.headers["cache-status"], "rampart; hit");
        assert!(c.reusable());
        let r = c
            .send(&Method::POST, "/b", &authority, &h, b"{}", 1024)
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (201, &b"wikipedia"[..]));
        let r = c
            .send(&Method::DELETE, "/c", &authority, &h, b"", 1024)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = c
            .send(&Method::GET, "/d", &authority, &h, b"", 2)
            .await
            .unwrap();
        assert_eq!(&r.body[..], b"ab", "only `keep` bytes are kept");
        let r = c
            .send(&Method::GET, "/e", &authority, &h, b"", 1024)
            .await
            .unwrap();
        assert_eq!(&r.body[..], b"until the end");
        assert!(!c.reusable());
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_not_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Then the server's idle timeout closes it.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        });
        let mut c = Conn::connect(&addr.to_string()).await.unwrap();
        let r = c
            .send(&Method::GET, "/", "x", &HeaderMap::new(), b"", 16)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(c.reusable(), "open and clean after a framed response");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!c.reusable(), "closed by the server while idle");
    }

    #[tokio::test]
    async fn only_a_replayable_request_on_a_reused_connection_may_be_retried() {
        let addr = rampart_testkit::one_answer_per_connection().await;
        let authority = addr.to_string();
        let h = HeaderMap::new();
        for (method, retry) in [(Method::GET, true), (Method::POST, false)] {
            let mut c = Conn::connect(&authority).await.unwrap();
            c.send(&Method::GET, "/", &authority, &h, b"", 16)
                .await
                .unwrap();
            assert!(c.send(&method, "/", &authority, &h, b"", 16).await.is_err());
            assert_eq!(c.may_retry(), retry, "{method} on a reused connection");
        }
    }

    #[tokio::test]
    async fn garbage_and_early_close_are_errors() {
        let addr = server(vec![b"NOT HTTP AT ALL\r\n\r\n"]).await;
        let authority = addr.to_string();
        let mut c = Conn::connect(&authority).await.unwrap();
        assert!(c
            .send(&Method::GET, "/", &authority, &HeaderMap::new(), b"", 10)
            .await
            .is_err());
        let addr = server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let authority = addr.to_string();
        let mut c = Conn::connect(&authority).await.unwrap();
        assert!(c
            .send(&Method::GET, "/", &authority, &HeaderMap::new(), b"", 10)
            .await
            .is_err());
        assert!(!c.may_retry(), "a new connection's failure is the server's");
    }
}
