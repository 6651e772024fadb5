//! The gateway's reading of upstream HTTP/1.1 responses (its heads, judged
//! strictly, and bodies framed by length, chunks or the close), fed the
//! same bytes whole and in pieces.

use bytes::BytesMut;
use http::Method;
use rampart_proxy::upstream::wire::{decode, parse_head, Decoded, Reading};

/// What reading a response found: its status, body and trailer count, or
/// that it was refused.
type Read = Result<(u16, Vec<u8>, usize), ()>;

/// Reads the response in `data` arriving `step` bytes at a time.
fn read(data: &[u8], method: &Method, step: usize) -> Read {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut feed = |buf: &mut BytesMut| {
        let next = fed + step.min(data.len() - fed);
        buf.extend_from_slice(&data[fed..next]);
        let more = next > fed;
        fed = next;
        more
    };
    let head = loop {
        match parse_head(&mut buf, method).map_err(|_| ())? {
            Some(head) if head.is_interim() => {}
            Some(head) => break head,
            None if feed(&mut buf) => {}
            None => return Err(()),
        }
    };
    let mut reading = Reading::new(head.framing);
    let (mut body, mut trailers) = (Vec::new(), 0);
    loop {
        match decode(&mut reading, &mut buf).map_err(|_| ())? {
            Decoded::Data(d) => {
                assert!(!d.is_empty(), "an empty data frame");
                body.extend_from_slice(&d);
            }
            Decoded::Trailers(t) => trailers = t.len(),
            Decoded::End => return Ok((head.status.as_u16(), body, trailers)),
            Decoded::More if feed(&mut buf) => {}
            // The connection closed: the end only of a body read to it.
            Decoded::More if reading == Reading::UntilClose => {
                return Ok((head.status.as_u16(), body, trailers))
            }
            Decoded::More => return Err(()),
        }
    }
}

/// A response read whole and read in pieces of 1 to 64 bytes gives the same
/// answer (or is refused both ways), never takes more body bytes than were
/// sent, and nothing panics.
pub fn upstream_response(data: &[u8]) {
    let step = 1 + data.first().map_or(0, |b| usize::from(*b) % 64);
    for method in [Method::GET, Method::HEAD] {
        let whole = read(data, &method, data.len().max(1));
        let pieces = read(data, &method, step);
        assert_eq!(
            whole.is_ok(),
            pieces.is_ok(),
            "refused one way only: {whole:?} / {pieces:?}"
        );
        if let (Ok(a), Ok(b)) = (&whole, &pieces) {
            assert_eq!(a, b, "read differently in pieces of {step}");
            assert!(a.1.len() <= data.len());
        }
    }
}
