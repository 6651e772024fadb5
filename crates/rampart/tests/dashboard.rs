//! The admin listener's live dashboard in a real browser (Debian's headless
//! `chromium`): it loads with no console errors, reads `/metrics` and draws
//! what the gateway did.

use std::process::Command;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_gateway_live() {
    let origin = rampart_testkit::Origin::simple(|_| {
        rampart_testkit::respond(200, &[("cache-control", "max-age=60")], "ok")
    })
    .await;
    let text = rampart_testkit::config_text(
        origin.addr,
        "[[routes]]\nname = \"pages\"\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = { ttl = \"1m\" }\n",
    );
    let gw = rampart_testkit::gateway(&text, Arc::new(rampart_gateway::SystemClock)).await;
    let client = rampart_testkit::TestClient::new();
    for _ in 0..5 {
        client.get(&format!("http://{}/page", gw.addr), &[]).await;
    }
    let admin = gw.admin_addr.expect("admin listener");
    let page = client.get(&format!("http://{admin}/"), &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .contains("default-src 'none'"));
    for external in ["http://", "https://", "//cdn"] {
        assert!(
            !page.text().contains(external),
            "self-contained: {external}"
        );
    }

    let dir = rampart_testkit::TempDir::new("dashboard");
    let url = format!("http://{admin}/");
    let profile = dir.path.join("profile");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=4000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| {
        panic!("chromium: {e}: install Debian's chromium (bash scripts/install-deps.sh test)")
    });
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for error in ["Uncaught", "SyntaxError", "TypeError", "ReferenceError"] {
        assert!(!log.contains(error), "the page logged an error: {log}");
    }
    assert!(dom.contains("updated "), "the page read /metrics: {dom}");
    assert!(!dom.contains("cannot read /metrics"), "{dom}");
    assert!(
        dom.contains(&format!("build {}", env!("CARGO_PKG_VERSION"))),
        "the build is named: {dom}"
    );
    assert!(dom.contains("<td>pages</td>"), "the route is listed: {dom}");
    assert!(
        dom.contains("<td>app</td>"),
        "the upstream is listed: {dom}"
    );
}
