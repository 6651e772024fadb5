//! Tags of stored responses: the route's templates filled from the request
//! (`{id}` from the path, `{query.x}`, `{header.x}`), plus the origin's own
//! from `Surrogate-Key` (space separated) and `Cache-Tag` (comma separated).
//! The origin's tag headers are removed before clients see them unless
//! `[cache] expose_tags` is set.

use http::{HeaderMap, HeaderName};
use rampart_config::{RouteConfig, Template};

use crate::request::RequestHead;

/// `Surrogate-Key` (Fastly style, space separated).
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag` (Cloudflare style, comma separated).
pub static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Most tags kept per response, and longest tag, so that an origin cannot
/// grow the tag index without bound.
pub const MAX_TAGS: usize = 64;
/// Longest tag kept, in bytes.
pub const MAX_TAG_LEN: usize = 256;

fn fill(t: &Template, route: &RouteConfig, head: &RequestHead) -> Option<String> {
    let params = route.matcher.path.matches(head.uri.path());
    t.render(|var| {
        let value = (|| {
            if let Some(q) = var.strip_prefix("query.") {
                return head.uri.query().and_then(|query| {
                    query
                        .split('&')
                        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
                        .find(|(k, _)| *k == q)
                        .map(|(_, v)| v.to_string())
                });
            }
            if let Some(h) = var.strip_prefix("header.") {
                return head
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            params
                .as_ref()?
                .iter()
                .find(|(n, _)| *n == var)
                .map(|(_, v)| v.to_string())
        })();
        value.map(std::borrow::Cow::Owned)
    })
    .ok()
    .filter(|v| !v.is_empty())
}

/// Every tag of a response to store: the route's (a template whose value is
/// missing, such as an absent query parameter, gives no tag) and the origin's.
pub fn collect(route: &RouteConfig, head: &RequestHead, origin: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = t.trim();
        if !t.is_empty()
            && t.len() <= MAX_TAG_LEN
            && tags.len() < MAX_TAGS
            && !tags.iter().any(|x| x == t)
        {
            tags.push(t.to_string());
        }
    };
    if let Some(policy) = &route.cache {
        for t in &policy.tags {
            if let Some(v) = fill(t, route, head) {
                push(&v);
            }
        }
    }
    for v in origin
        .get_all(&SURROGATE_KEY)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        v.split_ascii_whitespace().for_each(&mut push);
    }
    for v in origin
        .get_all(&CACHE_TAG)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        v.split(',').for_each(&mut push);
    }
    tags
}

/// Removes the origin's tag headers.
pub fn strip(headers: &mut HeaderMap) {
    headers.remove(&SURROGATE_KEY);
    headers.remove(&CACHE_TAG);
}
