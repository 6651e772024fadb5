//! Who may use the admin API: a bearer token for `/admin/*`, or for events
//! also an HMAC-SHA256 signature of the body with the webhook secret. Both
//! compared in constant time.

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// Constant-time check of `Authorization: Bearer <token>`. Without a
/// configured token, `/admin/*` is closed to everyone.
pub fn bearer_ok(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(expected) = token else { return false };
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time. Without a secret, no signature is valid.
pub fn signature_ok(secret: Option<&str>, body: &[u8], signature: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(secret) = secret else { return false };
    let Some(given) = decode_hex(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_signatures() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(bearer_ok(&h, Some("s3cret")));
        assert!(!bearer_ok(&h, Some("s3cre")));
        assert!(!bearer_ok(&h, None));
        // HMAC-SHA256("key", "body")
        let sig = "515aae133b435d4000956731f68ae5cf5eb85d4f0dc6a546d2bfcd3595ec1ae1";
        assert!(signature_ok(Some("key"), b"body", sig));
        assert!(!signature_ok(Some("other"), b"body", sig));
        assert!(!signature_ok(Some("key"), b"bodies", sig));
        assert!(!signature_ok(None, b"body", sig));
        assert!(!signature_ok(Some("key"), b"body", "zz"));
    }
}
