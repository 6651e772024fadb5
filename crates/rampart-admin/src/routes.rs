//! Which endpoint answers an admin request, and who may call it.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use rampart_proxy::body::{Body, Incoming};
use serde_json::json;

use crate::admin::Admin;
use crate::auth::bearer_ok;
use crate::reply::{json_response, problem, unauthorized};
use crate::{dashboard, inspect, metrics, probes, purge, reload};

/// Handles one admin request.
pub async fn handle<B: Incoming>(
    admin: Arc<Admin>,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let response = match (req.method(), path) {
        (&Method::GET, "/") => dashboard::page(),
        (&Method::GET, "/dashboard.js") => dashboard::script(),
        (&Method::GET, "/metrics") => metrics::metrics(&admin),
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/readyz") => probes::readyz(&admin).await,
        (&Method::POST, p) if p.starts_with("/admin/events/") => {
            let name = p["/admin/events/".len()..].to_string();
            purge::event(&admin, name, req).await
        }
        (_, p) if p.starts_with("/admin/") => {
            if !bearer_ok(req.headers(), admin.token.as_deref()) {
                unauthorized()
            } else {
                match (req.method(), p) {
                    (&Method::POST, "/admin/purge") => purge::purge(&admin, req).await,
                    (&Method::GET, "/admin/cache/stats") => purge::stats(&admin).await,
                    (&Method::GET, "/admin/cache/entry") => {
                        inspect::entry(&admin, req.uri().query())
                    }
                    (&Method::GET, "/admin/cache/entries") => {
                        inspect::entries(&admin, req.uri().query())
                    }
                    (&Method::POST, "/admin/reload") => reload::reload(&admin).await,
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
