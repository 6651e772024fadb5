//! Comparing a run with a baseline: steps matched by scenario and step name,
//! each of p50, p95, p99, error rate and throughput judged in the direction
//! that matters (latency and errors up is worse, throughput down is worse)
//! as worse, better or within noise: a change counts only beyond both the
//! relative threshold and an absolute floor (`--min-delta`, 1 ms by default
//! on latency), so a p99 moving from 2.13 to 2.29 ms fails no CI gate.

use crate::report::{Report, Stats};

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
        let name = format!("{}/{}", b.scenario, b.step);
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
    for (metric, base, cur) in [
        ("p50", b.latency.p50_ms, c.latency.p50_ms),
        ("p95", b.latency.p95_ms, c.latency.p95_ms),
        ("p99", b.latency.p99_ms, c.latency.p99_ms),
    ] {
        let change = pct(base, cur);
        rows.push(Row {
            name: name.to_string(),
            metric,
            baseline: base,
            current: cur,
            change,
            verdict: Verdict::of(change, threshold, (cur - base).abs(), floors.latency_ms),
        });
    }
    // Error rates are compared in percentage points: going from 0 % to
    // 0.5 % is +0.5, a regression when above threshold / 10.
    let (be, ce) = (b.error_rate() * 100.0, c.error_rate() * 100.0);
    rows.push(Row {
        name: name.to_string(),
        metric: "error rate",
        baseline: be,
        current: ce,
        change: ce - be,
        verdict: Verdict::of(ce - be, threshold / 10.0, (ce - be).abs(), 0.0),
    });
    let change = pct(b_rps, c_rps);
    rows.push(Row {
        name: name.to_string(),
        metric: "req/s",
        baseline: b_rps,
        current: c_rps,
        change,
        verdict: Verdict::of(-change, threshold, (c_rps - b_rps).abs(), 0.0),
    });
}

/// The table as text.
pub fn render(rows: &[Row], threshold: f64) -> String {
    let mut out = format!(
        "{:<32} {:<10} {:>12} {:>12} {:>9}  verdict (threshold {threshold}%)\n",
        "step", "metric", "baseline", "current", "change"
    );
    for r in rows {
        let unit = match r.metric {
            "error rate" => "%",
            "req/s" => "",
            _ => "ms",
        };
        let change = if r.metric == "error rate" {
            format!("{:+.2}pp", r.change)
        } else {
            format!("{:+.1}%", r.change)
        };
        out.push_str(&format!(
            "{:<32} {:<10} {:>10.2}{unit:<2} {:>10.2}{unit:<2} {:>9}  {}\n",
            r.name,
            r.metric,
            r.baseline,
            r.current,
            change,
            r.verdict.as_str()
        ));
    }
    out
}
