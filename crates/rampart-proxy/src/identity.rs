//! Who a request is, for logs and for the services behind: its
//! `X-Request-Id` (a UUIDv7 made here unless a trusted proxy sent one) and
//! its W3C trace context (`traceparent`, continued when the client sent a
//! valid one, started otherwise). Both go upstream and the request id comes
//! back on the response, in every log line of the request and in every
//! problem body Rampart makes.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use rand::RngCore;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `traceparent` (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context).
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The longest request id kept from a trusted proxy.
const MAX_REQUEST_ID: usize = 200;

/// A request's identity, as sent upstream and logged. Made ids are kept as
/// text and become header values only where they are sent (a hit sends no
/// request upstream).
#[derive(Debug, Clone)]
pub struct Identity {
    request_id: RequestId,
    trace: Trace,
}

#[derive(Debug, Clone)]
enum RequestId {
    /// A trusted proxy's.
    Kept(HeaderValue),
    /// A UUIDv7 made here, hyphenated.
    Made([u8; 36]),
}

#[derive(Debug, Clone)]
enum Trace {
    /// The client's valid `traceparent`, passed on as it came; its trace id.
    Continued([u8; 32]),
    /// The `traceparent` Rampart started (`00-<trace>-<parent>-00`): it
    /// replaces the client's, and its `tracestate` goes.
    Started([u8; 55]),
    /// The `traceparent` of the request's exported span (the client's
    /// trace when it was continued, whose `tracestate` then stays).
    Exported { value: [u8; 55], continued: bool },
}

impl Identity {
    /// The request id as text (always visible ASCII).
    pub fn request_id(&self) -> &str {
        match &self.request_id {
            RequestId::Kept(v) => v.to_str().unwrap_or_default(),
            RequestId::Made(text) => std::str::from_utf8(text).unwrap_or_default(),
        }
    }

    /// The request id as the value of `X-Request-Id`.
    pub fn request_id_value(&self) -> HeaderValue {
        match &self.request_id {
            RequestId::Kept(v) => v.clone(),
            RequestId::Made(text) => {
                HeaderValue::from_bytes(text).unwrap_or(HeaderValue::from_static("-"))
            }
        }
    }

    /// The trace id as text (32 lowercase hex digits).
    pub fn trace_id(&self) -> &str {
        let id = match &self.trace {
            Trace::Continued(id) => &id[..],
            Trace::Started(value) | Trace::Exported { value, .. } => &value[3..35],
        };
        std::str::from_utf8(id).unwrap_or_default()
    }

    /// Whether the client's `traceparent` is continued.
    pub fn continued(&self) -> bool {
        matches!(
            self.trace,
            Trace::Continued(_)
                | Trace::Exported {
                    continued: true,
                    ..
                }
        )
    }

    /// Takes the `traceparent` of the request's exported span as the
    /// request's trace (ignored unless it is one).
    pub fn adopt(&mut self, traceparent: &str) {
        if let (Ok(value), Some(_)) = (
            <[u8; 55]>::try_from(traceparent.as_bytes()),
            trace_id_of(traceparent.as_bytes()),
        ) {
            let continued = self.continued();
            self.trace = Trace::Exported { value, continued };
        }
    }

    /// Writes the identity into the headers of a request sent upstream.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(X_REQUEST_ID.clone(), self.request_id_value());
        let (value, continued) = match &self.trace {
            Trace::Continued(_) => return,
            Trace::Started(value) => (value, false),
            Trace::Exported { value, continued } => (value, *continued),
        };
        if let Ok(traceparent) = HeaderValue::from_bytes(value) {
            headers.insert(TRACEPARENT.clone(), traceparent);
        }
        if !continued {
            headers.remove(&TRACESTATE);
        }
    }
}

/// Settles a request's identity from the headers it came with: a trusted
/// proxy's `X-Request-Id` is kept when it is a sane token, anyone else's is
/// replaced by a new UUIDv7 made at `now`; one valid `traceparent` is passed
/// on unchanged, an invalid or missing one is replaced by a new trace (and
/// any `tracestate` dropped with it, as W3C Trace Context §3.3 asks).
pub fn identify(headers: &HeaderMap, trusted: bool, now: SystemTime) -> Identity {
    let mut rng = rand::rng();
    let kept = headers
        .get(&X_REQUEST_ID)
        .filter(|v| trusted && sane_request_id(v.as_bytes()));
    let request_id = match kept {
        Some(v) => RequestId::Kept(v.clone()),
        None => {
            let mut random = [0u8; 10];
            rng.fill_bytes(&mut random);
            RequestId::Made(uuid_v7(now, random))
        }
    };
    let mut sent = headers.get_all(&TRACEPARENT).iter();
    let continued = match (sent.next(), sent.next()) {
        (Some(one), None) => trace_id_of(one.as_bytes()),
        _ => None,
    };
    let trace = match continued {
        Some(trace_id) => Trace::Continued(trace_id),
        None => {
            let mut ids = [0u8; 24];
            rng.fill_bytes(&mut ids);
            let (trace, parent) = nonzero(ids);
            let mut value = [b'0'; 55];
            value[2] = b'-';
            hex_into(&trace, &mut value[3..35]);
            value[35] = b'-';
            hex_into(&parent, &mut value[36..52]);
            value[52] = b'-';
            Trace::Started(value)
        }
    };
    Identity { request_id, trace }
}

/// Whether a request id from a trusted proxy can be kept: 1 to 200 visible
/// ASCII characters (nothing a log line or a header could be split on).
fn sane_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A UUIDv7 (RFC 9562 §5.7) for the millisecond of `now`, hyphenated.
fn uuid_v7(now: SystemTime, random: [u8; 10]) -> [u8; 36] {
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text);
    text
}

/// The trace id of a valid version-00 `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase, neither id all zeros), or of
/// a later version's first four fields (§3.2.4).
fn trace_id_of(value: &[u8]) -> Option<[u8; 32]> {
    let lower_hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |s: &[u8]| s.iter().any(|b| *b != b'0');
    let (head, rest) = value.split_at_checked(55)?;
    let valid = head[2] == b'-'
        && head[35] == b'-'
        && head[52] == b'-'
        && lower_hex(&head[..2])
        && &head[..2] != b"ff"
        && lower_hex(&head[3..35])
        && lower_hex(&head[36..52])
        && lower_hex(&head[53..55])
        && nonzero(&head[3..35])
        && nonzero(&head[36..52])
        // Version 00 has exactly these fields; a later one may add more
        // after a dash.
        && (rest.is_empty() || (&head[..2] != b"00" && rest[0] == b'-'));
    let mut trace_id = [0u8; 32];
    trace_id.copy_from_slice(&head[3..35]);
    valid.then_some(trace_id)
}

/// A trace id and a parent id from random bytes, neither all zeros (which
/// W3C Trace Context makes invalid).
fn nonzero(mut ids: [u8; 24]) -> ([u8; 16], [u8; 8]) {
    if ids[..16].iter().all(|b| *b == 0) {
        ids[15] = 1;
    }
    if ids[16..].iter().all(|b| *b == 0) {
        ids[23] = 1;
    }
    let mut trace = [0u8; 16];
    let mut parent = [0u8; 8];
    trace.copy_from_slice(&ids[..16]);
    parent.copy_from_slice(&ids[16..]);
    (trace, parent)
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// The identity of a request with `headers`, and the headers it would
    /// be sent upstream with.
    fn sent(headers: &[(&HeaderName, &str)], trusted: bool) -> (Identity, HeaderMap) {
        let mut h = HeaderMap::new();
        for (name, value) in headers {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        let id = identify(&h, trusted, at(1_700_000_000));
        id.apply(&mut h);
        (id, h)
    }

    #[test]
    fn a_request_without_an_id_gets_a_uuid_v7_of_its_time() {
        let (id, h) = sent(&[], false);
        let parsed = uuid::Uuid::parse_str(id.request_id()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        let (secs, _) = parsed.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_700_000_000);
        assert_eq!(h[&X_REQUEST_ID], id.request_id());
        let (other, _) = sent(&[], false);
        assert_ne!(other.request_id(), id.request_id(), "ids are unique");
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_request() {
        let (id, h) = sent(&[(&X_REQUEST_ID, "chosen-by-client")], false);
        assert_ne!(id.request_id(), "chosen-by-client");
        assert_eq!(h[&X_REQUEST_ID], id.request_id());
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);

        let (id, h) = sent(&[(&X_REQUEST_ID, "lb-1234")], true);
        assert_eq!(id.request_id(), "lb-1234");
        assert_eq!(h[&X_REQUEST_ID], "lb-1234");

        let (id, _) = sent(&[(&X_REQUEST_ID, "two words")], true);
        assert_ne!(id.request_id(), "two words");
        let long = "a".repeat(201);
        let (id, _) = sent(&[(&X_REQUEST_ID, &long)], true);
        assert_eq!(id.request_id().len(), 36);
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_an_invalid_one_replaced() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (id, h) = sent(&[(&TRACEPARENT, valid), (&TRACESTATE, "vendor=1")], false);
        assert_eq!(id.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(h[&TRACEPARENT], valid);
        assert_eq!(h[&TRACESTATE], "vendor=1");

        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let (id, h) = sent(&[(&TRACEPARENT, bad), (&TRACESTATE, "vendor=1")], false);
            let now = h[&TRACEPARENT].to_str().unwrap().to_string();
            assert_ne!(now, bad);
            assert_eq!(
                trace_id_of(now.as_bytes()).as_ref().map(|t| &t[..]),
                Some(id.trace_id().as_bytes())
            );
            assert!(now.starts_with("00-") && now.ends_with("-00"), "{now}");
            assert!(!h.contains_key(&TRACESTATE), "tracestate goes with it");
        }
        let (_, h) = sent(&[(&TRACEPARENT, valid), (&TRACEPARENT, valid)], false);
        assert_eq!(h.get_all(&TRACEPARENT).iter().count(), 1, "two are invalid");
        assert_ne!(h[&TRACEPARENT], valid);

        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        let (_, h) = sent(&[(&TRACEPARENT, later)], false);
        assert_eq!(h[&TRACEPARENT], later, "a later version is passed on");
    }

    #[test]
    fn an_exported_span_becomes_the_parent_sent_upstream() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ours = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
        let (mut id, _) = sent(&[(&TRACEPARENT, valid)], false);
        id.adopt(ours);
        let mut h = HeaderMap::new();
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        id.apply(&mut h);
        assert_eq!(h[&TRACEPARENT], ours);
        assert_eq!(h[&TRACESTATE], "vendor=1", "the caller's state stays");
        assert!(id.continued());

        let (mut id, _) = sent(&[], false);
        let started = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        id.adopt(started);
        assert_eq!(id.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        id.adopt("not a traceparent");
        assert_eq!(id.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        id.apply(&mut h);
        assert_eq!(h[&TRACEPARENT], started);
        assert!(!h.contains_key(&TRACESTATE), "a new trace has no state");
    }

    #[test]
    fn a_missing_traceparent_starts_a_trace() {
        let (id, h) = sent(&[], false);
        assert_eq!(id.trace_id().len(), 32);
        assert_eq!(
            trace_id_of(h[&TRACEPARENT].as_bytes())
                .as_ref()
                .map(|t| &t[..]),
            Some(id.trace_id().as_bytes())
        );
        assert_eq!(nonzero([0; 24]).0[15], 1);
        assert_eq!(nonzero([0; 24]).1[7], 1);
    }
}
