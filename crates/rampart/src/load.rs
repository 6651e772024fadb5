//! `rampart load`, `rampart compare` and `rampart report merge`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_load::{compare as cmp, html, report::Report, summary, RunOptions};

/// Arguments of `rampart load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// A scenario file (TOML), or a URL to load at once, as with oha or hey
    /// (`rampart load http://127.0.0.1:8080/ -c 50 -z 30s`).
    target: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Replace the scenario's base_url.
    #[arg(long)]
    base_url: Option<String>,
    /// No progress and no summary.
    #[arg(long)]
    quiet: bool,
    /// Progress on stderr: a live bar, a line every 5 seconds, or none
    /// (default: the bar on a terminal, lines elsewhere, as in CI logs).
    #[arg(long, value_enum)]
    progress: Option<Progress>,
    /// Run shard I of N (`--segment 2/4`, or `index:1/4` counting from 0
    /// as a Kubernetes Indexed Job does): this generator's share of every
    /// scenario.
    #[arg(long, value_parser = parse_segment)]
    segment: Option<(u32, u32)>,
    /// Run N generator processes here, each its segment, and merge their
    /// reports exactly into one (uses more than one core).
    #[arg(long, conflicts_with = "segment", value_parser = clap::value_parser!(u32).range(1..=256))]
    shards: Option<u32>,
    /// Quick mode: the URL to load (the same as giving it first).
    #[arg(long, conflicts_with = "target")]
    url: Option<String>,
    /// Quick mode: connections, each a user sending its next request when
    /// the last is answered (closed model) [default: 50].
    #[arg(short = 'c', long, visible_alias = "vus")]
    connections: Option<u32>,
    /// Quick mode: requests in all, shared by the connections; the run ends
    /// when they are answered.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Quick mode: requests per second in all, started on schedule whether
    /// or not answers keep up (open model; latency counts from the
    /// schedule).
    #[arg(short = 'q', long)]
    rate: Option<f64>,
    /// How long: in quick mode the run (default 10s unless -n); with a
    /// scenario file, the whole profile fitted into this time (stages,
    /// ramp-ups and start delays shrink or grow in proportion; rates and
    /// users stay).
    #[arg(short = 'z', long)]
    duration: Option<String>,
    /// Quick mode: the method.
    #[arg(short = 'm', long)]
    method: Option<String>,
    /// Quick mode: a request header, `-H "Name: value"` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Quick mode: the request body.
    #[arg(short = 'd', long = "body", conflicts_with = "body_file")]
    body: Option<String>,
    /// Quick mode: the request body, read from a file.
    #[arg(short = 'D', long = "body-file")]
    body_file: Option<PathBuf>,
    /// Quick mode: each request's deadline [default: 30s].
    #[arg(long)]
    timeout: Option<String>,
    /// Quick mode: HTTP/2 (h2c with prior knowledge on http://, ALPN h2
    /// on https://).
    #[arg(long)]
    http2: bool,
    /// Do not verify https:// targets' certificates (said in the report).
    #[arg(long, conflicts_with = "cacert")]
    insecure: bool,
    /// Trust the PEM certificates in this file for https:// targets,
    /// besides the system's.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Multiply every scenario's users and rates by this factor (2 = twice
    /// the profile's load), to find how much more than planned still meets
    /// the thresholds.
    #[arg(long, value_parser = parse_factor)]
    load_factor: Option<f64>,
}

impl LoadArgs {
    /// The quick-mode options given, by flag (each is an error with a
    /// scenario file).
    fn quick_flags(&self) -> Vec<&'static str> {
        [
            ("-c", self.connections.is_some()),
            ("-n", self.requests.is_some()),
            ("-q", self.rate.is_some()),
            ("-m", self.method.is_some()),
            ("-H", !self.headers.is_empty()),
            ("-d", self.body.is_some()),
            ("-D", self.body_file.is_some()),
            ("--timeout", self.timeout.is_some()),
            ("--http2", self.http2),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The quick run these arguments ask for.
    fn quick(
        &self,
        url: &str,
        duration: Option<Duration>,
    ) -> Result<rampart_load::plan::Quick, String> {
        let method = match &self.method {
            None => http::Method::GET,
            Some(m) => http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("-m {m}: not a method"))?,
        };
        let mut headers = Vec::with_capacity(self.headers.len());
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("-H {h:?}: write it as \"Name: value\""))?;
            let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("-H {h:?}: {:?} is not a header name", name.trim()))?;
            let value = http::HeaderValue::from_str(value.trim())
                .map_err(|_| format!("-H {h:?}: the value is not a header value"))?;
            headers.push((name, value));
        }
        let body = match (&self.body, &self.body_file) {
            (Some(text), _) => Some(bytes::Bytes::from(text.clone())),
            (None, Some(path)) => Some(bytes::Bytes::from(
                std::fs::read(path).map_err(|e| format!("-D {}: {e}", path.display()))?,
            )),
            (None, None) => None,
        };
        let timeout = match &self.timeout {
            None => Duration::from_secs(30),
            Some(t) => match rampart_core::units::parse_duration(t) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err("--timeout: above 0".into()),
                Err(e) => return Err(format!("--timeout: {e}")),
            },
        };
        Ok(rampart_load::plan::Quick {
            url: url.to_string(),
            method,
            headers,
            body,
            connections: self.connections,
            requests: self.requests,
            rate: self.rate,
            duration,
            timeout,
            http2: self.http2,
        })
    }
}

/// How progress is shown while a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Progress {
    /// A live bar, redrawn in place (for a terminal).
    Bar,
    /// A line every 5 seconds (for logs).
    Lines,
    /// Nothing.
    None,
}

/// Seconds between progress lines.
const LINE_EVERY: u64 = 5;

fn parse_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1000.0 => Ok(f),
        _ => Err(format!("{s}: give a factor above 0 and at most 1000")),
    }
}

/// `I/N` (I from 1), or `index:I/N` (I from 0, as Kubernetes numbers an
/// Indexed Job's pods in `JOB_COMPLETION_INDEX`).
fn parse_segment(s: &str) -> Result<(u32, u32), String> {
    let (zero_based, s) = match s.strip_prefix("index:") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (i, n) = s
        .split_once('/')
        .ok_or("write the segment as I/N, like 1/4 (or index:0/4 from 0)")?;
    let (i, n): (u32, u32) = (
        i.parse().map_err(|_| format!("bad I {i:?}"))?,
        n.parse().map_err(|_| format!("bad N {n:?}"))?,
    );
    let i = if zero_based { i.saturating_add(1) } else { i };
    if n == 0 || i == 0 || i > n {
        return Err(format!(
            "segment {s}: I must be between 1 and N (0 and N-1 with index:)"
        ));
    }
    Ok((i, n))
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Runs `rampart load`.
pub fn run(args: LoadArgs) -> ExitCode {
    let duration = match args
        .duration
        .as_deref()
        .map(rampart_core::units::parse_duration)
    {
        None => None,
        Some(Ok(d)) if d >= std::time::Duration::from_secs(1) => Some(d),
        Some(Ok(_)) => return fail(2, "--duration: at least 1s"),
        Some(Err(e)) => return fail(2, format!("--duration: {e}")),
    };
    let url = match (&args.target, &args.url) {
        (Some(t), None) if rampart_load::vu::is_absolute(t) => Some(t.clone()),
        (None, Some(u)) => Some(u.clone()),
        _ => None,
    };
    let quick_url = url.clone();
    let mut plan = match (&args.target, url) {
        (_, Some(url)) => {
            let quick = match args.quick(&url, duration) {
                Ok(q) => q,
                Err(e) => return fail(2, e),
            };
            match rampart_load::plan::quick(&quick) {
                Ok(p) => p,
                Err(e) => return fail(2, e),
            }
        }
        (Some(path), None) => {
            let given = args.quick_flags();
            if !given.is_empty() {
                return fail(
                    2,
                    format!(
                        "{} apply to a URL (quick mode), not to a scenario file: set them in {path}",
                        given.join(", ")
                    ),
                );
            }
            match rampart_load::load(Path::new(path)) {
                Ok(mut p) => {
                    if let Some(d) = duration {
                        p.fit_to(d);
                    }
                    p
                }
                Err(e) => return fail(2, e),
            }
        }
        (None, None) => {
            return fail(
                2,
                "give a scenario file, or a URL (rampart load http://127.0.0.1:8080/ -c 50 -z 30s)",
            )
        }
    };
    let tls = match &args.cacert {
        None => rampart_load::tls::TlsOptions {
            insecure: args.insecure,
            ca: Vec::new(),
        },
        Some(path) => match rampart_load::tls::TlsOptions::read_ca(path) {
            Ok(ca) => rampart_load::tls::TlsOptions {
                insecure: false,
                ca,
            },
            Err(e) => return fail(2, format!("--cacert: {e}")),
        },
    };
    if let Some(f) = args.load_factor {
        plan.scale_load(f);
    }
    if let Some(n) = args.shards.filter(|n| *n > 1) {
        return match run_shards(n, &plan) {
            Ok(report) => finish(&args, report, quick_url.as_deref()),
            Err((code, e)) => fail(code, e),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        base_url: args.base_url.clone(),
        segment: args.segment,
        interrupt: Some(Arc::clone(&interrupt)),
        tls,
        threads: None,
    };
    runtime.spawn(stop_on_signal(interrupt));
    let total = plan.duration();
    let mode = match (args.quiet, args.progress) {
        (true, _) => Progress::None,
        (false, Some(mode)) => mode,
        (false, None) if std::io::stderr().is_terminal() => Progress::Bar,
        (false, None) => Progress::Lines,
    };
    let progress = (mode == Progress::Bar).then(|| {
        let bar = indicatif::ProgressBar::new(total.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let bar = progress.clone();
    let result = runtime.block_on(rampart_load::run(&plan, &opts, move |live| {
        let status = format!(
            "{} req/s, p95 {:.1} ms, {} errors of {} requests, {} users",
            live.rps, live.p95_ms, live.failures, live.requests, live.users
        );
        if let Some(bar) = &bar {
            bar.set_position(live.elapsed);
            bar.set_message(status);
        } else if mode == Progress::Lines && live.elapsed > 0 && live.elapsed % LINE_EVERY == 0 {
            eprintln!("[{:>4}s/{}s] {status}", live.elapsed, total.as_secs());
        }
    }));
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => finish(&args, report, quick_url.as_deref()),
        Err(e) => fail(2, e),
    }
}

/// Names the run in its report, writes the reports, prints the summary and
/// says how it went.
fn finish(args: &LoadArgs, mut report: Report, quick_url: Option<&str>) -> ExitCode {
    report.run.command = command_line();
    report.run.commit = git_commit().unwrap_or_default();
    if let Some(url) = quick_url {
        report.run.target = url.to_string();
    }
    if let Some(code) = write_outputs(
        &report,
        args.out.as_deref(),
        args.html.as_deref(),
        "Rampart load test",
    ) {
        return code;
    }
    if !args.quiet {
        // The summary is the run's result: stdout, so `> out.txt` keeps it.
        print_out(summary::render(&report).trim_end());
    }
    if report.generator.interrupted {
        ExitCode::from(INTERRUPTED)
    } else if report.thresholds.iter().any(|t| !t.ok) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `n` generator processes of this command, each its `--segment`,
/// and merges their reports exactly; thresholds are judged on the merge.
/// Ctrl-C reaches every process (one process group): each writes its part,
/// marked interrupted, and the merge says so.
fn run_shards(n: u32, plan: &rampart_load::Plan) -> Result<Report, (u8, String)> {
    let exe = std::env::current_exe().map_err(|e| (1, format!("cannot find myself: {e}")))?;
    let dir = std::env::temp_dir().join(format!("rampart-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| (1, format!("{}: {e}", dir.display())))?;
    // The first Ctrl-C is for the shards; this process waits for them.
    let interrupt = Arc::new(AtomicBool::new(false));
    let _ = signal_hook_flag(&interrupt);
    let args = shard_args();
    let mut children = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let out = dir.join(format!("shard-{i}.json"));
        let child = std::process::Command::new(&exe)
            .args(&args)
            .args(["--segment", &format!("{i}/{n}"), "--progress", "none"])
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| (1, format!("cannot start shard {i}: {e}")))?;
        children.push((child, out));
    }
    // Wait for every shard; a stop asked of this process (SIGTERM from a
    // supervisor reaches only it) is passed on to them once.
    let mut statuses = vec![None; children.len()];
    let mut passed_on = false;
    while statuses.iter().any(Option::is_none) {
        for ((child, _), status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none() {
                *status = child.try_wait().map_err(|e| (1, e.to_string()))?;
            }
        }
        if interrupt.load(Ordering::Relaxed) && !passed_on {
            passed_on = true;
            for ((child, _), status) in children.iter().zip(&statuses) {
                if status.is_none() {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .status();
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut reports = Vec::with_capacity(children.len());
    let mut failed = None;
    for (i, ((_, out), status)) in children.into_iter().zip(statuses).enumerate() {
        let Some(status) = status else { continue };
        match status.code() {
            Some(0 | 1) | Some(130) => {}
            Some(2) => {
                failed = failed.or(Some((2, format!("shard {} could not run (above)", i + 1))))
            }
            _ => failed = failed.or(Some((1, format!("shard {} failed: {status}", i + 1)))),
        }
        if let Ok(r) = read_report(&out) {
            reports.push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(failure) = failed {
        return Err(failure);
    }
    let mut merged = Report::merge(&reports).map_err(|e| (1, e))?;
    merged.thresholds = merged.evaluate(&plan.thresholds);
    Ok(merged)
}

/// This command's arguments for a shard: all but the outputs, progress and
/// `--shards` (each shard gets its own `--segment` and `--out`).
fn shard_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let name = a.split('=').next().unwrap_or_default();
        match name {
            "--shards" | "--out" | "--html" | "--progress" => {
                if !a.contains('=') {
                    args.next();
                }
            }
            "--quiet" => {}
            _ => out.push(a),
        }
    }
    out
}

/// Sets `flag` on the first SIGINT or SIGTERM (instead of ending this
/// process), so the shards can finish and be merged.
fn signal_hook_flag(flag: &Arc<AtomicBool>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flag = Arc::clone(flag);
    std::thread::spawn(move || runtime.block_on(stop_on_signal(flag)));
    Ok(())
}

/// The command line as typed (arguments with spaces quoted).
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The short git commit of the directory the run started in, when it is
/// in a repository (so a report says what code it measured).
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

/// The exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as
/// shells report it), distinct from a failed threshold's 1.
const INTERRUPTED: u8 = 130;

/// The first Ctrl-C (or SIGTERM) stops starting iterations and lets those
/// in flight finish, so the summary and reports cover what ran; the second
/// ends the process at once.
async fn stop_on_signal(interrupt: Arc<AtomicBool>) {
    let mut signals = crate::stop::StopSignals::new();
    for n in 0.. {
        if !signals.next().await {
            return;
        }
        if n > 0 {
            std::process::exit(i32::from(INTERRUPTED));
        }
        interrupt.store(true, Ordering::Relaxed);
        eprintln!("stopping: in-flight requests finish, then the summary and reports (Ctrl-C again to quit now)");
    }
}

fn write_outputs(
    report: &Report,
    out: Option<&Path>,
    html_out: Option<&Path>,
    title: &str,
) -> Option<ExitCode> {
    if let Some(path) = out {
        let json = match serde_json::to_string_pretty(report) {
            Ok(j) => j,
            Err(e) => return Some(fail(1, format!("cannot encode the report: {e}"))),
        };
        if let Err(e) = std::fs::write(path, json) {
            return Some(fail(1, format!("cannot write {}: {e}", path.display())));
        }
    }
    if let Some(path) = html_out {
        if let Err(e) = std::fs::write(path, html::render(report, title)) {
            return Some(fail(1, format!("cannot write {}: {e}", path.display())));
        }
    }
    None
}

fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| format!("{}: line {}: {e}", path.display(), e.line()))?;
    if !rampart_load::report::READABLE.contains(&report.schema.as_str()) {
        return Err(format!(
            "{}: schema {:?}, expected one of {:?}",
            path.display(),
            report.schema,
            rampart_load::report::READABLE
        ));
    }
    Ok(report)
}

/// Runs `rampart compare`.
pub fn compare(
    baseline: &Path,
    current: &Path,
    threshold: f64,
    min_delta: &str,
    html_out: Option<&Path>,
) -> ExitCode {
    let floors = match rampart_core::units::parse_duration(min_delta) {
        Ok(d) => cmp::Floors {
            latency_ms: d.as_secs_f64() * 1000.0,
        },
        Err(e) => return fail(2, format!("--min-delta: {e}")),
    };
    let (b, c) = match (read_report(baseline), read_report(current)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return fail(2, e),
    };
    let rows = cmp::compare(&b, &c, threshold, floors);
    print_out(&cmp::render(&rows, threshold));
    if let Some(path) = html_out {
        let name = |p: &Path| {
            p.file_stem().map_or_else(
                || p.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        };
        let page = html::render_compare(
            (&format!("baseline ({})", name(baseline)), &b),
            (&format!("current ({})", name(current)), &c),
            &rows,
            threshold,
            "Rampart load test comparison",
        );
        if let Err(e) = std::fs::write(path, page) {
            return fail(1, format!("cannot write {}: {e}", path.display()));
        }
    }
    let worse = rows
        .iter()
        .filter(|r| r.verdict == cmp::Verdict::Worse)
        .count();
    if worse > 0 {
        eprintln!("{worse} figure(s) worse than the {threshold}% threshold");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `rampart report merge`.
pub fn merge(paths: &[PathBuf], out: Option<&Path>, html_out: Option<&Path>) -> ExitCode {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            // A directory of shard reports (a volume the shards wrote to).
            let mut found: Vec<PathBuf> = match std::fs::read_dir(p) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "json"))
                    .filter(|f| out.is_none_or(|o| o != f.as_path()))
                    .collect(),
                Err(e) => return fail(2, format!("{}: {e}", p.display())),
            };
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut reports = Vec::new();
    for p in &files {
        match read_report(p) {
            Ok(r) => reports.push(r),
            Err(e) => return fail(2, e),
        }
    }
    let merged = match Report::merge(&reports) {
        Ok(m) => m,
        Err(e) => return fail(2, e),
    };
    if out.is_none() {
        match serde_json::to_string_pretty(&merged) {
            Ok(j) => print_out(&j),
            Err(e) => return fail(1, e),
        }
    }
    if let Some(code) = write_outputs(&merged, out, html_out, "Rampart load test (merged)") {
        return code;
    }
    if out.is_some() {
        print_out(summary::render(&merged).trim_end());
    }
    if merged.thresholds.iter().any(|t| !t.ok) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[allow(clippy::print_stdout)]
fn print_out(text: &str) {
    println!("{text}");
}
