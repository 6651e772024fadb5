//! Compression: bodies are compressed once when stored, and each hit picks
//! the best stored coding the client accepts (`Accept-Encoding` q-values).

use std::io::Write;

use bytes::Bytes;
use http::HeaderValue;
use rampart_config::Encoding;

thread_local! {
    /// One zstd context per thread, reused: creating one per body dominates
    /// the cost for small bodies.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Compresses `body` with each algorithm, keeping only results smaller than
/// the original. Levels favour speed at store time: gzip 6, brotli 4, zstd 3.
/// Each result is trimmed to its length: the encoders' buffers grow ahead of
/// their output, and the slack would be stored, uncounted, with the entry.
pub fn compress_all(body: &[u8], algorithms: &[Encoding]) -> Vec<(Encoding, Bytes)> {
    algorithms
        .iter()
        .filter_map(|&enc| {
            let out = compress(body, enc).ok()?;
            (out.len() < body.len()).then(|| (enc, Bytes::from(out.into_boxed_slice())))
        })
        .collect()
}

/// Compresses with one coding.
pub fn compress(body: &[u8], encoding: Encoding) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 3),
                flate2::Compression::new(6),
            );
            e.write_all(body)?;
            e.finish()
        }
        Encoding::Br => {
            // Quality 4 with a window of at least 64 KiB: smaller windows are
            // pathologically slow in this encoder, larger qualities cost more
            // than they save at store time (bench: compress_cost example).
            let params = brotli::enc::BrotliEncoderParams {
                quality: 4,
                lgwin: (usize::BITS - body.len().max(1).leading_zeros()).clamp(16, 22) as i32,
                size_hint: body.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(body.len() / 3);
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)?;
            Ok(out)
        }
        Encoding::Zstd => ZSTD.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Compressor::new(3)?);
            }
            match slot.as_mut() {
                Some(compressor) => compressor.compress(body),
                None => zstd::bulk::compress(body, 3),
            }
        }),
    }
}

/// Picks the coding to send: among `available` (in preference order), the
/// one the client gives the highest q-value, if that beats identity.
/// `None` means identity. Without `Accept-Encoding`, identity.
pub fn negotiate(accept: Option<&HeaderValue>, available: &[Encoding]) -> Option<Encoding> {
    let accept = accept?.to_str().ok()?;
    let mut wildcard: Option<f32> = None;
    let mut identity: Option<f32> = None;
    let mut listed: Vec<(&str, f32)> = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
        }
        match coding {
            "*" => wildcard = Some(q),
            c if c.eq_ignore_ascii_case("identity") => identity = Some(q),
            c => listed.push((c, q)),
        }
    }
    let q_of = |enc: Encoding| {
        listed
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(enc.as_str()))
            .map(|(_, q)| *q)
            .or(wildcard)
            .unwrap_or(0.0)
    };
    let mut best: Option<(Encoding, f32)> = None;
    for &enc in available {
        let q = q_of(enc);
        if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((enc, q));
        }
    }
    // Identity is always acceptable as a fallback; it beats a listed coding
    // only when the client names it with a higher q-value.
    match best {
        Some((enc, q)) if identity.is_none_or(|identity_q| q >= identity_q) => Some(enc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use Encoding::*;

    fn pick(accept: &str) -> Option<Encoding> {
        negotiate(
            Some(&HeaderValue::from_str(accept).unwrap()),
            &[Br, Zstd, Gzip],
        )
    }

    #[test]
    fn negotiation_honours_q_values() {
        assert_eq!(pick("gzip, deflate, br"), Some(Br));
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Br));
        assert_eq!(pick("gzip;q=1, br;q=0.5"), Some(Gzip));
        assert_eq!(pick("br;q=0, gzip"), Some(Gzip));
        assert_eq!(pick("br;q=0, gzip;q=0.8"), Some(Gzip));
        assert_eq!(pick("gzip;q=0.8, identity;q=0.9"), None);
        assert_eq!(pick("zstd"), Some(Zstd));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("gzip;q=0.5, identity"), None);
        assert_eq!(pick("*"), Some(Br));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("deflate"), None);
        assert_eq!(negotiate(None, &[Gzip]), None);
        assert_eq!(
            negotiate(Some(&HeaderValue::from_static("br")), &[Gzip]),
            None
        );
    }

    #[test]
    fn compression_round_trips_and_skips_growth() {
        let body = "rampart ".repeat(1000).into_bytes();
        let all = compress_all(&body, &[Br, Zstd, Gzip]);
        assert_eq!(all.len(), 3);
        for (enc, data) in &all {
            assert!(data.len() < body.len() / 10, "{enc:?}");
            let mut out = Vec::new();
            match enc {
                Gzip => {
                    flate2::read::GzDecoder::new(&data[..])
                        .read_to_end(&mut out)
                        .unwrap();
                }
                Br => {
                    brotli::Decompressor::new(&data[..], 4096)
                        .read_to_end(&mut out)
                        .unwrap();
                }
                Zstd => out = zstd::decode_all(&data[..]).unwrap(),
            }
            assert_eq!(out, body);
        }
        // incompressible input yields no variant
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(compress_all(&noise, &[Gzip]).is_empty());
    }
}
