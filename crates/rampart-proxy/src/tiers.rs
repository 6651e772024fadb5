//! The cache's tiers as the request path sees them: this node's memory
//! (L1), the shared Redis tier (L2) when configured, the coalescer, and
//! whether L1 may be trusted now (with Redis, only while this node is in
//! touch with the purge sequence).

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use rampart_cache::{Coalescer, Entry, Lookup, MemoryCache};
use rampart_cluster::{l2, Fanout, Redis};
use rampart_config::{CacheConfig, CompressionConfig};
use rampart_core::Clock;

/// The tiers and what deciding about them needs.
pub struct Tiers {
    /// This node's memory tier.
    pub l1: Arc<MemoryCache>,
    /// The shared tier, when `[cache] redis` is set.
    pub redis: Option<Arc<Redis>>,
    /// The purge fan-out, with Redis: says whether L1 is trusted.
    pub fanout: Option<Arc<Fanout>>,
    /// Misses in flight, one origin request per key.
    pub coalescer: Arc<Coalescer>,
    /// `[cache]`.
    pub settings: CacheConfig,
    /// `[compression]`: stored responses are compressed when stored.
    pub compression: CompressionConfig,
    /// The clock freshness is judged by.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiers")
            .field("l1", &self.l1)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl Tiers {
    /// Whether the memory tier may be used now: always on a single node;
    /// with Redis, only while this node is in touch with the purge sequence.
    pub fn l1_usable(&self) -> bool {
        self.settings.memory > 0 && self.fanout.as_ref().is_none_or(|f| f.l1_usable())
    }

    /// The time now, on the cache's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The variant of `key` in L1 that matches the request, if L1 may be used.
    pub fn lookup(&self, key: &str, request: &HeaderMap) -> Lookup {
        if self.l1_usable() {
            self.l1.lookup(key, request)
        } else {
            Lookup::Miss
        }
    }

    /// The entry of `key` in L2 if it matches the request, promoted to L1
    /// (when L1 may be used).
    pub async fn lookup_shared(&self, key: &str, request: &HeaderMap) -> Option<Arc<Entry>> {
        let entry = l2::get(self.redis.as_ref()?, key).await?;
        if !entry.matches(request) {
            return None;
        }
        Some(if self.l1_usable() {
            self.l1.insert(key, entry)
        } else {
            Arc::new(entry)
        })
    }

    /// Stores an entry: in L1 (unless this node is out of touch with the
    /// purge sequence) and, in the background, in L2.
    pub fn store(&self, key: &str, entry: Entry) -> Arc<Entry> {
        let entry = if self.l1_usable() {
            self.l1.insert(key, entry)
        } else {
            Arc::new(entry)
        };
        if let Some(redis) = &self.redis {
            l2::put(redis, key, &entry, self.now());
        }
        entry
    }
}
