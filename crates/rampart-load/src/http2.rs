//! HTTP/2 for one virtual user: an `h2` connection that the user's own task
//! drives while it waits for its answer.
//!
//! hyper's client runs each connection as a task of its own and hands it
//! every request over a channel, so a request crosses tasks twice (the
//! request there, the response back) and wakes two tasks per exchange. Here
//! the user polls the connection and its stream together: one task, one
//! wake-up per answer, as with [`crate::http1::Conn`].

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use http::{HeaderMap, Method, Request, Uri};

use crate::failure::{Failed, Failure};
use crate::http1::{response_head_size, Response, Stream, FRESH};

/// A stream's receive window: 2 MiB, as hyper's client opens them (a body
/// up to that size needs no window update).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// The connection's receive window: 5 MiB, as hyper's.
const CONN_WINDOW: u32 = 5 * 1024 * 1024;

/// One HTTP/2 connection (h2c, or h2 by ALPN over TLS).
pub struct H2Conn {
    send: SendRequest<Bytes>,
    conn: Pin<Box<Connection<Stream, Bytes>>>,
    /// Why the connection ended, once it has.
    ended: Option<Failed>,
    /// When the last response was read whole.
    answered: Option<Instant>,
    /// Whether the last failed request may be sent again on a new connection.
    retry: bool,
}

impl H2Conn {
    /// Opens HTTP/2 on a connected stream (the preface and settings go out
    /// with the first request).
    pub async fn handshake(stream: Stream) -> Result<Self, Failed> {
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .handshake(stream)
            .await
            .map_err(|e| failed(&e))?;
        Ok(Self {
            send,
            conn: Box::pin(conn),
            ended: None,
            answered: None,
            retry: false,
        })
    }

    /// Whether another request may be sent on it. A connection answered
    /// less than [`FRESH`] ago is taken as it is; an older one first reads
    /// what the server sent meanwhile (a GOAWAY, a PING), without waiting.
    pub fn reusable(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        if self.answered.is_some_and(|at| at.elapsed() < FRESH) {
            return true;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        drive(&mut self.conn, &mut self.ended, &mut cx);
        self.ended.is_none()
    }

    /// Whether the request that just failed may be sent again on a new
    /// connection: it never left, or the server refused its stream unread
    /// (a GOAWAY naming an earlier last stream, or `REFUSED_STREAM`), which
    /// RFC 9113 §8.7 calls safe to retry whatever the method.
    pub fn may_retry(&self) -> bool {
        self.retry
    }

    /// Sends one request (`uri` absolute) and reads its whole response,
    /// keeping the first `keep` bytes of the body.
    pub async fn send(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
        keep: usize,
    ) -> Result<Response, Failed> {
        let mut req = Request::new(());
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers.clone();
        self.retry = false;
        let Self {
            send,
            conn,
            ended,
            retry,
            ..
        } = self;
        let mut exchange = std::pin::pin!(exchange(send, req, body.clone(), keep, retry));
        let result = poll_fn(|cx| {
            if let Poll::Ready(r) = exchange.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            drive(conn, ended, cx);
            match ended {
                None => Poll::Pending,
                // The stream learns of the end on its next poll.
                Some(why) => match exchange.as_mut().poll(cx) {
                    Poll::Ready(r) => Poll::Ready(r),
                    Poll::Pending => Poll::Ready(Err(why.clone())),
                },
            }
        })
        .await;
        match result {
            Ok(response) => {
                self.answered = Some(Instant::now());
                Ok(response)
            }
            Err(e) => {
                if self.ended.is_none() {
                    self.ended = Some(e.clone());
                }
                Err(e)
            }
        }
    }
}

/// Polls the connection (its reads, writes and timers), noting in `ended`
/// why it ended once it has.
fn drive(
    conn: &mut Pin<Box<Connection<Stream, Bytes>>>,
    ended: &mut Option<Failed>,
    cx: &mut Context<'_>,
) {
    if ended.is_none() {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            *ended = Some(match result {
                Ok(()) => Failed::new(Failure::Closed, "the server closed the connection"),
                Err(e) => failed(&e),
            });
        }
    }
}

/// One request and its response on a stream of the connection; `retry`
/// says whether a failure left the request unread by the server.
async fn exchange(
    send: &mut SendRequest<Bytes>,
    req: Request<()>,
    body: Bytes,
    keep: usize,
    retry: &mut bool,
) -> Result<Response, Failed> {
    // Until the stream opens, nothing has left.
    *retry = true;
    poll_fn(|cx| send.poll_ready(cx))
        .await
        .map_err(|e| failed(&e))?;
    let end = body.is_empty();
    let (answer, mut outgoing) = send.send_request(req, end).map_err(|e| failed(&e))?;
    *retry = false;
    if !end {
        // Beyond the peer's window, h2 keeps the rest and sends it as
        // window updates arrive.
        outgoing.send_data(body, true).map_err(|e| failed(&e))?;
    }
    let (parts, mut incoming) = answer
        .await
        .map_err(|e| {
            *retry = refused(&e);
            failed(&e)
        })?
        .into_parts();
    let mut kept: Vec<u8> = Vec::new();
    // As HTTP/1.1 would write the head (HPACK makes it smaller).
    let mut received = response_head_size(&parts.headers);
    while let Some(data) = incoming.data().await {
        let data = data.map_err(|e| failed(&e))?;
        received += data.len() as u64;
        let _ = incoming.flow_control().release_capacity(data.len());
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
    }
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Bytes::from(kept),
        // What the caller counts.
        bytes_sent: 0,
        bytes_received: received,
    })
}

/// Whether the server refused a stream without reading it.
fn refused(e: &h2::Error) -> bool {
    e.is_remote() && (e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM))
}

/// A failure from h2's error.
fn failed(e: &h2::Error) -> Failed {
    let failure = match e.get_io() {
        Some(io) => Failure::of_io(io),
        None if e.is_go_away() && e.is_remote() => Failure::Closed,
        None if e.is_reset() && e.is_remote() => Failure::Reset,
        // h2 found the peer breaking the protocol.
        None if e.is_library() => Failure::BadResponse,
        // What h2 refused to send (a connection-specific header, say).
        None => Failure::BadRequest,
    };
    Failed::new(failure, e.to_string())
}
