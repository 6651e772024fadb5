//! Self-contained HTML pages (inline SVG and CSS, no script, nothing
//! fetched): a run's report, and a comparison of two runs drawn on the
//! same charts (`rampart compare --html`, `rampart demo`).

mod chart;

use std::fmt::Write;

use chart::escape;
pub use chart::{percentile_points, Chart, Series, XAxis};

use crate::compare::{Row, Verdict};
use crate::report::{human_bytes, Report, SecondPoint, Stats};
use crate::summary::counts;

/// Colours of successive lines.
const PALETTE: [&str; 8] = [
    "#2b7bb9", "#e08a00", "#c0392b", "#27ae60", "#8e44ad", "#16a085", "#7f8c8d", "#d35400",
];
/// At most this many steps get their own lines.
const MAX_STEP_LINES: usize = 8;

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1.5rem 2rem; color: #222; max-width: 1200px; }
header { border-bottom: 2px solid #2b7bb9; margin-bottom: 1rem; }
header p { margin: 0.2rem 0 0.8rem; color: #555; font-size: 0.9rem; }
code { background: #f3f3f3; padding: 0 0.3em; border-radius: 3px; }
.cards { display: flex; flex-wrap: wrap; gap: 0.6rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 0.8rem; min-width: 8rem; }
.card b { display: block; font-size: 1.3rem; }
.card span { color: #666; font-size: 0.8rem; }
table { border-collapse: collapse; font-size: 0.85rem; width: 100%; margin: 0.5rem 0 1.5rem; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child, .text td { text-align: left; }
figure.chart { margin: 1rem 0 1.5rem; }
figcaption { font-weight: 600; margin-bottom: 0.3rem; }
svg { width: 100%; height: auto; background: #fcfcfc; border: 1px solid #eee; }
.grid { stroke: #e6e6e6; } .axis { stroke: #888; }
.tick { font-size: 11px; fill: #555; } .label { font-size: 12px; fill: #333; } .legend { font-size: 12px; fill: #333; }
.mark { fill: transparent; stroke: none; } .mark:hover { fill: currentColor; }
.ok { color: #27ae60; } .fail, .worse { color: #c0392b; font-weight: 600; } .better { color: #27ae60; }
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        t = escape(title)
    )
}

/// The header: title and what was run, where and when.
fn header(title: &str, report: &Report) -> String {
    let run = &report.run;
    let mut facts = Vec::new();
    if !run.target.is_empty() {
        facts.push(format!("target <code>{}</code>", escape(&run.target)));
    }
    if !run.started.is_empty() {
        facts.push(escape(&run.started));
    }
    facts.push(format!(
        "{:.1} s, generator with {} cores",
        report.duration_s, report.generator.cores
    ));
    if !run.commit.is_empty() {
        facts.push(format!("commit <code>{}</code>", escape(&run.commit)));
    }
    let command = if run.command.is_empty() {
        String::new()
    } else {
        format!("<p><code>{}</code></p>", escape(&run.command))
    };
    format!(
        "<header><h1>{}</h1><p>{}</p>{command}</header>",
        escape(title),
        facts.join(" · ")
    )
}

fn card(value: String, what: &str) -> String {
    format!(
        "<div class=\"card\"><b>{}</b><span>{}</span></div>",
        escape(&value),
        escape(what)
    )
}

/// The run's whole seconds (the last, partial second of a run counts in
/// the totals, not as a point that would look like a drop).
fn whole_seconds(report: &Report) -> impl Iterator<Item = &SecondPoint> {
    report
        .series
        .iter()
        .filter(|p| p.t as f64 <= report.duration_s + 0.05)
}

/// Seconds on x, one value per whole second.
fn over_time(report: &Report, f: impl Fn(&SecondPoint) -> f64) -> Vec<(f64, f64)> {
    whole_seconds(report).map(|p| (p.t as f64, f(p))).collect()
}

/// The per-step lines of a per-second figure (none with one step).
fn step_lines(report: &Report, f: impl Fn(&crate::report::StepPoint) -> f64) -> Vec<Series> {
    let mut names: Vec<String> = report.steps.iter().map(Stats::label).collect();
    names.truncate(MAX_STEP_LINES);
    if names.len() < 2 {
        return Vec::new();
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let points = whole_seconds(report)
                .map(|p| {
                    let v = p
                        .steps
                        .iter()
                        .find(|s| &s.step == name)
                        .map_or(f64::NAN, &f);
                    (p.t as f64, v)
                })
                .collect();
            Series::new(name.clone(), PALETTE[(i + 1) % PALETTE.len()], points)
        })
        .collect()
}

/// A run's report as one page.
pub fn render(report: &Report, title: &str) -> String {
    let all = &report.overall;
    let mut body = header(title, report);
    if report.generator.interrupted {
        body.push_str("<p class=\"fail\">Interrupted: this report covers the part of the run before the stop.</p>");
    }
    body.push_str("<div class=\"cards\">");
    for (value, what) in [
        (all.requests.to_string(), "requests"),
        (format!("{:.1}", report.rps(all)), "requests/s"),
        (format!("{:.2} %", all.error_rate() * 100.0), "errors"),
        (format!("{:.2} ms", all.latency.p50_ms), "p50"),
        (format!("{:.2} ms", all.latency.p95_ms), "p95"),
        (format!("{:.2} ms", all.latency.p99_ms), "p99"),
        (
            all.hit_rate()
                .map_or("–".into(), |h| format!("{:.1} %", h * 100.0)),
            "cache hits",
        ),
        (human_bytes(all.bytes_received), "received"),
    ] {
        body.push_str(&card(value, what));
    }
    body.push_str("</div>");
    body.push_str(&thresholds(report));
    let mut latency = vec![
        Series::new("p50", PALETTE[0], over_time(report, |p| p.p50_ms)),
        Series::new("p95", PALETTE[1], over_time(report, |p| p.p95_ms)),
        Series::new("p99", PALETTE[2], over_time(report, |p| p.p99_ms)),
    ];
    let per_step = step_lines(report, |s| s.p95_ms);
    let latency_title = if per_step.is_empty() {
        "Latency over time"
    } else {
        "Latency over time (all: p50, p95, p99; dashed: each step's p95)"
    };
    latency.extend(per_step.into_iter().map(|s| Series {
        name: format!("{} p95", s.name),
        ..s.dashed()
    }));
    let charts = [
        Chart {
            title: latency_title.into(),
            x_label: "s",
            y_label: "ms",
            x_axis: XAxis::Linear,
            series: latency,
        },
        Chart {
            title: "Latency by percentile (tail axis)".into(),
            x_label: "percentile",
            y_label: "ms",
            x_axis: XAxis::PercentileTail,
            series: percentile_lines(report),
        },
        Chart {
            title: "Throughput".into(),
            x_label: "s",
            y_label: "requests/s",
            x_axis: XAxis::Linear,
            series: std::iter::once(Series::new(
                "all",
                PALETTE[0],
                over_time(report, |p| p.requests as f64),
            ))
            .chain(step_lines(report, |s| s.requests as f64))
            .collect(),
        },
        Chart {
            title: "Responses by status class, and requests with no response".into(),
            x_label: "s",
            y_label: "per second",
            x_axis: XAxis::Linear,
            series: outcome_lines(report),
        },
    ];
    for c in &charts {
        body.push_str(&c.svg());
    }
    if report.series.iter().any(|p| p.cache_reported > 0) {
        let ratio = over_time(report, |p| {
            if p.cache_reported == 0 {
                f64::NAN
            } else {
                p.cache_hits as f64 * 100.0 / p.cache_reported as f64
            }
        });
        body.push_str(
            &Chart {
                title: "Cache hit ratio (from Cache-Status / X-Cache)".into(),
                x_label: "s",
                y_label: "% hits",
                x_axis: XAxis::Linear,
                series: vec![Series::new("hits", PALETTE[5], ratio)],
            }
            .svg(),
        );
    }
    body.push_str(
        &Chart {
            title: "Busy virtual users".into(),
            x_label: "s",
            y_label: "users",
            x_axis: XAxis::Linear,
            series: vec![Series::new(
                "users",
                PALETTE[4],
                over_time(report, |p| p.users as f64),
            )],
        }
        .svg(),
    );
    body.push_str(&steps_table(report));
    body.push_str(&generator(report));
    page(title, &body)
}

/// Latency by percentile: all, and each step when there are several.
fn percentile_lines(report: &Report) -> Vec<Series> {
    let mut out = Vec::new();
    if let Ok(h) = report.overall.latency.histogram() {
        out.push(Series::new("all", PALETTE[0], percentile_points(&h)));
    }
    if report.steps.len() > 1 {
        for (i, s) in report.steps.iter().take(MAX_STEP_LINES).enumerate() {
            if let Ok(h) = s.latency.histogram() {
                out.push(
                    Series::new(
                        s.label(),
                        PALETTE[(i + 1) % PALETTE.len()],
                        percentile_points(&h),
                    )
                    .dashed(),
                );
            }
        }
    }
    out
}

fn outcome_lines(report: &Report) -> Vec<Series> {
    let class = |c: &'static str| {
        over_time(report, move |p| {
            p.classes.get(c).copied().unwrap_or(0) as f64
        })
    };
    let mut out = vec![
        Series::new("2xx", "#27ae60", class("2xx")),
        Series::new("3xx", "#2b7bb9", class("3xx")),
        Series::new("4xx", "#e08a00", class("4xx")),
        Series::new("5xx", "#c0392b", class("5xx")),
        Series::new(
            "no response",
            "#555555",
            over_time(report, |p| p.errors.values().sum::<u64>() as f64),
        ),
    ];
    // Classes that never happened add only a flat line at zero.
    out.retain(|s| s.name == "2xx" || s.points.iter().any(|(_, y)| *y > 0.0));
    out
}

fn thresholds(report: &Report) -> String {
    if report.thresholds.is_empty() {
        return "<h2>Thresholds</h2><p>No thresholds were set.</p>".into();
    }
    let mut rows = String::new();
    for t in &report.thresholds {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            escape(&t.threshold),
            chart::number(t.value),
            if t.ok { "ok" } else { "fail" },
            if t.ok { "✔ held" } else { "✘ failed" }
        );
    }
    format!("<h2>Thresholds</h2><table><tr><th>threshold</th><th>measured</th><th>verdict</th></tr>{rows}</table>")
}

fn steps_table(report: &Report) -> String {
    let mut rows = String::new();
    let mut wrong = String::new();
    for s in report.steps.iter().chain(std::iter::once(&report.overall)) {
        let hits = s
            .hit_rate()
            .map_or_else(|| "–".into(), |h| format!("{:.1}%", h * 100.0));
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}%</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            escape(&s.label()),
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
        let _ = write!(
            wrong,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.label()),
            escape(&counts(&s.statuses_by_count())),
            escape(&counts(&s.errors_by_count())),
            human_bytes(s.bytes_sent),
            human_bytes(s.bytes_received)
        );
    }
    format!(
        "<h2>Steps</h2><table><tr><th>scenario/step</th><th>requests</th><th>req/s</th><th>errors</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>service p99 ms</th><th>cache hits</th></tr>{rows}</table>\
         <h2>What went wrong</h2><table class=\"text\"><tr><th>scenario/step</th><th>responses by status</th><th>errors by reason</th><th>sent</th><th>received</th></tr>{wrong}</table>"
    )
}

fn generator(report: &Report) -> String {
    let g = &report.generator;
    let warnings: String = g
        .warnings
        .iter()
        .map(|w| format!("<li>{}</li>", escape(w)))
        .collect();
    format!(
        "<h2>Generator</h2><p>{} iterations, {} late starts, {} dropped; max scheduling lag {:.1} ms, mean CPU {:.2} of {} cores{}</p><ul>{warnings}</ul>",
        report.iterations,
        report.late_starts,
        report.dropped_iterations,
        g.max_scheduling_lag_ms,
        g.mean_cpu_cores,
        g.cores,
        if g.saturated {
            " — the generator may have been the bottleneck"
        } else {
            ""
        }
    )
}

/// Two runs on the same charts: `baseline` dashed, `current` solid, with
/// the comparison's verdicts.
pub fn render_compare(
    baseline: (&str, &Report),
    current: (&str, &Report),
    rows: &[Row],
    threshold: f64,
    title: &str,
) -> String {
    let ((b_name, b), (c_name, c)) = (baseline, current);
    let mut body = format!("<header><h1>{}</h1>", escape(title));
    for (name, r) in [(b_name, b), (c_name, c)] {
        let run = &r.run;
        let _ = write!(
            body,
            "<p><b>{}</b>: {} requests in {:.1} s{}{}{}</p>",
            escape(name),
            r.overall.requests,
            r.duration_s,
            if run.target.is_empty() {
                String::new()
            } else {
                format!(" · target <code>{}</code>", escape(&run.target))
            },
            if run.started.is_empty() {
                String::new()
            } else {
                format!(" · {}", escape(&run.started))
            },
            if run.commit.is_empty() {
                String::new()
            } else {
                format!(" · commit <code>{}</code>", escape(&run.commit))
            }
        );
    }
    body.push_str("</header>");
    let worse = rows.iter().filter(|r| r.verdict == Verdict::Worse).count();
    let better = rows.iter().filter(|r| r.verdict == Verdict::Better).count();
    body.push_str("<div class=\"cards\">");
    for (value, what) in [
        (worse.to_string(), "worse"),
        (better.to_string(), "better"),
        (format!("{threshold} %"), "threshold"),
        (
            format!(
                "{:.2} → {:.2} ms",
                b.overall.latency.p95_ms, c.overall.latency.p95_ms
            ),
            "p95",
        ),
        (
            format!("{:.1} → {:.1}", b.rps(&b.overall), c.rps(&c.overall)),
            "requests/s",
        ),
    ] {
        body.push_str(&card(value, what));
    }
    body.push_str("</div>");
    let pct = |r: &Report| {
        r.overall
            .latency
            .histogram()
            .map(|h| percentile_points(&h))
            .unwrap_or_default()
    };
    let charts = [
        Chart {
            title: "Latency by percentile (tail axis)".into(),
            x_label: "percentile",
            y_label: "ms",
            x_axis: XAxis::PercentileTail,
            series: vec![
                Series::new(b_name, PALETTE[0], pct(b)).dashed(),
                Series::new(c_name, PALETTE[1], pct(c)),
            ],
        },
        Chart {
            title: "p95 latency over time".into(),
            x_label: "s",
            y_label: "ms",
            x_axis: XAxis::Linear,
            series: vec![
                Series::new(b_name, PALETTE[0], over_time(b, |p| p.p95_ms)).dashed(),
                Series::new(c_name, PALETTE[1], over_time(c, |p| p.p95_ms)),
            ],
        },
        Chart {
            title: "Throughput".into(),
            x_label: "s",
            y_label: "requests/s",
            x_axis: XAxis::Linear,
            series: vec![
                Series::new(b_name, PALETTE[0], over_time(b, |p| p.requests as f64)).dashed(),
                Series::new(c_name, PALETTE[1], over_time(c, |p| p.requests as f64)),
            ],
        },
        Chart {
            title: "Failed requests".into(),
            x_label: "s",
            y_label: "per second",
            x_axis: XAxis::Linear,
            series: vec![
                Series::new(b_name, PALETTE[0], over_time(b, |p| p.failures as f64)).dashed(),
                Series::new(c_name, PALETTE[1], over_time(c, |p| p.failures as f64)),
            ],
        },
    ];
    for chart in &charts {
        body.push_str(&chart.svg());
    }
    let mut table = String::new();
    for r in rows {
        let unit = r.unit();
        let class = match r.verdict {
            Verdict::Worse => "worse",
            Verdict::Better => "better",
            Verdict::Within => "",
        };
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{:.2} {unit}</td><td>{:.2} {unit}</td><td>{}</td><td class=\"{class}\">{}{}</td></tr>",
            escape(&r.name),
            r.metric,
            r.baseline,
            r.current,
            r.change_text(),
            r.verdict.as_str(),
            if r.sampling_noise { " (sampling error)" } else { "" }
        );
    }
    let _ = write!(
        body,
        "<h2>Figures</h2><table><tr><th>step</th><th>metric</th><th>{}</th><th>{}</th><th>change</th><th>verdict</th></tr>{table}</table>",
        escape(b_name),
        escape(c_name)
    );
    page(title, &body)
}
