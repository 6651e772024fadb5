//! Whether a connection is idle.
//!
//! An HTTP/1.1 connection ([`Activity`]) is known idle from three signals
//! cheap enough to keep on every request:
//!
//! - its response is answered: hyper drops the response body ([`Answer`])
//!   once its last byte is encoded;
//! - its request body was read to its end ([`RequestBody`]): until then
//!   hyper may still be reading it, and a connection taken apart then
//!   would serve the rest of the body as a request of its own;
//! - every byte written since was flushed to the socket.
//!
//! A request's body dropped before its end counts as read: hyper, told by
//! the drop, discards the rest if it has all of it and otherwise stops
//! reading and closes the connection once the response is sent. Either is
//! settled in the connection's own task right after the drop, long before
//! an idle check could find the connection idle twice.
//!
//! An HTTP/2 connection ([`Streams`]) is idle while none of its streams is
//! being answered, since the last one was.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Duration, Instant};

/// What tells an HTTP/1.1 connection is idle (see the module's docs).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Requests started on the connection.
    pub(crate) started: AtomicU32,
    /// A request's response is not answered yet.
    pub(crate) answering: AtomicBool,
    /// A request's body is not read to its end yet.
    uploading: AtomicBool,
    /// Bytes were written since the last completed flush.
    pub(crate) unflushed: AtomicBool,
}

impl Activity {
    pub(crate) fn idle(&self) -> bool {
        !self.answering.load(Relaxed)
            && !self.uploading.load(Relaxed)
            && !self.unflushed.load(Relaxed)
    }

    /// A request starts: the connection is busy until its response body is
    /// dropped and its own body was read to its end. Gives the request,
    /// its body watched, and what its response body holds.
    pub(crate) fn start(
        self: &Arc<Self>,
        request: Request<Incoming>,
    ) -> (Request<RequestBody>, Answered) {
        let started = self.started.load(Relaxed).wrapping_add(1);
        self.started.store(started, Relaxed);
        self.answering.store(true, Relaxed);
        let uploading = !request.body().is_end_stream();
        self.uploading.store(uploading, Relaxed);
        let watch = uploading.then(|| (Arc::clone(self), started));
        let request = request.map(|inner| RequestBody { inner, watch });
        (request, Answered::Http1(Arc::clone(self)))
    }
}

/// What tells an HTTP/2 connection is idle: its streams being answered,
/// and since when none is.
#[derive(Debug)]
pub(crate) struct Streams {
    open: AtomicU32,
    /// When the last stream was answered, or the connection began:
    /// milliseconds after `began`.
    idle_since: AtomicU64,
    began: Instant,
}

impl Streams {
    pub(crate) fn new() -> Self {
        Self {
            open: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            began: Instant::now(),
        }
    }

    /// A stream's request starts: the connection is busy until its
    /// response body is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> Answered {
        self.open.fetch_add(1, Relaxed);
        Answered::Http2(Arc::clone(self))
    }

    /// Since when no stream is being answered; `None` while one is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        (self.open.load(Relaxed) == 0)
            .then(|| self.began + Duration::from_millis(self.idle_since.load(Relaxed)))
    }
}

/// Marks its request answered when dropped: held by a response body.
pub(crate) enum Answered {
    Http1(Arc<Activity>),
    Http2(Arc<Streams>),
}

impl Drop for Answered {
    fn drop(&mut self) {
        match self {
            Answered::Http1(activity) => activity.answering.store(false, Relaxed),
            Answered::Http2(streams) => {
                // The last one: idle from now (a stream started meanwhile
                // keeps it busy whatever this says).
                if streams.open.fetch_sub(1, Relaxed) == 1 {
                    let since = streams.began.elapsed().as_millis();
                    let since = u64::try_from(since).unwrap_or(u64::MAX);
                    streams.idle_since.store(since, Relaxed);
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that marks its connection's response answered when
    /// hyper drops it.
    pub(crate) struct Answer<B> {
        #[pin]
        pub(crate) body: B,
        pub(crate) answered: Answered,
    }
}

impl<B: Body> Body for Answer<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request's body as the edge hands it on: hyper's, and on an HTTP/1.1
/// connection it tells the connection when it was read to its end, so
/// that a connection whose last request was an upload can be parked too.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    /// The connection's signals and the request this body belongs to
    /// (while a body is still to be read).
    watch: Option<(Arc<Activity>, u32)>,
}

impl RequestBody {
    /// A body that tells no connection anything (HTTP/2's streams).
    pub(crate) fn unwatched(inner: Incoming) -> Self {
        Self { inner, watch: None }
    }

    /// The end was read, or the body is dropped: the connection's request
    /// no longer holds it busy, unless a later request has started since.
    fn ended(&mut self) {
        if let Some((activity, request)) = self.watch.take() {
            if activity.started.load(Relaxed) == request {
                activity.uploading.store(false, Relaxed);
            }
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.ended();
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        // A body of a known length is at its end with its last byte, and
        // may never be polled again.
        if self.watch.is_some() && (frame.is_none() || self.inner.is_end_stream()) {
            self.ended();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
