//! Cache inspection: what is stored under a URL and why it is served as it
//! is (`GET /admin/cache/entry?url=…`), and a paged listing of what is
//! stored (`GET /admin/cache/entries?prefix=…&tag=…&limit=…&cursor=…`).
//! Both read the memory tier of this node; neither changes anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderMap, Response, StatusCode};
use rampart_cache::entry::Entry;
use rampart_cache::key::primary_of;
use rampart_cache::purge::{selector, Selector};
use rampart_cache::store::Variants;
use rampart_proxy::body::Body;
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::reply::{json_response, problem};

/// The most entries one listing call returns.
pub(crate) const MAX_LIMIT: usize = 1000;
/// Entries a listing returns when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// The query parameters, decoded.
fn params(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `GET /admin/cache/entry?url=URL_OR_PATH`: every key stored for the URL
/// (a path names it on every host) and each of their variants.
pub(crate) fn entry(admin: &Admin, query: Option<&str>) -> Response<Body> {
    let params = params(query);
    let Some(url) = params.get("url") else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-inspection",
            "give the URL or path to inspect: /admin/cache/entry?url=/path",
        );
    };
    let found = match selector(url) {
        Ok(Selector::Url(primary)) => admin.tiers.l1.url_entries(&primary),
        Ok(path) => admin.tiers.l1.page(|u| path.is(u), None, None, MAX_LIMIT),
        Err(e) => return problem(StatusCode::BAD_REQUEST, "bad-inspection", e.to_string()),
    };
    if found.is_empty() {
        return problem(
            StatusCode::NOT_FOUND,
            "not-stored",
            format!("nothing is stored in memory for {url}"),
        );
    }
    let now = admin.tiers.now();
    let keys: Vec<Value> = found
        .iter()
        .map(|(key, variants)| {
            json!({
                "key": key,
                "url": primary_of(key),
                "tier": "l1",
                "variants": variants.entries.iter().map(|e| variant(e, now)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "url": url, "keys": keys }))
}

/// `GET /admin/cache/entries`: keys in key order, `limit` at a time (at
/// most 1000), after `cursor` (the last key of the previous page), whose
/// URL starts with `prefix` (a URL or a path) and that carry `tag`.
pub(crate) fn entries(admin: &Admin, query: Option<&str>) -> Response<Body> {
    let params = params(query);
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-inspection",
                format!("limit is a whole number from 1 to {MAX_LIMIT}"),
            )
        }
    };
    let prefix = match params.get("prefix").map(|p| selector(p)) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return problem(StatusCode::BAD_REQUEST, "bad-inspection", e.to_string()),
    };
    let tag = params.get("tag").map(String::as_str);
    let cursor = params.get("cursor").map(String::as_str);
    let page = admin.tiers.l1.page(
        |u| prefix.as_ref().is_none_or(|p| p.prefixes(u)),
        tag,
        cursor,
        limit,
    );
    let now = admin.tiers.now();
    let next = (page.len() == limit)
        .then(|| page.last().map(|(k, _)| k.clone()))
        .flatten();
    let listed: Vec<Value> = page
        .iter()
        .map(|(key, variants)| summary(key, variants, now))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "entries": listed, "next_cursor": next }),
    )
}

/// One line of a listing.
fn summary(key: &str, variants: &Arc<Variants>, now: SystemTime) -> Value {
    let newest = variants.entries.first();
    json!({
        "key": key,
        "url": primary_of(key),
        "variants": variants.entries.len(),
        "status": newest.map(|e| e.status.as_u16()),
        "ttl_secs": newest.map(|e| e.ttl_secs(now)),
        "size_bytes": variants.entries.iter().map(|e| stored_bytes(e)).sum::<usize>(),
        "tags": variants.tags(),
    })
}

/// The body and every coding of it.
fn stored_bytes(e: &Entry) -> usize {
    e.body.len() + e.encoded.iter().map(|(_, b)| b.len()).sum::<usize>()
}

/// One stored variant: what was stored and how long it may be served.
fn variant(e: &Entry, now: SystemTime) -> Value {
    let f = &e.freshness;
    json!({
        "status": e.status.as_u16(),
        "vary": e.vary.iter().map(|(name, value)| {
            let shown = if secret(name) { value.as_ref().map(|_| "(redacted)") } else { value.as_ref().and_then(|v| v.to_str().ok()) };
            (name.as_str().to_string(), json!(shown))
        }).collect::<serde_json::Map<_, _>>(),
        "headers": headers(&e.headers),
        "stored_at": e.response_time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "age_secs": e.age(now).as_secs(),
        "ttl_secs": e.ttl_secs(now),
        "state": e.state(now).as_str(),
        "stale_while_revalidate_secs": f.stale_while_revalidate.as_secs(),
        "stale_if_error_secs": f.stale_if_error.as_secs(),
        "must_revalidate": f.must_revalidate,
        "tags": e.tags,
        "size_bytes": e.body.len(),
        "codings": e.encoded.iter().map(|(c, b)| (c.as_str().to_string(), json!(b.len()))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Request headers whose values are credentials: named in `Vary`, shown
/// only as present.
fn secret(name: &http::HeaderName) -> bool {
    name == AUTHORIZATION || name == COOKIE || name == PROXY_AUTHORIZATION
}

/// Stored response headers, each name with its values.
fn headers(h: &HeaderMap) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for name in h.keys() {
        let values: Vec<&str> = h
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("(not text)"))
            .collect();
        out.insert(name.as_str().to_string(), json!(values));
    }
    out
}
