//! The handles the admin API reads and acts on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rampart_core::Clock;
use rampart_proxy::forward::Upstreams;
use rampart_proxy::invalidate::Invalidator;
use rampart_proxy::metrics::Metrics;
use rampart_proxy::tiers::Tiers;
use rampart_proxy::State;

/// What the admin API reads and acts on.
pub struct Admin {
    pub(crate) tiers: Arc<Tiers>,
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) invalidator: Arc<Invalidator>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) token: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) reload: Option<Arc<dyn Reload>>,
    pub(crate) ready: rampart_config::Readiness,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin API over a proxy's state, exposing `registry`, with the
    /// `[admin]` token and webhook secret.
    pub fn new(
        state: &State,
        registry: Arc<Registry>,
        token: Option<String>,
        webhook_secret: Option<String>,
    ) -> Self {
        Self {
            tiers: Arc::clone(&state.tiers),
            upstreams: Arc::clone(&state.upstreams),
            invalidator: Arc::clone(&state.invalidator),
            metrics: Arc::clone(&state.metrics),
            registry,
            clock: Arc::clone(&state.clock),
            token,
            webhook_secret,
            reload: None,
            ready: rampart_config::Readiness::default(),
        }
    }

    /// What `/readyz` requires (`[admin] ready`).
    pub fn with_readiness(mut self, ready: rampart_config::Readiness) -> Self {
        self.ready = ready;
        self
    }

    /// Lets `POST /admin/reload` call `reload`.
    pub fn with_reload(mut self, reload: Arc<dyn Reload>) -> Self {
        self.reload = Some(reload);
        self
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The config's generation now (1 at start, one more per applied reload).
    pub generation: u64,
    /// What differed from the config before, by section (`routes`,
    /// `upstreams.api`, `server.listen`…); empty when nothing did.
    pub changed: Vec<String>,
}

/// Why a reload was refused.
pub type ReloadError = Box<dyn std::error::Error + Send + Sync>;

/// The future a reload returns.
pub type ReloadFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Reloaded, ReloadError>> + Send + 'a>>;

/// Something that can reload the gateway's config: the assembled gateway.
pub trait Reload: Send + Sync {
    /// Reads the config again, validates it and swaps it in.
    fn reload(&self) -> ReloadFuture<'_>;
}
