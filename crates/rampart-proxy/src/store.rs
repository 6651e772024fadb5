//! Storing a response the cache may keep: the body read up to
//! `max_object_size` (a larger one streams through unstored), the headers
//! copied into allocations of their own, tags collected, the coding this
//! client wants made before answering (each other coding is made when a
//! client first asks for it, see `cache_ctx`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use http::header::{
    ACCEPT_ENCODING, AGE, CONTENT_ENCODING, CONTENT_LENGTH, SET_COOKIE, TRAILER, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use rampart_cache::encoding::negotiate;
use rampart_cache::freshness::{split_list, SURROGATE_CONTROL};
use rampart_cache::{CacheStatus, CodingsAsked, Entry, Fill, Freshness, NoCacheReason};
use rampart_config::{CachePolicy, SetCookiePolicy};

use crate::body::{gather, prefixed, Body, Gathered};
use crate::cache_ctx::{CacheCtx, FillJob};
use crate::compress::{add_vary_accept_encoding, coding};
use crate::error::GatewayError;
use crate::headers::remove_hop_by_hop;
use crate::request::RequestHead;

/// What the cache decided about a response it may store.
#[derive(Debug, Clone, Copy)]
pub struct Storable {
    /// How long it is fresh and may be served stale.
    pub freshness: Freshness,
    /// Its corrected initial age.
    pub initial_age: Duration,
    /// When it arrived.
    pub response_time: SystemTime,
}

/// Reads the body and stores the response, then answers from the entry.
pub async fn store(
    ctx: CacheCtx<'_>,
    head: &RequestHead,
    mut job: FillJob,
    resp: Response<Body>,
    storable: Storable,
) -> Result<(Response<Body>, CacheStatus), GatewayError> {
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let body = match gather(body, ctx.tiers.settings.max_object_size).await {
        Ok(Gathered::Complete(bytes)) => bytes,
        Ok(Gathered::Overflow { prefix, rest }) => {
            job.finish(Fill::NotStored);
            let cache = job.forwarded(status, false, Some(NoCacheReason::TooLarge));
            let resp = Response::from_parts(parts, prefixed(prefix, rest));
            return Ok((ctx.relay(head, resp, &cache), cache));
        }
        Err(e) => {
            job.finish(Fill::NotStored);
            let upstream = ctx.upstreams.pools()[ctx.route.config.upstream]
                .name
                .clone();
            tracing::warn!(upstream, error = %e, "upstream response body failed");
            return Err(GatewayError::UpstreamFailed { upstream });
        }
    };

    let tags = crate::tags::collect(&ctx.route.config, head, &parts.headers);
    // The client whose request filled the entry still gets its cookies
    // (stored entries never carry them).
    let cookies: Vec<HeaderValue> = parts.headers.get_all(SET_COOKIE).iter().cloned().collect();
    let mut headers = storable_headers(parts.headers, ctx.policy);
    if !ctx.tiers.settings.expose_tags {
        crate::tags::strip(&mut headers);
    }
    let origin_encoded = headers.contains_key(CONTENT_ENCODING);
    let compression = &ctx.tiers.compression;
    let compressible = ctx.encodes(status, &headers, body.len());
    // Only the coding this client will get is made before answering; each
    // other one when a client first asks for it, so a miss never pays for
    // codings nobody has asked for.
    let asked = CodingsAsked::default();
    let mut encoded = Vec::new();
    if compressible {
        add_vary_accept_encoding(&mut headers);
        let wanted = negotiate(head.headers.get(ACCEPT_ENCODING), &compression.algorithms);
        if let Some(enc) = wanted {
            asked.claim(enc);
            if let Some(bytes) = coding(body.clone(), enc).await {
                encoded.push((enc, bytes));
            }
        }
    }
    let vary = vary_names(&headers)
        .into_iter()
        // Rampart negotiates codings itself when it holds the identity body.
        .filter(|name| origin_encoded || *name != ACCEPT_ENCODING)
        .map(|name| {
            let value = rampart_cache::entry::vary_value(&head.headers, &name);
            (name, value)
        })
        .collect();
    let entry = ctx.tiers.store(
        &job.key,
        Entry {
            status,
            headers,
            body,
            encoded,
            asked,
            vary,
            response_time: storable.response_time,
            initial_age: storable.initial_age,
            freshness: storable.freshness,
            tags,
        },
    );
    job.finish(Fill::Stored(Arc::clone(&entry)));
    let cache = job.forwarded(status, true, None);
    let mut answer = ctx.answer(&job.key, &entry, head, &cache).await;
    for cookie in cookies {
        answer.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok((answer, cache))
}

/// The headers to store: end-to-end only, without what is recomputed per
/// answer, without `Trailer` (a stored body keeps no trailer fields to
/// announce), without `Set-Cookie` (a route that stores such responses strips
/// it) and `Surrogate-Control` (meant for Rampart alone). The values are
/// copied, all into one allocation the entry owns, since values parsed off
/// a connection are slices of its read buffer and would keep all of it
/// alive for as long as the entry is stored.
pub fn stored_headers(origin: &HeaderMap, policy: &CachePolicy) -> HeaderMap {
    storable_headers(origin.clone(), policy)
}

/// [`stored_headers`] made from the response's own map: the values are
/// replaced in place, so no name is hashed again.
fn storable_headers(mut headers: HeaderMap, policy: &CachePolicy) -> HeaderMap {
    let mut all = BytesMut::with_capacity(headers.values().map(HeaderValue::len).sum());
    for value in headers.values() {
        all.extend_from_slice(value.as_bytes());
    }
    let all = all.freeze();
    let mut at = 0;
    for value in headers.values_mut() {
        let end = at + value.len();
        if let Some(mut copy) = all
            .get(at..end)
            .and_then(|_| HeaderValue::from_maybe_shared(all.slice(at..end)).ok())
        {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        at = end;
    }
    remove_hop_by_hop(&mut headers);
    headers.remove(AGE);
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRAILER);
    headers.remove(&SURROGATE_CONTROL);
    if policy.set_cookie == SetCookiePolicy::Strip {
        headers.remove(SET_COOKIE);
    }
    if headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v == "identity")
    {
        headers.remove(CONTENT_ENCODING);
    }
    headers
}

fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for v in headers.get_all(VARY).iter().filter_map(|v| v.to_str().ok()) {
        for name in split_list(v) {
            if let Ok(n) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn stored_values_never_keep_a_read_buffer_alive() {
        // Values parsed off a connection are slices of its read buffer.
        let buffer =
            Bytes::from(b"text/html; charset=utf-8\"v1\"max-age=60keep-alive".repeat(1000));
        let mut origin = HeaderMap::new();
        for (name, at, len) in [
            ("content-type", 0, 24),
            ("etag", 24, 4),
            ("cache-control", 28, 10),
            ("connection", 38, 10),
            ("trailer", 0, 4),
        ] {
            let value = HeaderValue::from_maybe_shared(buffer.slice(at..at + len)).unwrap();
            origin.append(name, value);
        }
        let stored = stored_headers(&origin, &CachePolicy::ttl(Duration::from_secs(60)));
        assert_eq!(stored["content-type"], "text/html; charset=utf-8");
        assert_eq!(stored["etag"], "\"v1\"");
        assert_eq!(stored["cache-control"], "max-age=60");
        assert!(!stored.contains_key("connection"), "hop-by-hop");
        assert!(
            !stored.contains_key("trailer"),
            "a stored body has no trailers"
        );
        let inside = buffer.as_ptr_range();
        for value in stored.values() {
            assert!(
                !inside.contains(&value.as_bytes().as_ptr()),
                "{value:?} still points into the read buffer"
            );
        }
    }
}
