//! An upstream's connections: kept-alive HTTP/1.1 connections in a free list
//! per target, and one shared HTTP/2 connection per target (h2c, or h2 by
//! ALPN), over `hyper::client::conn`.
//!
//! A request takes the most recently used connection off its target's list
//! under a mutex, and its response body puts the connection back when it
//! ends. hyper-util's pooled client does the same with more bookkeeping per
//! request: its checkout, a task spawned per response to wait for the
//! connection to be idle again, and the pooled handle's drop cost 6,500 of
//! a pass-through's 71,000 instructions.
//!
//! Connections idle for longer than `idle_timeout` are closed (looked at
//! whenever the list is touched, and by a sweep every `idle_timeout` while
//! any is kept); at most `max_idle` are kept per target, the oldest closed
//! first.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::quickack::QuickAckConnector;
use crate::body::{Body, BoxError};

/// What opens connections: TCP (quick ACKs), TLS for `https`.
pub type Connector = HttpsConnector<QuickAckConnector>;

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(BoxError),
    /// The exchange failed on a connection.
    Http(hyper::Error),
}

/// One upstream's connections, per target.
pub struct Pool {
    connector: Connector,
    /// Every connection speaks HTTP/2 (h2c).
    h2_only: bool,
    shared: Arc<Shared>,
}

struct Shared {
    targets: Vec<Mutex<Kept>>,
    idle_timeout: Duration,
    max_idle: usize,
    /// Whether the sweep of idle connections runs.
    sweeping: AtomicBool,
}

/// A target's connections not in use.
#[derive(Default)]
struct Kept {
    /// HTTP/1.1 connections and when each was put back, oldest first.
    h1: VecDeque<(http1::SendRequest<Body>, Instant)>,
    /// The HTTP/2 connection, shared by every request.
    h2: Option<http2::SendRequest<Body>>,
}

impl Kept {
    /// Closes connections idle since before `now - timeout` or closed by
    /// the target.
    fn expire(&mut self, now: Instant, timeout: Duration) {
        while self
            .h1
            .front()
            .is_some_and(|(s, at)| now.duration_since(*at) >= timeout || s.is_closed())
        {
            self.h1.pop_front();
        }
        if self.h2.as_ref().is_some_and(http2::SendRequest::is_closed) {
            self.h2 = None;
        }
    }
}

/// A connection taken for one request.
enum Taken {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Pool {
    /// A pool for `targets` targets.
    pub fn new(
        connector: Connector,
        h2_only: bool,
        targets: usize,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        Self {
            connector,
            h2_only,
            shared: Arc::new(Shared {
                targets: (0..targets).map(|_| Mutex::default()).collect(),
                idle_timeout,
                max_idle,
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` to target `index` at `scheme://authority`; `req`'s URI
    /// needs a path (and query). A request that never left on a reused
    /// connection (the target closed it as it was taken) goes on another.
    pub async fn send(
        &self,
        index: usize,
        scheme: &Scheme,
        authority: &Authority,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        loop {
            let taken = self.take(index);
            match taken {
                Some(Taken::H2(sender)) => {
                    return send_h2(sender, scheme, authority, req).await;
                }
                Some(Taken::H1(mut sender)) => {
                    // Put back as its last response ended, it may still be
                    // finishing that exchange.
                    if sender.ready().await.is_err() {
                        continue;
                    }
                    prepare_h1(&mut req, authority);
                    match sender.try_send_request(req).await {
                        Ok(resp) => return Ok(self.pooled(index, sender, resp)),
                        Err(mut e) => match e.take_message() {
                            Some(unsent) => req = unsent,
                            None => return Err(SendError::Http(e.into_error())),
                        },
                    }
                }
                None => break,
            }
        }
        // Boxed: connecting is rare, and its state would otherwise grow
        // every upstream request's future.
        match Box::pin(self.connect(scheme, authority)).await? {
            Taken::H2(sender) => {
                if let Some(slot) = self.shared.targets.get(index) {
                    lock(slot).h2 = Some(sender.clone());
                }
                send_h2(sender, scheme, authority, req).await
            }
            Taken::H1(mut sender) => {
                prepare_h1(&mut req, authority);
                match sender.try_send_request(req).await {
                    Ok(resp) => Ok(self.pooled(index, sender, resp)),
                    Err(e) => Err(SendError::Http(e.into_error())),
                }
            }
        }
    }

    /// The target's HTTP/2 connection, or its most recently used HTTP/1.1
    /// one.
    fn take(&self, index: usize) -> Option<Taken> {
        let mut kept = lock(self.shared.targets.get(index)?);
        kept.expire(Instant::now(), self.shared.idle_timeout);
        if let Some(h2) = &kept.h2 {
            return Some(Taken::H2(h2.clone()));
        }
        while let Some((sender, _)) = kept.h1.pop_back() {
            if !sender.is_closed() {
                return Some(Taken::H1(sender));
            }
        }
        None
    }

    /// Opens a connection: HTTP/2 when the upstream is h2c or TLS chose it.
    async fn connect(&self, scheme: &Scheme, authority: &Authority) -> Result<Taken, SendError> {
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(SendError::Connect)?;
        if self.h2_only || io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(SendError::Http)?;
            tokio::spawn(conn);
            Ok(Taken::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(SendError::Http)?;
            tokio::spawn(conn.with_upgrades());
            Ok(Taken::H1(sender))
        }
    }

    /// The response, its body putting the connection back when it ends.
    fn pooled(
        &self,
        index: usize,
        sender: http1::SendRequest<Body>,
        resp: Response<Incoming>,
    ) -> Response<Body> {
        let back = Back {
            shared: self.shared.clone(),
            index,
            sender,
        };
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            // The connection is the client's now: held until hyper hands
            // it over, never put back.
            let mut sender = back.sender;
            tokio::spawn(async move {
                let _ = sender.ready().await;
            });
            return resp.map(crate::body::boxed);
        }
        if resp.body().is_end_stream() {
            back.put();
            return resp.map(crate::body::boxed);
        }
        resp.map(|body| {
            crate::body::boxed(Pooled {
                body,
                back: Some(back),
            })
        })
    }
}

/// A request over HTTP/2, its URI absolute.
async fn send_h2(
    mut sender: http2::SendRequest<Body>,
    scheme: &Scheme,
    authority: &Authority,
    mut req: Request<Body>,
) -> Result<Response<Body>, SendError> {
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = Version::HTTP_2;
    let resp = sender.send_request(req).await.map_err(SendError::Http)?;
    Ok(resp.map(crate::body::boxed))
}

/// An HTTP/1.1 request: its target in origin form, and a `Host` where the
/// client sent none (an HTTP/2 client sends `:authority` instead).
fn prepare_h1(req: &mut Request<Body>, authority: &Authority) {
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
    }
    if !req.headers().contains_key(HOST) {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(HOST, v);
        }
    }
    *req.version_mut() = Version::HTTP_11;
}

fn lock(slot: &Mutex<Kept>) -> std::sync::MutexGuard<'_, Kept> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// An HTTP/1.1 connection to put back once its response has ended.
struct Back {
    shared: Arc<Shared>,
    index: usize,
    sender: http1::SendRequest<Body>,
}

impl Back {
    fn put(self) {
        let Back {
            shared,
            index,
            sender,
        } = self;
        if sender.is_closed() {
            return;
        }
        let Some(slot) = shared.targets.get(index) else {
            return;
        };
        let now = Instant::now();
        {
            let mut kept = lock(slot);
            kept.expire(now, shared.idle_timeout);
            if shared.max_idle == 0 {
                return;
            }
            if kept.h1.len() >= shared.max_idle {
                kept.h1.pop_front();
            }
            kept.h1.push_back((sender, now));
        }
        if !shared.sweeping.swap(true, Ordering::Relaxed) {
            sweep(Arc::downgrade(&shared), shared.idle_timeout);
        }
    }
}

/// Closes idle connections past their time every `every`, for as long as
/// the pool lives.
fn sweep(shared: Weak<Shared>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = Instant::now();
            for slot in &shared.targets {
                lock(slot).expire(now, shared.idle_timeout);
            }
        }
    });
}

/// A response body that puts its connection back when it ends.
struct Pooled {
    body: Incoming,
    back: Option<Back>,
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Ok(_)) if !self.body.is_end_stream() => {}
            // The end, or an error (the connection is not put back).
            Some(Err(_)) => self.back = None,
            _ => {
                if let Some(back) = self.back.take() {
                    back.put();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
