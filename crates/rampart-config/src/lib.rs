//! Rampart's configuration.
//!
//! Loading happens in two stages: the TOML text is parsed into the raw serde
//! structs of [`raw`] (unknown keys rejected, every scalar parsed with its
//! span), then [`validate`] turns them into the typed [`Config`] that the
//! rest of Rampart uses. Every error names the file, line, column and field.
//! Tests and embedders may also build a [`Config`] directly.

pub mod env;
pub mod locate;
pub mod pattern;
pub mod raw;
pub mod template;
pub mod units;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::HeaderName;
pub use ipnet::IpNet;
pub use pattern::{PathPattern, RouteMatch};
pub use template::Template;

/// A configuration error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct ConfigError {
    /// The file's name as given.
    pub file: String,
    /// 1-based line (0 when the error concerns the whole file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field (`routes[2].cache.ttl`), or `(file)`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`: the public listener.
    pub server: ServerConfig,
    /// `[admin]`: metrics, health and (later) purge endpoints; off when absent.
    pub admin: Option<AdminConfig>,
    /// `[cache]`: the in-memory cache.
    pub cache: CacheConfig,
    /// `[compression]`.
    pub compression: CompressionConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[[upstreams]]`, in file order.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[[routes]]`, in file order; the first match wins.
    pub routes: Vec<RouteConfig>,
    /// `[priorities]`: weights of critical, high, default and low.
    pub priority_weights: [u32; 4],
    /// `[[events]]`: domain events and what each purges.
    pub events: Vec<EventConfig>,
    /// `[[warmers]]`: URLs refetched on a schedule.
    pub warmers: Vec<WarmerConfig>,
}

/// `[[warmers]]`: a URL kept warm by refetching it every interval.
#[derive(Debug, Clone)]
pub struct WarmerConfig {
    /// The URL as clients request it (`http://host/path?query`).
    pub url: http::Uri,
    /// Time between refetches (the first is at start).
    pub every: Duration,
    /// The route serving it (an index into `routes`).
    pub route: usize,
}

/// `[[events]]`: a domain event the application sends, and what it purges.
#[derive(Debug, Clone)]
pub struct EventConfig {
    /// The event's name (`POST /admin/events/{name}`).
    pub name: String,
    /// Tags to purge, templates over the event's JSON body.
    pub purge_tags: Vec<Template>,
    /// URLs or paths to purge, templates over the event's JSON body.
    pub purge_keys: Vec<Template>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` / `Forwarded` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest request head (request line and headers) accepted.
    pub max_header_size: usize,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_size: u64,
    /// Time a client has to send a whole request head (against slowloris).
    pub header_read_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// Most client connections open at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Most keys each rate limit tracks at once.
    pub max_limit_keys: usize,
}

/// `[admin]`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// Bearer token for `/admin/*`.
    pub token: Option<String>,
    /// Secret for `X-Rampart-Signature` (HMAC-SHA256 of an event's body).
    pub webhook_secret: Option<String>,
}

/// `[cache]`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Byte budget of the in-memory cache (bodies, headers and bookkeeping);
    /// 0 turns the memory tier off (only allowed with `redis`).
    pub memory: u64,
    /// Largest response body stored; larger ones stream through uncached.
    pub max_object_size: u64,
    /// How long a request waits for a concurrent identical miss before going to the origin itself.
    pub coalesce_timeout: Duration,
    /// Most `Vary` variants kept per URL.
    pub max_variants: usize,
    /// The shared Redis tier; `None` runs on this node alone.
    pub redis: Option<RedisConfig>,
    /// Whether the origin's `Surrogate-Key` / `Cache-Tag` headers reach clients.
    pub expose_tags: bool,
}

/// `[cache] redis`: the Redis shared by every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path`.
    pub url: String,
    /// Deadline of one Redis call; past it the request goes on without Redis.
    pub timeout: Duration,
    /// Prefix of every key Rampart writes.
    pub prefix: String,
    /// The bound on serving purged content: how stale a node's knowledge of
    /// purges may get before it stops using its memory tier.
    pub purge_sync: Duration,
}

/// A content coding Rampart can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Brotli.
    Br,
    /// Zstandard.
    Zstd,
    /// gzip.
    Gzip,
}

impl Encoding {
    /// The token used in `Accept-Encoding` and `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// Parses a coding token.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "br" => Some(Encoding::Br),
            "zstd" => Some(Encoding::Zstd),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }
}

/// `[compression]`.
#[derive(Debug, Clone)]
pub struct CompressionConfig {
    /// Whether Rampart compresses responses at all.
    pub enabled: bool,
    /// Bodies smaller than this are sent as they are.
    pub min_size: u64,
    /// Compressible media types (`text/*` style wildcards allowed).
    pub types: Vec<String>,
    /// Codings offered, in order of preference when a client accepts several equally.
    pub algorithms: Vec<Encoding>,
}

impl CompressionConfig {
    /// Whether a `Content-Type` value is compressible.
    pub fn compressible(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(prefix) => essence
                .split_once('/')
                .is_some_and(|(top, _)| top == prefix),
            None => *t == essence,
        })
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Whether one JSON access-log line is written per request.
    pub access: bool,
}

/// `[[upstreams]]`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Name routes refer to.
    pub name: String,
    /// `host:port` targets, used round robin.
    pub targets: Vec<String>,
    /// Deadline for opening a connection to a target.
    pub connect_timeout: Duration,
    /// Deadline for a target's response headers.
    pub timeout: Duration,
    /// Idle keep-alive connections kept per target.
    pub max_idle_per_target: usize,
    /// How long an idle upstream connection is kept.
    pub idle_timeout: Duration,
    /// Circuit breaker per target; `None` is off.
    pub circuit: Option<CircuitConfig>,
    /// Admission control; `None` sends every request at once.
    pub admission: Option<AdmissionConfig>,
    /// Active health checks; `None` is off.
    pub health: Option<HealthConfig>,
    /// How a target is chosen.
    pub balance: Balance,
    /// Whether an idempotent request without a body is retried once on
    /// another target after a connect error or a 503.
    pub retry: bool,
}

/// How requests are spread over an upstream's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Two targets drawn at random, the one with fewer requests in flight
    /// taken ("power of two choices").
    #[default]
    LeastInFlight,
    /// In turn.
    RoundRobin,
}

/// An upstream's active health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Path requested with GET on each target; 2xx and 3xx pass.
    pub path: String,
    /// Time between checks of a target.
    pub interval: Duration,
    /// Deadline of one check.
    pub timeout: Duration,
    /// Passed checks in a row that bring a target back.
    pub healthy_after: u32,
    /// Failed checks in a row that take a target out.
    pub unhealthy_after: u32,
}

/// An upstream's admission control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Requests sent to the upstream at once.
    pub max_concurrency: usize,
    /// Requests that may wait for a slot.
    pub queue_size: usize,
    /// How long a request may wait.
    pub queue_timeout: Duration,
}

/// A route's priority class; waiting requests are released in weighted
/// order and the lowest class is shed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Payments, webhooks that must get through.
    Critical,
    /// Transactions.
    High,
    /// Everything else.
    #[default]
    Default,
    /// Browsing that may be shed first.
    Low,
}

impl Priority {
    /// Index of the class, most important first.
    pub fn index(self) -> usize {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Default => 2,
            Priority::Low => 3,
        }
    }

    /// The class's name.
    pub fn as_str(self) -> &'static str {
        ["critical", "high", "default", "low"][self.index()]
    }
}

/// An upstream's circuit breaker settings (one breaker per target).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitConfig {
    /// Consecutive failures that open it.
    pub failures: u32,
    /// Failure share over the window that opens it.
    pub failure_rate: Option<f64>,
    /// Outcomes remembered for the failure share.
    pub window: u32,
    /// Outcomes needed before the share counts.
    pub min_requests: u32,
    /// How long it stays open before probing.
    pub open_for: Duration,
    /// Probes at once when half-open, and successes needed to close.
    pub probes: u32,
}

/// `[[routes]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Name used in metrics and logs (defaults to the match string).
    pub name: String,
    /// Method and path pattern.
    pub matcher: RouteMatch,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Cache policy; `None` passes every request through.
    pub cache: Option<CachePolicy>,
    /// Whether responses on this route may be compressed.
    pub compress: bool,
    /// Total deadline for the upstream's response headers on this route.
    pub timeout: Duration,
    /// Rate limits, all checked for every request.
    pub limits: Vec<LimitConfig>,
    /// Priority class in the upstream's admission queue.
    pub priority: Priority,
}

/// A route's rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConfig {
    /// Name in headers and metrics (defaults to `"<rate>/<per>"`).
    pub name: String,
    /// Requests per period.
    pub rate: u32,
    /// The period.
    pub period: Duration,
    /// Requests allowed at once (defaults to `rate`).
    pub burst: u32,
    /// What the limit is counted per.
    pub key: LimitKey,
    /// Counted in Redis across every node (`scope = "cluster"`) rather than
    /// on this node alone.
    pub cluster: bool,
}

/// What a rate limit counts per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address (from the peer, or `X-Forwarded-For` of trusted proxies).
    Ip,
    /// A request header's value (an API key).
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// A path parameter of the route's pattern.
    Param(String),
}

/// A route's cache policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// Freshness lifetime when Rampart decides it (or when the origin says nothing, with `respect_origin`).
    pub ttl: Option<Duration>,
    /// Use the origin's `Cache-Control`/`Expires` freshness when present.
    pub respect_origin: bool,
    /// With `respect_origin`: allow heuristic freshness (10 % of the age of `Last-Modified`, at most a day).
    pub heuristic: bool,
    /// How long after expiry a stale response is served while one background request refreshes it.
    pub stale_while_revalidate: Duration,
    /// How long after expiry a stale response is served when the origin fails.
    pub stale_if_error: Duration,
    /// Extra request values that become part of the key.
    pub key: Vec<KeyPart>,
    /// Statuses stored with a Rampart-decided `ttl`.
    pub statuses: Vec<u16>,
    /// Tags given to stored responses, templates over the request.
    pub tags: Vec<Template>,
    /// A hit with less freshness left than this refreshes the entry in the
    /// background, once (zero: off).
    pub refresh_ahead: Duration,
}

impl CachePolicy {
    /// A policy with a fixed TTL and defaults elsewhere.
    pub fn ttl(ttl: Duration) -> Self {
        Self {
            ttl: Some(ttl),
            respect_origin: false,
            heuristic: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            key: Vec::new(),
            statuses: DEFAULT_STATUSES.to_vec(),
            tags: Vec::new(),
            refresh_ahead: Duration::ZERO,
        }
    }

    /// Whether the key includes a credential (the `Authorization` header or a
    /// cookie), which makes per-user responses safe to store.
    pub fn keys_on_credentials(&self) -> bool {
        self.key.iter().any(|k| match k {
            KeyPart::Header(h) => h == http::header::AUTHORIZATION || h == http::header::COOKIE,
            KeyPart::Cookie(_) => true,
        })
    }

    /// Whether the key includes the `Authorization` header.
    pub fn keys_on_authorization(&self) -> bool {
        self.key
            .iter()
            .any(|k| matches!(k, KeyPart::Header(h) if h == http::header::AUTHORIZATION))
    }
}

/// Statuses stored by default under a Rampart-decided TTL (as nginx's `proxy_cache_valid`, plus the permanent ones).
pub const DEFAULT_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308];

/// One extra part of a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// `header:NAME`: the value of a request header.
    Header(HeaderName),
    /// `cookie:NAME`: the value of one cookie.
    Cookie(String),
}

impl KeyPart {
    /// Parses `header:NAME` or `cookie:NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(KeyPart::Header)
                .map_err(|_| format!("invalid header name {name:?}")),
            Some(("cookie", name)) if !name.trim().is_empty() => {
                Ok(KeyPart::Cookie(name.trim().to_string()))
            }
            _ => Err(format!(
                "invalid key part {s:?}: write \"header:NAME\" or \"cookie:NAME\""
            )),
        }
    }
}

/// Media types compressed by default.
pub const DEFAULT_COMPRESSIBLE: &[&str] = &[
    "text/*",
    "application/json",
    "application/problem+json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/wasm",
    "image/svg+xml",
    "font/ttf",
    "font/otf",
];

impl ConfigError {
    /// An error at byte `offset` of `text`, located to line, column and field.
    pub fn at(text: &str, file: &str, offset: usize, message: String) -> Self {
        let loc = locate::locate(text, offset);
        Self {
            file: file.to_string(),
            line: loc.line,
            column: loc.column,
            field: if loc.field.is_empty() {
                "(top level)".into()
            } else {
                loc.field
            },
            message,
        }
    }

    /// A TOML syntax or type error, located.
    pub fn from_toml(text: &str, file: &str, e: &toml::de::Error) -> Self {
        Self::at(
            text,
            file,
            e.span().map_or(0, |s| s.start),
            e.message().trim().to_string(),
        )
    }
}

/// Reads a file as text, or says which file could not be read.
pub fn read_text(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, file)),
        Err(e) => Err(ConfigError {
            file,
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        }),
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (text, file) = read_text(path)?;
    parse(&text, &file)
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(text, file, &e))?;
    validate(raw).map_err(|(offset, message)| ConfigError::at(text, file, offset, message))
}

type Invalid = (usize, String);

/// Stage two: turns the raw structs into a [`Config`]. Errors carry the byte
/// offset of the offending value.
pub fn validate(raw: raw::RawConfig) -> Result<Config, Invalid> {
    let s = raw.server;
    let server = ServerConfig {
        listen: s
            .listen
            .map_or_else(|| "127.0.0.1:8080".parse().expect("valid"), |l| l.0),
        trusted_proxies: s.trusted_proxies.into_iter().map(|c| c.0).collect(),
        max_header_size: s.max_header_size.map_or(64 * 1024, |v| v.0 as usize),
        max_body_size: s.max_body_size.map_or(10 << 20, |v| v.0),
        header_read_timeout: s
            .header_read_timeout
            .map_or(Duration::from_secs(10), |d| d.0),
        shutdown_timeout: s.shutdown_timeout.map_or(Duration::from_secs(30), |d| d.0),
        max_connections: s.max_connections.map_or(10_000, |v| v as usize),
        max_limit_keys: s.max_limit_keys.map_or(100_000, |v| v.max(1) as usize),
    };
    let admin = match raw.admin {
        None => None,
        Some(a) => {
            let token = match a.token {
                Some(t) if t.get_ref().0.trim().is_empty() => {
                    return Err((
                        t.span().start,
                        "the admin token is empty; set it or remove the key".into(),
                    ))
                }
                Some(t) => Some(t.into_inner().0),
                None => None,
            };
            let webhook_secret = match a.webhook_secret {
                Some(t) if t.get_ref().0.trim().is_empty() => {
                    return Err((
                        t.span().start,
                        "the webhook secret is empty; set it or remove the key".into(),
                    ))
                }
                Some(t) => Some(t.into_inner().0),
                None => None,
            };
            Some(AdminConfig {
                listen: a.listen.0,
                token,
                webhook_secret,
            })
        }
    };
    let c = raw.cache;
    if let Some(m) = &c.memory {
        if m.get_ref().0 == 0 && c.redis.is_none() {
            return Err((
                m.span().start,
                "memory = 0 turns the memory tier off, and without `redis` nothing would be cached; give it a budget or set `redis`".into(),
            ));
        }
    }
    let cache_config = CacheConfig {
        memory: c.memory.map_or(256 << 20, |v| v.into_inner().0),
        max_object_size: c.max_object_size.map_or(8 << 20, |v| v.0),
        coalesce_timeout: c.coalesce_timeout.map_or(Duration::from_secs(10), |d| d.0),
        max_variants: c.max_variants.map_or(8, |v| v.max(1) as usize),
        expose_tags: c.expose_tags.unwrap_or(false),
        redis: match c.redis {
            None => None,
            Some(url) => {
                let text = url.get_ref().0.trim().to_string();
                if !["redis://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|s| text.starts_with(s))
                {
                    return Err((
                        url.span().start,
                        format!("{text:?} is not a Redis URL; use redis://host:port or redis+unix:///path"),
                    ));
                }
                Some(RedisConfig {
                    url: text,
                    timeout: c.redis_timeout.map_or(Duration::from_millis(100), |d| d.0),
                    prefix: c
                        .redis_prefix
                        .map_or_else(|| "rampart".to_string(), |p| p.0),
                    purge_sync: c
                        .purge_sync
                        .map_or(Duration::from_secs(1), |d| d.0)
                        .max(Duration::from_millis(20)),
                })
            }
        },
    };
    let z = raw.compression;
    let mut algorithms = Vec::new();
    for a in z.algorithms.unwrap_or_default() {
        let enc = Encoding::parse(&a.get_ref().0).ok_or_else(|| {
            (
                a.span().start,
                format!(
                    "unknown algorithm {:?}: use \"br\", \"zstd\" or \"gzip\"",
                    a.get_ref().0
                ),
            )
        })?;
        algorithms.push(enc);
    }
    if algorithms.is_empty() {
        algorithms = vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip];
    }
    let compression = CompressionConfig {
        enabled: z.enabled.unwrap_or(true),
        min_size: z.min_size.map_or(1024, |v| v.0),
        types: z.types.map_or_else(
            || DEFAULT_COMPRESSIBLE.iter().map(|s| s.to_string()).collect(),
            |t| t.into_iter().map(|t| t.0.to_ascii_lowercase()).collect(),
        ),
        algorithms,
    };

    let mut upstreams: Vec<UpstreamConfig> = Vec::new();
    for u in raw.upstreams {
        let name = u.name.get_ref().0.clone();
        if name.is_empty() {
            return Err((u.name.span().start, "an upstream needs a name".into()));
        }
        if upstreams.iter().any(|x| x.name == name) {
            return Err((
                u.name.span().start,
                format!("upstream {name:?} is defined twice"),
            ));
        }
        if u.targets.get_ref().is_empty() {
            return Err((
                u.targets.span().start,
                "an upstream needs at least one target".into(),
            ));
        }
        upstreams.push(UpstreamConfig {
            name,
            targets: u.targets.into_inner().into_iter().map(|t| t.0).collect(),
            connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            timeout: u.timeout.map_or(Duration::from_secs(30), |d| d.0),
            max_idle_per_target: u.max_idle_per_target.map_or(256, |v| v as usize),
            idle_timeout: u.idle_timeout.map_or(Duration::from_secs(60), |d| d.0),
            admission: match (u.max_concurrency, u.queue) {
                (None, None) => None,
                (max, queue) => Some(AdmissionConfig {
                    max_concurrency: max.unwrap_or(100).max(1) as usize,
                    queue_size: queue.as_ref().map_or(0, |q| q.size as usize),
                    queue_timeout: queue.as_ref().map_or(Duration::ZERO, |q| q.timeout.0),
                }),
            },
            health: match u.health {
                None => None,
                Some(h) => {
                    let at = h.span().start;
                    let h = h.into_inner();
                    if h.interval.as_ref().is_some_and(|d| d.0.is_zero()) {
                        return Err((at, "health interval must be more than zero".into()));
                    }
                    let path = h.path.get_ref().0.clone();
                    if !path.starts_with('/') {
                        return Err((
                            h.path.span().start,
                            format!("health path {path:?} must start with '/'"),
                        ));
                    }
                    Some(HealthConfig {
                        path,
                        interval: h.interval.map_or(Duration::from_secs(5), |d| d.0),
                        timeout: h.timeout.map_or(Duration::from_secs(2), |d| d.0),
                        healthy_after: h.healthy_after.unwrap_or(2).max(1),
                        unhealthy_after: h.unhealthy_after.unwrap_or(3).max(1),
                    })
                }
            },
            balance: match &u.balance {
                None => Balance::LeastInFlight,
                Some(b) => match b.get_ref().0.as_str() {
                    "least-in-flight" => Balance::LeastInFlight,
                    "round-robin" => Balance::RoundRobin,
                    other => {
                        return Err((
                            b.span().start,
                            format!(
                            "unknown balance {other:?}; use \"least-in-flight\" or \"round-robin\""
                        ),
                        ))
                    }
                },
            },
            retry: u.retry.unwrap_or(true),
            circuit: match u.circuit {
                None => None,
                Some(c) => {
                    let at = c.span().start;
                    let c = c.into_inner();
                    if c.failure_rate.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
                        return Err((
                            at,
                            "failure_rate is a share between 0 and 1, such as 0.5".into(),
                        ));
                    }
                    Some(CircuitConfig {
                        failures: c.failures.unwrap_or(10).max(1),
                        failure_rate: c.failure_rate,
                        window: c.window.unwrap_or(100).max(1),
                        min_requests: c.min_requests.unwrap_or(20).max(1),
                        open_for: c.open_for.map_or(Duration::from_secs(60), |d| d.0),
                        probes: c.probes.unwrap_or(1).max(1),
                    })
                }
            },
        });
    }

    let mut routes: Vec<RouteConfig> = Vec::new();
    for r in raw.routes {
        let upstream_name = &r.upstream.get_ref().0;
        let upstream = upstreams
            .iter()
            .position(|u| &u.name == upstream_name)
            .ok_or_else(|| {
                let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
                (
                    r.upstream.span().start,
                    format!("no upstream named {upstream_name:?} (defined: {known:?})"),
                )
            })?;
        let name = match &r.name {
            Some(n) => n.get_ref().0.clone(),
            None => r.matcher.as_str().to_string(),
        };
        if routes.iter().any(|x| x.name == name) {
            let at = r
                .name
                .as_ref()
                .map_or(r.upstream.span().start, |n| n.span().start);
            return Err((
                at,
                format!("route name {name:?} is used twice; give each route a unique name"),
            ));
        }
        let cache = match r.cache {
            None => None,
            Some(p) => {
                let policy = cache_policy(p)?;
                for (t, at) in &policy.tags {
                    for var in t.vars() {
                        let known = var.strip_prefix("query.").is_some_and(|q| !q.is_empty())
                            || var
                                .strip_prefix("header.")
                                .is_some_and(|h| HeaderName::from_bytes(h.as_bytes()).is_ok())
                            || r.matcher.path.param_names().any(|n| n == var);
                        if !known {
                            return Err((
                                *at,
                                format!("tag {:?}: {{{var}}} is not a parameter of the route's pattern, nor query.NAME or header.NAME", t.source),
                            ));
                        }
                    }
                }
                Some(policy.into_policy())
            }
        };
        let timeout = r.timeout.map_or(upstreams[upstream].timeout, |d| d.0);
        let mut limits = Vec::new();
        let limit_at = r.limit.as_ref().map_or(0, |l| l.span().start);
        for l in r
            .limit
            .map(|l| l.into_inner().into_vec())
            .unwrap_or_default()
        {
            let at = limit_at;
            if l.rate == 0 || l.per.0.is_zero() {
                return Err((
                    at,
                    "a limit needs a rate above 0 and a period above 0s".into(),
                ));
            }
            let cluster = match l.scope.as_ref().map(|s| s.0.as_str()) {
                None | Some("local") => false,
                Some("cluster") if cache_config.redis.is_none() => {
                    return Err((at, "scope = \"cluster\" counts in Redis: set [cache] redis, or use scope = \"local\"".into()))
                }
                Some("cluster") => true,
                Some(other) => return Err((at, format!("unknown scope {other:?}: use \"local\" or \"cluster\""))),
            };
            let key = match l.key.as_ref().map_or("ip", |k| k.0.as_str()) {
                "ip" => LimitKey::Ip,
                k => match k.split_once(':') {
                    Some(("header", h)) => LimitKey::Header(
                        HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| (at, format!("invalid header name {h:?}")))?,
                    ),
                    Some(("cookie", c)) if !c.trim().is_empty() => LimitKey::Cookie(c.trim().to_string()),
                    Some(("param", p)) => {
                        if !r.matcher.path.param_names().any(|n| n == p.trim()) {
                            return Err((at, format!("the route's pattern has no {{{}}} parameter", p.trim())));
                        }
                        LimitKey::Param(p.trim().to_string())
                    }
                    _ => return Err((at, format!("invalid key {k:?}: use \"ip\", \"header:NAME\", \"cookie:NAME\" or \"param:NAME\""))),
                },
            };
            let name = l.name.map_or_else(
                || format!("{}/{}", l.rate, units::format_duration(l.per.0)),
                |n| n.0,
            );
            limits.push(LimitConfig {
                name,
                rate: l.rate,
                period: l.per.0,
                burst: l.burst.unwrap_or(l.rate).max(1),
                key,
                cluster,
            });
        }
        let priority = match r.priority.as_ref().map(|p| p.get_ref().0.as_str()) {
            None | Some("default") => Priority::Default,
            Some("critical") => Priority::Critical,
            Some("high") => Priority::High,
            Some("low") => Priority::Low,
            Some(other) => {
                let at = r.priority.as_ref().map_or(0, |p| p.span().start);
                return Err((
                    at,
                    format!("unknown priority {other:?}: use critical, high, default or low"),
                ));
            }
        };
        routes.push(RouteConfig {
            name,
            matcher: r.matcher,
            upstream,
            cache,
            compress: r.compress.unwrap_or(true),
            timeout,
            limits,
            priority,
        });
    }

    let mut events: Vec<EventConfig> = Vec::new();
    for e in raw.events {
        let at = e.name.span().start;
        let name = e.name.into_inner().0;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
        {
            return Err((
                at,
                format!("event name {name:?} may hold only letters, digits and . _ : -"),
            ));
        }
        if events.iter().any(|x| x.name == name) {
            return Err((at, format!("event {name:?} is defined twice")));
        }
        let templates =
            |list: Option<Vec<toml::Spanned<raw::Text>>>| -> Result<Vec<Template>, Invalid> {
                list.unwrap_or_default()
                    .into_iter()
                    .map(|t| Template::parse(&t.get_ref().0).map_err(|m| (t.span().start, m)))
                    .collect()
            };
        let purge_tags = templates(e.purge_tags)?;
        let purge_keys = templates(e.purge_keys)?;
        if purge_tags.is_empty() && purge_keys.is_empty() {
            return Err((
                at,
                format!("event {name:?} purges nothing: give it purge_tags or purge_keys"),
            ));
        }
        events.push(EventConfig {
            name,
            purge_tags,
            purge_keys,
        });
    }
    let mut warmers = Vec::new();
    for w in raw.warmers {
        let at = w.url.span().start;
        let text = w.url.get_ref().0.clone();
        let url: http::Uri = text
            .parse()
            .ok()
            .filter(|u: &http::Uri| u.scheme_str() == Some("http") && u.host().is_some())
            .ok_or_else(|| (at, format!("warmer url {text:?} must be absolute: http://host/path (the host is the one clients use)")))?;
        let route = routes
            .iter()
            .position(|r| {
                r.matcher.matches_method(&http::Method::GET)
                    && r.matcher.path.matches(url.path()).is_some()
            })
            .ok_or_else(|| (at, format!("no route matches GET {}", url.path())))?;
        if routes[route].cache.is_none() {
            return Err((
                at,
                format!(
                    "GET {} is served by route {:?}, which does not cache",
                    url.path(),
                    routes[route].name
                ),
            ));
        }
        let every = w.every.get_ref().0;
        if every < Duration::from_secs(1) {
            return Err((
                w.every.span().start,
                "a warmer runs at most once a second".into(),
            ));
        }
        warmers.push(WarmerConfig { url, every, route });
    }
    Ok(Config {
        server,
        admin,
        cache: cache_config,
        compression,
        log: LogConfig {
            access: raw.log.access.unwrap_or(true),
        },
        upstreams,
        routes,
        events,
        warmers,
        priority_weights: [
            raw.priorities.critical.unwrap_or(100).max(1),
            raw.priorities.high.unwrap_or(50).max(1),
            raw.priorities.default.unwrap_or(30).max(1),
            raw.priorities.low.unwrap_or(10).max(1),
        ],
    })
}

/// A cache policy with the positions of its tags, for errors that need the route.
struct ParsedPolicy {
    policy: CachePolicy,
    tags: Vec<(Template, usize)>,
}

impl ParsedPolicy {
    fn into_policy(self) -> CachePolicy {
        CachePolicy {
            tags: self.tags.into_iter().map(|(t, _)| t).collect(),
            ..self.policy
        }
    }
}

fn cache_policy(p: toml::Spanned<raw::RawCachePolicy>) -> Result<ParsedPolicy, Invalid> {
    let at = p.span().start;
    let p = p.into_inner();
    let respect_origin = p.respect_origin.unwrap_or(false);
    if p.ttl.is_none() && !respect_origin {
        return Err((
            at,
            "a cache policy needs `ttl` or `respect_origin = true` (or both)".into(),
        ));
    }
    if p.heuristic == Some(true) && !respect_origin {
        return Err((
            at,
            "`heuristic` applies only with `respect_origin = true`".into(),
        ));
    }
    let mut key = Vec::new();
    for k in p.key.unwrap_or_default() {
        key.push(KeyPart::parse(&k.get_ref().0).map_err(|e| (k.span().start, e))?);
    }
    let mut statuses = Vec::new();
    for s in p.statuses.unwrap_or_default() {
        let code = *s.get_ref();
        if !(200..600).contains(&code) {
            return Err((s.span().start, format!("{code} is not a final HTTP status")));
        }
        statuses.push(code);
    }
    if statuses.is_empty() {
        statuses = DEFAULT_STATUSES.to_vec();
    }
    let mut tags = Vec::new();
    for t in p.tags.unwrap_or_default() {
        let at = t.span().start;
        tags.push((Template::parse(&t.get_ref().0).map_err(|m| (at, m))?, at));
    }
    Ok(ParsedPolicy {
        policy: CachePolicy {
            ttl: p.ttl.map(|d| d.0),
            respect_origin,
            heuristic: p.heuristic.unwrap_or(false),
            stale_while_revalidate: p.stale_while_revalidate.map_or(Duration::ZERO, |d| d.0),
            stale_if_error: p.stale_if_error.map_or(Duration::ZERO, |d| d.0),
            key,
            statuses,
            tags: Vec::new(),
            refresh_ahead: p.refresh_ahead.map_or(Duration::ZERO, |d| d.0),
        },
        tags,
    })
}

#[cfg(test)]
mod tests;
