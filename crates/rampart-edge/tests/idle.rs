//! Idle HTTP/1.1 connections are parked (their buffers released) and still
//! behave as kept-alive connections: the next request is served, the idle
//! timeout holds, a head sent slowly is still cut off, a connection whose
//! last request was an upload is parked once the upload was read, the rest
//! of an upload is never read as a request, and shutdown closes them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use rampart_edge::connection::PARK_AFTER;
use rampart_edge::{Conn, ConnGauges, ConnLimits, RequestBody, Stops};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Listening {
    addr: SocketAddr,
    gauges: ConnGauges,
    stops: Stops,
    served: tokio::task::JoinHandle<()>,
}

async fn listen(header_read_timeout: Duration) -> Listening {
    let listener = rampart_edge::listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let gauges = ConnGauges::default();
    let stops = Stops {
        accepting: CancellationToken::new(),
        shutdown: CancellationToken::new(),
    };
    let limits = ConnLimits {
        max_header_size: 16 * 1024,
        header_read_timeout,
        max_connections: 64,
        shutdown_timeout: Duration::from_secs(5),
    };
    let served = tokio::spawn(rampart_edge::serve(
        Arc::new(listener),
        limits,
        stops.clone(),
        (None, gauges.clone()),
        move |req: Request<RequestBody>, _conn: Conn| async move {
            let body = Bytes::from(format!("path {}", req.uri().path()));
            // Answered only after twice the idle timeout.
            if req.uri().path() == "/slow" {
                tokio::time::sleep(header_read_timeout * 2).await;
            }
            // An upload is answered at once and read on meanwhile, or, on
            // /ignored, never read (like an origin refusing it unread).
            if req.method() == http::Method::POST && !req.uri().path().starts_with("/ignored") {
                tokio::spawn(http_body_util::BodyExt::collect(req.into_body()));
            }
            Ok::<_, Infallible>(Response::new(Full::new(body)))
        },
    ));
    Listening {
        addr,
        gauges,
        stops,
        served,
    }
}

/// Sends a GET for `path` and reads its whole response.
async fn get(stream: &mut TcpStream, path: &str) -> String {
    send_rest(stream, &format!("GET {path}"), path).await
}

/// Sends the rest of a GET's head, from `rest` on, and reads its whole
/// response, which names `path`.
async fn send_rest(stream: &mut TcpStream, rest: &str, path: &str) -> String {
    let request = format!("{rest} HTTP/1.1\r\nHost: t\r\n\r\n");
    response_to(stream, &request, path).await
}

/// Sends `request` (or what is left of it) and reads the whole response,
/// which names `path`.
async fn response_to(stream: &mut TcpStream, request: &str, path: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let want = format!("path {path}");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(want.as_bytes()) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection that had one request answered and was then parked.
async fn parked(l: &Listening) -> TcpStream {
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    let first = get(&mut stream, "/first").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    eventually("the idle connection is parked", || l.gauges.idle.get() == 1).await;
    stream
}

/// Reads until the server closes; what it sent, and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
        .await
        .expect("closed within 20 s")
        .unwrap();
    (rest, Instant::now())
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_request() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = parked(&l).await;
    assert_eq!(l.gauges.open.get(), 1);
    let second = get(&mut stream, "/second").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert_eq!(l.gauges.idle.get(), 0, "busy again");
    eventually("parked again once idle", || l.gauges.idle.get() == 1).await;
    drop(stream);
    eventually("closed by its client", || l.gauges.open.get() == 0).await;
    assert_eq!(l.gauges.idle.get(), 0);
}

/// Parked or not, an idle connection is closed `header_read_timeout` after
/// its last response, and not before.
#[tokio::test]
async fn a_parked_connection_keeps_the_idle_timeout() {
    let timeout = Duration::from_secs(4);
    let l = listen(timeout).await;
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    get(&mut stream, "/once").await;
    let answered = Instant::now();
    eventually("the idle connection is parked", || l.gauges.idle.get() == 1).await;
    let (rest, closed) = until_closed(&mut stream).await;
    assert!(rest.is_empty());
    let idle = closed - answered;
    assert!(
        idle >= timeout - Duration::from_millis(100),
        "closed after {idle:?}"
    );
    eventually("counted closed", || l.gauges.open.get() == 0).await;
    assert_eq!(l.gauges.idle.get(), 0);
}

/// A head begun after a response and never finished is cut off even when
/// its connection is taken apart for parking meanwhile.
#[tokio::test]
async fn a_head_sent_across_a_park_is_still_cut_off() {
    let l = listen(Duration::from_secs(3)).await;
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    get(&mut stream, "/first").await;
    stream
        .write_all(b"GET /never HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let (rest, _) = until_closed(&mut stream).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("path /never"), "{rest}");
    assert_eq!(l.gauges.idle.get(), 0);
}

/// A client whose first byte comes late and whose head then trickles in
/// is cut off about one `header_read_timeout` after it connected (or was
/// parked), within the one-second idle check: not a second full timeout
/// counted from that first byte.
#[tokio::test]
async fn a_head_begun_late_gets_no_second_timeout() {
    let timeout = Duration::from_secs(4);
    let l = listen(timeout).await;
    for parking in [false, true] {
        let (stream, from) = if parking {
            (parked(&l).await, Instant::now())
        } else {
            (TcpStream::connect(l.addr).await.unwrap(), Instant::now())
        };
        tokio::time::sleep_until((from + Duration::from_millis(2_500)).into()).await;
        trickle(stream).await;
        let held = from.elapsed();
        assert!(
            held < Duration::from_secs(6),
            "held {held:?} (parked first: {parking}) with a head never finished"
        );
    }
}

/// Sends a head that never ends, a byte every 200 ms, until the server
/// closes the connection (or 14 s have passed).
async fn trickle(mut stream: TcpStream) {
    let head = format!(
        "GET /slowloris HTTP/1.1\r\nHost: t\r\nX-Long: {}",
        "a".repeat(40)
    );
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A head that arrives in pieces, the last after the connection was
/// parked, is served whole.
#[tokio::test]
async fn a_request_after_a_park_may_arrive_in_pieces() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = parked(&l).await;
    stream.write_all(b"GET /pie").await.unwrap();
    eventually("woken by the first piece", || l.gauges.idle.get() == 0).await;
    let got = send_rest(&mut stream, "ces", "/pieces").await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("path /pieces"), "{got}");
}

#[tokio::test]
async fn shutdown_closes_parked_connections_at_once() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = parked(&l).await;
    l.stops.shutdown.cancel();
    let (rest, _) = until_closed(&mut stream).await;
    assert!(rest.is_empty());
    tokio::time::timeout(Duration::from_secs(5), l.served)
        .await
        .expect("the listener stops without waiting for the idle timeout")
        .unwrap();
}

/// A client that connects and sends nothing holds no request slot for
/// long: it is closed after `header_read_timeout`.
#[tokio::test]
async fn a_silent_connection_is_closed() {
    let l = listen(Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    let (rest, _) = until_closed(&mut stream).await;
    assert!(rest.is_empty());
    eventually("counted closed", || l.gauges.open.get() == 0).await;
}

/// An upload answered before its body ended keeps its connection from
/// parking while the client pauses: taken apart then, the rest of the body
/// would be read as a request of its own.
#[tokio::test]
async fn the_rest_of_a_body_is_never_read_as_a_request() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = half_an_upload(&l, "/upload").await;
    assert_eq!(l.gauges.idle.get(), 0, "parked in the middle of a body");
    stream.write_all(SMUGGLED.as_bytes()).await.unwrap();
    let after = get(&mut stream, "/after").await;
    assert!(!after.contains("/smuggled"), "{after}");
}

/// Sends `head` and `body`, and reads the response to a POST for `path`.
async fn upload(stream: &mut TcpStream, head: &str, body: &str, path: &str) {
    let request = format!("POST {path} HTTP/1.1\r\nHost: t\r\n{head}\r\n{body}");
    response_to(stream, &request, path).await;
}

/// A connection whose last request carried a body, of a declared length
/// or chunked, is parked once the body was read to its end, and serves its
/// next request.
#[tokio::test]
async fn a_connection_whose_last_request_was_an_upload_is_parked() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    let sized = ("Content-Length: 5\r\n", "hello");
    parked_after_upload(&l, &mut stream, sized, "/sized").await;
    let chunked = ("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n");
    parked_after_upload(&l, &mut stream, chunked, "/chunked").await;
}

/// Sends an upload (`framing` and its body) for `path` and reads its
/// response; the connection is then parked and serves its next request.
async fn parked_after_upload(
    l: &Listening,
    stream: &mut TcpStream,
    (framing, body): (&str, &str),
    path: &str,
) {
    upload(stream, framing, body, path).await;
    eventually(&format!("parked after {path}"), || l.gauges.idle.get() == 1).await;
    let after = get(stream, "/after").await;
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
}

/// An upload answered without being read: once hyper has the whole body
/// (and discards it) the connection is parked and serves its next request.
#[tokio::test]
async fn a_connection_whose_upload_was_not_read_is_parked() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    let sized = ("Content-Length: 5\r\n", "hello");
    parked_after_upload(&l, &mut stream, sized, "/ignored").await;
}

/// An upload answered without being read, whose rest comes after a pause:
/// the rest is never served as a request, parked or not.
#[tokio::test]
async fn the_rest_of_an_unread_body_is_never_read_as_a_request() {
    let l = listen(Duration::from_secs(30)).await;
    let mut stream = half_an_upload(&l, "/ignored").await;
    // The server may have closed the connection: then the write or the
    // read fails, and nothing was served.
    let _ = stream.write_all(SMUGGLED.as_bytes()).await;
    let _ = stream
        .write_all(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let rest = until_closed_or_quiet(&mut stream).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("/smuggled"), "{rest}");
}

/// The rest of [`half_an_upload`]'s body: a request of its own, if it were
/// read as one.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";

/// A connection that sent the first half of an upload to `path` and had
/// its answer, then paused longer than two idle checks; the body's rest
/// is [`SMUGGLED`].
async fn half_an_upload(l: &Listening, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(l.addr).await.unwrap();
    let half = "first half;";
    let length = format!("Content-Length: {}\r\n", half.len() + SMUGGLED.len());
    upload(&mut stream, &length, half, path).await;
    tokio::time::sleep(PARK_AFTER * 2 + Duration::from_millis(500)).await;
    stream
}

/// Reads what comes until the server closes or sends nothing for a second.
async fn until_closed_or_quiet(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// An idle HTTP/2 connection (no stream open) is closed, with `GOAWAY`,
/// `header_read_timeout` after its last stream, as an idle HTTP/1.1 one
/// is: otherwise a client could hold connection slots forever.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let timeout = Duration::from_secs(2);
    let l = listen(timeout).await;
    let stream = TcpStream::connect(l.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let mut conn = tokio::spawn(conn);
    // A stream answered after longer than the idle timeout keeps the
    // connection open: the next request on it is served.
    for path in ["/slow", "/h2"] {
        let request = Request::get(format!("http://t{path}"));
        let request = request.body(http_body_util::Empty::<Bytes>::new());
        let response = send.send_request(request.unwrap()).await.unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body());
        assert_eq!(body.await.unwrap().to_bytes(), format!("path {path}"));
    }
    let answered = Instant::now();
    let closed = tokio::time::timeout(timeout * 5, &mut conn).await;
    assert!(
        closed.is_ok(),
        "an idle HTTP/2 connection is still open after {:?}",
        timeout * 5
    );
    let idle = answered.elapsed();
    assert!(
        idle >= timeout,
        "closed after {idle:?}, before the idle timeout"
    );
    eventually("counted closed", || l.gauges.open.get() == 0).await;
}
