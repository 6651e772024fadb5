//! `/readyz`: whether this node can serve. It answers at all only once the
//! config is loaded and the listeners are bound, so by default
//! ([`Readiness::Serving`]) it is 200 whenever it answers: an upstream that
//! is down does not take the node out of service, since it may still answer
//! from the cache (`stale_if_error`) and no other node would fare better.
//! The body reports each upstream (targets taking traffic by the active
//! health checks' verdict and the breakers) and Redis.
//!
//! With `[admin] ready = "upstreams"` ([`Readiness::Upstreams`]) it is 503
//! unless every upstream has a target taking traffic; without active health
//! checks a target then counts when a TCP connection to it opens within a
//! second. Redis down never makes the node unready (it serves from L1 and
//! the origin without it).

use std::time::Duration;

use http::{Response, StatusCode};
use rampart_config::Readiness;
use rampart_guard::breaker::State;
use rampart_proxy::body::Body;
use serde_json::json;

use crate::admin::Admin;
use crate::reply::json_response;

pub(crate) async fn readyz(admin: &Admin) -> Response<Body> {
    let now = admin.clock.since_epoch();
    // A probe must answer within Kubernetes' default 1 s timeout whatever
    // the upstreams do: when they cannot make the node unready, a target
    // gets a quarter of a second to accept a connection.
    let connect_within = match admin.ready {
        Readiness::Upstreams => Duration::from_secs(1),
        Readiness::Serving => Duration::from_millis(250),
    };
    let reports = admin.upstreams.pools().iter().map(|upstream| async move {
        let open: Vec<&str> = upstream
            .breaker_states(now)
            .into_iter()
            .filter(|(_, s)| *s == State::Open)
            .map(|(t, _)| t)
            .collect();
        let health = upstream.health_states();
        let checked = upstream.health_config().is_some();
        let probes = health.iter().map(|&(target, healthy)| async move {
            if checked {
                return healthy;
            }
            matches!(
                tokio::time::timeout(connect_within, tokio::net::TcpStream::connect(target)).await,
                Ok(Ok(_))
            )
        });
        let results = futures_util::future::join_all(probes).await;
        let healthy = health
            .iter()
            .zip(&results)
            .filter(|((t, _), ok)| **ok && !open.contains(t))
            .count();
        let report = json!({
            "status": if healthy > 0 { "up" } else { "down" },
            "healthy_targets": healthy,
            "targets": health.len(),
            "checked_by": if checked { "health-checks" } else { "tcp-connect" },
        });
        (upstream.name.clone(), healthy > 0, report)
    });
    let mut checks = serde_json::Map::new();
    let mut upstreams_up = true;
    for (name, up, report) in futures_util::future::join_all(reports).await {
        upstreams_up &= up;
        checks.insert(name, report);
    }
    let ready = upstreams_up || admin.ready == Readiness::Serving;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut all = json!({ "upstreams": checks });
    if let Some(redis) = &admin.tiers.redis {
        all["redis"] = json!({ "status": if redis.ping().await { "up" } else { "down" } });
    }
    json_response(
        status,
        &json!({
            "status": if ready { "ready" } else { "unavailable" },
            "requires": admin.ready.as_str(),
            "checks": all,
        }),
    )
}
