//! An upstream HTTP/1.1 connection driven by the request's own task: the
//! request is written, its body streamed, the response head read and its
//! body read by whoever polls the response body (the client's connection),
//! all without a connection task or a channel between tasks. hyper's
//! client connection, which this replaces for every request but upgrades,
//! runs in a task of its own: two cross-task wake-ups per exchange.
//!
//! The bytes on the wire are [`super::wire`]'s; this module moves them.
//! A connection goes back to its pool (`home`) only after an exchange that
//! left it clean: the whole request sent, the whole response read, nothing
//! more received, and neither side asking to close.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use super::quickack::QuickAck;
use super::wire::{self, Decoded, Malformed, Reading, Sending};
use crate::body::{empty, Body, BoxError};

/// A connection's bytes: TCP, or TLS over it.
pub type Io = TokioIo<hyper_rustls::MaybeHttpsStream<QuickAck>>;

/// Room kept free in the read buffer before each read.
const READ_ROOM: usize = 8 * 1024;
/// Largest read buffer grown for a body of known length.
const READ_MAX: usize = 64 * 1024;
/// Request body bytes gathered before they are written.
const WRITE_MAX: usize = 64 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kept-alive connection was found closed before any of the request
    /// was written: the request may go on another connection.
    #[error("the kept-alive connection was closed before the request was sent")]
    Unsent,
    /// The connection ended (or was reset) before any of the response
    /// arrived.
    #[error("connection closed before the response: {0}")]
    Closed(io::Error),
    /// The connection ended in the middle of the response.
    #[error("connection closed in the middle of the response")]
    Truncated,
    /// The response breaks HTTP/1.1.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The request body failed (its source says why).
    #[error("request body: {0}")]
    Body(#[source] BoxError),
    /// The request body did not match its `Content-Length`.
    #[error("request body length does not match its Content-Length")]
    BodyLength,
}

/// One HTTP/1.1 connection to a target.
pub struct Conn {
    io: Io,
    /// Bytes read and not yet taken.
    buf: BytesMut,
    /// The request's bytes not yet written.
    out: Vec<u8>,
}

impl Conn {
    /// A connection over `io`.
    pub fn new(io: Io) -> Box<Self> {
        Box::new(Self {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
        })
    }

    /// The connection's bytes, for hyper (upgrades).
    pub fn into_io(self: Box<Self>) -> Io {
        self.io
    }

    /// Whether the target closed the connection (or sent bytes nobody
    /// asked for) while it was idle: one look, without waiting. The
    /// runtime remembers the socket's readiness, so an idle, quiet
    /// connection costs no system call here.
    pub fn closed_while_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !matches!(self.poll_fill(&mut cx, READ_ROOM), Poll::Pending)
    }

    /// Reads more bytes into the buffer, keeping `room` bytes free.
    fn poll_fill(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < room / 2 {
            self.buf.reserve(room);
        }
        poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// How far the request has been sent.
struct Progress {
    /// The body's framing; `Length` counts the bytes it still allows.
    sending: Sending,
    /// Bytes of `out` already written.
    written: usize,
    body_done: bool,
    trailers: Option<HeaderMap>,
    /// Whether any byte was written, or any body frame taken.
    started: bool,
    /// Whether any byte of the response arrived.
    received: bool,
}

impl Progress {
    fn data(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), Error> {
        match self.sending {
            Sending::Chunked => wire::write_chunk(out, data),
            Sending::Length(left) if data.len() as u64 <= left => {
                self.sending = Sending::Length(left - data.len() as u64);
                out.extend_from_slice(data);
            }
            Sending::Length(_) | Sending::Nothing => return Err(Error::BodyLength),
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.body_done = true;
        match self.sending {
            Sending::Chunked => wire::write_last_chunk(out, self.trailers.as_ref()),
            Sending::Length(left) if left != 0 => return Err(Error::BodyLength),
            Sending::Length(_) | Sending::Nothing => {}
        }
        Ok(())
    }
}

/// Sends `req` on `conn` (`reused`: it served an earlier request) and reads
/// the response head. The response body reads the rest off the connection
/// and hands the connection to `home` when it ends clean. `req`'s URI is in
/// origin form; its body is taken only as it is sent, so after
/// [`Error::Unsent`] the request is whole and may go on another connection.
pub async fn exchange<F>(
    mut conn: Box<Conn>,
    req: &mut Request<Body>,
    reused: bool,
    home: F,
) -> Result<Response<Body>, Error>
where
    F: FnOnce(Box<Conn>) + Send + Unpin + 'static,
{
    if reused && conn.closed_while_idle() {
        return Err(Error::Unsent);
    }
    conn.out.clear();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let body = req.body();
    let sending = wire::write_head(
        &mut conn.out,
        req.method(),
        target,
        req.headers(),
        body.is_end_stream(),
        &body.size_hint(),
    );
    let mut progress = Progress {
        sending,
        written: 0,
        body_done: sending == Sending::Nothing,
        trailers: None,
        started: false,
        received: false,
    };
    let head = poll_fn(|cx| poll_head(&mut conn, cx, req, &mut progress, reused)).await?;
    let keep = head.keep_alive && progress.body_done && conn.out.is_empty();
    let mut resp = Response::new(empty());
    *resp.status_mut() = head.status;
    *resp.version_mut() = Version::HTTP_11;
    *resp.headers_mut() = head.headers;
    let reading = Reading::new(head.framing);
    if reading == Reading::Done {
        release(conn, keep, home);
        return Ok(resp);
    }
    *resp.body_mut() = crate::body::boxed(Streamed {
        conn: Some(conn),
        reading,
        keep,
        home: Some(home),
    });
    Ok(resp)
}

/// Writes what is ready of the request and reads until a final response
/// head is whole.
fn poll_head(
    conn: &mut Conn,
    cx: &mut Context<'_>,
    req: &mut Request<Body>,
    p: &mut Progress,
    reused: bool,
) -> Poll<Result<wire::Head, Error>> {
    loop {
        // Gather what the body has ready (a small body goes out with the
        // head in one write).
        while !p.body_done && conn.out.len() - p.written < WRITE_MAX {
            match Pin::new(req.body_mut()).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    p.started = true;
                    match frame.into_data() {
                        Ok(data) => p.data(&mut conn.out, &data)?,
                        Err(frame) => p.trailers = frame.into_trailers().ok(),
                    }
                }
                Poll::Ready(None) => p.end(&mut conn.out)?,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Error::Body(e))),
                Poll::Pending => break,
            }
        }
        if p.written < conn.out.len() {
            match Pin::new(&mut conn.io).poll_write(cx, &conn.out[p.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    p.started = true;
                    p.written += n;
                    if p.written == conn.out.len() {
                        conn.out.clear();
                        p.written = 0;
                    }
                    continue;
                }
                Poll::Ready(Err(_)) if reused && !p.started => {
                    return Poll::Ready(Err(Error::Unsent))
                }
                Poll::Ready(Err(e)) if !p.received => return Poll::Ready(Err(Error::Closed(e))),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                Poll::Pending => {}
            }
        } else if let Poll::Ready(Err(e)) = Pin::new(&mut conn.io).poll_flush(cx) {
            return Poll::Ready(Err(Error::Io(e)));
        }
        while !conn.buf.is_empty() {
            let Some(head) = wire::parse_head(&mut conn.buf, req.method())? else {
                break;
            };
            if head.is_interim() {
                continue;
            }
            if head.status == StatusCode::SWITCHING_PROTOCOLS {
                return Poll::Ready(Err(Malformed::UnexpectedSwitch.into()));
            }
            return Poll::Ready(Ok(head));
        }
        match conn.poll_fill(cx, READ_ROOM) {
            Poll::Ready(Ok(0)) if p.received => return Poll::Ready(Err(Error::Truncated)),
            Poll::Ready(Ok(0)) => {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream");
                return Poll::Ready(Err(Error::Closed(eof)));
            }
            Poll::Ready(Ok(_)) => p.received = true,
            Poll::Ready(Err(e)) if !p.received => return Poll::Ready(Err(Error::Closed(e))),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// A response body read off its connection, which goes `home` when the
/// body ends clean.
struct Streamed<F> {
    conn: Option<Box<Conn>>,
    reading: Reading,
    /// Whether the connection may carry another request.
    keep: bool,
    home: Option<F>,
}

/// The response has ended: the connection goes `home` if the exchange left
/// it clean (`keep`) and nothing more arrived.
fn release<F: FnOnce(Box<Conn>)>(conn: Box<Conn>, keep: bool, home: F) {
    if keep && conn.buf.is_empty() {
        home(conn);
    }
}

impl<F: FnOnce(Box<Conn>)> Streamed<F> {
    /// The body has ended.
    fn finish(&mut self) {
        if let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) {
            release(conn, self.keep, home);
        }
    }
}

impl<F: FnOnce(Box<Conn>) + Unpin> http_body::Body for Streamed<F> {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let decoded = match wire::decode(&mut this.reading, &mut conn.buf) {
                Ok(d) => d,
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            match decoded {
                Decoded::Data(data) => {
                    if this.reading == Reading::Done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoded::Trailers(trailers) => {
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Decoded::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decoded::More => {}
            }
            let room = match this.reading {
                Reading::Length(left) => (left as usize).clamp(READ_ROOM, READ_MAX),
                _ => READ_ROOM,
            };
            match conn.poll_fill(cx, room) {
                Poll::Ready(Ok(0)) if this.reading == Reading::UntilClose => {
                    this.reading = Reading::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::Truncated)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading == Reading::Done
    }

    fn size_hint(&self) -> SizeHint {
        self.reading.size_hint()
    }
}
