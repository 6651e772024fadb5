//! Compression: stored once per coding, negotiated per request.

use std::io::Read;
use std::sync::Arc;

use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, gateway, respond, Origin, TestClient};

const ROUTES: &str = r#"
[[routes]]
match = "GET /cached/*"
upstream = "app"
cache = { ttl = "60s" }

[[routes]]
match = "* /*"
upstream = "app"
"#;

fn page() -> String {
    "<p>Rampart caches and compresses this page.</p>\n".repeat(200)
}

fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(data).unwrap(),
        "" => out = data.to_vec(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

async fn origin() -> Origin {
    Origin::simple(|req| {
        if req
            .headers
            .get("accept-encoding")
            .is_some_and(|v| v != "identity")
            && req.uri.starts_with("/cached")
        {
            panic!("fills ask the origin for identity");
        }
        match req.uri.as_str() {
            p if p.ends_with("/small") => {
                respond(200, &[("content-type", "text/html")], "<p>tiny</p>")
            }
            p if p.ends_with("/medium") => respond(
                200,
                &[("content-type", "text/html")],
                "<p>medium</p>".repeat(20),
            ),
            p if p.ends_with("/png") => {
                respond(200, &[("content-type", "image/png")], vec![0u8; 4096])
            }
            _ => respond(
                200,
                &[
                    ("content-type", "text/html; charset=utf-8"),
                    ("etag", "\"p1\""),
                ],
                page(),
            ),
        }
    })
    .await
}

#[tokio::test]
async fn stored_codings_round_trip_for_each_client() {
    let origin = origin().await;
    let gw = gateway(&config_text(origin.addr, ROUTES), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/page", gw.addr);
    for (accept, expected) in [
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("zstd;q=1, br;q=0.5", "zstd"),
        ("br;q=0, gzip;q=0.8", "gzip"),
        ("identity", ""),
        ("", ""),
    ] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept-encoding", accept)]
        };
        let got = client.get(&url, &headers).await;
        assert_eq!(
            got.header("content-encoding"),
            expected,
            "Accept-Encoding: {accept}"
        );
        assert_eq!(got.header("vary"), "Accept-Encoding");
        assert_eq!(got.header("content-length"), got.body.len().to_string());
        assert_eq!(
            String::from_utf8(decode(expected, &got.body)).unwrap(),
            page(),
            "Accept-Encoding: {accept}"
        );
        if !expected.is_empty() {
            assert!(got.body.len() < page().len() / 5);
            assert_eq!(
                got.header("etag"),
                "W/\"p1\"",
                "a re-encoded representation has a weak validator"
            );
        }
    }
    assert_eq!(
        origin.count("/cached/page"),
        1,
        "compressed once, at store time"
    );
}

/// Bytes the memory tier charges, read through the admin API.
async fn l1_bytes(client: &TestClient, gw: &rampart_gateway::Running) -> u64 {
    let admin = format!("http://{}", gw.admin_addr.unwrap());
    let stats = client
        .get(
            &format!("{admin}/admin/cache/stats"),
            &[("authorization", "Bearer test-token")],
        )
        .await
        .text();
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    stats["l1"]["bytes"].as_u64().unwrap()
}

#[tokio::test]
async fn each_coding_is_made_once_when_a_client_first_asks_for_it() {
    let origin = origin().await;
    let gw = gateway(&config_text(origin.addr, ROUTES), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/cached/page", gw.addr);
    let get = |accept: &'static str| {
        let (client, url) = (&client, &url);
        async move { client.get(url, &[("accept-encoding", accept)]).await }
    };
    // A miss for a client that wants no coding stores the body alone.
    assert_eq!(get("identity").await.header("content-encoding"), "");
    let identity_only = l1_bytes(&client, &gw).await;
    assert_eq!(get("identity").await.header("content-encoding"), "");
    assert_eq!(
        l1_bytes(&client, &gw).await,
        identity_only,
        "no coding is made that nobody asked for"
    );
    // The first client asking for gzip gets it, and it is kept.
    let gzip = get("gzip").await;
    assert_eq!(gzip.header("content-encoding"), "gzip");
    assert!(gzip.header("cache-status").contains("hit"));
    let with_gzip = l1_bytes(&client, &gw).await;
    assert!(
        with_gzip >= identity_only + gzip.body.len() as u64,
        "{with_gzip} after {identity_only}"
    );
    assert_eq!(get("gzip").await.body, gzip.body);
    assert_eq!(l1_bytes(&client, &gw).await, with_gzip, "made once");
    // A client preferring br gets br; gzip stays.
    assert_eq!(
        get("br;q=1, gzip;q=0.5").await.header("content-encoding"),
        "br"
    );
    assert!(l1_bytes(&client, &gw).await > with_gzip);
    assert_eq!(get("gzip").await.header("content-encoding"), "gzip");
    assert_eq!(origin.count("/cached/page"), 1);
}

#[tokio::test]
async fn small_and_incompressible_bodies_are_sent_as_they_are() {
    let origin = origin().await;
    let gw = gateway(&config_text(origin.addr, ROUTES), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    for path in [
        "/cached/small",
        "/cached/medium",
        "/cached/png",
        "/small",
        "/medium",
        "/png",
    ] {
        let got = client
            .get(
                &format!("http://{}{path}", gw.addr),
                &[("accept-encoding", "br, gzip")],
            )
            .await;
        assert_eq!(got.header("content-encoding"), "", "{path}");
    }
}

#[tokio::test]
async fn passed_through_responses_compress_while_streaming() {
    let origin = origin().await;
    let gw = gateway(&config_text(origin.addr, ROUTES), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    for coding in ["gzip", "br", "zstd"] {
        let got = client
            .get(
                &format!("http://{}/live", gw.addr),
                &[("accept-encoding", coding)],
            )
            .await;
        assert_eq!(got.header("content-encoding"), coding);
        assert_eq!(got.header("vary"), "Accept-Encoding");
        assert_eq!(
            String::from_utf8(decode(coding, &got.body)).unwrap(),
            page()
        );
    }
}

#[tokio::test]
async fn compression_can_be_turned_off_per_route_and_min_size_is_configurable() {
    let origin = origin().await;
    let routes = "[[routes]]\nmatch = \"/raw\"\nupstream = \"app\"\ncompress = false\n\n[[routes]]\nmatch = \"* /*\"\nupstream = \"app\"\ncache = { ttl = \"60s\" }\n";
    let text = config_text(origin.addr, routes).replace(
        "[log]",
        "[compression]\nmin_size = \"8\"\nalgorithms = [\"gzip\"]\n\n[log]",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let raw = client
        .get(
            &format!("http://{}/raw", gw.addr),
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(raw.header("content-encoding"), "");
    let medium = client
        .get(
            &format!("http://{}/x/medium", gw.addr),
            &[("accept-encoding", "br, gzip")],
        )
        .await;
    assert_eq!(
        medium.header("content-encoding"),
        "gzip",
        "8-byte minimum, gzip only"
    );
    assert_eq!(
        String::from_utf8(decode("gzip", &medium.body)).unwrap(),
        "<p>medium</p>".repeat(20)
    );
}
