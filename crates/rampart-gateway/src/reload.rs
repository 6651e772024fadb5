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
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rampart_admin::{Admin, Reload, ReloadFuture, Reloaded};
use rampart_cluster::Fanout;
use rampart_config::{Config, ConfigError};
use rampart_edge::tls::{Tls, TlsError};
use rampart_edge::{ConnGauges, TlsSwap};
use rampart_proxy::{BuildError, State};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::certs;
use crate::changes::{changed, TRACING_AT_RESTART};
use crate::listeners::{admin_limits, public_limits, replace, BindError, Serving, Socket};
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
    /// A certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
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
            ReloadError::Tls(_) => "tls",
            ReloadError::Stopping => "stopping",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnLabels {
    listener: &'static str,
    protocol: &'static str,
}

/// `rampart_config_reloads_total{result}` and the config's generation.
#[derive(Debug, Clone)]
pub(crate) struct ReloadMetrics {
    reloads: Family<ResultLabels, Counter>,
    generation: Gauge,
    connections: Family<ConnLabels, Gauge>,
    idle: Family<ConnLabels, Gauge>,
}

impl ReloadMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reloads: Family::default(),
            generation: Gauge::default(),
            connections: Family::default(),
            idle: Family::default(),
        };
        registry.register(
            "open_connections",
            "Client connections open now, by listener (public, admin, redirect) and protocol (http, https)",
            metrics.connections.clone(),
        );
        registry.register(
            "idle_connections",
            "Open HTTP/1.1 client connections idle for over a second, waiting for their next request with their buffers released, by listener and protocol",
            metrics.idle.clone(),
        );
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

    /// The connection gauges of one listener.
    fn connections(&self, listener: &'static str, tls: bool) -> ConnGauges {
        let protocol = if tls { "https" } else { "http" };
        let labels = ConnLabels { listener, protocol };
        ConnGauges {
            open: self.connections.get_or_create(&labels).clone(),
            idle: self.idle.get_or_create(&labels).clone(),
        }
    }
}

/// The sockets a gateway starts with.
pub(crate) struct Sockets {
    pub public: Socket,
    pub admin: Option<Socket>,
    pub redirect: Option<Socket>,
}

/// What the current config runs.
pub(crate) struct Live {
    config: Config,
    generation: u64,
    public: Serving,
    /// The public listener's TLS settings, when it has TLS.
    tls: Option<TlsSwap>,
    admin: Option<Serving>,
    /// The plain listener redirecting to HTTPS.
    redirect: Option<Serving>,
    /// The port it sends clients to (the public listener's).
    redirect_port: u16,
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
    pub expiry: certs::Expiry,
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
        sockets: Sockets,
        tls: Option<Tls>,
    ) {
        let mut live = self.live.lock().await;
        self.install_admin(&config);
        let state = self.state.load_full();
        let tls = tls.map(|t| {
            self.expiry.certs.store(Arc::new(t.certs));
            Arc::new(ArcSwap::new(t.server))
        });
        let https_port = sockets.public.local.port();
        let public = self.serve_public(sockets.public, public_limits(&config.server), tls.clone());
        let admin = sockets
            .admin
            .map(|s| self.serve_admin(s, admin_limits(&config.server)));
        let redirect = sockets
            .redirect
            .map(|s| self.serve_redirect(s, admin_limits(&config.server), https_port));
        let background = self.stop.child_token();
        self.spawn_background(&state, &config, &background);
        let fanout = self.spawn_fanout(&state);
        self.metrics.generation.set(1);
        *live = Some(Live {
            config,
            generation: 1,
            public,
            tls,
            admin,
            redirect,
            redirect_port: https_port,
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

    /// `[server] reload_on_change` of the config in use.
    pub(crate) async fn reload_interval(&self) -> Option<std::time::Duration> {
        let live = self.live.lock().await;
        live.as_ref().and_then(|l| l.config.server.reload_on_change)
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
        if changes.iter().any(|c| c == TRACING_AT_RESTART) {
            tracing::warn!(
                "[tracing] changed: the exporter keeps its settings until the next start"
            );
        }
        // Certificates are read on every reload: renewed files are taken
        // up even when the config text is the same.
        let tls = match &config.server.tls {
            Some(t) => Some(certs::load(t, SystemTime::now())?),
            None => None,
        };
        if changes.is_empty() {
            if let (Some(tls), Some(swap)) = (tls, &live.tls) {
                swap.store(tls.server);
                self.expiry.certs.store(Arc::new(tls.certs));
                tracing::info!("certificates read again");
            }
            return Ok(Reloaded {
                generation: live.generation,
                changed: changes,
            });
        }
        // Everything that can fail, before anything changes.
        let public_socket = live
            .public
            .socket
            .rebind("server.listen", config.server.listen)
            .await?;
        let redirect_to = config.server.tls.as_ref().and_then(|t| t.redirect_from);
        let redirect_socket = match (redirect_to, &live.redirect) {
            (None, _) => None,
            (Some(addr), Some(old)) => {
                Some(old.socket.rebind("server.tls.redirect_from", addr).await?)
            }
            (Some(addr), None) => Some(Socket::bind("server.tls.redirect_from", addr).await?),
        };
        let admin_socket = match (&config.admin, &live.admin) {
            (None, _) => None,
            (Some(a), Some(old)) => Some(old.socket.rebind("admin.listen", a.listen).await?),
            (Some(a), None) => Some(Socket::bind("admin.listen", a.listen).await?),
        };
        let old_state = self.state.load_full();
        let state = Arc::new(old_state.reloaded(&config)?);

        // Commit.
        self.state.store(Arc::clone(&state));
        self.install_admin(&config);
        let had_tls = live.tls.is_some();
        let tls = match (tls, live.tls.take()) {
            (Some(t), Some(swap)) => {
                swap.store(Arc::clone(&t.server));
                self.expiry.certs.store(Arc::new(t.certs));
                Some(swap)
            }
            (Some(t), None) => {
                self.expiry.certs.store(Arc::new(t.certs));
                Some(Arc::new(ArcSwap::new(t.server)))
            }
            (None, _) => {
                self.expiry.certs.store(Arc::default());
                None
            }
        };
        live.tls = tls.clone();
        let limits = public_limits(&config.server);
        if !live.public.serves(&public_socket, limits) || had_tls != tls.is_some() {
            let serving = self.serve_public(public_socket, limits, tls);
            std::mem::replace(&mut live.public, serving).stop.cancel();
        }
        let https_port = live.public.socket.local.port();
        let limits = admin_limits(&config.server);
        let same_port = live.redirect_port == https_port;
        live.redirect = replace(
            live.redirect.take(),
            redirect_socket,
            limits,
            same_port,
            |s| self.serve_redirect(s, limits, https_port),
        );
        live.redirect_port = https_port;
        live.admin = replace(live.admin.take(), admin_socket, limits, true, |s| {
            self.serve_admin(s, limits)
        });
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
                .with_reload(reloader)
                .with_readiness(a.ready),
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

    fn serve_public(
        &self,
        socket: Socket,
        limits: rampart_edge::ConnLimits,
        tls: Option<TlsSwap>,
    ) -> Serving {
        let stop = CancellationToken::new();
        let state = Arc::clone(&self.state);
        let gauges = self.metrics.connections("public", tls.is_some());
        self.tracker.spawn(rampart_edge::serve(
            Arc::clone(&socket.listener),
            limits,
            self.stops(&stop),
            (tls, gauges),
            move |req, conn: rampart_edge::Conn| {
                // Boxed: the connection keeps a slot of the future's size
                // for as long as it is open, idle or not (5 KiB unboxed).
                Box::pin(rampart_proxy::handle(
                    state.load_full(),
                    req,
                    conn.peer,
                    conn.tls,
                ))
            },
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
            (None, self.metrics.connections("admin", false)),
            move |req, _conn| {
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

    /// The plain listener that sends every request to HTTPS on `https_port`.
    fn serve_redirect(
        &self,
        socket: Socket,
        limits: rampart_edge::ConnLimits,
        https_port: u16,
    ) -> Serving {
        let stop = CancellationToken::new();
        self.tracker.spawn(rampart_edge::serve(
            Arc::clone(&socket.listener),
            limits,
            self.stops(&stop),
            (None, self.metrics.connections("redirect", false)),
            move |req, _conn| async move {
                Ok::<_, std::convert::Infallible>(rampart_proxy::redirect::to_https(
                    &req, https_port,
                ))
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
