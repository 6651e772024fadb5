//! What the steps of the cache stage share: the handles one route's cache
//! work needs ([`CacheCtx`]), and one fill in progress ([`FillJob`]).

use std::sync::Arc;

use http::{Response, StatusCode};
use rampart_cache::coalesce::FillGuard;
use rampart_cache::{key, CacheStatus, Entry, Fill, Forward, NoCacheReason};
use rampart_config::CachePolicy;

use crate::body::Body;
use crate::forward::Upstreams;
use crate::request::RequestHead;
use crate::respond::{pass_through, serve_entry};
use crate::router::Route;
use crate::tiers::Tiers;

/// What the cache stage needs for one route.
#[derive(Clone, Copy)]
pub struct CacheCtx<'a> {
    /// The tiers.
    pub tiers: &'a Arc<Tiers>,
    /// Where misses go.
    pub upstreams: &'a Arc<Upstreams>,
    /// The route.
    pub route: &'a Arc<Route>,
    /// The route's cache policy.
    pub policy: &'a CachePolicy,
}

impl CacheCtx<'_> {
    /// The full cache key of a request on this route.
    pub fn key(&self, head: &RequestHead) -> String {
        key::full_key(head.primary_key(), self.policy, &head.headers)
    }

    /// Answers from a stored entry at the cache's time now.
    pub fn answer(
        &self,
        entry: &Entry,
        head: &RequestHead,
        status: &CacheStatus,
    ) -> Response<Body> {
        serve_entry(
            entry,
            head,
            status,
            self.tiers.now(),
            &self.tiers.compression.algorithms,
        )
    }

    /// Relays a response that is not stored, compressing it on the fly when the
    /// route allows.
    pub fn relay(
        &self,
        head: &RequestHead,
        resp: Response<Body>,
        status: &CacheStatus,
    ) -> Response<Body> {
        let compression = self
            .route
            .config
            .compress
            .then_some(&self.tiers.compression);
        pass_through(
            resp,
            head,
            status,
            compression,
            self.tiers.settings.expose_tags,
        )
    }
}

/// One fill: its key, the stale entry it revalidates (if any), why it goes
/// forward, and the coalescing guard whose followers await its outcome.
pub struct FillJob {
    /// The cache key.
    pub key: String,
    /// The stored entry this fill may revalidate or fall back on.
    pub stale: Option<Arc<Entry>>,
    /// Why the request goes to the origin (RFC 9211 `fwd`).
    pub fwd: Forward,
    guard: Option<FillGuard>,
}

impl FillJob {
    /// A fill of `key`; `guard` is `None` for a request that goes to the
    /// origin on its own (a follower that gave up waiting).
    pub fn new(
        key: &str,
        stale: Option<Arc<Entry>>,
        fwd: Forward,
        guard: Option<FillGuard>,
    ) -> Self {
        Self {
            key: key.to_string(),
            stale,
            fwd,
            guard,
        }
    }

    /// Publishes the outcome to the followers (once).
    pub fn finish(&mut self, fill: Fill) {
        if let Some(g) = self.guard.take() {
            g.finish(fill);
        }
    }

    /// A forward outcome of this fill.
    pub fn forwarded(
        &self,
        status: StatusCode,
        stored: bool,
        reason: Option<NoCacheReason>,
    ) -> CacheStatus {
        CacheStatus::Forward {
            fwd: self.fwd,
            fwd_status: Some(status.as_u16()),
            stored,
            reason,
        }
    }
}
