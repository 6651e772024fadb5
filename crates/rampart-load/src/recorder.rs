//! The recorder: one task receives every sample and owns every histogram, so
//! virtual users never contend on a lock and memory stays flat (histograms
//! have fixed size; the series grows by one point per second).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::failure::{status_class, Failure};
use crate::report::{new_histogram, Latency, SecondPoint, Stats, StepPoint};

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
    /// The response's status; 0 when there was none.
    pub status: u16,
    /// Why there was no whole response.
    pub failure: Option<Failure>,
    /// Checks passed.
    pub checks_passed: u32,
    /// The checks that failed: bit `i` for the step's check `i` (the 64th
    /// stands for itself and any after it).
    pub checks_failed: u64,
    /// `Some(hit)` when the response reported a cache status.
    pub cache_hit: Option<bool>,
    /// Bytes sent for the request.
    pub bytes_sent: u64,
    /// Bytes of the response received.
    pub bytes_received: u64,
}

impl Sample {
    /// Failed: no whole response, or a status of 400 or more.
    pub fn failed(&self) -> bool {
        self.failure.is_some() || self.status == 0 || self.status >= 400
    }
}

/// A scenario's name and, per step, its name and its checks' labels: what
/// the counts are reported under.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// The scenario.
    pub scenario: String,
    /// Per step: its name and its checks' labels.
    pub steps: Vec<(String, Vec<String>)>,
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
    bytes_sent: u64,
    bytes_received: u64,
    /// Responses by status code (index: the code; 0 is unused).
    statuses: Box<[u64; 600]>,
    /// Transport failures, by [`Failure::ALL`] order.
    transport: [u64; Failure::ALL.len()],
    /// Failed checks by where and which: (scenario, step, check).
    checks: BTreeMap<(usize, usize, u32), u64>,
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
            bytes_sent: 0,
            bytes_received: 0,
            statuses: Box::new([0; 600]),
            transport: [0; Failure::ALL.len()],
            checks: BTreeMap::new(),
            latency: new_histogram(),
            service: new_histogram(),
        }
    }

    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        self.failures += u64::from(s.failed());
        self.checks_passed += u64::from(s.checks_passed);
        self.checks_failed += u64::from(s.checks_failed.count_ones());
        let mut mask = s.checks_failed;
        while mask != 0 {
            let check = mask.trailing_zeros();
            mask &= mask - 1;
            *self.checks.entry((s.scenario, s.step, check)).or_default() += 1;
        }
        if let Some(hit) = s.cache_hit {
            self.cache_reported += 1;
            self.cache_hits += u64::from(hit);
        }
        self.bytes_sent += s.bytes_sent;
        self.bytes_received += s.bytes_received;
        match s.failure {
            Some(f) => self.transport[f as usize] += 1,
            None => {
                if let Some(n) = self.statuses.get_mut(usize::from(s.status)) {
                    *n += 1;
                }
            }
        }
        self.latency.saturating_record(s.latency_us.max(1));
        self.service.saturating_record(s.service_us.max(1));
    }

    /// Responses by status code, as reports key them.
    fn statuses(&self) -> BTreeMap<String, u64> {
        self.statuses
            .iter()
            .enumerate()
            .filter(|(code, n)| *code > 0 && **n > 0)
            .map(|(code, n)| (code.to_string(), *n))
            .collect()
    }

    /// Failed requests and checks by reason, as reports key them.
    fn errors(&self, names: &[Names]) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (f, n) in Failure::ALL.iter().zip(self.transport) {
            if n > 0 {
                out.insert(f.as_str().to_string(), n);
            }
        }
        for (code, n) in self.statuses.iter().enumerate() {
            if let (Some(class), true) = (status_class(code as u16), *n > 0) {
                *out.entry(class.to_string()).or_default() += n;
            }
        }
        for ((scenario, step, check), n) in &self.checks {
            let (scenario_name, step_name, label) = names
                .get(*scenario)
                .and_then(|s| {
                    let (step_name, labels) = s.steps.get(*step)?;
                    Some((
                        s.scenario.as_str(),
                        step_name.as_str(),
                        labels.get(*check as usize)?,
                    ))
                })
                .map_or(("?", "?", "?"), |(a, b, c)| (a, b, c.as_str()));
            *out.entry(format!(
                "check failed: {label} ({scenario_name}/{step_name})"
            ))
            .or_default() += n;
        }
        out
    }

    fn stats(&self, scenario: &str, step: &str, names: &[Names]) -> Stats {
        Stats {
            scenario: scenario.to_string(),
            step: step.to_string(),
            requests: self.requests,
            failures: self.failures,
            checks_passed: self.checks_passed,
            checks_failed: self.checks_failed,
            cache_hits: self.cache_hits,
            cache_reported: self.cache_reported,
            statuses: self.statuses(),
            errors: self.errors(names),
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
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

/// Runs the recorder until [`Samples::close`] (then drains what is left).
/// `names[i]` names scenario i, its steps and their checks. `on_second`
/// sees the totals so far each second.
pub async fn record(
    samples: Arc<Samples>,
    names: Vec<Names>,
    counters: Arc<Counters>,
    started: Instant,
    mut on_second: impl FnMut(&Live, &Recorded) + Send,
) -> Recorded {
    let mut overall = Acc::new();
    let mut scenarios: Vec<Acc> = names.iter().map(|_| Acc::new()).collect();
    let mut steps: Vec<Vec<Acc>> = names
        .iter()
        .map(|n| n.steps.iter().map(|_| Acc::new()).collect())
        .collect();
    let mut series: Vec<SecondPoint> = Vec::new();
    let mut second = Acc::new();
    // Per step within the second, when there is more than one step.
    let mut step_seconds: Vec<Vec<StepSecond>> = names
        .iter()
        .map(|n| {
            n.steps
                .iter()
                .map(|(step, _)| StepSecond::new(&n.scenario, step))
                .collect()
        })
        .collect();
    if step_seconds.iter().map(Vec::len).sum::<usize>() < 2 {
        step_seconds.clear();
    }
    let mut second_index = 0u64;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let snapshot =
        |overall: &Acc, scenarios: &[Acc], steps: &[Vec<Acc>], series: &[SecondPoint]| Recorded {
            overall: overall.stats("", "", &names),
            scenarios: scenarios
                .iter()
                .zip(&names)
                .map(|(a, n)| a.stats(&n.scenario, "", &names))
                .collect(),
            steps: steps
                .iter()
                .zip(&names)
                .flat_map(|(accs, n)| {
                    accs.iter()
                        .zip(&n.steps)
                        .map(|(a, (step, _))| a.stats(&n.scenario, step, &names))
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
                    add_step_second(&s, &mut step_seconds);
                }
                second_index += 1;
                let mut point = close_second(&mut second, second_index, counters.busy.load(Ordering::Relaxed));
                point.steps = close_step_seconds(&mut step_seconds);
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
                let partial = Recorded { overall: overall.stats("", "", &[]), scenarios: Vec::new(), steps: Vec::new(), series: Vec::new() };
                on_second(&live, &partial);
            }
            _ = drain.tick() => {
                let closed = samples.closed.load(Ordering::Acquire);
                samples.drain(&mut batch);
                for s in batch.drain(..) {
                    add_sample(&s, &mut overall, &mut scenarios, &mut steps, &mut second);
                    add_step_second(&s, &mut step_seconds);
                }
                if closed {
                    break;
                }
            }
        }
    }
    if second.requests > 0 {
        second_index += 1;
        let mut point = close_second(&mut second, second_index, 0);
        point.steps = close_step_seconds(&mut step_seconds);
        series.push(point);
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

/// One step's requests within the current second.
struct StepSecond {
    name: String,
    requests: u64,
    failures: u64,
    latency: Histogram<u64>,
}

impl StepSecond {
    fn new(scenario: &str, step: &str) -> Self {
        Self {
            name: format!("{scenario}/{step}"),
            requests: 0,
            failures: 0,
            // Two significant digits: a per-second chart's precision.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .unwrap_or_else(|_| new_histogram()),
        }
    }
}

fn add_step_second(s: &Sample, seconds: &mut [Vec<StepSecond>]) {
    if let Some(a) = seconds.get_mut(s.scenario).and_then(|v| v.get_mut(s.step)) {
        a.requests += 1;
        a.failures += u64::from(s.failed());
        a.latency.saturating_record(s.latency_us.max(1));
    }
}

/// The steps' points of the second that ends, and a fresh second.
fn close_step_seconds(seconds: &mut [Vec<StepSecond>]) -> Vec<StepPoint> {
    let mut out = Vec::new();
    for a in seconds.iter_mut().flatten() {
        if a.requests > 0 {
            out.push(StepPoint {
                step: a.name.clone(),
                requests: a.requests,
                failures: a.failures,
                p95_ms: a.latency.value_at_quantile(0.95) as f64 / 1000.0,
            });
        }
        a.requests = 0;
        a.failures = 0;
        a.latency.reset();
    }
    out
}

fn close_second(acc: &mut Acc, t: u64, users: u64) -> SecondPoint {
    let ms = |q: f64| acc.latency.value_at_quantile(q) as f64 / 1000.0;
    let mut classes = BTreeMap::new();
    for (code, n) in acc.statuses.iter().enumerate() {
        if code > 0 && *n > 0 {
            *classes.entry(format!("{}xx", code / 100)).or_default() += n;
        }
    }
    let failed = Failure::ALL.iter().zip(acc.transport);
    let point = SecondPoint {
        t,
        requests: acc.requests,
        failures: acc.failures,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        users,
        classes,
        errors: failed
            .filter(|(_, n)| *n > 0)
            .map(|(f, n)| (f.as_str().to_string(), n))
            .collect(),
        cache_hits: acc.cache_hits,
        cache_reported: acc.cache_reported,
        steps: Vec::new(),
    };
    *acc = Acc::new();
    point
}
