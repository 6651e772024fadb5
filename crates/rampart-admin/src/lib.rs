//! The admin listener: `/metrics` (Prometheus), `/healthz` (alive) and
//! `/readyz` (upstreams reachable), open; `/admin/purge` and
//! `/admin/cache/stats` with the bearer token; `/admin/events/{name}` with
//! the bearer token or an HMAC signature of the body.

mod auth;
mod probes;

use std::convert::Infallible;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use rampart_cache::{Purge, PurgeSource};
use rampart_core::{Clock, Problem};
use rampart_proxy::body::{full, Body};
use rampart_proxy::error::problem_response;
use rampart_proxy::forward::Upstreams;
use rampart_proxy::invalidate::{EventError, Invalidator};
use rampart_proxy::metrics::Metrics;
use rampart_proxy::tiers::Tiers;
use rampart_proxy::State;
use serde_json::json;

pub use auth::signature_ok;

/// What the admin API reads and acts on.
pub struct Admin {
    tiers: Arc<Tiers>,
    upstreams: Arc<Upstreams>,
    invalidator: Arc<Invalidator>,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    token: Option<String>,
    webhook_secret: Option<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin API over a proxy's state, exposing `registry`, with the
    /// `[admin]` token and webhook secret.
    pub fn new(
        state: &State,
        registry: Arc<Registry>,
        token: Option<String>,
        webhook_secret: Option<String>,
    ) -> Self {
        Self {
            tiers: Arc::clone(&state.tiers),
            upstreams: Arc::clone(&state.upstreams),
            invalidator: Arc::clone(&state.invalidator),
            metrics: Arc::clone(&state.metrics),
            registry,
            clock: Arc::clone(&state.clock),
            token,
            webhook_secret,
        }
    }
}

/// Handles one admin request.
pub async fn handle(
    admin: Arc<Admin>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let response = match (req.method(), path) {
        (&Method::GET, "/metrics") => metrics(&admin),
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/readyz") => probes::readyz(&admin).await,
        (&Method::POST, p) if p.starts_with("/admin/events/") => {
            let name = p["/admin/events/".len()..].to_string();
            event(&admin, name, req).await
        }
        (_, p) if p.starts_with("/admin/") => {
            if !auth::bearer_ok(req.headers(), admin.token.as_deref()) {
                unauthorized()
            } else {
                match (req.method(), p) {
                    (&Method::POST, "/admin/purge") => purge(&admin, req).await,
                    (&Method::GET, "/admin/cache/stats") => stats(&admin).await,
                    _ => problem(
                        StatusCode::NOT_FOUND,
                        "not-found",
                        format!("no admin endpoint {} {p}", req.method()),
                    ),
                }
            }
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no admin endpoint at {path}"),
        ),
    };
    Ok(response)
}

fn problem(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Response<Body> {
    problem_response(&Problem::new(status, slug, detail))
}

/// `GET /metrics`: gauges read at scrape time, then the exposition.
fn metrics(admin: &Admin) -> Response<Body> {
    let (l1, m) = (&admin.tiers.l1, &admin.metrics);
    l1.run_pending_tasks();
    m.l1_entries.set(l1.entry_count() as i64);
    m.l1_bytes.set(l1.weighted_size() as i64);
    let tags = l1.tag_index_size();
    m.l1_tags.set(tags.tags as i64);
    m.l1_tag_links.set(tags.links as i64);
    if let Some(redis) = &admin.tiers.redis {
        m.redis_up.set(i64::from(redis.is_up()));
    }
    let now = admin.clock.since_epoch();
    for (index, upstream) in admin.upstreams.pools().iter().enumerate() {
        if let Some(admission) = admin.upstreams.admission(index) {
            for priority in rampart_config::Priority::ALL {
                m.queue_depth(
                    &upstream.name,
                    priority.as_str(),
                    admission.depth(priority.index()),
                );
            }
        }
        for (target, state) in upstream.breaker_states(now) {
            m.circuit_state(&upstream.name, target, state.as_gauge());
        }
        m.healthy_targets(&upstream.name, upstream.available(now));
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &admin.registry).is_err() {
        text.clear();
    }
    Response::builder()
        .header(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(full(text))
        .unwrap_or_default()
}

fn unauthorized() -> Response<Body> {
    let mut r = problem(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
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
            format!("admin request bodies are limited to {MAX_ADMIN_BODY} bytes"),
        )),
        Err(_) => Err(problem(
            StatusCode::BAD_REQUEST,
            "bad-body",
            "the request body could not be read",
        )),
    }
}

/// `POST /admin/purge`.
async fn purge(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
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
                format!("expected {{\"keys\": [...], \"tags\": [...], \"prefixes\": [...]}}: {e}"),
            )
        }
    };
    if let Err(e) = request.validate() {
        return problem(StatusCode::BAD_REQUEST, "bad-purge", e.to_string());
    }
    let purged = admin.invalidator.purge(&request, PurgeSource::Api).await;
    json_response(
        StatusCode::OK,
        &json!({ "purged": purged, "total": purged.total() }),
    )
}

/// `POST /admin/events/{name}`: bearer token, or `X-Rampart-Signature`
/// (HMAC-SHA256 of the body with `webhook_secret`, hex, optionally
/// prefixed `sha256=`).
async fn event(admin: &Admin, name: String, req: Request<Incoming>) -> Response<Body> {
    let bearer = auth::bearer_ok(req.headers(), admin.token.as_deref());
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
        let secret = admin.webhook_secret.as_deref();
        if !signature.is_some_and(|sig| signature_ok(secret, &body, &sig)) {
            return problem(
                StatusCode::UNAUTHORIZED,
                "bad-signature",
                "X-Rampart-Signature is not the HMAC-SHA256 of the body with the webhook secret",
            );
        }
    }
    match admin
        .invalidator
        .event(&name, &body, PurgeSource::Event)
        .await
    {
        Ok((request, purged)) => json_response(
            StatusCode::OK,
            &json!({
                "event": name,
                "tags": request.tags,
                "keys": request.keys,
                "purged": purged,
                "total": purged.total(),
            }),
        ),
        Err(e) => {
            let status = match e {
                EventError::Unknown(_) => StatusCode::NOT_FOUND,
                EventError::NotAnObject(_) => StatusCode::BAD_REQUEST,
                EventError::MissingField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            problem(status, "bad-event", e.to_string())
        }
    }
}

/// `GET /admin/cache/stats`.
async fn stats(admin: &Admin) -> Response<Body> {
    let l1 = &admin.tiers.l1;
    l1.run_pending_tasks();
    let tags = l1.tag_index_size();
    let mut out = json!({
        "l1": {
            "entries": l1.entry_count(),
            "bytes": l1.weighted_size(),
            "budget_bytes": admin.tiers.settings.memory,
            "tags": tags.tags,
            "tag_links": tags.links,
        },
    });
    if let Some(redis) = &admin.tiers.redis {
        out["redis"] = json!({ "up": redis.ping().await });
        if let Some(census) = rampart_cluster::l2::census(redis).await {
            out["l2"] = json!(census);
        }
    }
    json_response(StatusCode::OK, &out)
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(value.to_string()))
        .unwrap_or_default()
}
