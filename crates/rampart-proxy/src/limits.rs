//! Per-route rate limits in the request path: GCRA state per key (from
//! `rampart-guard`), the IETF `RateLimit-Policy` / `RateLimit` headers, and
//! 429 when any limit of the route says so.
//!
//! A request whose key is empty (no such header, cookie or parameter) is not
//! counted against that limit, as with nginx's `limit_req`.
//!
//! A limit with `scope = "cluster"` is counted in Redis (one script call),
//! exact across every node; when Redis fails or is slow the same limit is
//! counted locally for that request (so each node then allows at most the
//! limit on its own), and `rampart_redis_errors_total{op="rate-limit"}` says so.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use rampart_cluster::rate_limit::ClusterGcra;
use rampart_cluster::{Op, Redis};
use rampart_config::{LimitConfig, LimitKey, RouteConfig};
use rampart_core::units::ceil_secs;
use rampart_core::Clock;
use rampart_guard::gcra::{Decision, Limit, Table};

use crate::outcome::LimitRefusal;
use crate::request::RequestHead;

const SHARDS: usize = 16;

/// One limit of one route.
pub struct Limiter {
    /// Its settings.
    pub config: LimitConfig,
    limit: Limit,
    shards: Vec<Mutex<Table<String>>>,
}

/// What the limits of a route decided.
pub enum Verdict {
    /// Allowed; the headers to add to the response (none without limits).
    Allowed(Option<(HeaderValue, HeaderValue)>),
    /// Refused by the named limit.
    Refused {
        /// The limit's name.
        limit: String,
        /// Why.
        why: LimitRefusal,
        /// Time until a request would be allowed.
        retry_after: Duration,
        /// `RateLimit-Policy` and `RateLimit`, when over the allowance.
        headers: Option<(HeaderValue, HeaderValue)>,
    },
}

impl Limiter {
    fn new(config: &LimitConfig, max_keys: usize) -> Self {
        let limit = Limit {
            rate: config.rate,
            period: config.period,
            burst: config.burst,
        };
        let per_shard = max_keys.div_ceil(SHARDS).max(1);
        Self {
            config: config.clone(),
            limit,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Table::new(per_shard)))
                .collect(),
        }
    }

    fn key(&self, head: &RequestHead, client: IpAddr, route: &RouteConfig) -> Option<String> {
        let value = match &self.config.key {
            LimitKey::Ip => Some(client.to_string()),
            LimitKey::Header(name) => head
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            LimitKey::Cookie(name) => rampart_cache::key::cookie(&head.headers, name),
            LimitKey::Param(name) => {
                route
                    .matcher
                    .path
                    .matches(head.uri.path())
                    .and_then(|params| {
                        params
                            .into_iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, v)| v.to_string())
                    })
            }
        };
        value.filter(|v| !v.is_empty())
    }
}

/// The limiters of every route, indexed like the routes, each route with its
/// `RateLimit-Policy` value (fixed by the config, so made once).
pub struct Limiters {
    routes: Vec<(Vec<Arc<Limiter>>, HeaderValue)>,
    /// Route names, to find a route's limiters again on a reload.
    names: Vec<String>,
    max_keys: usize,
    cluster: ClusterGcra,
}

impl Limiters {
    /// Builds the limiters of every route. With `prev` (a reload), a limit
    /// defined the same way on a route of the same name keeps its counts.
    pub fn new(routes: &[RouteConfig], max_keys: usize, prev: Option<&Limiters>) -> Self {
        let kept = |route: &str, limit: &LimitConfig| {
            let p = prev.filter(|p| p.max_keys == max_keys)?;
            let i = p.names.iter().position(|n| n == route)?;
            p.routes[i]
                .0
                .iter()
                .find(|l| l.config == *limit)
                .map(Arc::clone)
        };
        Self {
            names: routes.iter().map(|r| r.name.clone()).collect(),
            max_keys,
            routes: routes
                .iter()
                .map(|r| {
                    let policy: Vec<String> = r
                        .limits
                        .iter()
                        .map(|l| {
                            format!(
                                "\"{}\";q={};w={}",
                                l.name,
                                l.rate,
                                l.period.as_secs().max(1)
                            )
                        })
                        .collect();
                    let limiters = r
                        .limits
                        .iter()
                        .map(|l| {
                            kept(&r.name, l).unwrap_or_else(|| Arc::new(Limiter::new(l, max_keys)))
                        })
                        .collect();
                    (limiters, header(&policy.join(", ")))
                })
                .collect(),
            cluster: ClusterGcra::new(),
        }
    }

    /// Checks every limit of a route for one request at the time `clock`
    /// gives (read only when the route has limits); cluster limits in `redis`.
    pub async fn check(
        &self,
        route_index: usize,
        route: &RouteConfig,
        head: &RequestHead,
        client: IpAddr,
        clock: &dyn Clock,
        redis: Option<&Redis>,
    ) -> Verdict {
        let (limiters, policy) = &self.routes[route_index];
        if limiters.is_empty() {
            return Verdict::Allowed(None);
        }
        let now = clock.since_epoch();
        let mut tightest: Option<(&str, u32, Duration)> = None;
        for limiter in limiters {
            let cfg = &limiter.config;
            let Some(key) = limiter.key(head, client, route) else {
                continue;
            };
            let mut counted = None;
            if let (true, Some(redis)) = (cfg.cluster, redis) {
                let redis_key = redis.key("rl", &[&route.name, &cfg.name], &key);
                let (gcra, limit) = (&self.cluster, &limiter.limit);
                counted = redis
                    .run(Op::RateLimit, |mut conn| async move {
                        gcra.check(&mut conn, limit, &redis_key).await
                    })
                    .await
                    .map(Ok);
            }
            let decision = match counted {
                Some(d) => d,
                None => limiter.shards[shard_of(&key)]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .check(&limiter.limit, &key, now),
            };
            match decision {
                Err(_) => {
                    return Verdict::Refused {
                        limit: cfg.name.clone(),
                        why: LimitRefusal::TableFull,
                        retry_after: Duration::from_secs(1),
                        headers: None,
                    }
                }
                Ok(Decision::Limited { retry_after, reset }) => {
                    let state = format!("\"{}\";r=0;t={}", cfg.name, ceil_secs(reset));
                    return Verdict::Refused {
                        limit: cfg.name.clone(),
                        why: LimitRefusal::Limited,
                        retry_after,
                        headers: Some((policy.clone(), header(&state))),
                    };
                }
                Ok(Decision::Allowed { remaining, reset }) => {
                    if tightest.is_none_or(|(_, r, _)| remaining < r) {
                        tightest = Some((&cfg.name, remaining, reset));
                    }
                }
            }
        }
        match tightest {
            None => Verdict::Allowed(None),
            Some((name, r, t)) => Verdict::Allowed(Some((
                policy.clone(),
                header(&format!("\"{name}\";r={r};t={}", ceil_secs(t))),
            ))),
        }
    }
}

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn shard_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) % SHARDS
}
