//! The request path, in order. Each step says why it sits where it sits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, CONTENT_LOCATION, HOST, LOCATION, UPGRADE};
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use rampart_cache::{key, CacheStatus, Forward, NoCacheReason};

use crate::body::{boxed, Body};
use crate::cache_path;
use crate::headers::{client_ip, is_trusted, remove_hop_by_hop, set_forwarded};
use crate::problem::GatewayError;
use crate::state::{Gateway, RequestHead, CACHE_STATUS};
use crate::upstream::UpstreamError;

/// What the log line and metrics need to know about a request.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The matched route.
    pub route: Option<usize>,
    /// What the cache did.
    pub cache: Option<CacheStatus>,
    /// `RateLimit-Policy` and `RateLimit` for the response.
    pub limit_headers: Option<(HeaderValue, HeaderValue)>,
}

/// Handles one request end to end: never fails, errors become problem+json.
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let in_flight = InFlight::enter(&gw);
    let method = req.method().clone();
    // Only the access log needs the URI once the request is consumed.
    let uri = gw.access_log.then(|| req.uri().clone());
    let client = client_ip(peer.ip(), req.headers(), &gw.server.trusted_proxies);
    let mut outcome = Outcome::default();
    let mut response = match route_request(&gw, req, peer, client, &mut outcome).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some((policy, state)) = outcome.limit_headers.take() {
        response
            .headers_mut()
            .insert(http::HeaderName::from_static("ratelimit-policy"), policy);
        response
            .headers_mut()
            .insert(http::HeaderName::from_static("ratelimit"), state);
    }
    drop(in_flight);
    let status = response.status().as_u16();
    gw.metrics
        .request(outcome.route, &method, status, started.elapsed());
    if let (Some(route), Some(cache)) = (outcome.route, &outcome.cache) {
        gw.metrics.cache(route, cache);
    }
    if let Some(uri) = uri {
        tracing::info!(
            target: "rampart::access",
            client = %client,
            method = %method,
            uri = %uri,
            status,
            route = outcome.route.map(|r| gw.router.route(r).name.as_str()).unwrap_or(""),
            cache = outcome.cache.as_ref().map_or("", CacheStatus::label),
            duration_us = started.elapsed().as_micros() as u64,
        );
    }
    Ok(response)
}

async fn route_request(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    peer: SocketAddr,
    client: std::net::IpAddr,
    outcome: &mut Outcome,
) -> Result<Response<Body>, GatewayError> {
    // 1. Limits first, before any work: upgrades are not proxied, and a body
    //    declared larger than the limit is refused before it is read.
    if req.headers().contains_key(UPGRADE) {
        return Err(GatewayError::UpgradeNotSupported);
    }
    let limit = gw.server.max_body_size;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }

    // 2. Route: the first matching [[routes]] entry decides everything below.
    let Some(route_index) = gw.router.find(req.method(), req.uri().path()) else {
        return Err(GatewayError::NoRoute {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
        });
    };
    outcome.route = Some(route_index);
    let route = gw.router.route(route_index);

    // 3. Client identity: forwarding headers are believed only from trusted proxies.
    let (parts, body) = req.into_parts();
    let head = RequestHead {
        trusted: is_trusted(peer.ip(), &gw.server.trusted_proxies),
        peer: peer.ip(),
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
    };

    // 4. Rate limits before the cache: an abusive client can neither probe
    //    the cache nor be served from it past its allowance.
    let verdict = gw
        .limiters
        .check(
            route_index,
            route,
            &head,
            client,
            gw.clock.as_ref(),
            gw.redis.as_ref(),
        )
        .await;
    match verdict {
        crate::limits::Verdict::Allowed(headers) => outcome.limit_headers = headers,
        crate::limits::Verdict::Limited {
            limit,
            retry_after,
            headers,
        } => {
            gw.metrics.limited(route_index, &limit, "limited");
            return Err(GatewayError::RateLimited {
                limit,
                retry_after,
                headers,
            });
        }
        crate::limits::Verdict::TableFull { limit } => {
            gw.metrics.limited(route_index, &limit, "table-full");
            return Err(GatewayError::LimitTableFull { limit });
        }
    }

    // 5. Cache lookup for GET/HEAD on a cached route, before any upstream
    //    work; misses coalesce so one origin request stands for many.
    let cacheable_method = head.method == Method::GET || head.method == Method::HEAD;
    if let (Some(policy), true) = (&route.cache, cacheable_method) {
        if head.headers.contains_key(http::header::AUTHORIZATION) && !policy.keys_on_authorization()
        {
            // A shared cache never answers one user's credentials with another's data.
            outcome.cache = Some(bypass(Forward::Request, NoCacheReason::Authorization));
        } else {
            let (response, status) = cache_path::serve(gw, route_index, policy, &head).await?;
            outcome.cache = Some(status);
            return Ok(response);
        }
    } else if route.cache.is_some() {
        outcome.cache = Some(bypass(Forward::Method, NoCacheReason::Method));
    }

    // 6. Straight to the upstream, streaming the body both ways.
    let invalidates = matches!(
        head.method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let primary = invalidates.then(|| primary_key_of(&head));
    let limited = http_body_util::Limited::new(body, limit as usize);
    let response = forward(gw, route_index, &head, boxed(limited)).await.map_err(|e| {
        if matches!(&e, GatewayError::UpstreamFailed { detail, .. } if detail.contains("length limit exceeded")) {
            GatewayError::BodyTooLarge { limit }
        } else {
            e
        }
    })?;

    // 7. An unsafe method the origin accepted invalidates what was stored for
    //    its URL and for the Location / Content-Location it names (RFC 9111 §4.4).
    if let Some(primary) = primary {
        if response.status().is_success() || response.status().is_redirection() {
            let mut keys = vec![primary];
            for name in [LOCATION, CONTENT_LOCATION] {
                if let Some(target) = response
                    .headers()
                    .get(&name)
                    .and_then(|v| same_origin_key(&head, v))
                {
                    keys.push(target);
                }
            }
            let purge = crate::invalidate::Purge {
                keys,
                ..Default::default()
            };
            crate::invalidate::purge(gw, &purge, crate::invalidate::Source::Method).await;
        }
    }
    let cache = outcome
        .cache
        .unwrap_or(bypass(Forward::Bypass, NoCacheReason::NoPolicy));
    outcome.cache.get_or_insert(cache);
    Ok(cache_path::pass_through(
        gw,
        route_index,
        &head,
        response,
        &cache,
    ))
}

/// Counts a request in flight until dropped, however the handler ends.
struct InFlight<'a>(&'a Gateway);

impl<'a> InFlight<'a> {
    fn enter(gw: &'a Gateway) -> Self {
        gw.metrics.in_flight.inc();
        Self(gw)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

fn bypass(fwd: Forward, reason: NoCacheReason) -> CacheStatus {
    CacheStatus::Forward {
        fwd,
        fwd_status: None,
        stored: false,
        reason: Some(reason),
    }
}

/// Sends a request upstream with the route's deadline; the response body streams.
pub async fn forward(
    gw: &Gateway,
    route_index: usize,
    head: &RequestHead,
    body: Body,
) -> Result<Response<Body>, GatewayError> {
    let mut headers = head.headers.clone();
    remove_hop_by_hop(&mut headers);
    set_forwarded(&mut headers, head.peer, "http", head.trusted);
    let mut req = Request::new(body);
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = head.uri.path_and_query().map_or_else(
        || http::Uri::from_static("/"),
        |pq| http::Uri::from(pq.clone()),
    );
    *req.headers_mut() = headers;
    send(gw, route_index, req).await
}

/// Sends a prepared request to the route's upstream within the route's
/// deadline: first a slot from the upstream's admission control (waiting
/// counts against the deadline; the slot is held until the response body
/// ends or is dropped), then the request, recording its timing.
pub async fn send(
    gw: &Gateway,
    route_index: usize,
    req: Request<Body>,
) -> Result<Response<Body>, GatewayError> {
    let route = gw.router.route(route_index);
    let upstream = &gw.upstreams[route.upstream];
    let deadline = Instant::now() + route.timeout;
    let slot = match &gw.admissions[route.upstream] {
        None => None,
        Some(admission) => match admission.acquire(route.priority.index(), deadline).await {
            Ok(permit) => {
                gw.metrics.queue_wait(
                    &upstream.name,
                    route.priority.as_str(),
                    waited_since(deadline, route.timeout),
                );
                Some(permit)
            }
            Err(shed) => {
                gw.metrics.queue_wait(
                    &upstream.name,
                    route.priority.as_str(),
                    waited_since(deadline, route.timeout),
                );
                gw.metrics
                    .shed(&upstream.name, route.priority.as_str(), shed.as_str());
                return Err(GatewayError::Shed {
                    upstream: upstream.name.clone(),
                    reason: shed.as_str(),
                });
            }
        },
    };
    let timeout = deadline.saturating_duration_since(Instant::now());
    let started = Instant::now();
    let now = gw.clock.since_epoch();
    let result = upstream.send(req, timeout, now).await;
    let outcome = match &result {
        Ok(r) => status_class(r.status().as_u16()),
        Err(UpstreamError::Connect { .. }) => "connect_error",
        Err(UpstreamError::Timeout(_)) => "timeout",
        Err(UpstreamError::Failed { .. }) => "error",
        Err(UpstreamError::CircuitOpen { .. }) => "circuit_open",
        Err(UpstreamError::NoHealthyTarget { .. }) => "no_healthy_target",
    };
    gw.metrics
        .upstream(&upstream.name, outcome, started.elapsed());
    let result = result.map(|r| match slot {
        Some(slot) => r.map(|b| crate::body::guarded(b, slot)),
        None => r,
    });
    result.map_err(|e| match e {
        UpstreamError::Timeout(timeout) => GatewayError::UpstreamTimeout {
            upstream: upstream.name.clone(),
            timeout,
        },
        UpstreamError::Connect { .. } => GatewayError::UpstreamUnreachable {
            upstream: upstream.name.clone(),
            detail: e.to_string(),
        },
        UpstreamError::Failed { .. } => GatewayError::UpstreamFailed {
            upstream: upstream.name.clone(),
            detail: e.to_string(),
        },
        UpstreamError::CircuitOpen { retry_after } => GatewayError::CircuitOpen {
            upstream: upstream.name.clone(),
            retry_after,
        },
        UpstreamError::NoHealthyTarget { retry_after } => GatewayError::NoHealthyTarget {
            upstream: upstream.name.clone(),
            retry_after,
        },
    })
}

/// Time spent since the request's deadline was set.
fn waited_since(deadline: Instant, timeout: std::time::Duration) -> std::time::Duration {
    timeout.saturating_sub(deadline.saturating_duration_since(Instant::now()))
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The cache's URL key for a request.
pub fn primary_key_of(head: &RequestHead) -> String {
    key::primary_key("http", &head.uri, &head.headers)
}

/// The URL key of a `Location` value, when it points at the same host.
fn same_origin_key(head: &RequestHead, value: &HeaderValue) -> Option<String> {
    let target: http::Uri = value.to_str().ok()?.parse().ok()?;
    let host = head.headers.get(HOST)?.to_str().ok()?;
    if let Some(authority) = target.authority() {
        if !authority.as_str().eq_ignore_ascii_case(host) {
            return None;
        }
    } else if !target.path().starts_with('/') {
        return None;
    }
    let uri: http::Uri = target.path_and_query()?.as_str().parse().ok()?;
    let mut headers = http::HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(host).ok()?);
    Some(key::primary_key("http", &uri, &headers))
}

/// Adds Rampart's member to `Cache-Status` (RFC 9211: a list, the cache
/// nearest the user last), after any member from caches behind it.
pub fn set_cache_status(headers: &mut http::HeaderMap, status: &CacheStatus) {
    let ours = status.header_value("rampart");
    let value = match headers.get(&CACHE_STATUS).and_then(|v| v.to_str().ok()) {
        Some(upstream) if !upstream.trim().is_empty() => {
            HeaderValue::try_from(format!("{upstream}, {ours}"))
        }
        _ => HeaderValue::try_from(ours),
    };
    if let Ok(v) = value {
        headers.insert(CACHE_STATUS.clone(), v);
    }
}
