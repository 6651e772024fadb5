//! An upstream's connections: kept-alive HTTP/1.1 connections in a free list
//! per target, and one shared HTTP/2 connection per target (h2c, or h2 by
//! ALPN).
//!
//! A request takes the most recently used connection off its target's list
//! under a mutex and drives the exchange in its own task ([`super::h1`]);
//! the response body puts the connection back when it ends. hyper-util's
//! pooled client did the same with more bookkeeping per request (its
//! checkout, a task spawned per response to wait for the connection to be
//! idle again, and the pooled handle's drop: 6,500 of a pass-through's
//! 71,000 instructions) and a connection task of its own per connection.
//! Upgrades (WebSocket) go over hyper's client connection on a connection
//! of their own, which is never put back.
//!
//! Connections idle for longer than `idle_timeout` are closed (looked at
//! whenever the list is touched, and by a sweep every `idle_timeout` while
//! any is kept); at most `max_idle` are kept per target, the oldest closed
//! first. A kept connection the target has closed is noticed as it is
//! taken, and by the sweep.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::header::{HOST, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::Body as _;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower_service::Service;

use super::h1::{self, Conn};
use super::quickack::QuickAckConnector;
use crate::body::{empty, Body, BoxError};

/// What opens connections: TCP (quick ACKs), TLS for `https`.
pub type Connector = HttpsConnector<QuickAckConnector>;

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(BoxError),
    /// The exchange failed on an HTTP/2 connection, or an upgrade's.
    Http(hyper::Error),
    /// The exchange failed on an HTTP/1.1 connection.
    H1(h1::Error),
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
    h1: VecDeque<(Box<Conn>, Instant)>,
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
            .is_some_and(|(_, at)| now.duration_since(*at) >= timeout)
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
    H1(Box<Conn>),
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
    /// connection (the target had closed it) goes on another.
    pub async fn send(
        &self,
        index: usize,
        scheme: &Scheme,
        authority: &Authority,
        req: &mut Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        let upgrade = req.headers().contains_key(UPGRADE);
        while let Some(taken) = self.take(index, !upgrade) {
            match taken {
                Taken::H2(sender) => return send_h2(sender, scheme, authority, handed(req)).await,
                Taken::H1(conn) => match self.send_h1(index, authority, conn, req, true).await {
                    Err(h1::Error::Unsent) => continue,
                    sent => return sent.map_err(SendError::H1),
                },
            }
        }
        // Boxed: connecting is rare, and its state would otherwise grow
        // every upstream request's future.
        match Box::pin(self.connect(scheme, authority)).await? {
            Taken::H2(sender) => {
                if let Some(slot) = self.shared.targets.get(index) {
                    lock(slot).h2 = Some(sender.clone());
                }
                send_h2(sender, scheme, authority, handed(req)).await
            }
            Taken::H1(conn) if upgrade => {
                prepare_h1(req, authority);
                Box::pin(upgrade_h1(conn, handed(req))).await
            }
            Taken::H1(conn) => self
                .send_h1(index, authority, conn, req, false)
                .await
                .map_err(SendError::H1),
        }
    }

    /// `req` over an HTTP/1.1 connection to target `index` (`reused`: it
    /// served an earlier request), which goes back to the target's list
    /// when the exchange ends clean.
    async fn send_h1(
        &self,
        index: usize,
        authority: &Authority,
        conn: Box<Conn>,
        req: &mut Request<Body>,
        reused: bool,
    ) -> Result<Response<Body>, h1::Error> {
        prepare_h1(req, authority);
        let shared = self.shared.clone();
        h1::exchange(conn, req, reused, move |conn| shared.put(index, conn)).await
    }

    /// The target's HTTP/2 connection, or its most recently used HTTP/1.1
    /// one (only when `h1`).
    fn take(&self, index: usize, h1: bool) -> Option<Taken> {
        let mut kept = lock(self.shared.targets.get(index)?);
        kept.expire(Instant::now(), self.shared.idle_timeout);
        if let Some(h2) = &kept.h2 {
            return Some(Taken::H2(h2.clone()));
        }
        if !h1 {
            return None;
        }
        kept.h1.pop_back().map(|(conn, _)| Taken::H1(conn))
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
            Ok(Taken::H1(Conn::new(TokioIo::new(io))))
        }
    }
}

/// The request for one of hyper's clients, which consume it: a request
/// without a body leaves a copy of its head in `req`, so that it can be sent
/// again (one with a body cannot be). Rampart's own HTTP/1.1 exchange
/// borrows the request instead, and copies nothing.
fn handed(req: &mut Request<Body>) -> Request<Body> {
    let mut copy = Request::new(empty());
    if !req.body().is_end_stream() {
        return std::mem::replace(req, copy);
    }
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    std::mem::replace(req, copy)
}

/// An upgrade request (WebSocket) over hyper's client connection, on a
/// connection of its own: on `101` the connection is the client's, and it
/// is never put back.
async fn upgrade_h1(conn: Box<Conn>, req: Request<Body>) -> Result<Response<Body>, SendError> {
    let io = conn.into_io().into_inner();
    let (mut sender, connection) = http1::handshake(io).await.map_err(SendError::Http)?;
    tokio::spawn(connection.with_upgrades());
    let resp = sender.send_request(req).await.map_err(SendError::Http)?;
    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        // Held until hyper hands the connection over.
        tokio::spawn(async move {
            let _ = sender.ready().await;
        });
    }
    Ok(resp.map(crate::body::boxed))
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

impl Shared {
    /// Puts target `index`'s connection back after a clean exchange.
    fn put(self: Arc<Self>, index: usize, conn: Box<Conn>) {
        let Some(slot) = self.targets.get(index) else {
            return;
        };
        let now = Instant::now();
        {
            let mut kept = lock(slot);
            kept.expire(now, self.idle_timeout);
            if self.max_idle == 0 {
                return;
            }
            if kept.h1.len() >= self.max_idle {
                kept.h1.pop_front();
            }
            kept.h1.push_back((conn, now));
        }
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            sweep(Arc::downgrade(&self), self.idle_timeout);
        }
    }
}

/// Closes idle connections past their time, and those the target has
/// closed, every `every` (at least every second), for as long as the pool
/// lives.
fn sweep(shared: Weak<Shared>, every: Duration) {
    // At least every second: connections the target closed are let go of
    // soon, whatever the idle timeout.
    let every = every.clamp(Duration::from_millis(100), Duration::from_secs(1));
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
                let mut kept = lock(slot);
                kept.expire(now, shared.idle_timeout);
                kept.h1.retain_mut(|(conn, _)| !conn.closed_while_idle());
            }
        }
    });
}
