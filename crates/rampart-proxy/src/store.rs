//! Storing a response the cache may keep: the body read up to
//! `max_object_size` (a larger one streams through unstored), the headers
//! copied into allocations of their own, tags collected, the coding this
//! client wants made before answering and the others in the background.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{ACCEPT_ENCODING, AGE, CONTENT_ENCODING, CONTENT_LENGTH, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use rampart_cache::encoding::{compress_all, negotiate};
use rampart_cache::freshness::{split_list, SURROGATE_CONTROL};
use rampart_cache::{CacheStatus, Entry, Fill, Freshness, NoCacheReason};
use rampart_config::{CachePolicy, Encoding, SetCookiePolicy};

use crate::body::{gather, prefixed, Body, Gathered};
use crate::cache_ctx::{CacheCtx, FillJob};
use crate::compress::{add_vary_accept_encoding, eligible};
use crate::error::GatewayError;
use crate::headers::remove_hop_by_hop;
use crate::request::RequestHead;

/// Bodies larger than this are compressed on the blocking pool.
const INLINE_COMPRESS_LIMIT: usize = 64 * 1024;

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

    let mut headers = stored_headers(&parts.headers, ctx.policy);
    let tags = crate::tags::collect(&ctx.route.config, head, &parts.headers);
    if !ctx.tiers.settings.expose_tags {
        crate::tags::strip(&mut headers);
    }
    let origin_encoded = headers.contains_key(CONTENT_ENCODING);
    let compression = &ctx.tiers.compression;
    let compressible = compression.enabled
        && ctx.route.config.compress
        && !origin_encoded
        && eligible(compression, status, &headers, Some(body.len() as u64));
    // Every coding is made once per stored entry. Only the one this client
    // will get is made before answering; the others are added in the
    // background, so a miss does not wait for codings nobody asked for yet.
    let (mut encoded, later) = if compressible {
        add_vary_accept_encoding(&mut headers);
        let wanted = negotiate(head.headers.get(ACCEPT_ENCODING), &compression.algorithms);
        let later: Vec<_> = compression
            .algorithms
            .iter()
            .copied()
            .filter(|a| Some(*a) != wanted)
            .collect();
        let now = match wanted {
            Some(enc) => compress_on_pool(body.clone(), vec![enc]).await,
            None => Vec::new(),
        };
        (now, later)
    } else {
        (Vec::new(), Vec::new())
    };
    encoded.retain(|(_, b)| b.len() < body.len());
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
            vary,
            response_time: storable.response_time,
            initial_age: storable.initial_age,
            freshness: storable.freshness,
            tags,
        },
    );
    job.finish(Fill::Stored(Arc::clone(&entry)));
    if !later.is_empty() {
        let (tiers, key, entry) = (Arc::clone(ctx.tiers), job.key.clone(), Arc::clone(&entry));
        tokio::spawn(async move {
            let extra = compress_on_pool(entry.body.clone(), later).await;
            if !extra.is_empty() {
                tiers.l1.add_encodings(&key, &entry, extra);
            }
        });
    }
    let cache = job.forwarded(status, true, None);
    let mut answer = ctx.answer(&entry, head, &cache);
    // The client whose request filled the entry still gets its cookies
    // (stored entries never carry them).
    for cookie in parts.headers.get_all(SET_COOKIE) {
        answer.headers_mut().append(SET_COOKIE, cookie.clone());
    }
    Ok((answer, cache))
}

/// Compresses a body with the given codings, on the blocking pool when it is
/// large enough to hold up other requests. Keeps only copies smaller than the body.
async fn compress_on_pool(
    body: bytes::Bytes,
    algorithms: Vec<Encoding>,
) -> Vec<(Encoding, bytes::Bytes)> {
    if body.len() > INLINE_COMPRESS_LIMIT {
        tokio::task::spawn_blocking(move || compress_all(&body, &algorithms))
            .await
            .unwrap_or_default()
    } else {
        compress_all(&body, &algorithms)
    }
}

/// The headers to store: end-to-end only, without what is recomputed per
/// answer, without `Set-Cookie` (a route that stores such responses strips
/// it) and `Surrogate-Control` (meant for Rampart alone). Each value is
/// copied into its own allocation, since values parsed by hyper are slices
/// of the connection's read buffer and would keep all of it alive for as
/// long as the entry is stored.
pub fn stored_headers(origin: &HeaderMap, policy: &CachePolicy) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(origin.len());
    for (name, value) in origin {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    remove_hop_by_hop(&mut headers);
    headers.remove(AGE);
    headers.remove(CONTENT_LENGTH);
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
