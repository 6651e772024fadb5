//! Compression: a stored body is compressed once per coding, when a client
//! first asks for that coding, and each answer picks the best coding the
//! client accepts (`Accept-Encoding` q-values).

use std::io::Write;

use bytes::Bytes;
use http::HeaderValue;
use rampart_config::Encoding;

thread_local! {
    /// One zstd context per thread, reused: creating one per body dominates
    /// the cost for small bodies.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Compresses with one coding. Levels favour speed, since a coding is made
/// while a client waits: gzip 6, brotli 4, zstd 3.
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

/// What to send one client from an entry's stored codings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The best stored coding the client accepts (`None`: identity).
    pub send: Option<Encoding>,
    /// The coding the client would get if it were stored, when it is not.
    pub missing: Option<Encoding>,
}

/// Chooses among `stored` codings for a client, and says which coding among
/// `algorithms` (in preference order) it would rather have that is not
/// stored yet.
pub fn choose(
    accept: Option<&HeaderValue>,
    algorithms: &[Encoding],
    stored: &[(Encoding, Bytes)],
) -> Choice {
    let none = Choice {
        send: None,
        missing: None,
    };
    let Some(wanted) = negotiate(accept, algorithms) else {
        return none;
    };
    if stored.iter().any(|(e, _)| *e == wanted) {
        return Choice {
            send: Some(wanted),
            missing: None,
        };
    }
    // The preferred coding has the highest q-value of all: among the stored
    // ones (in the same order) the winner is found again.
    let available: Vec<Encoding> = algorithms
        .iter()
        .copied()
        .filter(|a| stored.iter().any(|(e, _)| e == a))
        .collect();
    Choice {
        send: negotiate(accept, &available),
        missing: Some(wanted),
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
    fn a_choice_sends_the_best_stored_coding_and_names_the_one_missing() {
        let accept = HeaderValue::from_static("gzip, br");
        let stored = |encs: &[Encoding]| -> Vec<(Encoding, Bytes)> {
            encs.iter().map(|e| (*e, Bytes::new())).collect()
        };
        let algorithms = [Br, Zstd, Gzip];
        assert_eq!(
            choose(Some(&accept), &algorithms, &stored(&[Br, Gzip])),
            Choice {
                send: Some(Br),
                missing: None
            }
        );
        assert_eq!(
            choose(Some(&accept), &algorithms, &stored(&[Gzip, Zstd])),
            Choice {
                send: Some(Gzip),
                missing: Some(Br)
            }
        );
        assert_eq!(
            choose(Some(&accept), &algorithms, &[]),
            Choice {
                send: None,
                missing: Some(Br)
            }
        );
        let nothing = Choice {
            send: None,
            missing: None,
        };
        assert_eq!(choose(None, &algorithms, &stored(&[Br])), nothing);
        let identity = HeaderValue::from_static("identity");
        assert_eq!(choose(Some(&identity), &algorithms, &[]), nothing);
        assert_eq!(choose(Some(&accept), &[], &[]), nothing);
    }

    #[test]
    fn compression_round_trips() {
        let body = "rampart ".repeat(1000).into_bytes();
        for enc in [Br, Zstd, Gzip] {
            let data = compress(&body, enc).unwrap();
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
    }
}
