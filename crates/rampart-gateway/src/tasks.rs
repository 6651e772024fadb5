//! The gateway's background work, each task stopping with `stop`: active
//! health checks per upstream and warmers, on the injected clock's time
//! (so tests advance it instead of waiting), and the purge fan-out with the
//! invalidator that applies what it delivers.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue, Method, Uri};
use rampart_cluster::Fanout;
use rampart_config::WarmerConfig;
use rampart_core::Clock;
use rampart_proxy::request::RequestHead;
use rampart_proxy::{CacheCtx, State};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Deliveries from the fan-out waiting for the invalidator.
const DELIVERY_QUEUE: usize = 1024;

/// Runs `work` at once, then `period` after each run ends on `clock`,
/// until `stop`.
fn every<F, Fut>(
    clock: Arc<dyn Clock>,
    period: Duration,
    stop: &CancellationToken,
    mut work: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = work() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = clock.sleep(period) => {}
            }
        }
    })
}

/// One task per upstream with active health checks.
pub(crate) fn health_checks(state: &Arc<State>, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (index, upstream) in state.upstreams.pools().iter().enumerate() {
        if let Some(interval) = upstream.health_config().map(|h| h.interval) {
            let upstreams = Arc::clone(&state.upstreams);
            tasks.push(every(Arc::clone(&state.clock), interval, stop, move || {
                let upstreams = Arc::clone(&upstreams);
                async move { upstreams.pools()[index].check_health().await }
            }));
        }
    }
    tasks
}

/// The request a warmer makes at `now`: a GET of its URL, as a client of
/// that host.
fn warmer_head(warmer: &WarmerConfig, now: std::time::SystemTime) -> RequestHead {
    let mut headers = HeaderMap::new();
    if let Some(host) = warmer
        .url
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(http::header::HOST, host);
    }
    RequestHead {
        method: Method::GET,
        uri: warmer
            .url
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone())),
        headers,
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        trusted: true,
        tls: warmer.url.scheme_str() == Some("https"),
        identity: rampart_proxy::identity::identify(&HeaderMap::new(), false, now),
    }
}

/// One task per `[[warmers]]` entry.
pub(crate) fn warmers(
    state: &Arc<State>,
    warmers: &[WarmerConfig],
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    warmers
        .iter()
        .filter_map(|warmer| {
            let route = Arc::clone(state.router.get(warmer.route)?);
            let (warmer, state) = (warmer.clone(), Arc::clone(state));
            Some(every(
                Arc::clone(&state.clock),
                warmer.every,
                stop,
                move || {
                    // Each refetch is a request of its own, with its own id.
                    let head = warmer_head(&warmer, state.clock.now());
                    let (state, route) = (Arc::clone(&state), Arc::clone(&route));
                    async move {
                        let Some(policy) = &route.config.cache else {
                            return;
                        };
                        let ctx = CacheCtx {
                            tiers: &state.tiers,
                            upstreams: &state.upstreams,
                            route: &route,
                            policy,
                        };
                        if rampart_proxy::lookup::warm(ctx, &head).await {
                            state.metrics.warmed.inc();
                        }
                    }
                },
            ))
        })
        .collect()
}

/// With Redis: the fan-out, and the invalidator of the state in use (after
/// a reload, the new one) applying what it delivers.
pub(crate) fn fanout(
    fanout: &Arc<Fanout>,
    state: Arc<ArcSwap<State>>,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let (tx, mut rx) = mpsc::channel(DELIVERY_QUEUE);
    let applier = tokio::spawn(async move {
        while let Some(delivery) = rx.recv().await {
            let invalidator = Arc::clone(&state.load().invalidator);
            invalidator.deliver(delivery).await;
        }
    });
    vec![
        tokio::spawn(Arc::clone(fanout).run(tx, stop.clone())),
        applier,
    ]
}
