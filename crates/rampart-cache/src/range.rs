//! Range requests answered from a stored response (RFC 9110 §14): which
//! bytes a `Range` asks for, whether `If-Range` still holds, and what the
//! answer is: the whole response, some ranges of it (206), or none (416).

use http::header::{ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::HeaderMap;

/// Most ranges one request may ask for; more are answered with the whole
/// response (a client asking for hundreds of small ranges is served once).
pub const MAX_RANGES: usize = 16;

/// How to answer a request for a stored response of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole response (no `Range`, an unreadable one, or `If-Range`
    /// no longer matching).
    Full,
    /// These byte ranges, first and last byte inclusive, in request order.
    Partial(Vec<(u64, u64)>),
    /// None of the ranges exists in the response: 416.
    Unsatisfiable,
}

/// Decides the answer to `request` for a stored response with `stored`
/// headers and a body of `len` bytes.
pub fn answer(request: &HeaderMap, stored: &HeaderMap, len: u64) -> RangeAnswer {
    let Some(range) = request.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    if request.get_all(RANGE).iter().count() > 1 || !if_range_holds(request, stored) {
        return RangeAnswer::Full;
    }
    let Some(specs) = parse(range) else {
        return RangeAnswer::Full;
    };
    if specs.len() > MAX_RANGES {
        return RangeAnswer::Full;
    }
    let ranges: Vec<(u64, u64)> = specs
        .into_iter()
        .filter_map(|spec| spec.resolve(len))
        .collect();
    if ranges.is_empty() {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial(ranges)
    }
}

/// One `range-spec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From(u64, Option<u64>),
    /// `-suffix`: the last bytes.
    Suffix(u64),
}

impl Spec {
    /// The bytes it covers in a body of `len`, if any.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            Spec::From(first, _) if first >= len => None,
            Spec::From(first, last) => Some((first, last.map_or(len - 1, |l| l.min(len - 1)))),
            Spec::Suffix(0) => None,
            Spec::Suffix(_) if len == 0 => None,
            Spec::Suffix(n) => Some((len.saturating_sub(n), len - 1)),
        }
    }
}

/// `bytes=…`: the specs, or `None` when the field is not one Rampart reads
/// (another unit, bad syntax), which means the whole response.
fn parse(range: &str) -> Option<Vec<Spec>> {
    let (unit, set) = range.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut specs = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let (first, last) = spec.split_once('-')?;
        specs.push(if first.trim().is_empty() {
            Spec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.trim().is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            Spec::From(first, last)
        });
    }
    (!specs.is_empty()).then_some(specs)
}

/// Whether `If-Range` (if sent) still names the stored response: an entity
/// tag by strong comparison (a weak one never matches), or a date equal to
/// its `Last-Modified` (RFC 9110 §13.1.5).
fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(condition) = request.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let condition = condition.trim();
    if condition.starts_with('"') || condition.starts_with("W/") {
        let Some(etag) = stored.get(ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        return !condition.starts_with("W/") && !etag.starts_with("W/") && etag == condition;
    }
    let stored_date = stored
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (httpdate::parse_http_date(condition).ok(), stored_date) {
        (Some(asked), Some(modified)) => asked == modified,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn req(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(range).unwrap());
        h
    }

    #[test]
    fn ranges_of_a_stored_body() {
        let none = HeaderMap::new();
        assert_eq!(
            answer(&req("bytes=0-3"), &none, 10),
            RangeAnswer::Partial(vec![(0, 3)])
        );
        assert_eq!(
            answer(&req("bytes=7-"), &none, 10),
            RangeAnswer::Partial(vec![(7, 9)])
        );
        assert_eq!(
            answer(&req("bytes=-4"), &none, 10),
            RangeAnswer::Partial(vec![(6, 9)])
        );
        assert_eq!(
            answer(&req("bytes=-40"), &none, 10),
            RangeAnswer::Partial(vec![(0, 9)])
        );
        assert_eq!(
            answer(&req("bytes=5-100"), &none, 10),
            RangeAnswer::Partial(vec![(5, 9)])
        );
        assert_eq!(
            answer(&req("bytes=0-1, 4-5"), &none, 10),
            RangeAnswer::Partial(vec![(0, 1), (4, 5)])
        );
        assert_eq!(
            answer(&req("bytes=10-"), &none, 10),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(
            answer(&req("bytes=-0"), &none, 10),
            RangeAnswer::Unsatisfiable
        );
        for ignored in ["items=0-1", "bytes=5-1", "bytes=a-b", "bytes="] {
            assert_eq!(
                answer(&req(ignored), &none, 10),
                RangeAnswer::Full,
                "{ignored}"
            );
        }
        assert_eq!(answer(&HeaderMap::new(), &none, 10), RangeAnswer::Full);
    }

    #[test]
    fn if_range_must_still_hold() {
        let mut stored = HeaderMap::new();
        stored.insert(ETAG, HeaderValue::from_static("\"v2\""));
        stored.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let with = |if_range: &'static str| {
            let mut h = req("bytes=0-0");
            h.insert(IF_RANGE, HeaderValue::from_static(if_range));
            answer(&h, &stored, 10)
        };
        assert_eq!(with("\"v2\""), RangeAnswer::Partial(vec![(0, 0)]));
        assert_eq!(with("\"v1\""), RangeAnswer::Full);
        assert_eq!(with("W/\"v2\""), RangeAnswer::Full, "weak tags never match");
        assert_eq!(
            with("Sun, 06 Nov 1994 08:49:37 GMT"),
            RangeAnswer::Partial(vec![(0, 0)])
        );
        assert_eq!(with("Sun, 06 Nov 1994 08:49:38 GMT"), RangeAnswer::Full);
    }
}
