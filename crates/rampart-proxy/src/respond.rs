//! Answers: from a stored entry (304 for a matching conditional, otherwise
//! the best stored coding the client accepts, with `Age`), or an origin
//! response relayed as it streams; both with Rampart's `Cache-Status`.

use std::time::SystemTime;

use http::header::{
    ACCEPT_RANGES, AGE, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use rampart_cache::conditional::{not_modified, NOT_MODIFIED_HEADERS};
use rampart_cache::freshness::SURROGATE_CONTROL;
use rampart_cache::range::{self, RangeAnswer};
use rampart_cache::{CacheStatus, Entry};
use rampart_config::{CompressionConfig, Encoding};

use crate::body::{empty, full, Body};
use crate::compress::weaken_etag;
use crate::headers::remove_hop_by_hop;
use crate::request::RequestHead;

/// The `Cache-Status` header (RFC 9211).
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Answers a request from a stored entry, with the `Age` it has at `now`:
/// 304 for a matching conditional, otherwise its body in `coding` (one of
/// its stored codings; `None` for identity).
pub fn serve_entry(
    entry: &Entry,
    head: &RequestHead,
    status: &CacheStatus,
    now: SystemTime,
    coding: Option<Encoding>,
) -> Response<Body> {
    let age = age_value(entry.age(now).as_secs());
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
    if head.method == Method::GET
        && entry.status == StatusCode::OK
        && head.headers.contains_key(RANGE)
    {
        match range::answer(&head.headers, &entry.headers, entry.body.len() as u64) {
            RangeAnswer::Full => {}
            RangeAnswer::Partial(parts) => return ranges(entry, &parts, age, status),
            RangeAnswer::Unsatisfiable => return ranges(entry, &[], age, status),
        }
    }
    let (chosen, body) = match coding.and_then(|c| entry.encoded.iter().find(|(e, _)| *e == c)) {
        Some((c, b)) => (Some(*c), b.clone()),
        None => (None, entry.body.clone()),
    };
    *response.status_mut() = entry.status;
    let mut headers = entry.headers.clone();
    if let Some(c) = chosen {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(c.as_str()));
        weaken_etag(&mut headers);
    }
    headers.insert(AGE, age);
    set_cache_status(&mut headers, status);
    if entry.status == StatusCode::OK && chosen.is_none() {
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if head.method == Method::HEAD {
        // No body to count: the length is the one a GET would get.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    } else {
        // hyper writes a whole body's `Content-Length` itself, over HTTP/1.1
        // and HTTP/2 alike, without a header value made for it.
        *response.body_mut() = full(body);
    }
    *response.headers_mut() = headers;
    response
}

/// Ages below this are sent from a table made at compile time.
const AGES_MADE: u64 = 3600;

/// The decimal digits of every age below [`AGES_MADE`], one after another
/// ("0123…9101112…"): 10 of one digit, 90 of two, 900 of three, 2,600 of
/// four.
static AGE_DIGITS: [u8; 13_290] = {
    let mut out = [0u8; 13_290];
    let mut n = 0;
    while n < AGES_MADE {
        let (at, len) = age_digits_at(n);
        let (mut i, mut rest) = (len, n);
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        n += 1;
    }
    out
};

/// Where `n`'s digits start in [`AGE_DIGITS`], and how many there are.
const fn age_digits_at(n: u64) -> (usize, usize) {
    let n = n as usize;
    match n {
        0..10 => (n, 1),
        10..100 => (10 + (n - 10) * 2, 2),
        100..1000 => (190 + (n - 100) * 3, 3),
        _ => (2890 + (n - 1000) * 4, 4),
    }
}

/// An `Age` value. Entries answered within their first hour take theirs
/// from a static table: no formatting, no allocation, and no shared
/// reference count for hits on other threads to touch.
fn age_value(secs: u64) -> HeaderValue {
    if secs < AGES_MADE {
        let (at, len) = age_digits_at(secs);
        if let Some(digits) = AGE_DIGITS
            .get(at..at + len)
            .and_then(|d| std::str::from_utf8(d).ok())
        {
            return HeaderValue::from_static(digits);
        }
    }
    HeaderValue::from(secs)
}

/// A stored 200's answer to a `Range` request, from its identity body:
/// one range (206 with `Content-Range`), several (206
/// `multipart/byteranges`), or none that exists (`parts` empty: 416).
fn ranges(
    entry: &Entry,
    parts: &[(u64, u64)],
    age: HeaderValue,
    status: &CacheStatus,
) -> Response<Body> {
    let len = entry.body.len();
    let mut headers = entry.headers.clone();
    headers.insert(AGE, age);
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set_cache_status(&mut headers, status);
    let (code, body) = match parts {
        [] => {
            headers.insert(CONTENT_RANGE, content_range(None, len));
            headers.remove(CONTENT_TYPE);
            (StatusCode::RANGE_NOT_SATISFIABLE, bytes::Bytes::new())
        }
        [(first, last)] => {
            let (first, last) = (*first, *last);
            headers.insert(CONTENT_RANGE, content_range(Some((first, last)), len));
            (
                StatusCode::PARTIAL_CONTENT,
                entry.body.slice(first as usize..=last as usize),
            )
        }
        parts => {
            let boundary = format!("rampart-{:016x}", rand::random::<u64>());
            let part_type = entry.headers.get(CONTENT_TYPE).cloned();
            let mut out = Vec::with_capacity(len.min(1 << 20));
            for &(first, last) in parts {
                out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
                if let Some(t) = &part_type {
                    out.extend_from_slice(b"content-type: ");
                    out.extend_from_slice(t.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"content-range: ");
                out.extend_from_slice(content_range(Some((first, last)), len).as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
                out.extend_from_slice(&entry.body[first as usize..=last as usize]);
            }
            out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            if let Ok(t) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            {
                headers.insert(CONTENT_TYPE, t);
            }
            (StatusCode::PARTIAL_CONTENT, bytes::Bytes::from(out))
        }
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    *response.headers_mut() = headers;
    response
}

/// `bytes FIRST-LAST/LEN`, or `bytes */LEN` for none.
fn content_range(range: Option<(u64, u64)>, len: usize) -> HeaderValue {
    let text = match range {
        Some((first, last)) => format!("bytes {first}-{last}/{len}"),
        None => format!("bytes */{len}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
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
    parts.headers.remove(&SURROGATE_CONTROL);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_is_its_seconds_in_decimal_from_the_table_or_beyond_it() {
        for secs in (0..AGES_MADE + 10).chain([86_400, u64::MAX]) {
            assert_eq!(age_value(secs), secs.to_string().as_str(), "{secs}");
        }
    }
}
