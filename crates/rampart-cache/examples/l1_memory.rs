//! Fills the in-memory cache with distinct keys and reports how its charged
//! bytes and the process's resident memory compare with the byte budget.
//! Run by `bench/l1-memory.sh`; arguments: KEYS BUDGET_MIB BODY_BYTES.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rampart_cache::{Entry, Freshness, MemoryCache};

fn stored_headers(template: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(template.len());
    for (name, value) in template {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    headers
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[allow(clippy::print_stdout)]
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (keys, budget_mib, body_len) = match args.as_slice() {
        [k, b, s] => (*k, *b, *s as usize),
        _ => (1_000_000, 64, 1024),
    };
    let budget = budget_mib << 20;
    let baseline = rss_bytes();
    let cache = MemoryCache::new(budget, 8);
    // What an origin typically sends, stored as the gateway stores it: each
    // value in an allocation of its own.
    let template = [
        ("content-type", "application/json"),
        ("etag", "\"0123456789abcdef\""),
        ("date", "Sun, 22 Nov 2026 03:00:00 GMT"),
        ("last-modified", "Sun, 22 Nov 2026 02:00:00 GMT"),
        ("cache-control", "public, max-age=600"),
        ("server", "nginx/1.22.1"),
        ("accept-ranges", "bytes"),
        ("vary", "Accept-Encoding"),
    ];
    let mut peak_rss = 0u64;
    let mut peak_charged = 0u64;
    for i in 0..keys {
        // A distinct body per key, so nothing is shared between entries.
        let mut body = vec![b'x'; body_len];
        body[..8.min(body_len)].copy_from_slice(&i.to_le_bytes()[..8.min(body_len)]);
        let entry = Entry {
            status: StatusCode::OK,
            headers: stored_headers(&template),
            body: Bytes::from(body),
            encoded: Vec::new(),
            asked: Default::default(),
            vary: Vec::new(),
            response_time: SystemTime::now(),
            initial_age: Duration::ZERO,
            freshness: Freshness {
                lifetime: Duration::from_secs(600),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                keep: Duration::ZERO,
                must_revalidate: false,
            },
            tags: vec![format!("member:{}", i % 1000)],
        };
        let key = format!("http://api.example/api/v1/members/{i}?include=card");
        let stored = cache.insert(&key, entry);
        // A hit clones the headers, which gives each value a shared block.
        drop(stored.headers.clone());
        if i % 10_000 == 0 {
            peak_rss = peak_rss.max(rss_bytes().saturating_sub(baseline));
            peak_charged = peak_charged.max(cache.weighted_size());
        }
    }
    cache.run_pending_tasks();
    let rss = rss_bytes().saturating_sub(baseline);
    peak_rss = peak_rss.max(rss);
    peak_charged = peak_charged.max(cache.weighted_size());
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "keys={keys} body={body_len}B budget={:.1}MiB entries={} charged={:.1}MiB peak_charged={:.1}MiB ({:.3}x) rss_growth={:.1}MiB peak_rss_growth={:.1}MiB ({:.3}x budget)",
        mib(budget),
        cache.entry_count(),
        mib(cache.weighted_size()),
        mib(peak_charged),
        peak_charged as f64 / budget as f64,
        mib(rss),
        mib(peak_rss),
        peak_rss as f64 / budget as f64,
    );
}
