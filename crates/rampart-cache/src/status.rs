//! Cache outcomes. One value per request feeds the `Cache-Status` header
//! (RFC 9211), the metric label and the access log, so no string is invented
//! twice.

/// Why a response was not served from, or stored in, the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoCacheReason {
    /// The route has no cache policy.
    NoPolicy,
    /// The method is not cacheable (only GET and HEAD are).
    Method,
    /// The request carried `Authorization` and the route does not key on it
    /// (or, following the origin, the response did not say it may be shared).
    Authorization,
    /// The request carried cookies and the route bypasses such requests.
    Cookie,
    /// The request asked for a range of a response not stored.
    Range,
    /// The response said `Cache-Control: no-store` (or the request did).
    NoStore,
    /// The response said `Cache-Control: private`.
    Private,
    /// The response set a cookie and the route does not key on credentials.
    SetCookie,
    /// The response said `Vary: *`.
    VaryStar,
    /// The status is not stored under this policy.
    Status,
    /// The origin gave no freshness and the route has no `ttl`.
    NoFreshness,
    /// The body is larger than `max_object_size`.
    TooLarge,
    /// The response body failed mid-way.
    BodyError,
}

impl NoCacheReason {
    /// Stable label for headers, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NoCacheReason::NoPolicy => "no-policy",
            NoCacheReason::Method => "method",
            NoCacheReason::Authorization => "authorization",
            NoCacheReason::Cookie => "cookie",
            NoCacheReason::Range => "range",
            NoCacheReason::NoStore => "no-store",
            NoCacheReason::Private => "private",
            NoCacheReason::SetCookie => "set-cookie",
            NoCacheReason::VaryStar => "vary-star",
            NoCacheReason::Status => "status",
            NoCacheReason::NoFreshness => "no-freshness",
            NoCacheReason::TooLarge => "too-large",
            NoCacheReason::BodyError => "body-error",
        }
    }
}

/// Why a stale response was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaleReason {
    /// Within `stale_while_revalidate`; one background request refreshes it.
    WhileRevalidate,
    /// Within `stale_if_error`; the origin failed or answered 5xx.
    IfError,
    /// The upstream's circuit breaker is open: any stored copy is served.
    CircuitOpen,
    /// No target of the upstream passes its health checks: any stored copy
    /// is served.
    NoHealthyTarget,
}

impl StaleReason {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::WhileRevalidate => "stale-while-revalidate",
            StaleReason::IfError => "stale-if-error",
            StaleReason::CircuitOpen => "circuit-open",
            StaleReason::NoHealthyTarget => "no-healthy-target",
        }
    }
}

/// Why the request went forward to the origin (RFC 9211 `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// Nothing stored for the URL.
    UriMiss,
    /// Something stored for the URL, but not for this request's `Vary` values.
    VaryMiss,
    /// A stale entry was revalidated.
    Stale,
    /// The cache was not consulted (route policy).
    Bypass,
    /// The method is not cacheable.
    Method,
    /// Something in the request prevented caching.
    Request,
}

impl Forward {
    /// The RFC 9211 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Stale => "stale",
            Forward::Bypass => "bypass",
            Forward::Method => "method",
            Forward::Request => "request",
        }
    }
}

/// The cache tier a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// This node's memory (L1).
    Memory,
    /// The Redis tier shared by every node (L2); the entry was then promoted
    /// to memory.
    Shared,
}

impl Tier {
    /// Stable label: `l1` or `l2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "l1",
            Tier::Shared => "l2",
        }
    }
}

/// What the cache did for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served fresh from the cache.
    Hit {
        /// Seconds of freshness left.
        ttl: i64,
        /// Where it was found.
        tier: Tier,
    },
    /// Served stale from the cache.
    Stale {
        /// Seconds of freshness left (negative).
        ttl: i64,
        /// Why stale content was acceptable.
        reason: StaleReason,
    },
    /// Went forward to the origin.
    Forward {
        /// Why.
        fwd: Forward,
        /// The origin's status, when it answered.
        fwd_status: Option<u16>,
        /// Whether the response was stored.
        stored: bool,
        /// Why it was not stored or looked up, when that is the point.
        reason: Option<NoCacheReason>,
    },
    /// Waited for a concurrent identical request and reused its response.
    Collapsed {
        /// The origin's status for the shared request.
        fwd_status: u16,
    },
}

impl CacheStatus {
    /// Label for the cache-result metric: `hit`, `stale`, `collapsed`,
    /// `revalidated`, `miss`, `bypass` or `uncacheable`.
    pub fn label(&self) -> &'static str {
        match self {
            CacheStatus::Hit { .. } => "hit",
            CacheStatus::Stale { .. } => "stale",
            CacheStatus::Collapsed { .. } => "collapsed",
            CacheStatus::Forward {
                fwd: Forward::Stale,
                ..
            } => "revalidated",
            CacheStatus::Forward {
                fwd: Forward::Bypass | Forward::Method | Forward::Request,
                ..
            } => "bypass",
            CacheStatus::Forward {
                stored: false,
                reason: Some(_),
                ..
            } => "uncacheable",
            CacheStatus::Forward { .. } => "miss",
        }
    }

    /// Whether the client was answered without a request to the origin.
    pub fn is_hit(&self) -> bool {
        matches!(
            self,
            CacheStatus::Hit { .. } | CacheStatus::Stale { .. } | CacheStatus::Collapsed { .. }
        )
    }

    /// The tier a cached answer came from; stale copies are always served
    /// from memory. `None` when the origin answered.
    pub fn tier(&self) -> Option<Tier> {
        match self {
            CacheStatus::Hit { tier, .. } => Some(*tier),
            CacheStatus::Stale { .. } => Some(Tier::Memory),
            _ => None,
        }
    }

    /// The reason attached, if any.
    pub fn reason(&self) -> Option<NoCacheReason> {
        match self {
            CacheStatus::Forward { reason, .. } => *reason,
            _ => None,
        }
    }

    /// The `Cache-Status` header value, with `name` as the cache's name
    /// (written on every response: no formatting machinery).
    pub fn header_value(&self, name: &str) -> String {
        let mut out = String::with_capacity(48);
        out.push_str(name);
        match self {
            CacheStatus::Hit { ttl, tier } => {
                out.push_str("; hit; ttl=");
                out.push_str(itoa::Buffer::new().format(*ttl));
                if *tier == Tier::Shared {
                    out.push_str("; detail=l2");
                }
            }
            CacheStatus::Stale { ttl, reason } => {
                out.push_str("; hit; ttl=");
                out.push_str(itoa::Buffer::new().format(*ttl));
                out.push_str("; detail=");
                out.push_str(reason.as_str());
            }
            CacheStatus::Collapsed { fwd_status } => {
                out.push_str("; fwd=uri-miss; fwd-status=");
                out.push_str(itoa::Buffer::new().format(*fwd_status));
                out.push_str("; collapsed");
            }
            CacheStatus::Forward {
                fwd,
                fwd_status,
                stored,
                reason,
            } => {
                out.push_str("; fwd=");
                out.push_str(fwd.as_str());
                if let Some(s) = fwd_status {
                    out.push_str("; fwd-status=");
                    out.push_str(itoa::Buffer::new().format(*s));
                }
                if *stored {
                    out.push_str("; stored");
                }
                if let Some(r) = reason {
                    out.push_str("; detail=");
                    out.push_str(r.as_str());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_follow_rfc_9211() {
        let hit = CacheStatus::Hit {
            ttl: 42,
            tier: Tier::Memory,
        };
        assert_eq!(hit.header_value("rampart"), "rampart; hit; ttl=42");
        assert_eq!(hit.tier(), Some(Tier::Memory));
        let shared = CacheStatus::Hit {
            ttl: 42,
            tier: Tier::Shared,
        };
        assert_eq!(
            shared.header_value("rampart"),
            "rampart; hit; ttl=42; detail=l2"
        );
        assert_eq!(shared.tier(), Some(Tier::Shared));
        let miss = CacheStatus::Forward {
            fwd: Forward::UriMiss,
            fwd_status: Some(200),
            stored: true,
            reason: None,
        };
        assert_eq!(
            miss.header_value("rampart"),
            "rampart; fwd=uri-miss; fwd-status=200; stored"
        );
        assert_eq!(miss.label(), "miss");
        let uncacheable = CacheStatus::Forward {
            fwd: Forward::UriMiss,
            fwd_status: Some(200),
            stored: false,
            reason: Some(NoCacheReason::SetCookie),
        };
        assert_eq!(uncacheable.label(), "uncacheable");
        assert!(uncacheable
            .header_value("rampart")
            .ends_with("detail=set-cookie"));
        let stale = CacheStatus::Stale {
            ttl: -3,
            reason: StaleReason::IfError,
        };
        assert_eq!(
            stale.header_value("rampart"),
            "rampart; hit; ttl=-3; detail=stale-if-error"
        );
        assert!(stale.is_hit());
    }
}
