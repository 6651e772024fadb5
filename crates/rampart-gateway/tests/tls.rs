//! TLS on the public listener, with certificates made in the test and a
//! real TLS client: HTTP/1.1 and HTTP/2 by ALPN, cache hits, SNI, session
//! resumption, HSTS, the redirect listener, certificates re-read on reload,
//! and bad files refused.

use std::path::Path;
use std::sync::Arc;

use rampart_gateway::SystemClock;
use rampart_testkit::tls::{self, TestCa};
use rampart_testkit::{respond, Origin, TempDir, TestClient};

async fn origin() -> Origin {
    Origin::simple(|req| {
        let proto = req
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        respond(
            200,
            &[("cache-control", "max-age=60")],
            format!("{} proto={proto} n={}", req.uri, req.nth),
        )
    })
    .await
}

fn config(origin: &Origin, tls: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{tls}

[admin]
listen = "127.0.0.1:0"
token = "test-token"

[log]
access = false

[[upstreams]]
name = "app"
targets = ["{}"]

[[routes]]
match = "GET /*"
upstream = "app"
cache = {{ ttl = "1m" }}
"#,
        origin.addr
    )
}

fn tls_table(default: &tls::Leaf, extra: &[(&str, &tls::Leaf)], more: &str) -> String {
    let mut text = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n{more}\n",
        default.cert.display(),
        default.key.display()
    );
    for (host, leaf) in extra {
        text.push_str(&format!(
            "[[server.tls.certs]]\nhosts = [\"{host}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
            leaf.cert.display(),
            leaf.key.display()
        ));
    }
    text
}

async fn start_file(dir: &Path, text: &str) -> rampart_gateway::Running {
    let path = dir.join("rampart.toml");
    std::fs::write(&path, text).expect("write config");
    let config = rampart_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    rampart_gateway::start_from(&config, Arc::new(SystemClock), Some(path))
        .await
        .expect("gateway starts")
}

/// A gateway serving `site.test` over TLS with a certificate of a CA made
/// in the test, in front of [`origin`].
struct Site {
    dir: TempDir,
    ca: TestCa,
    leaf: tls::Leaf,
    origin: Origin,
    gw: rampart_gateway::Running,
}

impl Site {
    async fn start(name: &str) -> Self {
        Self::start_with(name, "").await
    }

    /// With `server` (lines of the `[server]` table) added.
    async fn start_with(name: &str, server: &str) -> Self {
        let dir = TempDir::new(name);
        let ca = TestCa::new("Rampart Test CA");
        let leaf = ca.leaf(&dir.path, "site", &["site.test"], 2099);
        let origin = origin().await;
        let server = format!("{server}\n{}", tls_table(&leaf, &[], ""));
        let gw = start_file(&dir.path, &config(&origin, &server)).await;
        Self {
            dir,
            ca,
            leaf,
            origin,
            gw,
        }
    }
}

#[tokio::test]
async fn h1_and_h2_over_tls_by_alpn_with_cache_hits_and_hsts() {
    let dir = TempDir::new("alpn");
    let ca = TestCa::new("Rampart Test CA");
    let leaf = ca.leaf(&dir.path, "site", &["site.test"], 2099);
    let origin = origin().await;
    let hsts = "hsts = \"max-age=63072000; includeSubDomains\"";
    let gw = start_file(&dir.path, &config(&origin, &tls_table(&leaf, &[], hsts))).await;

    let h2 = tls::client(&[ca.der()], &["h2", "http/1.1"]);
    let got = tls::get(&h2, gw.addr, "site.test", "/page").await;
    assert_eq!(got.alpn.as_deref(), Some("h2"));
    assert_eq!(got.version, http::Version::HTTP_2);
    assert_eq!(got.status, 200);
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert!(body.contains("proto=https"), "{body}");
    assert_eq!(
        got.headers["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );

    let h1 = tls::client(&[ca.der()], &["http/1.1"]);
    let again = tls::get(&h1, gw.addr, "site.test", "/page").await;
    assert_eq!(again.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(again.version, http::Version::HTTP_11);
    assert_eq!(again.body, got.body, "a hit over TLS");
    assert_eq!(origin.count("/page"), 1);

    // A second connection with the same client resumes the session.
    let resumed = tls::get(&h1, gw.addr, "site.test", "/page").await;
    assert!(resumed.resumed, "the session was resumed");

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest_free_plain(gw.addr).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
}

/// A plain HTTP/1.1 request on a socket; whatever comes back (or nothing).
async fn reqwest_free_plain(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = s
        .write_all(b"GET /page HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn sni_selects_the_certificate_and_unknown_names_get_the_default() {
    let dir = TempDir::new("sni");
    let ca = TestCa::new("Rampart Test CA");
    let default = ca.leaf(&dir.path, "default", &["default.test"], 2099);
    let api = ca.leaf(&dir.path, "api", &["api.example.test"], 2099);
    let tenants = ca.leaf(&dir.path, "tenants", &["*.tenants.test"], 2099);
    let origin = origin().await;
    let tls_text = tls_table(
        &default,
        &[("api.example.test", &api), ("*.tenants.test", &tenants)],
        "",
    );
    let gw = start_file(&dir.path, &config(&origin, &tls_text)).await;
    let client = tls::client(&[ca.der()], &["http/1.1"]);
    let presented = |name: &'static str| {
        let client = Arc::clone(&client);
        let addr = gw.addr;
        async move { tls::get(&client, addr, name, "/").await.peer_cert }
    };
    assert_eq!(presented("api.example.test").await, Some(api.der.clone()));
    assert_eq!(
        presented("shop.tenants.test").await,
        Some(tenants.der.clone())
    );
    assert_eq!(presented("default.test").await, Some(default.der.clone()));
    // A client asking for a name no certificate has gets the default one,
    // which it then refuses to trust for that name.
    let other = tls::try_get(&client, gw.addr, "elsewhere.test", "/").await;
    assert!(other.is_err(), "{other:?}");

    let metrics = TestClient::new().metrics(&gw).await;
    assert!(
        metrics.contains("rampart_tls_certificate_expiry_seconds{file=\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reload_reads_renewed_certificates() {
    let Site {
        dir,
        ca,
        leaf: old,
        origin: _origin,
        gw,
    } = Site::start("renew").await;
    let client = tls::client(&[ca.der()], &["http/1.1"]);
    let before = tls::get(&client, gw.addr, "site.test", "/").await;
    assert_eq!(before.peer_cert, Some(old.der.clone()));

    // The same paths, a new certificate (as certbot renews in place).
    let new = ca.leaf(&dir.path, "site", &["site.test"], 2098);
    assert_ne!(new.der, old.der);
    gw.reload_file().await.expect("reload");
    let fresh = tls::client(&[ca.der()], &["http/1.1"]);
    let after = tls::get(&fresh, gw.addr, "site.test", "/").await;
    assert_eq!(after.peer_cert, Some(new.der.clone()));

    // A key that does not match is refused, and the renewed one stays.
    let stray = ca.leaf(&dir.path, "stray", &["site.test"], 2099);
    std::fs::copy(&stray.key, &new.key).expect("copy key");
    let err = gw.reload_file().await.expect_err("mismatched key");
    assert!(err.to_string().contains("does not belong"), "{err}");
    let still = tls::get(&fresh, gw.addr, "site.test", "/").await;
    assert_eq!(still.peer_cert, Some(new.der.clone()));
}

#[tokio::test]
async fn the_plain_listener_redirects_to_https_keeping_path_and_query() {
    let dir = TempDir::new("redirect");
    let ca = TestCa::new("Rampart Test CA");
    let leaf = ca.leaf(&dir.path, "site", &["site.test"], 2099);
    let origin = origin().await;
    let plain = rampart_testkit::free_addr();
    let more = format!("redirect_from = \"{plain}\"");
    let gw = start_file(&dir.path, &config(&origin, &tls_table(&leaf, &[], &more))).await;
    let got = TestClient::new()
        .get(
            &format!("http://{plain}/a/b?c=1"),
            &[("host", "site.test:8080")],
        )
        .await;
    assert_eq!(got.status, 308);
    assert_eq!(
        got.header("location"),
        format!("https://site.test:{}/a/b?c=1", gw.addr.port())
    );
    let bad = TestClient::new()
        .get(&format!("http://{plain}/"), &[("host", "a b")])
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(origin.total(), 0);
}

#[test]
fn bad_or_mismatched_files_are_refused_naming_the_file() {
    let dir = TempDir::new("bad");
    let ca = TestCa::new("Rampart Test CA");
    let a = ca.leaf(&dir.path, "a", &["a.test"], 2099);
    let b = ca.leaf(&dir.path, "b", &["b.test"], 2099);
    let garbage = dir.path.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let missing = dir.path.join("missing.pem");
    let origin_addr = "127.0.0.1:9";
    let text = |cert: &Path, key: &Path| {
        format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n[[upstreams]]\nname = \"app\"\ntargets = [\"{origin_addr}\"]\n\
             [[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\n",
            cert.display(),
            key.display()
        )
    };
    for (cert, key, says, names) in [
        (&a.cert, &b.key, "does not belong", &b.key),
        (&garbage, &a.key, "no PEM certificate", &garbage),
        (&a.cert, &garbage, "no usable private key", &garbage),
        (&missing, &a.key, "cannot read", &missing),
    ] {
        let config = rampart_config::parse(&text(cert, key), "t.toml").expect("valid text");
        let err = rampart_gateway::check_tls(&config)
            .expect_err(says)
            .to_string();
        assert!(err.contains(says), "{err}");
        assert!(err.contains(&names.display().to_string()), "{err}");
        assert!(err.contains("server.tls"), "{err}");
    }
    let ok = rampart_config::parse(&text(&a.cert, &a.key), "t.toml").expect("valid");
    let certs = rampart_gateway::check_tls(&ok).expect("a good pair");
    assert_eq!(certs.len(), 1);
    assert!(certs[0].subject.contains("a.test"), "{}", certs[0].subject);
}

/// An idle TLS connection is parked like a plain one (its hyper buffers
/// released, rustls's session kept) and serves its next request.
#[tokio::test]
async fn an_idle_tls_connection_is_parked_and_serves_its_next_request() {
    use tokio::io::AsyncWriteExt;
    let Site {
        dir: _dir,
        ca,
        leaf: _,
        origin: _origin,
        gw,
    } = Site::start("tls-idle").await;
    let connector = tokio_rustls::TlsConnector::from(tls::client(&[ca.der()], &["http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("site.test").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("handshake");
    let mut ask = async |path: &str| {
        let head = format!("GET {path} HTTP/1.1\r\nHost: site.test\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let want = format!("{path} proto=https");
        let got = rampart_testkit::read_until(&mut stream, |got| {
            String::from_utf8_lossy(got).contains(&want)
        })
        .await;
        String::from_utf8_lossy(&got).into_owned()
    };
    assert!(ask("/first").await.starts_with("HTTP/1.1 200"));
    let scraper = TestClient::new();
    let parked = r#"rampart_idle_connections{listener="public",protocol="https"} 1"#;
    rampart_testkit::eventually_async("the idle TLS connection is parked", || async {
        scraper.metrics(&gw).await.contains(parked)
    })
    .await;
    let second = ask("/second").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
}

/// A TLS client's `header_read_timeout` counts from when it connected, its
/// handshake included, as a plain client's does: one that handshakes late
/// and then trickles a head that never ends is cut off about one timeout
/// after it connected (within the one-second idle check), not one timeout
/// after its handshake.
#[tokio::test]
async fn a_slow_handshake_counts_against_the_time_to_send_a_head() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    let Site {
        dir: _dir,
        ca,
        leaf: _,
        origin: _origin,
        gw,
    } = Site::start_with("tls-slow-head", "header_read_timeout = \"4s\"").await;
    let connector = tokio_rustls::TlsConnector::from(tls::client(&[ca.der()], &["http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let connected = Instant::now();
    // The client waits before its handshake: this is the scenario, a slow
    // client, not a wait for the server.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let name = rustls_pki_types::ServerName::try_from("site.test").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("handshake");
    let head = format!(
        "GET /slowloris HTTP/1.1\r\nHost: site.test\r\nX-Long: {}",
        "a".repeat(40)
    );
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() || stream.flush().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = connected.elapsed();
    assert!(
        held < Duration::from_secs(6),
        "a TLS client that handshook 2.5 s after connecting was held {held:?} with a head never finished (timeout 4 s)"
    );
}
