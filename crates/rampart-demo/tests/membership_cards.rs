//! The membership-card origin (seed 003) on a small data set, alone and
//! behind its example config: member lookups cached for an hour and limited
//! to 60 a minute per IP, and cached member data served while the database
//! is down and the breaker is open.

use std::sync::Arc;

use rampart_demo::AppKind;
use rampart_testkit::{example_config, TestClient};
use serde_json::Value;

async fn small_origin() -> rampart_demo::Origin {
    rampart_demo::start(
        AppKind::MembershipCards,
        0.01,
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .await
    .unwrap()
}

/// The example config in front of `origin`, with the member route's TTL
/// replaced by `ttl`.
async fn behind_example(origin: &rampart_demo::Origin, ttl: &str) -> rampart_gateway::Running {
    behind_example_on(origin, ttl, Arc::new(rampart_gateway::SystemClock)).await
}

async fn behind_example_on(
    origin: &rampart_demo::Origin,
    ttl: &str,
    clock: Arc<dyn rampart_gateway::Clock>,
) -> rampart_gateway::Running {
    let text = example_config(
        "membership-cards",
        origin.addr,
        rampart_testkit::free_addr(),
        "test-token",
    )
    .replace(
        "cache = { ttl = \"1h\"",
        &format!("cache = {{ ttl = \"{ttl}\""),
    );
    let config = rampart_config::parse(&text, "rampart.toml").unwrap_or_else(|e| panic!("{e}"));
    rampart_gateway::start(&config, clock).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_cards_and_batches_on_generated_members() {
    let origin = small_origin().await;
    assert_eq!(origin.rows, 20_000);
    let base = format!("http://{}/api/v1/optimized-cards", origin.addr);
    let client = TestClient::new();
    let member = client.get(&format!("{base}/member/ID00000010"), &[]).await;
    assert_eq!(member.status, 200);
    let m: Value = serde_json::from_str(&member.text()).unwrap();
    assert_eq!(
        (m["id"].as_i64(), m["tier"].as_str()),
        (Some(10), Some("gold"))
    );
    assert_eq!(
        client
            .get(&format!("{base}/member/ID99999999"), &[])
            .await
            .status,
        404
    );
    let card = client
        .send(
            "POST",
            &format!("{base}/generate-data/10"),
            &[],
            rampart_gateway::body::empty(),
        )
        .await;
    let c: Value = serde_json::from_str(&card.text()).unwrap();
    assert_eq!(c["card_number"], "MC-00000010");
    assert_eq!(c["member"]["id_number"], "ID00000010");
    let batch = |ids: Vec<i64>| {
        let client = client.clone();
        let url = format!("{base}/batch-generate");
        async move {
            let body = serde_json::json!({ "member_ids": ids }).to_string();
            client
                .send("POST", &url, &[], rampart_gateway::body::full(body))
                .await
        }
    };
    let ok = batch((1..=100).chain([50_000]).filter(|i| *i != 100).collect()).await;
    let b: Value = serde_json::from_str(&ok.text()).unwrap();
    assert_eq!(
        (b["generated"].as_i64(), b["missing"].clone()),
        (Some(99), serde_json::json!([50_000]))
    );
    assert_eq!(
        batch((1..=101).collect()).await.status,
        400,
        "up to 100 members"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_lookups_are_cached_and_limited_to_60_a_minute_per_ip() {
    let origin = small_origin().await;
    let gw = behind_example(&origin, "1h").await;
    let client = TestClient::new();
    let url = |n: u32| format!("http://{}/api/v1/optimized-cards/member/ID{n:08}", gw.addr);
    let before = origin.requests();
    for i in 0..60 {
        let got = client.get(&url(1 + i % 3), &[]).await;
        assert_eq!(got.status, 200, "request {} of 60", i + 1);
    }
    let sent = origin.requests() - before;
    assert!(
        (3..=4).contains(&sent),
        "three members, each fetched once (and perhaps the first health check): {sent}"
    );
    let refused = client.get(&url(1), &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("content-type"), "application/problem+json");
    assert_eq!(refused.header("retry-after"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_the_breaker_serves_cached_member_data() {
    let origin = small_origin().await;
    let clock = Arc::new(rampart_gateway::ManualClock::new());
    let gw = behind_example_on(&origin, "1s", clock.clone()).await;
    let client = TestClient::new();
    let url = |n: u32| format!("http://{}/api/v1/optimized-cards/member/ID{n:08}", gw.addr);
    let cached = client.get(&url(7), &[]).await;
    assert_eq!(cached.status, 200);
    clock.advance(std::time::Duration::from_millis(1100)); // now stale

    origin.set_database_available(false);
    // Ten failures (members never cached: 503 from the origin) open it.
    for n in 100..110 {
        assert_eq!(client.get(&url(n), &[]).await.status, 503);
    }
    let before = origin.requests();
    let fallback = client.get(&url(7), &[]).await;
    assert_eq!(fallback.status, 200);
    assert_eq!(fallback.text(), cached.text(), "the member data as stored");
    assert!(
        fallback
            .header("cache-status")
            .contains("detail=circuit-open"),
        "{}",
        fallback.header("cache-status")
    );
    let uncached = client.get(&url(200), &[]).await;
    assert_eq!(uncached.status, 503);
    assert_eq!(uncached.header("content-type"), "application/problem+json");
    assert_eq!(
        origin.requests(),
        before,
        "the open breaker sent nothing to the origin"
    );
}
