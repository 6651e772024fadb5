//! Rampart's gateway, assembled: [`start`] builds the proxy's state from a
//! validated [`Config`], binds the public and admin listeners
//! (`rampart-edge`), and runs the background work (active health checks,
//! warmers, the purge fan-out and the invalidator that applies what it
//! delivers). It returns a [`Running`] gateway to stop and wait for.
//!
//! Where each concern lives: the request path in `rampart-proxy`, the
//! admin API in `rampart-admin`, what nodes share through Redis in
//! `rampart-cluster`, listeners in `rampart-edge`.

mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rampart_config::Config;
use rampart_edge::ConnLimits;
use rampart_proxy::State;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use rampart_core::{Clock, ManualClock, SystemClock};
pub use rampart_proxy::{body, BuildError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config could not be turned into a gateway.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// The public listener's address (useful when the config said port 0).
    pub addr: SocketAddr,
    /// The admin listener's address, when configured.
    pub admin_addr: Option<SocketAddr>,
    /// The proxy's shared state, for inspection.
    pub state: Arc<State>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting connections; open requests may finish within
    /// `shutdown_timeout`.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until every listener has stopped and drained.
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Binds the listeners and starts serving.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    let mut registry = Registry::with_prefix("rampart");
    let state = Arc::new(State::new(config, clock, &mut registry)?);
    let registry = Arc::new(registry);
    let limits = ConnLimits {
        max_header_size: config.server.max_header_size,
        header_read_timeout: config.server.header_read_timeout,
        max_connections: config.server.max_connections,
        shutdown_timeout: config.server.shutdown_timeout,
    };
    let stop = CancellationToken::new();
    let (listener, addr) = bind(config.server.listen).await?;
    let mut tasks = Vec::new();
    let proxy = Arc::clone(&state);
    tasks.push(tokio::spawn(rampart_edge::serve(
        listener,
        limits,
        stop.clone(),
        move |req, peer| rampart_proxy::handle(Arc::clone(&proxy), req, peer),
    )));
    tasks.extend(tasks::health_checks(&state, &stop));
    tasks.extend(tasks::warmers(&state, &config.warmers, &stop));
    tasks.extend(tasks::fanout(&state, &stop));

    let mut admin_addr = None;
    if let Some(admin) = &config.admin {
        let (listener, local) = bind(admin.listen).await?;
        admin_addr = Some(local);
        let api = Arc::new(rampart_admin::Admin::new(
            &state,
            registry,
            admin.token.clone(),
            admin.webhook_secret.clone(),
        ));
        let admin_limits = ConnLimits {
            max_connections: 256,
            ..limits
        };
        tasks.push(tokio::spawn(rampart_edge::serve(
            listener,
            admin_limits,
            stop.clone(),
            move |req, _peer| rampart_admin::handle(Arc::clone(&api), req),
        )));
    }
    Ok(Running {
        addr,
        admin_addr,
        state,
        stop,
        tasks,
    })
}
