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

/// A request's identity, as sent upstream and logged.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The `X-Request-Id` value.
    pub request_id: HeaderValue,
    /// The trace id (32 lowercase hex digits) of the `traceparent` sent on.
    pub trace_id: String,
}

impl Identity {
    /// The request id as text (always visible ASCII).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }
}

/// Settles a request's identity and writes it into the headers that go
/// upstream: a trusted proxy's `X-Request-Id` is kept when it is a sane
/// token, anyone else's is replaced by a new UUIDv7 made at `now`; a valid
/// `traceparent` is passed on unchanged, an invalid or missing one is
/// replaced by a new trace (and any `tracestate` dropped with it, as W3C
/// Trace Context §3.3 asks).
pub fn identify(headers: &mut HeaderMap, trusted: bool, now: SystemTime) -> Identity {
    let mut rng = rand::rng();
    let kept = headers
        .get(&X_REQUEST_ID)
        .filter(|v| trusted && sane_request_id(v.as_bytes()))
        .cloned();
    let request_id = match kept {
        Some(v) => v,
        None => {
            let mut random = [0u8; 10];
            rng.fill_bytes(&mut random);
            let id = uuid_v7(now, random);
            headers.insert(X_REQUEST_ID.clone(), id.clone());
            id
        }
    };
    let trace_id = match headers.get(&TRACEPARENT).and_then(trace_id_of) {
        Some(id) if headers.get_all(&TRACEPARENT).iter().count() == 1 => id,
        _ => {
            let mut ids = [0u8; 24];
            rng.fill_bytes(&mut ids);
            let (trace, parent) = nonzero(ids);
            let value = format!("00-{}-{}-00", hex(&trace), hex(&parent));
            headers.remove(&TRACESTATE);
            headers.insert(
                TRACEPARENT.clone(),
                HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static("")),
            );
            hex(&trace)
        }
    };
    Identity {
        request_id,
        trace_id,
    }
}

/// Whether a request id from a trusted proxy can be kept: 1 to 200 visible
/// ASCII characters (nothing a log line or a header could be split on).
fn sane_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A UUIDv7 (RFC 9562 §5.7) for the millisecond of `now`, as a header value.
fn uuid_v7(now: SystemTime, random: [u8; 10]) -> HeaderValue {
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

/// The trace id of a valid version-00 `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase, neither id all zeros), or of
/// a later version's first four fields (§3.2.4).
fn trace_id_of(value: &HeaderValue) -> Option<String> {
    let v = value.to_str().ok()?;
    let mut fields = v.split('-');
    let (version, trace, parent, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = lower_hex(version, 2)
        && version != "ff"
        && (version != "00" || fields.next().is_none())
        && lower_hex(trace, 32)
        && lower_hex(parent, 16)
        && lower_hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_string())
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_request_without_an_id_gets_a_uuid_v7_of_its_time() {
        let mut h = HeaderMap::new();
        let id = identify(&mut h, false, at(1_700_000_000));
        let parsed = uuid::Uuid::parse_str(id.request_id()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        let (secs, _) = parsed.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_700_000_000);
        assert_eq!(h[&X_REQUEST_ID], id.request_id);
        let other = identify(&mut HeaderMap::new(), false, at(1_700_000_000));
        assert_ne!(other.request_id, id.request_id, "ids are unique");
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_request() {
        let mut from_client = HeaderMap::new();
        from_client.insert(&X_REQUEST_ID, HeaderValue::from_static("chosen-by-client"));
        let id = identify(&mut from_client, false, at(1));
        assert_ne!(id.request_id(), "chosen-by-client");
        assert_eq!(from_client[&X_REQUEST_ID], id.request_id);

        let mut from_proxy = HeaderMap::new();
        from_proxy.insert(&X_REQUEST_ID, HeaderValue::from_static("lb-1234"));
        assert_eq!(
            identify(&mut from_proxy, true, at(1)).request_id(),
            "lb-1234"
        );

        let mut odd = HeaderMap::new();
        odd.insert(&X_REQUEST_ID, HeaderValue::from_static("two words"));
        assert_ne!(identify(&mut odd, true, at(1)).request_id(), "two words");
        let mut long = HeaderMap::new();
        long.insert(
            &X_REQUEST_ID,
            HeaderValue::from_str(&"a".repeat(201)).unwrap(),
        );
        assert_eq!(identify(&mut long, true, at(1)).request_id().len(), 36);
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_an_invalid_one_replaced() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(valid));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let id = identify(&mut h, false, at(1));
        assert_eq!(id.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(h[&TRACEPARENT], valid);
        assert_eq!(h[&TRACESTATE], "vendor=1");

        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let mut h = HeaderMap::new();
            h.insert(&TRACEPARENT, HeaderValue::from_static(bad));
            h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
            let id = identify(&mut h, false, at(1));
            let sent = h[&TRACEPARENT].to_str().unwrap().to_string();
            assert_ne!(sent, bad);
            assert_eq!(trace_id_of(&h[&TRACEPARENT]), Some(id.trace_id.clone()));
            assert!(sent.starts_with("00-") && sent.ends_with("-00"), "{sent}");
            assert!(!h.contains_key(&TRACESTATE), "tracestate goes with it");
        }
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(later));
        identify(&mut h, false, at(1));
        assert_eq!(h[&TRACEPARENT], later, "a later version is passed on");
    }

    #[test]
    fn a_missing_traceparent_starts_a_trace() {
        let mut h = HeaderMap::new();
        let id = identify(&mut h, false, at(1));
        assert_eq!(id.trace_id.len(), 32);
        assert_eq!(trace_id_of(&h[&TRACEPARENT]), Some(id.trace_id));
        assert_eq!(nonzero([0; 24]).0[15], 1);
        assert_eq!(nonzero([0; 24]).1[7], 1);
    }
}
