//! Refresh ahead of expiry and scheduled warmers.

use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::ManualClock;
use rampart_testkit::{
    config_text, eventually, eventually_async, gateway, respond, Origin, TestClient,
};

#[tokio::test]
async fn a_hit_near_expiry_refreshes_once_in_the_background() {
    let origin = Origin::simple(|req| respond(200, &[], format!("#{}", req.nth))).await;
    let routes = "[[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = { ttl = \"10s\", refresh_ahead = \"5s\" }\n";
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, routes), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/kpi", gw.addr);
    assert_eq!(client.get(&url, &[]).await.text(), "#1");
    clock.advance(Duration::from_secs(3));
    assert_eq!(client.get(&url, &[]).await.text(), "#1");
    assert_eq!(origin.count("/kpi"), 1, "7 s of freshness left: no refresh");

    clock.advance(Duration::from_secs(3));
    let mut hits = Vec::new();
    for _ in 0..10 {
        let (client, url) = (client.clone(), url.clone());
        hits.push(tokio::spawn(async move { client.get(&url, &[]).await }));
    }
    for h in hits {
        let got = h.await.unwrap();
        assert!(
            got.header("cache-status").contains("hit"),
            "served from cache while refreshing"
        );
    }
    // The refresh is stored once the cache answers with it.
    eventually_async("the refreshed copy is served", || async {
        client.get(&url, &[]).await.text() == "#2"
    })
    .await;
    assert_eq!(origin.count("/kpi"), 2, "exactly one refresh for ten hits");
    let fresh = client.get(&url, &[]).await;
    assert_eq!(fresh.text(), "#2");
    assert!(
        fresh.header("cache-status").contains("ttl=10")
            || fresh.header("cache-status").contains("ttl=9"),
        "{}",
        fresh.header("cache-status")
    );
}

#[tokio::test]
async fn warmers_fill_the_cache_before_anyone_asks_and_keep_it_warm() {
    let origin = Origin::simple(|req| {
        respond(
            200,
            &[("etag", "\"v1\"")],
            format!("offline QR list #{}", req.nth),
        )
    })
    .await;
    let extra =
        "[[routes]]\nmatch = \"GET /qr/offline\"\nupstream = \"app\"\ncache = { ttl = \"1h\" }\n\n\
                 [[warmers]]\nurl = \"http://events.test/qr/offline\"\nevery = \"1s\"\n";
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, extra), clock.clone()).await;
    eventually("warmed at start", || origin.count("/qr/offline") == 1).await;
    let got = TestClient::new()
        .get(
            &format!("http://{}/qr/offline", gw.addr),
            &[("host", "events.test")],
        )
        .await;
    assert!(
        got.header("cache-status").contains("hit"),
        "{}",
        got.header("cache-status")
    );
    // Every second on the gateway's clock, one refetch.
    for n in 2..=4 {
        clock.advance(Duration::from_secs(1));
        eventually("refetched after a second", || {
            origin.count("/qr/offline") == n
        })
        .await;
    }
    let seen = origin.seen();
    let last = &seen.last().unwrap().2;
    assert_eq!(
        last.get("if-none-match").map(|v| v.to_str().unwrap()),
        Some("\"v1\""),
        "refetches are conditional"
    );
}

#[test]
fn warmer_config_errors_are_located() {
    let base = "[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nmatch = \"GET /cached\"\nupstream = \"app\"\ncache = { ttl = \"1m\" }\n[[routes]]\nmatch = \"GET /plain\"\nupstream = \"app\"\n";
    for (warmer, message) in [
        ("url = \"/cached\"\nevery = \"1m\"", "must be absolute"),
        (
            "url = \"http://h/nothing\"\nevery = \"1m\"",
            "no route matches",
        ),
        ("url = \"http://h/plain\"\nevery = \"1m\"", "does not cache"),
        (
            "url = \"http://h/cached\"\nevery = \"10ms\"",
            "at most once a second",
        ),
    ] {
        let e = rampart_config::parse(&format!("{base}[[warmers]]\n{warmer}\n"), "w.toml")
            .expect_err(warmer);
        assert!(e.message.contains(message), "{e}");
        assert!(e.field.starts_with("warmers[1]"), "{e}");
    }
}
