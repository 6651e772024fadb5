//! The request path, in order. [`handle`] reads as the list of stages a
//! request goes through, each on its line with the reason it sits there;
//! each stage is a function of the modules below, which never call back up.

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE, HOST, REFERER, USER_AGENT};
use http::{HeaderValue, Method, Request, Response, Version};
use rampart_cache::{CacheStatus, Forward, NoCacheReason};
use rampart_cluster::Redis;
use rampart_config::{AuthorizationPolicy, CookiePolicy, ServerConfig};
use rampart_core::Clock;
use tracing::Instrument;

use crate::access::{logged_body, AccessLine};
use crate::body::{from_client, Body, Incoming};
use crate::cache_ctx::CacheCtx;
use crate::error::{GatewayError, RATELIMIT, RATELIMIT_POLICY};
use crate::forward::Upstreams;
use crate::headers::{client_ip, is_trusted, prepare_request};
use crate::identity::{identify, Identity, X_REQUEST_ID};
use crate::limits::{Limiters, Verdict};
use crate::metrics::Metrics;
use crate::outcome::LimitRefusal;
use crate::request::RequestHead;
use crate::router::{Route, Router};
use crate::state::State;
use crate::tiers::Tiers;
use crate::upstream::Upstreamed;
use rampart_telemetry::span;

/// What the log line and metrics need to know about a request.
#[derive(Debug, Default)]
struct Outcome {
    /// The matched route.
    route: Option<usize>,
    /// What the cache did.
    cache: Option<CacheStatus>,
    /// `RateLimit-Policy` and `RateLimit` for the response.
    limit_headers: Option<(HeaderValue, HeaderValue)>,
}

/// Handles one request end to end: never fails, errors become problem+json.
pub async fn handle<B: Incoming>(
    state: Arc<State>,
    req: Request<B>,
    peer: SocketAddr,
    tls: bool,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let in_flight = InFlight::enter(&state);
    let method = req.method().clone();
    let client = client_ip(peer.ip(), req.headers(), &state.server.trusted_proxies);
    // Only the access log needs these once the request is consumed.
    let logged = state
        .access
        .is_some()
        .then(|| Logged::of(&req, client, tls, started));
    // 0. Who the request is: its id and trace go upstream with it, come
    //    back on the response and mark every log line of it.
    let trusted = is_trusted(peer.ip(), &state.server.trusted_proxies);
    let mut identity = identify(req.headers(), trusted, state.clock.now());
    let span = request_span(&req, &mut identity);
    let mut outcome = Outcome::default();
    // A panic is a bug; it fails this request, never the connection or the
    // process, and is counted and logged (defence in depth: no value from a
    // client, an origin or Redis may panic anything in the first place).
    let arrival = Arrival {
        peer,
        tls,
        trusted,
        identity: &identity,
    };
    let staged =
        AssertUnwindSafe(stages(&state, req, arrival, client, &mut outcome)).catch_unwind();
    // Wrapping the request's future moves it (several KiB): only when the
    // span is recorded (logging at info).
    let staged = if span.is_disabled() {
        staged.await
    } else {
        staged.instrument(span.clone()).await
    };
    let mut response = match staged {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(Some(identity.request_id())),
        Err(panic) => {
            state.metrics.panics.inc();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(|| {
                tracing::error!(panic = what, "the request path panicked; answered 500")
            });
            GatewayError::Internal.into_response(Some(identity.request_id()))
        }
    };
    response
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), identity.request_id_value());
    if let Some(route) = outcome.route.and_then(|r| state.router.get(r)) {
        route.config.response_headers.apply(response.headers_mut());
    }
    if let (true, Some(hsts)) = (tls, state.server.tls.as_ref().and_then(|t| t.hsts.as_ref())) {
        response
            .headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if let Some((policy, limit)) = outcome.limit_headers.take() {
        response
            .headers_mut()
            .insert(RATELIMIT_POLICY.clone(), policy);
        response.headers_mut().insert(RATELIMIT.clone(), limit);
    }
    drop(in_flight);
    let status = response.status().as_u16();
    span::record_status(&span, status);
    state
        .metrics
        .request(outcome.route, &method, status, started.elapsed());
    if let (Some(route), Some(cache)) = (outcome.route, &outcome.cache) {
        state.metrics.cache(route, cache);
    }
    if let Some(logged) = logged {
        response = with_access_line(&state, logged, response, &outcome, &identity);
    }
    Ok(response)
}

/// The request's span: its id and trace on every log line of it; when
/// spans are exported, the server span of the trace (continued from the
/// caller's `traceparent` or begun here), whose ids then become the
/// request's trace.
fn request_span<B>(req: &Request<B>, identity: &mut Identity) -> tracing::Span {
    if !span::exporting() {
        return tracing::info_span!(
            target: span::REQUEST_TARGET,
            "request",
            request_id = identity.request_id(),
            trace_id = identity.trace_id()
        );
    }
    let request = tracing::info_span!(
        target: span::REQUEST_TARGET,
        "request",
        otel.name = req.method().as_str(),
        otel.kind = "server",
        request_id = identity.request_id(),
        trace_id = tracing::field::Empty
    );
    let head = (req.method(), req.uri(), req.version());
    if let Some(traceparent) =
        span::begin_request(&request, req.headers(), identity.continued(), head)
    {
        identity.adopt(&traceparent);
    }
    request.record("trace_id", identity.trace_id());
    request
}
/// What the access log keeps of a request while it is served.
struct Logged {
    client: IpAddr,
    method: Method,
    uri: http::Uri,
    protocol: &'static str,
    tls: bool,
    started: Instant,
    bytes_in: Option<u64>,
    user_agent: Option<String>,
    referer: Option<String>,
}

impl Logged {
    fn of<B>(req: &Request<B>, client: IpAddr, tls: bool, started: Instant) -> Self {
        let text = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Self {
            client,
            method: req.method().clone(),
            uri: req.uri().clone(),
            protocol: match req.version() {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_11 => "HTTP/1.1",
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_3 => "HTTP/3",
                _ => "HTTP/?",
            },
            tls,
            started,
            bytes_in: text(CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            user_agent: text(USER_AGENT),
            referer: text(REFERER),
        }
    }
}

/// `response` with its request's access-log line to write when its body
/// ends (bytes sent, time to the last byte), for the share of requests
/// `[log] access_sample` picks (a 5xx always).
fn with_access_line(
    state: &State,
    logged: Logged,
    response: Response<Body>,
    outcome: &Outcome,
    identity: &Identity,
) -> Response<Body> {
    let Some(access) = state.access.as_ref() else {
        return response;
    };
    let status = response.status().as_u16();
    let sampled =
        status >= 500 || state.access_sample >= 1.0 || rand::random::<f64>() < state.access_sample;
    if !sampled {
        return response;
    }
    let route = outcome.route.and_then(|r| state.router.get(r));
    let upstream = response.extensions().get::<Upstreamed>();
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let line = AccessLine {
        client: logged.client.to_string(),
        method: logged.method.as_str().to_string(),
        uri: logged.uri.to_string(),
        protocol: logged.protocol,
        tls: logged.tls,
        status,
        bytes_in: logged.bytes_in,
        bytes_out: 0,
        completed: false,
        request_id: identity.request_id().to_string(),
        trace_id: identity.trace_id().to_string(),
        route: route.map_or_else(String::new, |r| r.config.name.clone()),
        cache: outcome.cache.as_ref().map_or("", CacheStatus::label),
        upstream: upstream.map(|u| u.target.to_string()),
        upstream_us: upstream.map(|u| micros(u.elapsed)),
        ttfb_us: micros(logged.started.elapsed()),
        duration_us: 0,
        user_agent: logged.user_agent,
        referer: logged.referer,
    };
    let (access, clock, started) = (Arc::clone(access), Arc::clone(&state.clock), logged.started);
    response.map(|body| logged_body(body, line, started, access, clock))
}

/// How a request arrived, as the stages read it: settled once in
/// [`handle`].
struct Arrival<'a> {
    peer: SocketAddr,
    tls: bool,
    /// Whether the peer is one of `trusted_proxies`.
    trusted: bool,
    identity: &'a Identity,
}

/// The stages, in order.
async fn stages<B: Incoming>(
    state: &State,
    mut req: Request<B>,
    arrival: Arrival<'_>,
    client: IpAddr,
    outcome: &mut Outcome,
) -> Result<Response<Body>, GatewayError> {
    // 1. Limits first, before any work: a body declared larger than the
    //    limit is refused before it is read. An upgrade asked for is taken
    //    aside before the head loses its hop-by-hop fields.
    check_limits(&req, state.server.max_body_size)?;
    let upgrade = crate::upgrade::requested(&mut req);
    // 2. The head as everything below reads it: one valid Host, no hop-by-hop
    //    fields, nothing an untrusted client may not send; forwarding headers
    //    are believed only from trusted proxies.
    let (head, body) = split(req, arrival, &state.server)?;
    // 3. Route: the first matching [[routes]] entry decides everything below.
    let route = route(&state.router, &head)?;
    outcome.route = Some(route.index);
    let upgrade = match (upgrade, route.config.upgrade) {
        (None, _) => None,
        (Some(_), None) => return Err(GatewayError::UpgradeNotSupported),
        (Some(requested), Some(settings)) => Some((requested, settings)),
    };
    // 4. Rate limits before the cache: an abusive client can neither probe
    //    the cache nor be served from it past its allowance.
    let limits = Limits {
        limiters: &state.limiters,
        metrics: &state.metrics,
        clock: state.clock.as_ref(),
        redis: state.tiers.redis.as_deref(),
    };
    outcome.limit_headers = limits.check(route, &head, client).await?;
    // 4b. An upgrade (WebSocket) on a route that allows it: the handshake
    //     goes upstream, never through the cache; on 101 the connections join.
    if let Some((requested, settings)) = upgrade {
        let upgraded = crate::upgrade::proxy(
            &state.upstreams,
            &state.metrics,
            route,
            settings,
            &head,
            requested,
        );
        // Boxed: every request's future (moved several times) would
        // otherwise be the size of this rare one's.
        return Box::pin(upgraded).await;
    }
    // 5. Cache lookup for GET/HEAD on a cached route, before any upstream
    //    work; misses coalesce so one origin request stands for many.
    match cache_stage(&state.tiers, &state.upstreams, route, &head).await {
        Cached::Answered(result) => {
            let (response, status) = result?;
            outcome.cache = Some(status);
            return Ok(response);
        }
        Cached::Bypassed(status) => outcome.cache = status,
    }
    // 6. Straight to the upstream, the body streaming both ways.
    let (body, progress) = from_client(body, state.server.max_body_size);
    let mut req = crate::forward::forwarded(&head, body);
    // Only a body still to come can stall the upload (a GET's is done
    // already): the extension costs three allocations.
    if !progress.finished() {
        req.extensions_mut().insert(progress);
    }
    let response = state.upstreams.send(&route.config, req).await?;
    // 7. An unsafe method the origin accepted invalidates what was stored for
    //    its URL and for the Location / Content-Location it names (RFC 9111 §4.4).
    state
        .invalidator
        .after_unsafe(&head, response.status(), response.headers())
        .await;
    // 8. Respond: hop-by-hop headers removed, compressed on the fly if allowed.
    let cache = *outcome
        .cache
        .get_or_insert(bypass(Forward::Bypass, NoCacheReason::NoPolicy));
    let compression = route.config.compress.then_some(&state.tiers.compression);
    let expose_tags = state.tiers.settings.expose_tags;
    Ok(crate::respond::pass_through(
        response,
        &head,
        &cache,
        compression,
        expose_tags,
    ))
}

/// Stage 1: refuses what Rampart will not take before reading anything.
fn check_limits<B>(req: &Request<B>, max_body_size: u64) -> Result<(), GatewayError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body_size) {
        return Err(GatewayError::BodyTooLarge {
            limit: max_body_size,
        });
    }
    Ok(())
}

/// Stage 3: the route.
fn route<'r>(router: &'r Router, head: &RequestHead) -> Result<&'r Arc<Route>, GatewayError> {
    let host = head.headers.get(HOST).and_then(|h| h.to_str().ok());
    router
        .find(&head.method, host, head.uri.path())
        .ok_or_else(|| GatewayError::NoRoute {
            method: head.method.clone(),
            path: head.uri.path().to_string(),
        })
}

/// Stage 2: the head kept while the body travels apart, made fit to key
/// and forward ([`prepare_request`]). An HTTP/1.1 request in absolute form
/// names its target in the URI, which then replaces `Host` (RFC 9112
/// §3.2.2); an HTTP/2 request's `:authority` must agree with any `Host`.
fn split<B>(
    req: Request<B>,
    arrival: Arrival<'_>,
    server: &ServerConfig,
) -> Result<(RequestHead, B), GatewayError> {
    let Arrival {
        peer,
        tls,
        trusted,
        identity,
    } = arrival;
    let (mut parts, body) = req.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_string());
    if authority.is_some() && parts.version < Version::HTTP_2 {
        parts.headers.remove(HOST);
    }
    prepare_request(
        &mut parts.headers,
        authority.as_deref(),
        trusted,
        &server.strip_from_untrusted,
    )
    .map_err(GatewayError::BadRequest)?;
    let head = RequestHead {
        trusted,
        tls,
        peer: peer.ip(),
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        identity: identity.clone(),
    };
    Ok((head, body))
}

/// What stage 4 uses.
struct Limits<'a> {
    limiters: &'a Limiters,
    metrics: &'a Metrics,
    clock: &'a dyn Clock,
    redis: Option<&'a Redis>,
}

impl Limits<'_> {
    /// Stage 4: every rate limit of the route; the headers to add when allowed.
    async fn check(
        &self,
        route: &Route,
        head: &RequestHead,
        client: IpAddr,
    ) -> Result<Option<(HeaderValue, HeaderValue)>, GatewayError> {
        let verdict = self
            .limiters
            .check(
                route.index,
                &route.config,
                head,
                client,
                self.clock,
                self.redis,
            )
            .await;
        refusal(verdict, route, self.metrics)
    }
}

/// A refusal as the client's error, counted.
fn refusal(
    verdict: Verdict,
    route: &Route,
    metrics: &Metrics,
) -> Result<Option<(HeaderValue, HeaderValue)>, GatewayError> {
    match verdict {
        Verdict::Allowed(headers) => Ok(headers),
        Verdict::Refused {
            limit,
            why,
            retry_after,
            headers,
        } => {
            metrics.limited(route.index, &limit, why);
            Err(match (why, headers) {
                (LimitRefusal::Limited, Some(headers)) => GatewayError::RateLimited {
                    limit,
                    retry_after,
                    headers,
                },
                _ => GatewayError::LimitTableFull { limit },
            })
        }
    }
}

/// What the cache stage did.
enum Cached {
    /// It answered (from the cache or through a fill).
    Answered(Result<(Response<Body>, CacheStatus), GatewayError>),
    /// It did not take the request (and why, on a cached route).
    Bypassed(Option<CacheStatus>),
}

/// Stage 5: the cache, for a GET or HEAD on a cached route.
async fn cache_stage(
    tiers: &Arc<Tiers>,
    upstreams: &Arc<Upstreams>,
    route: &Arc<Route>,
    head: &RequestHead,
) -> Cached {
    let Some(policy) = &route.config.cache else {
        return Cached::Bypassed(None);
    };
    if head.method != Method::GET && head.method != Method::HEAD {
        return Cached::Bypassed(Some(bypass(Forward::Method, NoCacheReason::Method)));
    }
    if head.headers.contains_key(AUTHORIZATION)
        && !policy.keys_on_authorization()
        && policy.authorization == AuthorizationPolicy::Bypass
    {
        // A shared cache never answers one user's credentials with another's
        // data (unless the route follows the origin's say, RFC 9111 §3.5).
        return Cached::Bypassed(Some(bypass(Forward::Request, NoCacheReason::Authorization)));
    }
    if policy.cookies == CookiePolicy::Bypass && head.headers.contains_key(COOKIE) {
        // The origin may answer per cookie without saying so: a request with
        // cookies is never answered from, nor stored in, the shared cache.
        return Cached::Bypassed(Some(bypass(Forward::Request, NoCacheReason::Cookie)));
    }
    let ctx = CacheCtx {
        tiers,
        upstreams,
        route,
        policy,
    };
    Cached::Answered(crate::lookup::serve(ctx, head).await)
}

fn bypass(fwd: Forward, reason: NoCacheReason) -> CacheStatus {
    CacheStatus::Forward {
        fwd,
        fwd_status: None,
        stored: false,
        reason: Some(reason),
    }
}

/// Counts a request in flight until dropped, however the handler ends.
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        state.metrics.in_flight.inc();
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}
