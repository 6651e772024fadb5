//! HTTP/1.1 to the upstream, seen from both ends: what a target writes is
//! read strictly (a response is never answered with bytes that followed
//! another; smuggling-shaped heads are refused), and bodies travel both
//! ways in every framing HTTP/1.1 has.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, gateway, raw_request, TestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.1 target: every request it reads (head and body, as
/// received) is kept, and answered with the bytes `answer` gives for it,
/// written in `answer`'s pieces (the connection closed after an answer
/// saying `connection: close`). A request to a path starting `/early` is
/// answered as soon as its head has arrived, its body left unread.
struct Target {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicUsize>,
}

impl Target {
    async fn start(answer: fn(&str) -> Vec<Vec<u8>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (requests.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(request) = read_request(&mut tcp, &mut buf).await {
                        seen.lock().unwrap().push(request.clone());
                        let pieces = answer(&request);
                        for piece in &pieces {
                            if tcp.write_all(piece).await.is_err() {
                                return;
                            }
                        }
                        let all = pieces.concat();
                        if String::from_utf8_lossy(&all).contains("connection: close") {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            accepted,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request off `tcp` (`buf` keeps what follows it).
async fn read_request(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 8192];
    let complete = |buf: &[u8]| -> Option<usize> {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        if head
            .split(' ')
            .nth(1)
            .is_some_and(|p| p.starts_with("/early"))
        {
            return Some(head_end);
        }
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return (buf.len() >= head_end + len).then_some(head_end + len);
        }
        if head.contains("transfer-encoding: chunked") {
            let last = buf[head_end - 2..]
                .windows(5)
                .position(|w| w == b"\r\n0\r\n")?
                + head_end
                - 2;
            let end = buf[last + 3..].windows(4).position(|w| w == b"\r\n\r\n")? + last + 7;
            return Some(end);
        }
        Some(head_end)
    };
    loop {
        if let Some(end) = complete(buf) {
            let request = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            return Some(request);
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The request's path.
fn path(request: &str) -> &str {
    request.split(' ').nth(1).unwrap_or("")
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn gateway_for(target: &Target, routes: &str) -> rampart_gateway::Running {
    gateway(&config_text(target.addr, routes), Arc::new(SystemClock)).await
}

const PASS: &str = "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_response_never_answer_another_request() {
    // `/first`'s answer is followed by a second response nobody asked for,
    // in the same write and in a write of its own.
    let target = Target::start(|request| match path(request) {
        "/first" => vec![[
            ok("first"),
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil".to_vec(),
        ]
        .concat()],
        "/first-then" => vec![
            ok("first"),
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil".to_vec(),
        ],
        other => vec![ok(other)],
    })
    .await;
    let gw = gateway_for(&target, PASS).await;
    let client = TestClient::new();
    for first in ["/first", "/first-then", "/first", "/first-then"] {
        let got = client.get(&format!("http://{}{first}", gw.addr), &[]).await;
        assert_eq!(got.text(), "first");
        for n in 0..3 {
            let url = format!("http://{}/next-{n}", gw.addr);
            let got = client.get(&url, &[]).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.text(), format!("/next-{n}"), "after {first}");
        }
    }
    assert!(
        target.accepted.load(Ordering::SeqCst) >= 4,
        "a connection with bytes after its response is never reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_shaped_to_smuggle_are_refused() {
    let target = Target::start(|request| {
        let head: &[u8] = match path(request) {
            "/te-and-length" => {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            }
            "/two-lengths" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            "/gzip-coding" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc",
            "/folded" => b"HTTP/1.1 200 OK\r\nx-a: 1\r\n x-b: 2\r\ncontent-length: 0\r\n\r\n",
            "/bad-chunk" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        };
        vec![head.to_vec()]
    })
    .await;
    let gw = gateway_for(&target, PASS).await;
    let client = TestClient::new();
    for bad in ["/te-and-length", "/two-lengths", "/gzip-coding", "/folded"] {
        let got = client.get(&format!("http://{}{bad}", gw.addr), &[]).await;
        assert_eq!(got.status, 502, "{bad}");
        assert_eq!(got.header("content-type"), "application/problem+json");
        assert!(
            !got.text().contains("127.0.0.1"),
            "{bad}: no internal address in {}",
            got.text()
        );
        let fine = client.get(&format!("http://{}/fine", gw.addr), &[]).await;
        assert_eq!((fine.status.as_u16(), fine.text().as_str()), (200, "ok"));
    }
    // A chunked body that breaks off mid-way: the head was fine, so the
    // client sees its body fail, never a body with wrong bytes.
    let raw = raw_request(
        gw.addr,
        b"GET /bad-chunk HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(!raw.contains("abc"), "{raw}");
}

/// A request body sent in frames from a channel, of unknown length.
fn streamed(frames: Vec<&'static str>, trailer: bool) -> rampart_gateway::body::Body {
    let mut frames: Vec<Frame<Bytes>> = frames
        .into_iter()
        .map(|f| Frame::data(Bytes::from_static(f.as_bytes())))
        .collect();
    if trailer {
        let mut t = http::HeaderMap::new();
        t.insert("x-sum", http::HeaderValue::from_static("9"));
        frames.push(Frame::trailers(t));
    }
    let stream =
        futures_util::stream::iter(frames.into_iter().map(Ok::<_, std::convert::Infallible>));
    rampart_gateway::body::boxed(http_body_util::StreamBody::new(stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_travel_both_ways_in_every_framing() {
    let target = Target::start(|request| {
        let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
        let answer: Vec<u8> = match path(request) {
            "/chunked-answer" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\nx-t: 1\r\n\r\n".to_vec(),
            "/hints" => [&b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\n"[..], &ok("after hints")].concat(),
            "/until-close" => b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nto the end".to_vec(),
            _ => ok(&body),
        };
        vec![answer]
    })
    .await;
    let gw = gateway_for(&target, PASS).await;
    let client = TestClient::new();
    let url = |p: &str| format!("http://{}{p}", gw.addr);

    // Known length: sent with it.
    let got = client
        .send(
            "POST",
            &url("/length"),
            &[],
            rampart_gateway::body::full("hello"),
        )
        .await;
    assert_eq!(got.text(), "hello");
    // Unknown length: chunked, trailers kept.
    let got = client
        .send(
            "PUT",
            &url("/chunked"),
            &[("trailer", "x-sum")],
            streamed(vec!["abc", "def"], true),
        )
        .await;
    assert_eq!(got.status, 200);
    let seen = target.requests();
    let length = seen.iter().find(|r| path(r) == "/length").unwrap();
    assert!(length.contains("content-length: 5\r\n"), "{length}");
    assert!(length.ends_with("\r\n\r\nhello"), "{length}");
    let chunked = seen.iter().find(|r| path(r) == "/chunked").unwrap();
    assert!(
        chunked.contains("transfer-encoding: chunked\r\n"),
        "{chunked}"
    );
    assert!(
        chunked.ends_with("\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nx-sum: 9\r\n\r\n"),
        "{chunked:?}"
    );

    let got = client.get(&url("/chunked-answer"), &[]).await;
    assert_eq!(got.text(), "wikipedia");
    let got = client.get(&url("/hints"), &[]).await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "after hints")
    );
    let got = client.get(&url("/until-close"), &[]).await;
    assert_eq!(got.text(), "to the end");

    // A HEAD answer's length describes a body that is not sent: the
    // connection carries the next request.
    let got = client
        .send("HEAD", &url("/head"), &[], rampart_gateway::body::empty())
        .await;
    assert_eq!(got.status, 200);
    let before = target.accepted.load(Ordering::SeqCst);
    let got = client.get(&url("/after-head"), &[]).await;
    assert_eq!(got.text(), "");
    assert_eq!(target.accepted.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_upload_ends_reaches_the_client() {
    let target = Target::start(|_| {
        vec![b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\n\r\ntoo long".to_vec()]
    })
    .await;
    let gw = gateway_for(&target, PASS).await;
    // An upload that sends one piece and then waits for ever.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"first piece"))))
        .await
        .unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = rampart_gateway::body::boxed(http_body_util::StreamBody::new(stream));
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        TestClient::new().send("POST", &format!("http://{}/early", gw.addr), &[], body),
    )
    .await
    .expect("the answer arrives while the upload is still open");
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (413, "too long")
    );
    drop(tx);
}

/// Trailer fields travel end to end with the `Trailer` field that announces
/// them (RFC 9110 §6.6.2: it is not hop-by-hop): an HTTP/1.1 client that
/// accepts trailers says so to the origin (`TE: trailers`, named in
/// `Connection`) and gets the origin's, and an uploaded body's trailers
/// reach the origin announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_trailers_travel_both_ways() {
    let target = Target::start(|request| match path(request) {
        "/trailers" => vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n4\r\nwiki\r\n0\r\nx-checksum: 42\r\n\r\n".to_vec()],
        other => vec![ok(other)],
    })
    .await;
    let gw = gateway_for(&target, PASS).await;

    let raw = raw_request(
        gw.addr,
        b"GET /trailers HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.contains("\r\ntrailer: x-checksum\r\n"), "{raw}");
    assert!(body.ends_with("0\r\nx-checksum: 42\r\n\r\n"), "{raw}");
    let seen = target.requests();
    let asked = seen
        .iter()
        .find(|r| path(r) == "/trailers")
        .expect("forwarded");
    assert!(asked.contains("\r\nte: trailers\r\n"), "{asked}");
    assert!(asked.contains("\r\nconnection: te\r\n"), "{asked}");

    let raw = raw_request(
        gw.addr,
        b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 9\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let seen = target.requests();
    let upload = seen
        .iter()
        .find(|r| path(r) == "/upload")
        .expect("forwarded");
    assert!(upload.contains("\r\ntrailer: x-sum\r\n"), "{upload}");
    assert!(upload.ends_with("0\r\nx-sum: 9\r\n\r\n"), "{upload:?}");
}
