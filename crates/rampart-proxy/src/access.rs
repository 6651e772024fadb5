//! The access log: one line per request (the share `[log] access_sample`
//! picks), as JSON or as a combined-log-like text line, to stderr (through
//! the log, target `rampart::access`) or appended to `[log] access_file` by
//! a writer task of its own. The file is reopened on [`AccessLog::reopen`]
//! (`SIGUSR1`, after logrotate moved it); lines wait in a bounded queue and
//! are counted, never blocking a request, when it is full.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use rampart_core::Clock;

use prometheus_client::metrics::counter::Counter;
use rampart_config::{AccessFormat, LogConfig};
use tokio::sync::{mpsc, Notify};

use crate::body::{Body, BoxError};

/// Lines that may wait for the writer.
const QUEUE: usize = 65_536;

/// One request, as the access log tells it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccessLine {
    /// The client's address.
    pub client: String,
    /// Method.
    pub method: String,
    /// Target as sent.
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/2`…
    pub protocol: &'static str,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Status sent.
    pub status: u16,
    /// Declared request body length.
    pub bytes_in: Option<u64>,
    /// Body bytes sent to the client.
    pub bytes_out: u64,
    /// Whether the body was sent to its end (false: the client went away
    /// first).
    pub completed: bool,
    /// `X-Request-Id`.
    pub request_id: String,
    /// Trace id.
    pub trace_id: String,
    /// Route name.
    pub route: String,
    /// What the cache did.
    pub cache: &'static str,
    /// The target that answered.
    pub upstream: Option<String>,
    /// Microseconds to the target's response head.
    pub upstream_us: Option<u64>,
    /// Microseconds to the response head.
    pub ttfb_us: u64,
    /// Microseconds to the last byte sent.
    pub duration_us: u64,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `Referer`.
    pub referer: Option<String>,
}

impl AccessLine {
    /// The line as JSON, with the time it was written.
    pub fn json(&self, at: SystemTime) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["time"] = serde_json::Value::from(rfc3339(at));
        v.to_string()
    }

    /// The line in nginx's `combined` layout, then Rampart's fields as
    /// `key=value`: `client - - [time] "METHOD uri PROTOCOL" status bytes
    /// "referer" "user agent" rt=seconds rid=… cache=… route="…" up=… urt=…`.
    pub fn combined(&self, at: SystemTime) -> String {
        let quoted = |v: Option<&str>| v.map_or_else(|| "-".to_string(), escape);
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" rt={:.3} rid={} trace={} cache={} route=\"{}\" up={} urt={}",
            self.client,
            clf_time(at),
            self.method,
            escape(&self.uri),
            self.protocol,
            self.status,
            self.bytes_out,
            quoted(self.referer.as_deref()),
            quoted(self.user_agent.as_deref()),
            self.duration_us as f64 / 1e6,
            self.request_id,
            self.trace_id,
            if self.cache.is_empty() { "-" } else { self.cache },
            escape(&self.route),
            self.upstream.as_deref().unwrap_or("-"),
            self.upstream_us
                .map_or_else(|| "-".to_string(), |u| format!("{:.3}", u as f64 / 1e6)),
        )
    }
}

/// A value inside quotes: `"` and `\` escaped, control bytes as `\xNN`.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `04/Dec/2026:15:31:05 +0000` (UTC).
fn clf_time(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-12-04T15:31:05.123Z`.
fn rfc3339(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Where lines go.
#[derive(Debug)]
enum Sink {
    /// The log on stderr (`rampart::access`), filtered by `RUST_LOG`.
    Log,
    /// A file of its own.
    File {
        path: PathBuf,
        lines: mpsc::Sender<String>,
        reopen: Arc<Notify>,
    },
}

/// The access log of one config.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    sink: Sink,
    dropped: Counter,
}

impl AccessLog {
    /// The access log `[log]` asks for; `previous` (the config before a
    /// reload) keeps its writer when the file is the same. `dropped` counts
    /// lines the queue had no room for.
    pub fn new(config: &LogConfig, previous: Option<&AccessLog>, dropped: Counter) -> Self {
        let sink = match &config.access_file {
            None => Sink::Log,
            Some(path) => match previous.map(|p| &p.sink) {
                Some(Sink::File {
                    path: same,
                    lines,
                    reopen,
                }) if same == path => Sink::File {
                    path: path.clone(),
                    lines: lines.clone(),
                    reopen: Arc::clone(reopen),
                },
                _ => {
                    let (lines, queue) = mpsc::channel(QUEUE);
                    let reopen = Arc::new(Notify::new());
                    tokio::spawn(write(path.clone(), queue, Arc::clone(&reopen)));
                    Sink::File {
                        path: path.clone(),
                        lines,
                        reopen,
                    }
                }
            },
        };
        Self {
            format: config.access_format,
            sink,
            dropped,
        }
    }

    /// Writes one line.
    pub fn write(&self, line: &AccessLine, at: SystemTime) {
        match &self.sink {
            Sink::Log => match self.format {
                AccessFormat::Json => tracing::info!(
                    target: "rampart::access",
                    client = line.client,
                    method = line.method,
                    uri = line.uri,
                    protocol = line.protocol,
                    tls = line.tls,
                    status = line.status,
                    bytes_in = line.bytes_in,
                    bytes_out = line.bytes_out,
                    completed = line.completed,
                    request_id = line.request_id,
                    trace_id = line.trace_id,
                    route = line.route,
                    cache = line.cache,
                    upstream = line.upstream,
                    upstream_us = line.upstream_us,
                    ttfb_us = line.ttfb_us,
                    duration_us = line.duration_us,
                    user_agent = line.user_agent,
                    referer = line.referer,
                ),
                AccessFormat::Combined => {
                    tracing::info!(target: "rampart::access", "{}", line.combined(at));
                }
            },
            Sink::File { lines, .. } => {
                let text = match self.format {
                    AccessFormat::Json => line.json(at),
                    AccessFormat::Combined => line.combined(at),
                };
                if lines.try_send(text).is_err() {
                    self.dropped.inc();
                }
            }
        }
    }

    /// Opens the file again (after logrotate moved it away).
    pub fn reopen(&self) {
        if let Sink::File { reopen, .. } = &self.sink {
            reopen.notify_one();
        }
    }
}

/// `body`, writing `line` to `log` when it ends: sent to its end, failed,
/// or dropped because the client went away, with the bytes sent and the
/// time to the last of them.
pub fn logged_body(
    body: Body,
    line: AccessLine,
    started: Instant,
    log: Arc<AccessLog>,
    clock: Arc<dyn Clock>,
) -> Body {
    LoggedBody {
        body,
        line: Some(line),
        sent: 0,
        started,
        log,
        clock,
    }
    .boxed_unsync()
}

struct LoggedBody {
    body: Body,
    line: Option<AccessLine>,
    sent: u64,
    started: Instant,
    log: Arc<AccessLog>,
    clock: Arc<dyn Clock>,
}

impl LoggedBody {
    fn finish(&mut self, completed: bool) {
        if let Some(mut line) = self.line.take() {
            line.bytes_out = self.sent;
            line.completed = completed;
            line.duration_us =
                u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.log.write(&line, self.clock.now());
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.body.is_end_stream() {
                    self.finish(true);
                }
            }
            std::task::Poll::Ready(None) => self.finish(true),
            std::task::Poll::Ready(Some(Err(_))) => self.finish(false),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // A body with nothing left (an empty one hyper never polls) was
        // sent whole; anything else was cut short.
        let whole = http_body::Body::is_end_stream(&self.body);
        self.finish(whole);
    }
}

fn open(path: &Path) -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot open the access log");
            None
        }
    }
}

/// The writer: appends what is queued, a batch per write, until every
/// sender is gone; reopens the file when told to.
async fn write(path: PathBuf, mut queue: mpsc::Receiver<String>, reopen: Arc<Notify>) {
    let mut file = open(&path);
    let mut batch = String::new();
    loop {
        tokio::select! {
            line = queue.recv() => {
                let Some(line) = line else { break };
                batch.push_str(&line);
                batch.push('\n');
                while batch.len() < 64 * 1024 {
                    match queue.try_recv() {
                        Ok(line) => {
                            batch.push_str(&line);
                            batch.push('\n');
                        }
                        Err(_) => break,
                    }
                }
                if let Some(f) = file.as_mut() {
                    if let Err(e) = f.write_all(batch.as_bytes()) {
                        tracing::error!(file = %path.display(), error = %e, "cannot write the access log");
                    }
                }
                batch.clear();
            }
            () = reopen.notified() => {
                file = open(&path);
                tracing::info!(file = %path.display(), "access log reopened");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn line() -> AccessLine {
        AccessLine {
            client: "203.0.113.9".into(),
            method: "GET".into(),
            uri: "/a?q=\"x\"".into(),
            protocol: "HTTP/1.1",
            tls: false,
            status: 200,
            bytes_in: None,
            bytes_out: 512,
            completed: true,
            request_id: "r-1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            route: "GET /*".into(),
            cache: "hit",
            upstream: None,
            upstream_us: None,
            ttfb_us: 1_000,
            duration_us: 2_000,
            user_agent: Some("curl/8.0".into()),
            referer: None,
        }
    }

    #[test]
    fn a_combined_line_reads_like_nginx_then_rampart() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_398_265);
        assert_eq!(
            line().combined(at),
            "203.0.113.9 - - [04/Dec/2026:15:31:05 +0000] \"GET /a?q=\\\"x\\\" HTTP/1.1\" 200 512 \"-\" \"curl/8.0\" \
             rt=0.002 rid=r-1 trace=4bf92f3577b34da6a3ce929d0e0e4736 cache=hit route=\"GET /*\" up=- urt=-"
        );
        let json: serde_json::Value = serde_json::from_str(&line().json(at)).unwrap();
        assert_eq!(json["time"], "2026-12-04T15:31:05.000Z");
        assert_eq!(json["status"], 200);
        assert_eq!(json["bytes_out"], 512);
    }

    /// Reads the file until it holds `n` lines (the writer is a task).
    async fn lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= n {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{} never held {n} lines", path.display());
    }

    #[tokio::test]
    async fn a_line_is_written_when_the_body_ends_or_is_abandoned() {
        let dir = std::env::temp_dir().join(format!("rampart-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let config = LogConfig {
            access: true,
            access_sample: 1.0,
            access_format: AccessFormat::Json,
            access_file: Some(path.clone()),
        };
        let log = Arc::new(AccessLog::new(&config, None, Counter::default()));
        let clock: Arc<dyn Clock> = Arc::new(rampart_core::SystemClock);
        let two_chunks = || {
            let chunks: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                Ok(Frame::data(Bytes::from_static(b"12345"))),
                Ok(Frame::data(Bytes::from_static(b"678"))),
            ];
            http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync()
        };
        let whole = logged_body(
            two_chunks(),
            line(),
            Instant::now(),
            Arc::clone(&log),
            Arc::clone(&clock),
        );
        let sent = whole.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"12345678");
        let mut cut = logged_body(
            two_chunks(),
            line(),
            Instant::now(),
            Arc::clone(&log),
            clock,
        );
        cut.frame().await.unwrap().unwrap();
        drop(cut);
        let written = lines(&path, 2).await;
        assert_eq!(
            (
                written[0]["bytes_out"].as_u64(),
                written[0]["completed"].as_bool()
            ),
            (Some(8), Some(true))
        );
        assert_eq!(
            (
                written[1]["bytes_out"].as_u64(),
                written[1]["completed"].as_bool()
            ),
            (Some(5), Some(false))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
