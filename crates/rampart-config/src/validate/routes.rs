//! `[[routes]]`: what each matches, its upstream, cache policy, rate limits
//! and priority.

use std::time::Duration;

use http::HeaderName;
use rampart_core::{units, Template};

use crate::model::{
    AuthorizationPolicy, CacheConfig, CachePolicy, CookiePolicy, KeyPart, LimitConfig, LimitKey,
    Priority, RouteConfig, SetCookiePolicy, UpgradeConfig, UpstreamConfig, DEFAULT_KEEP_STALE,
    DEFAULT_STATUSES,
};
use crate::raw;

use super::common::Invalid;
use super::rewrite;

/// Every route, in file order, names unique, each naming a defined upstream.
pub(super) fn routes(
    raw: Vec<raw::RawRoute>,
    upstreams: &[UpstreamConfig],
    cache_config: &CacheConfig,
) -> Result<Vec<RouteConfig>, Invalid> {
    let mut routes: Vec<RouteConfig> = Vec::new();
    for r in raw {
        let upstream_name = &r.upstream.get_ref().0;
        let upstream = upstreams
            .iter()
            .position(|u| &u.name == upstream_name)
            .ok_or_else(|| {
                let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
                (
                    r.upstream.span().start,
                    format!("no upstream named {upstream_name:?} (defined: {known:?})"),
                )
            })?;
        let name = match &r.name {
            Some(n) => n.get_ref().0.clone(),
            None => r.matcher.as_str().to_string(),
        };
        if routes.iter().any(|x| x.name == name) {
            let at = r
                .name
                .as_ref()
                .map_or(r.upstream.span().start, |n| n.span().start);
            return Err((
                at,
                format!("route name {name:?} is used twice; give each route a unique name"),
            ));
        }
        let cache = match r.cache {
            None => None,
            Some(p) => {
                let policy = cache_policy(p)?;
                for (t, at) in &policy.tags {
                    for var in t.vars() {
                        let known = var.strip_prefix("query.").is_some_and(|q| !q.is_empty())
                            || var
                                .strip_prefix("header.")
                                .is_some_and(|h| HeaderName::from_bytes(h.as_bytes()).is_ok())
                            || r.matcher.path.param_names().any(|n| n == var);
                        if !known {
                            return Err((
                                *at,
                                format!("tag {:?}: {{{var}}} is not a parameter of the route's pattern, nor query.NAME or header.NAME", t.source),
                            ));
                        }
                    }
                }
                Some(policy.into_policy())
            }
        };
        let timeout = r.timeout.map_or(upstreams[upstream].timeout, |d| d.0);
        let mut limits = Vec::new();
        let limit_at = r.limit.as_ref().map_or(0, |l| l.span().start);
        for l in r
            .limit
            .map(|l| l.into_inner().into_vec())
            .unwrap_or_default()
        {
            let at = limit_at;
            if l.rate == 0 || l.per.0.is_zero() {
                return Err((
                    at,
                    "a limit needs a rate above 0 and a period above 0s".into(),
                ));
            }
            let cluster = match l.scope.as_ref().map(|s| s.0.as_str()) {
                None | Some("local") => false,
                Some("cluster") if cache_config.redis.is_none() => {
                    return Err((at, "scope = \"cluster\" counts in Redis: set [cache] redis, or use scope = \"local\"".into()))
                }
                Some("cluster") => true,
                Some(other) => return Err((at, format!("unknown scope {other:?}: use \"local\" or \"cluster\""))),
            };
            let key = match l.key.as_ref().map_or("ip", |k| k.0.as_str()) {
                "ip" => LimitKey::Ip,
                k => match k.split_once(':') {
                    Some(("header", h)) => LimitKey::Header(
                        HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| (at, format!("invalid header name {h:?}")))?,
                    ),
                    Some(("cookie", c)) if !c.trim().is_empty() => LimitKey::Cookie(c.trim().to_string()),
                    Some(("param", p)) => {
                        if !r.matcher.path.param_names().any(|n| n == p.trim()) {
                            return Err((at, format!("the route's pattern has no {{{}}} parameter", p.trim())));
                        }
                        LimitKey::Param(p.trim().to_string())
                    }
                    _ => return Err((at, format!("invalid key {k:?}: use \"ip\", \"header:NAME\", \"cookie:NAME\" or \"param:NAME\""))),
                },
            };
            let name = l.name.map_or_else(
                || format!("{}/{}", l.rate, units::format_duration(l.per.0)),
                |n| n.0,
            );
            limits.push(LimitConfig {
                name,
                rate: l.rate,
                period: l.per.0,
                burst: l.burst.unwrap_or(l.rate).max(1),
                key,
                cluster,
            });
        }
        let priority = match r.priority.as_ref().map(|p| p.get_ref().0.as_str()) {
            None | Some("default") => Priority::Default,
            Some("critical") => Priority::Critical,
            Some("high") => Priority::High,
            Some("low") => Priority::Low,
            Some(other) => {
                let at = r.priority.as_ref().map_or(0, |p| p.span().start);
                return Err((
                    at,
                    format!("unknown priority {other:?}: use critical, high, default or low"),
                ));
            }
        };
        let hosts = rewrite::hosts(r.host)?;
        let rewrite = rewrite::path_rewrite(r.strip_prefix, r.rewrite, &r.matcher)?;
        let request_headers = rewrite::header_edits(r.request_headers)?;
        let response_headers = rewrite::header_edits(r.response_headers)?;
        routes.push(RouteConfig {
            name,
            matcher: r.matcher,
            upstream,
            cache,
            compress: r.compress.unwrap_or(true),
            timeout,
            limits,
            priority,
            hosts,
            rewrite,
            request_headers,
            response_headers,
            upgrade: r.upgrade.filter(|u| u.enabled).map(|u| UpgradeConfig {
                idle_timeout: u.idle_timeout.map_or(Duration::from_secs(300), |d| d.0),
                max_lifetime: u.max_lifetime.map_or(Duration::from_secs(86_400), |d| d.0),
            }),
        });
    }

    Ok(routes)
}

/// A cache policy with the positions of its tags, for errors that need the route.
struct ParsedPolicy {
    policy: CachePolicy,
    tags: Vec<(Template, usize)>,
}

impl ParsedPolicy {
    fn into_policy(self) -> CachePolicy {
        CachePolicy {
            tags: self.tags.into_iter().map(|(t, _)| t).collect(),
            ..self.policy
        }
    }
}

fn cache_policy(p: toml::Spanned<raw::RawCachePolicy>) -> Result<ParsedPolicy, Invalid> {
    let at = p.span().start;
    let p = p.into_inner();
    let respect_origin = p.respect_origin.unwrap_or(false);
    if p.ttl.is_none() && !respect_origin {
        return Err((
            at,
            "a cache policy needs `ttl` or `respect_origin = true` (or both)".into(),
        ));
    }
    if p.heuristic == Some(true) && !respect_origin {
        return Err((
            at,
            "`heuristic` applies only with `respect_origin = true`".into(),
        ));
    }
    let mut key = Vec::new();
    for k in p.key.unwrap_or_default() {
        key.push(KeyPart::parse(&k.get_ref().0).map_err(|e| (k.span().start, e.to_string()))?);
    }
    let mut statuses = Vec::new();
    for s in p.statuses.unwrap_or_default() {
        let code = *s.get_ref();
        if !(200..600).contains(&code) {
            return Err((s.span().start, format!("{code} is not a final HTTP status")));
        }
        statuses.push(code);
    }
    if statuses.is_empty() {
        statuses = DEFAULT_STATUSES.to_vec();
    }
    let mut tags = Vec::new();
    for t in p.tags.unwrap_or_default() {
        let at = t.span().start;
        tags.push((super::common::template(&t)?, at));
    }
    let keyed_cookies: Vec<String> = key
        .iter()
        .filter_map(|k| match k {
            KeyPart::Cookie(name) => Some(name.clone()),
            KeyPart::Header(_) => None,
        })
        .collect();
    let whole_cookie_keyed = key
        .iter()
        .any(|k| matches!(k, KeyPart::Header(h) if h == http::header::COOKIE));
    let cookies = match p.cookies {
        None if whole_cookie_keyed => CookiePolicy::Ignore,
        None if !keyed_cookies.is_empty() => CookiePolicy::Key(keyed_cookies),
        None if p.ttl.is_some() => CookiePolicy::Bypass,
        None => CookiePolicy::Ignore,
        Some(c) => {
            let at = c.span().start;
            match c.into_inner() {
                raw::TextOrList::Text(mode) => match mode.as_str() {
                    "bypass" => CookiePolicy::Bypass,
                    "ignore" => CookiePolicy::Ignore,
                    other => return Err((at, format!("unknown cookies mode {other:?}: use \"bypass\", \"ignore\" or a list of cookie names to key on"))),
                },
                raw::TextOrList::List(names) => {
                    if let Some(bad) = names.iter().find(|n| n.trim().is_empty() || n.contains([';', '=', ' '])) {
                        return Err((at, format!("invalid cookie name {bad:?}")));
                    }
                    for name in &names {
                        if !key.iter().any(|k| matches!(k, KeyPart::Cookie(n) if n == name)) {
                            key.push(KeyPart::Cookie(name.clone()));
                        }
                    }
                    CookiePolicy::Key(names)
                }
            }
        }
    };
    let set_cookie = match p
        .set_cookie
        .as_ref()
        .map(|s| (s.span().start, s.get_ref().0.as_str()))
    {
        None | Some((_, "refuse")) => SetCookiePolicy::Refuse,
        Some((_, "strip")) => SetCookiePolicy::Strip,
        Some((at, other)) => {
            return Err((
                at,
                format!("unknown set_cookie mode {other:?}: use \"refuse\" or \"strip\""),
            ))
        }
    };
    let authorization = match p
        .authorization
        .as_ref()
        .map(|s| (s.span().start, s.get_ref().0.as_str()))
    {
        None | Some((_, "bypass")) => AuthorizationPolicy::Bypass,
        Some((_, "follow-origin")) => AuthorizationPolicy::FollowOrigin,
        Some((at, other)) => {
            return Err((
                at,
                format!(
                    "unknown authorization mode {other:?}: use \"bypass\" or \"follow-origin\""
                ),
            ))
        }
    };
    Ok(ParsedPolicy {
        policy: CachePolicy {
            ttl: p.ttl.map(|d| d.0),
            respect_origin,
            heuristic: p.heuristic.unwrap_or(false),
            stale_while_revalidate: p.stale_while_revalidate.map_or(Duration::ZERO, |d| d.0),
            stale_if_error: p.stale_if_error.map_or(Duration::ZERO, |d| d.0),
            key,
            statuses,
            tags: Vec::new(),
            refresh_ahead: p.refresh_ahead.map_or(Duration::ZERO, |d| d.0),
            cookies,
            set_cookie,
            authorization,
            keep_stale: p.keep_stale.map_or(DEFAULT_KEEP_STALE, |d| d.0),
            ignore_must_revalidate: p.ignore_must_revalidate.unwrap_or(false),
        },
        tags,
    })
}
