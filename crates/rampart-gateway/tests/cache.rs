//! The cache over real sockets: an in-process origin that counts requests,
//! a gateway on 127.0.0.1, a client.

use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::{ManualClock, SystemClock};
use rampart_testkit::{config_text, eventually_async, gateway, respond, Origin, TestClient};

const CACHED: &str = r#"
[[routes]]
match = "GET /cached/*"
upstream = "app"
cache = { ttl = "60s" }

[[routes]]
match = "GET /swr/*"
upstream = "app"
cache = { ttl = "10s", stale_while_revalidate = "30s" }

[[routes]]
match = "GET /sie/*"
upstream = "app"
cache = { ttl = "10s", stale_if_error = "1h" }

[[routes]]
match = "GET /origin/*"
upstream = "app"
cache = { respect_origin = true }

[[routes]]
match = "GET /me"
upstream = "app"
cache = { ttl = "60s", key = ["header:authorization"] }

[[routes]]
match = "* /*"
upstream = "app"
cache = { ttl = "60s" }
"#;

async fn counting_origin() -> Origin {
    Origin::simple(|req| {
        let body = format!("{} #{}", req.uri, req.nth);
        respond(200, &[("content-type", "text/plain")], body)
    })
    .await
}

#[tokio::test]
async fn hit_after_miss_makes_one_origin_request() {
    let origin = counting_origin().await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/a?x=1&y=2", gw.addr);
    let first = client.get(&url, &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("cache-status"),
        "rampart; fwd=uri-miss; fwd-status=200; stored"
    );
    let second = client
        .get(&format!("http://{}/cached/a?y=2&x=1", gw.addr), &[])
        .await;
    assert_eq!(second.body, first.body, "normalised query shares the entry");
    assert!(
        second
            .header("cache-status")
            .starts_with("rampart; hit; ttl="),
        "{}",
        second.header("cache-status")
    );
    assert!(second.headers.contains_key("age"));
    assert_eq!(origin.count("/cached/a"), 1);
}

#[tokio::test]
async fn concurrent_misses_coalesce_into_one_origin_request() {
    let origin = Origin::start(|req| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        respond(
            200,
            &[("content-type", "text/plain")],
            format!("slow #{}", req.nth),
        )
    })
    .await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/slow", gw.addr);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.get(&url, &[]).await })
        })
        .collect();
    let mut collapsed = 0;
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "slow #1");
        collapsed += usize::from(got.header("cache-status").contains("collapsed"));
    }
    assert_eq!(
        origin.count("/cached/slow"),
        1,
        "exactly one origin request"
    );
    assert!(collapsed > 0, "followers say they were collapsed");
}

#[tokio::test]
async fn set_cookie_responses_are_never_shared() {
    let origin = Origin::simple(|req| {
        let user = req
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anon")
            .to_string();
        respond(
            200,
            &[
                ("set-cookie", &format!("session={user}")),
                ("content-type", "text/plain"),
            ],
            format!("hello {user}"),
        )
    })
    .await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/profile", gw.addr);
    let alice = client.get(&url, &[("x-user", "alice")]).await;
    assert_eq!(alice.text(), "hello alice");
    assert!(alice.header("cache-status").contains("detail=set-cookie"));
    let bob = client.get(&url, &[("x-user", "bob")]).await;
    assert_eq!(bob.text(), "hello bob");
    assert_eq!(bob.header("set-cookie"), "session=bob");
    assert_eq!(origin.count("/cached/profile"), 2);
}

#[tokio::test]
async fn authorized_requests_bypass_unless_the_route_keys_on_them() {
    let origin = Origin::simple(|req| {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        respond(
            200,
            &[("content-type", "text/plain")],
            format!("data for {auth}"),
        )
    })
    .await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    // A route that does not key on Authorization: never stored, never served from cache.
    let shared = format!("http://{}/cached/account", gw.addr);
    let a = client
        .get(&shared, &[("authorization", "Bearer alice")])
        .await;
    assert!(
        a.header("cache-status").contains("detail=authorization"),
        "{}",
        a.header("cache-status")
    );
    let b = client
        .get(&shared, &[("authorization", "Bearer bob")])
        .await;
    assert_eq!(b.text(), "data for Bearer bob");
    let anon = client.get(&shared, &[]).await;
    assert_eq!(anon.text(), "data for none");
    assert_eq!(origin.count("/cached/account"), 3);

    // A route keyed on Authorization: each credential gets its own entry.
    let me = format!("http://{}/me", gw.addr);
    assert_eq!(
        client
            .get(&me, &[("authorization", "Bearer alice")])
            .await
            .text(),
        "data for Bearer alice"
    );
    assert_eq!(
        client
            .get(&me, &[("authorization", "Bearer bob")])
            .await
            .text(),
        "data for Bearer bob"
    );
    let again = client.get(&me, &[("authorization", "Bearer alice")]).await;
    assert_eq!(again.text(), "data for Bearer alice");
    assert!(again.header("cache-status").contains("hit"));
    assert_eq!(origin.count("/me"), 2);
}

#[tokio::test]
async fn vary_selects_variants() {
    let origin = Origin::simple(|req| {
        let lang = req
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("en")
            .to_string();
        respond(
            200,
            &[("vary", "Accept-Language"), ("content-type", "text/plain")],
            format!("lang={lang}"),
        )
    })
    .await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/home", gw.addr);
    assert_eq!(
        client.get(&url, &[("accept-language", "fr")]).await.text(),
        "lang=fr"
    );
    let de = client.get(&url, &[("accept-language", "de")]).await;
    assert_eq!(de.text(), "lang=de");
    assert!(
        de.header("cache-status").contains("fwd=vary-miss"),
        "{}",
        de.header("cache-status")
    );
    let fr = client.get(&url, &[("accept-language", "fr")]).await;
    assert_eq!(fr.text(), "lang=fr");
    assert!(fr.header("cache-status").contains("hit"));
    assert_eq!(origin.count("/cached/home"), 2);
}

#[tokio::test]
async fn vary_star_and_no_store_and_private_are_not_stored() {
    let origin = Origin::simple(|req| match req.uri.as_str() {
        "/cached/nostore" => respond(200, &[("cache-control", "no-store")], "x"),
        "/cached/private" => respond(200, &[("cache-control", "private, max-age=60")], "x"),
        _ => respond(200, &[("vary", "*")], "x"),
    })
    .await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    for (path, reason) in [
        ("/cached/nostore", "no-store"),
        ("/cached/private", "private"),
        ("/cached/varystar", "vary-star"),
    ] {
        let url = format!("http://{}{path}", gw.addr);
        client.get(&url, &[]).await;
        let second = client.get(&url, &[]).await;
        assert!(
            second
                .header("cache-status")
                .contains(&format!("detail={reason}")),
            "{path}: {}",
            second.header("cache-status")
        );
        assert_eq!(origin.count(path), 2, "{path} must not be stored");
    }
}

#[tokio::test]
async fn respect_origin_uses_max_age_and_stores_nothing_without_freshness() {
    let origin = Origin::simple(|req| match req.uri.as_str() {
        "/origin/short" => respond(200, &[("cache-control", "public, max-age=5")], "short"),
        _ => respond(200, &[], "no freshness"),
    })
    .await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, CACHED), clock.clone()).await;
    let client = TestClient::new();
    let short = format!("http://{}/origin/short", gw.addr);
    client.get(&short, &[]).await;
    let hit = client.get(&short, &[]).await;
    // max-age=5 minus the apparent age from the origin's one-second Date.
    let ttl: i64 = hit
        .header("cache-status")
        .rsplit("ttl=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((4..=5).contains(&ttl), "{}", hit.header("cache-status"));
    clock.advance(Duration::from_secs(6));
    assert!(client
        .get(&short, &[])
        .await
        .header("cache-status")
        .contains("fwd=stale"));
    assert_eq!(origin.count("/origin/short"), 2);
    let none = format!("http://{}/origin/none", gw.addr);
    client.get(&none, &[]).await;
    let again = client.get(&none, &[]).await;
    assert!(again.header("cache-status").contains("detail=no-freshness"));
    assert_eq!(origin.count("/origin/none"), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_once_then_refreshes() {
    let origin = counting_origin().await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, CACHED), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/swr/item", gw.addr);
    assert_eq!(client.get(&url, &[]).await.text(), "/swr/item #1");
    clock.advance(Duration::from_secs(15));
    let stale = client.get(&url, &[]).await;
    assert_eq!(stale.text(), "/swr/item #1", "stale content served at once");
    assert!(
        stale
            .header("cache-status")
            .contains("detail=stale-while-revalidate"),
        "{}",
        stale.header("cache-status")
    );
    // The background refresh lands; the next request gets the new content fresh.
    eventually_async("the entry is refreshed in the background", || async {
        client.get(&url, &[]).await.text() == "/swr/item #2"
    })
    .await;
    let refreshed = client.get(&url, &[]).await;
    assert!(refreshed.header("cache-status").contains("hit"));
    assert_eq!(
        origin.count("/swr/item"),
        2,
        "exactly one background refresh"
    );
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_is_down_and_502_when_nothing_is_stored() {
    let origin = counting_origin().await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, CACHED), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/sie/item", gw.addr);
    assert_eq!(client.get(&url, &[]).await.text(), "/sie/item #1");
    origin.stop();
    clock.advance(Duration::from_secs(20));
    let stale = client.get(&url, &[]).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.text(), "/sie/item #1");
    assert!(
        stale
            .header("cache-status")
            .contains("detail=stale-if-error"),
        "{}",
        stale.header("cache-status")
    );
    let nothing = client
        .get(&format!("http://{}/sie/never-stored", gw.addr), &[])
        .await;
    assert_eq!(nothing.status, 502);
    assert_eq!(nothing.header("content-type"), "application/problem+json");
    assert!(
        nothing
            .text()
            .contains("urn:rampart:problem:upstream-unreachable"),
        "{}",
        nothing.text()
    );
}

#[tokio::test]
async fn stale_if_error_covers_origin_5xx() {
    let origin = Origin::simple(|req| {
        if req.nth == 1 {
            respond(200, &[], "good")
        } else {
            respond(503, &[], "down")
        }
    })
    .await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, CACHED), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/sie/x", gw.addr);
    client.get(&url, &[]).await;
    clock.advance(Duration::from_secs(11));
    let got = client.get(&url, &[]).await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "good"));
    // Past the stale-if-error window the error goes through.
    clock.advance(Duration::from_secs(7200));
    assert_eq!(client.get(&url, &[]).await.status, 503);
}

#[tokio::test]
async fn client_conditionals_get_304_and_stale_entries_revalidate() {
    let origin = Origin::simple(|req| {
        if req
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return respond(304, &[("etag", "\"v1\"")], "");
        }
        respond(
            200,
            &[
                ("etag", "\"v1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("content-type", "text/plain"),
            ],
            "body v1",
        )
    })
    .await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, CACHED), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/doc", gw.addr);
    // Even the first (miss) request's conditional is answered by the cache.
    let first = client.get(&url, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(first.status, 304);
    assert!(first.body.is_empty());
    assert_eq!(first.header("etag"), "\"v1\"");
    let by_date = client
        .get(
            &url,
            &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!(by_date.status, 304);
    let changed = client.get(&url, &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(
        (changed.status.as_u16(), changed.text().as_str()),
        (200, "body v1")
    );
    // Once stale, the cache revalidates with the origin and the origin's 304
    // makes the stored entry fresh again.
    clock.advance(Duration::from_secs(61));
    let revalidated = client.get(&url, &[]).await;
    assert_eq!(revalidated.text(), "body v1");
    assert_eq!(
        revalidated.header("cache-status"),
        "rampart; fwd=stale; fwd-status=304; stored"
    );
    assert!(client
        .get(&url, &[])
        .await
        .header("cache-status")
        .contains("hit"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0].2.get("if-none-match").is_none(),
        "the client's conditional is not forwarded on a fill"
    );
    assert_eq!(seen[1].2.get("if-none-match").unwrap(), "\"v1\"");
}

#[tokio::test]
async fn head_is_served_from_a_stored_get() {
    let origin = counting_origin().await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/h", gw.addr);
    let get = client.get(&url, &[]).await;
    let head = client
        .send("HEAD", &url, &[], rampart_gateway::body::empty())
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), get.body.len().to_string());
    assert!(head.header("cache-status").contains("hit"));
    // A HEAD miss fills the cache with a GET.
    let url2 = format!("http://{}/cached/h2", gw.addr);
    let head2 = client
        .send("HEAD", &url2, &[], rampart_gateway::body::empty())
        .await;
    assert!(head2.body.is_empty());
    assert_eq!(client.get(&url2, &[]).await.text(), "/cached/h2 #1");
    assert_eq!(origin.seen().iter().filter(|s| s.0 == "HEAD").count(), 0);
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_url() {
    let origin = counting_origin().await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/items/7", gw.addr);
    assert_eq!(client.get(&url, &[]).await.text(), "/items/7 #1");
    assert_eq!(client.get(&url, &[]).await.text(), "/items/7 #1");
    let post = client
        .send("POST", &url, &[], rampart_gateway::body::full("update"))
        .await;
    assert_eq!(post.status, 200);
    assert_eq!(client.get(&url, &[]).await.text(), "/items/7 #3");
    let metrics = client.metrics(&gw).await;
    assert!(
        metrics.contains(r#"rampart_purges_total{source="method"} 1"#)
            && metrics.contains(r#"rampart_purged_keys_total{source="method"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_count_cache_results() {
    let origin = counting_origin().await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/m", gw.addr);
    client.get(&url, &[]).await;
    client.get(&url, &[]).await;
    client.get(&url, &[]).await;
    let metrics = client.metrics(&gw).await;
    assert!(
        metrics.contains(
            r#"rampart_cache_results_total{route="GET /cached/*",result="hit",reason=""} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"rampart_cache_results_total{route="GET /cached/*",result="miss",reason=""} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"rampart_request_duration_seconds_count{route="GET /cached/*",method="GET",status="200"} 3"#), "{metrics}");
    assert!(metrics.contains("rampart_cache_l1_entries 1"), "{metrics}");
    assert!(
        metrics.contains(r#"rampart_cache_hits_total{route="GET /cached/*",tier="l1"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_upstream_duration_seconds_count"),
        "{metrics}"
    );
    // No series for a part that is not configured.
    assert!(!metrics.contains("rampart_redis_up"), "{metrics}");
    // Buckets on the round service-level targets the seeds use.
    for le in [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.2", "0.25", "0.5", "1.0", "2.5", "5.0",
    ] {
        let bucket = format!(
            r#"rampart_request_duration_seconds_bucket{{le="{le}",route="GET /cached/*",method="GET",status="200"}} 3"#
        );
        assert!(metrics.contains(&bucket), "{bucket}\n{metrics}");
    }
    // Connections by listener: this client's keep-alive connection is open.
    let open = |metrics: &str, listener: &str| -> i64 {
        let series =
            format!(r#"rampart_open_connections{{listener="{listener}",protocol="http"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series}\n{metrics}"))
    };
    assert!(open(&metrics, "public") >= 1, "{metrics}");
    assert!(open(&metrics, "admin") >= 1, "{metrics}");
    drop(client);
    let scraper = TestClient::new();
    rampart_testkit::eventually_async("closed connections are no longer counted", || async {
        open(&scraper.metrics(&gw).await, "public") == 0
    })
    .await;
    // What the build and the process are.
    let build = format!(
        "rampart_build_info{{version=\"{}\",commit=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&build), "{metrics}");
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_threads ",
        "process_start_time_seconds ",
    ] {
        assert!(metrics.contains(&format!("\n{name}")), "{name}\n{metrics}");
    }
}

#[tokio::test]
async fn clients_cannot_add_method_series_to_the_metrics() {
    let origin = counting_origin().await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/m", gw.addr);
    for method in ["FOO1", "FOO2", "FOO3"] {
        client
            .send(method, &url, &[], rampart_gateway::body::empty())
            .await;
    }
    client
        .send("DELETE", &url, &[], rampart_gateway::body::empty())
        .await;
    let metrics = client.metrics(&gw).await;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("rampart_request_duration_seconds_count"))
        .collect();
    assert!(
        series
            .iter()
            .any(|l| l.contains(r#"method="OTHER""#) && l.ends_with(" 3")),
        "{metrics}"
    );
    assert!(
        series.iter().any(|l| l.contains(r#"method="DELETE""#)),
        "{metrics}"
    );
    assert!(!metrics.contains("FOO"), "{metrics}");
}

#[tokio::test]
async fn a_keyed_route_never_hands_one_anonymous_visitors_cookie_to_another() {
    let origin = Origin::simple(|req| {
        let session = format!("session=s{}", req.nth);
        match req.headers.get("authorization") {
            Some(auth) => {
                let auth = auth.to_str().unwrap().to_string();
                respond(
                    200,
                    &[("set-cookie", &session)],
                    format!("private data for {auth}"),
                )
            }
            None => respond(
                200,
                &[("set-cookie", &session)],
                format!("welcome, visitor {}", req.nth),
            ),
        }
    })
    .await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let me = format!("http://{}/me", gw.addr);
    let first = client.get(&me, &[]).await;
    let second = client.get(&me, &[]).await;
    assert_ne!(
        first.header("set-cookie"),
        second.header("set-cookie"),
        "each visitor gets their own session"
    );
    assert!(
        second.header("cache-status").contains("detail=set-cookie"),
        "{}",
        second.header("cache-status")
    );
    // Keyed on the credential, the response is still not stored with its
    // Set-Cookie, whatever the key.
    let alice = client.get(&me, &[("authorization", "Bearer alice")]).await;
    let again = client.get(&me, &[("authorization", "Bearer alice")]).await;
    assert!(again.header("cache-status").contains("detail=set-cookie"));
    assert_ne!(again.header("set-cookie"), alice.header("set-cookie"));
    // A route that strips it stores the response per credential, cookie-less.
    let strip = CACHED.replace(
        "key = [\"header:authorization\"] }",
        "key = [\"header:authorization\"], set_cookie = \"strip\" }",
    );
    let gw = gateway(&config_text(origin.addr, &strip), Arc::new(SystemClock)).await;
    let me = format!("http://{}/me", gw.addr);
    let alice = client.get(&me, &[("authorization", "Bearer alice")]).await;
    assert!(
        alice.header("set-cookie").starts_with("session="),
        "the filling client keeps its cookie"
    );
    let again = client.get(&me, &[("authorization", "Bearer alice")]).await;
    assert_eq!(again.body, alice.body);
    assert!(again.header("cache-status").contains("hit"));
    assert_eq!(again.header("set-cookie"), "", "never replayed");
    assert_eq!(
        client
            .get(&me, &[("authorization", "Bearer bob")])
            .await
            .text(),
        "private data for Bearer bob"
    );
}

#[tokio::test]
async fn a_revalidation_that_forbids_storing_serves_the_body_once_and_drops_it() {
    let origin = Origin::simple(|req| {
        if req.nth == 1 {
            respond(
                200,
                &[("etag", "\"v1\""), ("content-type", "text/plain")],
                "body v1",
            )
        } else {
            respond(
                304,
                &[("etag", "\"v1\""), ("cache-control", "no-store")],
                "",
            )
        }
    })
    .await;
    let clock = Arc::new(ManualClock::new());
    let gw = gateway(&config_text(origin.addr, CACHED), clock.clone()).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/reval", gw.addr);
    client.get(&url, &[]).await;
    clock.advance(Duration::from_secs(61));
    let got = client.get(&url, &[]).await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "body v1"),
        "never a bare 304 to an unconditional request"
    );
    assert!(
        got.header("cache-status").contains("detail=no-store"),
        "{}",
        got.header("cache-status")
    );
    let next = client.get(&url, &[]).await;
    assert!(
        next.header("cache-status").contains("fwd=uri-miss"),
        "the entry was dropped: {}",
        next.header("cache-status")
    );
}

#[tokio::test]
async fn an_upstream_caches_status_is_kept_before_ours() {
    let origin =
        Origin::simple(|_| respond(200, &[("cache-status", "edge-origin; hit")], "x")).await;
    let gw = gateway(&config_text(origin.addr, CACHED), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/layered", gw.addr);
    assert_eq!(
        client.get(&url, &[]).await.header("cache-status"),
        "edge-origin; hit, rampart; fwd=uri-miss; fwd-status=200; stored"
    );
    assert!(client
        .get(&url, &[])
        .await
        .header("cache-status")
        .starts_with("edge-origin; hit, rampart; hit; ttl="));
}
