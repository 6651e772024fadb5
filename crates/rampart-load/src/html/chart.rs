//! Line charts as inline SVG: gridlines, labelled axes, a legend, and each
//! point's value on hover (an SVG `<title>`, so no script is needed).
//! The x axis is linear (seconds) or, for latency by percentile, a
//! percentile tail axis as HdrHistogram plots draw it: 0, 90, 99, 99.9 …
//! equally spaced, so the tail is not squashed into one pixel.

use std::fmt::Write;

/// HTML-escapes text.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 1000.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 46.0;
/// At most this many hover points per series (long runs are thinned).
const MAX_MARKS: usize = 300;

/// How x values are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Linear, from 0.
    Linear,
    /// Percentiles (0 to 100) on a tail scale: x ↦ −log10(1 − x/100).
    PercentileTail,
}

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend and on hover.
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
    /// `(x, y)` in order; non-finite y values leave a gap.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a baseline beside a candidate).
    pub dashed: bool,
}

impl Series {
    /// A solid line.
    pub fn new(name: impl Into<String>, color: &'static str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            color,
            points,
            dashed: false,
        }
    }

    /// The same line, dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A chart: title, axes and lines.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Above the chart.
    pub title: String,
    /// Under the x axis.
    pub x_label: &'static str,
    /// Beside the y axis.
    pub y_label: &'static str,
    /// How x values are placed.
    pub x_axis: XAxis,
    /// The lines.
    pub series: Vec<Series>,
}

/// Where an x value sits, from 0 (left) to 1 (right).
type Placement = Box<dyn Fn(f64) -> f64>;

/// Where the most extreme percentile of a tail axis sits.
fn tail(x: f64) -> f64 {
    -(1.0 - (x / 100.0).min(0.999_999)).log10()
}

/// Round tick values covering `0..=max`: 1, 2 or 5 times a power of ten.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0);
    let mut out = vec![0.0];
    let mut i = 0.0;
    while out.last().is_some_and(|top| *top < max) {
        i += 1.0;
        out.push(i * step);
    }
    out
}

/// A number as an axis or a tooltip shows it.
pub fn number(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Chart {
    /// The chart as a `<figure>` holding its SVG.
    pub fn svg(&self) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        let y_max = ys.filter(|y| y.is_finite()).fold(0.0f64, f64::max);
        let y_ticks = ticks(y_max);
        let y_top = y_ticks.last().copied().unwrap_or(1.0).max(f64::EPSILON);
        let (x_of, x_ticks): (Placement, Vec<(f64, String)>) = match self.x_axis {
            XAxis::Linear => {
                let x_max = xs.fold(1.0f64, f64::max);
                let t = ticks(x_max);
                let top = t.last().copied().unwrap_or(1.0).max(f64::EPSILON);
                (
                    Box::new(move |x| x / top),
                    t.into_iter().map(|v| (v, number(v))).collect(),
                )
            }
            XAxis::PercentileTail => {
                let top = tail(99.999);
                let labels = ["0", "90", "99", "99.9", "99.99", "99.999"];
                (
                    Box::new(move |x| tail(x) / top),
                    labels
                        .iter()
                        .map(|l| (l.parse::<f64>().unwrap_or(0.0), format!("{l}%")))
                        .collect(),
                )
            }
        };
        let plot_w = W - LEFT - RIGHT;
        let plot_h = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + x_of(x).clamp(0.0, 1.0) * plot_w;
        let sy = |y: f64| TOP + plot_h - (y / y_top).clamp(0.0, 1.0) * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<figure class="chart"><figcaption>{title}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{title}">"#,
            title = escape(&self.title)
        );
        for v in &y_ticks {
            let y = sy(*v);
            let _ = write!(
                svg,
                r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
                x2 = W - RIGHT,
                tx = LEFT - 6.0,
                ty = y + 4.0,
                label = number(*v)
            );
        }
        for (v, label) in &x_ticks {
            let x = sx(*v);
            let _ = write!(
                svg,
                r##"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{y2}"/><text class="tick" x="{x:.1}" y="{ty}" text-anchor="middle">{label}</text>"##,
                y2 = TOP + plot_h,
                ty = TOP + plot_h + 16.0,
                label = escape(label)
            );
        }
        let _ = write!(
            svg,
            r##"<line class="axis" x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}"/><text class="label" x="{cx}" y="{ly}" text-anchor="middle">{xl}</text><text class="label" transform="translate(16 {cy}) rotate(-90)" text-anchor="middle">{yl}</text>"##,
            b = TOP + plot_h,
            r = W - RIGHT,
            cx = LEFT + plot_w / 2.0,
            ly = H - 8.0,
            cy = TOP + plot_h / 2.0,
            xl = escape(self.x_label),
            yl = escape(self.y_label)
        );
        let mut legend_x = LEFT;
        for s in &self.series {
            let _ = write!(
                svg,
                r#"<rect x="{legend_x:.1}" y="10" width="14" height="4" fill="{c}"/><text class="legend" x="{tx:.1}" y="16">{name}</text>"#,
                c = s.color,
                tx = legend_x + 18.0,
                name = escape(&s.name)
            );
            legend_x += 30.0 + 7.0 * s.name.chars().count() as f64;
        }
        for s in &self.series {
            let mut path = String::new();
            let mut pen_down = false;
            for (x, y) in &s.points {
                if !y.is_finite() {
                    pen_down = false;
                    continue;
                }
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    sx(*x),
                    sy(*y)
                );
                pen_down = true;
            }
            let _ = write!(
                svg,
                r#"<path d="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#,
                c = s.color,
                dash = if s.dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                }
            );
            let every = s.points.len().div_ceil(MAX_MARKS).max(1);
            for (x, y) in s.points.iter().step_by(every) {
                if !y.is_finite() {
                    continue;
                }
                let x_text = match self.x_axis {
                    XAxis::Linear => format!("{} {}", number(*x), self.x_label),
                    XAxis::PercentileTail => format!("p{}", number(*x)),
                };
                let _ = write!(
                    svg,
                    r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="4" style="color:{c}"><title>{}: {} at {}</title></circle>"#,
                    sx(*x),
                    sy(*y),
                    escape(&s.name),
                    format_args!("{} {}", number(*y), self.y_label),
                    escape(&x_text),
                    c = s.color
                );
            }
        }
        svg.push_str("</svg></figure>");
        svg
    }
}

/// The points of a latency-by-percentile line from a histogram (µs values,
/// shown in ms), dense in the tail.
pub fn percentile_points(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Equal steps on the tail axis, from p0 to p99.999.
    let top = tail(99.999);
    for i in 0..=100 {
        let t = top * f64::from(i) / 100.0;
        let q = 1.0 - 10f64.powf(-t);
        out.push((
            q * 100.0,
            h.value_at_quantile(q.min(0.999_99)) as f64 / 1000.0,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(9.3), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(430.0), vec![0.0, 100.0, 200.0, 300.0, 400.0, 500.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
    }

    #[test]
    fn the_tail_axis_spaces_nines_evenly() {
        let (a, b, c) = (tail(90.0), tail(99.0), tail(99.9));
        assert!(((b - a) - (c - b)).abs() < 1e-9);
        assert_eq!(tail(0.0), 0.0);
    }

    #[test]
    fn a_chart_has_gridlines_labels_and_hover_values() {
        let svg = Chart {
            title: "Latency <ms>".into(),
            x_label: "s",
            y_label: "ms",
            x_axis: XAxis::Linear,
            series: vec![Series::new(
                "p95",
                "#e08a00",
                vec![(1.0, 3.0), (2.0, f64::NAN), (3.0, 5.0)],
            )],
        }
        .svg();
        assert!(svg.contains("Latency &lt;ms&gt;"));
        assert!(svg.matches(r#"class="grid""#).count() >= 6);
        assert!(svg.contains("<title>p95: 5 ms at 3 s</title>"), "{svg}");
        assert_eq!(number(2.5), "2.50");
        assert_eq!(svg.matches("<circle").count(), 2, "no mark for a gap");
    }
}
