//! The plain listener beside a TLS one: every request is sent to the same
//! URL over HTTPS (`308`, which keeps the method and body).

use http::header::{HOST, LOCATION};
use http::{Request, Response, StatusCode};

use crate::body::{empty, Body};
use crate::error::GatewayError;
use crate::headers::{valid_host, BadHead};

/// The redirect for `req` to HTTPS on `https_port`.
pub fn to_https<B>(req: &Request<B>, https_port: u16) -> Response<Body> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .filter(|h| valid_host(h));
    let Some(host) = host else {
        return GatewayError::BadRequest(BadHead::InvalidHost).into_response(None);
    };
    let name = rampart_config::host_name(host);
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(LOCATION, format!("https://{name}{port}{target}"))
        .body(empty())
        .unwrap_or_else(|_| GatewayError::BadRequest(BadHead::InvalidHost).into_response(None))
}
