//! One accepted connection, from its first byte to its close.
//!
//! - **Nothing is held before the first byte.** A new connection waits for
//!   its client to send something without a buffer, and is closed when
//!   nothing comes within `header_read_timeout`, like a client that stops
//!   halfway through a head.
//! - **Which protocol** is decided by the first bytes: HTTP/2's connection
//!   preface (h2c with prior knowledge, or h2 over TLS) or else HTTP/1.1.
//! - **An idle HTTP/1.1 connection is parked.** hyper keeps two 8 KiB
//!   buffers for every connection as long as it serves it, idle or not, and
//!   has no setting to release them. So once a connection has been idle
//!   for [`PARK_AFTER`] (between one and two periods), its hyper connection
//!   is taken apart and dropped, buffers and all; the socket waits for its
//!   next bytes alone, and a new hyper connection serves them. nginx does
//!   the same with a keep-alive connection's buffers.
//! - **An idle HTTP/2 connection is closed** with `GOAWAY` once no stream
//!   has been answered for `header_read_timeout`, the time an idle
//!   HTTP/1.1 connection waits for its next request. hyper's HTTP/2 server
//!   has no idle timeout of its own, and cannot be taken apart to park.
//! - **Shutdown**: a busy connection finishes the response it is sending
//!   and closes (HTTP/2: `GOAWAY`, then its open streams finish); a parked
//!   one closes at once, an idle one not yet parked at its next idle check
//!   (within [`PARK_AFTER`]).
//!
//! When a connection is idle is known from signals kept on every request
//! (see [`crate::activity`]).

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Answer, RequestBody, Streams};

/// How long an HTTP/1.1 connection is idle before it is parked: it is
/// checked once per period and parked at the first check that finds it
/// idle since the check before, so after one to two periods. Short enough
/// that ten thousand idle clients do not hold 160 MiB of buffers; long
/// enough that a client sending requests back to back never waits for a
/// new hyper connection.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// HTTP/2's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The protocol settings every connection of a listener is served with.
pub(crate) struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
}

impl Protocols {
    /// Limits on a request head's size and the time to send it.
    pub(crate) fn new(max_header_size: usize, header_read_timeout: Duration) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(max_header_size.max(8192))
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_size).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        Self {
            http1,
            http2,
            header_read_timeout,
        }
    }

    /// The time a client has to send a request head, and to finish its TLS
    /// handshake.
    pub(crate) fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }
}

/// A stream whose readiness to read can be awaited without reading (and so
/// without a buffer).
pub(crate) trait Readiness: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

impl Readiness for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        TcpStream::readable(self)
    }
}

impl Readiness for tokio_rustls::server::TlsStream<TcpStream> {
    /// The socket's readiness. After a read that found nothing, rustls holds
    /// no decrypted bytes: only the socket can bring more.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        self.get_ref().0.readable()
    }
}

/// The socket as hyper sees it: bytes read ahead of hyper come first, and
/// writes are watched for whether they were flushed.
struct Watched<S> {
    stream: S,
    unread: Bytes,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unread.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread[..n]);
        this.unread.advance(n);
        if this.unread.is_empty() {
            // An empty view still holds its allocation.
            this.unread = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.activity.unflushed.store(false, Relaxed);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves one connection until it closes or `shutdown` is done with it.
/// `waiting` counts it while it is parked. Its first request head must be
/// whole by `head_by`: `header_read_timeout` after the connection was
/// accepted, so that a TLS handshake counts against it too.
pub(crate) async fn serve<S, H, F, B>(
    stream: S,
    protocols: &Protocols,
    (handler, conn): (H, Conn),
    (shutdown, waiting): (&CancellationToken, &Gauge),
    head_by: tokio::time::Instant,
) where
    S: Readiness,
    H: Fn(Request<RequestBody>, Conn) -> F + Unpin + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::default());
    let mut io = Watched {
        stream,
        unread: Bytes::new(),
        activity: Arc::clone(&activity),
    };
    let first = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return,
        first = tokio::time::timeout_at(head_by, preface(&mut io)) => first,
    };
    match first {
        Ok(Ok(true)) => {
            let streams = Arc::new(Streams::new());
            let watching = Arc::clone(&streams);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let done = watching.start();
                let answer = handler(req.map(RequestBody::unwatched), conn);
                async move {
                    answer.await.map(|r| {
                        r.map(|body| Answer {
                            body,
                            answered: done,
                        })
                    })
                }
            });
            // Boxed: HTTP/2's state would otherwise size every
            // connection's task.
            Box::pin(serve_http2(io, protocols, service, &streams, shutdown)).await;
        }
        Ok(Ok(false)) => {
            let watching = Arc::clone(&activity);
            let service = hyper::service::service_fn(move |req| {
                let (req, done) = watching.start(req);
                let answer = handler(req, conn);
                async move {
                    answer.await.map(|r| {
                        r.map(|body| Answer {
                            body,
                            answered: done,
                        })
                    })
                }
            });
            serve_http1(
                io,
                protocols,
                service,
                (&activity, head_by),
                (shutdown, waiting),
            )
            .await;
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %conn.peer, error = %e, "connection closed before a request")
        }
        Err(_) => tracing::debug!(peer = %conn.peer, "no request within header_read_timeout"),
    }
}

/// Reads the connection's first bytes, as many as it takes to tell
/// HTTP/2's preface from anything else, and leaves them to be read again.
/// True for HTTP/2.
async fn preface<S: AsyncRead + Unpin>(io: &mut Watched<S>) -> io::Result<bool> {
    use tokio::io::AsyncReadExt;
    let mut seen = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    while filled < seen.len() {
        let n = io.stream.read(&mut seen[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            break;
        }
        let matched = seen[filled..filled + n] == H2_PREFACE[filled..filled + n];
        filled += n;
        if !matched {
            break;
        }
    }
    io.unread = Bytes::copy_from_slice(&seen[..filled]);
    Ok(filled == H2_PREFACE.len() && seen == *H2_PREFACE)
}

/// Serves an HTTP/2 connection until it ends, `shutdown` is done with it,
/// or it has been idle (no stream being answered) for
/// `header_read_timeout`: then it is closed with `GOAWAY`, as an idle
/// HTTP/1.1 connection is closed.
async fn serve_http2<S, Svc, B>(
    io: Watched<S>,
    protocols: &Protocols,
    service: Svc,
    streams: &Streams,
    shutdown: &CancellationToken,
) where
    S: Readiness,
    Svc: hyper::service::HttpService<Incoming, ResBody = B> + Send + 'static,
    Svc::Future: Send + 'static,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = pin!(protocols.http2.serve_connection(TokioIo::new(io), service));
    let timeout = protocols.header_read_timeout;
    let idle = tokio::time::sleep(timeout);
    tokio::pin!(idle);
    let ended = loop {
        tokio::select! {
            ended = conn.as_mut() => break ended,
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            _ = idle.as_mut() => match streams.idle_since() {
                Some(since) if since.elapsed() >= timeout => {
                    tracing::debug!("HTTP/2 connection idle for header_read_timeout: GOAWAY");
                    conn.as_mut().graceful_shutdown();
                    break conn.await;
                }
                Some(since) => idle.as_mut().reset(since + timeout),
                None => idle.as_mut().reset(tokio::time::Instant::now() + timeout),
            },
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP/2 connection ended");
    }
}

/// Serves an HTTP/1.1 connection, parking it whenever it is idle. Its first
/// request's head must be whole by `head_by` (header_read_timeout after
/// the connection opened), and after a park by what was left of the idle
/// timeout: hyper's own timeout, counted from the head's first byte, would
/// otherwise give a client that sends that byte late a second one.
async fn serve_http1<S, Svc, B>(
    mut io: Watched<S>,
    protocols: &Protocols,
    mut service: Svc,
    (activity, mut head_by): (&Activity, tokio::time::Instant),
    (shutdown, waiting): (&CancellationToken, &Gauge),
) where
    S: Readiness,
    Svc: hyper::service::HttpService<Incoming, ResBody = B> + Unpin,
    Svc::Future: Send + 'static,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        // Boxed: while parked, the task keeps only the socket.
        let mut conn = Box::new(
            protocols
                .http1
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        );
        if !idle_after(&mut *conn, (activity, head_by), shutdown).await {
            return;
        }
        // The box is freed here, not at the end of the loop's body.
        let Some(parts) = ({ conn }).into_parts() else {
            return;
        };
        // Taken apart at once: an empty read buffer still holds hyper's
        // allocation.
        let read = parts.read_buf;
        io = parts.io.into_inner();
        service = parts.service;
        // What is left of header_read_timeout (the connection has been
        // idle a period): for the next head, parked or not.
        head_by =
            tokio::time::Instant::now() + protocols.header_read_timeout.saturating_sub(PARK_AFTER);
        if !read.is_empty() {
            // Part of a next request was read: serve it at once, and park
            // only after it is answered (a client sending a head a byte at
            // a time gets no fresh header_read_timeout each period).
            let mut unread = BytesMut::from(read);
            unread.extend_from_slice(&io.unread);
            io.unread = unread.freeze();
            activity.answering.store(true, Relaxed);
            continue;
        }
        drop(read);
        // Parked until the client sends more, by `head_by`.
        crate::memory::released();
        waiting.inc();
        let woken = tokio::select! {
            biased;
            _ = shutdown.cancelled() => false,
            ready = tokio::time::timeout_at(head_by, io.stream.readable()) => matches!(ready, Ok(Ok(()))),
        };
        waiting.dec();
        if !woken {
            return;
        }
    }
}

/// Drives a hyper HTTP/1.1 connection until it ends (false) or has been
/// idle for [`PARK_AFTER`] (true). A connection whose first request has
/// not started by `head_by` is ended, at the first check after it.
///
/// What runs on every poll is kept to two loads besides hyper's own work:
/// the shutdown token's flag and whether the check is due. The check's
/// timer wakes the connection once a period, which is also when an idle
/// connection notices a shutdown (a busy one notices it at its next poll).
async fn idle_after<C>(
    conn: &mut C,
    (activity, head_by): (&Activity, tokio::time::Instant),
    shutdown: &CancellationToken,
) -> bool
where
    C: Future<Output = hyper::Result<()>> + Unpin + Graceful,
{
    let mut check = pin!(tokio::time::sleep(PARK_AFTER));
    let mut armed = false;
    let mut stopping = false;
    let first = activity.started.load(Relaxed);
    let mut seen = first;
    let mut was_idle = false;
    poll_fn(|cx| loop {
        if let Poll::Ready(ended) = Pin::new(&mut *conn).poll(cx) {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
            return Poll::Ready(false);
        }
        if stopping {
            return Poll::Pending;
        }
        if shutdown.is_cancelled() {
            stopping = true;
            conn.graceful();
            continue;
        }
        // Polled once after each reset, so that the timer wakes this task.
        let due = if armed {
            check.is_elapsed()
        } else {
            armed = true;
            check.as_mut().poll(cx).is_ready()
        };
        if !due {
            return Poll::Pending;
        }
        let started = activity.started.load(Relaxed);
        if started == first && tokio::time::Instant::now() >= head_by {
            tracing::debug!("no request head within header_read_timeout");
            return Poll::Ready(false);
        }
        let idle = activity.idle();
        if idle && was_idle && started == seen {
            return Poll::Ready(true);
        }
        (seen, was_idle) = (started, idle);
        check
            .as_mut()
            .reset(tokio::time::Instant::now() + PARK_AFTER);
        armed = false;
    })
    .await
}

/// A connection that can be asked to finish what it is doing and close.
trait Graceful {
    fn graceful(&mut self);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(&mut self) {
        Pin::new(self).graceful_shutdown();
    }
}
