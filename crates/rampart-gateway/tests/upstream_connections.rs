//! The upstream connection pool, seen from the target: connections are
//! kept alive and reused, at most `max_idle_per_target` are kept, and idle
//! ones are closed after `idle_timeout`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, eventually, gateway, TestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the target saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    open: AtomicUsize,
    requests: AtomicUsize,
}

/// A keep-alive HTTP/1.1 target answering `ok` to every request; its first
/// `together` requests are answered only once all of them have arrived (so
/// they take as many connections).
async fn target(together: usize) -> (SocketAddr, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let barrier = Arc::new(tokio::sync::Barrier::new(together));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            s.accepted.fetch_add(1, Ordering::SeqCst);
            s.open.fetch_add(1, Ordering::SeqCst);
            let (s, barrier) = (s.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.requests.fetch_add(1, Ordering::SeqCst) < together {
                            barrier.wait().await;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tcp.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                }
                s.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_capped_and_closed_when_idle() {
    let (addr, seen) = target(4).await;
    let text = config_text(addr, "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\n").replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\nmax_idle_per_target = 2\nidle_timeout = \"1s\"",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let url = format!("http://{}/page", gw.addr);

    // Four at once take four connections; two are kept afterwards.
    let sends = (0..4).map(|_| {
        let url = url.clone();
        async move { TestClient::new().get(&url, &[]).await.status }
    });
    for status in futures_util::future::join_all(sends).await {
        assert_eq!(status, 200);
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 4);
    eventually("two of four connections closed", || {
        seen.open.load(Ordering::SeqCst) == 2
    })
    .await;

    // One after another, they reuse a kept connection.
    let client = TestClient::new();
    for _ in 0..5 {
        assert_eq!(client.get(&url, &[]).await.status, 200);
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 4, "no new connection");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 9);

    // Idle for longer than idle_timeout: closed by the proxy.
    eventually("every idle connection closed", || {
        seen.open.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(client.get(&url, &[]).await.status, 200);
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_target_closes_is_let_go_of() {
    // The target answers once, then closes its side (as a server's idle
    // timeout does) and waits for the proxy to close its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let released = Arc::new(AtomicUsize::new(0));
    let r = released.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = tcp.shutdown().await;
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let text = config_text(addr, "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\n").replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\nidle_timeout = \"10m\"",
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let got = TestClient::new()
        .get(&format!("http://{}/page", gw.addr), &[])
        .await;
    assert_eq!(got.status, 200);
    // Long before its idle timeout, the proxy closes the connection too
    // (no socket left half-closed in its pool).
    eventually("the proxy closes a connection its target closed", || {
        released.load(Ordering::SeqCst) == 1
    })
    .await;
}
