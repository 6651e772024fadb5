//! Test fixtures shared by Rampart's integration tests.

pub mod chromium;
mod redis;
pub mod tls;

pub use redis::RedisServer;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_gateway::body::{full, Body};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the origin's handler sees.
pub struct OriginRequest {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The streaming body.
    pub body: Incoming,
    /// How many requests the origin has seen for this path, this one included.
    pub nth: usize,
}

type Handler = Arc<
    dyn Fn(OriginRequest) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// An in-process HTTP/1.1 origin on 127.0.0.1 that counts requests by path.
pub struct Origin {
    /// Its address.
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    seen: Arc<Mutex<Vec<(Method, String, HeaderMap)>>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Origin {
    /// Starts an origin with an async handler.
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(OriginRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Self::serve(listener, handler)
    }

    /// Starts an origin on a given address (to bring one back after [`Origin::stop`]).
    pub async fn start_on<F, Fut>(addr: SocketAddr, handler: F) -> Self
    where
        F: Fn(OriginRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind(addr).await.expect("rebind origin");
        Self::serve(listener, handler)
    }

    /// Starts an origin whose handler answers at once.
    pub async fn simple<F>(handler: F) -> Self
    where
        F: Fn(&OriginRequest) -> Response<Body> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        Self::start(move |req| {
            let handler = Arc::clone(&handler);
            async move { handler(&req) }
        })
        .await
    }

    fn serve(listener: TcpListener, handler: Handler) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let seen: Arc<Mutex<Vec<(Method, String, HeaderMap)>>> = Arc::default();
        let tasks: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let (c, s, t) = (Arc::clone(&counts), Arc::clone(&seen), Arc::clone(&tasks));
        tasks.lock().unwrap().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, counts, seen) =
                    (Arc::clone(&handler), Arc::clone(&c), Arc::clone(&s));
                t.lock().unwrap().spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        let path = req.uri().path().to_string();
                        let nth = {
                            let mut counts = counts.lock().unwrap();
                            let n = counts.entry(path).or_default();
                            *n += 1;
                            *n
                        };
                        seen.lock().unwrap().push((
                            req.method().clone(),
                            req.uri().to_string(),
                            req.headers().clone(),
                        ));
                        async move {
                            let (parts, body) = req.into_parts();
                            let r = handler(OriginRequest {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                                nth,
                            })
                            .await;
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            counts,
            seen,
            tasks,
        }
    }

    /// Requests seen for a path.
    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests seen in all.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    /// Method, URI and headers of every request seen, in order.
    pub fn seen(&self) -> Vec<(Method, String, HeaderMap)> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops listening and closes every open connection.
    pub fn stop(&self) {
        self.tasks.lock().unwrap().abort_all();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response with a body and headers.
pub fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(full(body)).expect("valid response")
}

/// A raw HTTP/1.1 server that answers the first request on each connection
/// with `200 ok` and, without saying `Connection: close`, closes the
/// connection when the next request arrives: the race a server's idle
/// timeout makes with a client reusing the connection. Runs until the test
/// ends.
pub async fn one_answer_per_connection() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

/// Sends `request` as it is (any bytes: duplicate or malformed headers a
/// well-behaved client would never send) on a new connection to `addr` and
/// returns everything the server answers until it closes the connection or
/// goes quiet for a second; "" when it closed without a byte.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads from `stream` until what was read satisfies `done`, and returns
/// it; panics if the server closes first.
pub async fn read_until<S>(stream: &mut S, done: impl Fn(&[u8]) -> bool) -> Vec<u8>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Config text for a gateway on an ephemeral port in front of `origin`, with
/// `routes` appended (each route should use `upstream = "app"`).
pub fn config_text(origin: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
token = "test-token"

[log]
access = false

[[upstreams]]
name = "app"
targets = ["{origin}"]
timeout = "5s"

{extra}
"#
    )
}

/// The example config `examples/APP/rampart.toml` with its `${…}` settings
/// filled: the origin's address, a free port for the proxy, `admin` for the
/// admin listener and `token` as the admin token.
pub fn example_config(app: &str, origin: SocketAddr, admin: SocketAddr, token: &str) -> String {
    let path = format!(
        "{}/../../examples/{app}/rampart.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let free = || free_addr().to_string();
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("${ORIGIN_ADDR:-127.0.0.1:3000}", &origin.to_string())
        .replace("${RAMPART_LISTEN:-127.0.0.1:8080}", &free())
        .replace(
            "${RAMPART_ADMIN_LISTEN:-127.0.0.1:9090}",
            &admin.to_string(),
        )
        .replace("${RAMPART_ADMIN_TOKEN}", token)
}

/// Starts a gateway from config text.
pub async fn gateway(
    text: &str,
    clock: Arc<dyn rampart_gateway::Clock>,
) -> rampart_gateway::Running {
    let config = rampart_config::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    rampart_gateway::start(&config, clock)
        .await
        .expect("gateway starts")
}

/// A received response, body gathered.
#[derive(Debug)]
pub struct Got {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Got {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive HTTP/1.1 client.
#[derive(Clone)]
pub struct TestClient {
    inner: Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    /// A new client.
    pub fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// An HTTP/2 prior-knowledge (h2c) client.
    pub fn h2c() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    /// Sends a request and gathers the response.
    pub async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Body) -> Got {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(20),
            self.inner.request(b.body(body).expect("request")),
        )
        .await
        .expect("response within 20s")
        .expect("response");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A GET.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Got {
        self.send("GET", url, headers, rampart_gateway::body::empty())
            .await
    }

    /// The Prometheus text of a gateway's admin `/metrics`.
    pub async fn metrics(&self, gw: &rampart_gateway::Running) -> String {
        let admin = gw.admin_addr.expect("the gateway has an admin listener");
        self.get(&format!("http://{admin}/metrics"), &[])
            .await
            .text()
    }
}

/// How long [`eventually`] waits before it fails.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Polls `condition` every few milliseconds until it holds, failing the
/// test (naming `what`) after [`EVENTUALLY`]: background work is waited for
/// by what it does, never by a fixed sleep.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    eventually_async(what, || std::future::ready(condition())).await;
}

/// [`eventually`] for a condition that needs to await (an HTTP request).
pub async fn eventually_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {EVENTUALLY:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A directory of the test's own under the system's temp dir, removed when
/// dropped.
pub struct TempDir {
    /// Its path.
    pub path: std::path::PathBuf,
}

impl TempDir {
    /// A new empty directory; `tag` helps tell whose it is.
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "rampart-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback address no one listens on now (for a server a test starts
/// as a process).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Runs a program (a test's `env!("CARGO_BIN_EXE_…")`) to its end: its exit
/// code and what it wrote, stderr then stdout.
pub fn run_program(program: &str, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

/// Sends SIGTERM to a process a test started.
pub fn terminate(child: &std::process::Child) {
    signal(child.id(), "TERM");
}

/// Sends the signal `name` (`TERM`, `INT`, `HUP`, `USR1`…) to the process
/// `pid` a test started, with `kill`; fails the test if it cannot.
pub fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name} {pid}: the process is gone");
}
