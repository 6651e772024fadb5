//! The end-of-run summary printed in the terminal.

use std::fmt::Write;

use crate::report::{human_bytes, Report, Stats};

/// Renders the summary table, thresholds and warnings.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.generator.interrupted {
        let _ = writeln!(
            out,
            "\nINTERRUPTED after {:.1}s: what follows covers the part that ran",
            report.duration_s
        );
    }
    let _ = writeln!(
        out,
        "\n{} requests in {:.1}s ({:.1} req/s), {} iterations, {} late starts, {} dropped",
        report.overall.requests,
        report.duration_s,
        report.rps(&report.overall),
        report.iterations,
        report.late_starts,
        report.dropped_iterations
    );
    let _ = writeln!(
        out,
        "{:<36} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "scenario/step",
        "requests",
        "req/s",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "checks",
        "hits"
    );
    for s in report.steps.iter().chain(std::iter::once(&report.overall)) {
        row(&mut out, &s.label(), s, report.rps(s));
    }
    let all = &report.overall;
    if !all.statuses.is_empty() {
        let _ = writeln!(out, "responses: {}", counts(&all.statuses_by_count()));
    }
    if !all.errors.is_empty() {
        let _ = writeln!(out, "errors:    {}", counts(&all.errors_by_count()));
    }
    if report.steps.len() > 1 {
        for s in report.steps.iter().filter(|s| !s.errors.is_empty()) {
            let _ = writeln!(
                out,
                "  {}: {}; {}",
                s.label(),
                counts(&s.statuses_by_count()),
                counts(&s.errors_by_count())
            );
        }
    }
    let _ = writeln!(
        out,
        "data:      sent {}, received {}",
        human_bytes(all.bytes_sent),
        human_bytes(all.bytes_received)
    );
    let svc = &report.overall.service;
    let _ = writeln!(
        out,
        "service time (from the send): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        svc.p50_ms, svc.p95_ms, svc.p99_ms, svc.max_ms
    );
    if !report.thresholds.is_empty() {
        let _ = writeln!(out, "thresholds:");
        for t in &report.thresholds {
            let _ = writeln!(
                out,
                "  {} {}  (measured {:.4})",
                if t.ok { "ok  " } else { "FAIL" },
                t.threshold,
                t.value
            );
        }
    }
    for w in &report.generator.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

fn row(out: &mut String, name: &str, s: &Stats, rps: f64) {
    let hits = s
        .hit_rate()
        .map_or_else(|| "-".to_string(), |h| format!("{:.1}%", h * 100.0));
    let checks = if s.checks_passed + s.checks_failed == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", s.checks_rate() * 100.0)
    };
    let _ = writeln!(
        out,
        "{:<36} {:>9} {:>9.1} {:>6.2}% {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>6}",
        truncate(name, 36),
        s.requests,
        rps,
        s.error_rate() * 100.0,
        s.latency.p50_ms,
        s.latency.p95_ms,
        s.latency.p99_ms,
        s.latency.max_ms,
        checks,
        hits
    );
}

/// `200 ×9512 · 503 ×488`, or `none`.
pub fn counts(entries: &[(&str, u64)]) -> String {
    if entries.is_empty() {
        return "none".into();
    }
    entries
        .iter()
        .map(|(what, n)| format!("{what} ×{n}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
