//! A client's own faults (a malformed, oversized, aborted or stalled request
//! body) are answered 400, 413 or 408, counted as the client's, and never
//! reach an upstream's breaker: one anonymous client cannot open a circuit
//! for everyone.

use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, gateway, raw_request, respond, Origin, TestClient};
use tokio::io::AsyncWriteExt;

const ROUTES: &str = r#"
[[routes]]
match = "POST /upload"
upstream = "app"
timeout = "500ms"

[[routes]]
match = "GET /*"
upstream = "app"
"#;

async fn setup() -> (Origin, rampart_gateway::Running) {
    // The origin reads the whole body before answering, as applications do.
    let origin = Origin::start(|req| async move {
        let body = http_body_util::BodyExt::collect(req.body).await;
        match body {
            Ok(b) => respond(200, &[], format!("got {} bytes", b.to_bytes().len())),
            Err(_) => respond(400, &[], "bad body"),
        }
    })
    .await;
    let text = config_text(origin.addr, ROUTES)
        .replace(
            "timeout = \"5s\"",
            "timeout = \"5s\"\ncircuit = { failures = 3, open_for = \"1h\" }",
        )
        .replace(
            "listen = \"127.0.0.1:0\"\n\n[admin]",
            "listen = \"127.0.0.1:0\"\nmax_body_size = \"1KiB\"\n\n[admin]",
        );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    (origin, gw)
}

fn status(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_body_faults_are_the_clients_and_never_open_a_circuit() {
    let (origin, gw) = setup().await;
    for _ in 0..4 {
        let bad_chunks = raw_request(
            gw.addr,
            b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(status(&bad_chunks), "400", "{bad_chunks}");

        let mut too_big = b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n".to_vec();
        too_big.extend(std::iter::repeat_n(b'x', 0x800));
        too_big.extend_from_slice(b"\r\n0\r\n\r\n");
        let answer = raw_request(gw.addr, &too_big).await;
        assert_eq!(status(&answer), "413", "{answer}");
    }
    // Stalled: the head and a part of the body, then nothing.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut s, &mut answer),
    )
    .await
    .expect("an answer to a stalled upload")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert_eq!(status(&answer), "408", "{answer}");
    // Aborted: the client goes away mid-body.
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\npartial")
            .await
            .unwrap();
        drop(s);
    }

    // Every one of those was the client's: the circuit is closed, others are served.
    let ok = TestClient::new()
        .get(&format!("http://{}/page", gw.addr), &[])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let metrics = TestClient::new().metrics(&gw).await;
    let opened = format!(
        "rampart_circuit_transitions_total{{upstream=\"app\",target=\"{}\",to=\"open\"}} 0",
        origin.addr
    );
    assert!(
        metrics.contains(&opened),
        "the breaker never opened: {metrics}"
    );
    assert!(metrics.contains("outcome=\"client_error\""), "{metrics}");
}
