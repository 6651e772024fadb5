//! `[tracing]`: where spans are exported.

use std::time::Duration;

use toml::Spanned;

use super::common::Invalid;
use crate::model::TracingConfig;
use crate::raw;

/// The longest an export may take before it is given up (one batch).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// `[tracing]`; `None` when the section is absent.
pub(super) fn tracing(
    section: Option<Spanned<raw::RawTracing>>,
) -> Result<Option<TracingConfig>, Invalid> {
    let Some(section) = section else {
        return Ok(None);
    };
    let at = section.span().start;
    let t = section.into_inner();
    let Some(endpoint) = t.otlp_endpoint else {
        return Err((
            at,
            "give otlp_endpoint, the collector's OTLP/HTTP address (\"http://127.0.0.1:4318\"), or remove [tracing]".into(),
        ));
    };
    let otlp_endpoint =
        endpoint_uri(&endpoint.get_ref().0).map_err(|why| (endpoint.span().start, why))?;
    let service_name = match t.service_name {
        None => "rampart".to_string(),
        Some(s) if !s.get_ref().0.trim().is_empty() => s.into_inner().0,
        Some(s) => return Err((s.span().start, "a service name may not be empty".into())),
    };
    let sample = match t.sample {
        None => 1.0,
        Some(s) if s.get_ref().is_finite() && (0.0..=1.0).contains(s.get_ref()) => *s.get_ref(),
        Some(s) => {
            return Err((
                s.span().start,
                "a share from 0 to 1 (0.05 records one new trace in twenty)".into(),
            ))
        }
    };
    let timeout = match t.timeout {
        None => Duration::from_secs(10),
        Some(d) if !d.get_ref().0.is_zero() && d.get_ref().0 <= MAX_TIMEOUT => d.get_ref().0,
        Some(d) => return Err((d.span().start, "a timeout above 0 and at most 60s".into())),
    };
    let mut headers = Vec::with_capacity(t.headers.len());
    for (name, value) in t.headers {
        let at = value.span().start;
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| (at, format!("{name:?} is not a header name")))?;
        let value = http::HeaderValue::from_str(&value.get_ref().0)
            .map_err(|_| (at, format!("the value of {name} is not a header value")))?;
        headers.push((name, value));
    }
    Ok(Some(TracingConfig {
        otlp_endpoint,
        service_name,
        sample,
        timeout,
        headers,
    }))
}

/// An `http://` or `https://` URL with a host; `/v1/traces` is the path
/// when it names none.
fn endpoint_uri(text: &str) -> Result<http::Uri, String> {
    let bad = || format!("{text:?} is not an http:// or https:// URL of a collector");
    let uri: http::Uri = text.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(bad());
    }
    if uri.path() == "/" {
        let mut parts = uri.into_parts();
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/v1/traces"));
        return http::Uri::from_parts(parts).map_err(|_| bad());
    }
    Ok(uri)
}
