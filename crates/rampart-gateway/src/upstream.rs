//! Upstream pools: one keep-alive client per upstream, targets chosen by
//! least requests in flight (power of two choices) or round robin among those
//! that pass active health checks and whose circuit allows, a deadline on
//! every request, and one retry on another target where that is safe.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use rampart_config::{Balance, HealthConfig, UpstreamConfig};
use rampart_guard::breaker::{Breaker, Settings, State};
use rampart_guard::health::{Health, Thresholds};

use crate::body::{boxed, empty, guarded, Body};
use crate::metrics::Metrics;

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("connect to {target} failed: {detail}")]
    Connect {
        /// The target tried.
        target: String,
        /// What failed.
        detail: String,
    },
    /// No response headers within the deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Every target's circuit breaker refused.
    #[error("every target's circuit is open")]
    CircuitOpen {
        /// Time until a target half-opens.
        retry_after: Duration,
    },
    /// Every target fails its active health checks.
    #[error("no target passes its health checks")]
    NoHealthyTarget {
        /// The health check interval: when a target may be back.
        retry_after: Duration,
    },
    /// The exchange failed after connecting.
    #[error("request to {target} failed: {detail}")]
    Failed {
        /// The target tried.
        target: String,
        /// What failed.
        detail: String,
        /// The connection closed before any of the response arrived (as
        /// when the target closes an idle keep-alive connection just as a
        /// request is sent on it).
        closed: bool,
    },
}

/// One target of an upstream and what is known of it.
struct Target {
    authority: Authority,
    /// Requests sent whose response has not ended.
    in_flight: Arc<AtomicUsize>,
    /// The last verdict of active health checks (true without them).
    healthy: AtomicBool,
    health: Mutex<Health>,
    breaker: Option<Mutex<Breaker>>,
    /// Transition counters: to closed, half-open, open.
    transitions: [Counter; 3],
}

impl Target {
    fn breaker_state(&self, now: Duration) -> Option<State> {
        self.breaker
            .as_ref()
            .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).state(now))
    }

    fn count_transition(&self, upstream: &str, from: State, to: State) {
        if from != to {
            self.transitions[to.as_gauge() as usize].inc();
            tracing::warn!(
                upstream,
                target = %self.authority,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker changed state"
            );
        }
    }
}

/// One upstream: its targets and connection pool.
pub struct Upstream {
    /// The upstream's name.
    pub name: String,
    targets: Vec<Target>,
    next: AtomicUsize,
    client: Client<HttpConnector, Body>,
    balance: Balance,
    retry: bool,
    health: Option<HealthConfig>,
    retries: [Counter; 3],
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Holds a target's in-flight count and gives its breaker the outcome, or
/// its probe slot back if the request was abandoned (the client went away)
/// before one was known.
struct Pending<'a> {
    upstream: &'a Upstream,
    target: &'a Target,
    now: Duration,
    recorded: bool,
    in_flight: Option<InFlight>,
}

/// One request counted in a target's in-flight number until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pending<'_> {
    /// Gives the breaker the outcome; returns the in-flight count, to be
    /// held by the response body.
    fn record(mut self, success: bool) -> Option<InFlight> {
        self.recorded = true;
        if let Some(b) = &self.target.breaker {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            let before = b.state(self.now);
            b.record(self.now, success);
            let after = b.state(self.now);
            drop(b);
            self.target
                .count_transition(&self.upstream.name, before, after);
        }
        self.in_flight.take()
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            if let Some(b) = &self.target.breaker {
                b.lock().unwrap_or_else(|p| p.into_inner()).release();
            }
        }
    }
}

/// Whether a method may be sent twice (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

impl Upstream {
    /// Builds the pool for an upstream (targets were validated as
    /// `host:port`), with its counters in `metrics`.
    pub fn new(cfg: &UpstreamConfig, metrics: &Metrics) -> Result<Self, String> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_target)
            .build(connector);
        let settings = cfg.circuit.map(|c| Settings {
            failures: c.failures,
            failure_rate: c.failure_rate,
            window: c.window as usize,
            min_requests: c.min_requests as usize,
            open_for: c.open_for,
            probes: c.probes,
        });
        let targets = cfg
            .targets
            .iter()
            .map(|t| {
                let authority = t
                    .parse::<Authority>()
                    .map_err(|e| format!("target {t:?}: {e}"))?;
                Ok(Target {
                    in_flight: Arc::default(),
                    healthy: AtomicBool::new(true),
                    health: Mutex::new(Health::new()),
                    breaker: settings.map(|s| Mutex::new(Breaker::new(s))),
                    transitions: [State::Closed, State::HalfOpen, State::Open]
                        .map(|s| metrics.circuit_transition(&cfg.name, t, s.as_str())),
                    authority,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            name: cfg.name.clone(),
            targets,
            next: AtomicUsize::new(0),
            client,
            balance: cfg.balance,
            retry: cfg.retry,
            health: cfg.health.clone(),
            retries: ["connect-error", "503", "closed"].map(|r| metrics.retry(&cfg.name, r)),
        })
    }

    /// The targets, as `host:port`.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.authority.as_str())
    }

    /// The active health check settings, if any.
    pub fn health_config(&self) -> Option<&HealthConfig> {
        self.health.as_ref()
    }

    /// Each target's breaker state at `now` (empty without a circuit).
    pub fn breaker_states(&self, now: Duration) -> Vec<(&str, State)> {
        self.targets
            .iter()
            .filter_map(|t| Some((t.authority.as_str(), t.breaker_state(now)?)))
            .collect()
    }

    /// Each target and whether it passes its active health checks (always
    /// true without them).
    pub fn health_states(&self) -> Vec<(&str, bool)> {
        self.targets
            .iter()
            .map(|t| (t.authority.as_str(), t.healthy.load(Ordering::Relaxed)))
            .collect()
    }

    /// Targets taking traffic at `now`: healthy and circuit not open.
    pub fn available(&self, now: Duration) -> usize {
        self.targets
            .iter()
            .filter(|t| {
                t.healthy.load(Ordering::Relaxed) && t.breaker_state(now) != Some(State::Open)
            })
            .count()
    }

    /// Requests awaiting response headers, per target.
    pub fn in_flight(&self) -> Vec<usize> {
        self.targets
            .iter()
            .map(|t| t.in_flight.load(Ordering::Relaxed))
            .collect()
    }

    /// The first target to try: the less busy of two drawn at random, or the
    /// next in turn.
    fn first_choice(&self, eligible: impl Fn(usize) -> bool) -> usize {
        let n = self.targets.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        if self.balance == Balance::RoundRobin || n == 1 {
            return turn % n;
        }
        let a = rand::random_range(0..n);
        let b = (a + 1 + rand::random_range(0..n - 1)) % n;
        match (eligible(a), eligible(b)) {
            (true, false) => a,
            (false, true) => b,
            _ => {
                let load = |i: usize| self.targets[i].in_flight.load(Ordering::Relaxed);
                if load(b) < load(a) {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// Picks a target at `now` (never `exclude`): healthy, and allowed by its
    /// breaker; the first choice, then the others in order.
    fn pick(
        &self,
        now: Duration,
        exclude: Option<usize>,
    ) -> Result<(usize, Pending<'_>), UpstreamError> {
        let n = self.targets.len();
        let eligible =
            |i: usize| Some(i) != exclude && self.targets[i].healthy.load(Ordering::Relaxed);
        // A retry takes the next target without using up a turn.
        let first = match exclude {
            Some(x) => (x + 1) % n,
            None => self.first_choice(eligible),
        };
        let mut soonest: Option<Duration> = None;
        let mut any_healthy = false;
        for k in 0..n {
            let i = (first + k) % n;
            if !eligible(i) {
                continue;
            }
            any_healthy = true;
            let target = &self.targets[i];
            if let Some(b) = &target.breaker {
                let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
                let before = b.state(now);
                let allowed = b.allow(now);
                let after = b.state(now);
                drop(b);
                target.count_transition(&self.name, before, after);
                if let Err(r) = allowed {
                    soonest = Some(soonest.map_or(r.retry_after, |s| s.min(r.retry_after)));
                    continue;
                }
            }
            target.in_flight.fetch_add(1, Ordering::Relaxed);
            return Ok((
                i,
                Pending {
                    upstream: self,
                    target,
                    now,
                    recorded: false,
                    in_flight: Some(InFlight(Arc::clone(&target.in_flight))),
                },
            ));
        }
        if any_healthy || self.health.is_none() {
            Err(UpstreamError::CircuitOpen {
                retry_after: soonest.unwrap_or_default(),
            })
        } else {
            Err(UpstreamError::NoHealthyTarget {
                retry_after: self.health.as_ref().map_or(Duration::ZERO, |h| h.interval),
            })
        }
    }

    /// Sends a request to a target chosen as the balance says; `req`'s URI
    /// needs only a path and query. Fails with [`UpstreamError::Timeout`]
    /// when the response headers do not arrive within `timeout`. `now` is the
    /// breakers' clock. A 5xx, a connect error or a timeout counts as a
    /// failure for the target's breaker; anything else as a success.
    ///
    /// An idempotent request without a body is sent once more (when
    /// `retry` is on and time is left): to another target after a connect
    /// error or a 503; to another target, or the same one on a new
    /// connection, after the connection closed before any of the response
    /// arrived. Never after a timeout, since the first target may have acted
    /// on it.
    pub async fn send(
        &self,
        req: Request<Body>,
        timeout: Duration,
        now: Duration,
    ) -> Result<Response<Body>, UpstreamError> {
        let deadline = Instant::now() + timeout;
        let replay =
            (self.retry && idempotent(req.method()) && req.body().is_end_stream()).then(|| {
                (
                    req.method().clone(),
                    req.uri().clone(),
                    req.headers().clone(),
                )
            });
        let (first, pending) = self.pick(now, None)?;
        let result = self.exchange(first, pending, req, timeout).await;
        let reason = match &result {
            Err(UpstreamError::Connect { .. }) => 0,
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => 1,
            Err(UpstreamError::Failed { closed: true, .. }) => 2,
            _ => return result,
        };
        let Some((method, uri, headers)) = replay else {
            return result;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return result;
        }
        // A closed connection says nothing against its target: with no
        // other, the same one is asked again (on a new connection).
        let exclude = (reason != 2 || self.targets.len() > 1).then_some(first);
        let Ok((second, pending)) = self.pick(now, exclude) else {
            return result;
        };
        drop(result);
        self.retries[reason].inc();
        let mut again = Request::new(empty());
        *again.method_mut() = method;
        *again.uri_mut() = uri;
        *again.headers_mut() = headers;
        self.exchange(second, pending, again, left).await
    }

    async fn exchange(
        &self,
        index: usize,
        pending: Pending<'_>,
        mut req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, UpstreamError> {
        let target = &self.targets[index].authority;
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(target.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = Uri::from_parts(parts).map_err(|e| UpstreamError::Failed {
            target: target.to_string(),
            detail: e.to_string(),
            closed: false,
        })?;
        let result = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(timeout)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect {
                target: target.to_string(),
                detail: error_chain(&e),
            }),
            Ok(Err(e)) => Err(UpstreamError::Failed {
                target: target.to_string(),
                detail: error_chain(&e),
                closed: closed_before_response(&e),
            }),
        };
        let in_flight = pending.record(matches!(&result, Ok(r) if !r.status().is_server_error()));
        result.map(|r| r.map(|b| guarded(boxed(b), in_flight)))
    }

    /// Checks every target once (GET of the health path; 2xx and 3xx pass)
    /// and updates their health. Does nothing without `health`.
    pub async fn check_health(&self) {
        let Some(cfg) = &self.health else { return };
        let thresholds = Thresholds {
            healthy_after: cfg.healthy_after,
            unhealthy_after: cfg.unhealthy_after,
        };
        let checks = self.targets.iter().map(|t| async move {
            let uri = format!("http://{}{}", t.authority, cfg.path);
            let mut req = Request::new(empty());
            *req.uri_mut() = match uri.parse() {
                Ok(u) => u,
                Err(_) => return (t, false),
            };
            req.headers_mut().insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static("rampart-health-check"),
            );
            let passed = match tokio::time::timeout(cfg.timeout, self.client.request(req)).await {
                Ok(Ok(resp)) => {
                    let ok = resp.status().is_success() || resp.status().is_redirection();
                    // Read the body so that the connection can be reused.
                    let _ = tokio::time::timeout(
                        cfg.timeout,
                        http_body_util::BodyExt::collect(resp.into_body()),
                    )
                    .await;
                    ok
                }
                _ => false,
            };
            (t, passed)
        });
        for (t, passed) in futures_util::future::join_all(checks).await {
            let change = t
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(passed, thresholds);
            if let Some(healthy) = change {
                t.healthy.store(healthy, Ordering::Relaxed);
                if healthy {
                    tracing::info!(upstream = %self.name, target = %t.authority, "target passes its health checks again");
                } else {
                    tracing::warn!(upstream = %self.name, target = %t.authority, "target failed its health checks; taken out");
                }
            }
        }
    }
}

/// Whether the connection closed before any of the response arrived.
fn closed_before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// An error and its sources, joined, for messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
