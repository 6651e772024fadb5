//! The running gateway and how a new config replaces the old one.
//!
//! A reload is all or nothing: new sockets are bound and the new state is
//! built first, and any failure leaves the old config serving untouched.
//! Then, in this order: the state and admin handles are swapped (new
//! requests see the new config, running ones finish on the old), serve
//! loops with new limits or addresses start, the old ones stop accepting
//! (their open connections go on, with the new config, until their clients
//! close them: closing a kept-alive connection races the request a client
//! may be sending on it), and the background work of the old config
//! (health checks, warmers) is replaced. Reloads run one at a time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rampart_admin::{Admin, Reload, ReloadFuture, Reloaded};
use rampart_cluster::Fanout;
use rampart_config::{Config, ConfigError};
use rampart_proxy::{BuildError, State};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::changes::changed;
use crate::listeners::{admin_limits, public_limits, BindError, Serving, Socket};
use crate::tasks;

/// Why a reload was not applied (the previous config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was started from a config, not a file.
    #[error("the gateway was not started from a config file")]
    NoFile,
    /// The file could not be read or is not a valid config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A new listener address could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The config could not be turned into a gateway.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    Stopping,
}

impl ReloadError {
    fn as_str(&self) -> &'static str {
        match self {
            ReloadError::NoFile => "no-file",
            ReloadError::Config(_) => "invalid",
            ReloadError::Bind(_) => "bind",
            ReloadError::Build(_) => "build",
            ReloadError::Stopping => "stopping",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `rampart_config_reloads_total{result}` and the config's generation.
#[derive(Debug, Clone)]
pub(crate) struct ReloadMetrics {
    reloads: Family<ResultLabels, Counter>,
    generation: Gauge,
}

impl ReloadMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reloads: Family::default(),
            generation: Gauge::default(),
        };
        registry.register(
            "config_reloads",
            "Config reloads by result: applied, unchanged, or rejected (the previous config kept serving)",
            metrics.reloads.clone(),
        );
        registry.register(
            "config_generation",
            "The config in use: 1 at start, one more per applied reload",
            metrics.generation.clone(),
        );
        metrics
    }

    fn count(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }
}

/// What the current config runs.
pub(crate) struct Live {
    config: Config,
    generation: u64,
    public: Serving,
    admin: Option<Serving>,
    /// Stops this config's health checks and warmers.
    background: CancellationToken,
    /// The purge fan-out running, and what stops it (kept while the Redis
    /// connection is).
    fanout: Option<(Arc<Fanout>, CancellationToken)>,
}

/// The gateway: the handles requests read, and what a reload replaces.
pub(crate) struct Gateway {
    pub state: Arc<ArcSwap<State>>,
    pub admin: Arc<ArcSwapOption<Admin>>,
    pub registry: Arc<Registry>,
    pub metrics: ReloadMetrics,
    pub path: Option<PathBuf>,
    pub stop: CancellationToken,
    pub tracker: TaskTracker,
    pub live: tokio::sync::Mutex<Option<Live>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The admin API's way back to the gateway (weak: the admin handles are
/// owned by the gateway).
struct Reloader(Weak<Gateway>);

impl Reload for Reloader {
    fn reload(&self) -> ReloadFuture<'_> {
        Box::pin(async move {
            let gateway = self.0.upgrade().ok_or(ReloadError::Stopping)?;
            Ok(gateway.reload_file().await?)
        })
    }
}

impl Gateway {
    /// Starts serving the first config on sockets already bound.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        config: Config,
        public: Socket,
        admin: Option<Socket>,
    ) {
        let mut live = self.live.lock().await;
        self.install_admin(&config);
        let state = self.state.load_full();
        let public = self.serve_public(public, public_limits(&config.server));
        let admin = admin.map(|s| self.serve_admin(s, admin_limits(&config.server)));
        let background = self.stop.child_token();
        self.spawn_background(&state, &config, &background);
        let fanout = self.spawn_fanout(&state);
        self.metrics.generation.set(1);
        *live = Some(Live {
            config,
            generation: 1,
            public,
            admin,
            background,
            fanout,
        });
    }

    pub(crate) async fn addrs(&self) -> (SocketAddr, Option<SocketAddr>) {
        let live = self.live.lock().await;
        match &*live {
            Some(l) => (
                l.public.socket.local,
                l.admin.as_ref().map(|a| a.socket.local),
            ),
            None => (([0, 0, 0, 0], 0).into(), None),
        }
    }

    pub(crate) async fn reload_file(self: &Arc<Self>) -> Result<Reloaded, ReloadError> {
        let result = match &self.path {
            None => Err(ReloadError::NoFile),
            Some(path) => match rampart_config::load(path) {
                Ok(config) => return self.apply(config).await,
                Err(e) => Err(ReloadError::Config(e)),
            },
        };
        if let Err(e) = &result {
            self.rejected(e);
        }
        result
    }

    fn rejected(&self, e: &ReloadError) {
        self.metrics.count("rejected");
        tracing::error!(
            error = %e,
            reason = e.as_str(),
            "config reload rejected; the previous config keeps serving"
        );
    }

    /// Swaps `config` in, or leaves everything as it was.
    pub(crate) async fn apply(self: &Arc<Self>, config: Config) -> Result<Reloaded, ReloadError> {
        let result = self.try_apply(config).await;
        match &result {
            Ok(r) if r.changed.is_empty() => {
                self.metrics.count("unchanged");
                tracing::info!(generation = r.generation, "config reload: nothing changed");
            }
            Ok(r) => {
                self.metrics.count("applied");
                tracing::info!(
                    generation = r.generation,
                    changed = ?r.changed,
                    "config reloaded"
                );
            }
            Err(e) => self.rejected(e),
        }
        result
    }

    async fn try_apply(self: &Arc<Self>, config: Config) -> Result<Reloaded, ReloadError> {
        if self.stop.is_cancelled() {
            return Err(ReloadError::Stopping);
        }
        let mut guard = self.live.lock().await;
        let live = guard.as_mut().ok_or(ReloadError::Stopping)?;
        let changes = changed(&live.config, &config);
        if changes.is_empty() {
            return Ok(Reloaded {
                generation: live.generation,
                changed: changes,
            });
        }
        // Everything that can fail, before anything changes.
        let public_socket = live.public.socket.rebind(config.server.listen).await?;
        let admin_socket = match (&config.admin, &live.admin) {
            (None, _) => None,
            (Some(a), Some(old)) => Some(old.socket.rebind(a.listen).await?),
            (Some(a), None) => Some(Socket::bind(a.listen).await?),
        };
        let old_state = self.state.load_full();
        let state = Arc::new(old_state.reloaded(&config)?);

        // Commit.
        self.state.store(Arc::clone(&state));
        self.install_admin(&config);
        let limits = public_limits(&config.server);
        if public_socket.configured != live.public.socket.configured || limits != live.public.limits
        {
            let serving = self.serve_public(public_socket, limits);
            std::mem::replace(&mut live.public, serving).stop.cancel();
        }
        let limits = admin_limits(&config.server);
        let admin = match (admin_socket, live.admin.take()) {
            (None, old) => {
                if let Some(old) = old {
                    old.stop.cancel();
                }
                None
            }
            (Some(socket), Some(old))
                if socket.configured == old.socket.configured && limits == old.limits =>
            {
                Some(old)
            }
            (Some(socket), old) => {
                let serving = self.serve_admin(socket, limits);
                if let Some(old) = old {
                    old.stop.cancel();
                }
                Some(serving)
            }
        };
        live.admin = admin;
        live.background.cancel();
        live.background = self.stop.child_token();
        self.spawn_background(&state, &config, &live.background);
        let same_fanout = match (&live.fanout, &state.tiers.fanout) {
            (Some((running, _)), Some(new)) => Arc::ptr_eq(running, new),
            (None, None) => true,
            _ => false,
        };
        if !same_fanout {
            if let Some((_, stop)) = live.fanout.take() {
                stop.cancel();
            }
            live.fanout = self.spawn_fanout(&state);
        }
        live.generation += 1;
        live.config = config;
        self.metrics.generation.set(live.generation as i64);
        Ok(Reloaded {
            generation: live.generation,
            changed: changes,
        })
    }

    /// Builds the admin handles over the current state (or removes them).
    fn install_admin(self: &Arc<Self>, config: &Config) {
        let admin = config.admin.as_ref().map(|a| {
            let reloader: Arc<dyn Reload> = Arc::new(Reloader(Arc::downgrade(self)));
            Arc::new(
                Admin::new(
                    &self.state.load(),
                    Arc::clone(&self.registry),
                    a.token.clone(),
                    a.webhook_secret.clone(),
                )
                .with_reload(reloader),
            )
        });
        self.admin.store(admin);
    }

    /// A serve loop's stops: `accepting` for a reload that replaces it, the
    /// gateway's own for shutdown.
    fn stops(&self, accepting: &CancellationToken) -> rampart_edge::Stops {
        rampart_edge::Stops {
            accepting: accepting.clone(),
            shutdown: self.stop.clone(),
        }
    }

    fn serve_public(&self, socket: Socket, limits: rampart_edge::ConnLimits) -> Serving {
        let stop = CancellationToken::new();
        let state = Arc::clone(&self.state);
        self.tracker.spawn(rampart_edge::serve(
            Arc::clone(&socket.listener),
            limits,
            self.stops(&stop),
            move |req, peer| rampart_proxy::handle(state.load_full(), req, peer),
        ));
        Serving {
            socket,
            limits,
            stop,
        }
    }

    fn serve_admin(&self, socket: Socket, limits: rampart_edge::ConnLimits) -> Serving {
        let stop = CancellationToken::new();
        let admin = Arc::clone(&self.admin);
        self.tracker.spawn(rampart_edge::serve(
            Arc::clone(&socket.listener),
            limits,
            self.stops(&stop),
            move |req, _peer| {
                let admin = admin.load_full();
                async move {
                    match admin {
                        Some(admin) => rampart_admin::handle(admin, req).await,
                        None => Ok(rampart_proxy::error::problem_response(
                            &rampart_core::Problem::new(
                                http::StatusCode::NOT_FOUND,
                                "not-found",
                                "the admin API is turned off",
                            ),
                        )),
                    }
                }
            },
        ));
        Serving {
            socket,
            limits,
            stop,
        }
    }

    fn spawn_background(&self, state: &Arc<State>, config: &Config, stop: &CancellationToken) {
        for task in tasks::health_checks(state, stop)
            .into_iter()
            .chain(tasks::warmers(state, &config.warmers, stop))
        {
            self.tracker.spawn(task);
        }
    }

    fn spawn_fanout(&self, state: &Arc<State>) -> Option<(Arc<Fanout>, CancellationToken)> {
        let fanout = state.tiers.fanout.clone()?;
        let stop = self.stop.child_token();
        for task in tasks::fanout(&fanout, Arc::clone(&self.state), &stop) {
            self.tracker.spawn(task);
        }
        Some((fanout, stop))
    }
}
