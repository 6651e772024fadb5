//! WebSocket message round trip: an echo server alone, and through a
//! Rampart gateway (route with `upgrade = true`), in one process on
//! loopback; N sequential 64-byte messages on one connection each way.
//! Prints p50 and p99 in microseconds. Arguments: [MESSAGES].

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

async fn echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let sent = ws.send(msg).await;
                        if sent.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn round_trips(url: &str, n: usize) -> (u128, u128) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let payload = vec![7u8; 64];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        ws.send(Message::binary(payload.clone()))
            .await
            .expect("send");
        ws.next().await.expect("open").expect("echo");
        times.push(started.elapsed().as_micros());
    }
    times.sort_unstable();
    (times[n / 2], times[(n * 99 / 100).saturating_sub(1)])
}

#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let origin = echo().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = false\n\
         [[upstreams]]\nname = \"ws\"\ntargets = [\"{origin}\"]\n\
         [[routes]]\nmatch = \"GET /ws\"\nupstream = \"ws\"\nupgrade = true\n"
    );
    let config = rampart_config::parse(&text, "ws-rtt.toml").expect("config");
    let gw = rampart_gateway::start(&config, Arc::new(rampart_gateway::SystemClock))
        .await
        .expect("gateway");
    // Warm both paths, then alternate three rounds each.
    round_trips(&format!("ws://{origin}/ws"), 200).await;
    round_trips(&format!("ws://{}/ws", gw.addr), 200).await;
    println!("# WebSocket round trip, {n} messages of 64 bytes on one connection (us)");
    for round in 1..=3 {
        let (d50, d99) = round_trips(&format!("ws://{origin}/ws"), n).await;
        let (r50, r99) = round_trips(&format!("ws://{}/ws", gw.addr), n).await;
        println!("round {round}: direct p50 {d50} p99 {d99} | through rampart p50 {r50} p99 {r99}");
    }
}
