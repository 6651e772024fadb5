//! A single self-contained HTML report: inline SVG charts (no scripts, no
//! external files) a person reads at a glance.

use std::fmt::Write;

use crate::report::{human_bytes, Report};
use crate::summary::counts;

const W: f64 = 760.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of several series over x.
fn line_chart(
    title: &str,
    unit: &str,
    x_unit: &str,
    xs: &[f64],
    series: &[(&str, &str, Vec<f64>)],
) -> String {
    let mut svg = String::new();
    let max_x = xs.iter().copied().fold(1.0f64, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let sx = |x: f64| PAD + x / max_x * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD / 2.0 - y / max_y * (H - PAD);
    let _ = write!(
        svg,
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(title),
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#999"/><line x1="{PAD}" y1="{top}" x2="{PAD}" y2="{y0}" stroke="#999"/>"##,
        y0 = H - PAD / 2.0,
        x1 = W - PAD,
        top = PAD / 2.0
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = max_y / 1.1 * frac;
        let _ = write!(
            svg,
            r##"<text x="2" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
            sy(v) + 3.0,
            fmt_num(v, unit)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
        W - PAD,
        H - 4.0,
        fmt_num(max_x, x_unit)
    );
    for (i, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = xs
            .iter()
            .zip(values)
            .filter(|(_, y)| y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="12" font-size="11" fill="{color}">{}</text>"#,
            PAD + 90.0 * i as f64,
            escape(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn fmt_num(v: f64, unit: &str) -> String {
    if v >= 1000.0 {
        format!("{:.0}{unit}", v)
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// Renders the report as HTML.
pub fn render(report: &Report, title: &str) -> String {
    let xs: Vec<f64> = report.series.iter().map(|p| p.t as f64).collect();
    let col = |f: fn(&crate::report::SecondPoint) -> f64| {
        report.series.iter().map(f).collect::<Vec<f64>>()
    };
    let latency = line_chart(
        "Latency percentiles over time",
        "ms",
        "s",
        &xs,
        &[
            ("p50", "#2b7bb9", col(|p| p.p50_ms)),
            ("p95", "#e08a00", col(|p| p.p95_ms)),
            ("p99", "#c0392b", col(|p| p.p99_ms)),
        ],
    );
    let throughput = line_chart(
        "Throughput (requests per second)",
        "",
        "s",
        &xs,
        &[("req/s", "#27ae60", col(|p| p.requests as f64))],
    );
    let errors = line_chart(
        "Errors per second",
        "",
        "s",
        &xs,
        &[("errors", "#c0392b", col(|p| p.failures as f64))],
    );
    let class =
        |p: &crate::report::SecondPoint, c: &str| p.classes.get(c).copied().unwrap_or(0) as f64;
    let outcomes = line_chart(
        "Responses by status class, and requests with no response, per second",
        "",
        "s",
        &xs,
        &[
            (
                "2xx",
                "#27ae60",
                report.series.iter().map(|p| class(p, "2xx")).collect(),
            ),
            (
                "3xx",
                "#2b7bb9",
                report.series.iter().map(|p| class(p, "3xx")).collect(),
            ),
            (
                "4xx",
                "#e08a00",
                report.series.iter().map(|p| class(p, "4xx")).collect(),
            ),
            (
                "5xx",
                "#c0392b",
                report.series.iter().map(|p| class(p, "5xx")).collect(),
            ),
            (
                "no response",
                "#555555",
                col(|p| p.errors.values().sum::<u64>() as f64),
            ),
        ],
    );
    let hit_ratio = if report.series.iter().any(|p| p.cache_reported > 0) {
        line_chart(
            "Cache hit ratio over time (from Cache-Status / X-Cache)",
            "%",
            "s",
            &xs,
            &[(
                "hits",
                "#16a085",
                col(|p| {
                    if p.cache_reported == 0 {
                        f64::NAN
                    } else {
                        p.cache_hits as f64 * 100.0 / p.cache_reported as f64
                    }
                }),
            )],
        )
    } else {
        String::new()
    };
    let users = line_chart(
        "Busy virtual users",
        "",
        "s",
        &xs,
        &[("users", "#8e44ad", col(|p| p.users as f64))],
    );
    let distribution = match report.overall.latency.histogram() {
        Ok(h) if !h.is_empty() => {
            let qs: Vec<f64> = (0..=100).map(f64::from).collect();
            let values: Vec<f64> = qs
                .iter()
                .map(|q| h.value_at_quantile((q / 100.0).min(0.9999)) as f64 / 1000.0)
                .collect();
            line_chart(
                "Latency distribution (x: percentile, y: ms)",
                "ms",
                "%",
                &qs,
                &[("latency", "#2b7bb9", values)],
            )
        }
        _ => String::from("<p>No requests were recorded.</p>"),
    };
    let mut rows = String::new();
    for s in report.steps.iter().chain(std::iter::once(&report.overall)) {
        let name = if s.scenario.is_empty() {
            "all".to_string()
        } else {
            format!("{}/{}", s.scenario, s.step)
        };
        let hits = s
            .hit_rate()
            .map_or_else(|| "-".into(), |h| format!("{:.1}%", h * 100.0));
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}%</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            escape(&name),
            s.requests,
            report.rps(s),
            s.error_rate() * 100.0,
            s.latency.p50_ms,
            s.latency.p95_ms,
            s.latency.p99_ms,
            s.latency.max_ms,
            s.service.p99_ms,
            hits
        );
    }
    let mut wrong = String::new();
    for s in report.steps.iter().chain(std::iter::once(&report.overall)) {
        let name = if s.scenario.is_empty() {
            "all".to_string()
        } else {
            format!("{}/{}", s.scenario, s.step)
        };
        let _ = write!(
            wrong,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            escape(&counts(&s.statuses_by_count())),
            escape(&counts(&s.errors_by_count())),
            human_bytes(s.bytes_sent),
            human_bytes(s.bytes_received)
        );
    }
    let mut thresholds = String::new();
    for t in &report.thresholds {
        let _ = write!(
            thresholds,
            r#"<li class="{}">{} {} (measured {:.4})</li>"#,
            if t.ok { "ok" } else { "fail" },
            if t.ok { "✔" } else { "✘" },
            escape(&t.threshold),
            t.value
        );
    }
    if thresholds.is_empty() {
        thresholds.push_str("<li>No thresholds were set.</li>");
    }
    let warnings: String = report
        .generator
        .warnings
        .iter()
        .map(|w| format!("<li>{}</li>", escape(w)))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 900px; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }} td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} figure {{ margin: 1rem 0; }} figcaption {{ font-weight: 600; }}
svg {{ width: 100%; height: auto; background: #fafafa; }} .wrong td {{ text-align: left; }} .ok {{ color: #27ae60; }} .fail {{ color: #c0392b; font-weight: 600; }}
</style></head><body>
<h1>{title}</h1>{interrupted}
<p>{requests} requests in {duration:.1} s ({rps:.1} req/s); {iterations} iterations, {late} late starts, {dropped} dropped; error rate {err:.2}%; p95 {p95:.2} ms, p99 {p99:.2} ms.</p>
<h2>Thresholds</h2><ul>{thresholds}</ul>
{latency}{throughput}{errors}{outcomes}{hit_ratio}{users}{distribution}
<h2>Steps</h2>
<table><tr><th>scenario/step</th><th>requests</th><th>req/s</th><th>errors</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>service p99 ms</th><th>cache hits</th></tr>{rows}</table>
<h2>What went wrong</h2>
<table class="wrong"><tr><th>scenario/step</th><th>responses by status</th><th>errors by reason</th><th>sent</th><th>received</th></tr>{wrong}</table>
<h2>Generator</h2><p>max scheduling lag {lag:.1} ms, mean CPU {cpu:.2} of {cores} cores{saturated}</p><ul>{warnings}</ul>
</body></html>
"#,
        title = escape(title),
        interrupted = if report.generator.interrupted {
            "<p class=\"fail\">Interrupted: this report covers the part of the run before the stop.</p>"
        } else {
            ""
        },
        requests = report.overall.requests,
        duration = report.duration_s,
        rps = report.rps(&report.overall),
        iterations = report.iterations,
        late = report.late_starts,
        dropped = report.dropped_iterations,
        err = report.overall.error_rate() * 100.0,
        p95 = report.overall.latency.p95_ms,
        p99 = report.overall.latency.p99_ms,
        lag = report.generator.max_scheduling_lag_ms,
        cpu = report.generator.mean_cpu_cores,
        cores = report.generator.cores,
        saturated = if report.generator.saturated {
            " — the generator may have been the bottleneck"
        } else {
            ""
        },
    )
}
