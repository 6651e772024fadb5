//! What the steps of the cache stage share: the handles one route's cache
//! work needs ([`CacheCtx`]), and one fill in progress ([`FillJob`]).

use std::sync::Arc;
use std::time::SystemTime;

use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, Method, Response, StatusCode};
use rampart_cache::coalesce::FillGuard;
use rampart_cache::encoding::choose;
use rampart_cache::{key, CacheStatus, Entry, Fill, Forward, NoCacheReason};
use rampart_config::{CachePolicy, Encoding};

use crate::body::Body;
use crate::compress::{coding, eligible};
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

    /// Answers from a stored entry at the cache's time now, in the best
    /// coding the client accepts; see [`CacheCtx::answer_at`].
    pub async fn answer(
        &self,
        key: &str,
        entry: &Arc<Entry>,
        head: &RequestHead,
        status: &CacheStatus,
    ) -> Response<Body> {
        self.answer_at(key, entry, head, status, self.tiers.now())
            .await
    }

    /// Answers from a stored entry with the `Age` it has at `now`. When the
    /// client would rather have a coding the entry lacks, the first such
    /// client waits while it is made (as the client that filled the entry
    /// did for its own) and it is added to the stored entry; clients asking
    /// for it meanwhile get the best coding already stored.
    pub async fn answer_at(
        &self,
        key: &str,
        entry: &Arc<Entry>,
        head: &RequestHead,
        status: &CacheStatus,
        now: SystemTime,
    ) -> Response<Body> {
        let choice = choose(
            head.headers.get(ACCEPT_ENCODING),
            &self.tiers.compression.algorithms,
            &entry.encoded,
        );
        if let Some(missing) = choice.missing.filter(|_| head.method == Method::GET) {
            if let Some(updated) = self.make_coding(key, entry, missing).await {
                return serve_entry(&updated, head, status, now, Some(missing));
            }
        }
        serve_entry(entry, head, status, now, choice.send)
    }

    /// Answers from a stored entry in the best coding it already has.
    pub fn answer_stored(
        &self,
        entry: &Entry,
        head: &RequestHead,
        status: &CacheStatus,
    ) -> Response<Body> {
        let choice = choose(
            head.headers.get(ACCEPT_ENCODING),
            &self.tiers.compression.algorithms,
            &entry.encoded,
        );
        serve_entry(entry, head, status, self.tiers.now(), choice.send)
    }

    /// Whether Rampart may make codings of a body it stores on this route:
    /// the route compresses and the response is eligible (which also
    /// refuses a body the origin encoded itself).
    pub fn encodes(&self, status: StatusCode, headers: &HeaderMap, len: usize) -> bool {
        self.route.config.compress
            && eligible(&self.tiers.compression, status, headers, Some(len as u64))
    }

    /// Makes `encoding` for a stored entry, once per entry (the first
    /// caller; whether the entry may be encoded is asked only then), and
    /// adds it to the stored entry. Returns the entry with it.
    async fn make_coding(
        &self,
        key: &str,
        entry: &Arc<Entry>,
        encoding: Encoding,
    ) -> Option<Arc<Entry>> {
        if !entry.asked.claim(encoding)
            || !self.encodes(entry.status, &entry.headers, entry.body.len())
        {
            return None;
        }
        let bytes = coding(entry.body.clone(), encoding).await?;
        let made = vec![(encoding, bytes)];
        self.tiers.l1.add_encodings(key, entry, made.clone());
        let mut updated = Entry::clone(entry);
        updated.encoded.extend(made);
        Some(Arc::new(updated))
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
