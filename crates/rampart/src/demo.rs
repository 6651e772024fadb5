//! `rampart demo`: the example origin of a seed application, a gateway with
//! that application's config in front of it, and its main load profile run
//! against the origin directly and then through Rampart, side by side.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_demo::{AppKind, EventSink};
use rampart_load::report::Report;
use rampart_load::RunOptions;

/// Arguments of `rampart demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The seed application.
    #[arg(long, default_value = "event-registration")]
    app: String,
    /// The load profile (a file under examples/APP/scenarios/, without
    /// .toml); by default the app's main one (registration-spike, load-test,
    /// vus-100, member-lookup, api-benchmark).
    #[arg(long)]
    scenario: Option<String>,
    /// How long each of the two runs lasts (the profile's stages and ramp-up
    /// shrink in proportion).
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Data size as a share of the guide's (1.0 = 1 million registrations,
    /// 100,000 accounts, students or members, 5,000 events).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Only run the example origin (for other tools), on --listen.
    #[arg(long)]
    origin_only: bool,
    /// Where the origin listens with --origin-only.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// With --origin-only: send the app's domain events (PaymentConfirmed,
    /// TransferCompleted, guest.registered…) to this gateway admin listener,
    /// e.g. http://127.0.0.1:9090, with the bearer token in
    /// RAMPART_ADMIN_TOKEN (required with this flag).
    #[arg(long, requires = "origin_only")]
    events_to: Option<String>,
    /// Where the reports go.
    #[arg(long, default_value = "rampart-demo")]
    out_dir: PathBuf,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// The examples folder: next to the current directory, or in the source tree.
fn examples_dir() -> PathBuf {
    let here = PathBuf::from("examples");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// Runs `rampart demo`.
pub fn run(args: DemoArgs) -> ExitCode {
    let app = match AppKind::parse(&args.app) {
        Ok(a) => a,
        Err(e) => return fail(2, e),
    };
    if !(args.scale > 0.0 && args.scale <= 10.0) {
        return fail(
            2,
            format!("--scale {}: give a share between 0 and 10", args.scale),
        );
    }
    let duration = match rampart_core::units::parse_duration(&args.duration) {
        Ok(d) if d >= Duration::from_secs(1) => d,
        Ok(_) => return fail(2, "--duration: at least 1s"),
        Err(e) => return fail(2, format!("--duration: {e}")),
    };
    if args.origin_only {
        let runtime = match runtime(ORIGIN) {
            Ok(rt) => rt,
            Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
        };
        let token = std::env::var("RAMPART_ADMIN_TOKEN").ok();
        let sink = match (args.events_to.clone(), token) {
            (None, _) => None,
            (Some(admin), Some(token)) => Some(EventSink {
                admin: admin.trim_end_matches('/').to_string(),
                token,
            }),
            (Some(_), None) => {
                return fail(
                    2,
                    "--events-to: set RAMPART_ADMIN_TOKEN to the gateway's admin token",
                )
            }
        };
        return runtime.block_on(origin_only(app, args.scale, args.listen, sink));
    }
    side_by_side(app, &args, duration)
}

/// Thread names of the three parties of a side-by-side run, each on a
/// runtime of its own (as the origin, `rampart serve` and `rampart load`
/// would be processes of their own), so that each one's CPU time can be
/// read and no party's tasks wait in another's queues.
const ORIGIN: &str = "demo-origin";
const GATEWAY: &str = "demo-gateway";
const GENERATOR: &str = "demo-load";

/// A runtime whose threads are named `name`, one worker per core as `rampart
/// serve` has. Its blocking threads stay an hour when idle, so that their
/// CPU time is still there to be read when a run ends.
fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, usize::from))
        .thread_name(name)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
}

/// CPU seconds used so far by the threads of each party: origin, gateway,
/// generator.
fn cpu_now() -> [Option<f64>; 3] {
    [ORIGIN, GATEWAY, GENERATOR].map(rampart_core::proc_stat::threads_cpu_seconds)
}

/// CPU microseconds per request of each party between two readings.
fn cpu_per_request(before: [Option<f64>; 3], after: [Option<f64>; 3], requests: u64) -> Cpu {
    let per = |i: usize| match (before[i], after[i]) {
        (Some(b), Some(a)) if requests > 0 => Some((a - b).max(0.0) * 1e6 / requests as f64),
        _ => None,
    };
    Cpu {
        origin: per(0),
        gateway: per(1),
        generator: per(2),
    }
}

/// CPU microseconds per request sent, by party (`None` where `/proc` is
/// missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub origin: Option<f64>,
    pub gateway: Option<f64>,
    pub generator: Option<f64>,
}

async fn origin_only(
    app: AppKind,
    scale: f64,
    listen: SocketAddr,
    events: Option<EventSink>,
) -> ExitCode {
    eprintln!("generating the {} data (scale {scale})…", app.name());
    let origin = match rampart_demo::start(app, scale, listen, events).await {
        Ok(o) => o,
        Err(e) => return fail(1, e),
    };
    eprintln!(
        "the {} origin serves {} rows on http://{} (Ctrl-C or SIGTERM stops it)",
        app.name(),
        origin.rows,
        origin.addr
    );
    crate::stop::StopSignals::new().next().await;
    // The generated database goes when the origin and its server task are
    // dropped: here and with the runtime, once this returns.
    drop(origin);
    ExitCode::SUCCESS
}

fn side_by_side(app: AppKind, args: &DemoArgs, duration: Duration) -> ExitCode {
    let runtimes = (runtime(ORIGIN), runtime(GATEWAY), runtime(GENERATOR));
    let (origin_rt, gateway_rt, load_rt) = match runtimes {
        (Ok(o), Ok(g), Ok(l)) => (o, g, l),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return fail(1, format!("cannot start the runtime: {e}"))
        }
    };
    let dir = examples_dir().join(app.name());
    let config_path = dir.join("rampart.toml");
    let scenario = args
        .scenario
        .clone()
        .unwrap_or_else(|| app.main_scenario().to_string());
    let scenario_path = dir.join("scenarios").join(format!("{scenario}.toml"));
    if !scenario_path.is_file() {
        return fail(
            2,
            format!(
                "{}: no such scenario for {} (pick one of examples/{}/scenarios/ with --scenario)",
                scenario_path.display(),
                app.name(),
                app.name()
            ),
        );
    }
    let (listen, admin) = match (free_port(), free_port()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(1, e),
    };
    // The gateway's admin token for this run only: never a placeholder.
    let token = &format!("{:032x}", rand::random::<u128>());

    let started = Instant::now();
    eprintln!(
        "1/4 generating the {} data (scale {})…",
        app.name(),
        args.scale
    );
    let sink = EventSink {
        admin: format!("http://{admin}"),
        token: token.to_string(),
    };
    let origin = match origin_rt.block_on(rampart_demo::start(
        app,
        args.scale,
        "127.0.0.1:0".parse().unwrap_or(listen),
        Some(sink),
    )) {
        Ok(o) => o,
        Err(e) => return fail(1, e),
    };
    eprintln!(
        "    {} rows in {:.1} s; origin on http://{}",
        origin.rows,
        started.elapsed().as_secs_f64(),
        origin.addr
    );

    // The example config reads these (with defaults for `rampart serve`).
    std::env::set_var("ORIGIN_ADDR", origin.addr.to_string());
    std::env::set_var("RAMPART_LISTEN", listen.to_string());
    std::env::set_var("RAMPART_ADMIN_LISTEN", admin.to_string());
    std::env::set_var("RAMPART_ADMIN_TOKEN", token);
    let config = match rampart_config::load(&config_path) {
        Ok(c) => c,
        Err(e) => return fail(2, e),
    };
    let clock = Arc::new(rampart_gateway::SystemClock);
    let gateway = match gateway_rt.block_on(rampart_gateway::start(&config, clock)) {
        Ok(g) => g,
        Err(e) => return fail(1, e),
    };
    let mut plan = match rampart_load::load(&scenario_path) {
        Ok(p) => p,
        Err(e) => return fail(2, e),
    };
    plan.fit_to(duration);

    eprintln!(
        "2/4 {} for {} straight against the origin…",
        scenario,
        rampart_core::units::format_duration(duration)
    );
    let (before, cpu_before) = (origin.requests(), cpu_now());
    let direct = match run_plan(&load_rt, &plan, format!("http://{}", origin.addr)) {
        Ok(r) => r,
        Err(e) => return fail(1, e),
    };
    let direct_cpu = Cpu {
        // Not in the path: its health checks are not this run's cost.
        gateway: None,
        ..cpu_per_request(cpu_before, cpu_now(), direct.overall.requests)
    };
    let direct_origin = origin.requests() - before;

    // Let the origin finish what the first run left it before the second.
    let until = Instant::now() + Duration::from_secs(30);
    while origin.busy() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("3/4 the same through Rampart…");
    let (before, cpu_before) = (origin.requests(), cpu_now());
    let through = match run_plan(&load_rt, &plan, format!("http://{}", gateway.addr)) {
        Ok(r) => r,
        Err(e) => return fail(1, e),
    };
    let through_cpu = cpu_per_request(cpu_before, cpu_now(), through.overall.requests);
    let through_origin = origin.requests() - before;

    eprintln!("4/4 writing reports to {}", args.out_dir.display());
    if let Err(e) = write_reports(&args.out_dir, &direct, &through, app) {
        return fail(1, e);
    }
    eprint!(
        "{}",
        table(
            &scenario,
            Side {
                report: &direct,
                origin_requests: direct_origin,
                cpu: direct_cpu,
            },
            Side {
                report: &through,
                origin_requests: through_origin,
                cpu: through_cpu,
            },
        )
    );
    eprintln!(
        "report: {0}/report.html, both runs on the same charts (JSON: {0}/direct.json, {0}/rampart.json)",
        args.out_dir.display()
    );
    gateway.shutdown();
    ExitCode::SUCCESS
}

/// Runs `plan` against `base_url` on the generator's runtime: on its
/// worker threads, so that all of the generator's CPU time is theirs.
fn run_plan(
    runtime: &tokio::runtime::Runtime,
    plan: &rampart_load::Plan,
    base_url: String,
) -> Result<Report, String> {
    let opts = RunOptions {
        base_url: Some(base_url),
        threads: Some(GENERATOR),
        ..RunOptions::default()
    };
    let plan = plan.clone();
    let run = runtime.spawn(async move {
        rampart_load::run(&plan, &opts, |_| {})
            .await
            .map_err(|e| e.to_string())
    });
    runtime
        .block_on(run)
        .map_err(|e| format!("the load generator stopped: {e}"))?
}

fn write_reports(
    dir: &Path,
    direct: &Report,
    through: &Report,
    app: AppKind,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, report) in [("direct", direct), ("rampart", through)] {
        let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // One page: both runs on the same charts.
    let threshold = 5.0;
    let rows = rampart_load::compare::compare(direct, through, threshold, Default::default());
    let page = rampart_load::html::render_compare(
        ("origin alone", direct),
        ("through Rampart", through),
        &rows,
        threshold,
        &format!("{}: the origin alone and through Rampart", app.name()),
    );
    let path = dir.join("report.html");
    std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// A threshold's measured value: milliseconds, or a rate.
fn value(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.1}")
    }
}

/// One column of the side-by-side table: a run's report, the requests the
/// origin counted during it and the CPU each party spent per request.
pub struct Side<'a> {
    pub report: &'a Report,
    pub origin_requests: u64,
    pub cpu: Cpu,
}

/// The side-by-side table.
pub fn table(scenario: &str, direct: Side<'_>, through: Side<'_>) -> String {
    let (d, t) = (direct.report, through.report);
    let mut out = String::new();
    // The first column fits the longest threshold, so the columns line up.
    let width = d
        .thresholds
        .iter()
        .map(|t| t.threshold.chars().count() + 2)
        .fold(22, usize::max);
    let row = |out: &mut String, name: &str, a: String, b: String| {
        out.push_str(&format!("{name:<width$} {a:>16} {b:>16}\n"));
    };
    out.push_str(&format!("\n{scenario}\n"));
    row(
        &mut out,
        "",
        "origin alone".into(),
        "through Rampart".into(),
    );
    row(
        &mut out,
        "throughput (req/s)",
        format!("{:.1}", d.rps(&d.overall)),
        format!("{:.1}", t.rps(&t.overall)),
    );
    for (label, f) in [
        (
            "p50 latency (ms)",
            (|s: &rampart_load::report::Stats| s.latency.p50_ms)
                as fn(&rampart_load::report::Stats) -> f64,
        ),
        ("p95 latency (ms)", |s| s.latency.p95_ms),
        ("p99 latency (ms)", |s| s.latency.p99_ms),
    ] {
        row(
            &mut out,
            label,
            format!("{:.1}", f(&d.overall)),
            format!("{:.1}", f(&t.overall)),
        );
    }
    let err = |r: &Report| {
        if r.overall.requests == 0 {
            0.0
        } else {
            100.0 * r.overall.failures as f64 / r.overall.requests as f64
        }
    };
    row(
        &mut out,
        "errors (%)",
        format!("{:.2}", err(d)),
        format!("{:.2}", err(t)),
    );
    let hits = |r: &Report| {
        if r.overall.cache_reported == 0 {
            "-".to_string()
        } else {
            format!(
                "{:.1}",
                100.0 * r.overall.cache_hits as f64 / r.overall.cache_reported as f64
            )
        }
    };
    row(&mut out, "cache hit rate (%)", hits(d), hits(t));
    row(
        &mut out,
        "requests sent",
        d.overall.requests.to_string(),
        t.overall.requests.to_string(),
    );
    row(
        &mut out,
        "origin requests",
        direct.origin_requests.to_string(),
        through.origin_requests.to_string(),
    );
    // What each party spent per request sent: the gateway's share is what
    // Rampart costs this application's machine.
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    for (label, f) in [
        (
            "CPU µs/request: origin",
            (|c: &Cpu| c.origin) as fn(&Cpu) -> Option<f64>,
        ),
        ("CPU µs/request: Rampart", |c| c.gateway),
        ("CPU µs/request: load", |c| c.generator),
    ] {
        row(&mut out, label, us(f(&direct.cpu)), us(f(&through.cpu)));
    }
    out.push_str("guide's targets:\n");
    for (a, b) in d.thresholds.iter().zip(&t.thresholds) {
        let mark = |ok: bool| if ok { "pass" } else { "FAIL" };
        row(
            &mut out,
            &format!("  {}", a.threshold),
            format!("{} ({})", mark(a.ok), value(a.value)),
            format!("{} ({})", mark(b.ok), value(b.value)),
        );
    }
    out
}
