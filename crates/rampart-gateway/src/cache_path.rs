//! The cache's part of the request path: lookup, coalesced fills,
//! revalidation, stale serving, storing (with compressed copies) and
//! answering from an entry.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{
    ACCEPT_ENCODING, AGE, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use rampart_cache::coalesce::{wait, FillGuard};
use rampart_cache::conditional::{not_modified, NOT_MODIFIED_HEADERS};
use rampart_cache::encoding::{compress_all, negotiate};
use rampart_cache::freshness::{decide, initial_age, split_list};
use rampart_cache::{
    key, CacheStatus, Entry, EntryState, Fill, Forward, Join, Lookup, NoCacheReason, StaleReason,
    Tier,
};
use rampart_config::CachePolicy;

use crate::body::{empty, full, gather, prefixed, Body, Gathered};
use crate::compress::{add_vary_accept_encoding, eligible, weaken_etag};
use crate::headers::{remove_hop_by_hop, set_forwarded};
use crate::problem::GatewayError;
use crate::proxy::{send, set_cache_status};
use crate::state::{Gateway, RequestHead};

/// Bodies larger than this are compressed on the blocking pool.
const INLINE_COMPRESS_LIMIT: usize = 64 * 1024;

/// Serves a GET/HEAD on a cached route.
pub async fn serve(
    gw: &Arc<Gateway>,
    route: usize,
    policy: &CachePolicy,
    head: &RequestHead,
) -> Result<(Response<Body>, CacheStatus), GatewayError> {
    let cache_key = key::full_key(
        key::primary_key("http", &head.uri, &head.headers),
        policy,
        &head.headers,
    );
    let now = gw.clock.now();
    let found = if gw.l1_usable() {
        gw.l1.lookup(&cache_key, &head.headers)
    } else {
        Lookup::Miss
    };
    let (stale, fwd) = match found {
        Lookup::Found(entry) => match entry.state(now) {
            EntryState::Fresh => {
                let left = entry.freshness.lifetime.saturating_sub(entry.age(now));
                if left < policy.refresh_ahead {
                    // Close to expiry: one background request refreshes it
                    // (coalesced, so once however many hits see this).
                    refresh_in_background(gw, route, policy, head, &cache_key, &entry);
                }
                let status = CacheStatus::Hit {
                    ttl: entry.ttl_secs(now),
                    tier: Tier::Memory,
                };
                return Ok((serve_entry_at(gw, &entry, head, &status, now), status));
            }
            EntryState::StaleWhileRevalidate => {
                // Serve stale now; one background request refreshes it.
                refresh_in_background(gw, route, policy, head, &cache_key, &entry);
                let status = CacheStatus::Stale {
                    ttl: entry.ttl_secs(now),
                    reason: StaleReason::WhileRevalidate,
                };
                return Ok((serve_entry_at(gw, &entry, head, &status, now), status));
            }
            EntryState::Stale { .. } => (Some(entry), Forward::Stale),
        },
        Lookup::VaryMiss => (None, Forward::VaryMiss),
        Lookup::Miss => (None, Forward::UriMiss),
    };
    match gw.coalescer.join(&cache_key) {
        Join::Leader(guard) => {
            // L1 had nothing usable: the shared tier may (one lookup per
            // key at a time, since this is the coalesced leader).
            let mut stale = stale;
            if stale.is_none() {
                if let Some(redis) = gw.redis.as_ref() {
                    if let Some(entry) = crate::l2::get(redis, &cache_key).await {
                        if entry.matches(&head.headers) {
                            let entry = if gw.l1_usable() {
                                gw.l1.insert(&cache_key, entry)
                            } else {
                                Arc::new(entry)
                            };
                            if entry.state(now) == EntryState::Fresh {
                                guard.finish(Fill::Stored(Arc::clone(&entry)));
                                let status = CacheStatus::Hit {
                                    ttl: entry.ttl_secs(now),
                                    tier: Tier::Shared,
                                };
                                return Ok((serve_entry(gw, &entry, head, &status), status));
                            }
                            stale = Some(entry);
                        }
                    }
                }
            }
            fill(gw, route, policy, head, &cache_key, stale, fwd, Some(guard)).await
        }
        Join::Follower(rx) => match wait(rx, gw.cache.coalesce_timeout).await {
            Some(Fill::Stored(entry)) if entry.matches(&head.headers) => {
                let status = CacheStatus::Collapsed {
                    fwd_status: entry.status.as_u16(),
                };
                Ok((serve_entry(gw, &entry, head, &status), status))
            }
            // Not stored, abandoned, another variant, or waited too long:
            // go to the origin without holding anyone else up.
            _ => fill(gw, route, policy, head, &cache_key, stale, fwd, None).await,
        },
    }
}

/// Refreshes an entry in the background, unless a fill for its key is
/// already in flight (then that one refreshes it: never a stampede).
fn refresh_in_background(
    gw: &Arc<Gateway>,
    route: usize,
    policy: &CachePolicy,
    head: &RequestHead,
    cache_key: &str,
    entry: &Arc<Entry>,
) {
    if let Join::Leader(guard) = gw.coalescer.join(cache_key) {
        let (gw, head, key, entry) = (
            Arc::clone(gw),
            head.clone(),
            cache_key.to_string(),
            Arc::clone(entry),
        );
        let policy = policy.clone();
        tokio::spawn(async move {
            let _ = fill(
                &gw,
                route,
                &policy,
                &head,
                &key,
                Some(entry),
                Forward::Stale,
                Some(guard),
            )
            .await;
        });
    }
}

/// Refetches a URL for the cache now (a warmer): conditionally when a copy
/// is stored, through the coalescer, so it never adds a request to a fill
/// already in flight. Returns whether it ran.
pub async fn warm(gw: &Arc<Gateway>, route: usize, head: &RequestHead) -> bool {
    let Some(policy) = gw.router.route(route).cache.clone() else {
        return false;
    };
    let cache_key = key::full_key(
        key::primary_key("http", &head.uri, &head.headers),
        &policy,
        &head.headers,
    );
    let Join::Leader(guard) = gw.coalescer.join(&cache_key) else {
        return false;
    };
    let stored = match gw.l1.lookup(&cache_key, &head.headers) {
        Lookup::Found(entry) => Some(entry),
        _ => None,
    };
    fill(
        gw,
        route,
        &policy,
        head,
        &cache_key,
        stored,
        Forward::Stale,
        Some(guard),
    )
    .await
    .is_ok()
}

/// Stores an entry: in L1 (unless this node is out of touch with the purge
/// sequence) and, in the background, in L2.
fn store(gw: &Arc<Gateway>, cache_key: &str, entry: Entry) -> Arc<Entry> {
    let entry = if gw.l1_usable() {
        gw.l1.insert(cache_key, entry)
    } else {
        Arc::new(entry)
    };
    crate::l2::put(gw, cache_key, &entry);
    entry
}

/// Fetches from the origin for the cache: conditionally when a stale entry
/// exists, storing what may be stored, publishing the outcome to followers.
#[allow(clippy::too_many_arguments)]
async fn fill(
    gw: &Arc<Gateway>,
    route_index: usize,
    policy: &CachePolicy,
    head: &RequestHead,
    cache_key: &str,
    stale: Option<Arc<Entry>>,
    fwd: Forward,
    guard: Option<FillGuard>,
) -> Result<(Response<Body>, CacheStatus), GatewayError> {
    let finish = |guard: Option<FillGuard>, fill: Fill| {
        if let Some(g) = guard {
            g.finish(fill);
        }
    };
    let route = gw.router.route(route_index);
    let compress = gw.compression.enabled && route.compress;
    let req = origin_request(head, stale.as_deref(), compress);
    let request_time = gw.clock.now();
    let result = send(gw, route_index, req).await;
    let response_time = gw.clock.now();

    let stale_if_error = |stale: &Option<Arc<Entry>>| {
        stale
            .as_ref()
            .filter(|e| e.usable_if_error(response_time))
            .map(Arc::clone)
    };
    let resp = match result {
        Ok(resp) if resp.status().is_server_error() => match stale_if_error(&stale) {
            Some(entry) => {
                finish(guard, Fill::NotStored);
                return Ok(serve_stale_if_error(gw, &entry, head, response_time));
            }
            None => resp,
        },
        Ok(resp) => resp,
        Err(e) => {
            finish(guard, Fill::NotStored);
            // An upstream that cannot be asked (circuits open, no healthy
            // target) serves any copy still stored, however stale; other
            // failures only within `stale_if_error`.
            if e.upstream_down() {
                if let Some(entry) = stale.as_ref() {
                    let status = CacheStatus::Stale {
                        ttl: entry.ttl_secs(response_time),
                        reason: if matches!(e, GatewayError::CircuitOpen { .. }) {
                            StaleReason::CircuitOpen
                        } else {
                            StaleReason::NoHealthyTarget
                        },
                    };
                    return Ok((serve_entry(gw, entry, head, &status), status));
                }
            }
            return match stale_if_error(&stale) {
                Some(entry) => Ok(serve_stale_if_error(gw, &entry, head, response_time)),
                None => Err(e),
            };
        }
    };
    let status = resp.status();
    let age = initial_age(resp.headers(), request_time, response_time);
    let credential = key::carries_credential(policy, &head.headers);

    // 304 to our conditional: the stale entry is fresh again with the new
    // headers; if those now forbid storing, it is served once and dropped.
    if status == StatusCode::NOT_MODIFIED {
        if let Some(old) = stale.as_deref() {
            let mut headers = old.headers.clone();
            for (name, value) in stored_headers(resp.headers()).iter() {
                if name != CONTENT_LENGTH && name != CONTENT_TYPE && name != CONTENT_ENCODING {
                    headers.insert(name.clone(), value.clone());
                }
            }
            let decision = decide(policy, old.status.as_u16(), &headers, age, credential);
            let (entry, cache) = match decision {
                Ok(freshness) => {
                    let entry = store(
                        gw,
                        cache_key,
                        Entry {
                            headers,
                            response_time,
                            initial_age: age,
                            freshness,
                            ..old.clone()
                        },
                    );
                    finish(guard, Fill::Stored(Arc::clone(&entry)));
                    (
                        entry,
                        CacheStatus::Forward {
                            fwd,
                            fwd_status: Some(304),
                            stored: true,
                            reason: None,
                        },
                    )
                }
                Err(reason) => {
                    gw.l1.purge_key(cache_key);
                    finish(guard, Fill::NotStored);
                    let entry = Arc::new(Entry {
                        headers,
                        ..old.clone()
                    });
                    (
                        entry,
                        CacheStatus::Forward {
                            fwd,
                            fwd_status: Some(304),
                            stored: false,
                            reason: Some(reason),
                        },
                    )
                }
            };
            return Ok((serve_entry(gw, &entry, head, &cache), cache));
        }
    }

    let decision = decide(policy, status.as_u16(), resp.headers(), age, credential);
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let decision = match decision {
        Ok(_) if declared.is_some_and(|len| len > gw.cache.max_object_size) => {
            Err(NoCacheReason::TooLarge)
        }
        other => other,
    };
    let freshness = match decision {
        Err(reason) => {
            finish(guard, Fill::NotStored);
            let cache = CacheStatus::Forward {
                fwd,
                fwd_status: Some(status.as_u16()),
                stored: false,
                reason: Some(reason),
            };
            return Ok((pass_through(gw, route_index, head, resp, &cache), cache));
        }
        Ok(f) => f,
    };

    let (parts, body) = resp.into_parts();
    let body = match gather(body, gw.cache.max_object_size).await {
        Ok(Gathered::Complete(bytes)) => bytes,
        Ok(Gathered::Overflow { prefix, rest }) => {
            finish(guard, Fill::NotStored);
            let cache = CacheStatus::Forward {
                fwd,
                fwd_status: Some(status.as_u16()),
                stored: false,
                reason: Some(NoCacheReason::TooLarge),
            };
            let resp = Response::from_parts(parts, prefixed(prefix, rest));
            return Ok((
                pass_through_body(gw, route_index, head, resp, &cache),
                cache,
            ));
        }
        Err(e) => {
            finish(guard, Fill::NotStored);
            return Err(GatewayError::UpstreamFailed {
                upstream: gw.upstreams[route.upstream].name.clone(),
                detail: format!("response body failed: {e}"),
            });
        }
    };

    let mut headers = stored_headers(&parts.headers);
    let tags = crate::tags::collect(route, head, &parts.headers);
    if !gw.cache.expose_tags {
        crate::tags::strip(&mut headers);
    }
    let origin_encoded = headers.contains_key(CONTENT_ENCODING);
    let compressible = compress
        && !origin_encoded
        && eligible(&gw.compression, status, &headers, Some(body.len() as u64));
    // Every coding is made once per stored entry. Only the one this client
    // will get is made before answering; the others are added in the
    // background, so a miss does not wait for codings nobody asked for yet.
    let (mut encoded, later) = if compressible {
        add_vary_accept_encoding(&mut headers);
        let wanted = negotiate(
            head.headers.get(ACCEPT_ENCODING),
            &gw.compression.algorithms,
        );
        let later: Vec<_> = gw
            .compression
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
    let entry = store(
        gw,
        cache_key,
        Entry {
            status,
            headers,
            body,
            encoded,
            vary,
            response_time,
            initial_age: age,
            freshness,
            tags,
        },
    );
    finish(guard, Fill::Stored(Arc::clone(&entry)));
    if !later.is_empty() {
        let (gw, key, entry) = (Arc::clone(gw), cache_key.to_string(), Arc::clone(&entry));
        tokio::spawn(async move {
            let extra = compress_on_pool(entry.body.clone(), later).await;
            if !extra.is_empty() {
                gw.l1.add_encodings(&key, &entry, extra);
            }
        });
    }
    let cache = CacheStatus::Forward {
        fwd,
        fwd_status: Some(status.as_u16()),
        stored: true,
        reason: None,
    };
    Ok((serve_entry(gw, &entry, head, &cache), cache))
}

/// Compresses a body with the given codings, on the blocking pool when it is
/// large enough to hold up other requests. Keeps only copies smaller than the body.
async fn compress_on_pool(
    body: bytes::Bytes,
    algorithms: Vec<rampart_config::Encoding>,
) -> Vec<(rampart_config::Encoding, bytes::Bytes)> {
    if body.len() > INLINE_COMPRESS_LIMIT {
        tokio::task::spawn_blocking(move || compress_all(&body, &algorithms))
            .await
            .unwrap_or_default()
    } else {
        compress_all(&body, &algorithms)
    }
}

/// The request Rampart sends to fill the cache: always a GET, without the
/// client's own conditionals or ranges (the cache answers those itself), with
/// validators of the stale entry, asking for identity when Rampart compresses.
fn origin_request(head: &RequestHead, stale: Option<&Entry>, compress: bool) -> Request<Body> {
    let mut headers = head.headers.clone();
    remove_hop_by_hop(&mut headers);
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
        RANGE,
        CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    if let Some(stale) = stale {
        if let Some(etag) = stale.headers.get(ETAG) {
            headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = stale.headers.get(LAST_MODIFIED) {
            headers.insert(IF_MODIFIED_SINCE, lm.clone());
        }
    }
    if compress {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    set_forwarded(&mut headers, head.peer, "http", head.trusted);
    let mut req = Request::new(empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = head.uri.path_and_query().map_or_else(
        || http::Uri::from_static("/"),
        |pq| http::Uri::from(pq.clone()),
    );
    *req.headers_mut() = headers;
    req
}

/// The headers to store: end-to-end only, without what is recomputed per
/// answer. Each value is copied into its own allocation, since values parsed
/// by hyper are slices of the connection's read buffer and would keep all of
/// it alive for as long as the entry is stored.
fn stored_headers(origin: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(origin.len());
    for (name, value) in origin {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    remove_hop_by_hop(&mut headers);
    headers.remove(AGE);
    headers.remove(CONTENT_LENGTH);
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

fn serve_stale_if_error(
    gw: &Gateway,
    entry: &Entry,
    head: &RequestHead,
    now: std::time::SystemTime,
) -> (Response<Body>, CacheStatus) {
    let status = CacheStatus::Stale {
        ttl: entry.ttl_secs(now),
        reason: StaleReason::IfError,
    };
    (serve_entry(gw, entry, head, &status), status)
}

/// Answers a request from a stored entry: 304 for a matching conditional,
/// otherwise the best stored coding the client accepts.
pub fn serve_entry(
    gw: &Gateway,
    entry: &Entry,
    head: &RequestHead,
    status: &CacheStatus,
) -> Response<Body> {
    serve_entry_at(gw, entry, head, status, gw.clock.now())
}

/// [`serve_entry`] with the `Age` computed at `now`, for a caller that has
/// just read the clock.
fn serve_entry_at(
    gw: &Gateway,
    entry: &Entry,
    head: &RequestHead,
    status: &CacheStatus,
    now: SystemTime,
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
            let available: Vec<_> = gw
                .compression
                .algorithms
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

/// Relays an origin response that is not stored: hop-by-hop headers removed,
/// body streamed (and compressed on the fly when eligible).
pub fn pass_through(
    gw: &Gateway,
    route: usize,
    head: &RequestHead,
    resp: Response<Body>,
    cache: &CacheStatus,
) -> Response<Body> {
    pass_through_body(gw, route, head, resp, cache)
}

fn pass_through_body(
    gw: &Gateway,
    route: usize,
    head: &RequestHead,
    resp: Response<Body>,
    cache: &CacheStatus,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if !gw.cache.expose_tags {
        crate::tags::strip(&mut parts.headers);
    }
    let body = if head.method == Method::HEAD {
        // A HEAD may have been sent upstream as GET for the cache.
        empty()
    } else if gw.router.route(route).compress {
        crate::compress::stream(
            &gw.compression,
            &head.headers,
            parts.status,
            &mut parts.headers,
            body,
        )
    } else {
        body
    };
    set_cache_status(&mut parts.headers, cache);
    Response::from_parts(parts, body)
}
