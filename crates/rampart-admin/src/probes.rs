//! `/readyz`: 200 when every upstream has a target taking traffic, else
//! 503. With active health checks their verdict counts; without, a target
//! counts when a TCP connection to it opens within a second. A target whose
//! circuit is open does not count. Redis down does not make the node
//! unready (it serves from L1 and the origin without it); the body says so.

use std::time::Duration;

use http::{Response, StatusCode};
use rampart_guard::breaker::State;
use rampart_proxy::body::Body;
use serde_json::json;

use crate::admin::Admin;
use crate::reply::json_response;

pub(crate) async fn readyz(admin: &Admin) -> Response<Body> {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let now = admin.clock.since_epoch();
    for upstream in admin.upstreams.pools() {
        let open: Vec<&str> = upstream
            .breaker_states(now)
            .into_iter()
            .filter(|(_, s)| *s == State::Open)
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
    let mut all = json!({ "upstreams": checks });
    if let Some(redis) = &admin.tiers.redis {
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
