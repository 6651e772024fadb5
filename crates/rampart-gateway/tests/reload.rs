//! Reloading the config of a running gateway: what changes, what is kept,
//! what a bad file does, and that requests running meanwhile never fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rampart_gateway::{ReloadError, SystemClock};
use rampart_testkit::{config_text, respond, Origin, TempDir, TestClient};

async fn origin() -> Origin {
    Origin::simple(|req| {
        let body = format!("{} {}", req.uri, req.nth);
        respond(200, &[("cache-control", "max-age=300")], body)
    })
    .await
}

fn routes(ttl_route: &str) -> String {
    format!(
        r#"
[[routes]]
match = "GET /cached/*"
upstream = "app"
cache = {{ ttl = "5m" }}

[[routes]]
match = "GET {ttl_route}"
upstream = "app"
"#
    )
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

async fn start_from_file(text: &str) -> (rampart_gateway::Running, TempDir) {
    let dir = TempDir::new("reload");
    let path = dir.path.join("rampart.toml");
    write(&path, text);
    let config = rampart_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let gw = rampart_gateway::start_from(&config, Arc::new(SystemClock), Some(path))
        .await
        .expect("gateway starts");
    (gw, dir)
}

#[tokio::test]
async fn a_reload_applies_new_routes_and_keeps_the_cache() {
    let origin = origin().await;
    let (gw, dir) = start_from_file(&config_text(origin.addr, &routes("/one"))).await;
    let client = TestClient::new();
    let base = format!("http://{}", gw.addr);

    let first = client.get(&format!("{base}/cached/a"), &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(client.get(&format!("{base}/two"), &[]).await.status, 404);

    write(
        &dir.path.join("rampart.toml"),
        &config_text(origin.addr, &routes("/two")),
    );
    let done = gw.reload_file().await.expect("reload applies");
    assert_eq!(done.generation, 2);
    assert_eq!(done.changed, vec!["routes".to_string()]);

    assert_eq!(client.get(&format!("{base}/two"), &[]).await.status, 200);
    assert_eq!(client.get(&format!("{base}/one"), &[]).await.status, 404);
    let again = client.get(&format!("{base}/cached/a"), &[]).await;
    assert_eq!(again.text(), first.text(), "the cached entry survived");
    assert_eq!(origin.count("/cached/a"), 1);

    let same = gw.reload_file().await.expect("same file reloads");
    assert!(same.changed.is_empty());
    assert_eq!(same.generation, 2);
    let metrics = client.metrics(&gw).await;
    assert!(metrics.contains("rampart_config_reloads_total{result=\"applied\"} 1"));
    assert!(metrics.contains("rampart_config_reloads_total{result=\"unchanged\"} 1"));
    assert!(metrics.contains("rampart_config_generation 2"));
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_old_config_keeps_serving() {
    let origin = origin().await;
    let (gw, dir) = start_from_file(&config_text(origin.addr, &routes("/one"))).await;
    let client = TestClient::new();
    let path = dir.path.join("rampart.toml");
    write(
        &path,
        &config_text(origin.addr, &routes("/one"))
            .replace("timeout = \"5s\"", "timeout = \"soon\""),
    );
    let err = gw
        .reload_file()
        .await
        .expect_err("a broken file is refused");
    assert!(matches!(err, ReloadError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("rampart.toml"), "names the file: {text}");
    assert!(text.contains("timeout"), "names the field: {text}");

    let got = client.get(&format!("http://{}/one", gw.addr), &[]).await;
    assert_eq!(got.status, 200, "the old config still serves");
    let metrics = client.metrics(&gw).await;
    assert!(metrics.contains("rampart_config_reloads_total{result=\"rejected\"} 1"));
    assert!(metrics.contains("rampart_config_generation 1"));
}

#[tokio::test]
async fn the_admin_api_reloads_with_the_token_only() {
    let origin = origin().await;
    let (gw, dir) = start_from_file(&config_text(origin.addr, &routes("/one"))).await;
    let client = TestClient::new();
    let admin = gw.admin_addr.expect("admin listener");
    let url = format!("http://{admin}/admin/reload");
    let empty = rampart_gateway::body::empty;

    let denied = client.send("POST", &url, &[], empty()).await;
    assert_eq!(denied.status, 401);

    write(
        &dir.path.join("rampart.toml"),
        &config_text(origin.addr, &routes("/two")),
    );
    let auth = [("authorization", "Bearer test-token")];
    let done = client.send("POST", &url, &auth, empty()).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let body: serde_json::Value = serde_json::from_slice(&done.body).expect("json");
    assert_eq!(body["status"], "reloaded");
    assert_eq!(body["generation"], 2);
    assert_eq!(body["changed"][0], "routes");
    assert_eq!(
        client
            .get(&format!("http://{}/two", gw.addr), &[])
            .await
            .status,
        200
    );

    write(&dir.path.join("rampart.toml"), "[server]\nlisten = 7\n");
    let refused = client.send("POST", &url, &auth, empty()).await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.header("content-type"), "application/problem+json");
    assert!(refused.text().contains("listen"), "{}", refused.text());
}

#[tokio::test]
async fn a_new_listen_address_is_bound_before_the_old_one_closes() {
    let origin = origin().await;
    let (gw, dir) = start_from_file(&config_text(origin.addr, &routes("/one"))).await;
    let client = TestClient::new();
    let free = rampart_testkit::free_addr();
    write(
        &dir.path.join("rampart.toml"),
        &config_text(origin.addr, &routes("/one")).replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{free}\""),
            1,
        ),
    );
    let done = gw.reload_file().await.expect("reload applies");
    assert_eq!(done.changed, vec!["server.listen".to_string()]);
    assert_eq!(gw.addrs().await.0, free);
    let got = client.get(&format!("http://{free}/one"), &[]).await;
    assert_eq!(got.status, 200);

    // A taken address refuses the reload and keeps the listener.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    write(
        &dir.path.join("rampart.toml"),
        &config_text(origin.addr, &routes("/one")).replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{taken_addr}\""),
            1,
        ),
    );
    let err = gw.reload_file().await.expect_err("address in use");
    assert!(matches!(err, ReloadError::Bind(_)), "{err:?}");
    assert_eq!(gw.addrs().await.0, free);
    assert_eq!(
        client.get(&format!("http://{free}/one"), &[]).await.status,
        200
    );
}

/// 20 reloads alternating two configs under a load of well over 1,000
/// requests a second on kept-alive connections: not one request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_fail_no_request() {
    let origin = origin().await;
    let a = config_text(origin.addr, &routes("/one"));
    // b changes a listener limit too: the serve loop is replaced.
    let b = a
        .replacen(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:0\"\nmax_connections = 999\n",
            1,
        )
        .replace("timeout = \"5s\"", "timeout = \"6s\"")
        .replace("ttl = \"5m\"", "ttl = \"4m\"");
    let (gw, dir) = start_from_file(&a).await;
    let path = dir.path.join("rampart.toml");
    let base = format!("http://{}", gw.addr);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (done, ok, failed, base) = (
            Arc::clone(&done),
            Arc::clone(&ok),
            Arc::clone(&failed),
            base.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Empty<bytes::Bytes>>();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let path = if i.is_multiple_of(2) {
                    "/one".to_string()
                } else {
                    format!("/cached/{w}-{}", i % 50)
                };
                let uri: http::Uri = format!("{base}{path}").parse().expect("uri");
                match client.get(uri).await {
                    Ok(resp) if resp.status() == 200 => {
                        use http_body_util::BodyExt;
                        match resp.into_body().collect().await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    // Let the load reach its pace, then reload every 50 ms.
    rampart_testkit::eventually("the load is running", || ok.load(Ordering::Relaxed) > 500).await;
    for n in 0..20u64 {
        write(&path, if n.is_multiple_of(2) { &b } else { &a });
        let r = gw.reload_file().await.expect("reload applies");
        assert_eq!(r.generation, n + 2);
        let before = ok.load(Ordering::Relaxed);
        rampart_testkit::eventually("requests go on after the reload", || {
            ok.load(Ordering::Relaxed) >= before + 50
        })
        .await;
    }
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let rate = ok as f64 / started.elapsed().as_secs_f64();
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(
        rate >= 1000.0,
        "the load ran at {rate:.0} req/s, below 1,000"
    );
}

#[tokio::test]
async fn reload_on_change_picks_up_an_edited_file() {
    let origin = origin().await;
    let text = |route: &str| {
        config_text(origin.addr, &routes(route)).replacen(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:0\"\nreload_on_change = \"20ms\"\n",
            1,
        )
    };
    let (gw, dir) = start_from_file(&text("/one")).await;
    let client = TestClient::new();
    let url = format!("http://{}/two", gw.addr);
    assert_eq!(client.get(&url, &[]).await.status, 404);
    write(&dir.path.join("rampart.toml"), &text("/two"));
    rampart_testkit::eventually_async("the edited file is applied", || async {
        client.get(&url, &[]).await.status == 200
    })
    .await;
    assert!(client
        .metrics(&gw)
        .await
        .contains("rampart_config_reloads_total{result=\"applied\"} 1"));
}
