//! Rate limits over real sockets.

use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::ManualClock;
use rampart_testkit::{config_text, gateway, respond, Origin, TestClient};

const ROUTES: &str = r#"
[[routes]]
match = "GET /api/v1/members/{id}"
upstream = "app"
cache = { ttl = "1h" }
limit = { rate = 60, per = "1m", key = "ip" }

[[routes]]
match = "POST /cards/{member}"
upstream = "app"
limit = [{ name = "per-member", rate = 10, per = "5m", key = "param:member" }, { name = "per-key", rate = 3, per = "1h", key = "header:x-api-key" }]
"#;

fn text(origin: std::net::SocketAddr) -> String {
    config_text(origin, ROUTES).replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
}

#[tokio::test]
async fn the_61st_request_in_a_minute_gets_429_while_another_ip_is_unaffected() {
    let origin =
        Origin::simple(|_| respond(200, &[("content-type", "application/json")], "{}")).await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&text(origin.addr), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/api/v1/members/42", gw.addr);
    let alice = [("x-forwarded-for", "203.0.113.1")];
    for i in 0..60 {
        let got = client.get(&url, &alice).await;
        assert_eq!(got.status, 200, "request {}", i + 1);
        assert_eq!(got.header("ratelimit-policy"), "\"60/1m\";q=60;w=60");
        assert!(
            got.header("ratelimit")
                .starts_with(&format!("\"60/1m\";r={};t=", 59 - i)),
            "{}",
            got.header("ratelimit")
        );
    }
    let limited = client.get(&url, &alice).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("content-type"), "application/problem+json");
    assert_eq!(limited.header("retry-after"), "1");
    assert_eq!(limited.header("ratelimit-policy"), "\"60/1m\";q=60;w=60");
    assert_eq!(limited.header("ratelimit"), "\"60/1m\";r=0;t=60");
    assert!(limited.text().contains("urn:rampart:problem:rate-limited"));
    // Cached responses count too: the limit sits before the cache.
    assert_eq!(origin.total(), 1);
    let bob = client
        .get(&url, &[("x-forwarded-for", "203.0.113.2")])
        .await;
    assert_eq!(bob.status, 200, "another client has its own allowance");
    // An untrusted peer cannot pick its identity with X-Forwarded-For: here
    // the peer is trusted, so a forged chain counts the right-most untrusted hop.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        client.get(&url, &alice).await.status,
        200,
        "one more after one second"
    );
    assert_eq!(client.get(&url, &alice).await.status, 429);
    let metrics = client.metrics(&gw).await;
    assert!(
        metrics.contains(r#"rampart_rate_limited_total{route="GET /api/v1/members/{id}",limit="60/1m",reason="limited"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn several_limits_per_route_keyed_by_parameter_and_header() {
    let origin = Origin::simple(|_| respond(201, &[], "card")).await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&text(origin.addr), clock.clone()).await;
    let client = TestClient::new();
    let post = |member: &'static str, key: Option<&'static str>| {
        let client = client.clone();
        let url = format!("http://{}/cards/{member}", gw.addr);
        async move {
            let headers: Vec<(&str, &str)> =
                key.map(|k| vec![("x-api-key", k)]).unwrap_or_default();
            client
                .send("POST", &url, &headers, rampart_gateway::body::empty())
                .await
        }
    };
    // Without an API key, only the per-member limit counts (an empty key is not counted).
    for _ in 0..10 {
        assert_eq!(post("m1", None).await.status, 201);
    }
    let limited = post("m1", None).await;
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .header("ratelimit")
            .starts_with("\"per-member\";r=0;t="),
        "{}",
        limited.header("ratelimit")
    );
    assert_eq!(
        limited.header("retry-after"),
        "30",
        "10 per 5 minutes: one every 30 s"
    );
    assert_eq!(post("m2", None).await.status, 201);
    // The API key's own limit: 3 per hour across members.
    for member in ["m3", "m4", "m5"] {
        assert_eq!(post(member, Some("k1")).await.status, 201);
    }
    let by_key = post("m6", Some("k1")).await;
    assert_eq!(by_key.status, 429);
    assert!(by_key.header("ratelimit").starts_with("\"per-key\";r=0;t="));
    assert_eq!(
        by_key.header("ratelimit-policy"),
        "\"per-member\";q=10;w=300, \"per-key\";q=3;w=3600"
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(post("m1", None).await.status, 201, "refilled after 30 s");
}

#[test]
fn limit_config_errors_are_located() {
    let base = "[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nmatch = \"GET /m/{id}\"\nupstream = \"app\"\n";
    for (limit, message) in [
        (
            "limit = { rate = 60, per = \"1m\", scope = \"cluster\" }",
            "set [cache] redis",
        ),
        (
            "limit = { rate = 60, per = \"1m\", key = \"param:member\" }",
            "no {member} parameter",
        ),
        ("limit = { rate = 0, per = \"1m\" }", "rate above 0"),
        (
            "limit = { rate = 60, per = \"1m\", key = \"body:x\" }",
            "invalid key",
        ),
    ] {
        let e = rampart_config::parse(&format!("{base}{limit}\n"), "limits.toml").expect_err(limit);
        assert_eq!(e.line, 7, "{e}");
        assert!(e.field.starts_with("routes[1].limit"), "{e}");
        assert!(e.message.contains(message), "{e}");
    }
}
