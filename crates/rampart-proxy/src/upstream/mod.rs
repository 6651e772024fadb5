//! Upstream pools: one keep-alive client per upstream, targets chosen as
//! [`balance`] says among those that pass active [`health`] checks and whose
//! circuit allows ([`target`]), a deadline on every request, and one retry
//! where that is safe.

mod balance;
mod h1;
mod health;
mod pool;
mod quickack;
mod target;
pub mod tls;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::{Authority, InvalidUri, Scheme};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::connect::HttpConnector;
use prometheus_client::metrics::counter::Counter;
use rampart_config::{Balance, HealthConfig, HostHeader, UpstreamConfig};
use rampart_guard::breaker::{Breaker, Settings, State};
use rampart_guard::health::Health;
use rustls_pki_types::ServerName;

use self::pool::SendError;
use self::quickack::QuickAckConnector;
use self::target::{Pending, Target};
use crate::body::{guarded, Body, BodyProgress, ClientBodyError};
use crate::metrics::Metrics;
use crate::outcome::{RetryReason, UpstreamOutcome};
use rampart_telemetry::span::{self, STAGE_TARGET};
use tracing::Instrument;

/// A target in the config that is not `host:port`.
#[derive(Debug, thiserror::Error)]
#[error("upstream {upstream:?}: target {target:?}: {source}")]
pub struct InvalidTarget {
    /// The upstream's name.
    pub upstream: String,
    /// The target as configured.
    pub target: String,
    /// Why it does not parse.
    pub source: InvalidUri,
}

/// Why an upstream's pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A target is not `host:port`.
    #[error(transparent)]
    Target(#[from] InvalidTarget),
    /// Its TLS settings cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::UpstreamTlsError),
}

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
    /// The client's request body failed while it was sent: the client's
    /// fault, not the target's.
    #[error("{0}")]
    ClientBody(ClientBodyError),
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

impl UpstreamError {
    /// The outcome it counts as (metric label, span attribute).
    pub fn outcome(&self) -> UpstreamOutcome {
        match self {
            UpstreamError::Connect { .. } => UpstreamOutcome::ConnectError,
            UpstreamError::Timeout(_) => UpstreamOutcome::Timeout,
            UpstreamError::Failed { .. } => UpstreamOutcome::Error,
            UpstreamError::ClientBody(_) => UpstreamOutcome::ClientError,
            UpstreamError::CircuitOpen { .. } => UpstreamOutcome::CircuitOpen,
            UpstreamError::NoHealthyTarget { .. } => UpstreamOutcome::NoHealthyTarget,
        }
    }
}

/// Which target answered and how long its response head took: on every
/// response an upstream gave when the access log is on (it alone reads it).
#[derive(Debug, Clone)]
pub struct Upstreamed {
    /// The target, `host:port`.
    pub target: Authority,
    /// From sending the request to the response head.
    pub elapsed: Duration,
}

/// One upstream: its targets and connection pool.
pub struct Upstream {
    /// The upstream's name.
    pub name: String,
    targets: Vec<Target>,
    next: AtomicUsize,
    pool: pool::Pool,
    scheme: Scheme,
    balance: Balance,
    retry: bool,
    health: Option<HealthConfig>,
    host_header: HostHeader,
    /// Retry counters, by [`RetryReason`].
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
    pub fn new(cfg: &UpstreamConfig, metrics: &Metrics) -> Result<Self, PoolError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let tls_config = match &cfg.tls {
            Some(t) => tls::client_config(t, &cfg.name)?,
            // Never used for plain targets (the scheme stays http).
            None => rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|source| tls::UpstreamTlsError::Rustls {
                upstream: cfg.name.clone(),
                source,
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http();
        let server_name = cfg.tls.as_ref().and_then(|t| t.server_name.as_deref());
        let builder = match server_name.and_then(|n| ServerName::try_from(n.to_string()).ok()) {
            Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
            None => builder,
        };
        let connector = builder
            .enable_all_versions()
            .wrap_connector(QuickAckConnector(http));
        let pool = pool::Pool::new(
            connector,
            cfg.h2c,
            cfg.targets.len(),
            cfg.idle_timeout,
            cfg.max_idle_per_target,
        );
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
                let authority = t.parse::<Authority>().map_err(|source| InvalidTarget {
                    upstream: cfg.name.clone(),
                    target: t.clone(),
                    source,
                })?;
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
            .collect::<Result<Vec<_>, PoolError>>()?;
        Ok(Self {
            name: cfg.name.clone(),
            targets,
            next: AtomicUsize::new(0),
            pool,
            balance: cfg.balance,
            retry: cfg.retry,
            health: cfg.health.clone(),
            host_header: cfg.host_header.clone(),
            scheme: if cfg.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            retries: RetryReason::ALL.map(|r| metrics.retry(&cfg.name, r)),
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

    /// Sends a request to a target chosen as the balance says; `req`'s URI
    /// needs only a path and query. Fails with [`UpstreamError::Timeout`]
    /// when the response headers do not arrive within `timeout`. `now` is the
    /// breakers' clock. A 5xx, a connect error or a timeout counts as a
    /// failure for the target's breaker; anything else as a success. With
    /// `annotate`, the response carries [`Upstreamed`].
    ///
    /// An idempotent request without a body is sent once more (when
    /// `retry` is on and time is left): to another target after a connect
    /// error or a 503; to another target, or the same one on a new
    /// connection, after the connection closed before any of the response
    /// arrived. Never after a timeout, since the first target may have acted
    /// on it.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        timeout: Duration,
        now: Duration,
        annotate: bool,
    ) -> Result<Response<Body>, UpstreamError> {
        let deadline = Instant::now() + timeout;
        // Only a request without a body can be sent again; the one sent is
        // kept for that (Rampart's HTTP/1.1 exchange only borrows it).
        let replay = self.retry && idempotent(req.method()) && req.body().is_end_stream();
        let (first, pending) = self.pick(now, None)?;
        let result = self
            .exchange(first, pending, &mut req, timeout, annotate)
            .await;
        let reason = match &result {
            Err(UpstreamError::Connect { .. }) => RetryReason::ConnectError,
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => RetryReason::Unavailable,
            Err(UpstreamError::Failed { closed: true, .. }) => RetryReason::Closed,
            _ => return result,
        };
        if !replay {
            return result;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return result;
        }
        // A closed connection says nothing against its target: with no
        // other, the same one is asked again (on a new connection).
        let exclude = (reason != RetryReason::Closed || self.targets.len() > 1).then_some(first);
        let Ok((second, pending)) = self.pick(now, exclude) else {
            return result;
        };
        drop(result);
        self.retries[reason as usize].inc();
        self.exchange(second, pending, &mut req, left, annotate)
            .await
    }

    async fn exchange(
        &self,
        index: usize,
        pending: Pending<'_>,
        req: &mut Request<Body>,
        timeout: Duration,
        annotate: bool,
    ) -> Result<Response<Body>, UpstreamError> {
        let target = &self.targets[index].authority;
        match &self.host_header {
            HostHeader::Client => {}
            HostHeader::Target => {
                if let Ok(v) = http::HeaderValue::from_str(target.as_str()) {
                    req.headers_mut().insert(http::header::HOST, v);
                }
            }
            HostHeader::Fixed(v) => {
                req.headers_mut().insert(http::header::HOST, v.clone());
            }
        }
        let progress = req.extensions().get::<BodyProgress>().cloned();
        let call = tracing::debug_span!(
            target: STAGE_TARGET,
            "upstream call",
            otel.name = req.method().as_str(),
            otel.kind = "client",
            server.address = target.host(),
            server.port = target.port_u16()
        );
        span::propagate(&call, req.headers_mut());
        let sent = Instant::now();
        let called = tokio::time::timeout(
            timeout,
            Box::pin(self.pool.send(index, &self.scheme, target, req)),
        );
        let result = match called.instrument(call.clone()).await {
            Err(_) if progress.is_some_and(|p| !p.finished()) => {
                // The client was still uploading: its stall, not the target's.
                drop(pending);
                return Err(UpstreamError::ClientBody(ClientBodyError::Stalled));
            }
            Err(_) => Err(UpstreamError::Timeout(timeout)),
            Ok(Ok(mut resp)) => {
                if annotate {
                    resp.extensions_mut().insert(Upstreamed {
                        target: target.clone(),
                        elapsed: sent.elapsed(),
                    });
                }
                Ok(resp)
            }
            Ok(Err(SendError::Connect(e))) => Err(UpstreamError::Connect {
                target: target.to_string(),
                detail: error_chain(&*e),
            }),
            Ok(Err(e)) if client_fault(&e).is_some() => {
                let fault = client_fault(&e);
                // Nothing is known of the target: its probe slot goes back.
                drop(pending);
                return Err(UpstreamError::ClientBody(
                    fault.unwrap_or(ClientBodyError::Broken),
                ));
            }
            Ok(Err(SendError::Http(e))) => Err(UpstreamError::Failed {
                target: target.to_string(),
                detail: error_chain(&e),
                closed: closed_before_response(&e),
            }),
            Ok(Err(SendError::H1(e))) => Err(UpstreamError::Failed {
                target: target.to_string(),
                detail: error_chain(&e),
                closed: matches!(e, h1::Error::Closed(_)),
            }),
        };
        match &result {
            Ok(r) => span::record_status(&call, r.status().as_u16()),
            Err(e) => span::record_error(&call, e.outcome().as_str()),
        }
        let in_flight = pending.record(matches!(&result, Ok(r) if !r.status().is_server_error()));
        result.map(|r| r.map(|b| guarded(b, in_flight)))
    }
}

/// Whether an error or one of its sources satisfies `test`.
fn any_cause(
    e: &(dyn std::error::Error + 'static),
    test: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if test(c) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The first of an error's causes (itself included) of type `E`.
fn find_cause<'e, E: std::error::Error + 'static>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e E> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<E>() {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

/// The client's body fault behind a failed exchange, when that is what
/// failed.
fn client_fault(e: &SendError) -> Option<ClientBodyError> {
    match e {
        SendError::Http(e) => find_cause::<ClientBodyError>(e).copied(),
        SendError::H1(h1::Error::Body(e)) => find_cause::<ClientBodyError>(&**e).copied(),
        _ => None,
    }
}

/// Whether the connection closed before any of the response arrived.
fn closed_before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    any_cause(e, |c| {
        c.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
    })
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
