//! RFC 9111 decisions as pure functions of the response, the policy and the
//! time: may this response be stored, for how long is it fresh, how old is it.

use std::time::{Duration, SystemTime};

use http::header::{AGE, CACHE_CONTROL, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName};
use rampart_config::{CachePolicy, SetCookiePolicy};

use crate::status::NoCacheReason;

/// The largest delta-seconds value Rampart reads (RFC 9111 §1.2.2: a
/// larger value, or one whose arithmetic would overflow, counts as 2^31
/// seconds, about 68 years). Every freshness lifetime, stale window and age
/// is bounded by it, so no value from an origin or Redis can overflow a
/// time calculation.
pub const MAX_DELTA: Duration = Duration::from_secs(1 << 31);

/// `CDN-Cache-Control` (RFC 9213): directives for shared caches of CDNs.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Control` (Edge Architecture): directives for surrogates,
/// removed before clients see the response.
pub static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// Reads delta-seconds (RFC 9111 §1.2.2): digits, capped at [`MAX_DELTA`].
pub fn delta_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u64>()
            .map_or(MAX_DELTA.as_secs(), |v| v.min(MAX_DELTA.as_secs())),
    )
}

/// The `Cache-Control` directives Rampart acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`
    pub no_store: bool,
    /// `no-cache` (with or without field names: treated as plain `no-cache`)
    pub no_cache: bool,
    /// `private` (with or without field names: treated as plain `private`)
    pub private: bool,
    /// `public`
    pub public: bool,
    /// `max-age`
    pub max_age: Option<u64>,
    /// `s-maxage`
    pub s_maxage: Option<u64>,
    /// `must-revalidate` or `proxy-revalidate`
    pub must_revalidate: bool,
    /// `stale-while-revalidate` (RFC 5861)
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861)
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` field line of `headers`. Directive names
    /// are case-insensitive; a malformed delta-seconds counts as 0 (stale),
    /// the safe reading.
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &CACHE_CONTROL)
    }

    /// The directives that govern a shared cache (RFC 9213): those of
    /// `CDN-Cache-Control` when the origin sent it, else those of
    /// `Surrogate-Control`, else `Cache-Control`. Returns whether a targeted
    /// field was used (then `Expires` does not count either).
    pub fn for_shared_cache(headers: &HeaderMap) -> (Self, bool) {
        for targeted in [&CDN_CACHE_CONTROL, &SURROGATE_CONTROL] {
            if headers
                .get_all(targeted)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| !v.trim().is_empty()))
            {
                return (Self::parse_field(headers, targeted), true);
            }
        }
        (Self::parse(headers), false)
    }

    /// Parses every line of one cache-control field.
    fn parse_field(headers: &HeaderMap, field: &HeaderName) -> Self {
        let mut cc = CacheControl::default();
        for value in headers.get_all(field) {
            let Ok(value) = value.to_str() else { continue };
            for directive in split_list(value) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = || arg.map(|a| delta_seconds(a).unwrap_or(0));
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "max-age" => cc.max_age = seconds().or(Some(0)),
                    "s-maxage" => cc.s_maxage = seconds().or(Some(0)),
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                    "stale-if-error" => cc.stale_if_error = seconds(),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Splits a comma-separated header list, respecting quoted strings.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// How long a stored response is fresh and how it may be served stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime, compared with the response's current age.
    pub lifetime: Duration,
    /// Stale window in which it is served while one request revalidates.
    pub stale_while_revalidate: Duration,
    /// Stale window in which it is served when the origin fails.
    pub stale_if_error: Duration,
    /// How long after both windows it is kept to be revalidated (it has a
    /// validator) rather than fetched again.
    pub keep: Duration,
    /// Never served stale, not even when the origin cannot be asked
    /// (`must-revalidate`, `proxy-revalidate`, `no-cache`: RFC 9111 §4.2.4).
    pub must_revalidate: bool,
}

impl Freshness {
    /// A lifetime alone: no stale windows, nothing kept after.
    pub fn fresh_for(lifetime: Duration) -> Self {
        Self {
            lifetime,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            keep: Duration::ZERO,
            must_revalidate: false,
        }
    }

    /// How long after storing the entry is worth keeping at all.
    pub fn horizon(&self) -> Duration {
        self.lifetime
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
            .saturating_add(self.keep)
    }

    /// The same, each part capped at [`MAX_DELTA`].
    pub fn bounded(self) -> Self {
        Self {
            lifetime: self.lifetime.min(MAX_DELTA),
            stale_while_revalidate: self.stale_while_revalidate.min(MAX_DELTA),
            stale_if_error: self.stale_if_error.min(MAX_DELTA),
            keep: self.keep.min(MAX_DELTA),
            must_revalidate: self.must_revalidate,
        }
    }
}

/// Whether a final status may be stored with explicit freshness (RFC 9111
/// §3: any final status the cache understands). Not 206 (Rampart stores
/// whole responses and answers ranges itself) nor 304 (no representation).
fn understood(status: u16) -> bool {
    (200..600).contains(&status) && status != 206 && status != 304
}

/// Statuses that may get heuristic freshness (RFC 9110 §15.1), less 206.
const HEURISTIC: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Decides whether a response may be stored under `policy`, and for how long.
///
/// `initial_age` is the response's corrected initial age ([`initial_age`]);
/// `authorized` says whether the request carried an `Authorization` the
/// route's key does not hold (only with `authorization = "follow-origin"`):
/// then the response must say it may be shared (`public`, `s-maxage` or
/// `must-revalidate`, RFC 9111 §3.5).
/// Never stores `no-store` or `private`, nor `Vary: *`, nor `Set-Cookie`
/// (whatever the key: one user's cookie must never reach another) unless
/// the route strips it ([`SetCookiePolicy::Strip`]).
pub fn decide(
    policy: &CachePolicy,
    status: u16,
    headers: &HeaderMap,
    initial_age: Duration,
    authorized: bool,
) -> Result<Freshness, NoCacheReason> {
    let (cc, targeted) = CacheControl::for_shared_cache(headers);
    if cc.no_store {
        return Err(NoCacheReason::NoStore);
    }
    if cc.private {
        return Err(NoCacheReason::Private);
    }
    if headers.contains_key(SET_COOKIE) && policy.set_cookie == SetCookiePolicy::Refuse {
        return Err(NoCacheReason::SetCookie);
    }
    if authorized && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(NoCacheReason::Authorization);
    }
    if headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_list)
        .any(|v| v == "*")
    {
        return Err(NoCacheReason::VaryStar);
    }

    let validator = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
    let origin_lifetime = if policy.respect_origin {
        origin_lifetime(&cc, targeted, headers, policy.heuristic, status)
            // `no-cache` with a validator: stored, revalidated on every use.
            .or((cc.no_cache && validator).then_some(Duration::ZERO))
    } else {
        None
    };
    let lifetime = match (origin_lifetime, policy.ttl) {
        (Some(lifetime), _) if understood(status) => lifetime,
        (Some(_), _) => return Err(NoCacheReason::Status),
        (None, Some(ttl)) if policy.statuses.contains(&status) => {
            // A Rampart-decided TTL counts from when Rampart received it.
            ttl.saturating_add(initial_age)
        }
        (None, Some(_)) => return Err(NoCacheReason::Status),
        (None, None) => return Err(NoCacheReason::NoFreshness),
    };
    // `no-cache`: may be stored, never served without revalidation.
    let lifetime = if cc.no_cache {
        Duration::ZERO
    } else {
        lifetime
    };
    let (mut swr, mut sie) = (policy.stale_while_revalidate, policy.stale_if_error);
    if policy.respect_origin {
        if let Some(s) = cc.stale_while_revalidate {
            swr = Duration::from_secs(s);
        }
        if let Some(s) = cc.stale_if_error {
            sie = Duration::from_secs(s);
        }
    }
    // An explicit in-protocol directive forbids serving stale (RFC 9111 §4.2.4).
    let must_revalidate = cc.must_revalidate || cc.no_cache;
    if must_revalidate {
        swr = Duration::ZERO;
        sie = Duration::ZERO;
    }
    // With a validator, an expired entry is kept a while to be revalidated
    // (a 304 costs the origin less than the whole body).
    let keep = if validator {
        policy.keep_stale
    } else {
        Duration::ZERO
    };
    Ok(Freshness {
        lifetime,
        stale_while_revalidate: swr,
        stale_if_error: sie,
        keep,
        must_revalidate,
    }
    .bounded())
}

/// The origin's freshness lifetime (RFC 9111 §4.2.1): `s-maxage`, then
/// `max-age`, then `Expires` − `Date` (not when a targeted field spoke),
/// then (if allowed) heuristic.
fn origin_lifetime(
    cc: &CacheControl,
    targeted: bool,
    headers: &HeaderMap,
    heuristic: bool,
    status: u16,
) -> Option<Duration> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(s));
    }
    let date = header_date(headers, DATE);
    if let Some(expires) = headers.get(EXPIRES).filter(|_| !targeted) {
        // An invalid Expires (such as "0") means already expired.
        let Some(expires) = expires
            .to_str()
            .ok()
            .and_then(|e| httpdate::parse_http_date(e).ok())
        else {
            return Some(Duration::ZERO);
        };
        let date = date.unwrap_or_else(SystemTime::now);
        return Some(expires.duration_since(date).unwrap_or(Duration::ZERO));
    }
    if heuristic && HEURISTIC.contains(&status) {
        let last_modified = header_date(headers, LAST_MODIFIED)?;
        let date = date.unwrap_or_else(SystemTime::now);
        let since = date.duration_since(last_modified).unwrap_or(Duration::ZERO);
        return Some((since / 10).min(Duration::from_secs(86_400)));
    }
    None
}

fn header_date(headers: &HeaderMap, name: http::HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// The corrected initial age of a response (RFC 9111 §4.2.3).
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    // A list-based Age uses its first member; an invalid one is ignored
    // (RFC 9111 §5.1).
    let age_value = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(delta_seconds)
        .map_or(Duration::ZERO, Duration::from_secs);
    let apparent_age = header_date(headers, DATE)
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    apparent_age
        .max(age_value.saturating_add(response_delay))
        .min(MAX_DELTA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use rampart_config::SetCookiePolicy;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn origin() -> CachePolicy {
        CachePolicy {
            ttl: None,
            respect_origin: true,
            ..CachePolicy::ttl(Duration::ZERO)
        }
    }

    #[test]
    fn never_stores_private_or_no_store() {
        let p = CachePolicy::ttl(Duration::from_secs(60));
        assert_eq!(
            decide(
                &p,
                200,
                &headers(&[("cache-control", "no-store")]),
                Duration::ZERO,
                false
            ),
            Err(NoCacheReason::NoStore)
        );
        assert_eq!(
            decide(
                &p,
                200,
                &headers(&[("cache-control", "Private, max-age=60")]),
                Duration::ZERO,
                false
            ),
            Err(NoCacheReason::Private)
        );
        assert_eq!(
            decide(
                &p,
                200,
                &headers(&[("set-cookie", "a=b")]),
                Duration::ZERO,
                false
            ),
            Err(NoCacheReason::SetCookie)
        );
        assert_eq!(
            decide(
                &p,
                200,
                &headers(&[("vary", "Accept, *")]),
                Duration::ZERO,
                false
            ),
            Err(NoCacheReason::VaryStar)
        );
        assert_eq!(
            decide(&p, 500, &headers(&[]), Duration::ZERO, false),
            Err(NoCacheReason::Status)
        );
        // An Authorization request's response is shared only when it says so.
        let mut follow = origin();
        follow.authorization = rampart_config::AuthorizationPolicy::FollowOrigin;
        let plain = headers(&[("cache-control", "max-age=60")]);
        assert_eq!(
            decide(&follow, 200, &plain, Duration::ZERO, true),
            Err(NoCacheReason::Authorization)
        );
        for shared in [
            "public, max-age=60",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            let h = headers(&[("cache-control", shared)]);
            assert!(
                decide(&follow, 200, &h, Duration::ZERO, true).is_ok(),
                "{shared}"
            );
        }
        // Keyed on a cookie or not: a stored Set-Cookie would reach others.
        let mut keyed = p.clone();
        keyed.key = vec![rampart_config::KeyPart::Cookie("lang".into())];
        let cookie = headers(&[("set-cookie", "sid=b")]);
        assert_eq!(
            decide(&keyed, 200, &cookie, Duration::ZERO, false),
            Err(NoCacheReason::SetCookie)
        );
        keyed.set_cookie = SetCookiePolicy::Strip;
        assert!(decide(&keyed, 200, &cookie, Duration::ZERO, false).is_ok());
    }

    #[test]
    fn origin_freshness_order() {
        let p = origin();
        let f = |h: &[(&str, &str)]| {
            decide(&p, 200, &headers(h), Duration::ZERO, false).map(|f| f.lifetime)
        };
        assert_eq!(
            f(&[("cache-control", "max-age=60, s-maxage=120")]),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            f(&[("cache-control", "max-age=60")]),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            f(&[
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("expires", "Sun, 06 Nov 1994 08:59:37 GMT")
            ]),
            Ok(Duration::from_secs(600))
        );
        assert_eq!(f(&[("expires", "0")]), Ok(Duration::ZERO));
        assert_eq!(f(&[]), Err(NoCacheReason::NoFreshness));
        // heuristic is off by default
        assert_eq!(
            f(&[
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("last-modified", "Sun, 06 Nov 1994 07:49:37 GMT")
            ]),
            Err(NoCacheReason::NoFreshness)
        );
        let mut h = origin();
        h.heuristic = true;
        assert_eq!(
            decide(
                &h,
                200,
                &headers(&[
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("last-modified", "Sun, 06 Nov 1994 07:49:37 GMT")
                ]),
                Duration::ZERO,
                false
            )
            .map(|f| f.lifetime),
            Ok(Duration::from_secs(360))
        );
        // with a ttl fallback
        let mut t = origin();
        t.ttl = Some(Duration::from_secs(30));
        assert_eq!(
            decide(&t, 200, &headers(&[]), Duration::ZERO, false).map(|f| f.lifetime),
            Ok(Duration::from_secs(30))
        );
    }

    #[test]
    fn stale_windows_and_revalidation_directives() {
        let mut p = CachePolicy::ttl(Duration::from_secs(10));
        p.stale_while_revalidate = Duration::from_secs(5);
        p.stale_if_error = Duration::from_secs(60);
        let f = decide(&p, 200, &headers(&[]), Duration::ZERO, false).unwrap();
        assert_eq!(f.horizon(), Duration::from_secs(70));
        let f = decide(
            &p,
            200,
            &headers(&[("cache-control", "must-revalidate")]),
            Duration::ZERO,
            false,
        )
        .unwrap();
        assert_eq!(
            (f.stale_while_revalidate, f.stale_if_error),
            (Duration::ZERO, Duration::ZERO)
        );
        let f = decide(
            &p,
            200,
            &headers(&[("cache-control", "no-cache")]),
            Duration::ZERO,
            false,
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::ZERO);
        let mut o = origin();
        o.stale_if_error = Duration::from_secs(1);
        let f = decide(
            &o,
            200,
            &headers(&[(
                "cache-control",
                "max-age=1, stale-while-revalidate=7, stale-if-error=9",
            )]),
            Duration::ZERO,
            false,
        )
        .unwrap();
        assert_eq!(
            (f.stale_while_revalidate, f.stale_if_error),
            (Duration::from_secs(7), Duration::from_secs(9))
        );
    }

    #[test]
    fn targeted_fields_win_for_a_shared_cache() {
        let p = origin();
        let lifetime = |h: &[(&str, &str)]| decide(&p, 200, &headers(h), Duration::ZERO, false);
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=600")
            ])
            .map(|f| f.lifetime),
            Ok(Duration::from_secs(600))
        );
        assert_eq!(
            lifetime(&[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=60")
            ])
            .map(|f| f.lifetime),
            Ok(Duration::from_secs(60)),
            "the targeted field replaces Cache-Control (RFC 9213 §2.2)"
        );
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=60"),
                ("surrogate-control", "no-store")
            ]),
            Err(NoCacheReason::NoStore)
        );
        assert_eq!(
            lifetime(&[
                ("surrogate-control", "max-age=30"),
                ("cdn-cache-control", "max-age=90")
            ])
            .map(|f| f.lifetime),
            Ok(Duration::from_secs(90)),
            "CDN-Cache-Control before Surrogate-Control"
        );
        // Any final status with explicit freshness; heuristics only for some.
        assert!(decide(
            &p,
            500,
            &headers(&[("cache-control", "max-age=5")]),
            Duration::ZERO,
            false
        )
        .is_ok());
        assert_eq!(
            decide(
                &p,
                206,
                &headers(&[("cache-control", "max-age=5")]),
                Duration::ZERO,
                false
            ),
            Err(NoCacheReason::Status)
        );
    }

    #[test]
    fn validators_keep_an_entry_for_revalidation_and_no_cache_never_serves_stale() {
        let mut p = CachePolicy::ttl(Duration::from_secs(10));
        p.keep_stale = Duration::from_secs(3600);
        let f = decide(
            &p,
            200,
            &headers(&[("etag", "\"v1\"")]),
            Duration::ZERO,
            false,
        )
        .unwrap();
        assert_eq!(f.horizon(), Duration::from_secs(3610));
        let f = decide(&p, 200, &headers(&[]), Duration::ZERO, false).unwrap();
        assert_eq!(
            f.horizon(),
            Duration::from_secs(10),
            "nothing to revalidate with"
        );
        let f = decide(
            &origin(),
            200,
            &headers(&[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
            Duration::ZERO,
            false,
        )
        .unwrap();
        assert!(f.must_revalidate && f.lifetime.is_zero() && f.keep > Duration::ZERO);
    }

    #[test]
    fn age_calculation() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = headers(&[("age", "30")]);
        assert_eq!(
            initial_age(&h, t0, t0 + Duration::from_secs(2)),
            Duration::from_secs(32)
        );
        assert_eq!(initial_age(&headers(&[]), t0, t0), Duration::ZERO);
        assert_eq!(
            initial_age(&headers(&[("age", "7200, 0")]), t0, t0),
            Duration::from_secs(7200),
            "a list's first member"
        );
        assert_eq!(
            initial_age(&headers(&[("age", "-5")]), t0, t0),
            Duration::ZERO
        );
        assert_eq!(
            CacheControl::parse(&headers(&[("cache-control", "max-age=abc")])).max_age,
            Some(0)
        );
    }
}
