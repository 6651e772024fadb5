//! A shared cache nobody can poison: one user's or one URL's response is
//! never served for another, whatever a client puts in its request head.
//! Each test sends what an attacker would, over real sockets.

use std::sync::Arc;

use rampart_gateway::{Running, SystemClock};
use rampart_testkit::{config_text, gateway, raw_request, respond, Origin, TestClient};

const CACHED: &str = r#"
[[routes]]
match = "GET /*"
upstream = "app"
cache = { ttl = "1h" }
"#;

/// An origin that answers with what it was asked: path, Host, and the
/// named request header (saying it varies on that header).
async fn echo(header: &'static str) -> Origin {
    echo_varying(header, true).await
}

/// [`echo`], saying it varies on the header or not.
async fn echo_varying(header: &'static str, vary: bool) -> Origin {
    Origin::simple(move |req| {
        let host = req
            .headers
            .get("host")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        let value = req.headers.get(header).map_or("-".to_string(), |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        });
        let varies: &[(&str, &str)] = if vary { &[("vary", header)] } else { &[] };
        respond(
            200,
            varies,
            format!("{} host={host} {header}={value} #{}", req.uri, req.nth),
        )
    })
    .await
}

async fn cached_gateway(origin: &Origin, routes: &str) -> Running {
    gateway(&config_text(origin.addr, routes), Arc::new(SystemClock)).await
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[tokio::test]
async fn a_host_that_is_not_a_host_is_refused_before_it_reaches_a_key() {
    let origin = echo("x-none").await;
    let gw = cached_gateway(&origin, CACHED).await;
    for host in [
        "good.example/r/victim",
        "good.example?x=1",
        "good.example#f",
        "a b",
        "user@good.example",
    ] {
        let answer = raw_request(
            gw.addr,
            format!("GET /r/evil HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(status_line(&answer).contains(" 400 "), "{host}: {answer}");
        assert!(
            answer.contains("application/problem+json"),
            "{host}: {answer}"
        );
    }
    assert_eq!(origin.total(), 0, "nothing reached the origin");
    // The victim's URL is not stored with the attacker's body.
    let victim = TestClient::new()
        .get(
            &format!("http://{}/r/victim/r/evil", gw.addr),
            &[("host", "good.example")],
        )
        .await;
    assert!(
        victim.header("cache-status").contains("fwd=uri-miss"),
        "{}",
        victim.header("cache-status")
    );
}

#[tokio::test]
async fn two_hosts_or_none_get_400() {
    let origin = echo("x-none").await;
    let gw = cached_gateway(&origin, CACHED).await;
    let two = raw_request(
        gw.addr,
        b"GET /a HTTP/1.1\r\nHost: good.example\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&two).contains(" 400 "), "{two}");
    let none = raw_request(gw.addr, b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(status_line(&none).contains(" 400 "), "{none}");
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn connection_cannot_remove_what_the_key_was_chosen_by() {
    let origin = echo("accept-language").await;
    let gw = cached_gateway(&origin, CACHED).await;
    // The header the variant is chosen by, listed in Connection: gone
    // before the key is made, so the answer is stored as what it is.
    let sneaky = raw_request(
        gw.addr,
        b"GET /page HTTP/1.1\r\nHost: good.example\r\nAccept-Language: de\r\nConnection: close, accept-language\r\n\r\n",
    )
    .await;
    assert!(sneaky.contains("accept-language=-"), "{sneaky}");
    let german = TestClient::new()
        .get(
            &format!("http://{}/page", gw.addr),
            &[("host", "good.example"), ("accept-language", "de")],
        )
        .await;
    assert!(
        german.text().contains("accept-language=de"),
        "{}",
        german.text()
    );

    // Host listed in Connection still reaches the origin.
    let host = raw_request(
        gw.addr,
        b"GET /other HTTP/1.1\r\nHost: good.example\r\nConnection: close, host\r\n\r\n",
    )
    .await;
    assert!(host.contains("host=good.example"), "{host}");
}

#[tokio::test]
async fn an_http2_authority_is_the_host_the_origin_sees_and_the_key_holds() {
    let origin = echo("x-none").await;
    let gw = cached_gateway(&origin, CACHED).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://good.example/h2")
        .body(rampart_gateway::body::empty())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("host=good.example"),
        "{body:?}"
    );
    // The same entry answers an HTTP/1.1 client of that host.
    let h1 = TestClient::new()
        .get(
            &format!("http://{}/h2", gw.addr),
            &[("host", "good.example")],
        )
        .await;
    assert!(
        h1.header("cache-status").contains("hit"),
        "{}",
        h1.header("cache-status")
    );
    assert_eq!(origin.total(), 1);
}

#[tokio::test]
async fn vary_values_are_compared_as_bytes() {
    let origin = echo("x-user").await;
    let gw = cached_gateway(&origin, CACHED).await;
    for user in [&b"\xff\xfealice"[..], b"\xfd\xfcalice"] {
        let mut request =
            b"GET /me HTTP/1.1\r\nHost: good.example\r\nConnection: close\r\nX-User: ".to_vec();
        request.extend_from_slice(user);
        request.extend_from_slice(b"\r\n\r\n");
        raw_request(gw.addr, &request).await;
    }
    assert_eq!(origin.count("/me"), 2, "two users, two variants");
}

#[tokio::test]
async fn repeated_query_names_keep_their_order_in_the_key() {
    let origin = echo("x-none").await;
    let gw = cached_gateway(&origin, CACHED).await;
    let client = TestClient::new();
    let first = client
        .get(&format!("http://{}/q?id=1&id=2", gw.addr), &[])
        .await;
    let second = client
        .get(&format!("http://{}/q?id=2&id=1", gw.addr), &[])
        .await;
    assert_ne!(first.text(), second.text());
    assert!(second.header("cache-status").contains("fwd=uri-miss"));
    // Names in another order still share an entry.
    let a = client
        .get(&format!("http://{}/s?a=1&b=2", gw.addr), &[])
        .await;
    let b = client
        .get(&format!("http://{}/s?b=2&a=1", gw.addr), &[])
        .await;
    assert_eq!(a.text(), b.text());
}

#[tokio::test]
async fn a_request_with_cookies_bypasses_a_route_that_forces_a_ttl() {
    // The origin personalises on a cookie and does not say so.
    let origin = echo_varying("cookie", false).await;
    let gw = cached_gateway(&origin, CACHED).await;
    let client = TestClient::new();
    let url = format!("http://{}/home", gw.addr);
    let bob = client.get(&url, &[("cookie", "user=bob")]).await;
    assert!(bob.text().contains("cookie=user=bob"));
    let alice = client.get(&url, &[("cookie", "user=alice")]).await;
    assert!(
        alice.text().contains("cookie=user=alice"),
        "Bob's page went to Alice: {}",
        alice.text()
    );
    assert!(
        alice.header("cache-status").contains("detail=cookie"),
        "{}",
        alice.header("cache-status")
    );
    // Without cookies the route caches as before.
    client.get(&url, &[]).await;
    assert!(client
        .get(&url, &[])
        .await
        .header("cache-status")
        .contains("hit"));
    // A route may key on the cookies it depends on, or ignore them.
    let keyed = cached_gateway(
        &origin,
        "[[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = { ttl = \"1h\", cookies = [\"lang\"] }\n",
    )
    .await;
    let url = format!("http://{}/keyed", keyed.addr);
    let en = client.get(&url, &[("cookie", "lang=en; sid=1")]).await;
    let en_again = client.get(&url, &[("cookie", "sid=2; lang=en")]).await;
    let de = client.get(&url, &[("cookie", "lang=de")]).await;
    assert_eq!(en.text(), en_again.text(), "keyed on lang alone");
    assert_ne!(en.text(), de.text());
}

#[tokio::test]
async fn a_stored_response_never_carries_another_users_set_cookie() {
    let origin = Origin::simple(|req| {
        respond(
            200,
            &[("set-cookie", &format!("sid={}", req.nth))],
            format!("page #{}", req.nth),
        )
    })
    .await;
    let routes = "[[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = { ttl = \"1h\", key = [\"cookie:lang\"] }\n";
    let gw = cached_gateway(&origin, routes).await;
    let client = TestClient::new();
    let url = format!("http://{}/page", gw.addr);
    let first = client.get(&url, &[("cookie", "lang=en")]).await;
    assert_eq!(first.header("set-cookie"), "sid=1");
    let second = client.get(&url, &[("cookie", "lang=en")]).await;
    assert_ne!(second.header("set-cookie"), "sid=1", "a session fixation");

    // Stored without the cookie, when the route says so: the first client
    // still gets its own.
    let strip = cached_gateway(
        &origin,
        "[[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = { ttl = \"1h\", key = [\"cookie:lang\"], set_cookie = \"strip\" }\n",
    )
    .await;
    let url = format!("http://{}/strip", strip.addr);
    let filled = client.get(&url, &[("cookie", "lang=en")]).await;
    assert!(filled.header("set-cookie").starts_with("sid="));
    let hit = client.get(&url, &[("cookie", "lang=en")]).await;
    assert!(hit.header("cache-status").contains("hit"));
    assert_eq!(hit.header("set-cookie"), "");
}

#[tokio::test]
async fn rewrite_headers_from_clients_never_reach_the_origin() {
    let origin = echo("x-original-url").await;
    let gw = cached_gateway(&origin, CACHED).await;
    let client = TestClient::new();
    for name in ["x-original-url", "x-rewrite-url", "x-http-method-override"] {
        let got = client
            .get(
                &format!("http://{}/innocent-{name}", gw.addr),
                &[(name, "/admin")],
            )
            .await;
        assert_eq!(got.status, 200);
        let seen = origin.seen();
        let (_, _, headers) = seen.last().unwrap();
        assert!(!headers.contains_key(name), "{name} reached the origin");
    }
}
