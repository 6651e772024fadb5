//! Thresholds with k6's names: `http_req_duration` (`p(95) < 200ms`, `avg`,
//! `med`, `min`, `max`), `http_req_failed` (`rate < 0.01`), `http_reqs`
//! (`rate > 1000`, `count`), `checks` (`rate > 0.99`), each optionally
//! filtered: `http_req_duration{step:login}`, `http_reqs{scenario:browse}`.

/// The metric a threshold reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Latency in milliseconds (from the intended start for open executors).
    Duration,
    /// Share of failed requests (status ≥ 400 or no response).
    Failed,
    /// Requests: `rate` per second or `count`.
    Reqs,
    /// Share of checks that passed.
    Checks,
}

/// What part of the run a threshold looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Everything.
    All,
    /// One step, by name.
    Step(String),
    /// One scenario, by name.
    Scenario(String),
}

/// How the metric is summarised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    /// A percentile, 0–100.
    Percentile(f64),
    /// Mean.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// A rate (per second for `http_reqs`, a share otherwise).
    Rate,
    /// A count.
    Count,
}

/// Comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written, for reports: `http_req_duration{step:login}: p(95) < 200ms`.
    pub text: String,
    /// The metric.
    pub metric: Metric,
    /// The filter.
    pub filter: Filter,
    /// The summary.
    pub aggregate: Aggregate,
    /// The comparison.
    pub op: Op,
    /// The bound (milliseconds for durations).
    pub bound: f64,
    /// Stop the run as soon as it fails.
    pub abort_on_fail: bool,
}

impl Threshold {
    /// A threshold back from its text in a report (`key: expression`).
    pub fn reparse(text: &str) -> Option<Self> {
        let (key, expr) = match text.split_once("}: ") {
            Some((key, expr)) if key.contains('{') => (format!("{key}}}"), expr),
            _ => {
                let (key, expr) = text.split_once(": ")?;
                (key.to_string(), expr)
            }
        };
        Self::parse(&key, expr, false).ok()
    }

    /// Parses a metric key and one expression.
    pub fn parse(key: &str, expr: &str, abort_on_fail: bool) -> Result<Self, String> {
        let (name, filter) = match key.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed filter in {key:?}"))?;
                let (k, v) = inner.split_once(':').ok_or_else(|| {
                    format!("a filter is {{step:NAME}} or {{scenario:NAME}}, not {{{inner}}}")
                })?;
                let filter = match k.trim() {
                    "step" => Filter::Step(v.trim().to_string()),
                    "scenario" => Filter::Scenario(v.trim().to_string()),
                    other => return Err(format!("unknown filter {other:?}: use step or scenario")),
                };
                (name.trim(), filter)
            }
            None => (key.trim(), Filter::All),
        };
        let metric = match name {
            "http_req_duration" => Metric::Duration,
            "http_req_failed" => Metric::Failed,
            "http_reqs" => Metric::Reqs,
            "checks" => Metric::Checks,
            other => {
                return Err(format!(
                    "unknown metric {other:?}: use http_req_duration, http_req_failed, http_reqs or checks"
                ))
            }
        };
        let expr_trim = expr.trim();
        let op_at = expr_trim.find(['<', '>']).ok_or_else(|| {
            format!("{expr:?} has no comparison: write it like \"p(95) < 200ms\"")
        })?;
        let agg_text = expr_trim[..op_at].trim();
        let rest = &expr_trim[op_at..];
        let (op, value_text) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            return Err(format!("bad comparison in {expr:?}"));
        };
        let aggregate = match agg_text {
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "med" => Aggregate::Percentile(50.0),
            "rate" => Aggregate::Rate,
            "count" => Aggregate::Count,
            p if p.starts_with("p(") && p.ends_with(')') => {
                let n: f64 = p[2..p.len() - 1]
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad percentile {p:?}"))?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(format!("percentile {n} is not between 0 and 100"));
                }
                Aggregate::Percentile(n)
            }
            other => {
                return Err(format!(
                    "unknown aggregate {other:?}: use p(N), avg, med, min, max, rate or count"
                ))
            }
        };
        let allowed = match metric {
            Metric::Duration => matches!(
                aggregate,
                Aggregate::Percentile(_) | Aggregate::Avg | Aggregate::Min | Aggregate::Max
            ),
            Metric::Failed | Metric::Checks => aggregate == Aggregate::Rate,
            Metric::Reqs => matches!(aggregate, Aggregate::Rate | Aggregate::Count),
        };
        if !allowed {
            return Err(format!("{agg_text} does not apply to {name}"));
        }
        let bound = parse_bound(value_text.trim(), metric)?;
        Ok(Self {
            text: format!("{key}: {expr_trim}"),
            metric,
            filter,
            aggregate,
            op,
            bound,
            abort_on_fail,
        })
    }

    /// Whether `value` satisfies the threshold.
    pub fn passes(&self, value: f64) -> bool {
        match self.op {
            Op::Lt => value < self.bound,
            Op::Le => value <= self.bound,
            Op::Gt => value > self.bound,
            Op::Ge => value >= self.bound,
        }
    }
}

fn parse_bound(text: &str, metric: Metric) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..split]
        .parse()
        .map_err(|_| format!("bad number {text:?}"))?;
    let unit = text[split..].trim();
    let factor = match (metric, unit) {
        (Metric::Duration, "" | "ms") => 1.0,
        (Metric::Duration, "us" | "µs") => 0.001,
        (Metric::Duration, "s") => 1000.0,
        (Metric::Duration, other) => {
            return Err(format!("unknown unit {other:?}: use us, ms or s"))
        }
        (_, "") => 1.0,
        (_, "%") => 0.01,
        (_, other) => return Err(format!("unexpected unit {other:?}")),
    };
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_style_thresholds() {
        let t = Threshold::parse("http_req_duration{step:login}", "p(95) < 200ms", false).unwrap();
        assert_eq!(t.metric, Metric::Duration);
        assert_eq!(t.filter, Filter::Step("login".into()));
        assert_eq!(t.aggregate, Aggregate::Percentile(95.0));
        assert_eq!(t.bound, 200.0);
        assert!(t.passes(199.9) && !t.passes(200.0));
        let s = Threshold::parse("http_req_duration", "max<=1s", true).unwrap();
        assert_eq!((s.bound, s.op, s.abort_on_fail), (1000.0, Op::Le, true));
        let f = Threshold::parse("http_req_failed", "rate < 0.01", false).unwrap();
        assert_eq!(f.aggregate, Aggregate::Rate);
        let r = Threshold::parse("http_reqs{scenario:browse}", "rate > 1000", false).unwrap();
        assert!(r.passes(1000.5));
        assert_eq!(
            Threshold::parse("http_req_failed", "rate < 1%", false)
                .unwrap()
                .bound,
            0.01
        );
    }

    #[test]
    fn rejects_nonsense() {
        assert!(Threshold::parse("http_req_duraton", "p(95) < 1", false).is_err());
        assert!(Threshold::parse("http_req_duration", "p(95) 200", false).is_err());
        assert!(Threshold::parse("http_req_duration", "p(101) < 2", false).is_err());
        assert!(Threshold::parse("http_req_failed", "p(95) < 2", false).is_err());
        assert!(Threshold::parse("http_req_duration", "avg < 2 parsecs", false).is_err());
        assert!(Threshold::parse("http_req_duration{host:x}", "avg < 2", false).is_err());
    }
}
