//! Balancing over several targets, retries, and active health checks, over
//! real sockets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, eventually, gateway, respond, Origin, TestClient};

/// Config for an upstream over `targets` with `upstream_extra` lines and a
/// catch-all route (`route_extra` appended to it).
fn two_targets(targets: &[SocketAddr], upstream_extra: &str, route_extra: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    config_text(
        targets[0],
        &format!("[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\n{route_extra}\n"),
    )
    .replace(
        &format!("targets = [\"{}\"]", targets[0]),
        &format!("targets = [{}]\n{upstream_extra}", list.join(", ")),
    )
}

async fn dead_addr() -> SocketAddr {
    let o = Origin::simple(|_| respond(200, &[], "")).await;
    let addr = o.addr;
    o.stop();
    addr
}

#[tokio::test]
async fn idempotent_requests_are_retried_once_on_another_target_after_a_connect_error() {
    let dead = dead_addr().await;
    let alive = Origin::simple(|_| respond(200, &[], "alive")).await;
    let text = two_targets(
        &[dead, alive.addr],
        "balance = \"round-robin\"\nconnect_timeout = \"500ms\"",
        "",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/members/1", gw.addr);
    for _ in 0..6 {
        let got = client.get(&url, &[]).await;
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "alive"));
    }
    let m = TestClient::new().metrics(&gw).await;
    assert!(
        m.contains("rampart_upstream_retries_total{upstream=\"app\",reason=\"connect-error\"} 3"),
        "every second request met the dead target first and was retried: {m}"
    );
    // A POST is never retried: the ones sent to the dead target fail.
    let mut failed = 0;
    for _ in 0..4 {
        let got = client
            .send("POST", &url, &[], rampart_gateway::body::full("x"))
            .await;
        if got.status == 502 {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 2,
        "round robin sends half the POSTs to the dead target"
    );
    assert_eq!(alive.total(), 6 + 2);
}

#[tokio::test]
async fn a_get_the_target_closed_its_idle_connection_on_is_sent_again() {
    // The only target closes each kept-alive connection when a second
    // request arrives on it: the race its idle timeout makes with reuse.
    let target = rampart_testkit::one_answer_per_connection().await;
    let gw = gateway(&two_targets(&[target], "", ""), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/page", gw.addr);
    for _ in 0..4 {
        let got = client.get(&url, &[]).await;
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "ok"));
    }
    let m = TestClient::new().metrics(&gw).await;
    assert!(
        m.contains("rampart_upstream_retries_total{upstream=\"app\",reason=\"closed\"} 3"),
        "every request after the first met a closed connection: {m}"
    );
    // A POST the target may have acted on is not sent twice.
    client.get(&url, &[]).await;
    let got = client
        .send("POST", &url, &[], rampart_gateway::body::full("x"))
        .await;
    assert_eq!(got.status, 502);
}

#[tokio::test]
async fn a_503_is_retried_on_another_target_but_a_timeout_is_not() {
    let overloaded = Origin::start(|req| async move {
        if req.uri.starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        respond(503, &[], "overloaded")
    })
    .await;
    let fine = Origin::simple(|_| respond(200, &[], "fine")).await;
    let text = two_targets(
        &[overloaded.addr, fine.addr],
        "balance = \"round-robin\"",
        "timeout = \"300ms\"",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    for _ in 0..4 {
        let got = client.get(&format!("http://{}/a", gw.addr), &[]).await;
        assert_eq!(got.status, 200);
    }
    assert_eq!(
        overloaded.count("/a"),
        2,
        "half went to the overloaded target first"
    );
    assert_eq!(fine.count("/a"), 4);

    // The next request goes to the overloaded target first (round robin):
    // it times out after the request was sent, so it is not sent again.
    let slow = client.get(&format!("http://{}/slow", gw.addr), &[]).await;
    assert_eq!(slow.status, 504);
    assert_eq!(
        fine.count("/slow"),
        0,
        "a timed-out request is never retried"
    );
    assert_eq!(overloaded.count("/slow"), 1);
}

#[tokio::test]
async fn least_in_flight_sends_new_requests_away_from_a_slow_target() {
    let slow = Origin::start(|_| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        respond(200, &[], "slow")
    })
    .await;
    let quick = Origin::simple(|_| respond(200, &[], "quick")).await;
    let text = two_targets(&[slow.addr, quick.addr], "", "");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let url = format!("http://{}/x", gw.addr);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            TestClient::new().get(&url, &[]).await.status
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert!(
        slow.total() <= 3,
        "the slow target, busy with its first request, should get almost nothing; got {} of 40",
        slow.total()
    );
    assert_eq!(slow.total() + quick.total(), 40);
}

#[tokio::test]
async fn failing_health_checks_take_a_target_out_and_passing_ones_bring_it_back() {
    let sick = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&sick);
    let a = Origin::simple(move |req| {
        if req.uri == "/health" && flag.load(Ordering::SeqCst) {
            respond(500, &[], "down")
        } else {
            respond(200, &[], "a")
        }
    })
    .await;
    let b = Origin::simple(|_| respond(200, &[], "b")).await;
    let text = two_targets(
        &[a.addr, b.addr],
        "health = { path = \"/health\", interval = \"100ms\", timeout = \"1s\", healthy_after = 2, unhealthy_after = 2 }",
        "",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let state = gw.state();
    let pool = &state.upstreams.pools()[0];
    eventually("two failed checks take the sick target out", || {
        pool.health_states()
            == [
                (a.addr.to_string().as_str(), false),
                (b.addr.to_string().as_str(), true),
            ]
    })
    .await;
    let m = TestClient::new().metrics(&gw).await;
    assert!(
        m.contains("rampart_upstream_healthy_targets{upstream=\"app\"} 1"),
        "{m}"
    );
    for _ in 0..20 {
        let got = client.get(&format!("http://{}/x", gw.addr), &[]).await;
        assert_eq!(got.text(), "b", "an unhealthy target takes no traffic");
    }
    assert_eq!(a.count("/x"), 0);

    sick.store(false, Ordering::SeqCst);
    eventually("two passed checks bring it back", || {
        pool.health_states().iter().all(|(_, healthy)| *healthy)
    })
    .await;
    for _ in 0..20 {
        client.get(&format!("http://{}/x", gw.addr), &[]).await;
    }
    assert!(
        a.count("/x") > 0,
        "a target that passes again takes traffic"
    );
    assert!(a.count("/health") >= 4, "checks run every interval");
}

#[tokio::test]
async fn with_every_target_unhealthy_stale_is_served_else_503_and_readyz_fails() {
    let up = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&up);
    let origin = Origin::simple(move |req| {
        if req.uri == "/health" && !flag.load(Ordering::SeqCst) {
            respond(500, &[], "down")
        } else {
            respond(
                200,
                &[("cache-control", "max-age=0")],
                format!("copy of {}", req.uri),
            )
        }
    })
    .await;
    let text = two_targets(
        &[origin.addr],
        "health = { path = \"/health\", interval = \"100ms\", unhealthy_after = 1 }",
        "cache = { respect_origin = true }",
    )
    .replace("[admin]\n", "[admin]\nready = \"upstreams\"\n");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let admin = gw.admin_addr.unwrap();
    assert_eq!(
        client
            .get(&format!("http://{admin}/readyz"), &[])
            .await
            .status,
        200
    );
    let kept = format!("http://{}/kept", gw.addr);
    assert_eq!(client.get(&kept, &[]).await.text(), "copy of /kept");

    up.store(false, Ordering::SeqCst);
    let state = gw.state();
    let pool = &state.upstreams.pools()[0];
    eventually("a failed check takes the only target out", || {
        pool.health_states().iter().all(|(_, healthy)| !*healthy)
    })
    .await;
    let seen = origin.count("/kept");
    let stale = client.get(&kept, &[]).await;
    assert_eq!(stale.text(), "copy of /kept");
    assert!(
        stale
            .header("cache-status")
            .contains("detail=no-healthy-target"),
        "{}",
        stale.header("cache-status")
    );
    assert_eq!(
        origin.count("/kept"),
        seen,
        "no request reaches a down upstream"
    );
    let none = client.get(&format!("http://{}/other", gw.addr), &[]).await;
    assert_eq!(none.status, 503);
    assert!(none
        .text()
        .contains("urn:rampart:problem:no-healthy-target"));
    assert_eq!(none.header("retry-after"), "1");
    let ready = client.get(&format!("http://{admin}/readyz"), &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.text().contains("\"healthy_targets\":0"),
        "{}",
        ready.text()
    );
}
