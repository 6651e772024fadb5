//! The connection to the shared Redis tier (`[cache] redis`): one multiplexed
//! connection manager that reconnects by itself (L2 entries are read on a
//! connection of their own, [`crate::reads`]), and a wrapper that gives
//! every call its own short deadline. A call that fails or times out yields
//! `None` and the request goes on without Redis: Redis trouble degrades
//! (local counting, L1 only), it never fails a request. After a failure,
//! calls are skipped for 250 ms (then one tries again), so a Redis that is
//! down costs requests nothing rather than a deadline each. Failures and
//! skips are counted (`rampart_redis_errors_total{op}`) and logged at most
//! once per 10 s.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rampart_config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use crate::reads::{Login, Reads, Target};

/// What a Redis call is for (the `op` label of its error metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A `scope = "cluster"` rate limit.
    RateLimit,
    /// An L2 lookup.
    L2Get,
    /// An L2 store.
    L2Put,
    /// An L2 purge.
    L2Purge,
    /// Purge fan-out and the purge epoch.
    Sync,
}

impl Op {
    const ALL: [Op; 5] = [Op::RateLimit, Op::L2Get, Op::L2Put, Op::L2Purge, Op::Sync];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::RateLimit => "rate-limit",
            Op::L2Get => "l2-get",
            Op::L2Put => "l2-put",
            Op::L2Purge => "l2-purge",
            Op::Sync => "sync",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// The Redis URL could not be used.
#[derive(Debug, thiserror::Error)]
#[error("[cache] redis {url:?}: {source}")]
pub struct RedisError {
    /// The URL as configured.
    pub url: String,
    /// Why.
    pub source: redis::RedisError,
}

/// The shared Redis.
pub struct Redis {
    conn: ConnectionManager,
    timeout: Duration,
    prefix: String,
    up: AtomicBool,
    last_warning: Mutex<Option<Instant>>,
    errors: Vec<Counter>,
    client: redis::Client,
    /// `GET`s on a pipelined connection of their own, when Redis is reached
    /// over TCP or a Unix socket.
    reads: Option<Reads>,
    /// After a failure, calls before this instant are skipped (counted as
    /// failed) rather than each waiting out the deadline.
    retry_at: Mutex<Option<Instant>>,
}

/// The connection for L2 reads ([`crate::reads`]) to the Redis `info`
/// names, when it is reached over TCP or a Unix socket (not TLS).
pub fn read_connection(info: &redis::ConnectionInfo, deadline: Duration) -> Option<Reads> {
    let target = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => Target::Tcp(host.clone(), *port),
        redis::ConnectionAddr::Unix(path) => Target::Unix(path.clone()),
        _ => return None,
    };
    let settings = info.redis_settings();
    let login = Login {
        username: settings.username(),
        password: settings.password(),
        db: settings.db(),
    };
    Some(Reads::new(target, login, deadline))
}

/// How long calls are skipped after a failure before one tries again.
const RETRY_AFTER: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Redis's error counters, registered once per process so that a reload
/// that adds or changes `[cache] redis` counts into the same series.
#[derive(Debug, Clone, Default)]
pub struct RedisMetrics {
    errors: Family<OpLabels, Counter>,
}

impl RedisMetrics {
    /// Registers the counters in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "redis_errors",
            "Redis calls that failed or timed out, by use; the request went on without Redis",
            metrics.errors.clone(),
        );
        metrics
    }
}

impl Redis {
    /// Prepares the connection; it is opened on first use, so a gateway
    /// starts (and serves from L1 and the origin) while Redis is down. Its
    /// errors are counted in `metrics`.
    pub fn new(cfg: &RedisConfig, metrics: &RedisMetrics) -> Result<Self, RedisError> {
        let error = |source| RedisError {
            url: cfg.url.clone(),
            source,
        };
        let client = redis::Client::open(cfg.url.as_str()).map_err(error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout.max(Duration::from_millis(50))))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(error)?;
        let errors = &metrics.errors;
        Ok(Self {
            conn,
            timeout: cfg.timeout,
            prefix: cfg.prefix.clone(),
            up: AtomicBool::new(true),
            last_warning: Mutex::new(None),
            retry_at: Mutex::new(None),
            errors: Op::ALL
                .iter()
                .map(|op| errors.get_or_create(&OpLabels { op: op.as_str() }).clone())
                .collect(),
            reads: read_connection(client.get_connection_info(), cfg.timeout),
            client,
        })
    }

    /// A key under the configured prefix: `prefix:kind:` then the parts
    /// joined by `:`, the last one hashed (it may be a credential or long).
    pub fn key(&self, kind: &str, parts: &[&str], hashed: &str) -> String {
        let digest = Sha256::digest(hashed.as_bytes());
        let mut key = format!("{}:{kind}:", self.prefix);
        for p in parts {
            key.push_str(p);
            key.push(':');
        }
        for b in &digest[..16] {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the last call succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Runs one call with the Redis deadline; `None` when it failed or timed
    /// out (counted under `op`).
    pub async fn run<T, F, Fut>(&self, op: Op, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.guarded(op, || call(self.conn.clone())).await
    }

    /// The value at `key` (`Some(None)` when there is none), read on the
    /// pipelined connection of [`crate::reads`], or through the general
    /// client when too many reads are queued there or Redis is reached over
    /// TLS. Within the deadline and counted under `op`, as [`Redis::run`].
    pub async fn get(&self, op: Op, key: String) -> Option<Option<Bytes>> {
        let key = match &self.reads {
            Some(reads) => {
                let read = self
                    .guarded(op, || async {
                        match reads.get(key).await {
                            Ok(Ok(value)) => Ok(Ok(value)),
                            Ok(Err(e)) => Err(e),
                            Err(busy) => Ok(Err(busy)),
                        }
                    })
                    .await;
                match read {
                    Some(Ok(value)) => return Some(value),
                    Some(Err(busy)) => busy,
                    None => return None,
                }
            }
            None => key,
        };
        let value: Option<Option<Vec<u8>>> = self
            .run(op, |mut c| async move {
                redis::cmd("GET").arg(&key).query_async(&mut c).await
            })
            .await;
        value.map(|v| v.map(Bytes::from))
    }

    /// Runs `call` with the Redis deadline and the failure bookkeeping.
    async fn guarded<T, E, F, Fut>(&self, op: Op, call: F) -> Option<T>
    where
        E: std::fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let skip = self
            .retry_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| Instant::now() < t);
        if skip {
            self.errors[op as usize].inc();
            return None;
        }
        let outcome = tokio::time::timeout(self.timeout, call()).await;
        let error = match outcome {
            Ok(Ok(value)) => {
                *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis is reachable again");
                }
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.up.store(false, Ordering::Relaxed);
        *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + RETRY_AFTER);
        self.errors[op as usize].inc();
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(
                op = op.as_str(),
                error,
                "redis call failed; going on without it (further failures logged at most every 10 s)"
            );
        }
        None
    }

    /// `PING`, as any other call: within the deadline, skipped right after a
    /// failure, tracked in [`Redis::is_up`].
    pub async fn ping(&self) -> bool {
        self.run(Op::Sync, |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .is_some()
    }
}
