//! Stage two: the validated, typed plan a run executes. Every name a
//! scenario refers to (flow, feeder, variable) is checked here, before any
//! request is sent; errors name the file, line, column and field.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use rampart_core::FileError;
use regex::Regex;
use toml::Spanned;

use crate::raw::{self, RawPlan, RawThink, StatusList};
use crate::template::{json_vars, Template, BUILTINS};
use crate::threshold::Threshold;

/// A scenario-file error: the same shape as a config error.
pub type PlanError = FileError;

/// How iterations are started.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// `constant-vus`: `vus` users loop for `duration` (closed model).
    ConstantVus {
        /// Users.
        vus: u32,
        /// Run time.
        duration: Duration,
    },
    /// `ramping-vus`: the number of looping users follows `stages` linearly (closed model).
    RampingVus {
        /// Users at the start.
        start_vus: u32,
        /// `(duration, target users)` in order.
        stages: Vec<(Duration, f64)>,
    },
    /// `constant-arrival-rate`: iterations start every `1/rate` s (open model).
    ConstantArrivalRate {
        /// Iterations per second.
        rate: f64,
        /// Run time.
        duration: Duration,
        /// Most iterations running at once.
        max_vus: u32,
    },
    /// `ramping-arrival-rate`: the start rate follows `stages` linearly (open model).
    RampingArrivalRate {
        /// Iterations per second at the start.
        start_rate: f64,
        /// `(duration, target rate per second)` in order.
        stages: Vec<(Duration, f64)>,
        /// Most iterations running at once.
        max_vus: u32,
    },
    /// `users`: `users` users join evenly over `ramp_up`, each starting
    /// iterations at `rate_per_user` per second until `duration` ends (open model per user).
    Users {
        /// Users.
        users: u32,
        /// Time over which they join.
        ramp_up: Duration,
        /// Total run time, ramp-up included.
        duration: Duration,
        /// Iterations per user per second.
        rate_per_user: f64,
    },
}

impl Executor {
    /// Total run time.
    pub fn duration(&self) -> Duration {
        match self {
            Executor::ConstantVus { duration, .. }
            | Executor::ConstantArrivalRate { duration, .. }
            | Executor::Users { duration, .. } => *duration,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|(d, _)| *d).sum()
            }
        }
    }

    /// Shrinks or stretches its run time to `total`, keeping its shape:
    /// stages and a `users` ramp-up scale in proportion, rates and user
    /// counts stay as they are (for a shorter demonstration of a profile).
    pub fn fit_to(&mut self, total: Duration) {
        let whole = self.duration();
        if whole.is_zero() {
            return;
        }
        let factor = total.as_secs_f64() / whole.as_secs_f64();
        match self {
            Executor::ConstantVus { duration, .. }
            | Executor::ConstantArrivalRate { duration, .. } => *duration = total,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                for (d, _) in stages.iter_mut() {
                    *d = d.mul_f64(factor);
                }
            }
            Executor::Users {
                ramp_up, duration, ..
            } => {
                *ramp_up = ramp_up.mul_f64(factor);
                *duration = total;
            }
        }
    }

    /// Multiplies its load by `factor`: users and rates (and `max_vus`)
    /// grow, times stay (2.0 is twice the profile's load).
    pub fn scale_load(&mut self, factor: f64) {
        let users = |n: &mut u32| *n = ((f64::from(*n) * factor).ceil() as u32).max(1);
        match self {
            Executor::ConstantVus { vus, .. } => users(vus),
            Executor::RampingVus { start_vus, stages } => {
                *start_vus = (f64::from(*start_vus) * factor).ceil() as u32;
                for (_, target) in stages.iter_mut() {
                    *target *= factor;
                }
            }
            Executor::ConstantArrivalRate { rate, max_vus, .. } => {
                *rate *= factor;
                users(max_vus);
            }
            Executor::RampingArrivalRate {
                start_rate,
                stages,
                max_vus,
            } => {
                *start_rate *= factor;
                for (_, target) in stages.iter_mut() {
                    *target *= factor;
                }
                users(max_vus);
            }
            Executor::Users { users: n, .. } => users(n),
        }
    }

    /// Whether latency counts from the intended start (open model).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Executor::ConstantArrivalRate { .. }
                | Executor::RampingArrivalRate { .. }
                | Executor::Users { .. }
        )
    }

    /// Most connections it may need at once (one per virtual user).
    pub fn max_users(&self) -> u32 {
        match self {
            Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|(_, t)| t.ceil() as u32)
                .max()
                .unwrap_or(0)
                .max(*start_vus),
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => *max_vus,
            Executor::Users { users, .. } => *users,
        }
    }
}

/// Linear interpolation over stages: the value at `t`.
pub fn stage_value(start: f64, stages: &[(Duration, f64)], t: Duration) -> f64 {
    let mut from = start;
    let mut elapsed = Duration::ZERO;
    for (d, target) in stages {
        if t < elapsed + *d {
            let frac = (t - elapsed).as_secs_f64() / d.as_secs_f64().max(f64::EPSILON);
            return from + (target - from) * frac;
        }
        elapsed += *d;
        from = *target;
    }
    from
}

/// Where a value is taken from in a response.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JSON pointer (`/data/token`).
    JsonPointer(String),
    /// A JSONPath (`$.data.token`); the first match.
    JsonPath(serde_json_path::JsonPath),
    /// A response header.
    Header(HeaderName),
    /// A regex over the body; the first capture group (or the whole match).
    Regex(Regex),
}

/// A check on a response; its outcome counts in `checks`.
#[derive(Debug, Clone)]
pub enum Check {
    /// The status is one of these.
    Status(Vec<u16>),
    /// The body contains this text.
    BodyContains(String),
    /// The JSON value at a pointer equals this.
    JsonEquals(String, serde_json::Value),
    /// The request took less than this.
    DurationUnder(Duration),
}

impl Check {
    /// A short label for reports.
    pub fn label(&self) -> String {
        match self {
            Check::Status(s) => format!("status in {s:?}"),
            Check::BodyContains(t) => format!("body contains {t:?}"),
            Check::JsonEquals(p, v) => format!("json {p} == {v}"),
            Check::DurationUnder(d) => format!("duration < {d:?}"),
        }
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum BodySpec {
    /// Text with templates.
    Text(Template),
    /// JSON with templates in its strings (sent as `application/json`).
    Json(serde_json::Value),
}

/// Think time after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Think {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between the two.
    Uniform(Duration, Duration),
}

/// One request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// Name shown in every output.
    pub name: String,
    /// Method.
    pub method: Method,
    /// URL: absolute (`http://…`) or a path under the base URL.
    pub url: Template,
    /// Headers (defaults first, then the step's).
    pub headers: Vec<(HeaderName, Template)>,
    /// Body.
    pub body: Option<BodySpec>,
    /// Values to extract into the user's variables.
    pub extract: Vec<(String, Source)>,
    /// Checks.
    pub checks: Vec<Check>,
    /// Think time after the step.
    pub think: Option<Think>,
    /// Deadline for the whole exchange.
    pub timeout: Duration,
}

/// Rows from a CSV file; each iteration takes the next (or a random) row.
#[derive(Debug, Clone)]
pub struct Feeder {
    /// Name.
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Arc<Vec<Vec<String>>>,
    /// Whether rows are taken at random (else in order, wrapping).
    pub random: bool,
}

/// One scenario: an executor running a flow.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name shown in every output.
    pub name: String,
    /// How iterations start.
    pub executor: Executor,
    /// The steps of one iteration.
    pub steps: Arc<Vec<Step>>,
    /// Data for each iteration.
    pub feeder: Option<Feeder>,
    /// Delay before it starts.
    pub start_after: Duration,
    /// Shared keep-alive pool size; `None` is one connection per user.
    pub pool: Option<u32>,
    /// The protocol spoken to the target.
    pub protocol: Protocol,
}

/// The protocol a scenario speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URL for relative step URLs (`http://host:port`).
    pub base_url: Option<String>,
    /// Scenarios, run together.
    pub scenarios: Vec<Scenario>,
    /// Thresholds.
    pub thresholds: Vec<Threshold>,
}

impl Plan {
    /// Fits the whole profile into `total`: every scenario's run time and
    /// start delay shrink (or grow) in proportion, so each keeps its place
    /// and shape; rates and users stay.
    pub fn fit_to(&mut self, total: Duration) {
        let whole = self.duration();
        if whole.is_zero() {
            return;
        }
        let factor = total.as_secs_f64() / whole.as_secs_f64();
        for s in &mut self.scenarios {
            let share = s
                .executor
                .duration()
                .mul_f64(factor)
                .max(Duration::from_secs(1));
            s.executor.fit_to(share);
            s.start_after = s.start_after.mul_f64(factor);
        }
    }

    /// Multiplies every scenario's load by `factor` ([`Executor::scale_load`]).
    pub fn scale_load(&mut self, factor: f64) {
        for s in &mut self.scenarios {
            s.executor.scale_load(factor);
        }
    }

    /// The longest scenario's end.
    pub fn duration(&self) -> Duration {
        self.scenarios
            .iter()
            .map(|s| s.start_after + s.executor.duration())
            .max()
            .unwrap_or_default()
    }
}

/// Reads and validates a scenario file; CSV paths are relative to it.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let (text, file) = rampart_core::located::read_text(path)?;
    parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Parses and validates scenario text.
pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Plan, PlanError> {
    rampart_core::located::parse_toml(text, file, |raw: RawPlan| validate(raw, dir))
}

type Invalid = (usize, String);

/// A flow's steps, and the variables its steps use that it does not extract
/// itself: `(offset, step name, variable)`, checked per scenario.
type CheckedFlow = (usize, Vec<Step>, Vec<(usize, String, String)>);

fn at<T>(s: &Spanned<T>) -> usize {
    s.span().start
}

fn validate(raw: RawPlan, dir: &Path) -> Result<Plan, Invalid> {
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
                None => {}
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
    if url.starts_with("https://") {
        return Err("https is not supported yet: point the load test at an http:// address".into());
    }
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if parsed.scheme_str() != Some("http") || parsed.authority().is_none() {
        return Err(format!(
            "invalid base URL {url:?}: write it like \"http://127.0.0.1:8080\""
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
    let exec = match kind {
        "constant-vus" => {
            unexpected(&[("rate", s.rate.is_some()), ("stages", s.stages.is_some()), ("users", s.users.is_some()), ("max_vus", s.max_vus.is_some())])?;
            Executor::ConstantVus { vus: s.vus.ok_or_else(|| need("vus"))?.max(1), duration: s.duration.ok_or_else(|| need("duration"))?.0 }
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
                format!("unknown executor {other:?}: use constant-vus, ramping-vus, constant-arrival-rate, ramping-arrival-rate or users"),
            ))
        }
    };
    Ok(exec)
}

/// A plan for `rampart load --url URL (--rate N | --vus N) --duration D`:
/// one scenario (`default`) with one GET step (`request`).
pub fn quick(
    url: &str,
    rate: Option<f64>,
    vus: Option<u32>,
    duration: Duration,
) -> Result<Plan, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let base = check_base_url(&format!(
        "http://{}",
        uri.authority()
            .ok_or_else(|| format!("{url:?} has no host"))?
    ))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url:?}: only http:// URLs are supported"));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let executor = match (rate, vus) {
        (Some(rate), None) if rate > 0.0 => Executor::ConstantArrivalRate {
            rate,
            duration,
            max_vus: ((rate * 2.0).ceil() as u32).clamp(10, 10_000),
        },
        (None, Some(vus)) if vus > 0 => Executor::ConstantVus { vus, duration },
        _ => return Err("give exactly one of --rate (requests per second, open model) or --vus (users, closed model)".into()),
    };
    Ok(Plan {
        base_url: Some(base),
        scenarios: vec![Scenario {
            name: "default".into(),
            executor,
            steps: Arc::new(vec![Step {
                name: "request".into(),
                method: Method::GET,
                url: crate::template::parse(path)?,
                headers: Vec::new(),
                body: None,
                extract: Vec::new(),
                checks: Vec::new(),
                think: None,
                timeout: Duration::from_secs(30),
            }]),
            feeder: None,
            start_after: Duration::ZERO,
            pool: None,
            protocol: Protocol::Http1,
        }],
        thresholds: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::Executor;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn fit_to_keeps_the_shape_of_a_profile() {
        let mut ramp = Executor::RampingVus {
            start_vus: 0,
            stages: vec![(S(60), 100.0), (S(180), 1000.0), (S(60), 0.0)],
        };
        ramp.fit_to(S(30));
        let Executor::RampingVus { stages, .. } = &ramp else {
            unreachable!()
        };
        assert_eq!(
            stages.iter().map(|(d, t)| (*d, *t)).collect::<Vec<_>>(),
            vec![(S(6), 100.0), (S(18), 1000.0), (S(6), 0.0)]
        );
        let mut users = Executor::Users {
            users: 20_000,
            ramp_up: S(60),
            duration: S(300),
            rate_per_user: 0.5,
        };
        users.fit_to(S(30));
        assert!(matches!(
            users,
            Executor::Users { users: 20_000, ramp_up, duration, .. } if ramp_up == S(6) && duration == S(30)
        ));
        let mut rate = Executor::ConstantArrivalRate {
            rate: 10.0,
            duration: S(60),
            max_vus: 5,
        };
        rate.fit_to(S(20));
        assert_eq!(rate.duration(), S(20));
    }

    #[test]
    fn scale_load_multiplies_users_and_rates_not_times() {
        let mut ramp = Executor::RampingArrivalRate {
            start_rate: 10.0,
            stages: vec![(S(60), 100.0)],
            max_vus: 50,
        };
        ramp.scale_load(2.0);
        assert!(matches!(
            &ramp,
            Executor::RampingArrivalRate { start_rate, stages, max_vus: 100 }
                if *start_rate == 20.0 && stages == &vec![(S(60), 200.0)]
        ));
        let mut users = Executor::Users {
            users: 20_000,
            ramp_up: S(60),
            duration: S(300),
            rate_per_user: 0.5,
        };
        users.scale_load(1.5);
        assert!(matches!(
            users,
            Executor::Users { users: 30_000, rate_per_user, duration, .. }
                if rate_per_user == 0.5 && duration == S(300)
        ));
        let mut vus = Executor::ConstantVus {
            vus: 1,
            duration: S(10),
        };
        vus.scale_load(0.1);
        assert!(matches!(vus, Executor::ConstantVus { vus: 1, .. }));
    }
}
