//! The cache stage of the request path: a GET or HEAD on a cached route is
//! answered from L1 when fresh (or stale within `stale_while_revalidate`,
//! refreshing in the background); otherwise the request joins the fill for
//! its key, so one origin request stands for many: the leader looks in L2,
//! then fills; followers wait (bounded) for the leader's entry.

use std::sync::Arc;

use http::Response;
use rampart_cache::coalesce::wait;
use rampart_cache::{
    CacheStatus, Entry, EntryState, Fill, Forward, Join, Lookup, StaleReason, Tier,
};
use rampart_telemetry::span::STAGE_TARGET;
use tracing::Instrument;

use crate::body::Body;
use crate::cache_ctx::{CacheCtx, FillJob};
use crate::error::GatewayError;
use crate::fill::fill;
use crate::request::RequestHead;

/// Serves a GET/HEAD on a cached route.
pub async fn serve(
    ctx: CacheCtx<'_>,
    head: &RequestHead,
) -> Result<(Response<Body>, CacheStatus), GatewayError> {
    let cache_key = ctx.key(head);
    let now = ctx.tiers.now();
    let looked = lookup_span(Tier::Memory);
    let found = looked.in_scope(|| ctx.tiers.lookup(&cache_key, &head.headers));
    if !looked.is_disabled() {
        looked.record("rampart.cache.result", found_as_str(&found, now));
    }
    drop(looked);
    let (stale, fwd) = match found {
        Lookup::Found(entry) => match entry.state(now) {
            EntryState::Fresh => {
                let left = entry.freshness.lifetime.saturating_sub(entry.age(now));
                if left < ctx.policy.refresh_ahead {
                    // Close to expiry: one background request refreshes it
                    // (coalesced, so once however many hits see this).
                    refresh_in_background(ctx, head, &cache_key, &entry);
                }
                let status = CacheStatus::Hit {
                    ttl: entry.ttl_secs(now),
                    tier: Tier::Memory,
                };
                let response = ctx.answer_at(&cache_key, &entry, head, &status, now).await;
                return Ok((response, status));
            }
            EntryState::StaleWhileRevalidate => {
                // Serve stale now; one background request refreshes it.
                refresh_in_background(ctx, head, &cache_key, &entry);
                let status = CacheStatus::Stale {
                    ttl: entry.ttl_secs(now),
                    reason: StaleReason::WhileRevalidate,
                };
                return Ok((ctx.answer(&cache_key, &entry, head, &status).await, status));
            }
            EntryState::Stale { .. } => (Some(entry), Forward::Stale),
        },
        Lookup::VaryMiss => (None, Forward::VaryMiss),
        Lookup::Miss => (None, Forward::UriMiss),
    };
    match ctx.tiers.coalescer.join(&cache_key) {
        Join::Leader(guard) => {
            // L1 had nothing usable: the shared tier may (one lookup per
            // key at a time, since this is the coalesced leader).
            let mut stale = stale;
            if stale.is_none() {
                let looked = lookup_span(Tier::Shared);
                let shared = ctx
                    .tiers
                    .lookup_shared(&cache_key, &head.headers)
                    .instrument(looked.clone())
                    .await;
                if !looked.is_disabled() {
                    let result = shared
                        .as_ref()
                        .map_or("miss", |entry| entry.state(ctx.tiers.now()).as_str());
                    looked.record("rampart.cache.result", result);
                }
                if let Some(entry) = shared {
                    if entry.state(ctx.tiers.now()) == EntryState::Fresh {
                        guard.finish(Fill::Stored(Arc::clone(&entry)));
                        let status = CacheStatus::Hit {
                            ttl: entry.ttl_secs(ctx.tiers.now()),
                            tier: Tier::Shared,
                        };
                        return Ok((ctx.answer(&cache_key, &entry, head, &status).await, status));
                    }
                    stale = Some(entry);
                }
            }
            // Boxed (here and below): every request's future, moved
            // several times, is then the size of a hit's path, not of a
            // fill's (this function's own: 3,088 bytes before, 904 after;
            // a hit 3 % fewer instructions, docs/benchmarks.md).
            Box::pin(fill(
                ctx,
                head,
                FillJob::new(&cache_key, stale, fwd, Some(guard)),
            ))
            .await
        }
        Join::Follower(rx) => match wait(rx, ctx.tiers.settings.coalesce_timeout)
            .instrument(tracing::debug_span!(target: STAGE_TARGET, "coalesced wait"))
            .await
        {
            Some(Fill::Stored(entry)) if entry.matches(&head.headers) => {
                let status = CacheStatus::Collapsed {
                    fwd_status: entry.status.as_u16(),
                };
                Ok((ctx.answer(&cache_key, &entry, head, &status).await, status))
            }
            // Not stored, abandoned, another variant, or waited too long:
            // go to the origin without holding anyone else up.
            _ => Box::pin(fill(ctx, head, FillJob::new(&cache_key, stale, fwd, None))).await,
        },
    }
}

/// The span of one tier's lookup (exported, or logged at debug), its
/// result recorded when known.
fn lookup_span(tier: Tier) -> tracing::Span {
    tracing::debug_span!(
        target: STAGE_TARGET,
        "cache lookup",
        rampart.cache.tier = tier.as_str(),
        rampart.cache.result = tracing::field::Empty
    )
}

/// What a memory lookup found, as its span records it: the entry's state,
/// or `miss` / `vary-miss`.
fn found_as_str(found: &Lookup, now: std::time::SystemTime) -> &'static str {
    match found {
        Lookup::Found(entry) => entry.state(now).as_str(),
        Lookup::VaryMiss => "vary-miss",
        Lookup::Miss => "miss",
    }
}

/// Refreshes an entry in the background, unless a fill for its key is
/// already in flight (then that one refreshes it: never a stampede).
fn refresh_in_background(
    ctx: CacheCtx<'_>,
    head: &RequestHead,
    cache_key: &str,
    entry: &Arc<Entry>,
) {
    if let Join::Leader(guard) = ctx.tiers.coalescer.join(cache_key) {
        let job = FillJob::new(
            cache_key,
            Some(Arc::clone(entry)),
            Forward::Stale,
            Some(guard),
        );
        let (tiers, upstreams, route) = (
            Arc::clone(ctx.tiers),
            Arc::clone(ctx.upstreams),
            Arc::clone(ctx.route),
        );
        let (policy, head) = (ctx.policy.clone(), head.clone());
        tokio::spawn(async move {
            let ctx = CacheCtx {
                tiers: &tiers,
                upstreams: &upstreams,
                route: &route,
                policy: &policy,
            };
            let _ = fill(ctx, &head, job).await;
        });
    }
}

/// Refetches a URL for the cache now (a warmer): conditionally when a copy
/// is stored, through the coalescer, so it never adds a request to a fill
/// already in flight. Returns whether it ran.
pub async fn warm(ctx: CacheCtx<'_>, head: &RequestHead) -> bool {
    let cache_key = ctx.key(head);
    let Join::Leader(guard) = ctx.tiers.coalescer.join(&cache_key) else {
        return false;
    };
    let stored = match ctx.tiers.l1.lookup(&cache_key, &head.headers) {
        Lookup::Found(entry) => Some(entry),
        _ => None,
    };
    fill(
        ctx,
        head,
        FillJob::new(&cache_key, stored, Forward::Stale, Some(guard)),
    )
    .await
    .is_ok()
}
