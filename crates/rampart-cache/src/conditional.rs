//! Answering clients' conditional requests from a stored response
//! (RFC 9110 §13): `If-None-Match` first, else `If-Modified-Since`.

use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use http::HeaderMap;

use crate::freshness::split_list;

/// Whether a GET/HEAD with these request headers should get 304 Not Modified
/// for a stored response with `stored` headers.
pub fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = stored.get(ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        return request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_list)
            .any(|candidate| candidate == "*" || weak_eq(candidate, etag));
    }
    let Some(since) = request
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    stored
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|modified| modified <= since)
}

/// Weak comparison of entity tags (RFC 9110 §8.8.3.2).
fn weak_eq(a: &str, b: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.trim().trim_start_matches("W/")
    }
    opaque(a) == opaque(b)
}

/// Headers a 304 carries over from the stored 200 (RFC 9110 §15.4.5).
pub const NOT_MODIFIED_HEADERS: &[http::HeaderName] = &[
    http::header::CACHE_CONTROL,
    http::header::CONTENT_LOCATION,
    http::header::DATE,
    ETAG,
    http::header::EXPIRES,
    http::header::VARY,
    LAST_MODIFIED,
];

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in list {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn etags_and_dates() {
        let stored = h(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(not_modified(
            &h(&[("if-none-match", "\"v0\", W/\"v1\"")]),
            &stored
        ));
        assert!(!not_modified(&h(&[("if-none-match", "\"v2\"")]), &stored));
        assert!(not_modified(&h(&[("if-none-match", "*")]), &stored));
        // If-None-Match wins over If-Modified-Since
        assert!(!not_modified(
            &h(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            &stored
        ));
        assert!(not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT")]),
            &stored
        ));
        assert!(!not_modified(&h(&[]), &stored));
    }
}
