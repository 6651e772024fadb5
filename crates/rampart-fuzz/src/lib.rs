//! Fuzz targets: one function per parser that reads outside input, each
//! taking arbitrary bytes and checking what must hold whatever they are
//! (above all: nothing panics, since no value from a client, an origin,
//! Redis or a file may panic anything). `fuzz/fuzz_targets/` runs them under
//! libFuzzer (`scripts/fuzz`); `tests/corpus.rs` runs every input of
//! `fuzz/corpus/` through them as ordinary tests, so what fuzzing found
//! stays found.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rampart_cache::freshness::{decide, initial_age, CacheControl};
use rampart_cache::{Entry, Freshness};
use rampart_config::CachePolicy;

mod http1;
mod upstream;

pub use http1::http1_response;
pub use upstream::upstream_response;

/// A fuzz target: arbitrary bytes in, a panic for a bug.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/` and of the
/// corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("units", units),
    ("templates", templates),
    ("cache_control", cache_control),
    ("age", age),
    ("dates", dates),
    ("vary", vary),
    ("l2_codec", l2_codec),
    ("http1_response", http1_response),
    ("upstream_response", upstream_response),
    ("scenario", scenario),
];

/// Header fields from `name: value` lines (invalid ones skipped).
fn headers(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// A fixed time, so runs are repeatable.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

/// The cache policies a route can have, for a response's decisions.
fn policies() -> [CachePolicy; 3] {
    let fixed = CachePolicy::ttl(Duration::from_secs(60));
    let origin = CachePolicy {
        ttl: None,
        respect_origin: true,
        heuristic: true,
        stale_while_revalidate: Duration::from_secs(30),
        stale_if_error: Duration::from_secs(3600),
        ..CachePolicy::ttl(Duration::ZERO)
    };
    let both = CachePolicy {
        respect_origin: true,
        ..fixed.clone()
    };
    [fixed, origin, both]
}

/// What the cache asks of a stored entry over its life: none of it may
/// panic, whatever freshness the origin claimed.
fn live_through(entry: &Entry) {
    for later in [0, 1, 59, 3600, 86_400 * 365] {
        let now = t0() + Duration::from_secs(later);
        let _ = entry.state(now);
        let _ = entry.ttl_secs(now);
        let _ = entry.usable_if_error(now);
        let _ = entry.age(now);
    }
    let _ = entry.freshness.horizon();
    let _ = entry.weight(64);
}

fn entry(headers: HeaderMap, freshness: Freshness, initial_age: Duration) -> Entry {
    Entry {
        status: StatusCode::OK,
        headers,
        body: Bytes::from_static(b"body"),
        encoded: Vec::new(),
        asked: Default::default(),
        vary: Vec::new(),
        response_time: t0(),
        initial_age,
        freshness,
        tags: Vec::new(),
    }
}

/// A response's freshness decided under every policy, then lived through.
fn decide_and_live(status: u16, response: &HeaderMap, request_time: SystemTime) {
    let age = initial_age(response, request_time, t0());
    for policy in policies() {
        if let Ok(freshness) = decide(&policy, status, response, age, false) {
            live_through(&entry(response.clone(), freshness, age));
        }
    }
}

/// The config file: parsed and validated, or refused with a located error.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = rampart_config::parse(&text, "fuzz.toml") {
        assert!(e.line <= text.lines().count() + 1, "{e}");
    }
}

/// Durations, sizes, and locating an offset in a file.
pub fn units(data: &[u8]) {
    use rampart_core::units::{format_duration, parse_duration, parse_size};
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = parse_duration(&text) {
        if d.as_millis() < u128::from(u64::MAX) {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text:?}");
        }
    }
    let _ = parse_size(&text);
    let offset = data.first().map_or(0, |b| usize::from(*b) * 7);
    let loc = rampart_core::located::locate(&text, offset);
    assert!(loc.line >= 1 && loc.column >= 1);
}

/// Templates in both spellings, rendered.
pub fn templates(data: &[u8]) {
    use rampart_core::template::{Syntax, Template};
    use std::borrow::Cow;
    let text = String::from_utf8_lossy(data);
    for syntax in [Syntax::Braces, Syntax::DoubleBraces] {
        if let Ok(t) = Template::parse_with(&text, syntax) {
            let all = t.render(|name| Some(Cow::Owned(name.to_uppercase())));
            if t.is_static() {
                assert_eq!(all.as_deref(), Ok(text.as_ref()));
            }
            let _ = t.render_or_empty(|_| None);
        }
    }
}

/// `Cache-Control` (and the freshness it decides).
pub fn cache_control(data: &[u8]) {
    let mut response = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data.trim_ascii()) {
        response.insert(http::header::CACHE_CONTROL, v);
    }
    let _ = CacheControl::parse(&response);
    decide_and_live(200, &response, t0());
}

/// `Age` with `Date`, and the corrected initial age.
pub fn age(data: &[u8]) {
    let response = headers(data);
    let _ = initial_age(&response, t0() - Duration::from_secs(2), t0());
    let mut with_max_age = response.clone();
    with_max_age.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600, stale-if-error=86400"),
    );
    decide_and_live(200, &with_max_age, t0());
}

/// `Expires`, `Date`, `Last-Modified` and conditionals on them.
pub fn dates(data: &[u8]) {
    let response = headers(data);
    let status = data.first().map_or(200, |b| 200 + u16::from(*b % 4) * 100);
    decide_and_live(status, &response, t0());
    let mut request = HeaderMap::new();
    if let Some(lm) = response.get(http::header::LAST_MODIFIED) {
        request.insert(http::header::IF_MODIFIED_SINCE, lm.clone());
    }
    let _ = rampart_cache::conditional::not_modified(&request, &response);
    let _ = rampart_cache::conditional::not_modified(&response, &response);
}

/// `Vary` and the request values a variant is selected by: a variant always
/// answers the request it was stored for.
pub fn vary(data: &[u8]) {
    let request = headers(data);
    let mut stored = entry(
        HeaderMap::new(),
        Freshness {
            lifetime: Duration::from_secs(60),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            keep: Duration::ZERO,
            must_revalidate: false,
        },
        Duration::ZERO,
    );
    for name in request.keys() {
        stored.vary.push((
            name.clone(),
            rampart_cache::entry::vary_value(&request, name),
        ));
    }
    assert!(stored.matches(&request), "{request:?}");
}

/// The shared tier's entry codec: foreign bytes are refused or decode to an
/// entry that encodes back to itself.
pub fn l2_codec(data: &[u8]) {
    use rampart_cluster::codec::{decode, encode};
    if let Some(e) = decode(Bytes::copy_from_slice(data)) {
        live_through(&e);
        let again = decode(encode(&e)).expect("an entry encodes to bytes that decode");
        assert_eq!(again.headers, e.headers);
        assert_eq!(again.body, e.body);
        assert_eq!(again.freshness, e.freshness);
        assert_eq!(again.tags, e.tags);
    }
}

/// A scenario file: parsed and validated, or refused with a located error.
pub fn scenario(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = rampart_load::parse(&text, "fuzz.toml", std::path::Path::new("/nonexistent")) {
        assert!(e.line <= text.lines().count() + 1, "{e}");
    }
}
