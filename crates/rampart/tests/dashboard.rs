//! The admin listener's live dashboard in a real browser (Debian's headless
//! `chromium`): it loads with no console errors, reads `/metrics` and draws
//! what the gateway did.

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
    let page = tokio::task::spawn_blocking(move || {
        rampart_testkit::chromium::render(&url, &profile, 4000)
    })
    .await
    .expect("join");
    assert!(
        page.errors().is_empty(),
        "the page logged errors: {}",
        page.log
    );
    let dom = &page.dom;
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
