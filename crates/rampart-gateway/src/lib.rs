//! Rampart's gateway: a caching reverse proxy.
//!
//! [`start`] binds the listeners of a validated [`Config`] and returns a
//! [`Running`] gateway; the request path itself is [`proxy::handle`], whose
//! steps are written down in order in `proxy.rs`.

pub mod admin;
pub mod body;
pub mod cache_path;

pub mod compress;
pub mod headers;
pub mod invalidate;
pub mod l2;
pub mod limits;
pub mod metrics;
pub mod problem;
pub mod proxy;
pub mod redis;
pub mod router;
pub mod server;
pub mod state;
pub mod sync;
pub mod tags;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_config::Config;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use rampart_core::{Clock, ManualClock, SystemClock};
pub use state::Gateway;

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
    #[error("{0}")]
    Invalid(String),
}

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// The public listener's address (useful when the config said port 0).
    pub addr: SocketAddr,
    /// The admin listener's address, when configured.
    pub admin_addr: Option<SocketAddr>,
    /// The shared state, for inspection.
    pub gateway: Arc<Gateway>,
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

/// Binds the listeners and starts serving.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    let gateway = Arc::new(Gateway::new(config, clock).map_err(StartError::Invalid)?);
    let limits = server::ConnLimits {
        max_header_size: config.server.max_header_size,
        header_read_timeout: config.server.header_read_timeout,
        max_connections: config.server.max_connections,
        shutdown_timeout: config.server.shutdown_timeout,
    };
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let stop = CancellationToken::new();
    let listener = bind(config.server.listen).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let mut tasks = Vec::new();
    let gw = Arc::clone(&gateway);
    tasks.push(tokio::spawn(server::serve(
        listener,
        limits,
        stop.clone(),
        move |req, peer| proxy::handle(Arc::clone(&gw), req, peer),
    )));

    for index in 0..gateway.upstreams.len() {
        if let Some(interval) = gateway.upstreams[index].health_config().map(|h| h.interval) {
            let gw = Arc::clone(&gateway);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => gw.upstreams[index].check_health().await,
                    }
                }
            }));
        }
    }

    for warmer in &config.warmers {
        let (gw, stop, warmer) = (Arc::clone(&gateway), stop.clone(), warmer.clone());
        tasks.push(tokio::spawn(async move {
            let mut headers = http::HeaderMap::new();
            if let Some(host) = warmer
                .url
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(http::header::HOST, host);
            }
            let head = state::RequestHead {
                method: http::Method::GET,
                uri: warmer.url.path_and_query().map_or_else(
                    || http::Uri::from_static("/"),
                    |pq| http::Uri::from(pq.clone()),
                ),
                headers,
                peer: std::net::IpAddr::from([127, 0, 0, 1]),
                trusted: true,
            };
            let mut tick = tokio::time::interval(warmer.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if cache_path::warm(&gw, warmer.route, &head).await {
                            gw.metrics.warmed.inc();
                        }
                    }
                }
            }
        }));
    }
    if gateway.sync.is_some() {
        tasks.push(tokio::spawn(sync::run(Arc::clone(&gateway), stop.clone())));
    }

    let mut admin_addr = None;
    if let Some(admin) = &config.admin {
        let listener = bind(admin.listen).await?;
        admin_addr = Some(listener.local_addr().map_err(|source| StartError::Bind {
            addr: admin.listen,
            source,
        })?);
        let gw = Arc::clone(&gateway);
        let token: Option<Arc<str>> = admin.token.as_deref().map(Arc::from);
        let admin_limits = server::ConnLimits {
            max_connections: 256,
            ..limits
        };
        tasks.push(tokio::spawn(server::serve(
            listener,
            admin_limits,
            stop.clone(),
            move |req, _peer| admin::handle(Arc::clone(&gw), token.clone(), req),
        )));
    }
    Ok(Running {
        addr,
        admin_addr,
        gateway,
        stop,
        tasks,
    })
}
