//! Comparing a run with a baseline: steps matched by scenario and step name,
//! each of p50, p95, p99, error rate and throughput judged in the direction
//! that matters (latency and errors up is worse, throughput down is worse).

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
    /// Whether the change is a regression beyond the threshold.
    pub regressed: bool,
}

/// Compares `current` with `baseline`. `threshold` is in percent: latency and
/// throughput may worsen by that many percent; the error rate may rise by
/// `threshold / 10` percentage points (5 → 0.5 points).
pub fn compare(baseline: &Report, current: &Report, threshold: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    add(
        &mut rows,
        "overall",
        &baseline.overall,
        baseline.rps(&baseline.overall),
        &current.overall,
        current.rps(&current.overall),
        threshold,
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
            threshold,
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
    threshold: f64,
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
            regressed: change > threshold,
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
        regressed: ce - be > threshold / 10.0,
    });
    let change = pct(b_rps, c_rps);
    rows.push(Row {
        name: name.to_string(),
        metric: "req/s",
        baseline: b_rps,
        current: c_rps,
        change,
        regressed: change < -threshold,
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
            if r.regressed { "WORSE" } else { "ok" }
        ));
    }
    out
}
