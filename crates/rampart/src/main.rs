//! The `rampart` command: parses arguments and calls into the libraries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod demo;
mod load;
mod stop;

/// jemalloc, when built with `--features jemalloc`: faster hits than
/// glibc's allocator and it gives back the memory of closed connections,
/// but slower misses that compress (docs/benchmarks.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A caching reverse proxy configured from one TOML file.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print a summary; exit 2 when it is bad.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a load test: a scenario file, or a quick `--url` one-liner.
    /// Exit 1 when a threshold fails, 2 for a bad scenario or unreachable target.
    Load(load::LoadArgs),
    /// Compare a run with a baseline; exit 1 when anything is worse than the threshold.
    Compare {
        /// Baseline report (JSON from `rampart load --out`).
        baseline: PathBuf,
        /// Current report.
        current: PathBuf,
        /// Allowed worsening in percent (latency up, throughput down; the
        /// error rate may rise by a tenth of this in percentage points).
        #[arg(long, default_value_t = 5.0)]
        threshold: f64,
        /// Smallest latency change that counts, worse or better, whatever
        /// the percentage (noise below it never fails a gate).
        #[arg(long, default_value = "1ms")]
        min_delta: String,
        /// Also write an HTML page drawing both runs on the same charts.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Work with reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Show what Rampart does: a seed application's example origin, alone
    /// and behind Rampart, under the guide's load profile, side by side.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Merge shard reports (from `--segment i/n` runs) exactly into one.
    Merge {
        /// Shard reports, or directories of them (every `.json` inside).
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
        /// Where to write the merged report (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write an HTML report.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
        Command::Load(args) => load::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Compare {
            baseline,
            current,
            threshold,
            min_delta,
            html,
        } => load::compare(&baseline, &current, threshold, &min_delta, html.as_deref()),
        Command::Report(ReportCommand::Merge { reports, out, html }) => {
            load::merge(&reports, out.as_deref(), html.as_deref())
        }
    }
}

fn load(path: &std::path::Path) -> Result<rampart_config::Config, ExitCode> {
    rampart_config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let certs = match rampart_gateway::check_tls(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let now = std::time::SystemTime::now();
    for cert in &certs {
        eprintln!(
            "{}: certificate {} ({}) valid for {} more days",
            path.display(),
            cert.file.display(),
            cert.subject,
            cert.remaining(now).as_secs() / 86_400
        );
    }
    let cached = config.routes.iter().filter(|r| r.cache.is_some()).count();
    eprintln!(
        "{}: ok ({} upstreams, {} routes, {} cached; listening on {})",
        path.display(),
        config.upstreams.len(),
        config.routes.len(),
        cached,
        config.server.listen
    );
    ExitCode::SUCCESS
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = rampart_gateway::check_tls(&config) {
        eprintln!("error: {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match rampart_telemetry::init(config.tracing.as_ref(), runtime.handle()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        // Signal handlers first: a SIGHUP must never find the default
        // action (ending the process) once the listener is up.
        let signals = Signals::install();
        let clock = Arc::new(rampart_gateway::SystemClock);
        let running =
            match rampart_gateway::start_from(&config, clock, Some(path.to_path_buf())).await {
                Ok(r) => r,
                Err(rampart_gateway::StartError::Bind(e)) => {
                    eprintln!("error: {}", bind_error(path, &e));
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tracing::info!(
            listen = %running.addr,
            admin = %running.admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
            "rampart is serving"
        );
        signals.serve(&running).await;
        tracing::info!("shutting down: draining open requests");
        running.shutdown();
        running.wait().await;
        ExitCode::SUCCESS
    });
    // The last spans go out on the runtime, which still runs here.
    telemetry.shutdown();
    code
}

/// A listener that cannot be bound, at the line of the config that asked
/// for it (`file:line:column: server.listen: cannot listen on …`).
fn bind_error(path: &std::path::Path, e: &rampart_gateway::BindError) -> String {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let message = e.to_string();
    let message = message
        .strip_prefix(e.key)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(&message)
        .to_string();
    match rampart_core::located::find_field(&text, e.key) {
        Some(offset) => {
            rampart_core::located::FileError::at(&text, &file, offset, message).to_string()
        }
        None => format!("{file}: {e}"),
    }
}

/// The runtime: one worker thread per core the scheduler's affinity mask
/// allows (so `taskset -c 0 rampart serve` runs one worker).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
}

/// The signals `rampart serve` handles: SIGTERM and SIGINT shut down,
/// SIGHUP reloads the config file, SIGUSR1 reopens the access-log file.
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 4]>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
                signal(SignalKind::user_defined1()),
            ) {
                (Ok(term), Ok(int), Ok(hup), Ok(usr1)) => Some([term, int, hup, usr1]),
                _ => None,
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for SIGTERM or SIGINT (then returns, to shut down); each
    /// SIGHUP meanwhile reloads the config file (the gateway logs and
    /// counts the outcome; a bad file leaves the running config in place),
    /// each SIGUSR1 reopens the access-log file (after logrotate).
    async fn serve(self, running: &rampart_gateway::Running) {
        #[cfg(unix)]
        if let Some([mut term, mut int, mut hup, mut usr1]) = self.streams {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: reloading the config");
                        let _ = running.reload_file().await;
                    }
                    _ = usr1.recv() => {
                        if let Some(access) = &running.state().access {
                            access.reopen();
                        }
                    }
                }
            }
        }
        let _ = running;
        let _ = tokio::signal::ctrl_c().await;
    }
}
