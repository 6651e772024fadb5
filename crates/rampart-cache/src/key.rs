//! Cache keys: scheme, host, path and normalised query, plus the route's
//! extra key parts (a credential, a cookie) as a SHA-256 digest so that no
//! credential sits in memory or logs in clear.

use http::header::{COOKIE, HOST};
use http::{HeaderMap, Uri};
use rampart_config::{CachePolicy, KeyPart};
use sha2::{Digest, Sha256};

/// Separates the URL part of a key from the digest of extra parts.
pub const EXTRA_SEPARATOR: char = '#';

/// The URL part of a key: `http://host/path?sorted&query`. `HEAD` and `GET`
/// share keys (a HEAD is answered from a stored GET).
pub fn primary_key(scheme: &str, uri: &Uri, headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let mut key = String::with_capacity(scheme.len() + host.len() + uri.path().len() + 16);
    key.push_str(scheme);
    key.push_str("://");
    let host = host
        .strip_suffix(":80")
        .filter(|_| scheme == "http")
        .unwrap_or(host);
    for c in host.chars() {
        key.push(c.to_ascii_lowercase());
    }
    key.push_str(uri.path());
    if let Some(q) = uri.query() {
        push_normalised_query(&mut key, q);
    }
    key
}

/// Appends `?` and the query's non-empty pairs sorted by name, so that
/// `?b=2&a=1` and `?a=1&b=2` share an entry; pairs of the same name keep
/// their order (`id=1&id=2` is not `id=2&id=1`: an application may read
/// the first, the last or all). Values stay as sent (no decoding).
fn push_normalised_query(key: &mut String, query: &str) {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if pairs.is_empty() {
        return;
    }
    pairs.sort_by_key(|p| p.split_once('=').map_or(*p, |(name, _)| name));
    key.push('?');
    key.push_str(&pairs.join("&"));
}

/// The full key: the primary key, then `#` and a digest of the route's extra
/// key parts when it has any.
pub fn full_key(primary: String, policy: &CachePolicy, headers: &HeaderMap) -> String {
    if policy.key.is_empty() {
        return primary;
    }
    let mut hasher = Sha256::new();
    for part in &policy.key {
        let value = match part {
            KeyPart::Header(name) => {
                let mut joined = Vec::new();
                for v in headers.get_all(name) {
                    joined.extend_from_slice(v.as_bytes());
                    joined.push(b'\n');
                }
                joined
            }
            KeyPart::Cookie(name) => cookie(headers, name).unwrap_or_default().into_bytes(),
        };
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(&value);
    }
    let digest = hasher.finalize();
    let mut key = primary;
    key.push(EXTRA_SEPARATOR);
    for b in &digest[..16] {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The URL key a `Location` or `Content-Location` value names, when it is on
/// the same host as the request (`host`): absolute URLs on other hosts and
/// relative references that are not paths are ignored (RFC 9111 §4.4).
pub fn same_origin_key(host: &str, value: &http::HeaderValue) -> Option<String> {
    let target: Uri = value.to_str().ok()?.parse().ok()?;
    if let Some(authority) = target.authority() {
        if !authority.as_str().eq_ignore_ascii_case(host) {
            return None;
        }
    } else if !target.path().starts_with('/') {
        return None;
    }
    let uri: Uri = target.path_and_query()?.as_str().parse().ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(HOST, http::HeaderValue::from_str(host).ok()?);
    Some(primary_key("http", &uri, &headers))
}

/// The URL part of a full key.
pub fn primary_of(full: &str) -> &str {
    // A `#` never appears in a request path or query sent to a server, so the
    // last one separates the digest.
    full.rsplit_once(EXTRA_SEPARATOR).map_or(full, |(p, _)| p)
}

/// The value of one cookie in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> (Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        (uri.parse().unwrap(), map)
    }

    fn primary(p: &(Uri, HeaderMap)) -> String {
        primary_key("http", &p.0, &p.1)
    }

    #[test]
    fn normalises_host_and_query() {
        let a = parts("/p?b=2&a=1&", &[("host", "Example.COM:80")]);
        let b = parts("/p?a=1&b=2", &[("host", "example.com")]);
        assert_eq!(primary(&a), "http://example.com/p?a=1&b=2");
        assert_eq!(primary(&a), primary(&b));
        let c = parts("/p?a=1&b=3", &[("host", "example.com")]);
        assert_ne!(primary(&b), primary(&c));
        let first = parts("/p?id=1&x=0&id=2", &[("host", "example.com")]);
        let second = parts("/p?id=2&x=0&id=1", &[("host", "example.com")]);
        assert_eq!(primary(&first), "http://example.com/p?id=1&id=2&x=0");
        assert_ne!(
            primary(&first),
            primary(&second),
            "repeated names keep their order"
        );
        let d = parts("/p", &[("host", "example.com")]);
        assert_eq!(primary(&d), "http://example.com/p");
    }

    #[test]
    fn credentials_key_apart_and_stay_hidden() {
        let mut policy = CachePolicy::ttl(Duration::from_secs(60));
        policy.key = vec![
            KeyPart::Header(http::header::AUTHORIZATION),
            KeyPart::Cookie("sid".into()),
        ];
        let alice = parts(
            "/me",
            &[
                ("host", "h"),
                ("authorization", "Bearer alice"),
                ("cookie", "a=1; sid=x"),
            ],
        );
        let bob = parts(
            "/me",
            &[
                ("host", "h"),
                ("authorization", "Bearer bob"),
                ("cookie", "sid=x"),
            ],
        );
        let ka = full_key(primary(&alice), &policy, &alice.1);
        let kb = full_key(primary(&bob), &policy, &bob.1);
        assert_ne!(ka, kb);
        assert!(!ka.contains("alice"));
        assert_eq!(primary_of(&ka), "http://h/me");
        assert_eq!(cookie(&alice.1, "sid").as_deref(), Some("x"));
    }
}
