//! Active health checks: a GET of the health path on every target; 2xx and
//! 3xx pass, and thresholds of passes or failures in a row move a target in
//! or out.

use std::sync::atomic::Ordering;

use http::Request;
use rampart_guard::health::Thresholds;

use super::Upstream;
use crate::body::empty;

impl Upstream {
    /// Checks every target once and updates their health. Does nothing
    /// without `health`.
    pub async fn check_health(&self) {
        let Some(cfg) = &self.health else { return };
        let thresholds = Thresholds {
            healthy_after: cfg.healthy_after,
            unhealthy_after: cfg.unhealthy_after,
        };
        let checks = self
            .targets
            .iter()
            .enumerate()
            .map(|(index, t)| async move {
                let uri = cfg.path.as_str();
                let mut req = Request::new(empty());
                *req.uri_mut() = match uri.parse() {
                    Ok(u) => u,
                    Err(_) => return (t, false),
                };
                req.headers_mut().insert(
                    http::header::USER_AGENT,
                    http::HeaderValue::from_static("rampart-health-check"),
                );
                let passed = match tokio::time::timeout(
                    cfg.timeout,
                    self.pool.send(index, &self.scheme, &t.authority, &mut req),
                )
                .await
                {
                    Ok(Ok(resp)) => {
                        let ok = resp.status().is_success() || resp.status().is_redirection();
                        // Read the body so that the connection can be reused.
                        let _ = tokio::time::timeout(
                            cfg.timeout,
                            http_body_util::BodyExt::collect(resp.into_body()),
                        )
                        .await;
                        ok
                    }
                    _ => false,
                };
                (t, passed)
            });
        for (t, passed) in futures_util::future::join_all(checks).await {
            let change = t
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(passed, thresholds);
            if let Some(healthy) = change {
                t.healthy.store(healthy, Ordering::Relaxed);
                if healthy {
                    tracing::info!(upstream = %self.name, target = %t.authority, "target passes its health checks again");
                } else {
                    tracing::warn!(upstream = %self.name, target = %t.authority, "target failed its health checks; taken out");
                }
            }
        }
    }
}
