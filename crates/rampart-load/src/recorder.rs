//! The recorder: one task receives every sample and owns every histogram, so
//! virtual users never contend on a lock and memory stays flat (histograms
//! have fixed size; the series grows by one point per second).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::report::{new_histogram, Latency, SecondPoint, Stats};

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Scenario index.
    pub scenario: usize,
    /// Step index within the scenario.
    pub step: usize,
    /// Latency, µs (from the intended start for open executors).
    pub latency_us: u64,
    /// Service time, µs (from the send).
    pub service_us: u64,
    /// Failed: no response or status ≥ 400.
    pub failed: bool,
    /// Checks passed.
    pub checks_passed: u32,
    /// Checks failed.
    pub checks_failed: u32,
    /// `Some(hit)` when the response reported a cache status.
    pub cache_hit: Option<bool>,
}

const SHARDS: usize = 16;

/// Where virtual users leave their samples: a few mutex-guarded buffers,
/// drained by the recorder every 10 ms. A user pays an uncontended lock and a
/// push per request, and wakes nobody; the recorder works in batches.
#[derive(Debug, Default)]
pub struct Samples {
    shards: [Mutex<Vec<Sample>>; SHARDS],
    closed: AtomicBool,
}

impl Samples {
    /// Leaves a sample (from user `vu`, which picks the shard).
    pub fn push(&self, vu: u64, sample: Sample) {
        let shard = &self.shards[(vu as usize) % SHARDS];
        shard.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
    }

    /// Says no more samples will come; the recorder finishes after draining.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn drain(&self, into: &mut Vec<Sample>) {
        for shard in &self.shards {
            let mut guard = shard.lock().unwrap_or_else(|p| p.into_inner());
            into.append(&mut guard);
        }
    }
}

/// Counters shared with the executors.
#[derive(Debug, Default)]
pub struct Counters {
    /// Iterations started.
    pub iterations: AtomicU64,
    /// Iterations started late.
    pub late_starts: AtomicU64,
    /// Iterations dropped for want of a free virtual user.
    pub dropped: AtomicU64,
    /// Virtual users busy now.
    pub busy: AtomicU64,
}

pub(crate) struct Acc {
    requests: u64,
    failures: u64,
    checks_passed: u64,
    checks_failed: u64,
    cache_hits: u64,
    cache_reported: u64,
    latency: Histogram<u64>,
    service: Histogram<u64>,
}

impl Acc {
    fn new() -> Self {
        Self {
            requests: 0,
            failures: 0,
            checks_passed: 0,
            checks_failed: 0,
            cache_hits: 0,
            cache_reported: 0,
            latency: new_histogram(),
            service: new_histogram(),
        }
    }

    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        self.failures += u64::from(s.failed);
        self.checks_passed += u64::from(s.checks_passed);
        self.checks_failed += u64::from(s.checks_failed);
        if let Some(hit) = s.cache_hit {
            self.cache_reported += 1;
            self.cache_hits += u64::from(hit);
        }
        self.latency.saturating_record(s.latency_us.max(1));
        self.service.saturating_record(s.service_us.max(1));
    }

    fn stats(&self, scenario: &str, step: &str) -> Stats {
        Stats {
            scenario: scenario.to_string(),
            step: step.to_string(),
            requests: self.requests,
            failures: self.failures,
            checks_passed: self.checks_passed,
            checks_failed: self.checks_failed,
            cache_hits: self.cache_hits,
            cache_reported: self.cache_reported,
            latency: Latency::from_histogram(&self.latency),
            service: Latency::from_histogram(&self.service),
        }
    }
}

/// What the recorder hands back at the end.
pub struct Recorded {
    /// The whole run.
    pub overall: Stats,
    /// Per scenario.
    pub scenarios: Vec<Stats>,
    /// Per step.
    pub steps: Vec<Stats>,
    /// Per second.
    pub series: Vec<SecondPoint>,
}

/// A live view for the progress line and early aborts, refreshed each second.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Seconds elapsed.
    pub elapsed: u64,
    /// Requests in the last second.
    pub rps: u64,
    /// Latency p95 in the last second, ms.
    pub p95_ms: f64,
    /// Failures so far.
    pub failures: u64,
    /// Requests so far.
    pub requests: u64,
    /// Busy users.
    pub users: u64,
}

/// Runs the recorder until [`Samples::close`] (then drains what is left). `names[i]` is scenario i's
/// name and its step names. `on_second` sees the totals so far each second.
pub async fn record(
    samples: Arc<Samples>,
    names: Vec<(String, Vec<String>)>,
    counters: Arc<Counters>,
    started: Instant,
    mut on_second: impl FnMut(&Live, &Recorded) + Send,
) -> Recorded {
    let mut overall = Acc::new();
    let mut scenarios: Vec<Acc> = names.iter().map(|_| Acc::new()).collect();
    let mut steps: Vec<Vec<Acc>> = names
        .iter()
        .map(|(_, s)| s.iter().map(|_| Acc::new()).collect())
        .collect();
    let mut series: Vec<SecondPoint> = Vec::new();
    let mut second = Acc::new();
    let mut second_index = 0u64;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let snapshot =
        |overall: &Acc, scenarios: &[Acc], steps: &[Vec<Acc>], series: &[SecondPoint]| Recorded {
            overall: overall.stats("", ""),
            scenarios: scenarios
                .iter()
                .zip(&names)
                .map(|(a, (n, _))| a.stats(n, ""))
                .collect(),
            steps: steps
                .iter()
                .zip(&names)
                .flat_map(|(accs, (n, step_names))| {
                    accs.iter().zip(step_names).map(move |(a, s)| a.stats(n, s))
                })
                .collect(),
            series: series.to_vec(),
        };
    let mut drain = tokio::time::interval(Duration::from_millis(10));
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Sample> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = tick.tick() => {
                // Samples waiting in the buffers belong to the second that ends now.
                samples.drain(&mut batch);
                for s in batch.drain(..) {
                    add_sample(&s, &mut overall, &mut scenarios, &mut steps, &mut second);
                }
                second_index += 1;
                let point = close_second(&mut second, second_index, counters.busy.load(Ordering::Relaxed));
                let live = Live {
                    elapsed: second_index,
                    rps: point.requests,
                    p95_ms: point.p95_ms,
                    failures: overall.failures,
                    requests: overall.requests,
                    users: point.users,
                };
                series.push(point);
                // Cheap summaries only: the full snapshot serialises every histogram.
                let partial = Recorded { overall: overall.stats("", ""), scenarios: Vec::new(), steps: Vec::new(), series: Vec::new() };
                on_second(&live, &partial);
            }
            _ = drain.tick() => {
                let closed = samples.closed.load(Ordering::Acquire);
                samples.drain(&mut batch);
                for s in batch.drain(..) {
                    add_sample(&s, &mut overall, &mut scenarios, &mut steps, &mut second);
                }
                if closed {
                    break;
                }
            }
        }
    }
    if second.requests > 0 {
        second_index += 1;
        series.push(close_second(&mut second, second_index, 0));
    }
    snapshot(&overall, &scenarios, &steps, &series)
}

fn add_sample(
    s: &Sample,
    overall: &mut Acc,
    scenarios: &mut [Acc],
    steps: &mut [Vec<Acc>],
    second: &mut Acc,
) {
    overall.add(s);
    if let Some(a) = scenarios.get_mut(s.scenario) {
        a.add(s);
    }
    if let Some(a) = steps.get_mut(s.scenario).and_then(|v| v.get_mut(s.step)) {
        a.add(s);
    }
    second.add(s);
}

fn close_second(acc: &mut Acc, t: u64, users: u64) -> SecondPoint {
    let ms = |q: f64| acc.latency.value_at_quantile(q) as f64 / 1000.0;
    let point = SecondPoint {
        t,
        requests: acc.requests,
        failures: acc.failures,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        users,
    };
    *acc = Acc::new();
    point
}
