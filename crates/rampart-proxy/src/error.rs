//! Errors Rampart answers for itself. Every error of the request path is a
//! [`GatewayError`]; this is the one place they become responses, as
//! `application/problem+json` (RFC 9457) through [`rampart_core::Problem`].

use std::time::Duration;

use http::{HeaderName, HeaderValue, Response, StatusCode};
use rampart_cache::fill::OriginFailure;
use rampart_core::units::ceil_secs;
use rampart_core::Problem;
use rampart_guard::admission::Shed;

use crate::body::{full, Body};
use crate::headers::BadHead;

/// `RateLimit-Policy` (IETF draft).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (IETF draft).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// An error the gateway answers for itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route matches the request.
    #[error("no route matches {method} {path}")]
    NoRoute {
        /// The method.
        method: http::Method,
        /// The path.
        path: String,
    },
    /// The request body is larger than `max_body_size`.
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The request head is not fit to key or forward.
    #[error("{}", .0.as_str())]
    BadRequest(BadHead),
    /// The client's request body broke off or was malformed.
    #[error("the request body could not be read")]
    BadRequestBody,
    /// The client stopped sending its request body.
    #[error("the request body stopped arriving")]
    RequestBodyTimeout,
    /// A stored response the origin said must be revalidated, and the
    /// origin cannot be asked (RFC 9111 §5.2.2.2).
    #[error("upstream {upstream} cannot be asked and the stored response must be revalidated")]
    MustRevalidate {
        /// The upstream's name.
        upstream: String,
    },
    /// The request path panicked; the panic was caught.
    #[error("an internal error occurred")]
    Internal,
    /// A rate limit refused the request.
    #[error("rate limit {limit} exceeded: retry in {}s", ceil_secs(*retry_after))]
    RateLimited {
        /// The limit's name.
        limit: String,
        /// Time until a request would be allowed.
        retry_after: Duration,
        /// `RateLimit-Policy` and `RateLimit` values.
        headers: (HeaderValue, HeaderValue),
    },
    /// A rate limit's key table is full of clients inside their period.
    #[error("rate limit {limit} is tracking as many clients as it may; try again shortly")]
    LimitTableFull {
        /// The limit's name.
        limit: String,
    },
    /// The request asks for a protocol upgrade on a route without `upgrade`.
    #[error("protocol upgrades (such as WebSocket) are not allowed on this route")]
    UpgradeNotSupported,
    /// No connection could be made to any target of the upstream.
    #[error("upstream {upstream} is unreachable")]
    UpstreamUnreachable {
        /// The upstream's name.
        upstream: String,
    },
    /// Every target of the upstream has its circuit open.
    #[error("upstream {upstream} is failing; its circuit is open for {}s more", ceil_secs(*retry_after))]
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
    #[error("upstream {upstream} is saturated; the request was shed ({})", reason.as_str())]
    Shed {
        /// The upstream's name.
        upstream: String,
        /// Why.
        reason: Shed,
    },
    /// The upstream did not answer in time.
    #[error("upstream {upstream} did not answer within {}ms", timeout.as_millis())]
    UpstreamTimeout {
        /// The upstream's name.
        upstream: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The upstream's answer could not be used (the exchange broke).
    #[error("upstream {upstream} failed")]
    UpstreamFailed {
        /// The upstream's name.
        upstream: String,
    },
}

impl GatewayError {
    /// How the origin failed, for the cache's stale fallback; `None` for
    /// errors that are not the origin's.
    pub fn origin_failure(&self) -> Option<OriginFailure> {
        match self {
            GatewayError::CircuitOpen { .. } => Some(OriginFailure::CircuitOpen),
            GatewayError::NoHealthyTarget { .. } => Some(OriginFailure::NoHealthyTarget),
            GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::UpstreamFailed { .. }
            | GatewayError::Shed { .. } => Some(OriginFailure::Error),
            GatewayError::NoRoute { .. }
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::BadRequest(_)
            | GatewayError::RequestBodyTimeout
            | GatewayError::MustRevalidate { .. }
            | GatewayError::Internal
            | GatewayError::BadRequestBody
            | GatewayError::RateLimited { .. }
            | GatewayError::LimitTableFull { .. }
            | GatewayError::UpgradeNotSupported => None,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoRoute { .. } => StatusCode::NOT_FOUND,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BadRequestBody | GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::MustRevalidate { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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
            GatewayError::BadRequestBody => "bad-request-body",
            GatewayError::BadRequest(_) => "bad-request",
            GatewayError::RequestBodyTimeout => "request-body-timeout",
            GatewayError::MustRevalidate { .. } => "must-revalidate",
            GatewayError::Internal => "internal-error",
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

    /// The problem this error is.
    pub fn problem(&self) -> Problem {
        Problem::new(self.status(), self.slug(), self.to_string()).retry_after(self.retry_after())
    }

    /// The problem+json response (with `Retry-After` and rate-limit headers
    /// where they apply), naming the request it answers when known.
    pub fn into_response(self, request_id: Option<&str>) -> Response<Body> {
        let mut problem = self.problem();
        problem.request_id = request_id.map(str::to_string);
        let mut r = problem_response(&problem);
        if let GatewayError::RateLimited { headers, .. } = self {
            r.headers_mut().insert(RATELIMIT_POLICY.clone(), headers.0);
            r.headers_mut().insert(RATELIMIT.clone(), headers.1);
        }
        r
    }
}

/// A problem as a response with Rampart's body type.
pub fn problem_response(problem: &Problem) -> Response<Body> {
    problem.response::<String>().map(full)
}
