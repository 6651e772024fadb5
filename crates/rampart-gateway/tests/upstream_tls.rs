//! TLS to upstreams: a private CA, a wrong CA (502 problem+json naming
//! nothing internal), SNI override, mutual TLS, HTTP/2 by ALPN, and the
//! explicitly named way to skip verification.

use std::sync::Arc;

use rampart_gateway::SystemClock;
use rampart_testkit::tls::{https_origin, TestCa};
use rampart_testkit::{gateway, TempDir, TestClient};

fn config(target: std::net::SocketAddr, tls: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = false\n\
         [[upstreams]]\nname = \"secure\"\ntargets = [\"https://{target}\"]\n{tls}\n\
         [[routes]]\nmatch = \"GET /*\"\nupstream = \"secure\"\n"
    )
}

#[tokio::test]
async fn a_private_ca_is_trusted_and_h2_is_spoken_where_offered() {
    let dir = TempDir::new("ca");
    let ca = TestCa::new("Origin CA");
    let leaf = ca.leaf(&dir.path, "origin", &["origin.internal"], 2099);
    let ca_file = ca.write(&dir.path, "ca.pem");
    let (addr, seen) = https_origin(&leaf, &["h2", "http/1.1"], None).await;
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"origin.internal\" }}",
        ca_file.display()
    );
    let gw = gateway(&config(addr, &tls), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/x", gw.addr), &[])
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "secure");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, http::Version::HTTP_2, "ALPN chose h2");
    assert_eq!(seen[0].sni.as_deref(), Some("origin.internal"));

    // An origin that offers only HTTP/1.1 gets HTTP/1.1.
    let (addr, seen) = https_origin(&leaf, &["http/1.1"], None).await;
    let gw = gateway(&config(addr, &tls), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/x", gw.addr), &[])
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        seen.lock().expect("lock")[0].version,
        http::Version::HTTP_11
    );
}

#[tokio::test]
async fn a_wrong_ca_is_a_502_problem_that_names_nothing_internal() {
    let dir = TempDir::new("wrong");
    let ca = TestCa::new("Origin CA");
    let other = TestCa::new("Some Other CA");
    let leaf = ca.leaf(&dir.path, "origin", &["origin.internal"], 2099);
    let other_file = other.write(&dir.path, "other.pem");
    let (addr, seen) = https_origin(&leaf, &["http/1.1"], None).await;
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"origin.internal\" }}",
        other_file.display()
    );
    let gw = gateway(&config(addr, &tls), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/x", gw.addr), &[])
        .await;
    assert_eq!(got.status, 502, "{}", got.text());
    assert_eq!(got.header("content-type"), "application/problem+json");
    let body = got.text();
    assert!(!body.contains(&addr.to_string()), "{body}");
    assert!(!body.contains("127.0.0.1"), "{body}");
    assert!(!body.to_lowercase().contains("certificate"), "{body}");
    assert!(
        seen.lock().expect("lock").is_empty(),
        "no request reached it"
    );

    // Only the loudly named option skips verification.
    let tls = "tls = { danger_accept_invalid_certs = true }";
    let gw = gateway(&config(addr, tls), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/x", gw.addr), &[])
        .await;
    assert_eq!(got.status, 200);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let dir = TempDir::new("mtls");
    let ca = TestCa::new("Origin CA");
    let clients = TestCa::new("Client CA");
    let leaf = ca.leaf(&dir.path, "origin", &["origin.internal"], 2099);
    let client = clients.leaf(&dir.path, "rampart", &["rampart.client"], 2099);
    let ca_file = ca.write(&dir.path, "ca.pem");
    let (addr, seen) = https_origin(&leaf, &["http/1.1"], Some(clients.der())).await;

    let without = format!(
        "tls = {{ ca = \"{}\", server_name = \"origin.internal\" }}",
        ca_file.display()
    );
    let gw = gateway(&config(addr, &without), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/x", gw.addr), &[])
        .await;
    assert_eq!(got.status, 502, "refused without a client certificate");

    let with = format!(
        "tls = {{ ca = \"{}\", server_name = \"origin.internal\", cert = \"{}\", key = \"{}\" }}",
        ca_file.display(),
        client.cert.display(),
        client.key.display()
    );
    let gw = gateway(&config(addr, &with), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/x", gw.addr), &[])
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(seen.lock().expect("lock").iter().all(|s| s.client_cert));
}

#[test]
fn upstream_tls_mistakes_are_config_or_check_errors() {
    let base = |targets: &str, tls: &str| {
        format!(
            "[[upstreams]]\nname = \"u\"\ntargets = {targets}\n{tls}\n[[routes]]\nmatch = \"GET /\"\nupstream = \"u\"\n"
        )
    };
    for (text, says) in [
        (
            base("[\"https://a:443\", \"b:80\"]", ""),
            "all https:// or all plain",
        ),
        (
            base("[\"a:80\"]", "tls = { ca = \"ca.pem\" }"),
            "tls needs https:// targets",
        ),
        (
            base("[\"https://a:443\"]", "tls = { cert = \"c.pem\" }"),
            "needs its key",
        ),
    ] {
        let err = rampart_config::parse(&text, "t.toml").expect_err(says);
        assert!(err.to_string().contains(says), "{err}");
    }
    let missing = base(
        "[\"https://a:443\"]",
        "tls = { ca = \"/nonexistent/ca.pem\" }",
    );
    let config = rampart_config::parse(&missing, "t.toml").expect("valid text");
    let err = rampart_gateway::check_tls(&config).expect_err("missing CA file");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
