//! Proxying over real sockets: headers, streaming, limits, deadlines,
//! shutdown, HTTP/2 and the admin listener.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rampart_gateway::body::{empty, full, Body};
use rampart_gateway::SystemClock;
use rampart_testkit::{
    config_text, eventually, eventually_async, gateway, read_until, respond, Origin, TestClient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_stream_shim::ReceiverStream;

const PASS: &str = r#"
[[routes]]
match = "* /*"
upstream = "app"
"#;

/// A minimal mpsc-receiver stream, to feed request bodies chunk by chunk.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    pub struct ReceiverStream<T>(pub mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

fn channel_body() -> (
    mpsc::Sender<Result<Frame<Bytes>, rampart_gateway::body::BoxError>>,
    Body,
) {
    let (tx, rx) = mpsc::channel(4);
    (tx, StreamBody::new(ReceiverStream(rx)).boxed_unsync())
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let origin = Origin::simple(|_| {
        respond(
            200,
            &[
                ("connection", "x-internal"),
                ("x-internal", "secret"),
                ("keep-alive", "timeout=5"),
            ],
            "ok",
        )
    })
    .await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(
            &format!("http://{}/path?q=1", gw.addr),
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("connection", "x-drop"),
                ("x-drop", "1"),
                ("host", "shop.example"),
            ],
        )
        .await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key("x-internal"));
    assert!(!got.headers.contains_key("keep-alive"));
    let seen = origin.seen();
    let (_, uri, headers) = &seen[0];
    assert_eq!(uri, "/path?q=1");
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "untrusted X-Forwarded-For is replaced"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "shop.example");
    assert_eq!(headers["host"], "shop.example", "Host is preserved");
    assert_eq!(
        headers["forwarded"],
        "for=127.0.0.1;proto=http;host=shop.example"
    );
    assert!(headers.get("x-drop").is_none());
}

/// Every request gets an id (a UUIDv7 unless a trusted proxy named it) and
/// a trace context; both go upstream, the id comes back, on cache hits and
/// on Rampart's own errors too, whose bodies name it instead of any address.
#[tokio::test]
async fn requests_are_identified_upstream_and_back() {
    let origin = Origin::simple(|_| respond(200, &[("cache-control", "max-age=60")], "ok")).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let text = config_text(
        origin.addr,
        &format!(
            "[[upstreams]]\nname = \"gone\"\ntargets = [\"{closed}\"]\n\
             [[routes]]\nmatch = \"GET /gone/*\"\nupstream = \"gone\"\n\
             [[routes]]\nmatch = \"GET /cached/*\"\nupstream = \"app\"\ncache = {{ ttl = \"1m\" }}\n\
             [[routes]]\nmatch = \"* /*\"\nupstream = \"app\"\n"
        ),
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let got = client
        .get(
            &format!("http://{}/a", gw.addr),
            &[
                ("x-request-id", "chosen-by-client"),
                ("traceparent", traced),
            ],
        )
        .await;
    let id = got.header("x-request-id").to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(&id[14..15], "7", "version 7: {id}");
    let seen = origin.seen();
    let (_, _, headers) = &seen[0];
    assert_eq!(headers["x-request-id"], id.as_str(), "the same id upstream");
    assert_eq!(headers["traceparent"], traced, "a valid trace is continued");

    let again = client.get(&format!("http://{}/a", gw.addr), &[]).await;
    assert_ne!(again.header("x-request-id"), id, "each request its own id");
    let (_, _, headers) = &origin.seen()[1];
    let started = headers["traceparent"].to_str().unwrap();
    assert!(
        started.starts_with("00-") && started.len() == 55,
        "{started}"
    );

    let url = format!("http://{}/cached/x", gw.addr);
    let stored = client.get(&url, &[]).await;
    let hit = client.get(&url, &[]).await;
    assert!(
        hit.header("cache-status").contains("hit"),
        "{:?}",
        hit.headers
    );
    assert_eq!(hit.header("x-request-id").len(), 36);
    assert_ne!(hit.header("x-request-id"), stored.header("x-request-id"));

    let failed = client.get(&format!("http://{}/gone/x", gw.addr), &[]).await;
    assert_eq!(failed.status, 502);
    let problem: serde_json::Value = serde_json::from_slice(&failed.body).unwrap();
    assert_eq!(problem["request_id"], failed.header("x-request-id"));
    assert!(
        !failed.text().contains(&closed.port().to_string()) && !failed.text().contains("127.0.0.1"),
        "no internal address in a public body: {}",
        failed.text()
    );
}

#[tokio::test]
async fn uploads_stream_to_the_origin() {
    let (first_seen_tx, first_seen_rx) = oneshot::channel::<usize>();
    let first_seen_tx = Arc::new(Mutex::new(Some(first_seen_tx)));
    let origin = Origin::start(move |req| {
        let first_seen_tx = Arc::clone(&first_seen_tx);
        async move {
            let mut body = req.body;
            let mut total = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if total == 0 {
                        if let Some(tx) = first_seen_tx.lock().await.take() {
                            let _ = tx.send(data.len());
                        }
                    }
                    total += data.len();
                }
            }
            respond(200, &[], format!("received {total}"))
        }
    })
    .await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let (tx, body) = channel_body();
    let client = TestClient::new();
    let url = format!("http://{}/upload", gw.addr);
    let request = tokio::spawn(async move { client.send("POST", &url, &[], body).await });
    tx.send(Ok(Frame::data(Bytes::from(vec![b'a'; 64 * 1024]))))
        .await
        .unwrap();
    // The origin sees the first chunk while the client has not finished:
    // the gateway does not hold uploads in memory.
    let first = tokio::time::timeout(Duration::from_secs(5), first_seen_rx)
        .await
        .expect("origin got the first chunk before the end")
        .unwrap();
    assert!(first > 0);
    for _ in 0..15 {
        tx.send(Ok(Frame::data(Bytes::from(vec![b'b'; 64 * 1024]))))
            .await
            .unwrap();
    }
    drop(tx);
    let got = request.await.unwrap();
    assert_eq!(got.text(), format!("received {}", 16 * 64 * 1024));
}

/// A keep-alive connection whose last request was an upload passed to the
/// origin is parked once the upload was read (its buffers released), and
/// serves its next request: for a body of a declared length, which the
/// origin's connection stops reading at its last byte, and a chunked one.
#[tokio::test]
async fn a_connection_idle_after_an_upload_is_parked() {
    let origin = Origin::start(|req| async move {
        let body = req.body.collect().await.map(|b| b.to_bytes().len());
        respond(200, &[], format!("received {}", body.unwrap_or(0)))
    })
    .await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let scraper = TestClient::new();
    let parked = r#"rampart_idle_connections{listener="public",protocol="http"} 1"#;
    let uploads = [
        ("Content-Length: 5", "hello"),
        ("Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n"),
    ];
    for (framing, body) in uploads {
        let head = format!("POST /up HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        read_until(&mut stream, |got| got.ends_with(b"received 5")).await;
        eventually_async(&format!("parked after an upload ({framing})"), || async {
            scraper.metrics(&gw).await.contains(parked)
        })
        .await;
    }
    stream
        .write_all(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut stream, |got| got.ends_with(b"received 0")).await;
    assert!(got.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn downloads_stream_to_the_client() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(Mutex::new(Some(release_rx)));
    let origin = Origin::start(move |_| {
        let release_rx = Arc::clone(&release_rx);
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"first chunk"))))
                    .await;
                if let Some(rx) = release_rx.lock().await.take() {
                    let _ = rx.await;
                }
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b" and the rest"))))
                    .await;
            });
            http::Response::builder()
                .header("content-type", "application/octet-stream")
                .body(body)
                .unwrap()
        }
    })
    .await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(
            Request::get(format!("http://{}/download", gw.addr))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk arrives before the origin finishes")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first chunk");
    release_tx.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, " and the rest");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_unknown_routes_404() {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let text = config_text(
        origin.addr,
        "[[routes]]\nmatch = \"* /api/*\"\nupstream = \"app\"\n",
    )
    .replace("[server]\n", "[server]\nmax_body_size = \"1KiB\"\n");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let big = client
        .send(
            "POST",
            &format!("http://{}/api/x", gw.addr),
            &[],
            full(vec![0u8; 4096]),
        )
        .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.header("content-type"), "application/problem+json");
    // Streamed without a declared length: cut off at the limit, still 413.
    let (tx, body) = channel_body();
    let url = format!("http://{}/api/x", gw.addr);
    let c2 = client.clone();
    let request = tokio::spawn(async move { c2.send("POST", &url, &[], body).await });
    for _ in 0..4 {
        if tx
            .send(Ok(Frame::data(Bytes::from(vec![1u8; 1024]))))
            .await
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    assert_eq!(request.await.unwrap().status, 413);
    let ok = client
        .send(
            "POST",
            &format!("http://{}/api/x", gw.addr),
            &[],
            full(vec![0u8; 100]),
        )
        .await;
    assert_eq!(ok.status, 200);
    let none = client
        .get(&format!("http://{}/elsewhere", gw.addr), &[])
        .await;
    assert_eq!(none.status, 404);
    let problem: serde_json::Value = serde_json::from_slice(&none.body).unwrap();
    assert_eq!(problem["type"], "urn:rampart:problem:no-route");
    assert_eq!(problem["status"], 404);
}

#[tokio::test]
async fn a_slow_origin_gets_504_within_the_route_deadline() {
    let origin = Origin::start(|_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        respond(200, &[], "late")
    })
    .await;
    let gw = gateway(
        &config_text(
            origin.addr,
            "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\ntimeout = \"200ms\"\n",
        ),
        Arc::new(SystemClock),
    )
    .await;
    let started = std::time::Instant::now();
    let got = TestClient::new()
        .get(&format!("http://{}/slow", gw.addr), &[])
        .await;
    assert_eq!(got.status, 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(got.text().contains("upstream-timeout"));
}

/// A gateway giving clients 300 ms to send a head, and its origin.
async fn impatient() -> (Origin, rampart_gateway::Running) {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let text = config_text(origin.addr, PASS)
        .replace("[server]\n", "[server]\nheader_read_timeout = \"300ms\"\n");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    (origin, gw)
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let (origin, gw) = impatient().await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the gateway closed the connection of a client that never finished its headers"
    );
    assert_eq!(origin.total(), 0);
}

/// A client that connects and never sends a byte holds a connection slot
/// and its memory: it is cut off after `header_read_timeout` like one that
/// stops halfway through its head.
#[tokio::test]
async fn silent_connections_are_cut_off() {
    let (_origin, gw) = impatient().await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the gateway kept the connection of a client that never sent a byte"
    );
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let text = config_text(origin.addr, PASS)
        .replace("[server]\n", "[server]\nmax_header_size = \"8KiB\"\n");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let huge = "a".repeat(32 * 1024);
    let _ = stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n").as_bytes())
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let origin = Origin::start(|_| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        respond(200, &[], "finished")
    })
    .await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let addr = gw.addr;
    let client = TestClient::new();
    let in_flight =
        tokio::spawn(async move { client.get(&format!("http://{addr}/work"), &[]).await });
    eventually("the request reached the origin", || {
        origin.count("/work") == 1
    })
    .await;
    gw.shutdown();
    let got = in_flight.await.unwrap();
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "finished")
    );
    tokio::time::timeout(Duration::from_secs(5), gw.wait())
        .await
        .expect("drained and stopped");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let origin = Origin::simple(|req| respond(200, &[], req.uri.clone())).await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let got = TestClient::h2c()
        .get(&format!("http://{}/over-h2", gw.addr), &[])
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "/over-h2");
}

#[tokio::test]
async fn targets_are_used_round_robin() {
    let a = Origin::simple(|_| respond(200, &[], "a")).await;
    let b = Origin::simple(|_| respond(200, &[], "b")).await;
    let text = config_text(a.addr, PASS).replace(
        &format!("targets = [\"{}\"]", a.addr),
        &format!(
            "targets = [\"{}\", \"{}\"]\nbalance = \"round-robin\"",
            a.addr, b.addr
        ),
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    for _ in 0..10 {
        client.get(&format!("http://{}/x", gw.addr), &[]).await;
    }
    assert_eq!((a.total(), b.total()), (5, 5));
}

#[tokio::test]
async fn admin_health_readiness_and_token() {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let admin = gw.admin_addr.unwrap();
    let client = TestClient::new();
    assert_eq!(
        client
            .get(&format!("http://{admin}/healthz"), &[])
            .await
            .status,
        200
    );
    let ready = client.get(&format!("http://{admin}/readyz"), &[]).await;
    assert_eq!(ready.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(json["checks"]["upstreams"]["app"]["status"], "up");
    assert_eq!(
        client
            .get(&format!("http://{admin}/admin/anything"), &[])
            .await
            .status,
        401
    );
    assert_eq!(
        client
            .get(
                &format!("http://{admin}/admin/anything"),
                &[("authorization", "Bearer wrong")]
            )
            .await
            .status,
        401
    );
    assert_eq!(
        client
            .get(
                &format!("http://{admin}/admin/anything"),
                &[("authorization", "Bearer test-token")]
            )
            .await
            .status,
        404
    );
    origin.stop();
    drop(origin);
    // By default the node stays ready (it may serve stale copies) and the
    // body reports the upstream down.
    let readyz = format!("http://{admin}/readyz");
    eventually_async("readyz sees the origin gone", || async {
        let got = client.get(&readyz, &[]).await;
        got.text().contains("\"status\":\"down\"")
    })
    .await;
    let down = client.get(&readyz, &[]).await;
    assert_eq!(down.status, 200, "{}", down.text());
    let json: serde_json::Value = serde_json::from_slice(&down.body).unwrap();
    assert_eq!(json["status"], "ready");
    assert_eq!(json["requires"], "serving");
    assert_eq!(json["checks"]["upstreams"]["app"]["status"], "down");
}

/// With `ready = "upstreams"`, a node whose upstream is down is unready.
#[tokio::test]
async fn readiness_can_require_the_upstreams() {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let text =
        config_text(origin.addr, PASS).replace("[admin]\n", "[admin]\nready = \"upstreams\"\n");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let readyz = format!("http://{}/readyz", gw.admin_addr.unwrap());
    let client = TestClient::new();
    assert_eq!(client.get(&readyz, &[]).await.status, 200);
    origin.stop();
    drop(origin);
    eventually_async("readyz sees the origin gone", || async {
        client.get(&readyz, &[]).await.status == 503
    })
    .await;
    let json: serde_json::Value =
        serde_json::from_slice(&client.get(&readyz, &[]).await.body).unwrap();
    assert_eq!(json["status"], "unavailable");
    assert_eq!(json["requires"], "upstreams");
}

#[tokio::test]
async fn websocket_upgrades_are_refused_clearly() {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let gw = gateway(&config_text(origin.addr, PASS), Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(
            &format!("http://{}/ws", gw.addr),
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        )
        .await;
    assert_eq!(got.status, 501);
    assert_eq!(got.header("content-type"), "application/problem+json");
}
