//! The purge and event API, and cache statistics.

use http::{Request, Response, StatusCode};
use rampart_cache::{Purge, PurgeSource};
use rampart_proxy::body::{Body, Incoming};
use rampart_proxy::invalidate::EventError;
use serde_json::json;

use crate::admin::Admin;
use crate::auth::{bearer_ok, signature_ok};
use crate::reply::{json_response, problem, read_body, unauthorized};

/// `POST /admin/purge`.
pub(crate) async fn purge<B: Incoming>(admin: &Admin, req: Request<B>) -> Response<Body> {
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
                format!("expected {{\"keys\": [...], \"tags\": [...], \"prefixes\": [...], \"globs\": [...]}}: {e}"),
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
pub(crate) async fn event<B: Incoming>(
    admin: &Admin,
    name: String,
    req: Request<B>,
) -> Response<Body> {
    let bearer = bearer_ok(req.headers(), admin.token.as_deref());
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
pub(crate) async fn stats(admin: &Admin) -> Response<Body> {
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
