//! A fill: the request to the origin made for the cache, conditional when a
//! stale entry exists, and what becomes of the answer. Each step is one
//! function below; the decisions in them are `rampart_cache::fill`'s pure
//! functions. The outcome is published to the coalesced followers.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::{Response, StatusCode};
use rampart_cache::fill::{decide_store, freshen, stale_fallback, OriginFailure};
use rampart_cache::freshness::{decide, initial_age};
use rampart_cache::{CacheStatus, Entry, Fill};

use crate::body::Body;
use crate::cache_ctx::{CacheCtx, FillJob};
use crate::error::GatewayError;
use crate::request::RequestHead;
use crate::store::{store, stored_headers, Storable};

/// Fetches from the origin for the cache and answers the request.
pub async fn fill(
    ctx: CacheCtx<'_>,
    head: &RequestHead,
    mut job: FillJob,
) -> Result<(Response<Body>, CacheStatus), GatewayError> {
    let identity = ctx.tiers.compression.enabled && ctx.route.config.compress;
    let req = crate::forward::for_cache(head, job.stale.as_deref(), identity);
    let request_time = ctx.tiers.now();
    let result = ctx.upstreams.send(&ctx.route.config, req).await;
    let response_time = ctx.tiers.now();

    let resp = match result {
        Err(e) => {
            job.finish(Fill::NotStored);
            let answer = e
                .origin_failure()
                .and_then(|failure| fall_back(ctx, head, &job, failure, response_time));
            return match answer {
                Some(answer) => Ok(answer),
                // A copy that must be revalidated and an origin that cannot
                // be asked: 504, never the copy (RFC 9111 §5.2.2.2).
                None if must_revalidate(ctx, &job) => Err(GatewayError::MustRevalidate {
                    upstream: ctx.upstreams.pools()[ctx.route.config.upstream]
                        .name
                        .clone(),
                }),
                None => Err(e),
            };
        }
        Ok(resp) if resp.status().is_server_error() => {
            match fall_back(ctx, head, &job, OriginFailure::ServerError, response_time) {
                Some(answer) => {
                    job.finish(Fill::NotStored);
                    return Ok(answer);
                }
                None => resp,
            }
        }
        Ok(resp) => resp,
    };
    let age = initial_age(resp.headers(), request_time, response_time);
    if resp.status() == StatusCode::NOT_MODIFIED {
        if let Some(old) = job.stale.clone() {
            return Ok(revalidated(ctx, head, job, &old, &resp, age, response_time));
        }
    }
    let decision = decide_store(
        ctx.policy,
        resp.status().as_u16(),
        resp.headers(),
        age,
        authorized(ctx, head),
        ctx.tiers.settings.max_object_size,
    );
    match decision {
        Err(reason) => {
            job.finish(Fill::NotStored);
            let status = job.forwarded(resp.status(), false, Some(reason));
            Ok((ctx.relay(head, resp, &status), status))
        }
        Ok(freshness) => {
            let storable = Storable {
                freshness,
                initial_age: age,
                response_time,
            };
            store(ctx, head, job, resp, storable).await
        }
    }
}

/// Whether the request carries an `Authorization` its route's key does not
/// hold (it got here following the origin's say).
fn authorized(ctx: CacheCtx<'_>, head: &RequestHead) -> bool {
    head.headers.contains_key(AUTHORIZATION) && !ctx.policy.keys_on_authorization()
}

/// Whether the fill's stale entry may never be served stale.
fn must_revalidate(ctx: CacheCtx<'_>, job: &FillJob) -> bool {
    job.stale
        .as_ref()
        .is_some_and(|e| e.freshness.must_revalidate && !ctx.policy.ignore_must_revalidate)
}

/// The stale entry's answer for an origin that failed, when it may give one.
fn fall_back(
    ctx: CacheCtx<'_>,
    head: &RequestHead,
    job: &FillJob,
    failure: OriginFailure,
    now: SystemTime,
) -> Option<(Response<Body>, CacheStatus)> {
    let entry = job.stale.as_ref()?;
    let reason = stale_fallback(entry, failure, now, ctx.policy.ignore_must_revalidate)?;
    let status = CacheStatus::Stale {
        ttl: entry.ttl_secs(now),
        reason,
    };
    Some((ctx.answer_stored(entry, head, &status), status))
}

/// 304 to the fill's conditional: the stale entry is fresh again with the
/// new headers (RFC 9111 §4.3.4); if those now forbid storing, it is served
/// once and dropped.
fn revalidated(
    ctx: CacheCtx<'_>,
    head: &RequestHead,
    mut job: FillJob,
    old: &Entry,
    resp: &Response<Body>,
    age: std::time::Duration,
    response_time: SystemTime,
) -> (Response<Body>, CacheStatus) {
    let headers = freshen(&old.headers, &stored_headers(resp.headers(), ctx.policy));
    let decision = decide(
        ctx.policy,
        old.status.as_u16(),
        &headers,
        age,
        authorized(ctx, head),
    );
    let (entry, status) = match decision {
        Ok(freshness) => {
            let entry = ctx.tiers.store(
                &job.key,
                Entry {
                    headers,
                    response_time,
                    initial_age: age,
                    freshness,
                    ..old.clone()
                },
            );
            job.finish(Fill::Stored(Arc::clone(&entry)));
            (entry, job.forwarded(StatusCode::NOT_MODIFIED, true, None))
        }
        Err(reason) => {
            ctx.tiers.l1.purge_key(&job.key);
            job.finish(Fill::NotStored);
            let entry = Arc::new(Entry {
                headers,
                ..old.clone()
            });
            (
                entry,
                job.forwarded(StatusCode::NOT_MODIFIED, false, Some(reason)),
            )
        }
    };
    (ctx.answer_stored(&entry, head, &status), status)
}
