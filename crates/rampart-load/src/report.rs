//! The report: a documented, versioned JSON schema (`rampart-load/1`) that
//! carries the HDR histograms themselves, so reports merge and compare exactly.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::threshold::{Aggregate, Filter, Metric, Threshold};

/// The schema identifier written into every report.
pub const SCHEMA: &str = "rampart-load/2";

/// Earlier schemas still read (their reports lack what was added since:
/// statuses, errors and bytes read as empty).
pub const READABLE: [&str; 2] = ["rampart-load/1", SCHEMA];

/// Latency histograms record microseconds from 1 µs to one hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// A histogram with its summary, as stored in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Minimum, ms.
    pub min_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// The HDR histogram (microseconds), V2-serialised and base64-encoded.
    pub hdr: String,
}

impl Latency {
    /// Summarises and serialises a histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut bytes = Vec::new();
        let _ = V2Serializer::new().serialize(h, &mut bytes);
        let empty = h.is_empty();
        Self {
            count: h.len(),
            mean_ms: if empty { 0.0 } else { h.mean() / 1000.0 },
            min_ms: if empty { 0.0 } else { ms(h.min()) },
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            hdr: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The histogram back.
    pub fn histogram(&self) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hdr)
            .map_err(|e| format!("bad histogram encoding: {e}"))?;
        Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| format!("bad histogram: {e:?}"))
    }
}

/// Counts and latencies for one step, one scenario, or the whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// Scenario name (empty for the whole run).
    pub scenario: String,
    /// Step name (empty for a scenario or the whole run).
    pub step: String,
    /// Requests completed (with or without a response).
    pub requests: u64,
    /// Requests that failed: no response, or status ≥ 400.
    pub failures: u64,
    /// Checks that passed.
    pub checks_passed: u64,
    /// Checks that failed.
    pub checks_failed: u64,
    /// Responses whose `Cache-Status` / `X-Cache` said hit.
    pub cache_hits: u64,
    /// Responses with a `Cache-Status` / `X-Cache` header at all.
    pub cache_reported: u64,
    /// Responses by status code (`"200": 1000`); requests with no whole
    /// response are counted in `errors` instead.
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
    /// What went wrong, by reason: requests with no whole response
    /// (`connect refused`, `connect timeout`, `connect error`, `tls error`,
    /// `request timeout`, `reset`, `closed`, `bad response`, `bad request`),
    /// responses that count as failed (`http 4xx`, `http 5xx`), and failed
    /// checks (`check failed: LABEL (scenario/step)`).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Bytes sent (request heads and bodies).
    #[serde(default)]
    pub bytes_sent: u64,
    /// Bytes received (response heads and bodies).
    #[serde(default)]
    pub bytes_received: u64,
    /// Latency from the intended start (open executors) or the send (closed).
    pub latency: Latency,
    /// Service time: from the actual send to the end of the response.
    pub service: Latency,
}

impl Stats {
    /// Nothing recorded yet.
    pub fn empty(scenario: &str, step: &str) -> Self {
        let none = Latency::from_histogram(&new_histogram());
        Self {
            scenario: scenario.to_string(),
            step: step.to_string(),
            requests: 0,
            failures: 0,
            checks_passed: 0,
            checks_failed: 0,
            cache_hits: 0,
            cache_reported: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            bytes_sent: 0,
            bytes_received: 0,
            latency: none.clone(),
            service: none,
        }
    }

    /// How reports name it: `scenario/step`, or `all` for the whole run.
    pub fn label(&self) -> String {
        if self.scenario.is_empty() {
            "all".to_string()
        } else {
            format!("{}/{}", self.scenario, self.step)
        }
    }

    /// Share of failed requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }

    /// Share of passed checks (1 when there were none).
    pub fn checks_rate(&self) -> f64 {
        let total = self.checks_passed + self.checks_failed;
        if total == 0 {
            1.0
        } else {
            self.checks_passed as f64 / total as f64
        }
    }

    /// Share of hits among responses that reported a cache status.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.cache_reported > 0).then(|| self.cache_hits as f64 / self.cache_reported as f64)
    }

    /// Responses by status code, the most frequent first.
    pub fn statuses_by_count(&self) -> Vec<(&str, u64)> {
        by_count(&self.statuses)
    }

    /// What went wrong by reason, the most frequent first.
    pub fn errors_by_count(&self) -> Vec<(&str, u64)> {
        by_count(&self.errors)
    }

    /// Adds another record's counts and histograms (exact).
    pub fn merge(&mut self, other: &Stats) -> Result<(), String> {
        self.requests += other.requests;
        self.failures += other.failures;
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
        self.cache_hits += other.cache_hits;
        self.cache_reported += other.cache_reported;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        for (key, n) in &other.statuses {
            *self.statuses.entry(key.clone()).or_default() += n;
        }
        for (key, n) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += n;
        }
        for (mine, theirs) in [
            (&mut self.latency, &other.latency),
            (&mut self.service, &other.service),
        ] {
            let mut h = mine.histogram()?;
            h.add(theirs.histogram()?)
                .map_err(|e| format!("cannot merge histograms: {e:?}"))?;
            *mine = Latency::from_histogram(&h);
        }
        Ok(())
    }
}

/// A count table's entries, the largest first (ties in key order).
fn by_count(counts: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut out: Vec<(&str, u64)> = counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out
}

/// A byte count as people read it (`1.2 MiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondPoint {
    /// Seconds since the start.
    pub t: u64,
    /// Requests completed in that second.
    pub requests: u64,
    /// Failures in that second.
    pub failures: u64,
    /// Latency median, ms.
    pub p50_ms: f64,
    /// Latency 95th percentile, ms.
    pub p95_ms: f64,
    /// Latency 99th percentile, ms.
    pub p99_ms: f64,
    /// Virtual users busy at the end of that second.
    pub users: u64,
    /// Responses in that second by status class (`"2xx"`, `"5xx"`).
    #[serde(default)]
    pub classes: BTreeMap<String, u64>,
    /// Requests with no whole response in that second, by reason.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Responses in that second whose cache status said hit.
    #[serde(default)]
    pub cache_hits: u64,
    /// Responses in that second that reported a cache status.
    #[serde(default)]
    pub cache_reported: u64,
    /// Each step's part of that second (when the plan has more than one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepPoint>,
}

/// One step's part of a second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepPoint {
    /// `scenario/step`.
    pub step: String,
    /// Requests completed.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// Latency 95th percentile, ms.
    pub p95_ms: f64,
}

/// A threshold's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written.
    pub threshold: String,
    /// The measured value (ms for durations).
    pub value: f64,
    /// Whether it held.
    pub ok: bool,
}

/// What the generator saw of itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Generator {
    /// Largest delay of the generator's own 10 ms timer, ms.
    pub max_scheduling_lag_ms: f64,
    /// Mean process CPU use, in cores.
    pub mean_cpu_cores: f64,
    /// Cores available.
    pub cores: u64,
    /// Whether the generator, not the target, may have limited the run.
    pub saturated: bool,
    /// Whether the run was stopped early by the user (Ctrl-C, SIGTERM): the
    /// report covers the part that ran.
    #[serde(default)]
    pub interrupted: bool,
    /// Warnings for the reader.
    pub warnings: Vec<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Shards merged into this report (1 for a single run).
    pub shards: u64,
    /// Iterations started.
    pub iterations: u64,
    /// Iterations that started later than scheduled (by more than 10 ms).
    pub late_starts: u64,
    /// Iterations not started because every virtual user was busy.
    pub dropped_iterations: u64,
    /// The whole run.
    pub overall: Stats,
    /// Per scenario.
    pub scenarios: Vec<Stats>,
    /// Per step (scenario and step named).
    pub steps: Vec<Stats>,
    /// Per second.
    pub series: Vec<SecondPoint>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// The generator's view of itself.
    pub generator: Generator,
    /// What was run, where and when (for a report's header).
    #[serde(default)]
    pub run: RunInfo,
}

/// What was run, where and when.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// The target: the URL, or the scenario's base URL.
    #[serde(default)]
    pub target: String,
    /// When the run started (an HTTP date, UTC).
    #[serde(default)]
    pub started: String,
    /// The command line.
    #[serde(default)]
    pub command: String,
    /// The git commit of the directory it ran in, when it is a repository.
    #[serde(default)]
    pub commit: String,
}

impl Report {
    /// Requests per second over the run.
    pub fn rps(&self, stats: &Stats) -> f64 {
        if self.duration_s > 0.0 {
            stats.requests as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// Evaluates thresholds against this report.
    pub fn evaluate(&self, thresholds: &[Threshold]) -> Vec<ThresholdResult> {
        thresholds.iter().map(|t| self.evaluate_one(t)).collect()
    }

    fn evaluate_one(&self, t: &Threshold) -> ThresholdResult {
        let merged;
        let stats: &Stats = match &t.filter {
            Filter::All => &self.overall,
            Filter::Scenario(name) => match self.scenarios.iter().find(|s| &s.scenario == name) {
                Some(s) => s,
                None => {
                    return ThresholdResult {
                        threshold: t.text.clone(),
                        value: f64::NAN,
                        ok: false,
                    }
                }
            },
            Filter::Step(name) => {
                let mut matching = self.steps.iter().filter(|s| &s.step == name);
                let Some(first) = matching.next() else {
                    return ThresholdResult {
                        threshold: t.text.clone(),
                        value: f64::NAN,
                        ok: false,
                    };
                };
                let mut acc = first.clone();
                for s in matching {
                    let _ = acc.merge(s);
                }
                merged = acc;
                &merged
            }
        };
        let value = match (t.metric, t.aggregate) {
            (Metric::Duration, Aggregate::Percentile(p)) => stats
                .latency
                .histogram()
                .map_or(f64::NAN, |h| h.value_at_quantile(p / 100.0) as f64 / 1000.0),
            (Metric::Duration, Aggregate::Avg) => stats.latency.mean_ms,
            (Metric::Duration, Aggregate::Min) => stats.latency.min_ms,
            (Metric::Duration, Aggregate::Max) => stats.latency.max_ms,
            (Metric::Failed, _) => stats.error_rate(),
            (Metric::Checks, _) => stats.checks_rate(),
            (Metric::Reqs, Aggregate::Count) => stats.requests as f64,
            (Metric::Reqs, _) => self.rps(stats),
            _ => f64::NAN,
        };
        ThresholdResult {
            threshold: t.text.clone(),
            value,
            ok: !value.is_nan() && t.passes(value),
        }
    }

    /// Merges shard reports of the same plan: counts and histograms add up
    /// exactly; the series adds second by second.
    pub fn merge(reports: &[Report]) -> Result<Report, String> {
        let (first, rest) = reports.split_first().ok_or("nothing to merge")?;
        let mut out = first.clone();
        for r in rest {
            if !READABLE.contains(&r.schema.as_str()) {
                return Err(format!("unknown report schema {:?}", r.schema));
            }
            out.duration_s = out.duration_s.max(r.duration_s);
            out.shards += r.shards;
            out.iterations += r.iterations;
            out.late_starts += r.late_starts;
            out.dropped_iterations += r.dropped_iterations;
            out.overall.merge(&r.overall)?;
            for list in [
                (&mut out.scenarios, &r.scenarios),
                (&mut out.steps, &r.steps),
            ] {
                for theirs in list.1 {
                    match list
                        .0
                        .iter_mut()
                        .find(|s| s.scenario == theirs.scenario && s.step == theirs.step)
                    {
                        Some(mine) => mine.merge(theirs)?,
                        None => list.0.push(theirs.clone()),
                    }
                }
            }
            for p in &r.series {
                match out.series.iter_mut().find(|q| q.t == p.t) {
                    Some(q) => {
                        // Percentiles per second cannot be merged exactly from
                        // summaries; the larger is kept (an upper bound).
                        q.requests += p.requests;
                        q.failures += p.failures;
                        q.users += p.users;
                        q.cache_hits += p.cache_hits;
                        q.cache_reported += p.cache_reported;
                        for theirs in &p.steps {
                            match q.steps.iter_mut().find(|m| m.step == theirs.step) {
                                Some(m) => {
                                    m.requests += theirs.requests;
                                    m.failures += theirs.failures;
                                    m.p95_ms = m.p95_ms.max(theirs.p95_ms);
                                }
                                None => q.steps.push(theirs.clone()),
                            }
                        }
                        for (mine, theirs) in
                            [(&mut q.classes, &p.classes), (&mut q.errors, &p.errors)]
                        {
                            for (key, n) in theirs {
                                *mine.entry(key.clone()).or_default() += n;
                            }
                        }
                        q.p50_ms = q.p50_ms.max(p.p50_ms);
                        q.p95_ms = q.p95_ms.max(p.p95_ms);
                        q.p99_ms = q.p99_ms.max(p.p99_ms);
                    }
                    None => out.series.push(p.clone()),
                }
            }
            out.generator.saturated |= r.generator.saturated;
            out.generator.interrupted |= r.generator.interrupted;
            out.generator
                .warnings
                .extend(r.generator.warnings.iter().cloned());
        }
        out.series.sort_by_key(|p| p.t);
        // The shards judged their own parts; the merge is judged anew by
        // the same thresholds (kept in each report as written).
        let thresholds: Vec<Threshold> = first
            .thresholds
            .iter()
            .filter_map(|t| Threshold::reparse(&t.threshold))
            .collect();
        out.thresholds = out.evaluate(&thresholds);
        out.schema = SCHEMA.into();
        Ok(out)
    }
}
