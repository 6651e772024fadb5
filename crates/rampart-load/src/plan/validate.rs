//! Stage two of a scenario file: every name a scenario refers to (flow,
//! feeder, variable) is checked here, before any request is sent. Errors
//! carry the byte offset of the offending value, which the caller locates
//! to file, line, column and field.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use toml::Spanned;

use super::model::*;
use crate::raw::{self, RawPlan, RawThink, StatusList};
use crate::template::{json_vars, Template, BUILTINS};
use crate::threshold::Threshold;

type Invalid = (usize, String);

/// A flow's steps, and the variables its steps use that it does not extract
/// itself: `(offset, step name, variable)`, checked per scenario.
type CheckedFlow = (usize, Vec<Step>, Vec<(usize, String, String)>);

fn at<T>(s: &Spanned<T>) -> usize {
    s.span().start
}

pub(super) fn validate(raw: RawPlan, dir: &Path) -> Result<Plan, Invalid> {
    let base_url = match &raw.base_url {
        Some(u) => Some(check_base_url(u.get_ref()).map_err(|e| (at(u), e))?),
        None => None,
    };
    let timeout = raw
        .defaults
        .timeout
        .map_or(Duration::from_secs(30), |d| d.0);
    let mut default_headers = Vec::new();
    for (name, value) in &raw.defaults.headers {
        default_headers.push(header(name, value)?);
    }

    let mut feeders: BTreeMap<String, Feeder> = BTreeMap::new();
    for f in &raw.feeders {
        let name = f.name.get_ref().clone();
        let random = match f.order.as_ref().map(|o| o.get_ref().as_str()) {
            None | Some("sequential") => false,
            Some("random") => true,
            Some(other) => {
                return Err((
                    at(f.order.as_ref().unwrap_or(&f.name)),
                    format!("unknown order {other:?}: use \"sequential\" or \"random\""),
                ))
            }
        };
        let path = dir.join(f.csv.get_ref());
        let mut reader = csv::Reader::from_path(&path)
            .map_err(|e| (at(&f.csv), format!("cannot read {}: {e}", path.display())))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| (at(&f.csv), format!("{}: {e}", path.display())))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record
                .map_err(|e| (at(&f.csv), format!("{} row {}: {e}", path.display(), i + 2)))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err((at(&f.csv), format!("{} has no rows", path.display())));
        }
        if feeders
            .insert(
                name.clone(),
                Feeder {
                    name: name.clone(),
                    columns,
                    rows: Arc::new(rows),
                    random,
                },
            )
            .is_some()
        {
            return Err((at(&f.name), format!("feeder {name:?} is defined twice")));
        }
    }

    let mut flows: BTreeMap<String, CheckedFlow> = BTreeMap::new();
    for flow in &raw.flows {
        let name = flow.name.get_ref().clone();
        if flow.steps.is_empty() {
            return Err((at(&flow.name), format!("flow {name:?} has no steps")));
        }
        let mut steps = Vec::new();
        let mut used: Vec<(usize, String, String)> = Vec::new();
        let mut extracted: Vec<String> = Vec::new();
        for s in &flow.steps {
            let step = step(s, &default_headers, timeout)?;
            let mut vars: Vec<String> = step.url.vars().map(str::to_string).collect();
            for (_, t) in &step.headers {
                vars.extend(t.vars().map(str::to_string));
            }
            match &step.body {
                Some(BodySpec::Text(t)) => vars.extend(t.vars().map(str::to_string)),
                Some(BodySpec::Json(v)) => json_vars(v, &mut vars).map_err(|e| (at(&s.name), e))?,
                Some(BodySpec::Raw(_)) | None => {}
            }
            for v in vars {
                if !extracted.contains(&v) {
                    used.push((at(&s.url), s.name.get_ref().clone(), v));
                }
            }
            extracted.extend(step.extract.iter().map(|(v, _)| v.clone()));
            steps.push(step);
        }
        if flows
            .insert(name.clone(), (at(&flow.name), steps, used))
            .is_some()
        {
            return Err((at(&flow.name), format!("flow {name:?} is defined twice")));
        }
    }

    let mut scenarios: Vec<Scenario> = Vec::new();
    for s in &raw.scenarios {
        let name = s.name.get_ref().clone();
        if scenarios.iter().any(|x| x.name == name) {
            return Err((at(&s.name), format!("scenario {name:?} is defined twice")));
        }
        let executor = executor(s)?;
        let (_, steps, used) = flows.get(s.flow.get_ref()).ok_or_else(|| {
            (
                at(&s.flow),
                format!(
                    "no flow named {:?} (defined: {:?})",
                    s.flow.get_ref(),
                    flows.keys().collect::<Vec<_>>()
                ),
            )
        })?;
        let feeder = match &s.feeder {
            Some(f) => Some(
                feeders
                    .get(f.get_ref())
                    .cloned()
                    .ok_or_else(|| (at(f), format!("no feeder named {:?}", f.get_ref())))?,
            ),
            None => None,
        };
        for (offset, step, var) in used {
            let known = BUILTINS.contains(&var.as_str())
                || feeder.as_ref().is_some_and(|f| f.columns.contains(var));
            if !known {
                return Err((
                    *offset,
                    format!("step {step:?} uses {{{{{var}}}}}, which no feeder column, earlier extraction or built-in ({}) defines", BUILTINS.join(", ")),
                ));
            }
        }
        let needs_base = steps
            .iter()
            .any(|st| !crate::template::render(&st.url, &HashMap::new()).starts_with("http://"));
        if needs_base && base_url.is_none() {
            // Allowed: --base-url may supply it; checked again before the run.
        }
        scenarios.push(Scenario {
            name,
            executor,
            steps: Arc::new(steps.clone()),
            feeder,
            start_after: s.start_after.map_or(Duration::ZERO, |d| d.0),
            pool: s.pool,
            protocol: match s.protocol.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("http1") => Protocol::Http1,
                Some("h2c") => Protocol::H2c,
                Some(other) => {
                    let at_protocol = s.protocol.as_ref().map_or(at(&s.name), at);
                    return Err((
                        at_protocol,
                        format!("unknown protocol {other:?}: use \"http1\" or \"h2c\""),
                    ));
                }
            },
        });
    }
    if scenarios.is_empty() {
        return Err((
            0,
            "a scenario file needs at least one [[scenarios]] entry".into(),
        ));
    }

    let mut thresholds = Vec::new();
    for (key, items) in &raw.thresholds {
        for item in items.get_ref() {
            let (expr, abort) = match item {
                raw::RawThreshold::Expr(e) => (e.as_str(), false),
                raw::RawThreshold::Full {
                    threshold,
                    abort_on_fail,
                } => (threshold.as_str(), *abort_on_fail),
            };
            let t = Threshold::parse(key, expr, abort).map_err(|e| (at(items), e))?;
            let target_exists = match &t.filter {
                crate::threshold::Filter::All => true,
                crate::threshold::Filter::Step(n) => scenarios
                    .iter()
                    .any(|s| s.steps.iter().any(|st| &st.name == n)),
                crate::threshold::Filter::Scenario(n) => scenarios.iter().any(|s| &s.name == n),
            };
            if !target_exists {
                return Err((
                    at(items),
                    format!("{key}: no step or scenario by that name"),
                ));
            }
            thresholds.push(t);
        }
    }
    Ok(Plan {
        base_url,
        scenarios,
        thresholds,
    })
}

/// Checks a base URL: `http://host:port` with an optional path prefix.
pub fn check_base_url(url: &str) -> Result<String, String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.authority().is_none() {
        return Err(format!(
            "invalid base URL {url:?}: write it like \"http://127.0.0.1:8080\" or \"https://example.com\""
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn header(name: &str, value: &Spanned<String>) -> Result<(HeaderName, Template), Invalid> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| (at(value), format!("invalid header name {name:?}")))?;
    let t = crate::template::parse(value.get_ref()).map_err(|e| (at(value), e))?;
    if t.is_static() {
        HeaderValue::from_str(value.get_ref())
            .map_err(|_| (at(value), format!("invalid value for header {name}")))?;
    }
    Ok((n, t))
}

fn step(
    s: &raw::RawStep,
    defaults: &[(HeaderName, Template)],
    timeout: Duration,
) -> Result<Step, Invalid> {
    let name = s.name.get_ref().clone();
    let method = match &s.method {
        Some(m) => Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
            .map_err(|_| (at(m), format!("invalid method {:?}", m.get_ref())))?,
        None => Method::GET,
    };
    let url = crate::template::parse(s.url.get_ref()).map_err(|e| (at(&s.url), e))?;
    let text = s.url.get_ref();
    if !(text.starts_with('/') || text.starts_with("http://") || text.starts_with("{{")) {
        return Err((
            at(&s.url),
            format!("url {text:?} must be a path (\"/api/…\") or an http:// URL"),
        ));
    }
    let mut headers: Vec<(HeaderName, Template)> = defaults.to_vec();
    for (n, v) in &s.headers {
        let (n, t) = header(n, v)?;
        headers.retain(|(h, _)| *h != n);
        headers.push((n, t));
    }
    let body = match (&s.body, &s.json) {
        (Some(b), None) => Some(BodySpec::Text(
            crate::template::parse(b.get_ref()).map_err(|e| (at(b), e))?,
        )),
        (None, Some(j)) => Some(BodySpec::Json(
            serde_json::to_value(j.get_ref()).map_err(|e| (at(j), e.to_string()))?,
        )),
        (Some(b), Some(_)) => return Err((at(b), "give `body` or `json`, not both".into())),
        (None, None) => None,
    };
    let mut extract = Vec::new();
    for (var, spec) in &s.extract {
        let e = spec.get_ref();
        let source = match (&e.json, &e.header, &e.regex) {
            (Some(p), None, None) if p.starts_with('/') => Source::JsonPointer(p.clone()),
            (Some(p), None, None) if p.starts_with('$') => Source::JsonPath(
                serde_json_path::JsonPath::parse(p)
                    .map_err(|err| (at(spec), format!("invalid JSONPath {p:?}: {err}")))?,
            ),
            (Some(p), None, None) => {
                return Err((
                    at(spec),
                    format!("{p:?}: a JSON pointer starts with \"/\", a JSONPath with \"$\""),
                ))
            }
            (None, Some(h), None) => Source::Header(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| (at(spec), format!("invalid header name {h:?}")))?,
            ),
            (None, None, Some(r)) => Source::Regex(
                Regex::new(r).map_err(|err| (at(spec), format!("invalid regex: {err}")))?,
            ),
            _ => {
                return Err((
                    at(spec),
                    "an extraction takes exactly one of json, header or regex".into(),
                ))
            }
        };
        extract.push((var.clone(), source));
    }
    let mut checks = Vec::new();
    if let Some(c) = &s.checks {
        if let Some(st) = &c.status {
            let list = match st.get_ref() {
                StatusList::One(n) => vec![*n],
                StatusList::Many(v) => v.clone(),
            };
            if list.iter().any(|n| !(100..600).contains(n)) {
                return Err((at(st), "statuses are between 100 and 599".into()));
            }
            checks.push(Check::Status(list));
        }
        if let Some(t) = &c.body_contains {
            checks.push(Check::BodyContains(t.clone()));
        }
        for (pointer, value) in &c.json {
            if !pointer.starts_with('/') {
                return Err((
                    at(&s.name),
                    format!("checks.json keys are JSON pointers (\"/status\"), not {pointer:?}"),
                ));
            }
            checks.push(Check::JsonEquals(
                pointer.clone(),
                serde_json::to_value(value).map_err(|e| (at(&s.name), e.to_string()))?,
            ));
        }
        if let Some(d) = c.duration_under {
            checks.push(Check::DurationUnder(d.0));
        }
    }
    let think = match &s.think {
        None => None,
        Some(RawThink::Fixed(d)) => Some(Think::Fixed(d.0)),
        Some(RawThink::Range { min, max }) if min.0 <= max.0 => Some(Think::Uniform(min.0, max.0)),
        Some(RawThink::Range { .. }) => {
            return Err((at(&s.name), "think: min is larger than max".into()))
        }
    };
    Ok(Step {
        name,
        method,
        url,
        headers,
        body,
        extract,
        checks,
        think,
        timeout: s.timeout.map_or(timeout, |d| d.0),
    })
}

fn executor(s: &raw::RawScenario) -> Result<Executor, Invalid> {
    let kind = s.executor.get_ref().as_str();
    let here = at(&s.executor);
    let need = |what: &str| (here, format!("executor {kind:?} needs `{what}`"));
    let unexpected = |fields: &[(&str, bool)]| -> Result<(), Invalid> {
        match fields.iter().find(|(_, present)| *present) {
            Some((name, _)) => Err((
                here,
                format!("`{name}` does not apply to executor {kind:?}"),
            )),
            None => Ok(()),
        }
    };
    let per = s.per.map_or(1.0, |d| d.0.as_secs_f64());
    if per <= 0.0 {
        return Err((here, "`per` must be longer than zero".into()));
    }
    let stages = |stages: &Option<Vec<raw::RawStage>>| -> Result<Vec<(Duration, f64)>, Invalid> {
        let list = stages.as_ref().ok_or_else(|| need("stages"))?;
        if list.is_empty() || list.iter().any(|st| st.target < 0.0) {
            return Err((
                here,
                "stages need at least one entry and targets of zero or more".into(),
            ));
        }
        Ok(list
            .iter()
            .map(|st| {
                (
                    st.duration.0,
                    st.target / if kind.ends_with("rate") { per } else { 1.0 },
                )
            })
            .collect())
    };
    let positive = |v: Option<f64>, what: &str| -> Result<f64, Invalid> {
        let v = v.ok_or_else(|| need(what))?;
        if v > 0.0 && v.is_finite() {
            Ok(v)
        } else {
            Err((here, format!("`{what}` must be a positive number")))
        }
    };
    if kind != "shared-iterations" {
        unexpected(&[
            ("iterations", s.iterations.is_some()),
            ("max_duration", s.max_duration.is_some()),
        ])?;
    }
    let exec = match kind {
        "constant-vus" => {
            unexpected(&[("rate", s.rate.is_some()), ("stages", s.stages.is_some()), ("users", s.users.is_some()), ("max_vus", s.max_vus.is_some())])?;
            Executor::ConstantVus { vus: s.vus.ok_or_else(|| need("vus"))?.max(1), duration: s.duration.ok_or_else(|| need("duration"))?.0 }
        }
        "shared-iterations" => {
            unexpected(&[("rate", s.rate.is_some()), ("stages", s.stages.is_some()), ("users", s.users.is_some()), ("duration", s.duration.is_some()), ("max_vus", s.max_vus.is_some())])?;
            let iterations = s.iterations.ok_or_else(|| need("iterations"))?;
            if iterations == 0 {
                return Err((here, "`iterations` must be at least 1".into()));
            }
            Executor::SharedIterations {
                vus: s.vus.unwrap_or(1).max(1),
                iterations,
                max_duration: s.max_duration.map_or(Duration::from_secs(600), |d| d.0),
            }
        }
        "ramping-vus" => {
            unexpected(&[("rate", s.rate.is_some()), ("duration", s.duration.is_some()), ("users", s.users.is_some())])?;
            Executor::RampingVus { start_vus: s.start_vus.unwrap_or(0), stages: stages(&s.stages)? }
        }
        "constant-arrival-rate" => {
            unexpected(&[("vus", s.vus.is_some()), ("stages", s.stages.is_some()), ("users", s.users.is_some())])?;
            Executor::ConstantArrivalRate {
                rate: positive(s.rate, "rate")? / per,
                duration: s.duration.ok_or_else(|| need("duration"))?.0,
                max_vus: s.max_vus.ok_or_else(|| need("max_vus"))?.max(1),
            }
        }
        "ramping-arrival-rate" => {
            unexpected(&[("vus", s.vus.is_some()), ("duration", s.duration.is_some()), ("users", s.users.is_some())])?;
            Executor::RampingArrivalRate {
                start_rate: s.start_rate.unwrap_or(0.0) / per,
                stages: stages(&s.stages)?,
                max_vus: s.max_vus.ok_or_else(|| need("max_vus"))?.max(1),
            }
        }
        "users" => {
            unexpected(&[("vus", s.vus.is_some()), ("stages", s.stages.is_some()), ("rate", s.rate.is_some())])?;
            let duration = s.duration.ok_or_else(|| need("duration"))?.0;
            let ramp_up = s.ramp_up.map_or(Duration::ZERO, |d| d.0);
            if ramp_up > duration {
                return Err((here, "`ramp_up` is longer than `duration`".into()));
            }
            Executor::Users {
                users: s.users.ok_or_else(|| need("users"))?.max(1),
                ramp_up,
                duration,
                rate_per_user: positive(s.rate_per_user, "rate_per_user")? / per,
            }
        }
        other => {
            return Err((
                here,
                format!("unknown executor {other:?}: use constant-vus, shared-iterations, ramping-vus, constant-arrival-rate, ramping-arrival-rate or users"),
            ))
        }
    };
    Ok(exec)
}

/// What `rampart load URL` was told, as oha and hey users type it.
#[derive(Debug, Clone)]
pub struct Quick {
    /// The URL (`http://` or `https://`).
    pub url: String,
    /// `-m`.
    pub method: Method,
    /// `-H`, in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `-d` / `-D`.
    pub body: Option<bytes::Bytes>,
    /// `-c`: connections (users); 50 when not given.
    pub connections: Option<u32>,
    /// `-n`: requests in all (shared by the connections).
    pub requests: Option<u64>,
    /// `-q`: requests per second in all (open model).
    pub rate: Option<f64>,
    /// `-z`: how long; 10 s when neither this nor `-n` is given.
    pub duration: Option<Duration>,
    /// `--timeout` of each request.
    pub timeout: Duration,
    /// `--http2`.
    pub http2: bool,
}

/// Connections when `-c` is not given (oha's and hey's default).
pub const QUICK_CONNECTIONS: u32 = 50;

/// The plan of a quick run: one scenario (`default`) with one step
/// (`request`). `-n` shares N requests among the connections (at `-q`
/// per second when given); `-q` alone starts requests at that rate for
/// `-z`; otherwise `-c` users loop for `-z`.
pub fn quick(q: &Quick) -> Result<Plan, String> {
    let url = q.url.as_str();
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let base = check_base_url(&format!(
        "{scheme}://{}",
        uri.authority()
            .ok_or_else(|| format!("{url:?} has no host"))?
    ))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let positive = |v: f64, what: &str| {
        if v > 0.0 && v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{what} must be a positive number"))
        }
    };
    let connections = q.connections.unwrap_or(QUICK_CONNECTIONS).max(1);
    if q.connections == Some(0) {
        return Err("-c: at least one connection".into());
    }
    let executor = match (q.requests, q.rate, q.duration) {
        (Some(_), _, Some(_)) => {
            return Err("give -n (how many requests) or -z (how long), not both".into())
        }
        (Some(0), _, _) => return Err("-n: at least one request".into()),
        (Some(n), None, None) => Executor::SharedIterations {
            vus: connections.min(u32::try_from(n).unwrap_or(u32::MAX)),
            iterations: n,
            max_duration: Duration::from_secs(24 * 3600),
        },
        (Some(n), Some(rate), None) => {
            let rate = positive(rate, "-q")?;
            // The k-th request starts at k/rate: the run ends half an
            // interval after the n-th, so exactly n start.
            Executor::ConstantArrivalRate {
                rate,
                duration: Duration::from_secs_f64((n as f64 + 0.5) / rate),
                max_vus: connections,
            }
        }
        (None, Some(rate), duration) => Executor::ConstantArrivalRate {
            rate: positive(rate, "-q")?,
            duration: duration.unwrap_or(Duration::from_secs(10)),
            max_vus: q
                .connections
                .unwrap_or(((rate * 2.0).ceil() as u32).clamp(10, 10_000)),
        },
        (None, None, duration) => Executor::ConstantVus {
            vus: connections,
            duration: duration.unwrap_or(Duration::from_secs(10)),
        },
    };
    let mut headers: Vec<(HeaderName, Template)> = Vec::with_capacity(q.headers.len());
    for (name, value) in &q.headers {
        let text = value
            .to_str()
            .map_err(|_| format!("-H {name}: the value is not visible ASCII"))?;
        headers.push((name.clone(), Template::literal(text)));
    }
    Ok(Plan {
        base_url: Some(base),
        scenarios: vec![Scenario {
            name: "default".into(),
            executor,
            steps: Arc::new(vec![Step {
                name: "request".into(),
                method: q.method.clone(),
                url: Template::literal(path),
                headers,
                body: q.body.clone().map(BodySpec::Raw),
                extract: Vec::new(),
                checks: Vec::new(),
                think: None,
                timeout: q.timeout,
            }]),
            feeder: None,
            start_after: Duration::ZERO,
            pool: None,
            protocol: if q.http2 {
                Protocol::H2c
            } else {
                Protocol::Http1
            },
        }],
        thresholds: Vec::new(),
    })
}
