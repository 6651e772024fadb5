//! WebSocket through the gateway with a real client and server
//! (tokio-tungstenite): messages both ways, close frames, the idle
//! timeout, TLS, routes that do not allow upgrades, and the metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rampart_gateway::SystemClock;
use rampart_testkit::tls::TestCa;
use rampart_testkit::{eventually_async, gateway, raw_request, TestClient};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo server: echoes text and binary messages; on the text
/// `close-me` it closes with code 4000; reports each close it receives.
async fn echo_server() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<u16>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (closes, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let closes = closes.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Text(t) if t.as_str() == "close-me" => {
                            let frame = CloseFrame {
                                code: CloseCode::from(4000),
                                reason: "bye".into(),
                            };
                            let _ = ws.close(Some(frame)).await;
                        }
                        Message::Text(_) | Message::Binary(_) => {
                            let sent = ws.send(msg).await;
                            if sent.is_err() {
                                return;
                            }
                        }
                        Message::Close(frame) => {
                            let _ = closes.send(frame.map(|f| u16::from(f.code)));
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn config(origin: SocketAddr, upgrade: &str, tls: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{tls}

[admin]
listen = "127.0.0.1:0"

[log]
access = false

[[upstreams]]
name = "ws"
targets = ["{origin}"]

[[routes]]
match = "GET /ws"
upstream = "ws"
{upgrade}

[[routes]]
match = "GET /*"
upstream = "ws"
"#
    )
}

async fn exchange_a_thousand<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..1000u32 {
        let msg = if i % 2 == 0 {
            Message::text(format!("message {i}"))
        } else {
            Message::binary(i.to_be_bytes().to_vec())
        };
        ws.send(msg.clone()).await.expect("send");
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an echo within 10 s")
            .expect("open")
            .expect("a message");
        assert_eq!(back, msg, "message {i}");
    }
}

#[tokio::test]
async fn a_thousand_messages_each_way_and_close_frames_pass_through() {
    let (origin, mut closes) = echo_server().await;
    let gw = gateway(&config(origin, "upgrade = true", ""), Arc::new(SystemClock)).await;
    let url = format!("ws://{}/ws", gw.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("handshake");
    assert_eq!(response.status(), 101);
    exchange_a_thousand(&mut ws).await;

    // The client closes: the server sees the client's close frame.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .expect("close");
    let code = tokio::time::timeout(Duration::from_secs(10), closes.recv())
        .await
        .expect("the server saw the close");
    assert_eq!(code, Some(Some(1000)));
    drop(ws);

    // The server closes: the client gets the server's close frame.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("handshake");
    ws.send(Message::text("close-me")).await.expect("send");
    let mut code = None;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(frame) = msg {
            code = frame.map(|f| u16::from(f.code));
        }
    }
    assert_eq!(code, Some(4000));
    drop(ws);

    let client = TestClient::new();
    let metrics = client.metrics(&gw).await;
    assert!(
        metrics.contains("rampart_upgraded_bytes_total{direction=\"to-upstream\"}"),
        "{metrics}"
    );
    eventually_async("every upgraded connection is counted closed", || async {
        client
            .metrics(&gw)
            .await
            .contains("rampart_upgraded_connections 0")
    })
    .await;
}

#[tokio::test]
async fn an_idle_upgraded_connection_is_closed() {
    let (origin, _closes) = echo_server().await;
    let text = config(origin, "upgrade = { idle_timeout = \"300ms\" }", "");
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr))
        .await
        .expect("handshake");
    ws.send(Message::text("hello")).await.expect("send");
    assert!(ws.next().await.is_some());
    // Nothing more is sent: the gateway closes the connection.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the idle connection was closed");
}

#[tokio::test]
async fn routes_without_upgrade_answer_501() {
    let (origin, _closes) = echo_server().await;
    let gw = gateway(&config(origin, "", ""), Arc::new(SystemClock)).await;
    let answer = raw_request(
        gw.addr,
        b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}

#[tokio::test]
async fn websocket_over_tls() {
    let dir = rampart_testkit::TempDir::new("wss");
    let ca = TestCa::new("WSS CA");
    let leaf = ca.leaf(&dir.path, "ws", &["ws.test"], 2099);
    let (origin, _closes) = echo_server().await;
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
        leaf.cert.display(),
        leaf.key.display()
    );
    let gw = gateway(
        &config(origin, "upgrade = true", &tls),
        Arc::new(SystemClock),
    )
    .await;
    let client = rampart_testkit::tls::client(&[ca.der()], &["http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("ws.test").expect("name");
    let stream = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (mut ws, response) = tokio_tungstenite::client_async("wss://ws.test/ws", stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(response.status(), 101);
    exchange_a_thousand(&mut ws).await;
}
