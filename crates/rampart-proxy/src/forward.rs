//! Forwarding: the request sent upstream (hop-by-hop headers removed,
//! forwarding headers set), and the way it is sent: a slot from the
//! upstream's admission control, then the upstream's pool, within the
//! route's deadline, timed and counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{
    ACCEPT_ENCODING, CONTENT_LENGTH, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use http::{HeaderValue, Method, Request, Response};
use rampart_cache::Entry;
use rampart_config::{Config, RouteConfig, UpstreamConfig};
use rampart_core::Clock;
use rampart_guard::admission::{Admission, Settings};

use crate::body::{empty, guarded, Body, ClientBodyError};
use crate::error::GatewayError;
use crate::headers::{remove_hop_by_hop_upstream, set_forwarded, BadHead};
use crate::metrics::Metrics;
use crate::outcome::UpstreamOutcome;
use crate::request::RequestHead;
use crate::upstream::{PoolError, Upstream, UpstreamError};

/// Fields a forwarded request may gain: `X-Forwarded-For`, `-Proto`,
/// `-Host`, `Forwarded`, `X-Request-Id`, `traceparent`, `tracestate`.
const FORWARDING_FIELDS: usize = 7;

/// The request for a client's request: same method, path, query and body;
/// hop-by-hop headers removed, forwarding headers set.
pub fn forwarded(head: &RequestHead, body: Body) -> Request<Body> {
    upstream_request(head, head.method.clone(), body, |_| {})
}

/// The request Rampart sends to fill the cache: always a GET, without the
/// client's own conditionals or ranges (the cache answers those itself),
/// with the validators of the `stale` entry, asking for identity when
/// Rampart compresses.
pub fn for_cache(head: &RequestHead, stale: Option<&Entry>, identity: bool) -> Request<Body> {
    upstream_request(head, Method::GET, empty(), |headers| {
        for name in [
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_MATCH,
            IF_UNMODIFIED_SINCE,
            IF_RANGE,
            RANGE,
            CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
        if let Some(stale) = stale {
            if let Some(etag) = stale.headers.get(ETAG) {
                headers.insert(IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = stale.headers.get(LAST_MODIFIED) {
                headers.insert(IF_MODIFIED_SINCE, lm.clone());
            }
        }
        if identity {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
    })
}

/// A request upstream for `head`: the client's headers without hop-by-hop
/// fields, changed by `edit`, then given the forwarding fields and the
/// request's id and trace context.
fn upstream_request(
    head: &RequestHead,
    method: Method,
    body: Body,
    edit: impl FnOnce(&mut http::HeaderMap),
) -> Request<Body> {
    let mut headers = head.headers.clone();
    // Room for what is added below: one growth instead of several.
    headers.reserve(FORWARDING_FIELDS);
    remove_hop_by_hop_upstream(&mut headers);
    edit(&mut headers);
    set_forwarded(&mut headers, head.peer, head.scheme(), head.trusted);
    head.identity.apply(&mut headers);
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = head.path_and_query();
    *req.headers_mut() = headers;
    req
}

/// The route's changes to a request on its way upstream: the path
/// rewritten (query kept) and the request header edits. The cache key is
/// the client's URL, and both are functions of it, so the key and the
/// request forwarded still agree.
pub fn for_route(
    route: &RouteConfig,
    mut req: Request<Body>,
) -> Result<Request<Body>, GatewayError> {
    let rewrite = &route.rewrite;
    if rewrite.path.is_some() || rewrite.strip_prefix.is_some() {
        let path = req.uri().path();
        let pattern = &route.matcher.path;
        let params = pattern.matches(path).unwrap_or_default();
        let mut target = rewrite.apply(path, &params, pattern.tail(path));
        if let Some(query) = req.uri().query() {
            target.push('?');
            target.push_str(query);
        }
        *req.uri_mut() = target
            .parse()
            .map_err(|_| GatewayError::BadRequest(BadHead::Rewrite))?;
    }
    route.request_headers.apply(req.headers_mut());
    Ok(req)
}

/// Every upstream's pool and admission control.
pub struct Upstreams {
    pools: Vec<Arc<Upstream>>,
    /// Admission control per upstream (`None`: unlimited).
    admissions: Vec<Option<Arc<Admission>>>,
    /// The definitions the pools were made from, to tell on a reload which
    /// ones are unchanged.
    defs: Vec<UpstreamConfig>,
    weights: [u32; 4],
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Whether responses carry which target answered
    /// ([`crate::upstream::Upstreamed`]): only the access log reads it.
    annotate: bool,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    /// The pools of a config's `[[upstreams]]`, indexed as there; the
    /// breakers read `clock`. With `prev` (a reload), an upstream whose
    /// definition did not change keeps its pool, connections, breakers,
    /// health and admission queue.
    pub fn new(
        config: &Config,
        metrics: &Arc<Metrics>,
        clock: Arc<dyn Clock>,
        prev: Option<&Upstreams>,
    ) -> Result<Self, PoolError> {
        let same = |def: &UpstreamConfig| {
            prev.and_then(|p| p.defs.iter().position(|d| d == def).map(|i| (p, i)))
        };
        let pools = config
            .upstreams
            .iter()
            .map(|u| match same(u) {
                Some((p, i)) => Ok(Arc::clone(&p.pools[i])),
                None => Upstream::new(u, metrics).map(Arc::new),
            })
            .collect::<Result<_, _>>()?;
        let admissions = config
            .upstreams
            .iter()
            .map(|u| {
                let kept = same(u)
                    .filter(|(p, _)| p.weights == config.priority_weights)
                    .and_then(|(p, i)| p.admissions[i].clone());
                kept.or_else(|| {
                    u.admission.map(|a| {
                        Admission::new(
                            Settings {
                                max_concurrency: a.max_concurrency,
                                queue_size: a.queue_size,
                                queue_timeout: a.queue_timeout,
                            },
                            &config.priority_weights,
                        )
                    })
                })
            })
            .collect();
        Ok(Self {
            pools,
            admissions,
            defs: config.upstreams.clone(),
            weights: config.priority_weights,
            metrics: Arc::clone(metrics),
            clock,
            annotate: config.log.access,
        })
    }

    /// Whether the upstream at `index` is the very pool `other` holds at
    /// `other_index` (kept by a reload).
    pub fn shares_pool(&self, index: usize, other: &Upstreams, other_index: usize) -> bool {
        match (self.pools.get(index), other.pools.get(other_index)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The pools, indexed as in the config.
    pub fn pools(&self) -> &[Arc<Upstream>] {
        &self.pools
    }

    /// The admission control of the upstream at `index`, if it has one.
    pub fn admission(&self, index: usize) -> Option<&Arc<Admission>> {
        self.admissions.get(index).and_then(Option::as_ref)
    }

    /// The breakers' time now.
    pub fn now(&self) -> Duration {
        self.clock.since_epoch()
    }

    /// Sends a prepared request to the route's upstream within the route's
    /// deadline: first a slot from the upstream's admission control (waiting
    /// counts against the deadline; the slot is held until the response
    /// body ends or is dropped), then the request, recording its timing.
    pub async fn send(
        &self,
        route: &RouteConfig,
        req: Request<Body>,
    ) -> Result<Response<Body>, GatewayError> {
        let req = for_route(route, req)?;
        let upstream = &self.pools[route.upstream];
        let deadline = Instant::now() + route.timeout;
        let slot = match self.admission(route.upstream) {
            None => None,
            Some(admission) => {
                let admitted = admission.acquire(route.priority.index(), deadline).await;
                self.metrics.queue_wait(
                    &upstream.name,
                    route.priority.as_str(),
                    route
                        .timeout
                        .saturating_sub(deadline.saturating_duration_since(Instant::now())),
                );
                match admitted {
                    Ok(permit) => Some(permit),
                    Err(shed) => {
                        self.metrics
                            .shed(&upstream.name, route.priority.as_str(), shed);
                        return Err(GatewayError::Shed {
                            upstream: upstream.name.clone(),
                            reason: shed,
                        });
                    }
                }
            }
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let now = self.clock.since_epoch();
        let result = upstream.send(req, timeout, now, self.annotate).await;
        let outcome = match &result {
            Ok(r) => UpstreamOutcome::of_status(r.status()),
            Err(e) => e.outcome(),
        };
        self.metrics
            .upstream(&upstream.name, outcome, started.elapsed());
        match result {
            Ok(r) => Ok(match slot {
                Some(slot) => r.map(|b| guarded(b, slot)),
                None => r,
            }),
            Err(e) => Err(gateway_error(&upstream.name, e)),
        }
    }
}

/// What the client is told of an upstream's failure; the details (targets,
/// addresses, error chains) go to the log only.
fn gateway_error(upstream: &str, e: UpstreamError) -> GatewayError {
    let upstream = upstream.to_string();
    match e {
        UpstreamError::Timeout(timeout) => GatewayError::UpstreamTimeout { upstream, timeout },
        UpstreamError::Connect { .. } => {
            tracing::warn!(upstream, error = %e, "upstream unreachable");
            GatewayError::UpstreamUnreachable { upstream }
        }
        UpstreamError::Failed { .. } => {
            tracing::warn!(upstream, error = %e, "upstream exchange failed");
            GatewayError::UpstreamFailed { upstream }
        }
        UpstreamError::ClientBody(ClientBodyError::TooLarge { limit }) => {
            GatewayError::BodyTooLarge { limit }
        }
        UpstreamError::ClientBody(ClientBodyError::Broken) => GatewayError::BadRequestBody,
        UpstreamError::ClientBody(ClientBodyError::Stalled) => GatewayError::RequestBodyTimeout,
        UpstreamError::CircuitOpen { retry_after } => GatewayError::CircuitOpen {
            upstream,
            retry_after,
        },
        UpstreamError::NoHealthyTarget { retry_after } => GatewayError::NoHealthyTarget {
            upstream,
            retry_after,
        },
    }
}
