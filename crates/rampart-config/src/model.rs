//! The typed configuration every other crate reads: what validating the
//! raw file makes of it, with defaults filled in and every value parsed.
//! Tests and embedders may build it directly.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use rampart_core::Template;

use crate::pattern::RouteMatch;
use crate::rewrite::{HeaderEdits, HostPattern, PathRewrite};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
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
    /// `[tracing]`: spans exported over OTLP; `None` when not configured.
    pub tracing: Option<TracingConfig>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct WarmerConfig {
    /// The URL as clients request it (`http://host/path?query`).
    pub url: http::Uri,
    /// Time between refetches (the first is at start).
    pub every: Duration,
    /// The route serving it (an index into `routes`).
    pub route: usize,
}

/// `[[events]]`: a domain event the application sends, and what it purges.
#[derive(Debug, Clone, PartialEq)]
pub struct EventConfig {
    /// The event's name (`POST /admin/events/{name}`).
    pub name: String,
    /// Tags to purge, templates over the event's JSON body.
    pub purge_tags: Vec<Template>,
    /// URLs or paths to purge, templates over the event's JSON body.
    pub purge_keys: Vec<Template>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
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
    /// Request headers removed from requests of peers that are not trusted
    /// proxies (lower case): fields that let a client rewrite what the
    /// origin serves behind the cache's back.
    pub strip_from_untrusted: Vec<HeaderName>,
    /// TLS on the public listener; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// How often the config file is checked for changes (and reloaded when
    /// it changed); `None` reloads only on SIGHUP or `POST /admin/reload`.
    pub reload_on_change: Option<Duration>,
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Certificates; the first is sent when no other's hosts match the
    /// client's SNI (or it sent none).
    pub certs: Vec<CertConfig>,
    /// A plain listener that answers every request with a redirect to HTTPS.
    pub redirect_from: Option<SocketAddr>,
    /// `Strict-Transport-Security` sent on every HTTPS response.
    pub hsts: Option<http::HeaderValue>,
}

/// One certificate chain and its key (PEM files), for some hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct CertConfig {
    /// Hosts it is chosen for by SNI (empty: the default certificate).
    pub hosts: Vec<HostPattern>,
    /// The PEM chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The PEM private key.
    pub key: std::path::PathBuf,
    /// Where the certificate is set, `server.tls.certs[2]`, for errors.
    pub field: String,
}

/// Request headers removed from untrusted clients by default: frameworks
/// that honour them answer another URL or method than the one the cache
/// keyed (`X-Original-URL`, `X-Rewrite-URL` in IIS and Symfony;
/// `X-HTTP-Method-Override` and its variants in Rails, Express, Laravel).
pub const DEFAULT_STRIP_FROM_UNTRUSTED: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// `[admin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// Bearer token for `/admin/*`.
    pub token: Option<String>,
    /// Secret for `X-Rampart-Signature` (HMAC-SHA256 of an event's body).
    pub webhook_secret: Option<String>,
    /// What `/readyz` requires besides the node serving.
    pub ready: Readiness,
}

/// What `/readyz` requires for `200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Readiness {
    /// The node serves (listeners up, config loaded, not draining):
    /// upstreams that are down leave it ready, since it may still answer
    /// from the cache (`stale_if_error`) and a peer node would fare no
    /// better.
    #[default]
    Serving,
    /// Also every upstream has a target taking traffic.
    Upstreams,
}

impl Readiness {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Serving => "serving",
            Readiness::Upstreams => "upstreams",
        }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
        // Media types are case-insensitive (RFC 9110 §8.3.1); compared
        // without lowercasing a copy, as this runs on every response.
        let essence = content_type.split(';').next().unwrap_or("").trim();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(prefix) => essence
                .split_once('/')
                .is_some_and(|(top, _)| top.eq_ignore_ascii_case(prefix)),
            None => t.eq_ignore_ascii_case(essence),
        })
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Whether one JSON access-log line is written per request.
    pub access: bool,
    /// The share of requests logged (above 0, at most 1); a 5xx is always.
    pub access_sample: f64,
    /// How each line is written.
    pub access_format: AccessFormat,
    /// A file the lines are appended to (reopened on `SIGUSR1`); `None`:
    /// stderr, with the rest of the log.
    pub access_file: Option<std::path::PathBuf>,
}

/// `[tracing]`: each request's spans (the request, its cache lookups, a
/// coalesced wait, each upstream call) exported over OTLP/HTTP (protobuf)
/// to a collector.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's traces URL (`/v1/traces` added when the URL has no
    /// path, as `OTEL_EXPORTER_OTLP_ENDPOINT` does).
    pub otlp_endpoint: http::Uri,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// The share of new traces recorded (a caller's `traceparent` decides
    /// for the traces it continues).
    pub sample: f64,
    /// Deadline of one export request.
    pub timeout: Duration,
    /// Headers sent with each export (an API key, say).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// How access-log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// nginx's `combined` layout, then Rampart's fields as `key=value`.
    Combined,
}

/// `[[upstreams]]`.
#[derive(Debug, Clone, PartialEq)]
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
    /// The `Host` sent to the upstream.
    pub host_header: HostHeader,
    /// TLS to the targets (`https://` targets); `None` speaks plain HTTP.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 with prior knowledge to plain targets (gRPC servers); with
    /// TLS, HTTP/2 is chosen by ALPN instead.
    pub h2c: bool,
}

/// TLS to an upstream's targets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    /// PEM CA certificates the targets are verified against, instead of
    /// the system's roots.
    pub ca: Option<std::path::PathBuf>,
    /// The name sent as SNI and verified (default: the target's host).
    pub server_name: Option<String>,
    /// A client certificate chain and key (PEM) for mutual TLS.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Accept any certificate: no protection against interception.
    pub danger_accept_invalid_certs: bool,
}

/// The `Host` an upstream is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// The client's (as Traefik's `passHostHeader`, nginx's
    /// `proxy_set_header Host $host`).
    #[default]
    Client,
    /// The chosen target's `host:port` (nginx's default, `$proxy_host`).
    Target,
    /// This value.
    Fixed(http::HeaderValue),
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
    /// Every class, most important first.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Default,
        Priority::Low,
    ];

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
#[derive(Debug, Clone, PartialEq)]
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
    /// Hosts the route answers for; empty answers for every host.
    pub hosts: Vec<HostPattern>,
    /// How the path sent upstream differs from the client's.
    pub rewrite: PathRewrite,
    /// Edits to the request sent upstream.
    pub request_headers: HeaderEdits,
    /// Edits to every response the route gives.
    pub response_headers: HeaderEdits,
    /// HTTP/1.1 `Upgrade` (WebSocket and others) passed through; `None`
    /// answers upgrade requests `501`.
    pub upgrade: Option<UpgradeConfig>,
}

/// A route's `upgrade`: how long an upgraded connection may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeConfig {
    /// Closed after this long without a byte either way.
    pub idle_timeout: Duration,
    /// Closed after this long whatever it does.
    pub max_lifetime: Duration,
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
    /// What a request's `Cookie` does.
    pub cookies: CookiePolicy,
    /// What a response's `Set-Cookie` does.
    pub set_cookie: SetCookiePolicy,
    /// What a request's `Authorization` does when the key does not hold it.
    pub authorization: AuthorizationPolicy,
    /// How long an expired entry with a validator (`ETag`, `Last-Modified`)
    /// is kept past its stale windows, to be revalidated rather than fetched
    /// again.
    pub keep_stale: Duration,
    /// Serve a stale copy marked `must-revalidate`, `proxy-revalidate` or
    /// `no-cache` when the origin cannot be asked (against RFC 9111 §4.2.4;
    /// off by default).
    pub ignore_must_revalidate: bool,
}

/// What a request's `Cookie` header does on a cached route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookiePolicy {
    /// A request with cookies goes to the origin, unstored (the default on
    /// a route that sets `ttl`: the origin may personalise on a cookie and
    /// never say so).
    Bypass,
    /// Cookies are neither looked at nor part of the key (the origin's
    /// `Cache-Control` decides; the default with `respect_origin` alone).
    Ignore,
    /// These cookies are part of the key; others are ignored.
    Key(Vec<String>),
}

/// What a response's `Set-Cookie` does on a cached route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCookiePolicy {
    /// Never stored (the default): another user would get this one's cookie.
    #[default]
    Refuse,
    /// Stored without its `Set-Cookie` fields (the client that caused the
    /// fill still gets them).
    Strip,
}

/// What a request's `Authorization` does on a cached route whose key does
/// not hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorizationPolicy {
    /// Goes to the origin, unstored (the default).
    #[default]
    Bypass,
    /// Reused as RFC 9111 §3.5 permits: when the response says `public`,
    /// `s-maxage` or `must-revalidate`.
    FollowOrigin,
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
            cookies: CookiePolicy::Bypass,
            set_cookie: SetCookiePolicy::Refuse,
            authorization: AuthorizationPolicy::Bypass,
            keep_stale: DEFAULT_KEEP_STALE,
            ignore_must_revalidate: false,
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

/// How long an expired entry with a validator is kept for revalidation,
/// unless a route says otherwise.
pub const DEFAULT_KEEP_STALE: Duration = Duration::from_secs(3600);

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

/// Why a cache key part could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPartError {
    /// `header:` with a name that is not a header name.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// Neither `header:NAME` nor `cookie:NAME`.
    #[error("invalid key part {0:?}: write \"header:NAME\" or \"cookie:NAME\"")]
    Form(String),
}

impl KeyPart {
    /// Parses `header:NAME` or `cookie:NAME`.
    pub fn parse(s: &str) -> Result<Self, KeyPartError> {
        match s.split_once(':') {
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(KeyPart::Header)
                .map_err(|_| KeyPartError::HeaderName(name.to_string())),
            Some(("cookie", name)) if !name.trim().is_empty() => {
                Ok(KeyPart::Cookie(name.trim().to_string()))
            }
            _ => Err(KeyPartError::Form(s.to_string())),
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
