//! Rampart's gateway, assembled: [`start`] builds the proxy's state from a
//! validated [`Config`], binds the public and admin listeners
//! (`rampart-edge`), and runs the background work (active health checks,
//! warmers, the purge fan-out and the invalidator that applies what it
//! delivers). It returns a [`Running`] gateway to reload, stop and wait for.
//!
//! A reload ([`Running::reload`], `SIGHUP`, `POST /admin/reload`) builds the
//! new state beside the old one and swaps it in atomically: requests
//! already running finish on the old state; the memory tier, upstream
//! pools, breakers, rate-limit counts and Redis connection are kept where
//! their definition did not change (`rampart_proxy::State::reloaded`).
//!
//! Where each concern lives: the request path in `rampart-proxy`, the
//! admin API in `rampart-admin`, what nodes share through Redis in
//! `rampart-cluster`, listeners in `rampart-edge`.
//!
//! Modules, top down: `watch` (reloads when the file changes) → `reload`
//! (applying a new config) → `tasks`
//! (background work), `listeners` (sockets and serve loops), `changes`
//! (what differs between two configs).

mod certs;
mod changes;
mod listeners;
mod reload;
mod tasks;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use prometheus_client::registry::Registry;
use rampart_config::Config;
use rampart_proxy::State;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use listeners::BindError;
pub use rampart_admin::Reloaded;
pub use rampart_core::{Clock, ManualClock, SystemClock};
pub use rampart_edge::tls::{CertInfo, TlsError};
pub use rampart_proxy::upstream::tls::UpstreamTlsError;
pub use rampart_proxy::{body, BuildError};
pub use reload::ReloadError;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The config could not be turned into a gateway.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What `rampart check` found wrong with the TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsCheckError {
    /// The public listener's certificates or keys.
    #[error(transparent)]
    Server(#[from] TlsError),
    /// An upstream's CA, client certificate or key.
    #[error(transparent)]
    Upstream(#[from] UpstreamTlsError),
}

/// Reads and checks every TLS file the config names (what `rampart check`
/// does): the public listener's certificates and keys, warning about any
/// that expire within 30 days, and each upstream's CA and client
/// certificate.
pub fn check_tls(config: &Config) -> Result<Vec<CertInfo>, TlsCheckError> {
    for u in &config.upstreams {
        if let Some(tls) = &u.tls {
            rampart_proxy::upstream::tls::client_config(tls, &u.name)?;
        }
    }
    match &config.server.tls {
        None => Ok(Vec::new()),
        Some(t) => Ok(certs::load(t, std::time::SystemTime::now())?.certs),
    }
}

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// The public listener's address at start (useful when the config said
    /// port 0); [`Running::addrs`] gives the addresses after reloads.
    pub addr: SocketAddr,
    /// The admin listener's address at start, when configured.
    pub admin_addr: Option<SocketAddr>,
    gateway: Arc<reload::Gateway>,
}

impl Running {
    /// The proxy's state now (a reload swaps in a new one).
    pub fn state(&self) -> Arc<State> {
        self.gateway.state.load_full()
    }

    /// The public and admin listeners' addresses now.
    pub async fn addrs(&self) -> (SocketAddr, Option<SocketAddr>) {
        self.gateway.addrs().await
    }

    /// Validates nothing (the caller did) and swaps `config` in, keeping
    /// what did not change; on error the previous config keeps serving.
    pub async fn reload(&self, config: &Config) -> Result<Reloaded, ReloadError> {
        self.gateway.apply(config.clone()).await
    }

    /// Reads the file the gateway started from ([`start_from`]) again,
    /// validates it and swaps it in; on error the previous config keeps
    /// serving and the error names file, line and field.
    pub async fn reload_file(&self) -> Result<Reloaded, ReloadError> {
        self.gateway.reload_file().await
    }

    /// Stops accepting connections; open requests may finish within
    /// `shutdown_timeout`.
    pub fn shutdown(&self) {
        self.gateway.stop.cancel();
    }

    /// Waits until every listener has stopped and drained and every
    /// background task has ended.
    pub async fn wait(self) {
        self.gateway.tracker.close();
        self.gateway.tracker.wait().await;
    }
}

/// Binds the listeners and starts serving `config`. Reloads then take a
/// [`Config`] ([`Running::reload`]); [`start_from`] also re-reads a file.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    start_from(config, clock, None).await
}

/// [`start`], remembering the file `config` was read from so that
/// [`Running::reload_file`], `SIGHUP` and `POST /admin/reload` read it again.
pub async fn start_from(
    config: &Config,
    clock: Arc<dyn Clock>,
    path: Option<PathBuf>,
) -> Result<Running, StartError> {
    // The process's metrics under their usual names, Rampart's under
    // `rampart_`.
    let mut root = Registry::default();
    root.register_collector(Box::new(rampart_admin::process::ProcessCollector));
    let registry = root.sub_registry_with_prefix("rampart");
    registry.register(
        "build",
        "The running build: version and git commit",
        prometheus_client::metrics::info::Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("RAMPART_COMMIT")),
        ]),
    );
    let state = Arc::new(State::new(config, clock, registry)?);
    let reload_metrics = reload::ReloadMetrics::register(registry);
    let expiry = certs::Expiry::default();
    registry.register_collector(Box::new(expiry.clone()));
    let tls = match &config.server.tls {
        Some(t) => Some(certs::load(t, std::time::SystemTime::now())?),
        None => None,
    };
    let sockets = reload::Sockets {
        public: listeners::Socket::bind("server.listen", config.server.listen).await?,
        admin: match &config.admin {
            Some(a) => Some(listeners::Socket::bind("admin.listen", a.listen).await?),
            None => None,
        },
        redirect: match config.server.tls.as_ref().and_then(|t| t.redirect_from) {
            Some(a) => Some(listeners::Socket::bind("server.tls.redirect_from", a).await?),
            None => None,
        },
    };
    let (addr, admin_addr) = (
        sockets.public.local,
        sockets.admin.as_ref().map(|a| a.local),
    );
    let gateway = Arc::new(reload::Gateway {
        state: Arc::new(ArcSwap::new(state)),
        admin: Arc::new(ArcSwapOption::empty()),
        registry: Arc::new(root),
        metrics: reload_metrics,
        expiry,
        path,
        stop: CancellationToken::new(),
        tracker: TaskTracker::new(),
        live: tokio::sync::Mutex::new(None),
    });
    gateway.begin(config.clone(), sockets, tls).await;
    // Freed connection memory given back (one loop per process).
    let stop = gateway.stop.clone();
    gateway.tracker.spawn(async move {
        tokio::select! {
            () = rampart_edge::memory::give_back() => {}
            () = stop.cancelled() => {}
        }
    });
    if let Some(path) = &gateway.path {
        watch::spawn(&gateway, path.clone());
    }
    Ok(Running {
        addr,
        admin_addr,
        gateway,
    })
}
