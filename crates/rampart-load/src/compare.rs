//! Comparing a run with a baseline: steps matched by scenario and step name,
//! each of p50, p95, p99, error rate and throughput judged in the direction
//! that matters (latency and errors up is worse, throughput down is worse)
//! as worse, better or within noise: a change counts only beyond both the
//! relative threshold and an absolute floor (`--min-delta`, 1 ms by default
//! on latency), so a p99 moving from 2.13 to 2.29 ms fails no CI gate; and,
//! where the runs' samples allow, beyond their sampling error: a latency
//! percentile counts only when the distribution-free 99 % confidence
//! intervals of the two runs' percentiles (from their HDR histograms) do
//! not overlap, an error rate only when a two-proportion z-test says so at
//! 99 %. A percentile read off 200 samples moves a lot between identical
//! runs; the same percentile off 200,000 barely does.

use hdrhistogram::Histogram;

use crate::report::{Report, Stats};

/// The normal quantile of the two-sided 99 % level.
const Z99: f64 = 2.576;

/// One compared figure.
#[derive(Debug, Clone)]
pub struct Row {
    /// `scenario/step`, or `overall`.
    pub name: String,
    /// `p50`, `p95`, `p99`, `error rate` or `req/s`.
    pub metric: &'static str,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// Change in percent (percentage points for the error rate).
    pub change: f64,
    /// What the change amounts to.
    pub verdict: Verdict,
    /// Beyond the threshold and the floor, but within the runs' sampling
    /// error (so counted as noise).
    pub sampling_noise: bool,
}

impl Row {
    /// The unit its values are in: `ms`, `%` or none (req/s).
    pub fn unit(&self) -> &'static str {
        match self.metric {
            "error rate" => "%",
            "req/s" => "",
            _ => "ms",
        }
    }

    /// Its change as shown: percentage points for the error rate, percent
    /// for the rest.
    pub fn change_text(&self) -> String {
        if self.metric == "error rate" {
            format!("{:+.2}pp", self.change)
        } else {
            format!("{:+.1}%", self.change)
        }
    }
}

/// What a change amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worse beyond the threshold and the floor: a regression.
    Worse,
    /// Better beyond the threshold and the floor.
    Better,
    /// Within the threshold or the floor: noise.
    Within,
}

impl Verdict {
    /// As the table shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Worse => "WORSE",
            Verdict::Better => "better",
            Verdict::Within => "within noise",
        }
    }

    /// `worse` when `by` (how much worse, in the metric's direction) is
    /// beyond both `threshold` (relative) and `floor` (absolute, as `abs`).
    fn of(by: f64, threshold: f64, abs: f64, floor: f64) -> Self {
        if by > threshold && abs > floor {
            Verdict::Worse
        } else if by < -threshold && abs > floor {
            Verdict::Better
        } else {
            Verdict::Within
        }
    }
}

/// Absolute changes below which nothing is worse or better.
#[derive(Debug, Clone, Copy)]
pub struct Floors {
    /// On latency percentiles, in milliseconds.
    pub latency_ms: f64,
}

impl Default for Floors {
    fn default() -> Self {
        Self { latency_ms: 1.0 }
    }
}

/// Compares `current` with `baseline`. `threshold` is in percent: latency and
/// throughput may worsen by that many percent; the error rate may rise by
/// `threshold / 10` percentage points (5 → 0.5 points).
pub fn compare(baseline: &Report, current: &Report, threshold: f64, floors: Floors) -> Vec<Row> {
    let mut rows = Vec::new();
    add(
        &mut rows,
        "overall",
        &baseline.overall,
        baseline.rps(&baseline.overall),
        &current.overall,
        current.rps(&current.overall),
        (threshold, floors),
    );
    for b in &baseline.steps {
        let Some(c) = current
            .steps
            .iter()
            .find(|c| c.scenario == b.scenario && c.step == b.step)
        else {
            continue;
        };
        let name = b.label();
        add(
            &mut rows,
            &name,
            b,
            baseline.rps(b),
            c,
            current.rps(c),
            (threshold, floors),
        );
    }
    rows
}

fn add(
    rows: &mut Vec<Row>,
    name: &str,
    b: &Stats,
    b_rps: f64,
    c: &Stats,
    c_rps: f64,
    (threshold, floors): (f64, Floors),
) {
    let pct = |base: f64, cur: f64| {
        if base > 0.0 {
            (cur - base) / base * 100.0
        } else if cur > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    };
    let histograms = b.latency.histogram().ok().zip(c.latency.histogram().ok());
    for (metric, q, base, cur) in [
        ("p50", 0.50, b.latency.p50_ms, c.latency.p50_ms),
        ("p95", 0.95, b.latency.p95_ms, c.latency.p95_ms),
        ("p99", 0.99, b.latency.p99_ms, c.latency.p99_ms),
    ] {
        let change = pct(base, cur);
        let verdict = Verdict::of(change, threshold, (cur - base).abs(), floors.latency_ms);
        // Apart when the intervals do not overlap; unknown (so trusted)
        // without histograms.
        let apart = histograms.as_ref().is_none_or(|(hb, hc)| {
            match (quantile_interval(hb, q), quantile_interval(hc, q)) {
                (Some((b_lo, b_hi)), Some((c_lo, c_hi))) => c_lo > b_hi || c_hi < b_lo,
                _ => true,
            }
        });
        rows.push(judged(name, metric, base, cur, change, verdict, apart));
    }
    // Error rates are compared in percentage points: going from 0 % to
    // 0.5 % is +0.5, a regression when above threshold / 10.
    let (be, ce) = (b.error_rate() * 100.0, c.error_rate() * 100.0);
    let verdict = Verdict::of(ce - be, threshold / 10.0, (ce - be).abs(), 0.0);
    let apart = proportions_differ((b.failures, b.requests), (c.failures, c.requests));
    rows.push(judged(name, "error rate", be, ce, ce - be, verdict, apart));
    let change = pct(b_rps, c_rps);
    rows.push(judged(
        name,
        "req/s",
        b_rps,
        c_rps,
        change,
        Verdict::of(-change, threshold, (c_rps - b_rps).abs(), 0.0),
        true,
    ));
}

/// A row: `verdict` stands only when the difference is beyond sampling
/// error (`apart`); else it is noise.
fn judged(
    name: &str,
    metric: &'static str,
    baseline: f64,
    current: f64,
    change: f64,
    verdict: Verdict,
    apart: bool,
) -> Row {
    let sampling_noise = verdict != Verdict::Within && !apart;
    Row {
        name: name.to_string(),
        metric,
        baseline,
        current,
        change,
        verdict: if sampling_noise {
            Verdict::Within
        } else {
            verdict
        },
        sampling_noise,
    }
}

/// The distribution-free 99 % confidence interval of the `q` quantile of
/// the population a histogram sampled, in ms: the values at the ranks
/// `n·q ∓ z·√(n·q·(1−q))` (the normal approximation of the binomial count
/// of samples below the quantile). `None` when empty.
pub fn quantile_interval(h: &Histogram<u64>, q: f64) -> Option<(f64, f64)> {
    let n = h.len() as f64;
    if n == 0.0 {
        return None;
    }
    let spread = Z99 * (n * q * (1.0 - q)).sqrt();
    let rank = |r: f64| (r.clamp(1.0, n) / n).min(1.0);
    let at = |r: f64| h.value_at_quantile(rank(r)) as f64 / 1000.0;
    Some((at((n * q - spread).floor()), at((n * q + spread).ceil())))
}

/// Whether two failure proportions `(failures, requests)` differ at 99 %
/// (two-proportion z-test, pooled).
pub fn proportions_differ(a: (u64, u64), b: (u64, u64)) -> bool {
    let (fa, na) = (a.0 as f64, a.1 as f64);
    let (fb, nb) = (b.0 as f64, b.1 as f64);
    if na == 0.0 || nb == 0.0 {
        return true;
    }
    let pooled = (fa + fb) / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se == 0.0 {
        return fa / na != fb / nb;
    }
    ((fa / na - fb / nb) / se).abs() > Z99
}

/// The table as text.
pub fn render(rows: &[Row], threshold: f64) -> String {
    let mut out = format!(
        "{:<32} {:<10} {:>12} {:>12} {:>9}  verdict (threshold {threshold}%)\n",
        "step", "metric", "baseline", "current", "change"
    );
    for r in rows {
        let unit = r.unit();
        out.push_str(&format!(
            "{:<32} {:<10} {:>10.2}{unit:<2} {:>10.2}{unit:<2} {:>9}  {}{}\n",
            r.name,
            r.metric,
            r.baseline,
            r.current,
            r.change_text(),
            r.verdict.as_str(),
            if r.sampling_noise {
                " (within sampling error at 99 %)"
            } else {
                ""
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{new_histogram, Latency};
    use rand::{Rng, SeedableRng};

    /// A report of `n` latencies drawn from a skewed distribution around
    /// `scale_ms` (log-normal-like), times `slowdown`.
    fn run(seed: u64, n: usize, scale_ms: f64, slowdown: f64) -> Report {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut h = new_histogram();
        for _ in 0..n {
            let normal: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
            let ms = scale_ms * (0.6 * normal).exp() * slowdown;
            h.record((ms * 1000.0).max(1.0) as u64).unwrap();
        }
        let stats = Stats {
            requests: n as u64,
            latency: Latency::from_histogram(&h),
            service: Latency::from_histogram(&h),
            ..Stats::empty("s", "home")
        };
        Report {
            schema: crate::report::SCHEMA.into(),
            duration_s: 10.0,
            shards: 1,
            iterations: n as u64,
            late_starts: 0,
            dropped_iterations: 0,
            overall: Stats {
                scenario: String::new(),
                step: String::new(),
                ..stats.clone()
            },
            scenarios: Vec::new(),
            steps: vec![stats],
            series: Vec::new(),
            thresholds: Vec::new(),
            generator: Default::default(),
            run: Default::default(),
        }
    }

    fn worse(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .filter(|r| r.verdict == Verdict::Worse && r.metric.starts_with('p'))
            .map(|r| {
                format!(
                    "{} {} {:.2} -> {:.2}",
                    r.name, r.metric, r.baseline, r.current
                )
            })
            .collect()
    }

    #[test]
    fn identical_runs_with_noise_never_fail_and_a_real_slowdown_always_does() {
        let mut noise_beyond_floors = 0;
        for seed in 0..40 {
            let (a, b) = (run(seed, 400, 20.0, 1.0), run(seed + 1000, 400, 20.0, 1.0));
            let rows = compare(&a, &b, 5.0, Floors::default());
            assert!(worse(&rows).is_empty(), "seed {seed}: {:?}", worse(&rows));
            noise_beyond_floors += rows.iter().filter(|r| r.sampling_noise).count();
            let slow = run(seed + 1000, 400, 20.0, 2.0);
            let rows = compare(&a, &slow, 5.0, Floors::default());
            assert!(
                !worse(&rows).is_empty(),
                "seed {seed}: a 2x slowdown fails the gate: {}",
                render(&rows, 5.0)
            );
        }
        // With enough samples every percentile's slowdown is seen (with
        // 400, p99 rests on four samples and may honestly be unsure).
        for seed in 0..5 {
            let a = run(seed, 20_000, 20.0, 1.0);
            let rows = compare(
                &a,
                &run(seed + 1000, 20_000, 20.0, 2.0),
                5.0,
                Floors::default(),
            );
            for metric in ["p50", "p95", "p99"] {
                assert!(
                    rows.iter().any(|r| r.name == "s/home"
                        && r.metric == metric
                        && r.verdict == Verdict::Worse),
                    "seed {seed}: a 2x slowdown of {metric} is worse: {}",
                    render(&rows, 5.0)
                );
            }
            let rows = compare(
                &a,
                &run(seed + 1000, 20_000, 20.0, 1.0),
                5.0,
                Floors::default(),
            );
            assert!(worse(&rows).is_empty(), "seed {seed}: {:?}", worse(&rows));
        }
        assert!(
            noise_beyond_floors > 0,
            "the noise in these runs goes beyond threshold and floor: the test is what keeps the gate quiet"
        );
    }

    #[test]
    fn error_rates_differ_only_beyond_chance() {
        assert!(!proportions_differ((1, 1000), (3, 1000)));
        assert!(proportions_differ((1, 1000), (60, 1000)));
        assert!(!proportions_differ((0, 10), (0, 10)));
    }
}
