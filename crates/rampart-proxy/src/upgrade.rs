//! HTTP/1.1 `Upgrade` (WebSocket and other protocols) on routes that allow
//! it: the handshake goes to the upstream like any request (after the
//! route's rate limits and through its admission control, never cached);
//! when the upstream answers `101`, the client gets the `101` and the bytes
//! are copied both ways until either side closes, nothing is sent for the
//! route's `idle_timeout`, or `max_lifetime` has passed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use rampart_config::UpgradeConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::{empty, Body};
use crate::error::GatewayError;
use crate::forward::Upstreams;
use crate::headers::{list_tokens, remove_hop_by_hop};
use crate::metrics::Metrics;
use crate::request::RequestHead;
use crate::router::Route;

/// What a client asked to upgrade to, taken before the head is cleaned of
/// hop-by-hop fields.
pub struct Requested {
    /// The `Upgrade` value (`websocket`).
    pub protocol: HeaderValue,
    /// The client's connection once the `101` is sent.
    pub client: OnUpgrade,
}

/// The upgrade an HTTP/1.1 request asks for (`Connection: upgrade` and an
/// `Upgrade` protocol), if any.
pub fn requested<B>(req: &mut Request<B>) -> Option<Requested> {
    if req.version() != http::Version::HTTP_11 {
        return None;
    }
    let asks = list_tokens(req.headers(), CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(UPGRADE)?.clone();
    asks.then(|| Requested {
        protocol,
        client: hyper::upgrade::on(req),
    })
}

/// Sends the handshake upstream and, on `101`, joins the two connections.
pub async fn proxy(
    upstreams: &Upstreams,
    metrics: &Arc<Metrics>,
    route: &Route,
    settings: UpgradeConfig,
    head: &RequestHead,
    requested: Requested,
) -> Result<Response<Body>, GatewayError> {
    let mut req = crate::forward::forwarded(head, empty());
    req.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    req.headers_mut().insert(UPGRADE, requested.protocol);
    let mut response = upstreams.send(&route.config, req).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(response);
    }
    let upstream = hyper::upgrade::on(&mut response);
    let protocol = response.headers().get(UPGRADE).cloned();
    let (parts, _) = response.into_parts();
    let mut headers = parts.headers;
    remove_hop_by_hop(&mut headers);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(p) = protocol {
        headers.insert(UPGRADE, p);
    }
    let mut answer = Response::new(empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = headers;

    let client = requested.client;
    let (open, (to_upstream, to_client)) =
        (metrics.upgraded_open.clone(), metrics.upgraded_bytes());
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            _ => return,
        };
        open.inc();
        pipe(
            TokioIo::new(client),
            TokioIo::new(upstream),
            settings,
            (to_upstream, to_client),
        )
        .await;
        open.dec();
    });
    Ok(answer)
}

/// Copies both ways until both directions end, or the connection is idle
/// for `idle_timeout`, or `max_lifetime` has passed.
async fn pipe<C, U>(client: C, upstream: U, settings: UpgradeConfig, counters: (Counter, Counter))
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let up = copy(
        &mut client_read,
        &mut upstream_write,
        &counters.0,
        &last,
        started,
    );
    let down = copy(
        &mut upstream_read,
        &mut client_write,
        &counters.1,
        &last,
        started,
    );
    let idle = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let quiet = started.elapsed().saturating_sub(since);
            if quiet >= settings.idle_timeout {
                return;
            }
            tokio::time::sleep(settings.idle_timeout - quiet).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = idle => {}
        () = tokio::time::sleep(settings.max_lifetime) => {}
    }
}

/// Copies `from` to `to` until `from` ends (then shuts `to` down), counting
/// bytes and noting the time of the last one.
async fn copy<R, W>(from: &mut R, to: &mut W, bytes: &Counter, last: &AtomicU64, started: Instant)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        bytes.inc_by(n as u64);
        last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}
