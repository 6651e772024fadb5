//! Admission control over real sockets: a slow upstream saturated by traffic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, eventually, gateway, respond, Origin, TestClient};

const ROUTES: &str = r#"
[[routes]]
match = "POST /webhooks/payment"
upstream = "app"
priority = "critical"

[[routes]]
match = "GET /cached/*"
upstream = "app"
cache = { ttl = "1h" }

[[routes]]
match = "GET /browse/*"
upstream = "app"
priority = "low"
"#;

async fn slow_origin(delay: Duration) -> Origin {
    Origin::start(move |req| async move {
        tokio::time::sleep(delay).await;
        respond(200, &[], req.uri)
    })
    .await
}

fn text(origin: std::net::SocketAddr, admission: &str) -> String {
    config_text(origin, ROUTES).replace(
        "timeout = \"5s\"",
        &format!("timeout = \"5s\"\n{admission}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_requests_get_through_while_low_ones_are_shed() {
    let origin = slow_origin(Duration::from_millis(300)).await;
    let gw = gateway(
        &text(
            origin.addr,
            "max_concurrency = 2\nqueue = { size = 3, timeout = \"3s\" }",
        ),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    // Fill the cache before the storm.
    assert_eq!(
        client
            .get(&format!("http://{}/cached/page", gw.addr), &[])
            .await
            .status,
        200
    );
    let started = Instant::now();
    let mut low = Vec::new();
    for i in 0..10 {
        let (client, url) = (client.clone(), format!("http://{}/browse/{i}", gw.addr));
        low.push(tokio::spawn(async move { client.get(&url, &[]).await }));
    }
    let admission = Arc::clone(gw.state().upstreams.admission(0).unwrap());
    eventually("two lows in flight and three queued", || {
        admission.in_flight() == 2 && admission.depth(3) == 3
    })
    .await;
    // Cache hits never wait for an upstream slot.
    let hit_started = Instant::now();
    let hit = client
        .get(&format!("http://{}/cached/page", gw.addr), &[])
        .await;
    assert!(hit.header("cache-status").contains("hit"));
    assert!(
        hit_started.elapsed() < Duration::from_millis(100),
        "a hit waited {:?}",
        hit_started.elapsed()
    );
    let mut critical = Vec::new();
    for _ in 0..3 {
        let (client, url) = (
            client.clone(),
            format!("http://{}/webhooks/payment", gw.addr),
        );
        critical.push(tokio::spawn(async move {
            client
                .send("POST", &url, &[], rampart_gateway::body::empty())
                .await
        }));
    }
    for c in critical {
        assert_eq!(
            c.await.unwrap().status,
            200,
            "payment webhooks keep getting through"
        );
    }
    let mut shed = 0;
    for l in low {
        let got = l.await.unwrap();
        if got.status == 503 {
            shed += 1;
            assert_eq!(got.header("retry-after"), "1");
            assert!(got.text().contains("urn:rampart:problem:shed"));
        }
    }
    // 2 in flight + 3 queued of 10 lows; then 3 criticals displace the queued lows.
    assert_eq!(
        shed, 8,
        "5 shed for a full queue, 3 displaced by critical requests"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "never hangs: {:?}",
        started.elapsed()
    );
    let metrics = client.metrics(&gw).await;
    assert!(
        metrics.contains(
            r#"rampart_shed_requests_total{upstream="app",priority="low",reason="queue-full"} 5"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"rampart_shed_requests_total{upstream="app",priority="low",reason="displaced"} 3"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_is_bounded_by_the_queue_timeout() {
    let origin = slow_origin(Duration::from_millis(1500)).await;
    let gw = gateway(
        &text(
            origin.addr,
            "max_concurrency = 1\nqueue = { size = 10, timeout = \"200ms\" }",
        ),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let first = {
        let (client, url) = (client.clone(), format!("http://{}/browse/a", gw.addr));
        tokio::spawn(async move { client.get(&url, &[]).await })
    };
    let admission = Arc::clone(gw.state().upstreams.admission(0).unwrap());
    eventually("the first request holds the slot", || {
        admission.in_flight() == 1
    })
    .await;
    let started = Instant::now();
    let waited = client
        .get(&format!("http://{}/browse/b", gw.addr), &[])
        .await;
    assert_eq!(waited.status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "gave up after {:?}",
        started.elapsed()
    );
    assert_eq!(first.await.unwrap().status, 200);
    // The slot came back: the next request is served.
    assert_eq!(
        client
            .get(&format!("http://{}/browse/c", gw.addr), &[])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_held_until_the_response_body_ends() {
    // Headers at once, the body's end 400 ms later.
    let origin = Origin::start(|req| async move {
        if !req.uri.starts_with("/browse/long") {
            return respond(200, &[], "short");
        }
        let chunks = futures_util::stream::unfold(0u8, |n| async move {
            match n {
                0 => Some((
                    Ok::<_, std::io::Error>(http_body::Frame::data(bytes::Bytes::from("start "))),
                    1,
                )),
                1 => {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    Some((Ok(http_body::Frame::data(bytes::Bytes::from("end"))), 2))
                }
                _ => None,
            }
        });
        http::Response::new(rampart_gateway::body::boxed(
            http_body_util::StreamBody::new(chunks),
        ))
    })
    .await;
    let gw = gateway(
        &text(
            origin.addr,
            "max_concurrency = 1\nqueue = { size = 10, timeout = \"5s\" }",
        ),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let long = {
        let (client, url) = (client.clone(), format!("http://{}/browse/long", gw.addr));
        tokio::spawn(async move { client.get(&url, &[]).await })
    };
    let admission = Arc::clone(gw.state().upstreams.admission(0).unwrap());
    eventually("the long request holds the slot", || {
        admission.in_flight() == 1
    })
    .await;
    let started = Instant::now();
    let short = client
        .get(&format!("http://{}/browse/short", gw.addr), &[])
        .await;
    assert_eq!(short.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the second request waited only {:?}: the slot was given back before the first body ended",
        started.elapsed()
    );
    assert_eq!(long.await.unwrap().text(), "start end");
}
