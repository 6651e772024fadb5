//! Answers: from a stored entry (304 for a matching conditional, otherwise
//! the best stored coding the client accepts, with `Age`), or an origin
//! response relayed as it streams; both with Rampart's `Cache-Status`.

use std::time::SystemTime;

use http::header::{ACCEPT_ENCODING, AGE, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use rampart_cache::conditional::{not_modified, NOT_MODIFIED_HEADERS};
use rampart_cache::encoding::negotiate;
use rampart_cache::{CacheStatus, Entry};
use rampart_config::{CompressionConfig, Encoding};

use crate::body::{empty, full, Body};
use crate::compress::weaken_etag;
use crate::headers::remove_hop_by_hop;
use crate::request::RequestHead;

/// The `Cache-Status` header (RFC 9211).
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Answers a request from a stored entry, with the `Age` it has at `now`:
/// 304 for a matching conditional, otherwise the best coding among
/// `algorithms` (in preference order) that is stored and the client accepts.
pub fn serve_entry(
    entry: &Entry,
    head: &RequestHead,
    status: &CacheStatus,
    now: SystemTime,
    algorithms: &[Encoding],
) -> Response<Body> {
    let age = HeaderValue::from(entry.age(now).as_secs());
    let mut response = Response::new(empty());
    if entry.status == StatusCode::OK && not_modified(&head.headers, &entry.headers) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        for name in NOT_MODIFIED_HEADERS {
            for v in entry.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        headers.insert(AGE, age);
        set_cache_status(headers, status);
        return response;
    }
    let chosen = head
        .headers
        .get(ACCEPT_ENCODING)
        .filter(|_| !entry.encoded.is_empty())
        .and_then(|accept| {
            let available: Vec<_> = algorithms
                .iter()
                .copied()
                .filter(|a| entry.encoded.iter().any(|(e, _)| e == a))
                .collect();
            negotiate(Some(accept), &available)
        });
    let body = chosen
        .and_then(|c| entry.encoded.iter().find(|(e, _)| *e == c))
        .map_or_else(|| entry.body.clone(), |(_, b)| b.clone());
    *response.status_mut() = entry.status;
    let mut headers = entry.headers.clone();
    if let Some(c) = chosen {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(c.as_str()));
        weaken_etag(&mut headers);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(AGE, age);
    set_cache_status(&mut headers, status);
    *response.headers_mut() = headers;
    if head.method != Method::HEAD {
        *response.body_mut() = full(body);
    }
    response
}

/// Relays an origin response that is not stored: hop-by-hop headers
/// removed, the origin's tag headers too unless `expose_tags`, the body
/// streamed (and compressed on the fly when `compression` is given and the
/// response is eligible).
pub fn pass_through(
    resp: Response<Body>,
    head: &RequestHead,
    status: &CacheStatus,
    compression: Option<&CompressionConfig>,
    expose_tags: bool,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if !expose_tags {
        crate::tags::strip(&mut parts.headers);
    }
    let body = if head.method == Method::HEAD {
        // A HEAD may have been sent upstream as GET for the cache.
        empty()
    } else if let Some(cfg) = compression {
        crate::compress::stream(cfg, &head.headers, parts.status, &mut parts.headers, body)
    } else {
        body
    };
    set_cache_status(&mut parts.headers, status);
    Response::from_parts(parts, body)
}

/// Adds Rampart's member to `Cache-Status` (RFC 9211: a list, the cache
/// nearest the user last), after any member from caches behind it.
pub fn set_cache_status(headers: &mut HeaderMap, status: &CacheStatus) {
    let ours = status.header_value("rampart");
    let value = match headers.get(&CACHE_STATUS).and_then(|v| v.to_str().ok()) {
        Some(upstream) if !upstream.trim().is_empty() => {
            HeaderValue::try_from(format!("{upstream}, {ours}"))
        }
        _ => HeaderValue::try_from(ours),
    };
    if let Ok(v) = value {
        headers.insert(CACHE_STATUS.clone(), v);
    }
}
