//! Prometheus metrics. Handles are created once per label set and cached, so
//! the request path pays an atomic add, not a registry lookup; every metric
//! is a fixed-size counter or histogram, so memory does not grow with traffic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rampart_cache::{CacheStatus, PurgeSource};
use rampart_guard::admission::Shed;

use crate::outcome::{LimitRefusal, RetryReason, UpstreamOutcome};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    route: String,
    result: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    route: String,
    limit: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    upstream: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    upstream: String,
    priority: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    upstream: String,
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    upstream: String,
    target: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    upstream: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    route: String,
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// Latency buckets, in seconds: fine below a millisecond for cache hits,
/// and on the round targets service levels are written in (p95 under 100,
/// 200 or 500 ms; 1, 2.5, 5 s), so `histogram_quantile` and alert rules
/// compare against a bucket edge instead of interpolating between powers
/// of two.
const LATENCY_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The `method` label: the methods of RFC 9110 and PATCH as they are, any
/// other as `OTHER`, so clients cannot add label values (and series) at will.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// A gauge exported only while the part it describes is configured (no
/// series for parts that are not): [`Self::set`] gives it a value and shows
/// it, [`Self::hide`] takes it out of the exposition (a reload that removes
/// the part).
#[derive(Debug, Clone)]
pub struct ConfiguredGauge {
    name: &'static str,
    help: &'static str,
    value: Gauge,
    shown: Arc<AtomicBool>,
}

impl ConfiguredGauge {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            value: Gauge::default(),
            shown: Arc::default(),
        }
    }

    /// Sets the value and exports the gauge.
    pub fn set(&self, value: i64) {
        self.value.set(value);
        self.shown.store(true, Ordering::Relaxed);
    }

    /// Leaves the gauge out of the exposition.
    pub fn hide(&self) {
        self.shown.store(false, Ordering::Relaxed);
    }
}

impl Collector for ConfiguredGauge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.shown.load(Ordering::Relaxed) {
            return Ok(());
        }
        let metric =
            encoder.encode_descriptor(self.name, self.help, None, self.value.metric_type())?;
        self.value.encode(metric)
    }
}

/// Handles by label values, so the hot path finds a metric without building
/// label strings. Keys are small tuples of integers and static strings, every
/// one from a bounded set (routes, statuses, method labels, cache results):
/// foldhash is several times cheaper than SipHash for them.
type Handles<K, M> = RwLock<HashMap<K, M, foldhash::fast::FixedState>>;

/// Applies `use_it` to the handle for `key`, made with `make` and remembered
/// on first use (under the read lock: no clone of the handle per call).
fn with_handle<K: std::hash::Hash + Eq, M: Clone>(
    handles: &Handles<K, M>,
    key: K,
    make: impl FnOnce() -> M,
    use_it: impl FnOnce(&M),
) {
    if let Some(h) = handles.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        use_it(h);
        return;
    }
    let h = make();
    use_it(
        handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(h),
    );
}

/// The gateway's metrics.
pub struct Metrics {
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    cache: Family<CacheLabels, Counter>,
    upstream: Family<UpstreamLabels, Histogram, fn() -> Histogram>,
    limited: Family<LimitLabels, Counter>,
    circuit: Family<TargetLabels, Gauge>,
    shed: Family<ShedLabels, Counter>,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_capacity: Family<NameLabels, Gauge>,
    queue_wait: Family<QueueLabels, Histogram, fn() -> Histogram>,
    transitions: Family<TransitionLabels, Counter>,
    healthy: Family<NameLabels, Gauge>,
    retries: Family<RetryLabels, Counter>,
    events: Family<EventLabels, Counter>,
    hits: Family<TierLabels, Counter>,
    purges: Family<SourceLabels, Counter>,
    purged_keys: Family<SourceLabels, Counter>,
    /// Tags in the memory tier's index (set at scrape time).
    pub l1_tags: Gauge,
    /// (tag, key) pairs in the memory tier's index (set at scrape time).
    pub l1_tag_links: Gauge,
    /// Warmer refetches made.
    pub warmed: Counter,
    /// Requests whose handling panicked (caught, answered 500).
    pub panics: Counter,
    /// Access-log lines dropped because the writer's queue was full.
    pub access_dropped: Counter,
    /// 1 while the last Redis call succeeded (set at scrape time); absent
    /// without `[cache] redis`.
    pub redis_up: ConfiguredGauge,
    /// Requests being handled now.
    pub in_flight: Gauge,
    /// L1 entries (set at scrape time).
    pub l1_entries: Gauge,
    /// L1 bytes charged against the budget (set at scrape time).
    pub l1_bytes: Gauge,
    /// L1 byte budget.
    pub l1_budget: Gauge,
    /// Upgraded connections (WebSocket…) open now.
    pub upgraded_open: Gauge,
    upgraded_bytes: Family<DirectionLabels, Counter>,
    request_handles: Handles<(usize, &'static str, u16), Histogram>,
    cache_handles: Handles<(usize, &'static str, &'static str), Counter>,
    hit_handles: Handles<(usize, &'static str), Counter>,
    route_names: Vec<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric in `registry`; `route_names` label
    /// route-indexed metrics.
    pub fn new(route_names: Vec<String>, registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from receiving a request to sending its response headers, by route, method and status",
            requests.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_results",
            "Cache outcomes by route: hit, stale, collapsed, revalidated, miss, bypass, uncacheable (with reason)",
            cache.clone(),
        );
        let upstream = Family::<UpstreamLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "upstream_duration_seconds",
            "Time to an upstream's response headers, by upstream and outcome (status class or error)",
            upstream.clone(),
        );
        let limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by route, limit and reason (limited or table-full)",
            limited.clone(),
        );
        let circuit = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "circuit_state",
            "Circuit breaker state per upstream target: 0 closed, 1 half-open, 2 open",
            circuit.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "shed_requests",
            "Requests refused by an upstream's admission control, by priority and reason (queue-full, displaced, timeout)",
            shed.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Requests waiting for an upstream slot, by priority",
            queue_depth.clone(),
        );
        let queue_capacity = Family::<NameLabels, Gauge>::default();
        registry.register(
            "queue_capacity",
            "Requests an upstream's admission queue holds at most (all priorities)",
            queue_capacity.clone(),
        );
        let queue_wait = Family::<QueueLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "queue_wait_seconds",
            "Time requests waited for an upstream slot (admitted or not), by priority",
            queue_wait.clone(),
        );
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "circuit_transitions",
            "Circuit breaker state changes per upstream target, by the state entered",
            transitions.clone(),
        );
        let healthy = Family::<NameLabels, Gauge>::default();
        registry.register(
            "upstream_healthy_targets",
            "Targets of an upstream taking traffic: passing active health checks, circuit not open",
            healthy.clone(),
        );
        let retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "upstream_retries",
            "Requests sent again, by upstream and reason (connect-error and 503 to another target; closed: the connection closed before any response)",
            retries.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Domain events accepted, by name", events.clone());
        let hits = Family::<TierLabels, Counter>::default();
        registry.register(
            "cache_hits",
            "Requests answered from the cache, by route and tier (l1 memory, l2 Redis)",
            hits.clone(),
        );
        let purges = Family::<SourceLabels, Counter>::default();
        registry.register(
            "purges",
            "Purges applied on this node, by source (api, event, pubsub, method, peer, flush)",
            purges.clone(),
        );
        let purged_keys = Family::<SourceLabels, Counter>::default();
        registry.register(
            "purged_keys",
            "Cache keys removed on this node, by the purge's source",
            purged_keys.clone(),
        );
        let l1_tags = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "cache_l1_tags",
            "Distinct tags in the in-memory cache's tag index",
            l1_tags.clone(),
        );
        let l1_tag_links = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "cache_l1_tag_links",
            "(tag, key) pairs in the in-memory cache's tag index",
            l1_tag_links.clone(),
        );
        let warmed = Counter::default();
        registry.register(
            "cache_warmer_fetches",
            "Refetches made by [[warmers]]",
            warmed.clone(),
        );
        let panics = Counter::default();
        registry.register(
            "panics",
            "Requests whose handling panicked: caught, answered 500 and logged (a bug to report)",
            panics.clone(),
        );
        let access_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the file writer fell behind (its queue was full)",
            access_dropped.clone(),
        );
        let redis_up = ConfiguredGauge::new(
            "redis_up",
            "1 while Redis answers, 0 when the last call failed (only with [cache] redis)",
        );
        registry.register_collector(Box::new(redis_up.clone()));
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            in_flight.clone(),
        );
        let l1_entries = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "cache_l1_entries",
            "Keys in the in-memory cache",
            l1_entries.clone(),
        );
        let l1_bytes = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "cache_l1_bytes",
            "Bytes charged to the in-memory cache",
            l1_bytes.clone(),
        );
        let l1_budget = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "cache_l1_budget_bytes",
            "The in-memory cache's byte budget",
            l1_budget.clone(),
        );
        let upgraded_open = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "upgraded_connections",
            "Upgraded connections (WebSocket and other HTTP/1.1 upgrades) open now",
            upgraded_open.clone(),
        );
        let upgraded_bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "upgraded_bytes",
            "Bytes copied over upgraded connections, by direction (to-upstream, to-client)",
            upgraded_bytes.clone(),
        );
        Self {
            upgraded_open,
            upgraded_bytes,
            requests,
            cache,
            upstream,
            limited,
            circuit,
            shed,
            queue_depth,
            queue_capacity,
            queue_wait,
            transitions,
            healthy,
            retries,
            events,
            hits,
            purges,
            purged_keys,
            l1_tags,
            l1_tag_links,
            warmed,
            panics,
            access_dropped,
            redis_up,
            in_flight,
            l1_entries,
            l1_bytes,
            l1_budget,
            request_handles: RwLock::default(),
            cache_handles: RwLock::default(),
            hit_handles: RwLock::default(),
            route_names,
        }
    }

    /// The same metrics labelled for another route table, as a reload
    /// needs: every family, counter and gauge is shared with `self` (so
    /// counts carry on in the one registry), only the route names and the
    /// handle caches keyed by route index are new.
    pub fn with_routes(&self, route_names: Vec<String>) -> Self {
        Self {
            upgraded_open: self.upgraded_open.clone(),
            upgraded_bytes: self.upgraded_bytes.clone(),
            requests: self.requests.clone(),
            cache: self.cache.clone(),
            upstream: self.upstream.clone(),
            limited: self.limited.clone(),
            circuit: self.circuit.clone(),
            shed: self.shed.clone(),
            queue_depth: self.queue_depth.clone(),
            queue_capacity: self.queue_capacity.clone(),
            queue_wait: self.queue_wait.clone(),
            transitions: self.transitions.clone(),
            healthy: self.healthy.clone(),
            retries: self.retries.clone(),
            events: self.events.clone(),
            hits: self.hits.clone(),
            purges: self.purges.clone(),
            purged_keys: self.purged_keys.clone(),
            l1_tags: self.l1_tags.clone(),
            l1_tag_links: self.l1_tag_links.clone(),
            warmed: self.warmed.clone(),
            panics: self.panics.clone(),
            access_dropped: self.access_dropped.clone(),
            redis_up: self.redis_up.clone(),
            in_flight: self.in_flight.clone(),
            l1_entries: self.l1_entries.clone(),
            l1_bytes: self.l1_bytes.clone(),
            l1_budget: self.l1_budget.clone(),
            request_handles: RwLock::default(),
            cache_handles: RwLock::default(),
            hit_handles: RwLock::default(),
            route_names,
        }
    }

    /// The byte counters of upgraded connections: to the upstream, to the client.
    pub fn upgraded_bytes(&self) -> (Counter, Counter) {
        let get = |direction| {
            self.upgraded_bytes
                .get_or_create(&DirectionLabels { direction })
                .clone()
        };
        (get("to-upstream"), get("to-client"))
    }

    fn route_name(&self, route: Option<usize>) -> String {
        route
            .and_then(|r| self.route_names.get(r).cloned())
            .unwrap_or_else(|| "(none)".into())
    }

    /// Records one finished request.
    pub fn request(
        &self,
        route: Option<usize>,
        method: &http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        let key = (route.unwrap_or(usize::MAX), method, status);
        with_handle(
            &self.request_handles,
            key,
            || {
                self.requests
                    .get_or_create(&RequestLabels {
                        route: self.route_name(route),
                        method: method.to_string(),
                        status,
                    })
                    .clone()
            },
            |h| h.observe(elapsed.as_secs_f64()),
        );
    }

    /// Records a cache outcome.
    pub fn cache(&self, route: usize, status: &CacheStatus) {
        let reason = status.reason().map_or("", |r| r.as_str());
        let key = (route, status.label(), reason);
        with_handle(
            &self.cache_handles,
            key,
            || {
                self.cache
                    .get_or_create(&CacheLabels {
                        route: self.route_name(Some(route)),
                        result: status.label().to_string(),
                        reason: reason.to_string(),
                    })
                    .clone()
            },
            |h| {
                h.inc();
            },
        );
        if let Some(tier) = status.tier() {
            let tier = tier.as_str();
            with_handle(
                &self.hit_handles,
                (route, tier),
                || {
                    self.hits
                        .get_or_create(&TierLabels {
                            route: self.route_name(Some(route)),
                            tier: tier.to_string(),
                        })
                        .clone()
                },
                |h| {
                    h.inc();
                },
            );
        }
    }

    /// Records an upstream exchange.
    pub fn upstream(&self, upstream: &str, outcome: UpstreamOutcome, elapsed: Duration) {
        self.upstream
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets a target's circuit state (0 closed, 1 half-open, 2 open).
    pub fn circuit_state(&self, upstream: &str, target: &str, state: u8) {
        self.circuit
            .get_or_create(&TargetLabels {
                upstream: upstream.to_string(),
                target: target.to_string(),
            })
            .set(i64::from(state));
    }

    /// Records a request shed by admission control.
    pub fn shed(&self, upstream: &str, priority: &str, reason: Shed) {
        self.shed
            .get_or_create(&ShedLabels {
                upstream: upstream.to_string(),
                priority: priority.to_string(),
                reason: reason.as_str().to_string(),
            })
            .inc();
    }

    /// Sets the queue depth of one priority class.
    pub fn queue_depth(&self, upstream: &str, priority: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&QueueLabels {
                upstream: upstream.to_string(),
                priority: priority.to_string(),
            })
            .set(depth as i64);
    }

    /// Sets how many requests an upstream's admission queue holds at most.
    pub fn queue_capacity(&self, upstream: &str, capacity: usize) {
        self.queue_capacity
            .get_or_create(&NameLabels {
                upstream: upstream.to_string(),
            })
            .set(capacity as i64);
    }

    /// Records how long a request waited for an upstream slot.
    pub fn queue_wait(&self, upstream: &str, priority: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&QueueLabels {
                upstream: upstream.to_string(),
                priority: priority.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    /// The counter of a target's breaker entering state `to`.
    pub fn circuit_transition(&self, upstream: &str, target: &str, to: &str) -> Counter {
        self.transitions
            .get_or_create(&TransitionLabels {
                upstream: upstream.to_string(),
                target: target.to_string(),
                to: to.to_string(),
            })
            .clone()
    }

    /// Sets how many targets of an upstream take traffic.
    pub fn healthy_targets(&self, upstream: &str, count: usize) {
        self.healthy
            .get_or_create(&NameLabels {
                upstream: upstream.to_string(),
            })
            .set(count as i64);
    }

    /// Counts an accepted event.
    pub fn event(&self, name: &str) {
        self.events
            .get_or_create(&EventLabels {
                event: name.to_string(),
            })
            .inc();
    }

    /// Counts a purge from `source` and the keys it removed.
    pub fn purged(&self, source: PurgeSource, keys: usize) {
        let labels = SourceLabels {
            source: source.as_str().to_string(),
        };
        self.purges.get_or_create(&labels).inc();
        self.purged_keys.get_or_create(&labels).inc_by(keys as u64);
    }

    /// The counter of an upstream's retries for `reason`.
    pub fn retry(&self, upstream: &str, reason: RetryReason) -> Counter {
        self.retries
            .get_or_create(&RetryLabels {
                upstream: upstream.to_string(),
                reason: reason.as_str().to_string(),
            })
            .clone()
    }

    /// Records a request refused by a rate limit.
    pub fn limited(&self, route: usize, limit: &str, reason: LimitRefusal) {
        self.limited
            .get_or_create(&LimitLabels {
                route: self.route_name(Some(route)),
                limit: limit.to_string(),
                reason: reason.as_str().to_string(),
            })
            .inc();
    }
}
