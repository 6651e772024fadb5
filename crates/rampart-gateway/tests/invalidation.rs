//! Tags, the purge API and domain events on one node, over real sockets.

use std::sync::Arc;

use rampart_gateway::body::full;
use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, gateway, respond, Origin, TestClient};

const ROUTES: &str = r#"
[[routes]]
match = "GET /events/{id}/guests"
upstream = "app"
cache = { ttl = "1h", tags = ["event:{id}:guests"] }

[[routes]]
match = "GET /events/{id}"
upstream = "app"
cache = { ttl = "1h", tags = ["event:{id}", "org:{query.org}"] }

[[routes]]
match = "GET /*"
upstream = "app"
cache = { ttl = "1h" }

[[events]]
name = "event.updated"
purge_tags = ["event:{id}", "events:list"]

[[events]]
name = "guest.registered"
purge_tags = ["event:{event.id}:guests"]
"#;

async fn setup() -> (Origin, rampart_gateway::Running) {
    let origin = Origin::simple(|req| {
        let tags: &[(&str, &str)] = match req.uri.as_str() {
            "/events" => &[("surrogate-key", "events:list  home")],
            "/pricing" => &[("cache-tag", "pricing, home")],
            _ => &[],
        };
        respond(200, tags, format!("{} #{}", req.uri, req.nth))
    })
    .await;
    let text = config_text(origin.addr, ROUTES).replace(
        "token = \"test-token\"",
        "token = \"test-token\"\nwebhook_secret = \"webhook-s3cret\"",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    (origin, gw)
}

const AUTH: (&str, &str) = ("authorization", "Bearer test-token");

async fn post(
    client: &TestClient,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> rampart_testkit::Got {
    client
        .send("POST", url, headers, full(body.to_string()))
        .await
}

#[tokio::test]
async fn tags_from_routes_and_origin_purge_exactly_what_they_cover() {
    let (origin, gw) = setup().await;
    let client = TestClient::new();
    let get = |path: &str| {
        let (client, url) = (client.clone(), format!("http://{}{path}", gw.addr));
        async move { client.get(&url, &[]).await }
    };
    for p in [
        "/events/1",
        "/events/2?org=acme",
        "/events/1/guests",
        "/events",
        "/pricing",
        "/about",
    ] {
        let first = get(p).await;
        assert!(first.text().ends_with("#1"));
        assert!(
            first.header("surrogate-key").is_empty() && first.header("cache-tag").is_empty(),
            "the origin's tag headers are not shown to clients"
        );
        assert!(
            get(p).await.header("cache-status").contains("hit"),
            "{p} is cached"
        );
    }
    let admin = format!("http://{}", gw.admin_addr.unwrap());
    // The tag index: event:1, event:2, org:acme, event:1:guests, and from
    // the origin events:list, home and pricing.
    let stats: serde_json::Value = serde_json::from_str(
        &client
            .get(&format!("{admin}/admin/cache/stats"), &[AUTH])
            .await
            .text(),
    )
    .unwrap();
    let metrics = client.get(&format!("{admin}/metrics"), &[]).await.text();
    let tags = &stats["l1"]["tags"];
    assert_eq!(tags, 7, "{stats}");
    assert_eq!(stats["l1"]["tag_links"], 8, "home covers two: {stats}");
    assert!(
        metrics.contains(&format!("rampart_cache_l1_tags {tags}\n")),
        "{stats} {metrics}"
    );
    let purge = |body: &'static str| {
        let (client, url) = (client.clone(), format!("{admin}/admin/purge"));
        async move { post(&client, &url, &[AUTH], body).await }
    };

    // A route tag: only event 1 itself, not its guest list nor event 2.
    let r = purge(r#"{"tags": ["event:1"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"total\":1"), "{}", r.text());
    assert!(get("/events/1").await.text().ends_with("#2"));
    assert!(get("/events/1/guests")
        .await
        .header("cache-status")
        .contains("hit"));
    assert!(get("/events/2?org=acme")
        .await
        .header("cache-status")
        .contains("hit"));

    // A tag from the query, and tags from Surrogate-Key / Cache-Tag.
    assert!(purge(r#"{"tags": ["org:acme"]}"#)
        .await
        .text()
        .contains("\"total\":1"));
    assert!(get("/events/2?org=acme").await.text().ends_with("#2"));
    let r = purge(r#"{"tags": ["home"]}"#).await;
    assert!(r.text().contains("\"total\":2"), "{}", r.text());
    assert!(get("/events").await.text().ends_with("#2"));
    assert!(get("/pricing").await.text().ends_with("#2"));
    assert!(
        get("/about").await.header("cache-status").contains("hit"),
        "untagged entries stay"
    );

    // By path (any host) and by prefix.
    assert!(purge(r#"{"keys": ["/about"]}"#)
        .await
        .text()
        .contains("\"total\":1"));
    assert!(get("/about").await.text().ends_with("#2"));
    let r = purge(r#"{"prefixes": ["/events/"]}"#).await;
    assert!(r.text().contains("\"prefixes\":3"), "{}", r.text());
    assert_eq!(origin.count("/events/1/guests"), 1);
    assert!(get("/events/1/guests").await.text().ends_with("#2"));

    let stats = client
        .get(&format!("{admin}/admin/cache/stats"), &[AUTH])
        .await;
    assert_eq!(stats.status, 200);
    assert!(stats.text().contains("\"entries\":"), "{}", stats.text());
}

#[tokio::test]
async fn bad_or_unauthorized_purges_change_nothing() {
    let (_origin, gw) = setup().await;
    let client = TestClient::new();
    let page = format!("http://{}/events/1", gw.addr);
    client.get(&page, &[]).await;
    let url = format!("http://{}/admin/purge", gw.admin_addr.unwrap());
    let body = r#"{"tags": ["event:1"]}"#;
    for (headers, expect) in [
        (vec![], 401),
        (vec![("authorization", "Bearer wrong")], 401),
        (vec![("authorization", "Bearer test-token-but-longer")], 401),
    ] {
        let r = post(&client, &url, &headers, body).await;
        assert_eq!(r.status, expect);
    }
    for bad in [
        r#"{"tagz": ["event:1"]}"#,
        "not json",
        "{}",
        r#"{"keys": ["no-slash"], "tags": ["event:1"]}"#,
    ] {
        let r = post(&client, &url, &[AUTH], bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.header("content-type"), "application/problem+json");
    }
    assert!(
        client
            .get(&page, &[])
            .await
            .header("cache-status")
            .contains("hit"),
        "nothing was purged"
    );
}

#[tokio::test]
async fn events_purge_by_template_with_a_token_or_a_signature() {
    let (_origin, gw) = setup().await;
    let client = TestClient::new();
    let get = |path: &str| {
        let (client, url) = (client.clone(), format!("http://{}{path}", gw.addr));
        async move { client.get(&url, &[]).await }
    };
    for p in ["/events/7", "/events/8", "/events/7/guests", "/events"] {
        get(p).await;
    }
    let admin = format!("http://{}", gw.admin_addr.unwrap());
    let r = post(
        &client,
        &format!("{admin}/admin/events/event.updated"),
        &[AUTH],
        r#"{"id": 7}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("\"total\":2"),
        "event:7 and events:list: {}",
        r.text()
    );
    assert!(get("/events/7").await.text().ends_with("#2"));
    assert!(get("/events").await.text().ends_with("#2"));
    assert!(get("/events/8")
        .await
        .header("cache-status")
        .contains("hit"));
    assert!(get("/events/7/guests")
        .await
        .header("cache-status")
        .contains("hit"));

    // Signed by the application with the webhook secret.
    let body = r#"{"event": {"id": "7"}, "guest": "ana"}"#;
    let signature = "sha256=".to_string() + &hmac_hex("webhook-s3cret", body);
    let url = format!("{admin}/admin/events/guest.registered");
    let r = post(&client, &url, &[("x-rampart-signature", &signature)], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(get("/events/7/guests").await.text().ends_with("#2"));

    // Errors purge nothing.
    get("/events/7/guests").await;
    let bad_sig = "sha256=".to_string() + &hmac_hex("wrong", body);
    for (path, headers, body, status) in [
        (
            "guest.registered",
            vec![("x-rampart-signature", bad_sig.as_str())],
            body,
            401,
        ),
        ("guest.registered", vec![], body, 401),
        ("guest.unknown", vec![AUTH], body, 404),
        ("guest.registered", vec![AUTH], r#"{"guest": "ana"}"#, 422),
        ("guest.registered", vec![AUTH], "[1, 2]", 400),
    ] {
        let r = post(
            &client,
            &format!("{admin}/admin/events/{path}"),
            &headers,
            body,
        )
        .await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert_eq!(r.header("content-type"), "application/problem+json");
    }
    assert!(get("/events/7/guests")
        .await
        .header("cache-status")
        .contains("hit"));
}

/// HMAC-SHA256 written out from its definition (RFC 2104), so the test does
/// not share code with the implementation it checks.
fn hmac_hex(key: &str, message: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key.as_bytes());
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(message.bytes()).collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner).collect();
    Sha256::digest(&outer)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What is stored can be seen without changing it: one URL's variants with
/// their headers, age, time to live, stale windows, tags and size; and a
/// listing by prefix or tag, a page at a time.
#[tokio::test]
async fn the_cache_can_be_inspected() {
    let (_origin, gw) = setup().await;
    let client = TestClient::new();
    for p in ["/events/1", "/events/2?org=acme", "/events", "/pricing"] {
        client.get(&format!("http://{}{p}", gw.addr), &[]).await;
    }
    let admin = format!("http://{}", gw.admin_addr.unwrap());
    let get = |path: &str, auth: bool| {
        let (client, url) = (client.clone(), format!("{admin}{path}"));
        async move {
            let headers: &[(&str, &str)] = if auth { &[AUTH] } else { &[] };
            client.get(&url, headers).await
        }
    };
    assert_eq!(
        get("/admin/cache/entry?url=/events/1", false).await.status,
        401
    );

    let got = get("/admin/cache/entry?url=%2Fevents%2F1", true).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let key = &v["keys"][0];
    assert!(key["url"].as_str().unwrap().ends_with("/events/1"), "{v}");
    assert_eq!(key["tier"], "l1");
    let variant = &key["variants"][0];
    assert_eq!(variant["status"], 200);
    assert_eq!(variant["state"], "fresh");
    assert_eq!(variant["tags"], serde_json::json!(["event:1"]));
    assert_eq!(variant["size_bytes"], "/events/1 #1".len());
    let ttl = variant["ttl_secs"].as_i64().unwrap();
    assert!((3590..=3600).contains(&ttl), "{v}");
    assert!(variant["headers"].is_object(), "{v}");

    let missing = get("/admin/cache/entry?url=/never", true).await;
    assert_eq!(missing.status, 404);
    assert_eq!(get("/admin/cache/entry", true).await.status, 400);

    // Everything under /events, one at a time.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            &format!("/admin/cache/entries?prefix=/events&limit=1{cursor}"),
            true,
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.text());
        let v: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
        for e in v["entries"].as_array().unwrap() {
            seen.push(e["url"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={}", url_escape(next)),
            None => break,
        }
        assert!(seen.len() <= 3, "{seen:?}");
    }
    let paths: Vec<&str> = seen
        .iter()
        .map(|u| &u[u.find("/events").unwrap()..])
        .collect();
    assert_eq!(paths, ["/events", "/events/1", "/events/2?org=acme"]);

    let tagged = get("/admin/cache/entries?tag=home", true).await;
    let v: serde_json::Value = serde_json::from_slice(&tagged.body).unwrap();
    let urls: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), 2, "{v}");
    assert!(urls.iter().any(|u| u.ends_with("/pricing")), "{v}");
    assert_eq!(
        get("/admin/cache/entries?limit=5000", true).await.status,
        400
    );
}

/// Percent-encodes a query value.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A glob purges every URL it matches and nothing else.
#[tokio::test]
async fn globs_purge_what_they_match() {
    let (_origin, gw) = setup().await;
    let client = TestClient::new();
    let get = |path: &str| {
        let (client, url) = (client.clone(), format!("http://{}{path}", gw.addr));
        async move { client.get(&url, &[]).await.text() }
    };
    for p in [
        "/events/1/guests",
        "/events/2/guests",
        "/events/1",
        "/pricing",
    ] {
        assert!(get(p).await.ends_with("#1"));
    }
    let url = format!("http://{}/admin/purge", gw.admin_addr.unwrap());
    let r = post(&client, &url, &[AUTH], r#"{"globs": ["/events/*/guests"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"total\":2"), "{}", r.text());
    assert!(get("/events/1/guests").await.ends_with("#2"));
    assert!(get("/events/2/guests").await.ends_with("#2"));
    assert!(get("/events/1").await.ends_with("#1"), "not matched, kept");
    assert!(get("/pricing").await.ends_with("#1"));
    let bad = post(&client, &url, &[AUTH], r#"{"globs": ["events/*"]}"#).await;
    assert_eq!(bad.status, 400, "{}", bad.text());
}
