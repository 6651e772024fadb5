//! Answers the admin API gives: JSON, problems, the bearer challenge, and
//! bounded request bodies.

use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use rampart_core::Problem;
use rampart_proxy::body::{full, Body, Incoming};
use rampart_proxy::error::problem_response;

/// A problem+json answer.
pub(crate) fn problem(
    status: StatusCode,
    slug: &'static str,
    detail: impl Into<String>,
) -> Response<Body> {
    problem_response(&Problem::new(status, slug, detail))
}

/// 401 with the bearer challenge.
pub(crate) fn unauthorized() -> Response<Body> {
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
pub(crate) async fn read_body<B: Incoming>(
    req: Request<B>,
) -> Result<bytes::Bytes, Response<Body>> {
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

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(value.to_string()))
        .unwrap_or_default()
}
