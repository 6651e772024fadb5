//! Compression: a stored body's codings, each made once ([`coding`]), and
//! responses that are not stored, compressed as they stream, never
//! buffered whole ([`stream`]).

use std::pin::Pin;

use async_compression::Level;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use rampart_cache::encoding::{compress, negotiate};
use rampart_config::{CompressionConfig, Encoding};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::body::{data_stream, Body};

/// Bodies larger than this are compressed on the blocking pool.
const INLINE_COMPRESS_LIMIT: usize = 64 * 1024;

/// A stored body in one coding, when that is smaller than the body: made
/// on the blocking pool when the body is large enough to hold up other
/// requests.
pub async fn coding(body: Bytes, encoding: Encoding) -> Option<Bytes> {
    let made = if body.len() > INLINE_COMPRESS_LIMIT {
        let body = body.clone();
        tokio::task::spawn_blocking(move || compress(&body, encoding))
            .await
            .ok()?
    } else {
        compress(&body, encoding)
    };
    // Trimmed to its length: the encoders' buffers grow ahead of their
    // output, and the slack would be stored, uncounted, with the entry.
    made.ok()
        .filter(|out| out.len() < body.len())
        .map(|out| Bytes::from(out.into_boxed_slice()))
}

/// Whether a response may be compressed at all: no coding yet, a compressible
/// type (never `text/event-stream`, whose events must not wait in a buffer),
/// a status with a body, no `no-transform`, and at least `min_size` bytes
/// when the length is known.
pub fn eligible(
    cfg: &CompressionConfig,
    status: StatusCode,
    headers: &HeaderMap,
    len: Option<u64>,
) -> bool {
    if !cfg.enabled
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        return false;
    }
    if headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v != "identity")
    {
        return false;
    }
    if headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"no-transform"))
    }) {
        return false;
    }
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if ct
        .trim_start()
        .as_bytes()
        .get(..17)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
        || !cfg.compressible(ct)
    {
        return false;
    }
    len.is_none_or(|len| len >= cfg.min_size)
}

/// Adds `Accept-Encoding` to `Vary` unless it is there.
pub fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let present = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding") || v.trim() == "*");
    if !present {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A strong `ETag` becomes weak once the bytes are re-encoded.
pub fn weaken_etag(headers: &mut HeaderMap) {
    if let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
        if !etag.starts_with("W/") {
            if let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}")) {
                headers.insert(ETAG, weak);
            }
        }
    }
}

/// Compresses a streaming response when eligible and accepted by the client.
pub fn stream(
    cfg: &CompressionConfig,
    request: &HeaderMap,
    status: StatusCode,
    headers: &mut HeaderMap,
    body: Body,
) -> Body {
    let len = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if !eligible(cfg, status, headers, len) {
        return body;
    }
    add_vary_accept_encoding(headers);
    let Some(encoding) = negotiate(request.get(ACCEPT_ENCODING), &cfg.algorithms) else {
        return body;
    };
    headers.remove(CONTENT_LENGTH);
    headers.insert(
        CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    weaken_etag(headers);
    let reader = StreamReader::new(data_stream(body));
    let encoder: Pin<Box<dyn AsyncRead + Send>> = match encoding {
        Encoding::Gzip => Box::pin(
            async_compression::tokio::bufread::GzipEncoder::with_quality(reader, Level::Default),
        ),
        Encoding::Br => Box::pin(
            async_compression::tokio::bufread::BrotliEncoder::with_quality(
                reader,
                Level::Precise(4),
            ),
        ),
        Encoding::Zstd => Box::pin(
            async_compression::tokio::bufread::ZstdEncoder::with_quality(reader, Level::Default),
        ),
    };
    let frames = ReaderStream::new(encoder)
        .map_ok(Frame::data)
        .map_err(Into::into);
    StreamBody::new(frames).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_never_compressed_whatever_its_case() {
        let cfg = CompressionConfig {
            enabled: true,
            min_size: 1024,
            types: vec!["text/*".into(), "application/json".into()],
            algorithms: vec![Encoding::Gzip],
        };
        let eligible_with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.append(*name, HeaderValue::from_static(value));
            }
            eligible(&cfg, StatusCode::OK, &h, Some(4096))
        };
        assert!(eligible_with(&[("content-type", "Text/HTML")]));
        assert!(!eligible_with(&[
            ("content-type", "text/html"),
            ("cache-control", "public, No-Transform")
        ]));
        assert!(!eligible_with(&[(
            "content-type",
            " Text/Event-Stream; charset=utf-8"
        )]));
        assert!(!eligible_with(&[("content-type", "image/png")]));
    }
}
