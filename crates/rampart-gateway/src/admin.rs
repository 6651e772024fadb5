//! The admin listener: `/metrics` (Prometheus), `/healthz` (alive) and
//! `/readyz` (upstreams reachable), open; `/admin/purge` and
//! `/admin/cache/stats` with the bearer token; `/admin/events/{name}` with
//! the bearer token or an HMAC signature of the body.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::{full, Body};
use crate::invalidate::{EventError, Purge, Source};
use crate::problem::problem;
use crate::state::Gateway;

/// Handles one admin request.
pub async fn handle(
    gw: Arc<Gateway>,
    token: Option<Arc<str>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let response = match (req.method(), path) {
        (&Method::GET, "/metrics") => {
            gw.l1.run_pending_tasks();
            gw.metrics.l1_entries.set(gw.l1.entry_count() as i64);
            gw.metrics.l1_bytes.set(gw.l1.weighted_size() as i64);
            let tags = gw.l1.tag_index_size();
            gw.metrics.l1_tags.set(tags.tags as i64);
            gw.metrics.l1_tag_links.set(tags.links as i64);
            if let Some(redis) = &gw.redis {
                gw.metrics.redis_up.set(i64::from(redis.is_up()));
            }
            let now = gw.clock.since_epoch();
            for (upstream, admission) in gw.upstreams.iter().zip(&gw.admissions) {
                if let Some(admission) = admission {
                    for (index, class) in ["critical", "high", "default", "low"].iter().enumerate()
                    {
                        gw.metrics
                            .queue_depth(&upstream.name, class, admission.depth(index));
                    }
                }
                for (target, state) in upstream.breaker_states(now) {
                    gw.metrics
                        .circuit_state(&upstream.name, target, state.as_gauge());
                }
                gw.metrics
                    .healthy_targets(&upstream.name, upstream.available(now));
            }
            Response::builder()
                .header(
                    CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(full(gw.metrics.render()))
                .unwrap_or_default()
        }
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/readyz") => readyz(&gw).await,
        (&Method::POST, p) if p.starts_with("/admin/events/") => {
            let name = p["/admin/events/".len()..].to_string();
            event(&gw, token.as_deref(), name, req).await
        }
        (_, p) if p.starts_with("/admin/") => {
            if !authorized(&req, token.as_deref()) {
                unauthorized()
            } else {
                match (req.method(), p) {
                    (&Method::POST, "/admin/purge") => purge(&gw, req).await,
                    (&Method::GET, "/admin/cache/stats") => stats(&gw).await,
                    _ => problem(
                        StatusCode::NOT_FOUND,
                        "not-found",
                        &format!("no admin endpoint {} {p}", req.method()),
                        None,
                    ),
                }
            }
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("no admin endpoint at {path}"),
            None,
        ),
    };
    Ok(response)
}

fn unauthorized() -> Response<Body> {
    let mut r = problem(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
        None,
    );
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    r
}

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 1 << 20;

/// Reads an admin request's body, at most [`MAX_ADMIN_BODY`].
async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, Response<Body>> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            &format!("admin request bodies are limited to {MAX_ADMIN_BODY} bytes"),
            None,
        )),
        Err(e) => Err(problem(
            StatusCode::BAD_REQUEST,
            "bad-body",
            &format!("the request body could not be read: {e}"),
            None,
        )),
    }
}

/// `POST /admin/purge`.
async fn purge(gw: &Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request: Purge = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-purge",
                &format!("expected {{\"keys\": [...], \"tags\": [...], \"prefixes\": [...]}}: {e}"),
                None,
            )
        }
    };
    if let Err(e) = request.validate() {
        return problem(StatusCode::BAD_REQUEST, "bad-purge", &e, None);
    }
    let purged = crate::invalidate::purge(gw, &request, Source::Api).await;
    json_response(
        StatusCode::OK,
        &json!({ "purged": purged, "total": purged.total() }),
    )
}

/// `POST /admin/events/{name}`: bearer token, or `X-Rampart-Signature`
/// (HMAC-SHA256 of the body with `webhook_secret`, hex, optionally
/// prefixed `sha256=`).
async fn event(
    gw: &Arc<Gateway>,
    token: Option<&str>,
    name: String,
    req: Request<Incoming>,
) -> Response<Body> {
    let bearer = authorized(&req, token);
    let signature = req
        .headers()
        .get("x-rampart-signature")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("sha256=").to_string());
    if !bearer && signature.is_none() {
        return unauthorized();
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !bearer {
        let secret = gw.webhook_secret.as_deref();
        if !signature.is_some_and(|sig| crate::invalidate::signature_ok(secret, &body, &sig)) {
            return problem(
                StatusCode::UNAUTHORIZED,
                "bad-signature",
                "X-Rampart-Signature is not the HMAC-SHA256 of the body with the webhook secret",
                None,
            );
        }
    }
    let request = match crate::invalidate::event_purge(&gw.events, &name, &body) {
        Ok(p) => p,
        Err(e) => {
            let status = match e {
                EventError::Unknown(_) => StatusCode::NOT_FOUND,
                EventError::NotAnObject(_) => StatusCode::BAD_REQUEST,
                EventError::MissingField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return problem(status, "bad-event", &e.to_string(), None);
        }
    };
    gw.metrics.event(&name);
    let purged = crate::invalidate::purge(gw, &request, Source::Event).await;
    json_response(
        StatusCode::OK,
        &json!({
            "event": name,
            "tags": request.tags,
            "keys": request.keys,
            "purged": purged,
            "total": purged.total(),
        }),
    )
}

/// `GET /admin/cache/stats`.
async fn stats(gw: &Gateway) -> Response<Body> {
    gw.l1.run_pending_tasks();
    let tags = gw.l1.tag_index_size();
    let mut out = json!({
        "l1": {
            "entries": gw.l1.entry_count(),
            "bytes": gw.l1.weighted_size(),
            "budget_bytes": gw.cache.memory,
            "tags": tags.tags,
            "tag_links": tags.links,
        },
    });
    if let Some(redis) = &gw.redis {
        out["redis"] = json!({ "up": redis.ping().await });
        if let Some(census) = crate::l2::census(redis).await {
            out["l2"] = json!(census);
        }
    }
    json_response(StatusCode::OK, &out)
}

/// Constant-time check of `Authorization: Bearer <token>`. Without a
/// configured token, `/admin/*` is closed to everyone.
fn authorized(req: &Request<Incoming>, token: Option<&str>) -> bool {
    let Some(expected) = token else { return false };
    let Some(given) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

/// 200 when every upstream has a target taking traffic, else 503. With
/// active health checks their verdict counts; without, a target counts when a
/// TCP connection to it opens within a second. A target whose circuit is open
/// does not count.
async fn readyz(gw: &Gateway) -> Response<Body> {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let now = gw.clock.since_epoch();
    for upstream in &gw.upstreams {
        let open: Vec<&str> = upstream
            .breaker_states(now)
            .into_iter()
            .filter(|(_, s)| *s == rampart_guard::breaker::State::Open)
            .map(|(t, _)| t)
            .collect();
        let health = upstream.health_states();
        let probes = health.iter().map(|&(target, healthy)| async move {
            if upstream.health_config().is_some() {
                return healthy;
            }
            matches!(
                tokio::time::timeout(
                    Duration::from_secs(1),
                    tokio::net::TcpStream::connect(target)
                )
                .await,
                Ok(Ok(_))
            )
        });
        let results = futures_util::future::join_all(probes).await;
        let healthy = health
            .iter()
            .zip(&results)
            .filter(|((t, _), ok)| **ok && !open.contains(t))
            .count();
        ready &= healthy > 0;
        checks.insert(
            upstream.name.clone(),
            json!({
                "status": if healthy > 0 { "up" } else { "down" },
                "healthy_targets": healthy,
                "targets": health.len(),
                "checked_by": if upstream.health_config().is_some() { "health-checks" } else { "tcp-connect" },
            }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Redis down does not make the node unready: it serves from L1 and the
    // origin without it; the check says so.
    let mut all = json!({ "upstreams": checks });
    if let Some(redis) = &gw.redis {
        all["redis"] = json!({ "status": if redis.ping().await { "up" } else { "down" } });
    }
    json_response(
        status,
        &json!({
            "status": if ready { "ready" } else { "unavailable" },
            "checks": all,
        }),
    )
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(value.to_string()))
        .unwrap_or_default()
}
