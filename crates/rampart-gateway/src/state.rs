//! The gateway's shared state, built once from a validated config.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method, Uri};
use rampart_cache::{Coalescer, MemoryCache};
use rampart_config::{CacheConfig, CompressionConfig, Config, ServerConfig};

use crate::metrics::Metrics;
use crate::router::Router;
use crate::upstream::Upstream;
use rampart_core::Clock;

/// The `Cache-Status` header (RFC 9211).
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[compression]`.
    pub compression: CompressionConfig,
    /// Whether to write access-log lines.
    pub access_log: bool,
    /// The routes.
    pub router: Router,
    /// Upstream pools, indexed as in the config.
    pub upstreams: Vec<Upstream>,
    /// The in-memory cache.
    pub l1: MemoryCache,
    /// Misses in flight.
    pub coalescer: Arc<Coalescer>,
    /// Rate limits per route.
    pub limiters: crate::limits::Limiters,
    /// Admission control per upstream (`None`: unlimited).
    pub admissions: Vec<Option<Arc<rampart_guard::admission::Admission>>>,
    /// The shared Redis tier, when configured.
    pub redis: Option<crate::redis::Redis>,
    /// Purge fan-out state (with Redis).
    pub sync: Option<crate::sync::SyncState>,
    /// `[[events]]`.
    pub events: Vec<rampart_config::EventConfig>,
    /// `[admin] webhook_secret`.
    pub webhook_secret: Option<String>,
    /// Metrics.
    pub metrics: Metrics,
    /// The clock freshness is judged by.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.server.listen)
            .field("routes", &self.router.routes().len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Whether the memory tier may be used now: always on a single node;
    /// with Redis, only while this node is in touch with the purge sequence.
    pub fn l1_usable(&self) -> bool {
        self.cache.memory > 0 && self.sync.as_ref().is_none_or(|s| s.l1_usable())
    }

    /// Builds the state; fails only if an upstream target cannot be used.
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let metrics = Metrics::new(config.routes.iter().map(|r| r.name.clone()).collect());
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::new(u, &metrics))
            .collect::<Result<Vec<_>, _>>()?;
        metrics.l1_budget.set(config.cache.memory as i64);
        let redis = config
            .cache
            .redis
            .as_ref()
            .map(|r| crate::redis::Redis::new(r, &metrics))
            .transpose()?;
        Ok(Self {
            server: config.server.clone(),
            cache: config.cache.clone(),
            compression: config.compression.clone(),
            access_log: config.log.access,
            router: Router::new(config.routes.clone()),
            upstreams,
            l1: MemoryCache::new(config.cache.memory, config.cache.max_variants),
            coalescer: Coalescer::new(),
            limiters: crate::limits::Limiters::new(&config.routes, config.server.max_limit_keys),
            admissions: config
                .upstreams
                .iter()
                .map(|u| {
                    u.admission.map(|a| {
                        rampart_guard::admission::Admission::new(
                            rampart_guard::admission::Settings {
                                max_concurrency: a.max_concurrency,
                                queue_size: a.queue_size,
                                queue_timeout: a.queue_timeout,
                            },
                            &config.priority_weights,
                        )
                    })
                })
                .collect(),
            sync: config
                .cache
                .redis
                .as_ref()
                .map(|r| crate::sync::SyncState::new(r.purge_sync)),
            redis,
            events: config.events.clone(),
            webhook_secret: config.admin.as_ref().and_then(|a| a.webhook_secret.clone()),
            metrics,
            clock,
        })
    }
}

/// The parts of a request kept while it is served (the body travels apart).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Target.
    pub uri: Uri,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The peer's address.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
}
