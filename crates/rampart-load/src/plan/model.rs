//! The plan a run executes: scenarios, their executors and steps, typed and
//! validated.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use regex::Regex;

use crate::template::Template;
use crate::threshold::Threshold;

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
    /// `shared-iterations`: `vus` users share `iterations`, each taking the
    /// next until none is left, within `max_duration` (closed model).
    SharedIterations {
        /// Users.
        vus: u32,
        /// Iterations in all.
        iterations: u64,
        /// Longest the run may take.
        max_duration: Duration,
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
            Executor::SharedIterations { max_duration, .. } => *max_duration,
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
            Executor::SharedIterations { max_duration, .. } => *max_duration = total,
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
            Executor::SharedIterations {
                vus, iterations, ..
            } => {
                users(vus);
                *iterations = (*iterations as f64 * factor).ceil() as u64;
            }
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
            Executor::ConstantVus { vus, .. } | Executor::SharedIterations { vus, .. } => *vus,
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
    /// Bytes sent as they are (`-d`, `-D` in quick mode).
    Raw(bytes::Bytes),
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
    /// HTTP/2: over cleartext with prior knowledge, over TLS by ALPN.
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
