//! Circuit breakers over real sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::ManualClock;
use rampart_testkit::{config_text, gateway, respond, Origin, TestClient};

#[tokio::test]
async fn a_failing_target_opens_the_breaker_stale_is_served_then_traffic_returns() {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&healthy);
    let origin = Origin::simple(move |req| {
        if flag.load(Ordering::SeqCst) {
            respond(
                200,
                &[("content-type", "text/plain")],
                format!("{} #{}", req.uri, req.nth),
            )
        } else {
            respond(503, &[], "database unavailable")
        }
    })
    .await;
    let routes = "[[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = { ttl = \"10s\" }\n";
    let text = config_text(origin.addr, routes).replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\ncircuit = { failures = 3, open_for = \"30s\" }",
    );
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&text, clock.clone()).await;
    let client = TestClient::new();
    let member = format!("http://{}/members/7", gw.addr);
    assert_eq!(client.get(&member, &[]).await.text(), "/members/7 #1");

    healthy.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(11));
    for _ in 0..3 {
        assert_eq!(
            client.get(&member, &[]).await.status,
            503,
            "failures pass through until the breaker opens"
        );
    }
    let seen = origin.total();
    // Open: the stored copy is served, however stale, and the target is not touched.
    let stale = client.get(&member, &[]).await;
    assert_eq!(
        (stale.status.as_u16(), stale.text().as_str()),
        (200, "/members/7 #1")
    );
    assert!(
        stale.header("cache-status").contains("detail=circuit-open"),
        "{}",
        stale.header("cache-status")
    );
    let nothing = client
        .get(&format!("http://{}/members/8", gw.addr), &[])
        .await;
    assert_eq!(nothing.status, 503);
    assert!(nothing.text().contains("urn:rampart:problem:circuit-open"));
    assert_eq!(nothing.header("retry-after"), "30");
    assert_eq!(
        origin.total(),
        seen,
        "an open circuit sends nothing to the target"
    );
    let metrics = client.metrics(&gw).await;
    assert!(
        metrics.contains(&format!(
            "rampart_circuit_state{{upstream=\"app\",target=\"{}\"}} 2",
            origin.addr
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "rampart_circuit_transitions_total{{upstream=\"app\",target=\"{}\",to=\"open\"}} 1",
            origin.addr
        )),
        "{metrics}"
    );

    // Recovered: after open_for, one probe goes through and closes it.
    healthy.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    let probe = client.get(&member, &[]).await;
    assert_eq!(probe.status, 200);
    assert!(probe.text().starts_with("/members/7 #"), "{}", probe.text());
    assert_ne!(
        probe.text(),
        "/members/7 #1",
        "fresh content after the probe"
    );
    assert_eq!(
        client
            .get(&format!("http://{}/members/8", gw.addr), &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_dead_target_is_ejected_and_its_peer_takes_the_traffic() {
    let alive = Origin::simple(|_| respond(200, &[], "alive")).await;
    let dead = Origin::simple(|_| respond(200, &[], "dead")).await;
    let dead_addr = dead.addr;
    dead.stop();
    drop(dead);
    let routes = "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\n";
    let text = config_text(alive.addr, routes)
        .replace(&format!("targets = [\"{}\"]", alive.addr), &format!("targets = [\"{}\", \"{dead_addr}\"]", alive.addr))
        .replace("timeout = \"5s\"", "timeout = \"5s\"\nconnect_timeout = \"500ms\"\ncircuit = { failures = 2, open_for = \"1m\" }\nretry = false\nbalance = \"round-robin\"");
    let gw = gateway(&text, Arc::new(ManualClock::new())).await;
    let client = TestClient::new();
    let mut failures = 0;
    for _ in 0..6 {
        if client
            .get(&format!("http://{}/x", gw.addr), &[])
            .await
            .status
            != 200
        {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 2,
        "two connect failures open the dead target's breaker"
    );
    for _ in 0..10 {
        assert_eq!(
            client
                .get(&format!("http://{}/x", gw.addr), &[])
                .await
                .text(),
            "alive"
        );
    }
}
