//! RFC 9111 (and 9110, 9213) semantics over real sockets: revalidation of
//! kept entries, must-revalidate, targeted cache-control fields, unsafe
//! methods, `Age`, statuses, ranges, `Vary` normalisation, `Authorization`,
//! and origin values that used to crash the request.

use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::{ManualClock, SystemClock};
use rampart_testkit::{config_text, gateway, respond, Origin, TestClient};

const ORIGIN_RULES: &str = r#"
[[routes]]
match = "/*"
upstream = "app"
cache = { respect_origin = true }
"#;

#[tokio::test]
async fn an_expired_entry_with_a_validator_is_revalidated_not_refetched() {
    let origin = Origin::simple(|req| {
        if req
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return respond(
                304,
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                "",
            );
        }
        respond(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "the body",
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/doc", gw.addr);
    assert_eq!(client.get(&url, &[]).await.text(), "the body");
    // Past its freshness and stale windows, the entry is kept, not dropped.
    // The memory tier removes entries on its own (real) clock, which no test
    // can move: this waits for that clock to pass the old horizon (1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = client.get(&url, &[]).await;
    assert!(
        got.header("cache-status")
            .contains("fwd=stale; fwd-status=304"),
        "revalidated, not fetched anew: {}",
        got.header("cache-status")
    );
    assert_eq!(got.text(), "the body");
    let seen = origin.seen();
    assert!(
        seen.iter()
            .skip(1)
            .all(|(_, _, h)| h.contains_key("if-none-match")),
        "every later request was conditional"
    );
}

#[tokio::test]
async fn no_cache_responses_are_stored_and_revalidated_on_every_use() {
    let origin = Origin::simple(|req| {
        if req.headers.contains_key("if-none-match") {
            return respond(304, &[("cache-control", "no-cache"), ("etag", "\"n\"")], "");
        }
        respond(
            200,
            &[("cache-control", "no-cache"), ("etag", "\"n\"")],
            "fresh each time",
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/nc", gw.addr);
    client.get(&url, &[]).await;
    for _ in 0..3 {
        let got = client.get(&url, &[]).await;
        assert_eq!(got.text(), "fresh each time");
        assert!(
            got.header("cache-status").contains("fwd-status=304"),
            "{}",
            got.header("cache-status")
        );
    }
    assert_eq!(origin.count("/nc"), 4, "every use asked the origin");
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale_even_with_the_origin_down() {
    let origin = Origin::simple(|_| {
        respond(
            200,
            &[("cache-control", "max-age=10, must-revalidate")],
            "strict",
        )
    })
    .await;
    let routes = r#"
[[routes]]
match = "/*"
upstream = "app"
cache = { respect_origin = true, stale_if_error = "1h" }
"#;
    let text = config_text(origin.addr, routes).replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\ncircuit = { failures = 1, open_for = \"1h\" }",
    );
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&text, clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/s", gw.addr);
    assert_eq!(client.get(&url, &[]).await.text(), "strict");
    clock.advance(Duration::from_secs(20));
    origin.stop();
    // The connect error opens the circuit; neither answer is the stale copy.
    for _ in 0..2 {
        let got = client.get(&url, &[]).await;
        assert_eq!(got.status, 504, "{}", got.text());
        assert!(got.text().contains("urn:rampart:problem:must-revalidate"));
    }
    // A route may override the origin here, explicitly.
    let lenient = Origin::simple(|_| {
        respond(
            200,
            &[("cache-control", "max-age=10, must-revalidate")],
            "lenient",
        )
    })
    .await;
    let text = config_text(
        lenient.addr,
        &routes.replace(
            "stale_if_error = \"1h\"",
            "stale_if_error = \"1h\", ignore_must_revalidate = true",
        ),
    )
    .replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\ncircuit = { failures = 1, open_for = \"1h\" }",
    );
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&text, clock.clone()).await;
    let url = format!("http://{}/s", gw.addr);
    client.get(&url, &[]).await;
    clock.advance(Duration::from_secs(20));
    lenient.stop();
    client.get(&url, &[]).await;
    let stale = client.get(&url, &[]).await;
    assert_eq!(stale.text(), "lenient");
    assert!(stale.header("cache-status").contains("detail=circuit-open"));
}

#[tokio::test]
async fn cdn_cache_control_and_surrogate_control_govern_a_shared_cache() {
    let origin = Origin::simple(|req| {
        let headers: &[(&str, &str)] = if req.uri == "/cdn" {
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ]
        } else {
            &[
                ("cache-control", "max-age=0"),
                ("surrogate-control", "max-age=60"),
            ]
        };
        respond(200, headers, format!("{} #{}", req.uri, req.nth))
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    for path in ["/cdn", "/surrogate"] {
        let url = format!("http://{}{path}", gw.addr);
        client.get(&url, &[]).await;
        let again = client.get(&url, &[]).await;
        assert!(
            again.header("cache-status").contains("hit"),
            "{path}: {}",
            again.header("cache-status")
        );
        assert_eq!(
            again.header("surrogate-control"),
            "",
            "meant for the cache alone"
        );
    }
    assert_eq!(origin.total(), 2);
}

#[tokio::test]
async fn any_non_error_answer_to_an_unsafe_method_invalidates() {
    let origin = Origin::simple(|req| {
        respond(
            200,
            &[("cache-control", "max-age=600")],
            format!("{} #{}", req.method, req.nth),
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/dav/doc", gw.addr);
    client.get(&url, &[]).await;
    assert!(client
        .get(&url, &[])
        .await
        .header("cache-status")
        .contains("hit"));
    let moved = client
        .send("MKCOL", &url, &[], rampart_gateway::body::empty())
        .await;
    assert_eq!(moved.status, 200);
    let after = client.get(&url, &[]).await;
    assert!(
        after.header("cache-status").contains("fwd=uri-miss"),
        "{}",
        after.header("cache-status")
    );
}

#[tokio::test]
async fn a_list_valued_age_uses_its_first_member() {
    let origin = Origin::simple(|req| {
        respond(
            200,
            &[("cache-control", "max-age=3600"), ("age", "7200, 0")],
            format!("#{}", req.nth),
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/old", gw.addr);
    client.get(&url, &[]).await;
    let again = client.get(&url, &[]).await;
    assert!(
        !again.header("cache-status").contains("; hit"),
        "a response two hours old is not fresh for one: {}",
        again.header("cache-status")
    );
    assert_eq!(origin.count("/old"), 2);
}

#[tokio::test]
async fn explicit_freshness_stores_any_final_status() {
    let origin = Origin::simple(|req| {
        respond(
            500,
            &[("cache-control", "max-age=60")],
            format!("maintenance #{}", req.nth),
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/down", gw.addr);
    assert_eq!(client.get(&url, &[]).await.status, 500);
    let again = client.get(&url, &[]).await;
    assert_eq!(
        (again.status.as_u16(), again.text().as_str()),
        (500, "maintenance #1")
    );
    assert!(again.header("cache-status").contains("hit"));
}

#[tokio::test]
async fn ranges_are_answered_from_the_stored_response() {
    let origin = Origin::simple(|_| {
        respond(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"r1\""),
                ("content-type", "text/plain"),
            ],
            "0123456789",
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/file", gw.addr);
    let first = client.get(&url, &[("range", "bytes=2-5")]).await;
    assert_eq!(
        (first.status.as_u16(), first.text().as_str()),
        (206, "2345")
    );
    assert_eq!(first.header("content-range"), "bytes 2-5/10");
    let suffix = client.get(&url, &[("range", "bytes=-3")]).await;
    assert_eq!(
        (suffix.status.as_u16(), suffix.text().as_str()),
        (206, "789")
    );
    let many = client.get(&url, &[("range", "bytes=0-0, 9-9")]).await;
    assert_eq!(many.status, 206);
    assert!(many
        .header("content-type")
        .starts_with("multipart/byteranges; boundary="));
    assert!(
        many.text().contains("content-range: bytes 9-9/10"),
        "{}",
        many.text()
    );
    let none = client.get(&url, &[("range", "bytes=20-")]).await;
    assert_eq!(none.status, 416);
    assert_eq!(none.header("content-range"), "bytes */10");
    let changed = client
        .get(&url, &[("range", "bytes=0-1"), ("if-range", "\"r0\"")])
        .await;
    assert_eq!(
        (changed.status.as_u16(), changed.text().as_str()),
        (200, "0123456789")
    );
    assert_eq!(origin.total(), 1, "every range from the one stored copy");
}

#[tokio::test]
async fn vary_values_match_regardless_of_case_and_spacing_where_allowed() {
    let origin = Origin::simple(|req| {
        respond(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
            format!("#{}", req.nth),
        )
    })
    .await;
    let gw = gateway(
        &config_text(origin.addr, ORIGIN_RULES),
        Arc::new(SystemClock),
    )
    .await;
    let client = TestClient::new();
    let url = format!("http://{}/v", gw.addr);
    client.get(&url, &[("accept-language", "EN,  fr")]).await;
    let same = client.get(&url, &[("accept-language", "en, fr")]).await;
    assert!(
        same.header("cache-status").contains("hit"),
        "{}",
        same.header("cache-status")
    );
}

#[tokio::test]
async fn authorization_requests_follow_the_origin_when_the_route_says_so() {
    let origin = Origin::simple(|req| {
        let cc = if req.uri.starts_with("/public") {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        respond(
            200,
            &[("cache-control", cc)],
            format!("{} #{}", req.uri, req.nth),
        )
    })
    .await;
    let routes = "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\ncache = { respect_origin = true, authorization = \"follow-origin\" }\n";
    let gw = gateway(&config_text(origin.addr, routes), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let public = format!("http://{}/public/doc", gw.addr);
    client
        .get(&public, &[("authorization", "Bearer alice")])
        .await;
    let bob = client
        .get(&public, &[("authorization", "Bearer bob")])
        .await;
    assert!(bob.header("cache-status").contains("hit"), "public: shared");
    let private = format!("http://{}/mine", gw.addr);
    client
        .get(&private, &[("authorization", "Bearer alice")])
        .await;
    let bob = client
        .get(&private, &[("authorization", "Bearer bob")])
        .await;
    assert_eq!(bob.text(), "/mine #2", "not marked shareable: never shared");
}

#[tokio::test]
async fn absurd_freshness_from_an_origin_never_drops_the_connection() {
    let origin = Origin::simple(|req| {
        let headers: &[(&str, &str)] = match req.uri.as_str() {
            "/max" => &[("cache-control", "max-age=18446744073709551615")],
            "/age" => &[
                ("cache-control", "max-age=18446744073709551615"),
                ("age", "18446744073709551615"),
            ],
            _ => &[(
                "cache-control",
                "max-age=18446744073709551615, stale-if-error=18446744073709551615",
            )],
        };
        respond(200, headers, "ok")
    })
    .await;
    let routes = "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\ncache = { respect_origin = true, stale_if_error = \"1h\" }\n";
    let gw = gateway(&config_text(origin.addr, routes), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    for path in ["/max", "/age", "/sie"] {
        for _ in 0..2 {
            let got = client.get(&format!("http://{}{path}", gw.addr), &[]).await;
            assert_eq!(got.status, 200, "{path}");
        }
    }
    let metrics = client.metrics(&gw).await;
    assert!(metrics.contains("rampart_panics_total 0"), "{metrics}");
}
