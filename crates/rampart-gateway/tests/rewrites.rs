//! Virtual hosts, path rewrites, header edits and the `Host` sent upstream,
//! as a client and the origin see them.

use std::sync::Arc;

use rampart_gateway::SystemClock;
use rampart_testkit::{gateway, respond, Origin, TestClient};

/// An origin that answers with its name, the path it was asked for, and
/// the `Host` and `X-Env` it received.
async fn named(name: &'static str) -> Origin {
    Origin::simple(move |req| {
        let header = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        respond(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("server", "origin/1.0"),
                ("x-powered-by", "framework"),
            ],
            format!(
                "{name} {} host={} env={} debug={}",
                req.uri,
                header("host"),
                header("x-env"),
                header("x-debug")
            ),
        )
    })
    .await
}

fn upstreams(list: &[(&str, &Origin, &str)]) -> String {
    list.iter()
        .map(|(name, origin, extra)| {
            format!(
                "[[upstreams]]\nname = \"{name}\"\ntargets = [\"{}\"]\n{extra}\n",
                origin.addr
            )
        })
        .collect()
}

fn config(upstreams: &str, routes: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = false\n{upstreams}\n{routes}")
}

#[tokio::test]
async fn routes_match_exact_and_wildcard_hosts_before_the_catch_all() {
    let (api, tenants, rest) = (
        named("api").await,
        named("tenants").await,
        named("rest").await,
    );
    let text = config(
        &upstreams(&[
            ("api", &api, ""),
            ("tenants", &tenants, ""),
            ("rest", &rest, ""),
        ]),
        r#"
[[routes]]
match = "GET /*"
host = "api.example.com"
upstream = "api"

[[routes]]
name = "tenants"
match = "GET /*"
host = ["*.example.com", "example.org"]
upstream = "tenants"

[[routes]]
name = "rest"
match = "GET /*"
upstream = "rest"
"#,
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/x", gw.addr);
    let who = |host: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let got = client.get(&url, &[("host", host)]).await;
            got.text().split(' ').next().unwrap_or("").to_string()
        }
    };
    assert_eq!(who("api.example.com").await, "api");
    assert_eq!(who("API.Example.com:8080").await, "api");
    assert_eq!(who("shop.example.com").await, "tenants");
    assert_eq!(who("a.b.example.com").await, "tenants");
    assert_eq!(who("example.org").await, "tenants");
    assert_eq!(who("example.com").await, "rest");
    assert_eq!(who("evil-example.com").await, "rest");
}

#[tokio::test]
async fn a_host_only_route_answers_404_for_other_hosts() {
    let api = named("api").await;
    let text = config(
        &upstreams(&[("api", &api, "")]),
        "[[routes]]\nmatch = \"GET /*\"\nhost = \"api.example.com\"\nupstream = \"api\"\n",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(
            &format!("http://{}/x", gw.addr),
            &[("host", "other.example.com")],
        )
        .await;
    assert_eq!(got.status, 404);
    assert_eq!(got.header("content-type"), "application/problem+json");
    assert_eq!(api.total(), 0);
}

#[tokio::test]
async fn paths_are_stripped_or_rewritten_with_the_query_kept() {
    let app = named("app").await;
    let text = config(
        &upstreams(&[("app", &app, "")]),
        r#"
[[routes]]
match = "GET /api/*"
strip_prefix = "/api"
upstream = "app"

[[routes]]
match = "GET /u/{id}/*"
rewrite = "/v2/users/{id}/{rest}"
upstream = "app"
cache = { ttl = "1m" }
"#,
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let base = format!("http://{}", gw.addr);
    let got = client.get(&format!("{base}/api/users?page=2"), &[]).await;
    assert!(
        got.text().starts_with("app /users?page=2 "),
        "{}",
        got.text()
    );
    let got = client.get(&format!("{base}/api"), &[]).await;
    assert!(got.text().starts_with("app / "), "{}", got.text());

    let got = client.get(&format!("{base}/u/7/posts/3?full=1"), &[]).await;
    assert!(
        got.text().starts_with("app /v2/users/7/posts/3?full=1 "),
        "{}",
        got.text()
    );
    // Cached under the client's URL: the second request is a hit, and
    // another client URL is another entry even where it rewrites alike.
    let again = client.get(&format!("{base}/u/7/posts/3?full=1"), &[]).await;
    assert_eq!(again.text(), got.text());
    assert_eq!(app.count("/v2/users/7/posts/3"), 1);
    let other = client.get(&format!("{base}/u/8/posts/3?full=1"), &[]).await;
    assert!(
        other.text().starts_with("app /v2/users/8/posts/3"),
        "{}",
        other.text()
    );
}

#[tokio::test]
async fn request_and_response_headers_are_edited_on_hits_too() {
    let app = named("app").await;
    let text = config(
        &upstreams(&[("app", &app, "")]),
        r#"
[[routes]]
match = "GET /*"
upstream = "app"
cache = { ttl = "1m" }
request_headers = { set = { "X-Env" = "prod" }, remove = ["X-Debug"] }
response_headers = { set = { "Strict-Transport-Security" = "max-age=63072000" }, add = { "X-Served-By" = "rampart" }, remove = ["Server", "X-Powered-By"] }
"#,
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let url = format!("http://{}/page", gw.addr);
    let sent = [("x-debug", "1"), ("x-env", "dev")];
    for round in 0..2 {
        let got = client.get(&url, &sent).await;
        assert!(got.text().contains("env=prod"), "{}", got.text());
        assert!(got.text().contains("debug=-"), "{}", got.text());
        assert_eq!(got.header("strict-transport-security"), "max-age=63072000");
        assert_eq!(got.header("x-served-by"), "rampart");
        assert_eq!(got.header("server"), "", "round {round}");
        assert_eq!(got.header("x-powered-by"), "", "round {round}");
    }
    assert_eq!(app.count("/page"), 1, "the second was a hit");
}

#[tokio::test]
async fn the_host_sent_upstream_is_the_clients_the_targets_or_a_fixed_one() {
    let (keep, target, fixed) = (
        named("keep").await,
        named("target").await,
        named("fixed").await,
    );
    let text = config(
        &upstreams(&[
            ("keep", &keep, ""),
            ("target", &target, "host_header = \"target\""),
            ("fixed", &fixed, "host_header = \"api.internal\""),
        ]),
        r#"
[[routes]]
match = "GET /keep"
upstream = "keep"
[[routes]]
match = "GET /target"
upstream = "target"
[[routes]]
match = "GET /fixed"
upstream = "fixed"
"#,
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let host = [("host", "shop.example.com")];
    let base = format!("http://{}", gw.addr);
    let got = client.get(&format!("{base}/keep"), &host).await;
    assert!(
        got.text().contains("host=shop.example.com"),
        "{}",
        got.text()
    );
    let got = client.get(&format!("{base}/target"), &host).await;
    assert!(
        got.text().contains(&format!("host={}", target.addr)),
        "{}",
        got.text()
    );
    let got = client.get(&format!("{base}/fixed"), &host).await;
    assert!(got.text().contains("host=api.internal"), "{}", got.text());
}

#[test]
fn bad_rewrites_and_edits_are_config_errors_naming_the_field() {
    let base = "[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"app\"\n";
    for (route, field, says) in [
        (
            "match = \"GET /a\"\nrewrite = \"/b/{rest}\"",
            "routes[1].rewrite",
            "{rest}",
        ),
        (
            "match = \"GET /a/*\"\nrewrite = \"/b/{id}\"",
            "routes[1].rewrite",
            "{id}",
        ),
        (
            "match = \"GET /a/*\"\nrewrite = \"/b\"\nstrip_prefix = \"/a\"",
            "routes[1]",
            "not both",
        ),
        (
            "match = \"GET /a\"\nstrip_prefix = \"a\"",
            "routes[1].strip_prefix",
            "start with",
        ),
        (
            "match = \"GET /a\"\nrequest_headers = { set = { \"Content-Length\" = \"0\" } }",
            "routes[1].request_headers",
            "cannot be edited",
        ),
        (
            "match = \"GET /a\"\nrequest_headers = { remove = [\"Host\"] }",
            "routes[1].request_headers",
            "host_header",
        ),
        (
            "match = \"GET /a\"\nhost = \"http://x\"",
            "routes[1].host",
            "invalid host",
        ),
        (
            "match = \"GET /a\"\nhost = []",
            "routes[1].host",
            "at least one",
        ),
    ] {
        let text = format!("{base}{route}\n");
        let err = rampart_config::parse(&text, "t.toml")
            .expect_err(route)
            .to_string();
        assert!(err.contains(field), "{route}: {err}");
        assert!(err.contains(says), "{route}: {err}");
    }
    let text = base.replace(
        "targets = [\"127.0.0.1:1\"]",
        "targets = [\"127.0.0.1:1\"]\nhost_header = \"a b\"",
    ) + "match = \"GET /a\"\n";
    let err = rampart_config::parse(&text, "t.toml").expect_err("bad host_header");
    assert!(
        err.to_string().contains("upstreams[1].host_header"),
        "{err}"
    );
}
