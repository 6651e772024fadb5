//! The engine: checks the plan against the machine, starts every scenario's
//! executor, watches the generator itself, and assembles the report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plan::{stage_value, Executor, Plan, Scenario};
use crate::recorder::{record, Counters, Live, Names, Samples};
use crate::report::{Generator, Report, SCHEMA};
use crate::tls::{Tls, TlsOptions};
use crate::vu::{ScenarioCtx, Transport, Vu};

/// Iterations starting this much after their scheduled time count as late.
const LATE: Duration = Duration::from_millis(10);

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replaces the plan's base URL.
    pub base_url: Option<String>,
    /// This generator's shard, `(index from 1, count)`: it runs its share of
    /// every scenario's users and rates.
    pub segment: Option<(u32, u32)>,
    /// Set to stop the run early (Ctrl-C): no iteration starts after it,
    /// those in flight finish, and the report covers what ran, marked
    /// interrupted.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// How `https://` targets are verified.
    pub tls: TlsOptions,
    /// Where the generator shares its process with others (`rampart demo`
    /// runs the origin and the gateway beside it): the name its runtime
    /// gives its threads, so that its CPU use, and whether it saturated,
    /// count only those threads. `None`: the whole process is the
    /// generator.
    pub threads: Option<&'static str>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan cannot run as given (no base URL, unreachable target, too
    /// many sockets for this process).
    #[error("{0}")]
    Plan(String),
}

/// Raises the open-file limit to the hard limit; returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft),
    }
}

/// Scales a scenario to one shard's share.
fn segment(s: &Scenario, index: u32, count: u32) -> Scenario {
    let share = |n: u32| n / count + u32::from(index <= n % count);
    let frac = 1.0 / f64::from(count);
    let mut out = s.clone();
    out.executor = match &s.executor {
        Executor::ConstantVus { vus, duration } => Executor::ConstantVus {
            vus: share(*vus).max(1),
            duration: *duration,
        },
        Executor::SharedIterations {
            vus,
            iterations,
            max_duration,
        } => Executor::SharedIterations {
            vus: share(*vus).max(1),
            iterations: iterations / u64::from(count)
                + u64::from(u64::from(index) <= iterations % u64::from(count)),
            max_duration: *max_duration,
        },
        Executor::RampingVus { start_vus, stages } => Executor::RampingVus {
            start_vus: share(*start_vus),
            stages: stages.iter().map(|(d, t)| (*d, t * frac)).collect(),
        },
        Executor::ConstantArrivalRate {
            rate,
            duration,
            max_vus,
        } => Executor::ConstantArrivalRate {
            rate: rate * frac,
            duration: *duration,
            max_vus: share(*max_vus).max(1),
        },
        Executor::RampingArrivalRate {
            start_rate,
            stages,
            max_vus,
        } => Executor::RampingArrivalRate {
            start_rate: start_rate * frac,
            stages: stages.iter().map(|(d, t)| (*d, t * frac)).collect(),
            max_vus: share(*max_vus).max(1),
        },
        Executor::Users {
            users,
            ramp_up,
            duration,
            rate_per_user,
        } => Executor::Users {
            users: share(*users).max(1),
            ramp_up: *ramp_up,
            duration: *duration,
            rate_per_user: *rate_per_user,
        },
    };
    out
}

/// Checks that the plan can run here: a base URL where steps need one, the
/// target reachable, and enough file descriptors for its connections.
pub async fn preflight(plan: &Plan, opts: &RunOptions) -> Result<Option<String>, RunError> {
    let base = match &opts.base_url {
        Some(b) => Some(crate::plan::check_base_url(b).map_err(RunError::Plan)?),
        None => plan.base_url.clone(),
    };
    let relative = plan
        .scenarios
        .iter()
        .flat_map(|s| s.steps.iter())
        .any(|st| !crate::vu::is_absolute(&crate::template::render(&st.url, &Default::default())));
    if relative && base.is_none() {
        return Err(RunError::Plan("steps use relative URLs but no base_url is set: add base_url to the scenario file or pass --base-url".into()));
    }
    if let Some(b) = &base {
        let uri: http::Uri = b
            .parse()
            .map_err(|e| RunError::Plan(format!("invalid base URL {b:?}: {e}")))?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let authority = format!("{}:{port}", uri.host().unwrap_or_default());
        let reachable = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(&authority),
        )
        .await;
        if !matches!(reachable, Ok(Ok(_))) {
            return Err(RunError::Plan(format!(
                "target {b} is unreachable: nothing accepted a connection at {authority}"
            )));
        }
    }
    let limit = raise_fd_limit();
    let sockets: u64 = plan
        .scenarios
        .iter()
        .map(|s| u64::from(s.pool.unwrap_or_else(|| s.executor.max_users())))
        .sum();
    let headroom = 64;
    if sockets + headroom > limit {
        return Err(RunError::Plan(format!(
            "the plan needs up to {sockets} connections but this process may open {limit} files: set `pool = N` on user-rate scenarios to share keep-alive connections, or split the run with --segment 1/K across K generators"
        )));
    }
    Ok(base)
}

/// Runs a plan. `on_second` is called every second with live totals.
pub async fn run(
    plan: &Plan,
    opts: &RunOptions,
    mut on_second: impl FnMut(&Live) + Send + 'static,
) -> Result<Report, RunError> {
    let base = preflight(plan, opts).await?;
    let scenarios: Vec<Scenario> = match opts.segment {
        Some((i, n)) => plan.scenarios.iter().map(|s| segment(s, i, n)).collect(),
        None => plan.scenarios.clone(),
    };
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    let counters = Arc::new(Counters::default());
    let stop = opts.interrupt.clone().unwrap_or_default();
    let samples = Arc::new(Samples::default());
    let names: Vec<Names> = scenarios
        .iter()
        .map(|s| Names {
            scenario: s.name.clone(),
            steps: s
                .steps
                .iter()
                .map(|st| {
                    (
                        st.name.clone(),
                        st.checks.iter().map(|c| c.label()).collect(),
                    )
                })
                .collect(),
        })
        .collect();

    let aborting: Vec<_> = plan
        .thresholds
        .iter()
        .filter(|t| t.abort_on_fail)
        .cloned()
        .collect();
    let stop_on_fail = Arc::clone(&stop);
    let aborted = Arc::new(AtomicBool::new(false));
    let aborted_flag = Arc::clone(&aborted);
    let recorder = tokio::spawn(record(
        Arc::clone(&samples),
        names,
        Arc::clone(&counters),
        started,
        move |live, partial| {
            on_second(live);
            if !aborting.is_empty() {
                let probe = Report {
                    overall: partial.overall.clone(),
                    duration_s: live.elapsed as f64,
                    ..empty_report()
                };
                if probe
                    .evaluate(&aborting)
                    .iter()
                    .any(|r| !r.ok && r.value.is_finite())
                {
                    aborted_flag.store(true, Ordering::Relaxed);
                    stop_on_fail.store(true, Ordering::Relaxed);
                }
            }
        },
    ));

    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor = tokio::spawn(monitor(Arc::clone(&monitor_stop), opts.threads));

    let https = base.as_deref().is_some_and(|b| b.starts_with("https://"))
        || scenarios
            .iter()
            .flat_map(|s| s.steps.iter())
            .any(|st| st.url.source.starts_with("https://"));
    let tls = |alpn: &[u8]| -> Result<Option<Tls>, RunError> {
        https
            .then(|| Tls::new(&opts.tls, alpn).map_err(|e| RunError::Plan(format!("TLS: {e}"))))
            .transpose()
    };
    let (tls_h1, tls_h2) = (tls(b"http/1.1")?, tls(b"h2")?);
    // Said in the report, where the numbers are read.
    let insecure_warning = https && opts.tls.insecure;
    let mut tasks = Vec::new();
    for (index, scenario) in scenarios.into_iter().enumerate() {
        let h2 = scenario.protocol == crate::plan::Protocol::H2c;
        let tls = if h2 { tls_h2.clone() } else { tls_h1.clone() };
        let transport = match (scenario.pool, h2) {
            (Some(n), _) => Transport::pool(n, h2, tls.as_ref()),
            (None, true) => Transport::H2PerUser,
            (None, false) => Transport::PerUser,
        };
        let static_uris = scenario
            .steps
            .iter()
            .map(|st| {
                st.url
                    .is_static()
                    .then(|| crate::vu::full_uri(base.as_deref(), &st.url.source).ok())
                    .flatten()
            })
            .collect();
        let templated = scenario.steps.iter().any(|st| {
            !st.url.is_static()
                || st.headers.iter().any(|(_, v)| !v.is_static())
                || matches!(
                    st.body,
                    Some(crate::plan::BodySpec::Text(_) | crate::plan::BodySpec::Json(_))
                )
        });
        let ctx = Arc::new(ScenarioCtx {
            static_uris,
            templated,
            index,
            scenario,
            base_url: base.clone(),
            samples: Arc::clone(&samples),
            transport,
            tls,
            next_row: AtomicU64::new(0),
        });
        tasks.push(tokio::spawn(run_scenario(
            ctx,
            started,
            Arc::clone(&counters),
            Arc::clone(&stop),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    samples.close();
    let duration = started.elapsed();
    monitor_stop.store(true, Ordering::Relaxed);
    let recorded = recorder
        .await
        .map_err(|e| RunError::Plan(format!("recorder failed: {e}")))?;
    let mut generator = monitor.await.unwrap_or_default();
    if insecure_warning {
        generator
            .warnings
            .push("--insecure: the target's TLS certificate was not verified".into());
    }
    if aborted.load(Ordering::Relaxed) {
        generator
            .warnings
            .push("stopped early: a threshold with abort_on_fail failed".into());
    } else if stop.load(Ordering::Relaxed) {
        generator.interrupted = true;
        generator
            .warnings
            .push("interrupted: the report covers the part of the run before the stop".into());
    }
    let mut report = Report {
        schema: SCHEMA.into(),
        duration_s: duration.as_secs_f64(),
        shards: 1,
        iterations: counters.iterations.load(Ordering::Relaxed),
        late_starts: counters.late_starts.load(Ordering::Relaxed),
        dropped_iterations: counters.dropped.load(Ordering::Relaxed),
        overall: recorded.overall,
        scenarios: recorded.scenarios,
        steps: recorded.steps,
        series: recorded.series,
        thresholds: Vec::new(),
        generator,
        run: crate::report::RunInfo {
            target: base.clone().unwrap_or_default(),
            started: httpdate::fmt_http_date(started_at),
            ..Default::default()
        },
    };
    if report.dropped_iterations > 0 {
        report.generator.warnings.push(format!(
            "{} iterations were dropped because every virtual user was busy and the backlog was full: raise max_vus",
            report.dropped_iterations
        ));
    }
    report.thresholds = report.evaluate(&plan.thresholds);
    Ok(report)
}

fn empty_report() -> Report {
    Report {
        schema: SCHEMA.into(),
        duration_s: 0.0,
        shards: 1,
        iterations: 0,
        late_starts: 0,
        dropped_iterations: 0,
        overall: crate::report::Stats::empty("", ""),
        scenarios: Vec::new(),
        steps: Vec::new(),
        series: Vec::new(),
        thresholds: Vec::new(),
        generator: Generator::default(),
        run: Default::default(),
    }
}

async fn run_scenario(
    ctx: Arc<ScenarioCtx>,
    started: Instant,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let begin = started + ctx.scenario.start_after;
    tokio::time::sleep_until(begin.into()).await;
    let end = begin + ctx.scenario.executor.duration();
    let running = move || Instant::now() < end && !stop.load(Ordering::Relaxed);
    match ctx.scenario.executor.clone() {
        Executor::ConstantVus { vus, .. } => {
            closed(ctx, vus, counters, running, |_, _| true).await;
        }
        Executor::SharedIterations {
            vus, iterations, ..
        } => {
            // Each user claims the next iteration as it loops (closed()
            // asks `running` once per iteration); none is left, it stops.
            let left = Arc::new(AtomicU64::new(iterations));
            let claim = move || {
                running()
                    && left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
            };
            closed(ctx, vus, counters, claim, |_, _| true).await;
        }
        Executor::RampingVus { start_vus, stages } => {
            let max = ctx.scenario.executor.max_users();
            let target = move |i: u32, now: Instant| {
                f64::from(i)
                    < stage_value(
                        f64::from(start_vus),
                        &stages,
                        now.saturating_duration_since(begin),
                    )
                    .round()
            };
            closed(ctx, max, counters, running, target).await;
        }
        Executor::ConstantArrivalRate { rate, max_vus, .. } => {
            open(ctx, max_vus, counters, running, begin, move |_| rate).await;
        }
        Executor::RampingArrivalRate {
            start_rate,
            stages,
            max_vus,
        } => {
            open(ctx, max_vus, counters, running, begin, move |t| {
                stage_value(start_rate, &stages, t)
            })
            .await;
        }
        Executor::Users {
            users,
            ramp_up,
            rate_per_user,
            duration,
        } => {
            let end = begin + duration;
            let mut handles = Vec::with_capacity(users as usize);
            let interval = Duration::from_secs_f64(1.0 / rate_per_user);
            for i in 0..users {
                let (ctx, counters, running) =
                    (Arc::clone(&ctx), Arc::clone(&counters), running.clone());
                let joins = begin + ramp_up.mul_f64(f64::from(i) / f64::from(users));
                // Each user starts at a random phase of its interval, so
                // users that join together do not fire together.
                let phase = interval.mul_f64(rand::random::<f64>());
                handles.push(tokio::spawn(async move {
                    let mut vu = Vu::new(u64::from(i) + 1);
                    let mut intended = joins + phase;
                    // A user whose next start falls after the end leaves now,
                    // instead of sleeping past it (its interval may be long).
                    while intended < end {
                        tokio::time::sleep_until(intended.into()).await;
                        if !running() {
                            break;
                        }
                        start(&counters, intended);
                        counters.busy.fetch_add(1, Ordering::Relaxed);
                        vu.iterate(&ctx, intended).await;
                        counters.busy.fetch_sub(1, Ordering::Relaxed);
                        intended += interval;
                    }
                }));
            }
            for h in handles {
                let _ = h.await;
            }
        }
    }
}

fn start(counters: &Counters, intended: Instant) {
    counters.iterations.fetch_add(1, Ordering::Relaxed);
    if Instant::now().saturating_duration_since(intended) > LATE {
        counters.late_starts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Closed model: `count` users loop while `active(i, now)` says so.
async fn closed(
    ctx: Arc<ScenarioCtx>,
    count: u32,
    counters: Arc<Counters>,
    running: impl Fn() -> bool + Clone + Send + Sync + 'static,
    active: impl Fn(u32, Instant) -> bool + Clone + Send + Sync + 'static,
) {
    let mut handles = Vec::with_capacity(count as usize);
    for i in 0..count {
        let (ctx, counters, running, active) = (
            Arc::clone(&ctx),
            Arc::clone(&counters),
            running.clone(),
            active.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut vu = Vu::new(u64::from(i) + 1);
            while running() {
                if !active(i, Instant::now()) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let now = Instant::now();
                counters.iterations.fetch_add(1, Ordering::Relaxed);
                counters.busy.fetch_add(1, Ordering::Relaxed);
                vu.iterate(&ctx, now).await;
                counters.busy.fetch_sub(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

/// Iterations that may wait for a free user before new ones are dropped.
const BACKLOG: usize = 100_000;

/// Open model: iterations are scheduled at `rate(t)` per second whether or
/// not earlier ones finished. Up to `max_vus` run at once; the others wait
/// for a free user, and their latency counts the wait (they are counted as
/// late starts), so a stalled target shows its stall. Only past a backlog of
/// [`BACKLOG`] iterations are new ones dropped (and counted).
async fn open(
    ctx: Arc<ScenarioCtx>,
    max_vus: u32,
    counters: Arc<Counters>,
    running: impl Fn() -> bool + Clone + Send + Sync + 'static,
    begin: Instant,
    rate: impl Fn(Duration) -> f64,
) {
    let (tx, rx) = async_channel::bounded::<Instant>(BACKLOG.max(max_vus as usize));
    let mut workers = Vec::with_capacity(max_vus as usize);
    for i in 0..max_vus {
        let (ctx, counters, rx) = (Arc::clone(&ctx), Arc::clone(&counters), rx.clone());
        workers.push(tokio::spawn(async move {
            let mut vu = Vu::new(u64::from(i) + 1);
            while let Ok(intended) = rx.recv().await {
                start(&counters, intended);
                counters.busy.fetch_add(1, Ordering::Relaxed);
                vu.iterate(&ctx, intended).await;
                counters.busy.fetch_sub(1, Ordering::Relaxed);
            }
        }));
    }
    drop(rx);
    // The k-th iteration starts when the integral of the rate reaches k:
    // integrated in 1 ms trapezoids, interpolated within each, so ramps from
    // zero and fast changes start exactly as many iterations as planned.
    let step = Duration::from_millis(1);
    let mut t = Duration::ZERO;
    let mut area = 0.0f64;
    let mut next = 1.0f64;
    'schedule: loop {
        let (r0, r1) = (rate(t).max(0.0), rate(t + step).max(0.0));
        let slice = (r0 + r1) / 2.0 * step.as_secs_f64();
        while slice > 0.0 && area + slice >= next {
            let intended = begin + t + step.mul_f64((next - area) / slice);
            next += 1.0;
            wait_until(intended).await;
            if !running() {
                break 'schedule;
            }
            if tx.try_send(intended).is_err() {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        area += slice;
        t += step;
        if !running() {
            break;
        }
        if slice == 0.0 && begin + t > Instant::now() {
            tokio::time::sleep_until((begin + t).into()).await;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
}

/// Waits until `at` with sub-millisecond precision: the runtime's timer fires
/// on millisecond ticks, late by up to one, and that lateness would count as
/// latency. So: sleep to a millisecond before, then yield until the time.
/// At rates above 1,000/s the next start is always due and nothing spins.
async fn wait_until(at: Instant) {
    if let Some(early) = at.checked_sub(Duration::from_millis(1)) {
        if early > Instant::now() {
            tokio::time::sleep_until(early.into()).await;
        }
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Watches the generator: how late its own 10 ms timer fires, and its CPU.
async fn monitor(stop: Arc<AtomicBool>, threads: Option<&'static str>) -> Generator {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let started = Instant::now();
    let cpu_start = cpu_seconds(threads);
    let mut max_lag = Duration::ZERO;
    let mut lagged_ticks = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let before = Instant::now();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let lag = before.elapsed().saturating_sub(Duration::from_millis(10));
        max_lag = max_lag.max(lag);
        lagged_ticks += u64::from(lag > Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64().max(0.001);
    let mean_cpu = (cpu_seconds(threads) - cpu_start) / wall;
    let mut warnings = Vec::new();
    let busy = mean_cpu > 0.9 * cores as f64;
    if busy {
        warnings.push(format!("the generator used {mean_cpu:.2} of {cores} cores: it may have limited the run, not the target"));
    }
    if lagged_ticks > 5 {
        warnings.push(format!(
            "the generator's scheduling lagged by up to {:.1} ms: latencies include its own delay",
            max_lag.as_secs_f64() * 1000.0
        ));
    }
    Generator {
        max_scheduling_lag_ms: max_lag.as_secs_f64() * 1000.0,
        mean_cpu_cores: mean_cpu,
        cores,
        saturated: busy || lagged_ticks > 5,
        interrupted: false,
        warnings,
    }
}

/// User plus system CPU time of the generator, in seconds: the process's,
/// or only its `threads`' when named (Linux; 0 elsewhere).
fn cpu_seconds(threads: Option<&str>) -> f64 {
    match threads {
        Some(name) => rampart_core::proc_stat::threads_cpu_seconds(name),
        None => rampart_core::proc_stat::process_cpu_seconds(),
    }
    .unwrap_or(0.0)
}
