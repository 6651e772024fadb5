//! What every seed application's handlers share: the database, the sink for
//! domain events, and error answers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use rampart_core::Problem;

use crate::db::{self, Db};

/// Where the origin sends domain events: the gateway's admin listener.
#[derive(Debug, Clone)]
pub struct EventSink {
    /// `http://127.0.0.1:9090`.
    pub admin: String,
    /// The admin bearer token.
    pub token: String,
}

/// State shared by the handlers.
pub struct App {
    /// The database.
    pub db: Arc<Db>,
    events: Option<EventSink>,
    /// Domain events emitted so far.
    emitted: std::sync::atomic::AtomicU64,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl App {
    /// Domain events emitted so far (counted when emitted, before sending).
    pub fn emitted(&self) -> u64 {
        self.emitted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The shared state over `db`, sending events to `events` if given.
    pub fn new(db: Arc<Db>, events: Option<EventSink>) -> Self {
        Self {
            db,
            events,
            emitted: std::sync::atomic::AtomicU64::new(0),
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a domain event in the background (best effort, 2 s deadline).
    pub fn emit(&self, name: &str, body: serde_json::Value) {
        self.emitted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(sink) = &self.events else { return };
        let uri = format!("{}/admin/events/{name}", sink.admin);
        let request = http::Request::post(uri)
            .header("authorization", format!("Bearer {}", sink.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())));
        let Ok(request) = request else { return };
        let client = self.client.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(2), client.request(request)).await {
                Ok(Ok(r)) if r.status().is_success() => {}
                Ok(Ok(r)) => {
                    tracing::warn!(event = name, status = %r.status(), "the gateway refused an event")
                }
                _ => tracing::warn!(event = name, "the gateway did not take an event"),
            }
        });
    }
}

/// An error answer: `application/problem+json` (RFC 9457), its type named
/// after the status.
pub(crate) fn problem(
    status: http::StatusCode,
    detail: impl Into<String>,
) -> axum::response::Response {
    let slug = match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        409 => "conflict",
        422 => "unprocessable",
        503 => "unavailable",
        _ => "internal-error",
    };
    Problem::new(status, slug, detail).response()
}

/// A failed query: 503 when every connection is busy or the database is
/// offline (worth retrying, and what a breaker counts), else 500.
pub(crate) fn db_error(e: db::DbError) -> axum::response::Response {
    let status = if e.is_busy() || e.is_unavailable() {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        http::StatusCode::INTERNAL_SERVER_ERROR
    };
    problem(status, format!("database: {}", e.0))
}
