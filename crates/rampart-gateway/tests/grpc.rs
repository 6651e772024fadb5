//! gRPC-style traffic: HTTP/2 both sides (h2c to a plain upstream with
//! `h2c = true`), a streamed request body, and response trailers
//! (`grpc-status`) passed through unchanged.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_gateway::SystemClock;
use rampart_testkit::gateway;

/// An h2c server answering every request with its body echoed in a data
/// frame, then trailers `grpc-status: 0` and `grpc-message: ok`.
async fn grpc_origin() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let version = req.version();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        trailers.insert("grpc-message", HeaderValue::from_static("ok"));
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(
                                format!("{version:?}:"),
                            ))),
                            Ok(http_body::Frame::data(body)),
                            Ok(http_body::Frame::trailers(trailers)),
                        ];
                        let response = Response::builder()
                            .header("content-type", "application/grpc")
                            .body(StreamBody::new(futures_util::stream::iter(frames)))
                            .expect("response");
                        Ok::<_, std::convert::Infallible>(response)
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn h2c_to_the_upstream_with_trailers_passed_through() {
    let origin = grpc_origin().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = false\n\
         [[upstreams]]\nname = \"grpc\"\ntargets = [\"{origin}\"]\nh2c = true\n\
         [[routes]]\nmatch = \"POST /*\"\nupstream = \"grpc\"\n"
    );
    let gw = gateway(&text, Arc::new(SystemClock)).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let request = Request::post(format!("http://{}/pkg.Service/Method", gw.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\x00\x00\x00\x00\x02hi")))
        .expect("request");
    let response = send.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    let body = collected.to_bytes();
    assert!(
        body.starts_with(b"HTTP/2.0:"),
        "the origin spoke HTTP/2: {body:?}"
    );
    assert!(body.ends_with(b"\x00\x00\x00\x00\x02hi"), "{body:?}");
}

#[test]
fn h2c_with_https_targets_is_a_config_error() {
    let text = "[[upstreams]]\nname = \"g\"\ntargets = [\"https://a:443\"]\nh2c = true\n";
    let err = rampart_config::parse(text, "t.toml").expect_err("h2c over https");
    assert!(err.to_string().contains("upstreams[1].h2c"), "{err}");
}
