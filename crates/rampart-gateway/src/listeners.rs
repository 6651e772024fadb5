//! The listening sockets and the serve loops on them. A socket is bound
//! once and shared: a reload that changes a listener's limits starts a new
//! loop on the same socket and then stops the old one (which drains its
//! connections), so no connection is refused in between; one that changes
//! the address binds the new address first and fails the reload if it
//! cannot.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_config::ServerConfig;
use rampart_edge::ConnLimits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("{key}: cannot listen on {addr}: {source}{}", hint(source))]
pub struct BindError {
    /// The config key that asked for the address (`server.listen`).
    pub key: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// A bound socket.
#[derive(Debug, Clone)]
pub(crate) struct Socket {
    /// The configured address (port 0 stays 0 here).
    pub configured: SocketAddr,
    /// The address it is bound to.
    pub local: SocketAddr,
    pub listener: Arc<TcpListener>,
}

/// What to do about a bind error people meet often.
fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there: stop it, or choose another port)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (no interface of this host has that address)",
        _ => "",
    }
}

impl Socket {
    /// Binds `addr`, which the config's `key` asked for.
    pub(crate) async fn bind(key: &'static str, addr: SocketAddr) -> Result<Self, BindError> {
        let bind_error = |source| BindError { key, addr, source };
        let listener = rampart_edge::listener::bind(addr).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            configured: addr,
            local,
            listener: Arc::new(listener),
        })
    }

    /// This socket when it is bound to `addr`, else a new one bound there.
    pub(crate) async fn rebind(
        &self,
        key: &'static str,
        addr: SocketAddr,
    ) -> Result<Self, BindError> {
        if addr == self.configured {
            Ok(self.clone())
        } else {
            Self::bind(key, addr).await
        }
    }
}

/// A serve loop on a socket, stopped by its own token.
#[derive(Debug)]
pub(crate) struct Serving {
    pub socket: Socket,
    pub limits: ConnLimits,
    pub stop: CancellationToken,
}

impl Serving {
    /// Whether this loop already serves `socket` with `limits`.
    pub(crate) fn serves(&self, socket: &Socket, limits: ConnLimits) -> bool {
        self.socket.configured == socket.configured && self.limits == limits
    }
}

/// What serves after a reload: `old` when it already serves `next` with
/// `limits` (and `keep` holds), else a loop from `start` on `next` (none
/// when there is no `next`), with `old` then told to stop accepting.
pub(crate) fn replace(
    old: Option<Serving>,
    next: Option<Socket>,
    limits: ConnLimits,
    keep: bool,
    start: impl FnOnce(Socket) -> Serving,
) -> Option<Serving> {
    match (next, old) {
        (Some(socket), Some(old)) if keep && old.serves(&socket, limits) => Some(old),
        (next, old) => {
            let serving = next.map(start);
            if let Some(old) = old {
                old.stop.cancel();
            }
            serving
        }
    }
}

/// The connection limits `[server]` sets on the public listener.
pub(crate) fn public_limits(server: &ServerConfig) -> ConnLimits {
    ConnLimits {
        max_header_size: server.max_header_size,
        header_read_timeout: server.header_read_timeout,
        max_connections: server.max_connections,
        shutdown_timeout: server.shutdown_timeout,
    }
}

/// The admin listener's limits: the public ones with fewer connections.
pub(crate) fn admin_limits(server: &ServerConfig) -> ConnLimits {
    ConnLimits {
        max_connections: 256,
        ..public_limits(server)
    }
}
