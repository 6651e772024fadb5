//! Upstream pools: one keep-alive client per upstream, targets taken round
//! robin, and a deadline on every request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rampart_config::UpstreamConfig;

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
        Ok(Self {
            name: cfg.name.clone(),
            targets,
            next: AtomicUsize::new(0),
            client,
        })
    }

    /// The targets, as `host:port`.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(Authority::as_str)
    }

    /// Sends a request to the next target; `req`'s URI needs only a path and
    /// query. Fails with [`UpstreamError::Timeout`] when the response headers
    /// do not arrive within `timeout`.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
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
        match tokio::time::timeout(timeout, self.client.request(req)).await {
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
        }
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
