//! A stored response and the questions asked of it on every hit.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rampart_config::Encoding;

use crate::freshness::Freshness;

/// One stored response (one variant of a URL).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The origin's status.
    pub status: StatusCode,
    /// End-to-end headers as stored: no hop-by-hop headers, no `Age`, no
    /// `Content-Length` (computed per body), and no `Content-Encoding` unless
    /// the origin encoded the body itself.
    pub headers: HeaderMap,
    /// The body as received (identity, or the origin's own coding).
    pub body: Bytes,
    /// Compressed copies, each smaller than `body`: the coding the filling
    /// client asked for, made at store time, and each other one made when a
    /// client first asks for it.
    pub encoded: Vec<(Encoding, Bytes)>,
    /// The codings already made or being made for this entry (or found not
    /// worth making), so each is made at most once.
    pub asked: CodingsAsked,
    /// The request header values this variant was selected by (`Vary`).
    pub vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// When the response was received (or last revalidated).
    pub response_time: SystemTime,
    /// Its corrected initial age at `response_time`.
    pub initial_age: Duration,
    /// How long it is fresh and may be served stale.
    pub freshness: Freshness,
    /// Tags for purging.
    pub tags: Vec<String>,
}

/// Which codings of an entry have been asked for: one bit per coding, set
/// once. A copy of an entry (a revalidated one, one with a coding added)
/// carries the bits over.
#[derive(Debug, Default)]
pub struct CodingsAsked(AtomicU8);

impl CodingsAsked {
    fn bit(encoding: Encoding) -> u8 {
        match encoding {
            Encoding::Br => 1,
            Encoding::Zstd => 2,
            Encoding::Gzip => 4,
        }
    }

    /// Marks `encoding` asked for; true only for the first caller, who makes it.
    pub fn claim(&self, encoding: Encoding) -> bool {
        let bit = Self::bit(encoding);
        self.0.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }
}

impl Clone for CodingsAsked {
    fn clone(&self) -> Self {
        Self(AtomicU8::new(self.0.load(Ordering::Relaxed)))
    }
}

/// How usable an entry is at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Within its freshness lifetime.
    Fresh,
    /// Expired, within `stale_while_revalidate`.
    StaleWhileRevalidate,
    /// Expired, beyond the revalidate window: usable only for conditional
    /// revalidation, and (if `usable_if_error`) when the origin fails.
    Stale {
        /// Whether it is still within `stale_if_error`.
        usable_if_error: bool,
    },
}

impl EntryState {
    /// `fresh`, `stale-while-revalidate`, `stale-if-error` (usable only
    /// when the origin fails) or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Fresh => "fresh",
            EntryState::StaleWhileRevalidate => "stale-while-revalidate",
            EntryState::Stale {
                usable_if_error: true,
            } => "stale-if-error",
            EntryState::Stale {
                usable_if_error: false,
            } => "stale",
        }
    }
}

/// Bytes counted for an entry beyond its bodies and headers: moka's per-entry
/// nodes and timer-wheel slot, the `Arc`s, the variant list, allocator
/// headers. Calibrated with `bench/l1-memory.sh`, which compares the process's
/// resident memory with the budget under a million distinct keys.
pub const ENTRY_OVERHEAD: u64 = 1024;

/// Bytes counted per header slot the stored `HeaderMap` holds, used or not
/// (a bucket of name, value and links, and its index).
const HEADER_SLOT: usize = 128;

/// Bytes counted per stored header value beyond its length: its own
/// allocation (values are copied out of the connection's buffer when stored)
/// and the shared block the first hit's clone of it allocates.
const HEADER_VALUE_OVERHEAD: usize = 64;

/// Bytes counted per compressed copy beyond its length: its allocation and
/// the allocator's slack around copies made at different times than their
/// entry (calibrated through the proxy by `bench/l1-memory.sh`).
const ENCODED_OVERHEAD: usize = 256;

impl Entry {
    /// The response's current age (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age.saturating_add(
            now.duration_since(self.response_time)
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Seconds of freshness left; negative once stale.
    pub fn ttl_secs(&self, now: SystemTime) -> i64 {
        let age = self.age(now);
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        if self.freshness.lifetime >= age {
            secs(self.freshness.lifetime - age)
        } else {
            let over = age - self.freshness.lifetime;
            (-secs(over)).saturating_sub(i64::from(over.subsec_nanos() > 0))
        }
    }

    /// Fresh, stale but servable while revalidating, or stale.
    pub fn state(&self, now: SystemTime) -> EntryState {
        let age = self.age(now);
        let f = &self.freshness;
        if age < f.lifetime {
            EntryState::Fresh
        } else if age < f.lifetime.saturating_add(f.stale_while_revalidate) {
            EntryState::StaleWhileRevalidate
        } else {
            EntryState::Stale {
                usable_if_error: self.usable_if_error(now),
            }
        }
    }

    /// Whether it may still be served when the origin fails.
    pub fn usable_if_error(&self, now: SystemTime) -> bool {
        self.age(now)
            < self
                .freshness
                .lifetime
                .saturating_add(self.freshness.stale_if_error)
    }

    /// Whether this variant answers a request with these headers.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| vary_value(request, name).as_ref() == value.as_ref())
    }

    /// Bytes this entry is charged against the memory budget.
    pub fn weight(&self, key_len: usize) -> u64 {
        let headers: usize = self.headers.capacity() * HEADER_SLOT
            + self
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + HEADER_VALUE_OVERHEAD)
                .sum::<usize>();
        let encoded: usize = self
            .encoded
            .iter()
            .map(|(_, b)| b.len() + ENCODED_OVERHEAD)
            .sum();
        let vary: usize = self
            .vary
            .iter()
            .map(|(k, v)| k.as_str().len() + v.as_ref().map_or(0, |v| v.len()) + 32)
            .sum();
        let tags: usize = self.tags.iter().map(|t| 2 * t.len() + key_len + 96).sum();
        (self.body.len() + encoded + headers + vary + tags + 2 * key_len) as u64 + ENTRY_OVERHEAD
    }
}

/// Request fields whose values are case-insensitive by their grammar
/// (content-coding, media-type and language tokens), so `Vary` on them
/// compares lower-cased values.
const CASE_INSENSITIVE: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
];

/// The normalised value of a request header for `Vary` matching: all field
/// lines joined with ", ", runs of white space folded to one space, ends
/// trimmed, and lower-cased where the field's grammar is case-insensitive.
/// Bytes are compared as they are: two values that differ in any byte
/// (however unlike UTF-8) select different variants.
pub fn vary_value(request: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = request.get_all(name).iter().peekable();
    values.peek()?;
    let lower = CASE_INSENSITIVE.contains(&name.as_str());
    let mut out: Vec<u8> = Vec::new();
    for v in values {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        let mut space = false;
        for &b in v.as_bytes().trim_ascii() {
            if b == b' ' || b == b'\t' {
                space = true;
                continue;
            }
            if space {
                out.push(b' ');
                space = false;
            }
            out.push(if lower { b.to_ascii_lowercase() } else { b });
        }
    }
    HeaderValue::from_bytes(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lifetime: u64, swr: u64, sie: u64, t0: SystemTime) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"x"),
            encoded: vec![],
            asked: CodingsAsked::default(),
            vary: vec![],
            response_time: t0,
            initial_age: Duration::from_secs(2),
            freshness: Freshness {
                lifetime: Duration::from_secs(lifetime),
                stale_while_revalidate: Duration::from_secs(swr),
                stale_if_error: Duration::from_secs(sie),
                keep: Duration::ZERO,
                must_revalidate: false,
            },
            tags: vec![],
        }
    }

    #[test]
    fn states_over_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let e = entry(10, 5, 60, t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(e.state(at(0)), EntryState::Fresh);
        assert_eq!(e.ttl_secs(at(0)), 8);
        assert_eq!(e.state(at(7)), EntryState::Fresh);
        assert_eq!(e.state(at(8)), EntryState::StaleWhileRevalidate);
        assert_eq!(e.ttl_secs(at(9)), -1);
        assert_eq!(
            e.state(at(13)),
            EntryState::Stale {
                usable_if_error: true
            }
        );
        assert_eq!(
            e.state(at(67)),
            EntryState::Stale {
                usable_if_error: true
            }
        );
        assert_eq!(
            e.state(at(68)),
            EntryState::Stale {
                usable_if_error: false
            }
        );
    }

    #[test]
    fn each_coding_is_claimed_once_and_copies_keep_the_claims() {
        let asked = CodingsAsked::default();
        assert!(asked.claim(Encoding::Br));
        assert!(!asked.claim(Encoding::Br));
        let copy = asked.clone();
        assert!(!copy.claim(Encoding::Br));
        assert!(copy.claim(Encoding::Gzip));
        assert!(asked.claim(Encoding::Gzip), "a copy's claims are its own");
        assert!(asked.claim(Encoding::Zstd));
    }

    #[test]
    fn vary_matching() {
        let mut e = entry(10, 0, 0, SystemTime::UNIX_EPOCH);
        let mut req = HeaderMap::new();
        req.insert("accept-language", HeaderValue::from_static("en,  fr"));
        e.vary = vec![(
            HeaderName::from_static("accept-language"),
            vary_value(&req, &HeaderName::from_static("accept-language")),
        )];
        assert!(e.matches(&req));
        let mut other = HeaderMap::new();
        other.insert("accept-language", HeaderValue::from_static("de"));
        assert!(!e.matches(&other));
        assert!(!e.matches(&HeaderMap::new()));
        let mut shouting = HeaderMap::new();
        shouting.insert("accept-language", HeaderValue::from_static(" EN,\t fr "));
        assert!(
            e.matches(&shouting),
            "case and white space do not matter here"
        );
        let user = HeaderName::from_static("x-user");
        let raw = |bytes: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(user.clone(), HeaderValue::from_bytes(bytes).unwrap());
            h
        };
        assert_ne!(
            vary_value(&raw(b"\xff\xfealice"), &user),
            vary_value(&raw(b"\xfd\xfcalice"), &user),
            "bytes that are not UTF-8 still differ"
        );
        assert_ne!(
            vary_value(&raw(b"Alice"), &user),
            vary_value(&raw(b"alice"), &user)
        );
    }
}
