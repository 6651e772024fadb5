//! The live dashboard: one page and its script, embedded in the binary (no
//! CDN; it works offline). The page reads `/metrics` once a second and
//! draws rates, latency, hit ratios, routes and upstreams from it; a purge
//! from it sends the admin token typed into the page as a header.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Response};
use rampart_proxy::body::{full, Body};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// Only this listener's own script, styles in the page, requests back to
/// this listener; never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    r
}

/// `GET /`.
pub(crate) fn page() -> Response<Body> {
    asset(PAGE, "text/html; charset=utf-8")
}

/// `GET /dashboard.js`.
pub(crate) fn script() -> Response<Body> {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}
