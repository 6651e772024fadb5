//! A virtual user: its variables, its connection, and one iteration of a
//! flow, step by step, with extraction, checks and think time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use tokio::sync::Semaphore;

use crate::failure::{Failed, Failure};
use crate::http1::{request_size, response_head_size, Conn, Response, Stream};
use crate::http2::H2Conn;
use crate::plan::{BodySpec, Check, Feeder, Scenario, Source, Think};
use crate::recorder::{Sample, Samples};
use crate::template::render_json;
use crate::tls::Tls;

/// Bytes of a response body kept for checks and extraction; the rest is read
/// and counted but not kept, so huge bodies cost no memory.
const KEEP_BODY: usize = 1 << 20;

/// How a scenario's users reach the target.
#[derive(Clone)]
pub enum Transport {
    /// One keep-alive connection per user.
    PerUser,
    /// One HTTP/2 connection per user (h2c, or h2 by ALPN over TLS).
    H2PerUser,
    /// A shared pool of keep-alive connections, at most this many in use.
    Pool(Box<PoolClient>, Arc<Semaphore>),
}

/// hyper's pooled client, for `http://` and `https://`.
pub type PoolClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

impl Transport {
    /// A shared pool of `size` connections (HTTP/2 only with `h2`), with
    /// `tls` for `https://` URLs.
    pub fn pool(size: u32, h2: bool, tls: Option<&Tls>) -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.map_or_else(Tls::unused_config, Tls::config))
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(size as usize)
            .http2_only(h2)
            .build(connector);
        Transport::Pool(
            Box::new(client),
            Arc::new(Semaphore::new(size.max(1) as usize)),
        )
    }
}

/// Whether a step's URL is absolute (`http://` or `https://`).
pub fn is_absolute(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The absolute URI of a step: an `http://` URL as it is, a path under the base URL.
pub fn full_uri(base: Option<&str>, url: &str) -> Result<Uri, String> {
    let full = if is_absolute(url) {
        url.to_string()
    } else {
        format!("{}{url}", base.unwrap_or(""))
    };
    full.parse().map_err(|e| format!("bad URL {full:?}: {e}"))
}

/// What every user of a scenario shares.
pub struct ScenarioCtx {
    /// Per step, its URI when the URL has no variables (parsed once).
    pub static_uris: Vec<Option<Uri>>,
    /// Whether any step's URL, headers or body has a template (else the
    /// per-iteration variables are not kept up to date).
    pub templated: bool,
    /// Index in the plan.
    pub index: usize,
    /// The scenario.
    pub scenario: Scenario,
    /// Base URL for relative step URLs.
    pub base_url: Option<String>,
    /// Samples go here.
    pub samples: Arc<Samples>,
    /// Connections.
    pub transport: Transport,
    /// TLS for `https://` URLs (`None`: the plan has none).
    pub tls: Option<Tls>,
    /// Next feeder row (sequential order).
    pub next_row: AtomicU64,
}

/// One virtual user.
pub struct Vu {
    id: u64,
    iteration: u64,
    vars: HashMap<String, String>,
    /// The open HTTP/1.1 connection: its origin (scheme and authority).
    conn: Option<(String, Conn)>,
    /// The open HTTP/2 connection: its origin.
    h2: Option<(String, H2Conn)>,
    /// Whether the step under way is still connecting (so a timeout then
    /// is a connect timeout).
    connecting: bool,
}

impl Vu {
    /// A user with its number.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            iteration: 0,
            vars: HashMap::new(),
            conn: None,
            h2: None,
            connecting: false,
        }
    }

    /// Runs one iteration. For the first step, latency counts from
    /// `intended` (the scheduled start); later steps count from their send.
    pub async fn iterate(&mut self, ctx: &ScenarioCtx, intended: Instant) {
        self.iteration += 1;
        if self.iteration == 1 {
            self.vars.insert("vu".into(), self.id.to_string());
            self.vars
                .insert("scenario".into(), ctx.scenario.name.clone());
        }
        if ctx.templated {
            // Only a plan with templates reads the counter.
            self.vars.insert("iter".into(), self.iteration.to_string());
        }
        if let Some(feeder) = &ctx.scenario.feeder {
            self.feed(feeder, ctx);
        }
        let mut step_start = intended;
        for (index, step) in ctx.scenario.steps.iter().enumerate() {
            let uri = match ctx.static_uris.get(index).cloned().flatten() {
                Some(uri) => Ok(uri),
                None => full_uri(
                    ctx.base_url.as_deref(),
                    &crate::template::render(&step.url, &self.vars),
                ),
            };
            let sent = Instant::now();
            self.connecting = false;
            let outcome = match uri {
                Ok(uri) => tokio::time::timeout(step.timeout, self.exchange(ctx, step, uri)).await,
                Err(e) => Ok(Err(Failed::new(Failure::BadRequest, e))),
            };
            let done = Instant::now();
            let (answer, failure) = match outcome {
                Ok(Ok(answer)) => (answer, None),
                Ok(Err(failed)) => {
                    self.conn = None;
                    (Response::none(), Some(failed.failure))
                }
                Err(_) => {
                    self.conn = None;
                    let failure = if self.connecting {
                        Failure::ConnectTimeout
                    } else {
                        Failure::RequestTimeout
                    };
                    (Response::none(), Some(failure))
                }
            };
            let (status, headers, body) = (answer.status, &answer.headers, &answer.body);
            let elapsed = done - sent;
            let mut passed = 0;
            let mut failed_checks = 0u64;
            for (i, check) in step.checks.iter().enumerate() {
                if status != 0 && check_ok(check, status, body, elapsed) {
                    passed += 1;
                } else {
                    failed_checks |= 1 << i.min(63);
                }
            }
            for (var, source) in &step.extract {
                if let Some(v) = extract(source, headers, body) {
                    self.vars.insert(var.clone(), v);
                }
            }
            let sample = Sample {
                scenario: ctx.index,
                step: index,
                latency_us: (done - step_start.min(sent)).as_micros() as u64,
                service_us: elapsed.as_micros() as u64,
                status,
                failure,
                checks_passed: passed,
                checks_failed: failed_checks,
                cache_hit: cache_hit(headers),
                bytes_sent: answer.bytes_sent,
                bytes_received: answer.bytes_received,
            };
            ctx.samples.push(self.id, sample);
            if let Some(think) = step.think {
                let pause = match think {
                    Think::Fixed(d) => d,
                    Think::Uniform(a, b) => {
                        let ms = rand::rng().random_range(a.as_millis()..=b.as_millis());
                        Duration::from_millis(ms as u64)
                    }
                };
                tokio::time::sleep(pause).await;
            }
            step_start = if step.think.is_some() {
                Instant::now()
            } else {
                done
            };
        }
    }

    fn feed(&mut self, feeder: &Feeder, ctx: &ScenarioCtx) {
        let n = feeder.rows.len();
        let row = if feeder.random {
            rand::rng().random_range(0..n)
        } else {
            (ctx.next_row.fetch_add(1, Ordering::Relaxed) as usize) % n
        };
        for (col, value) in feeder.columns.iter().zip(&feeder.rows[row]) {
            self.vars.insert(col.clone(), value.clone());
        }
    }

    async fn exchange(
        &mut self,
        ctx: &ScenarioCtx,
        step: &crate::plan::Step,
        uri: Uri,
    ) -> Result<Response, Failed> {
        let authority = uri
            .authority()
            .ok_or_else(|| Failed::new(Failure::BadRequest, "URL without host"))?
            .as_str();
        let https = uri.scheme_str() == Some("https");
        // Connections are kept per origin: scheme and authority (made into
        // strings only when a connection is opened).
        let origin = || {
            if https {
                format!("https://{authority}")
            } else {
                authority.to_string()
            }
        };
        let same_origin = |kept: &str| match kept.strip_prefix("https://") {
            Some(rest) => https && rest == authority,
            None => !https && kept == authority,
        };
        let address = || match uri.port_u16() {
            Some(_) => authority.to_string(),
            None => format!(
                "{}:{}",
                uri.host().unwrap_or_default(),
                if https { 443 } else { 80 }
            ),
        };
        let host = uri.host().unwrap_or_default();
        let tls = match (https, &ctx.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some((tls, host)),
            (true, None) => {
                return Err(Failed::new(
                    Failure::Tls,
                    "an https:// URL in a run set up without TLS",
                ))
            }
        };
        let mut headers = if step.headers.is_empty() {
            http::HeaderMap::new()
        } else {
            http::HeaderMap::with_capacity(step.headers.len() + 1)
        };
        for (name, value) in &step.headers {
            let rendered = if value.is_static() {
                None
            } else {
                Some(crate::template::render(value, &self.vars))
            };
            let text = rendered.as_deref().unwrap_or(value.source.as_str());
            if let Ok(v) = HeaderValue::from_str(text) {
                headers.append(name.clone(), v);
            }
        }
        let body = match &step.body {
            None => Bytes::new(),
            Some(BodySpec::Text(t)) => Bytes::from(crate::template::render(t, &self.vars)),
            Some(BodySpec::Raw(bytes)) => bytes.clone(),
            Some(BodySpec::Json(v)) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Bytes::from(render_json(v, &self.vars).to_string())
            }
        };
        let bytes_sent = request_size(&step.method, &uri, &headers, body.len());
        // Only what the step reads is kept: the body for checks and
        // extractions.
        let keep = if step.checks.is_empty() && step.extract.is_empty() {
            0
        } else {
            KEEP_BODY
        };
        match &ctx.transport {
            Transport::Pool(client, slots) => {
                let _slot = slots
                    .acquire()
                    .await
                    .map_err(|e| Failed::new(Failure::BadRequest, e.to_string()))?;
                let req = request(step, uri, headers, body)?;
                let resp = client.request(req).await.map_err(hyper_failed)?;
                read(resp, bytes_sent).await
            }
            Transport::H2PerUser => {
                let reusable = match &mut self.h2 {
                    Some((a, c)) => same_origin(a) && c.reusable(),
                    None => false,
                };
                if !reusable {
                    self.connecting = true;
                    let stream = Stream::connect(&address(), tls).await?;
                    self.h2 = Some((origin(), H2Conn::handshake(stream).await?));
                    self.connecting = false;
                }
                let (_, conn) = self
                    .h2
                    .as_mut()
                    .ok_or_else(|| Failed::new(Failure::Closed, "no connection"))?;
                let mut retried = false;
                let sent = loop {
                    let sent = conn.send(&step.method, &uri, &headers, &body, keep).await;
                    if sent.is_ok() || retried || !conn.may_retry() {
                        break sent;
                    }
                    // The request never reached the server (a GOAWAY, a
                    // refused stream): once more on a new connection.
                    retried = true;
                    self.connecting = true;
                    *conn = H2Conn::handshake(Stream::connect(&address(), tls).await?).await?;
                    self.connecting = false;
                };
                match sent {
                    // HTTP/2 counts no request bytes of its own.
                    Ok(r) => Ok(Response { bytes_sent, ..r }),
                    Err(e) => {
                        self.h2 = None;
                        Err(e)
                    }
                }
            }
            Transport::PerUser => {
                let target = uri.path_and_query().map_or("/", |p| p.as_str());
                // Every header only for extractions.
                let all_headers = !step.extract.is_empty();
                let reusable = matches!(&self.conn, Some((a, c)) if same_origin(a) && c.reusable());
                if !reusable {
                    self.connecting = true;
                    let stream = Stream::connect(&address(), tls).await?;
                    self.conn = Some((origin(), Conn::over(stream)));
                    self.connecting = false;
                }
                let (_, conn) = self
                    .conn
                    .as_mut()
                    .ok_or_else(|| Failed::new(Failure::Closed, "no connection"))?;
                let mut retried = false;
                let sent = loop {
                    let sent = conn
                        .send_with(
                            &step.method,
                            target,
                            authority,
                            &headers,
                            &body,
                            keep,
                            all_headers,
                        )
                        .await;
                    if sent.is_ok() || retried || !conn.may_retry() {
                        break sent;
                    }
                    // The server closed the kept-alive connection as the
                    // request went out: once more on a new connection.
                    retried = true;
                    self.connecting = true;
                    *conn = Conn::over(Stream::connect(&address(), tls).await?);
                    self.connecting = false;
                };
                if sent.is_err() {
                    self.conn = None;
                }
                sent
            }
        }
    }
}

/// A step's request for hyper's clients.
fn request(
    step: &crate::plan::Step,
    uri: Uri,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Failed> {
    let mut req = Request::builder()
        .method(step.method.clone())
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| Failed::new(Failure::BadRequest, e.to_string()))?;
    *req.headers_mut() = headers;
    Ok(req)
}

fn hyper_failed<E: std::error::Error + 'static>(e: E) -> Failed {
    Failed::new(Failure::of_hyper(&e), e.to_string())
}

async fn read<B>(resp: http::Response<B>, bytes_sent: u64) -> Result<Response, Failed>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    let (parts, mut body) = resp.into_parts();
    let mut kept: Vec<u8> = Vec::new();
    let mut received = response_head_size(&parts.headers);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(hyper_failed)?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            let room = KEEP_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Bytes::from(kept),
        bytes_sent,
        bytes_received: received,
    })
}

/// Whether a check passes.
pub fn check_ok(check: &Check, status: u16, body: &[u8], elapsed: Duration) -> bool {
    match check {
        Check::Status(list) => list.contains(&status),
        Check::BodyContains(text) => body
            .windows(text.len().max(1))
            .any(|w| w == text.as_bytes()),
        Check::JsonEquals(pointer, expected) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.pointer(pointer).cloned())
            .is_some_and(|v| &v == expected),
        Check::DurationUnder(limit) => elapsed < *limit,
    }
}

/// Extracts a value from a response.
pub fn extract(source: &Source, headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match source {
        Source::Header(name) => headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        Source::JsonPointer(p) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .pointer(p)
            .map(as_text),
        Source::JsonPath(path) => {
            let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
            path.query(&value).first().map(as_text)
        }
        Source::Regex(re) => {
            let text = String::from_utf8_lossy(body);
            let caps = re.captures(&text)?;
            caps.get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_string())
        }
    }
}

/// `Some(true)` for a hit, `Some(false)` for a reported miss, from
/// `Cache-Status` (the member nearest the client) or `X-Cache`.
pub fn cache_hit(headers: &http::HeaderMap) -> Option<bool> {
    if let Some(v) = headers.get("cache-status").and_then(|v| v.to_str().ok()) {
        let last = v.rsplit(',').next().unwrap_or("");
        return Some(last.split(';').skip(1).any(|p| p.trim() == "hit"));
    }
    headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_uppercase().contains("HIT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_and_checks() {
        let body = br#"{"data":{"token":"abc","n":3}}"#;
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("r1"));
        assert_eq!(
            extract(&Source::JsonPointer("/data/token".into()), &headers, body).as_deref(),
            Some("abc")
        );
        assert_eq!(
            extract(&Source::JsonPointer("/data/n".into()), &headers, body).as_deref(),
            Some("3")
        );
        let path = serde_json_path::JsonPath::parse("$.data.token").unwrap();
        assert_eq!(
            extract(&Source::JsonPath(path), &headers, body).as_deref(),
            Some("abc")
        );
        assert_eq!(
            extract(
                &Source::Header(http::HeaderName::from_static("x-request-id")),
                &headers,
                body
            )
            .as_deref(),
            Some("r1")
        );
        let re = regex::Regex::new(r#""token":"(\w+)""#).unwrap();
        assert_eq!(
            extract(&Source::Regex(re), &headers, body).as_deref(),
            Some("abc")
        );
        assert_eq!(
            extract(&Source::JsonPointer("/missing".into()), &headers, body),
            None
        );
        assert_eq!(
            extract(
                &Source::JsonPointer("/x".into()),
                &headers,
                b"\xff\xfe not json"
            ),
            None
        );

        assert!(check_ok(
            &Check::Status(vec![200, 201]),
            201,
            body,
            Duration::ZERO
        ));
        assert!(!check_ok(
            &Check::Status(vec![200]),
            500,
            body,
            Duration::ZERO
        ));
        assert!(check_ok(
            &Check::BodyContains("token".into()),
            200,
            body,
            Duration::ZERO
        ));
        assert!(check_ok(
            &Check::JsonEquals("/data/n".into(), serde_json::json!(3)),
            200,
            body,
            Duration::ZERO
        ));
        assert!(!check_ok(
            &Check::JsonEquals("/data/n".into(), serde_json::json!(4)),
            200,
            body,
            Duration::ZERO
        ));
        assert!(check_ok(
            &Check::DurationUnder(Duration::from_millis(5)),
            200,
            body,
            Duration::from_millis(4)
        ));
    }

    #[test]
    fn cache_status_reading() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "cache-status",
            HeaderValue::from_static("origin; fwd=miss, rampart; hit; ttl=30"),
        );
        assert_eq!(cache_hit(&h), Some(true));
        h.insert(
            "cache-status",
            HeaderValue::from_static("rampart; fwd=uri-miss; stored"),
        );
        assert_eq!(cache_hit(&h), Some(false));
        let mut x = http::HeaderMap::new();
        x.insert("x-cache", HeaderValue::from_static("HIT"));
        assert_eq!(cache_hit(&x), Some(true));
        assert_eq!(cache_hit(&http::HeaderMap::new()), None);
    }
}
