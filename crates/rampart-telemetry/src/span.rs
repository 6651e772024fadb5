//! What the request path calls to make its spans exportable. Spans are
//! made with `tracing`'s macros where the work is: the request at
//! [`REQUEST_TARGET`] (info: it also carries the request id on every log
//! line), the stages at [`STAGE_TARGET`] (debug: made only when exported,
//! or when `RUST_LOG` asks for them). Every function here returns at once
//! when nothing is exported.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of each request's span.
pub const REQUEST_TARGET: &str = "rampart::request";
/// The target of the spans of a request's stages (cache lookup, coalesced
/// wait, upstream call), at debug level.
pub const STAGE_TARGET: &str = "rampart::trace";

/// Set once by [`crate::init`] when spans are exported.
pub(crate) static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported to a collector.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Starts the exported side of a request's span: a child of the caller's
/// trace when `continued` (its `traceparent` and `tracestate` in
/// `headers`), else the root of a new one, with the request's method,
/// path and protocol. Returns the span's own `traceparent` value
/// (`00-<trace>-<span>-<flags>`), which replaces the one Rampart would
/// have started; `None` when nothing is exported.
pub fn begin_request(
    span: &tracing::Span,
    headers: &HeaderMap,
    continued: bool,
    request: (&http::Method, &http::Uri, http::Version),
) -> Option<String> {
    if !exporting() || span.is_disabled() {
        return None;
    }
    if continued {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let _ = span.set_parent(parent);
    }
    // Started first: a span that is not sampled records nothing, so its
    // attributes are not made at all.
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if ids.is_sampled() {
        let (method, uri, version) = request;
        span.set_attribute("http.request.method", method.to_string());
        span.set_attribute("url.path", uri.path().to_string());
        span.set_attribute("network.protocol.version", protocol_version(version));
    }
    ids.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        )
    })
}

/// Writes `span`'s trace context into the headers of a request sent
/// upstream, so the service behind continues the trace under this span.
pub fn propagate(span: &tracing::Span, headers: &mut HeaderMap) {
    if !exporting() || span.is_disabled() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// Records the status a request was answered with (or an upstream call
/// came back with); a 5xx marks the span failed.
pub fn record_status(span: &tracing::Span, status: u16) {
    if !exporting() || span.is_disabled() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(status.to_string()));
    }
}

/// Records why an upstream call failed (no response).
pub fn record_error(span: &tracing::Span, kind: &'static str) {
    if !exporting() || span.is_disabled() {
        return;
    }
    span.set_attribute("error.type", kind);
    span.set_status(Status::error(kind));
}

/// `network.protocol.version` as OpenTelemetry writes it.
fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
