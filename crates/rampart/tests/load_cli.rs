//! `rampart load`, `compare` and `report merge` as a user runs them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rampart_load::report::{new_histogram, Latency, Report, Stats, SCHEMA};
use rampart_testkit::{respond, Origin, TempDir};

fn rampart(args: &[&str]) -> (i32, String) {
    rampart_testkit::run_program(env!("CARGO_BIN_EXE_rampart"), args)
}

/// Writes `text` to `name` in `dir`: its path.
fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn slow_origin() -> Origin {
    Origin::start(|_| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        respond(200, &[("cache-status", "rampart; hit; ttl=1")], "ok")
    })
    .await
}

fn scenario(addr: std::net::SocketAddr, threshold: &str) -> String {
    format!(
        r#"
base_url = "http://{addr}"
[[scenarios]]
name = "browse"
executor = "constant-arrival-rate"
rate = 50
duration = "1s"
max_vus = 20
flow = "browse"
[[flows]]
name = "browse"
steps = [{{ name = "home", url = "/", checks = {{ status = 200 }} }}]
[thresholds]
"http_req_duration{{step:home}}" = ["{threshold}"]
"http_req_failed" = ["rate < 0.01"]
"#
    )
}

async fn cli(args: Vec<String>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        rampart(&refs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_decide_the_exit_code_and_reports_are_written() {
    let dir = TempDir::new("load-cli");
    let origin = slow_origin().await;
    let pass = write(&dir, "pass.toml", &scenario(origin.addr, "p(95) < 500ms"));
    let out = dir.path.join("pass.json");
    let html = dir.path.join("pass.html");
    let (code, text) = cli(vec![
        "load".into(),
        pass.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--html".into(),
        html.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("browse/home"), "{text}");
    assert!(
        text.contains("ok   http_req_duration{step:home}: p(95) < 500ms"),
        "{text}"
    );
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report.schema, SCHEMA);
    assert!(report.overall.requests >= 45);
    assert_eq!(report.overall.hit_rate(), Some(1.0));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("Latency over time") && !page.contains("<script")
    );

    let fail = write(&dir, "fail.toml", &scenario(origin.addr, "p(95) < 1ms"));
    let (code, text) = cli(vec![
        "load".into(),
        fail.display().to_string(),
        "--quiet".into(),
    ])
    .await;
    assert_eq!(code, 1, "a failed threshold exits 1: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_one_liner_runs() {
    let origin = slow_origin().await;
    let (code, text) = cli(vec![
        "load".into(),
        "--url".into(),
        format!("http://{}/x", origin.addr),
        "--rate".into(),
        "20".into(),
        "--duration".into(),
        "1s".into(),
    ])
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("default/request"), "{text}");
    assert!(origin.total() >= 15);
    let (code, text) = cli(vec![
        "load".into(),
        "--url".into(),
        format!("http://{}/x", origin.addr),
        "--rate".into(),
        "0".into(),
    ])
    .await;
    assert_eq!(code, 2, "{text}");
}

/// The summary is the result (stdout, so `> out.txt` keeps it); progress is
/// on stderr, a line every 5 seconds off a terminal, none with `--progress
/// none`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_goes_to_stdout_and_progress_lines_to_stderr() {
    let origin = slow_origin().await;
    let url = format!("http://{}/x", origin.addr);
    let run = |extra: &'static [&'static str], duration: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_rampart"))
                .args([
                    "load",
                    "--url",
                    &url,
                    "--rate",
                    "20",
                    "--duration",
                    duration,
                ])
                .args(extra)
                .output()
                .expect("run rampart")
        })
    };
    let out = run(&[], "6s").await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("default/request"),
        "summary on stdout: {stdout}"
    );
    assert!(!stderr.contains("default/request"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("req/s")).collect();
    assert_eq!(lines.len(), 1, "one line at 5 s of 6: {stderr}");
    assert!(lines[0].starts_with("[   5s/6s] "), "{stderr}");
    assert!(!stdout.contains("req/s, p95"), "{stdout}");

    let quiet = run(&["--progress", "none"], "1s").await.unwrap();
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("default/request"));
}

/// Ctrl-C mid-run: in-flight requests finish, the summary is printed and
/// every report is written for the part that ran, marked interrupted, and
/// the exit code (130) is not a failed threshold's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_run_leaves_an_interrupted_report() {
    let dir = TempDir::new("load-cli");
    let origin = slow_origin().await;
    let (json, html) = (
        dir.path.join("interrupted.json"),
        dir.path.join("interrupted.html"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["load", "--url", &format!("http://{}/x", origin.addr)])
        .args(["--rate", "20", "--duration", "60s", "--progress", "none"])
        .arg("--out")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rampart load");
    rampart_testkit::eventually("the run is under way", || origin.total() >= 10).await;
    rampart_testkit::signal(child.id(), "INT");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("rampart load exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("INTERRUPTED after"), "{stdout}");
    assert!(stdout.contains("default/request"), "{stdout}");
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.generator.interrupted);
    assert!(report.duration_s < 50.0, "{}", report.duration_s);
    assert!(report.overall.requests >= 10);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Interrupted"), "the page says so");
}

#[test]
fn bad_scenarios_and_unreachable_targets_exit_2_with_file_line_and_field() {
    let dir = TempDir::new("load-cli");
    let cases = [
        ("exec.toml", "[[scenarios]]\nname = \"a\"\nexecutor = \"constant-vu\"\nflow = \"f\"\n", ":3:", "scenarios[1].executor", "unknown executor"),
        ("field.toml", "[[scenarios]]\nname = \"a\"\nexecutor = \"constant-vus\"\nflow = \"f\"\nvus = 1\nduraton = \"1s\"\n", ":6:", "duraton", "unknown field"),
        (
            "flow.toml",
            "[[scenarios]]\nname = \"a\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nflow = \"nope\"\n",
            ":6:",
            "scenarios[1].flow",
            "no flow named",
        ),
        (
            "var.toml",
            "[[scenarios]]\nname = \"a\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nflow = \"f\"\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"s\"\nurl = \"/m/{{id}}\"\n",
            ":11:",
            "flows[1].steps[1].url",
            "{{id}}",
        ),
        (
            "threshold.toml",
            "[[scenarios]]\nname = \"a\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nflow = \"f\"\n[[flows]]\nname = \"f\"\nsteps = [{ name = \"s\", url = \"/\" }]\n[thresholds]\nhttp_req_duration = [\"p(95) 200\"]\n",
            ":11:",
            "thresholds",
            "no comparison",
        ),
    ];
    for (name, text, line, field, message) in cases {
        let path = write(&dir, name, text);
        let (code, out) = rampart(&[
            "load",
            path.to_str().unwrap(),
            "--base-url",
            "http://127.0.0.1:9",
        ]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains(&format!("{name}{line}")), "{name}: {out}");
        assert!(out.contains(field), "{name}: {out}");
        assert!(out.contains(message), "{name}: {out}");
    }
    let ok = write(&dir, "unreachable.toml", "[[scenarios]]\nname = \"a\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nflow = \"f\"\n[[flows]]\nname = \"f\"\nsteps = [{ name = \"s\", url = \"/\" }]\n");
    let (code, out) = rampart(&[
        "load",
        ok.to_str().unwrap(),
        "--base-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unreachable"), "{out}");
}

/// A report whose one step has exactly these latency samples (ms).
fn report_with(samples_ms: &[u64], duration_s: f64) -> Report {
    let us: Vec<u64> = samples_ms.iter().map(|ms| ms * 1000).collect();
    report_with_us(&us, duration_s)
}

/// A report whose one step has exactly these latency samples (µs).
fn report_with_us(samples_ms: &[u64], duration_s: f64) -> Report {
    let mut h = new_histogram();
    for us in samples_ms {
        h.record(*us).unwrap();
    }
    let stats = |scenario: &str, step: &str| Stats {
        requests: samples_ms.len() as u64,
        latency: Latency::from_histogram(&h),
        service: Latency::from_histogram(&h),
        ..Stats::empty(scenario, step)
    };
    Report {
        schema: SCHEMA.into(),
        duration_s,
        shards: 1,
        iterations: samples_ms.len() as u64,
        late_starts: 0,
        dropped_iterations: 0,
        overall: stats("", ""),
        scenarios: vec![stats("s", "")],
        steps: vec![stats("s", "home")],
        series: Vec::new(),
        thresholds: Vec::new(),
        generator: Default::default(),
        run: Default::default(),
    }
}

fn save(dir: &TempDir, name: &str, r: &Report) -> String {
    let p = dir.path.join(name);
    std::fs::write(&p, serde_json::to_string(r).unwrap()).unwrap();
    p.display().to_string()
}

#[test]
fn compare_gates_on_direction_aware_regressions() {
    let dir = TempDir::new("load-cli");
    let base: Vec<u64> = (1..=100).collect();
    let worse: Vec<u64> = base.iter().map(|v| v * 11 / 10).collect(); // every latency 10 % up
    let close: Vec<u64> = base.iter().map(|v| v * 102 / 100).collect();
    let b = save(&dir, "base.json", &report_with(&base, 10.0));
    let w = save(&dir, "worse.json", &report_with(&worse, 10.0));
    let c = save(&dir, "close.json", &report_with(&close, 10.0));
    let (code, out) = rampart(&["compare", &b, &w, "--threshold", "5"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("p95") && out.contains("WORSE"), "{out}");
    let (code, out) = rampart(&["compare", &b, &c, "--threshold", "5"]);
    assert_eq!(code, 0, "{out}");
    // Throughput down is worse; up is not.
    let slower = save(&dir, "slower.json", &report_with(&base, 12.0));
    let faster = save(&dir, "faster.json", &report_with(&base, 8.0));
    assert_eq!(rampart(&["compare", &b, &slower, "--threshold", "5"]).0, 1);
    let (code, out) = rampart(&["compare", &b, &faster, "--threshold", "5"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("better"), "{out}");
}

/// A change beyond the percentage but under the absolute floor is noise:
/// p99 2.13 → 2.29 ms (+7.5 %) passes with the default 1 ms floor and fails
/// with a 0.1 ms one; a real slowdown fails either way.
#[test]
fn compare_does_not_cry_wolf_under_the_floor() {
    let dir = TempDir::new("load-cli");
    let b = save(
        &dir,
        "floor-base.json",
        &report_with_us(&[2_130; 100], 10.0),
    );
    let c = save(
        &dir,
        "floor-noise.json",
        &report_with_us(&[2_290; 100], 10.0),
    );
    let (code, out) = rampart(&["compare", &b, &c, "--threshold", "5"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("within noise") && !out.contains("WORSE"),
        "{out}"
    );
    let (code, out) = rampart(&[
        "compare",
        &b,
        &c,
        "--threshold",
        "5",
        "--min-delta",
        "100us",
    ]);
    assert_eq!(code, 1, "{out}");
    let slow = save(
        &dir,
        "floor-slow.json",
        &report_with_us(&[4_260; 100], 10.0),
    );
    let (code, out) = rampart(&["compare", &b, &slow, "--threshold", "5"]);
    assert_eq!(code, 1, "a 2x slowdown is a regression: {out}");
    let (code, out) = rampart(&["compare", &b, &c, "--min-delta", "soon"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn merged_shards_equal_one_run_over_the_same_samples() {
    let dir = TempDir::new("load-cli");
    let samples: Vec<u64> = (0..2000u64).map(|i| (i * 7919) % 997 + 1).collect();
    let (a, b) = samples.split_at(700);
    let whole = report_with(&samples, 10.0);
    let sa = save(&dir, "shard-a.json", &report_with(a, 10.0));
    let sb = save(&dir, "shard-b.json", &report_with(b, 10.0));
    let merged_path = dir.path.join("merged.json");
    let (code, out) = rampart(&[
        "report",
        "merge",
        &sa,
        &sb,
        "--out",
        merged_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let merged: Report =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();
    assert_eq!(merged.shards, 2);
    assert_eq!(merged.overall.requests, whole.overall.requests);
    for (m, w) in [
        (&merged.overall.latency, &whole.overall.latency),
        (&merged.steps[0].latency, &whole.steps[0].latency),
    ] {
        assert_eq!(
            (m.p50_ms, m.p95_ms, m.p99_ms, m.max_ms, m.count),
            (w.p50_ms, w.p95_ms, w.p99_ms, w.max_ms, w.count)
        );
        assert_eq!(m.histogram().unwrap(), w.histogram().unwrap());
    }
}

/// `--duration` fits a scenario file's profile into less time and
/// `--load-factor` multiplies its rate: 50/s for "1 minute" becomes 100/s
/// for 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_fits_a_shorter_run_at_a_multiple_of_its_load() {
    let dir = TempDir::new("load-cli");
    let origin = slow_origin().await;
    let text =
        scenario(origin.addr, "p(95) < 500ms").replace("duration = \"1s\"", "duration = \"1m\"");
    let path = write(&dir, "fit.toml", &text);
    let out = dir.path.join("fit.json");
    let (code, text) = cli(vec![
        "load".into(),
        path.display().to_string(),
        "--duration".into(),
        "1s".into(),
        "--load-factor".into(),
        "2".into(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{text}");
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        (95..=105).contains(&report.overall.requests),
        "100 requests in 1 s, not 50 and not 3,000: {}",
        report.overall.requests
    );
    let (code, text) = cli(vec![
        "load".into(),
        path.display().to_string(),
        "--load-factor".into(),
        "0".into(),
    ])
    .await;
    assert_eq!(code, 2, "{text}");
}
