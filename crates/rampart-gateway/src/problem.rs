//! Errors Rampart itself answers with, as `application/problem+json`
//! (RFC 9457). Every error response is made here, in one place.

use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::body::{full, Body};

/// An error the gateway answers for itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route matches the request.
    #[error("no route matches {method} {path}")]
    NoRoute {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// The request body is larger than `max_body_size`.
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A rate limit refused the request.
    #[error("rate limit {limit} exceeded: retry in {}s", crate::limits::ceil_secs(*retry_after))]
    RateLimited {
        /// The limit's name.
        limit: String,
        /// Time until a request would be allowed.
        retry_after: Duration,
        /// `RateLimit-Policy` and `RateLimit` values.
        headers: (http::HeaderValue, http::HeaderValue),
    },
    /// A rate limit's key table is full of clients inside their period.
    #[error("rate limit {limit} is tracking as many clients as it may; try again shortly")]
    LimitTableFull {
        /// The limit's name.
        limit: String,
    },
    /// The request asks for a protocol upgrade, which Rampart does not proxy.
    #[error("protocol upgrades (such as WebSocket) are not proxied")]
    UpgradeNotSupported,
    /// No connection could be made to any target of the upstream.
    #[error("upstream {upstream} is unreachable: {detail}")]
    UpstreamUnreachable {
        /// The upstream's name.
        upstream: String,
        /// What failed.
        detail: String,
    },
    /// Every target of the upstream has its circuit open.
    #[error("upstream {upstream} is failing; its circuit is open for {}s more", crate::limits::ceil_secs(*retry_after))]
    CircuitOpen {
        /// The upstream's name.
        upstream: String,
        /// Time until a target is probed again.
        retry_after: Duration,
    },
    /// Every target of the upstream fails its active health checks.
    #[error("upstream {upstream} has no target passing its health checks")]
    NoHealthyTarget {
        /// The upstream's name.
        upstream: String,
        /// The health check interval.
        retry_after: Duration,
    },
    /// The upstream is saturated and the request was shed.
    #[error("upstream {upstream} is saturated; the request was shed ({reason})")]
    Shed {
        /// The upstream's name.
        upstream: String,
        /// `queue-full`, `displaced` or `timeout`.
        reason: &'static str,
    },
    /// The upstream did not answer in time.
    #[error("upstream {upstream} did not answer within {}ms", timeout.as_millis())]
    UpstreamTimeout {
        /// The upstream's name.
        upstream: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The upstream answered with something unusable.
    #[error("upstream {upstream} failed: {detail}")]
    UpstreamFailed {
        /// The upstream's name.
        upstream: String,
        /// What failed.
        detail: String,
    },
}

impl GatewayError {
    /// Whether the upstream cannot be asked at all now (every circuit open,
    /// or no healthy target): a cached route then serves any copy it holds.
    pub fn upstream_down(&self) -> bool {
        matches!(
            self,
            GatewayError::CircuitOpen { .. } | GatewayError::NoHealthyTarget { .. }
        )
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoRoute { .. } => StatusCode::NOT_FOUND,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RateLimited { .. } | GatewayError::LimitTableFull { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::UpgradeNotSupported => StatusCode::NOT_IMPLEMENTED,
            GatewayError::UpstreamUnreachable { .. } | GatewayError::UpstreamFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::CircuitOpen { .. }
            | GatewayError::NoHealthyTarget { .. }
            | GatewayError::Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable slug naming the problem type.
    pub fn slug(&self) -> &'static str {
        match self {
            GatewayError::NoRoute { .. } => "no-route",
            GatewayError::BodyTooLarge { .. } => "body-too-large",
            GatewayError::RateLimited { .. } => "rate-limited",
            GatewayError::LimitTableFull { .. } => "rate-limit-table-full",
            GatewayError::UpgradeNotSupported => "upgrade-not-supported",
            GatewayError::UpstreamUnreachable { .. } => "upstream-unreachable",
            GatewayError::UpstreamTimeout { .. } => "upstream-timeout",
            GatewayError::CircuitOpen { .. } => "circuit-open",
            GatewayError::NoHealthyTarget { .. } => "no-healthy-target",
            GatewayError::Shed { .. } => "shed",
            GatewayError::UpstreamFailed { .. } => "upstream-failed",
        }
    }

    /// How long the client should wait, for errors that say so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::RateLimited { retry_after, .. }
            | GatewayError::CircuitOpen { retry_after, .. }
            | GatewayError::NoHealthyTarget { retry_after, .. } => Some(*retry_after),
            GatewayError::LimitTableFull { .. } | GatewayError::Shed { .. } => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }

    /// The problem+json response (with `Retry-After` and rate-limit headers where they apply).
    pub fn into_response(self) -> Response<Body> {
        let mut r = problem(
            self.status(),
            self.slug(),
            &self.to_string(),
            self.retry_after(),
        );
        if let GatewayError::RateLimited { headers, .. } = &self {
            r.headers_mut().insert(
                http::HeaderName::from_static("ratelimit-policy"),
                headers.0.clone(),
            );
            r.headers_mut().insert(
                http::HeaderName::from_static("ratelimit"),
                headers.1.clone(),
            );
        }
        r
    }
}

/// Builds a problem+json response.
pub fn problem(
    status: StatusCode,
    slug: &str,
    detail: &str,
    retry_after: Option<Duration>,
) -> Response<Body> {
    let body = serde_json::json!({
        "type": format!("urn:rampart:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut builder = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/problem+json");
    if let Some(after) = retry_after {
        builder = builder.header(RETRY_AFTER, crate::limits::ceil_secs(after).max(1));
    }
    builder
        .body(full(body.to_string()))
        .unwrap_or_else(|_| Response::new(full("internal error")))
}
