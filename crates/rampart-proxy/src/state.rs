//! The proxy's shared state, built once from a validated config: the
//! handles each stage uses, each behind its own `Arc`, so a stage gets the
//! handle it needs and a new config can be swapped in as a whole.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use rampart_cache::{Coalescer, MemoryCache};
use rampart_cluster::{Fanout, Redis, RedisError};
use rampart_config::{Config, ServerConfig};
use rampart_core::Clock;

use crate::forward::Upstreams;
use crate::invalidate::Invalidator;
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::tiers::Tiers;
use crate::upstream::InvalidTarget;

/// Why a config could not be turned into a running proxy.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream target is not `host:port`.
    #[error(transparent)]
    Target(#[from] InvalidTarget),
    /// The Redis URL cannot be used.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Everything a request needs, shared by all connections.
pub struct State {
    /// `[server]`.
    pub server: ServerConfig,
    /// Whether to write access-log lines.
    pub access_log: bool,
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
        let metrics = Arc::new(Metrics::new(
            config.routes.iter().map(|r| r.name.clone()).collect(),
            registry,
        ));
        metrics.l1_budget.set(config.cache.memory as i64);
        let redis = match &config.cache.redis {
            Some(r) => Some(Arc::new(Redis::new(r, registry)?)),
            None => None,
        };
        let fanout = match (&redis, &config.cache.redis) {
            (Some(redis), Some(cfg)) => Some(Arc::new(Fanout::new(
                Arc::clone(redis),
                cfg.purge_sync,
                Arc::clone(&clock),
            ))),
            _ => None,
        };
        let tiers = Arc::new(Tiers {
            l1: MemoryCache::new(config.cache.memory, config.cache.max_variants),
            redis,
            fanout,
            coalescer: Coalescer::new(),
            settings: config.cache.clone(),
            compression: config.compression.clone(),
            clock: Arc::clone(&clock),
        });
        Ok(Self {
            server: config.server.clone(),
            access_log: config.log.access,
            router: Arc::new(Router::new(config.routes.clone())),
            upstreams: Arc::new(Upstreams::new(config, &metrics, Arc::clone(&clock))?),
            limiters: Limiters::new(&config.routes, config.server.max_limit_keys),
            invalidator: Arc::new(Invalidator::new(
                Arc::clone(&tiers),
                config.events.clone(),
                Arc::clone(&metrics),
            )),
            tiers,
            metrics,
            clock,
        })
    }
}
