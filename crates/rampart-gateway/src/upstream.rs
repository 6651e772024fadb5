//! Upstream pools: one keep-alive client per upstream, targets taken round
//! robin, and a deadline on every request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rampart_config::UpstreamConfig;
use rampart_guard::breaker::{Breaker, Settings, State};

use crate::body::Body;

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
    /// The exchange failed after connecting.
    #[error("request to {target} failed: {detail}")]
    Failed {
        /// The target tried.
        target: String,
        /// What failed.
        detail: String,
    },
}

/// One upstream: its targets and connection pool.
#[derive(Debug)]
pub struct Upstream {
    /// The upstream's name.
    pub name: String,
    targets: Vec<Authority>,
    next: AtomicUsize,
    client: Client<HttpConnector, Body>,
    breakers: Option<Vec<Mutex<Breaker>>>,
}

/// Gives a breaker its outcome, or its probe slot back if the request was
/// abandoned (the client went away) before one was known.
struct Pending<'a> {
    breaker: Option<&'a Mutex<Breaker>>,
    now: Duration,
}

impl Pending<'_> {
    fn record(mut self, success: bool) {
        if let Some(b) = self.breaker.take() {
            b.lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(self.now, success);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.breaker.take() {
            b.lock().unwrap_or_else(|p| p.into_inner()).release();
        }
    }
}

impl Upstream {
    /// Builds the pool for an upstream. Targets were validated as `host:port`.
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, String> {
        let targets = cfg
            .targets
            .iter()
            .map(|t| {
                t.parse::<Authority>()
                    .map_err(|e| format!("target {t:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_target)
            .build(connector);
        let breakers = cfg.circuit.map(|c| {
            let settings = Settings {
                failures: c.failures,
                failure_rate: c.failure_rate,
                window: c.window as usize,
                min_requests: c.min_requests as usize,
                open_for: c.open_for,
                probes: c.probes,
            };
            targets
                .iter()
                .map(|_| Mutex::new(Breaker::new(settings)))
                .collect()
        });
        Ok(Self {
            name: cfg.name.clone(),
            targets,
            next: AtomicUsize::new(0),
            client,
            breakers,
        })
    }

    /// The targets, as `host:port`.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(Authority::as_str)
    }

    /// Each target's breaker state at `now` (empty without a circuit).
    pub fn breaker_states(&self, now: Duration) -> Vec<(&str, State)> {
        match &self.breakers {
            None => Vec::new(),
            Some(b) => self
                .targets
                .iter()
                .zip(b)
                .map(|(t, b)| {
                    (
                        t.as_str(),
                        b.lock().unwrap_or_else(|p| p.into_inner()).state(now),
                    )
                })
                .collect(),
        }
    }

    /// Picks the next target round robin, skipping targets whose breaker
    /// refuses at `now`.
    fn pick(&self, now: Duration) -> Result<(usize, Pending<'_>), UpstreamError> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let Some(breakers) = &self.breakers else {
            return Ok((start, Pending { breaker: None, now }));
        };
        let mut soonest: Option<Duration> = None;
        for k in 0..n {
            let i = (start + k) % n;
            match breakers[i]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(now)
            {
                Ok(()) => {
                    return Ok((
                        i,
                        Pending {
                            breaker: Some(&breakers[i]),
                            now,
                        },
                    ))
                }
                Err(r) => soonest = Some(soonest.map_or(r.retry_after, |s| s.min(r.retry_after))),
            }
        }
        Err(UpstreamError::CircuitOpen {
            retry_after: soonest.unwrap_or_default(),
        })
    }

    /// Sends a request to the next target whose circuit allows it; `req`'s
    /// URI needs only a path and query. Fails with [`UpstreamError::Timeout`]
    /// when the response headers do not arrive within `timeout`. `now` is the
    /// breakers' clock. A 5xx, a connect error or a timeout counts as a
    /// failure for the target's breaker; anything else as a success.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        timeout: Duration,
        now: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let (index, pending) = self.pick(now)?;
        let target = &self.targets[index];
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(target.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = Uri::from_parts(parts).map_err(|e| UpstreamError::Failed {
            target: target.to_string(),
            detail: e.to_string(),
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
            }),
        };
        pending.record(matches!(&result, Ok(r) if !r.status().is_server_error()));
        result
    }
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
