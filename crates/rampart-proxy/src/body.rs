//! Body types and helpers. Bodies stream in both directions; only cacheable
//! responses up to `max_object_size` are gathered in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, BodyStream, Empty, Full, StreamBody};

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response Rampart builds.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with all its bytes at hand.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Any body, boxed.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Why a client's request body could not be forwarded: the client's fault,
/// never the upstream's (it counts against no breaker or health check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// More bytes than `max_body_size`.
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The client's body broke off or was malformed (an aborted upload, bad
    /// chunked framing).
    #[error("the request body could not be read from the client")]
    Broken,
    /// The client had not sent its whole body when the upstream's deadline
    /// passed.
    #[error("the request body stopped arriving")]
    Stalled,
}

/// Whether a client's request body has been read to its end; the request
/// carries it as an extension, so whoever times it out can tell a stalled
/// upload (the client's fault) from a slow upstream.
#[derive(Debug, Clone, Default)]
pub struct BodyProgress(Arc<AtomicBool>);

impl BodyProgress {
    /// Whether the body was read to its end.
    pub fn finished(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request's body as a listener hands it in: hyper's own, or the edge's
/// wrapper of it, which tells its connection when it was read to its end.
pub trait Incoming:
    http_body::Body<Data = Bytes, Error: std::fmt::Display + Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> Incoming for B where
    B: http_body::Body<Data = Bytes, Error: std::fmt::Display + Into<BoxError>>
        + Send
        + Unpin
        + 'static
{
}

/// A client's request body, at most `limit` bytes, and its progress; its
/// failures are [`ClientBodyError`]s, so whoever sends it upstream can tell
/// them from the upstream's.
pub fn from_client<B: Incoming>(body: B, limit: u64) -> (Body, BodyProgress) {
    let progress = BodyProgress::default();
    if body.is_end_stream() {
        progress.0.store(true, Ordering::Relaxed);
    }
    let wrapped = ClientBody {
        body,
        limit,
        read: 0,
        progress: progress.clone(),
    };
    (wrapped.boxed_unsync(), progress)
}

struct ClientBody<B> {
    body: B,
    limit: u64,
    read: u64,
    progress: BodyProgress,
}

impl<B> http_body::Body for ClientBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        std::task::Poll::Ready(match frame {
            None => {
                self.progress.0.store(true, Ordering::Relaxed);
                None
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "client request body failed");
                Some(Err(Box::new(ClientBodyError::Broken)))
            }
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                }
                if self.read > self.limit {
                    Some(Err(Box::new(ClientBodyError::TooLarge {
                        limit: self.limit,
                    })))
                } else {
                    Some(Ok(frame))
                }
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What reading a body up to a limit gave.
pub enum Gathered {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// More than the limit: what was read, and the rest still streaming.
    Overflow {
        /// Chunks already read.
        prefix: Vec<Bytes>,
        /// The unread remainder.
        rest: Body,
    },
}

/// Reads `body` until its end or until more than `limit` bytes have come.
/// A complete body is returned in an allocation of its own size: the frames
/// hyper yields are slices of a connection's read buffer, and keeping one in
/// the cache would keep that whole buffer (and the bodies and heads of other
/// responses in it) alive, outside the cache's byte budget.
pub async fn gather(mut body: Body, limit: u64) -> Result<Gathered, BoxError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len() as u64;
        chunks.push(data);
        if total > limit {
            return Ok(Gathered::Overflow {
                prefix: chunks,
                rest: body,
            });
        }
    }
    Ok(Gathered::Complete(match chunks.len() {
        0 => Bytes::new(),
        1 => Bytes::copy_from_slice(&chunks[0]),
        _ => {
            let mut all = Vec::with_capacity(total as usize);
            for c in &chunks {
                all.extend_from_slice(c);
            }
            Bytes::from(all)
        }
    }))
}

/// Chunks already read followed by the rest of a body, streaming.
pub fn prefixed(prefix: Vec<Bytes>, rest: Body) -> Body {
    let head = futures_util::stream::iter(prefix.into_iter().map(|b| Ok(Frame::data(b))));
    let tail = BodyStream::new(rest);
    StreamBody::new(head.chain(tail)).boxed_unsync()
}

/// A body's data frames as a byte stream (trailers dropped).
pub fn data_stream(
    body: Body,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    BodyStream::new(body)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
        .map_err(std::io::Error::other)
}

/// A body that holds `guard` until it is dropped (sent to its end, or
/// abandoned): an upstream slot or an in-flight count lasts as long as the
/// response body still streams, not just until its headers.
struct Guarded<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> http_body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// `body`, holding `guard` until the body is dropped.
pub fn guarded<G: Unpin + Send + 'static>(body: Body, guard: G) -> Body {
    Guarded {
        body,
        _guard: guard,
    }
    .boxed_unsync()
}
