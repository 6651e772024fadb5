//! What a fill (a request to the origin made for the cache) does with the
//! origin's answer, as pure functions of their inputs and `now`: whether a
//! response may be stored and for how long ([`decide_store`]), how a 304
//! freshens a stale entry ([`freshen`]), and when a stale copy answers
//! instead of a failed origin ([`stale_fallback`]).

use std::time::{Duration, SystemTime};

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use rampart_config::CachePolicy;

use crate::entry::Entry;
use crate::freshness::{decide, Freshness};
use crate::status::{NoCacheReason, StaleReason};

/// Whether a response may be stored under `policy`, and how fresh it is:
/// [`decide`]'s rules, then the declared `Content-Length` against
/// `max_object_size` (a body without one is measured while it is read).
pub fn decide_store(
    policy: &CachePolicy,
    status: u16,
    headers: &HeaderMap,
    initial_age: Duration,
    authorized: bool,
    max_object_size: u64,
) -> Result<Freshness, NoCacheReason> {
    let freshness = decide(policy, status, headers, initial_age, authorized)?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_object_size) {
        return Err(NoCacheReason::TooLarge);
    }
    Ok(freshness)
}

/// The headers of a stale entry after the origin answered 304 to its
/// revalidation (RFC 9111 §4.3.4): the stored ones, each replaced by the
/// 304's field of the same name, except those describing the stored body.
pub fn freshen(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut headers = stored.clone();
    for name in not_modified.keys() {
        if name == CONTENT_LENGTH || name == CONTENT_TYPE || name == CONTENT_ENCODING {
            continue;
        }
        headers.remove(name);
        for value in not_modified.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// How the origin failed a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// It could not be asked: every target's circuit is open.
    CircuitOpen,
    /// It could not be asked: no target passes its health checks.
    NoHealthyTarget,
    /// It was asked and failed (no connection, no answer in time, a broken
    /// exchange).
    Error,
    /// It answered with a 5xx.
    ServerError,
}

/// Whether a stale entry answers instead of a failed origin, and why. An
/// origin that cannot be asked at all is answered for by any stored copy,
/// however stale (the copy is all there is); an origin that failed or
/// answered 5xx only within the entry's `stale_if_error` window. An entry
/// the origin marked `must-revalidate` (or `no-cache`) never is, unless the
/// route overrides that (`ignore_must_revalidate`).
pub fn stale_fallback(
    entry: &Entry,
    failure: OriginFailure,
    now: SystemTime,
    ignore_must_revalidate: bool,
) -> Option<StaleReason> {
    if entry.freshness.must_revalidate && !ignore_must_revalidate {
        return None;
    }
    match failure {
        OriginFailure::CircuitOpen => Some(StaleReason::CircuitOpen),
        OriginFailure::NoHealthyTarget => Some(StaleReason::NoHealthyTarget),
        OriginFailure::Error | OriginFailure::ServerError => {
            entry.usable_if_error(now).then_some(StaleReason::IfError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    fn entry(sie: u64, t0: SystemTime) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            encoded: vec![],
            asked: Default::default(),
            vary: vec![],
            response_time: t0,
            initial_age: Duration::ZERO,
            freshness: Freshness {
                lifetime: Duration::from_secs(10),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::from_secs(sie),
                keep: Duration::ZERO,
                must_revalidate: false,
            },
            tags: vec![],
        }
    }

    #[test]
    fn a_stale_copy_answers_a_down_origin_always_a_failing_one_within_its_window() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let e = entry(60, t0);
        let late = t0 + Duration::from_secs(3600);
        assert_eq!(
            stale_fallback(&e, OriginFailure::CircuitOpen, late, false),
            Some(StaleReason::CircuitOpen)
        );
        assert_eq!(
            stale_fallback(&e, OriginFailure::NoHealthyTarget, late, false),
            Some(StaleReason::NoHealthyTarget)
        );
        assert_eq!(stale_fallback(&e, OriginFailure::Error, late, false), None);
        let within = t0 + Duration::from_secs(30);
        assert_eq!(
            stale_fallback(&e, OriginFailure::ServerError, within, false),
            Some(StaleReason::IfError)
        );
        let mut strict = e.clone();
        strict.freshness.must_revalidate = true;
        assert_eq!(
            stale_fallback(&strict, OriginFailure::CircuitOpen, late, false),
            None,
            "must-revalidate: never stale"
        );
        assert_eq!(
            stale_fallback(&strict, OriginFailure::CircuitOpen, late, true),
            Some(StaleReason::CircuitOpen),
            "unless the route says so"
        );
    }

    #[test]
    fn a_304_replaces_stored_fields_but_not_those_of_the_body() {
        let mut stored = HeaderMap::new();
        stored.insert("content-type", HeaderValue::from_static("text/html"));
        stored.insert("etag", HeaderValue::from_static("\"v1\""));
        stored.append("x-multi", HeaderValue::from_static("a"));
        stored.append("x-multi", HeaderValue::from_static("b"));
        let mut update = HeaderMap::new();
        update.insert("content-type", HeaderValue::from_static("text/plain"));
        update.insert("cache-control", HeaderValue::from_static("max-age=60"));
        update.insert("x-multi", HeaderValue::from_static("c"));
        let h = freshen(&stored, &update);
        assert_eq!(h["content-type"], "text/html");
        assert_eq!(h["cache-control"], "max-age=60");
        assert_eq!(h["etag"], "\"v1\"");
        assert_eq!(h.get_all("x-multi").iter().count(), 1);
    }

    #[test]
    fn a_declared_body_over_the_limit_is_not_stored() {
        let policy = CachePolicy::ttl(Duration::from_secs(60));
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("2048"));
        assert_eq!(
            decide_store(&policy, 200, &h, Duration::ZERO, false, 1024),
            Err(NoCacheReason::TooLarge)
        );
        assert!(decide_store(&policy, 200, &h, Duration::ZERO, false, 4096).is_ok());
    }
}
