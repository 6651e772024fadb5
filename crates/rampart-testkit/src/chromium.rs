//! Pages in a real browser: Debian's headless `chromium` loads a URL (a
//! `file://` report or a live dashboard), runs it, and gives back the DOM it
//! ended with and its console log; or takes a screenshot.

use std::path::Path;
use std::process::Command;

/// What the browser made of a page.
pub struct Rendered {
    /// The DOM after the page's scripts ran (`--dump-dom`).
    pub dom: String,
    /// Chromium's log, the page's console messages among it.
    pub log: String,
}

impl Rendered {
    /// Console errors the page logged (uncaught exceptions, syntax errors).
    pub fn errors(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| {
                ["Uncaught", "SyntaxError", "TypeError", "ReferenceError"]
                    .iter()
                    .any(|e| l.contains(e))
            })
            .collect()
    }
}

fn browser(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn missing(e: std::io::Error) -> String {
    format!("chromium: {e}: install Debian's chromium (bash scripts/install-deps.sh test)")
}

/// Loads `url` and lets its scripts run for up to `budget_ms` of virtual
/// time. Blocking: call it off the test's runtime.
pub fn render(url: &str, profile: &Path, budget_ms: u32) -> Rendered {
    let out = browser(profile)
        .args([
            "--enable-logging=stderr",
            "--v=0",
            &format!("--virtual-time-budget={budget_ms}"),
            "--dump-dom",
        ])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("{}", missing(e)));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed: {log}");
    Rendered {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        log,
    }
}

/// Saves a `width`×`height` screenshot of `url` as a PNG at `to`.
pub fn screenshot(url: &str, profile: &Path, to: &Path, width: u32, height: u32) {
    let out = browser(profile)
        .arg(format!("--screenshot={}", to.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("{}", missing(e)));
    assert!(
        out.status.success() && to.is_file(),
        "chromium took no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
