//! Errors Rampart answers for itself, as `application/problem+json`
//! (RFC 9457): one builder for the gateway's own answers, the admin API and
//! the tower layers.

use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::units::ceil_secs;

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem: the status, a stable slug naming its type
/// (`urn:rampart:problem:SLUG`), a human-readable detail, and optionally how
/// long to wait before retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// Names the problem type.
    pub slug: &'static str,
    /// What happened, for people; never internal addresses or error chains.
    pub detail: String,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<Duration>,
    /// The request's `X-Request-Id`, under which the log holds the details
    /// the body leaves out (member `request_id`).
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem without `Retry-After`.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            retry_after: None,
            request_id: None,
        }
    }

    /// The same problem, telling the client when to retry.
    pub fn retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// The same problem, naming the request it answers.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let mut body = serde_json::json!({
            "type": format!("urn:rampart:problem:{}", self.slug),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(id) = &self.request_id {
            body["request_id"] = serde_json::Value::from(id.as_str());
        }
        body.to_string()
    }

    /// The response, with any body type made from the JSON text.
    pub fn response<B: From<String>>(&self) -> Response<B> {
        let mut r = Response::new(B::from(self.body()));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(ceil_secs(after).max(1)));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_rfc_9457_json() {
        let p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "slow down")
            .retry_after(Some(Duration::from_millis(1500)));
        let r: Response<String> = p.response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let v: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(v["type"], "urn:rampart:problem:rate-limited");
        assert_eq!(v["title"], "Too Many Requests");
        assert_eq!(v["status"], 429);
        assert_eq!(v["detail"], "slow down");
        assert!(v.get("request_id").is_none());
        let named = Problem::new(StatusCode::BAD_GATEWAY, "upstream-failed", "x").request_id("r-1");
        let v: serde_json::Value = serde_json::from_str(&named.body()).unwrap();
        assert_eq!(v["request_id"], "r-1");
    }
}
