//! The proxy's shared state, built once from a validated config: the
//! handles each stage uses, each behind its own `Arc`, so a stage gets the
//! handle it needs and a new config can be swapped in as a whole.

use crate::access::AccessLog;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rampart_cache::{Coalescer, MemoryCache};
use rampart_cluster::{Fanout, Redis, RedisError, RedisMetrics};
use rampart_config::{Config, ServerConfig};
use rampart_core::Clock;

use crate::forward::Upstreams;
use crate::invalidate::Invalidator;
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::tiers::Tiers;
use crate::upstream::PoolError;

/// Why a config could not be turned into a running proxy.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream's pool could not be built (a target, its TLS files).
    #[error(transparent)]
    Upstream(#[from] PoolError),
    /// The Redis URL cannot be used.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Everything a request needs, shared by all connections.
pub struct State {
    /// `[server]`.
    pub server: ServerConfig,
    /// The access log, when `[log] access` is on.
    pub access: Option<Arc<AccessLog>>,
    /// The share of requests given an access-log line (a 5xx always is).
    pub access_sample: f64,
    /// The routes.
    pub router: Arc<Router>,
    /// The cache tiers.
    pub tiers: Arc<Tiers>,
    /// Upstream pools and admission control.
    pub upstreams: Arc<Upstreams>,
    /// Rate limits per route.
    pub limiters: Limiters,
    /// The owner of purges.
    pub invalidator: Arc<Invalidator>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The clock freshness, limits and breakers read.
    pub clock: Arc<dyn Clock>,
    /// Redis's error counters (registered once, kept across reloads).
    redis_metrics: RedisMetrics,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("listen", &self.server.listen)
            .field("routes", &self.router.routes().len())
            .finish_non_exhaustive()
    }
}

impl State {
    /// Builds the state; its metrics are registered in `registry`.
    pub fn new(
        config: &Config,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> Result<Self, BuildError> {
        let metrics = Arc::new(Metrics::new(route_names(config), registry));
        let redis_metrics = RedisMetrics::register(registry);
        Self::assemble(config, clock, metrics, redis_metrics, None)
    }

    /// The state for a new config, keeping from `self` everything whose
    /// definition did not change: the memory tier and its contents (same
    /// budget and variant bound), the Redis connection and fan-out (same
    /// `[cache] redis`), upstream pools with their connections, breakers,
    /// health and queues (same `[[upstreams]]` entry), rate-limit counts
    /// (same limit on a route of the same name), and every metric series.
    /// Requests already running finish on `self`.
    pub fn reloaded(&self, config: &Config) -> Result<Self, BuildError> {
        let metrics = Arc::new(self.metrics.with_routes(route_names(config)));
        Self::assemble(
            config,
            Arc::clone(&self.clock),
            metrics,
            self.redis_metrics.clone(),
            Some(self),
        )
    }

    fn assemble(
        config: &Config,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        redis_metrics: RedisMetrics,
        prev: Option<&State>,
    ) -> Result<Self, BuildError> {
        metrics.l1_budget.set(config.cache.memory as i64);
        let prev_tiers = prev.map(|p| &p.tiers);
        let same_redis = prev_tiers.filter(|t| t.settings.redis == config.cache.redis);
        let redis = match (same_redis, &config.cache.redis) {
            (Some(t), _) => t.redis.clone(),
            (None, Some(r)) => Some(Arc::new(Redis::new(r, &redis_metrics)?)),
            (None, None) => None,
        };
        let fanout = match (same_redis, &redis, &config.cache.redis) {
            (Some(t), _, _) => t.fanout.clone(),
            (None, Some(redis), Some(cfg)) => Some(Arc::new(Fanout::new(
                Arc::clone(redis),
                cfg.purge_sync,
                Arc::clone(&clock),
            ))),
            _ => None,
        };
        let l1 = match prev_tiers.filter(|t| {
            t.settings.memory == config.cache.memory
                && t.settings.max_variants == config.cache.max_variants
        }) {
            Some(t) => Arc::clone(&t.l1),
            None => Arc::new(MemoryCache::new(
                config.cache.memory,
                config.cache.max_variants,
            )),
        };
        let tiers = Arc::new(Tiers {
            l1,
            redis,
            fanout,
            coalescer: prev_tiers.map_or_else(Coalescer::new, |t| Arc::clone(&t.coalescer)),
            settings: config.cache.clone(),
            compression: config.compression.clone(),
            clock: Arc::clone(&clock),
        });
        Ok(Self {
            server: config.server.clone(),
            access: config.log.access.then(|| {
                Arc::new(AccessLog::new(
                    &config.log,
                    prev.and_then(|p| p.access.as_deref()),
                    metrics.access_dropped.clone(),
                ))
            }),
            access_sample: config.log.access_sample,
            router: Arc::new(Router::new(config.routes.clone())),
            upstreams: Arc::new(Upstreams::new(
                config,
                &metrics,
                Arc::clone(&clock),
                prev.map(|p| &*p.upstreams),
            )?),
            limiters: Limiters::new(
                &config.routes,
                config.server.max_limit_keys,
                prev.map(|p| &p.limiters),
            ),
            invalidator: Arc::new(Invalidator::new(
                Arc::clone(&tiers),
                config.events.clone(),
                Arc::clone(&metrics),
            )),
            tiers,
            metrics,
            redis_metrics,
            clock,
        })
    }
}

fn route_names(config: &Config) -> Vec<String> {
    config.routes.iter().map(|r| r.name.clone()).collect()
}
