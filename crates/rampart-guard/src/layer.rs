//! The guards as `tower` layers, for any tower or axum service over
//! `http::Request`/`http::Response`: [`RateLimitLayer`], [`CircuitBreakerLayer`]
//! and [`AdmissionLayer`]. Each answers refusals itself with an
//! `application/problem+json` response (429 or 503, with `Retry-After`), so
//! the service's error type is untouched; the response body type only needs
//! `From<String>` (axum's `Body`, `Full<Bytes>`, `String` all qualify).
//!
//! ```
//! use std::time::Duration;
//! use rampart_guard::gcra::Limit;
//! use rampart_core::SystemClock;
//! use rampart_guard::layer::RateLimitLayer;
//!
//! // 60 per minute per API key; requests without the header are not counted.
//! let layer = RateLimitLayer::new(
//!     Limit::new(60, Duration::from_secs(60)),
//!     100_000,
//!     |req: &http::Request<String>| {
//!         req.headers().get("x-api-key")?.to_str().ok().map(str::to_string)
//!     },
//!     SystemClock,
//! );
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::admission::{Admission, Settings as AdmissionSettings};
use crate::breaker::{Breaker, Settings as BreakerSettings};
use crate::gcra::{Decision, Limit, Table};
use rampart_core::units::ceil_secs;
use rampart_core::{Clock, Problem};

/// A boxed response future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A problem+json refusal with `Retry-After`.
fn refusal<B: From<String>>(
    status: StatusCode,
    slug: &'static str,
    detail: &str,
    retry_after: Duration,
) -> Response<B> {
    Problem::new(status, slug, detail)
        .retry_after(Some(retry_after))
        .response()
}

// ---------------------------------------------------------------- rate limit

struct LimitState<K> {
    limit: Limit,
    table: Mutex<Table<String>>,
    key: K,
    clock: Arc<dyn Clock>,
    policy: HeaderValue,
}

/// Rate-limits requests per key (GCRA, bounded key table); refusals are 429
/// with `Retry-After`, `RateLimit-Policy` and `RateLimit`; allowed responses
/// carry `RateLimit-Policy` and `RateLimit` too.
pub struct RateLimitLayer<K> {
    state: Arc<LimitState<K>>,
}

impl<K> Clone for RateLimitLayer<K> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<K> RateLimitLayer<K> {
    /// `limit` per key, at most `max_keys` keys tracked; `key` names the
    /// client of a request (`None`: not counted).
    pub fn new(limit: Limit, max_keys: usize, key: K, clock: impl Clock) -> Self {
        let policy = format!("q={};w={}", limit.rate, limit.period.as_secs().max(1));
        Self {
            state: Arc::new(LimitState {
                limit,
                table: Mutex::new(Table::new(max_keys)),
                key,
                clock: Arc::new(clock),
                policy: HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
            }),
        }
    }
}

impl<S, K> Layer<S> for RateLimitLayer<K> {
    type Service = RateLimit<S, K>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// The service of [`RateLimitLayer`].
pub struct RateLimit<S, K> {
    inner: S,
    state: Arc<LimitState<K>>,
}

impl<S: Clone, K> Clone for RateLimit<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<S, K, ReqB, ResB> Service<Request<ReqB>> for RateLimit<S, K>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    K: Fn(&Request<ReqB>) -> Option<String> + Send + Sync + 'static,
    S::Error: Send + 'static,
    ResB: From<String> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let st = &self.state;
        let Some(key) = (st.key)(&req) else {
            return Box::pin(self.inner.call(req));
        };
        let decision = st.table.lock().unwrap_or_else(|p| p.into_inner()).check(
            &st.limit,
            &key,
            st.clock.since_epoch(),
        );
        let policy = st.policy.clone();
        let (remaining, reset) = match decision {
            Err(_) => {
                let r = refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limit-table-full",
                    "the rate limiter is tracking as many clients as it may",
                    Duration::from_secs(1),
                );
                return Box::pin(async move { Ok(r) });
            }
            Ok(Decision::Limited { retry_after, reset }) => {
                let mut r = refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    &format!("rate limit exceeded: retry in {}s", ceil_secs(retry_after)),
                    retry_after,
                );
                set_limit_headers(r.headers_mut(), policy, 0, reset);
                return Box::pin(async move { Ok(r) });
            }
            Ok(Decision::Allowed { remaining, reset }) => (remaining, reset),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            set_limit_headers(resp.headers_mut(), policy, remaining, reset);
            Ok(resp)
        })
    }
}

fn set_limit_headers(
    h: &mut http::HeaderMap,
    policy: HeaderValue,
    remaining: u32,
    reset: Duration,
) {
    h.insert("ratelimit-policy", policy);
    if let Ok(v) = HeaderValue::from_str(&format!("r={remaining};t={}", ceil_secs(reset))) {
        h.insert("ratelimit", v);
    }
}

// ----------------------------------------------------------- circuit breaker

/// A circuit breaker around a service: 5xx responses and errors are
/// failures; while open, requests get 503 with `Retry-After` at once.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    breaker: Arc<Mutex<Breaker>>,
    clock: Arc<dyn Clock>,
}

impl CircuitBreakerLayer {
    /// A closed breaker with `settings`.
    pub fn new(settings: BreakerSettings, clock: impl Clock) -> Self {
        Self {
            breaker: Arc::new(Mutex::new(Breaker::new(settings))),
            clock: Arc::new(clock),
        }
    }

    /// The breaker's state now.
    pub fn state(&self) -> crate::breaker::State {
        self.breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state(self.clock.since_epoch())
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service of [`CircuitBreakerLayer`].
#[derive(Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    guard: CircuitBreakerLayer,
}

/// Gives a probe slot back when a request is dropped before its outcome.
struct Outcome {
    guard: Option<CircuitBreakerLayer>,
}

impl Outcome {
    fn record(mut self, success: bool) {
        if let Some(g) = self.guard.take() {
            let now = g.clock.since_epoch();
            g.breaker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(now, success);
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            g.breaker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .release();
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CircuitBreaker<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: From<String> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let now = self.guard.clock.since_epoch();
        let allowed = self
            .guard
            .breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(now);
        if let Err(refused) = allowed {
            let r = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit-open",
                "the service is failing; its circuit is open",
                refused.retry_after,
            );
            return Box::pin(async move { Ok(r) });
        }
        let outcome = Outcome {
            guard: Some(self.guard.clone()),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            outcome.record(matches!(&result, Ok(r) if !r.status().is_server_error()));
            result
        })
    }
}

// ----------------------------------------------------------------- admission

/// Admission control: at most `max_concurrency` requests in the inner
/// service at once, the others waiting in a bounded queue released in
/// weighted order of their class (from `classify`, 0 the most important);
/// shed or timed-out requests get 503 with `Retry-After: 1`. A slot is held
/// until the inner service's response future completes.
pub struct AdmissionLayer<P> {
    admission: Arc<Admission>,
    classify: Arc<P>,
    timeout: Duration,
}

impl<P> Clone for AdmissionLayer<P> {
    fn clone(&self) -> Self {
        Self {
            admission: Arc::clone(&self.admission),
            classify: Arc::clone(&self.classify),
            timeout: self.timeout,
        }
    }
}

impl<P> AdmissionLayer<P> {
    /// Admission with one class per weight (most important first).
    pub fn new(settings: AdmissionSettings, weights: &[u32], classify: P) -> Self {
        Self {
            admission: Admission::new(settings, weights),
            classify: Arc::new(classify),
            timeout: settings.queue_timeout,
        }
    }

    /// The shared admission state (depths, slots in use).
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }
}

impl<S, P> Layer<S> for AdmissionLayer<P> {
    type Service = Admitted<S, P>;
    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AdmissionLayer`].
pub struct Admitted<S, P> {
    inner: S,
    layer: AdmissionLayer<P>,
}

impl<S: Clone, P> Clone for Admitted<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, P, ReqB, ResB> Service<Request<ReqB>> for Admitted<S, P>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: Fn(&Request<ReqB>) -> usize + Send + Sync + 'static,
    ReqB: Send + 'static,
    S::Error: Send + 'static,
    ResB: From<String> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is decided by the queue inside the future; the inner
        // service is driven to readiness there.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let class = (self.layer.classify)(&req);
        let admission = Arc::clone(&self.layer.admission);
        let deadline = Instant::now() + self.layer.timeout;
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let permit = match admission.acquire(class, deadline).await {
                Ok(p) => p,
                Err(shed) => {
                    return Ok(refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "shed",
                        &format!(
                            "the service is saturated; the request was shed ({})",
                            shed.as_str()
                        ),
                        Duration::from_secs(1),
                    ))
                }
            };
            std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
            let result = inner.call(req).await;
            drop(permit);
            result
        })
    }
}
