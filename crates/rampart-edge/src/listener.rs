//! Listeners: accept loops with a connection bound, HTTP/1.1 and h2c on one
//! port, slowloris protection, and graceful shutdown that drains in-flight
//! requests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::activity::RequestBody;
use crate::connection::{self, Conn, Protocols};
use crate::memory;

/// Protocol limits applied to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Largest request head.
    pub max_header_size: usize,
    /// Time allowed to send a request head.
    pub header_read_timeout: Duration,
    /// Most connections at once.
    pub max_connections: usize,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_timeout: Duration,
}

/// Pending connections a listening socket may hold: asked for as many as
/// the system allows (Linux caps it at `net.core.somaxconn`, 4096 on current
/// kernels), as Envoy and Go servers do. The runtime's own bind asks for
/// 128, and a burst of more new connections than that (a thousand users
/// arriving at once) overflows it: the kernel drops the extra SYNs and
/// those clients wait a whole second to send them again.
const BACKLOG: u32 = 65_535;

/// Listens on `addr` with the largest backlog the system allows.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As the runtime's bind does: a restarted server may bind its port
    // while the old one's connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The TLS settings of a listener, replaced on reload (certificates are
/// read again); each new connection takes the settings current then.
pub type TlsSwap = Arc<arc_swap::ArcSwap<rustls::ServerConfig>>;

/// When a serve loop stops.
#[derive(Debug, Clone)]
pub struct Stops {
    /// Stop accepting; open connections go on until their clients close
    /// them (what a reload does to a replaced loop: closing a kept-alive
    /// connection could race a request the client is sending on it).
    pub accepting: CancellationToken,
    /// Shut down: stop accepting, then let open requests finish within
    /// `shutdown_timeout` and close every connection.
    pub shutdown: CancellationToken,
}

/// A listener's connection gauges.
#[derive(Debug, Clone, Default)]
pub struct ConnGauges {
    /// Connections open.
    pub open: Gauge,
    /// Open HTTP/1.1 connections parked: idle for more than
    /// [`PARK_AFTER`](crate::connection::PARK_AFTER), waiting for their
    /// next request without buffers.
    pub idle: Gauge,
}

/// Counts a connection open until dropped, however its task ends.
struct Open(Gauge);

impl Open {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `listener` with `handler` until `stops` say so, counting its
/// connections in `gauges`. The listener is shared: a reload starts a new
/// loop with new limits on the same socket before the old one stops
/// accepting, so no connection is refused in between.
pub async fn serve<H, F, B>(
    listener: Arc<TcpListener>,
    limits: ConnLimits,
    stops: Stops,
    (tls, gauges): (Option<TlsSwap>, ConnGauges),
    handler: H,
) where
    H: Fn(Request<RequestBody>, Conn) -> F + Clone + Unpin + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let protocols = Arc::new(Protocols::new(
        limits.max_header_size,
        limits.header_read_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stop = stops.accepting.clone();
    let shutdown = stops.shutdown.clone();
    loop {
        // Take a connection slot before accepting: past the bound, clients
        // wait in the kernel's backlog instead of consuming memory here.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // A client's first head, its TLS handshake included, is due this
        // long after it was accepted.
        let head_by = tokio::time::Instant::now() + protocols.header_read_timeout();
        let handler = handler.clone();
        let protocols = Arc::clone(&protocols);
        let shutdown = shutdown.clone();
        let tls = tls.as_ref().map(|t| t.load_full());
        let open = Open::new(gauges.open.clone());
        let idle = gauges.idle.clone();
        tokio::spawn(async move {
            let conn = Conn {
                peer,
                tls: tls.is_some(),
            };
            match tls {
                None => {
                    let stops = (&shutdown, &idle);
                    connection::serve(stream, &protocols, (handler, conn), stops, head_by).await;
                }
                Some(settings) => {
                    // Boxed: a TLS connection's state (rustls's) would
                    // otherwise size every connection's task.
                    Box::pin(async move {
                        let acceptor = tokio_rustls::TlsAcceptor::from(settings);
                        // The handshake counts against the time to send a head.
                        let handshake = acceptor.accept(stream);
                        match tokio::time::timeout_at(head_by, handshake).await {
                            Ok(Ok(stream)) => {
                                let stops = (&shutdown, &idle);
                                let conn = (handler, conn);
                                connection::serve(stream, &protocols, conn, stops, head_by).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    })
                    .await;
                }
            }
            drop(permit);
            drop(open);
            memory::released();
        });
    }
    drop(listener);
    // Every connection's task gives its slot back when it ends.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if !shutdown.is_cancelled() {
        // Replaced by a reload: wait for the open connections to end or for
        // the shutdown, whichever comes first.
        tokio::select! {
            _ = slots.acquire_many(all) => return,
            _ = shutdown.cancelled() => {}
        }
    }
    // Shutting down: every connection finishes the response it is sending
    // and closes.
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached with requests still open");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of new connections larger than the runtime's default backlog
    /// (128) all complete while nobody accepts: none of their SYNs is
    /// dropped (a dropped SYN is sent again only after a second, then three,
    /// and never while the queue stays full).
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(128);
        let burst = 600.min(somaxconn);
        assert!(
            burst > 128,
            "net.core.somaxconn is {somaxconn}: raise it (sysctl -w net.core.somaxconn=4096)"
        );
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..burst).map(|_| tokio::net::TcpStream::connect(addr));
        let all = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::future::join_all(connects),
        )
        .await
        .expect("every connection of the burst completes without an accept");
        assert!(all.iter().all(Result::is_ok));
        drop(listener);
    }
}
