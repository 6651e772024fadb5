//! Entries as bytes, for the shared tier (L2): a small versioned binary
//! layout, read with bounds checks so a damaged or foreign value is refused
//! (and treated as a miss), never trusted.

use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rampart_config::Encoding;

use rampart_cache::freshness::MAX_DELTA;
use rampart_cache::{Entry, Freshness};

/// The layout's name and version. Version 2 added how long an entry is
/// kept for revalidation and whether it may ever be served stale; version 1
/// entries (an earlier Rampart's) still decode, as kept for nothing extra
/// and servable stale.
const MAGIC: &[u8; 4] = b"RMP2";
const MAGIC_V1: &[u8; 4] = b"RMP1";

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn encoding_id(e: Encoding) -> u8 {
    match e {
        Encoding::Br => 1,
        Encoding::Zstd => 2,
        Encoding::Gzip => 3,
    }
}

/// The entry as bytes.
pub fn encode(entry: &Entry) -> Bytes {
    let size = entry.body.len() + entry.encoded.iter().map(|(_, b)| b.len()).sum::<usize>() + 512;
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(MAGIC);
    out.put_u16(entry.status.as_u16());
    let t = entry
        .response_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    out.put_u64(t.as_secs());
    out.put_u32(t.subsec_nanos());
    for d in [
        entry.initial_age,
        entry.freshness.lifetime,
        entry.freshness.stale_while_revalidate,
        entry.freshness.stale_if_error,
        entry.freshness.keep,
    ] {
        out.put_u64(d.as_millis() as u64);
    }
    out.put_u8(u8::from(entry.freshness.must_revalidate));
    out.put_u32(entry.headers.len() as u32);
    for (name, value) in &entry.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.put_u32(entry.vary.len() as u32);
    for (name, value) in &entry.vary {
        put_bytes(&mut out, name.as_str().as_bytes());
        match value {
            Some(v) => {
                out.put_u8(1);
                put_bytes(&mut out, v.as_bytes());
            }
            None => out.put_u8(0),
        }
    }
    out.put_u32(entry.tags.len() as u32);
    for t in &entry.tags {
        put_bytes(&mut out, t.as_bytes());
    }
    out.put_u32(entry.encoded.len() as u32);
    for (enc, b) in &entry.encoded {
        out.put_u8(encoding_id(*enc));
        put_bytes(&mut out, b);
    }
    put_bytes(&mut out, &entry.body);
    out.freeze()
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Option<()> {
        (self.0.remaining() >= n).then_some(())
    }
    fn u8(&mut self) -> Option<u8> {
        self.need(1)?;
        Some(self.0.get_u8())
    }
    fn u16(&mut self) -> Option<u16> {
        self.need(2)?;
        Some(self.0.get_u16())
    }
    fn u32(&mut self) -> Option<u32> {
        self.need(4)?;
        Some(self.0.get_u32())
    }
    fn u64(&mut self) -> Option<u64> {
        self.need(8)?;
        Some(self.0.get_u64())
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        self.need(n)?;
        Some(self.0.split_to(n))
    }
    /// A count of items each at least `min` bytes long, checked against
    /// what is left so a damaged count cannot make us allocate.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(min) <= self.0.remaining()).then_some(n)
    }
}

/// The entry in `bytes`, or `None` when they are not one.
pub fn decode(bytes: Bytes) -> Option<Entry> {
    let mut r = Reader(bytes);
    r.need(4)?;
    let version = match &r.0[..4] {
        m if m == MAGIC => 2,
        m if m == MAGIC_V1 => 1,
        _ => return None,
    };
    r.0.advance(4);
    let status = StatusCode::from_u16(r.u16()?).ok()?;
    let secs = r.u64()?;
    let nanos = r.u32()?;
    let response_time =
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos.min(999_999_999)))?;
    let mut ms = || r.u64().map(Duration::from_millis);
    let (initial_age, lifetime, swr, sie) = (ms()?, ms()?, ms()?, ms()?);
    let (keep, must_revalidate) = if version >= 2 {
        let keep = ms()?;
        (keep, r.u8()? != 0)
    } else {
        (Duration::ZERO, false)
    };
    // Sized once (growing it as fields are added cost a rehash or two per
    // entry), and refused past what a header map holds rather than letting
    // it panic on a damaged or hostile value.
    let fields = r.count(8)?;
    let mut headers = HeaderMap::try_with_capacity(fields).ok()?;
    for _ in 0..fields {
        let name = HeaderName::from_bytes(&r.bytes()?).ok()?;
        let value = HeaderValue::from_maybe_shared(r.bytes()?).ok()?;
        headers.try_append(name, value).ok()?;
    }
    let mut vary = Vec::new();
    for _ in 0..r.count(5)? {
        let name = HeaderName::from_bytes(&r.bytes()?).ok()?;
        let value = match r.u8()? {
            0 => None,
            _ => Some(HeaderValue::from_maybe_shared(r.bytes()?).ok()?),
        };
        vary.push((name, value));
    }
    let mut tags = Vec::new();
    for _ in 0..r.count(4)? {
        tags.push(String::from_utf8(r.bytes()?.to_vec()).ok()?);
    }
    let mut encoded = Vec::new();
    for _ in 0..r.count(5)? {
        let enc = match r.u8()? {
            1 => Encoding::Br,
            2 => Encoding::Zstd,
            3 => Encoding::Gzip,
            _ => return None,
        };
        encoded.push((enc, r.bytes()?));
    }
    let body = r.bytes()?;
    if r.0.has_remaining() {
        return None;
    }
    Some(Entry {
        status,
        headers,
        body,
        encoded,
        asked: Default::default(),
        vary,
        response_time,
        // Values from Redis are not trusted to be sane: bounded as an
        // origin's are.
        initial_age: initial_age.min(MAX_DELTA),
        freshness: Freshness {
            lifetime,
            stale_while_revalidate: swr,
            stale_if_error: sie,
            keep,
            must_revalidate,
        }
        .bounded(),
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("set-thing", HeaderValue::from_static("a"));
        headers.append("set-thing", HeaderValue::from_static("b"));
        Entry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"{\"kpi\": 1}"),
            encoded: vec![(Encoding::Gzip, Bytes::from_static(b"\x1f\x8b..."))],
            asked: Default::default(),
            vary: vec![
                (
                    HeaderName::from_static("accept-language"),
                    Some(HeaderValue::from_static("pt")),
                ),
                (HeaderName::from_static("x-absent"), None),
            ],
            response_time: SystemTime::UNIX_EPOCH + Duration::new(1_790_000_000, 123_000_000),
            initial_age: Duration::from_secs(3),
            freshness: Freshness {
                lifetime: Duration::from_secs(600),
                stale_while_revalidate: Duration::from_secs(30),
                stale_if_error: Duration::from_secs(3600),
                keep: Duration::ZERO,
                must_revalidate: false,
            },
            tags: vec!["kpi".into(), "event:7".into()],
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let d = decode(encode(&e)).expect("decodes");
        assert_eq!(d.status, e.status);
        assert_eq!(d.headers, e.headers);
        assert_eq!(d.body, e.body);
        assert_eq!(d.encoded, e.encoded);
        assert_eq!(d.vary, e.vary);
        assert_eq!(d.response_time, e.response_time);
        assert_eq!(d.initial_age, e.initial_age);
        assert_eq!(d.freshness, e.freshness);
        assert_eq!(d.tags, e.tags);
    }

    #[test]
    fn damaged_values_are_refused() {
        let bytes = encode(&sample());
        for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(bytes.slice(..cut)).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(Bytes::from(longer)).is_none());
        assert!(decode(Bytes::from_static(b"not an entry at all")).is_none());
    }

    #[test]
    fn more_fields_than_a_header_map_holds_are_refused_not_a_panic() {
        // An entry as a damaged or hostile Redis could hold it: 40,000
        // header fields of distinct names, past the 32,768 a header map
        // can take.
        let mut e = sample();
        e.headers = HeaderMap::new();
        let mut bytes = encode(&e).to_vec();
        let at = 4 + 2 + 8 + 4 + 5 * 8 + 1;
        assert_eq!(&bytes[at..at + 4], &0u32.to_be_bytes());
        let fields = 40_000u32;
        let mut many = fields.to_be_bytes().to_vec();
        for i in 0..fields {
            for part in [format!("x-f{i}").into_bytes(), b"v".to_vec()] {
                many.extend_from_slice(&(part.len() as u32).to_be_bytes());
                many.extend_from_slice(&part);
            }
        }
        bytes.splice(at..at + 4, many);
        assert!(decode(Bytes::from(bytes)).is_none());
    }
}
