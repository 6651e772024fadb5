//! Header hygiene for a proxy: what a request head must be before anything
//! reads it (one valid `Host`, hop-by-hop fields gone, fields untrusted
//! clients may not send), hop-by-hop removal (RFC 9110 §7.6.1), the
//! client's address, and `X-Forwarded-*` / `Forwarded` (RFC 7239).

use std::net::IpAddr;

use http::header::{CONNECTION, FORWARDED, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use rampart_config::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What is wrong with a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHead {
    /// No `Host` (and no `:authority`).
    NoHost,
    /// More than one `Host` field.
    TwoHosts,
    /// A `Host` that is not `host[:port]`.
    InvalidHost,
    /// An HTTP/2 `:authority` and a `Host` naming different hosts.
    AuthorityMismatch,
    /// The route's rewrite made something that is not a path.
    Rewrite,
}

impl BadHead {
    /// What the client is told.
    pub fn as_str(self) -> &'static str {
        match self {
            BadHead::NoHost => "the request has no Host header",
            BadHead::TwoHosts => "the request has more than one Host header",
            BadHead::InvalidHost => {
                "the Host header is not a host name or address with an optional port"
            }
            BadHead::AuthorityMismatch => "the Host header and :authority name different hosts",
            BadHead::Rewrite => "the route's rewrite of this path is not a valid path",
        }
    }
}

/// Whether `host` is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2):
/// a bracketed IP literal, or a name of unreserved, percent-encoded and
/// sub-delimiter characters; then digits after a colon. Nothing that could
/// carry a path, a query, user information or white space into a cache key.
pub fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let literal = &rest[..end];
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (literal, &rest[end + 1..])
    } else {
        match host.rfind(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:".contains(&b))
        && (host.starts_with('[') || !name.contains(':'));
    port_ok && name_ok
}

/// Makes a request head fit to key and forward, before anything reads it:
/// exactly one valid `Host` (an HTTP/2 request's `:authority` becomes it),
/// the fields `Connection` names and the other hop-by-hop fields removed
/// (`Host` is never removed that way), and `strip` removed when the peer is
/// not a trusted proxy. Everything after (the key, `Vary`, limits, the
/// request sent upstream) then sees the same fields.
pub fn prepare_request(
    headers: &mut HeaderMap,
    authority: Option<&str>,
    trusted: bool,
    strip: &[HeaderName],
) -> Result<(), BadHead> {
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(BadHead::TwoHosts);
    }
    let host = match (host, authority) {
        (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) => {
            return Err(BadHead::AuthorityMismatch)
        }
        (Some(h), _) => h,
        (None, Some(a)) => HeaderValue::from_str(a).map_err(|_| BadHead::InvalidHost)?,
        (None, None) => return Err(BadHead::NoHost),
    };
    if !host.to_str().is_ok_and(valid_host) {
        return Err(BadHead::InvalidHost);
    }
    remove_hop_by_hop_upstream(headers);
    if !headers.contains_key(HOST) {
        headers.insert(HOST, host);
    }
    // One pass over the names finds whether there is anything to strip;
    // most requests have nothing, and removing by name hashes each.
    if !trusted && headers.keys().any(|name| strip.contains(name)) {
        for name in strip {
            headers.remove(name);
        }
    }
    Ok(())
}

/// The comma-separated tokens of every `name` field (`Connection`, `TE`),
/// trimmed.
pub fn list_tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Removes hop-by-hop headers, including those the `Connection` header
/// names (except `Host`, which identifies the target and is never hop-by-hop).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove(headers, false);
}

/// [`remove_hop_by_hop`] for a request going upstream, which keeps one
/// hop-by-hop value: `TE: trailers` when the client sent it, since Rampart
/// carries trailer fields end to end and some origins (gRPC's) send them
/// only when asked.
pub fn remove_hop_by_hop_upstream(headers: &mut HeaderMap) {
    remove(headers, true);
}

fn remove(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // One pass over the names: most messages carry none of these (any
    // field named by `Connection` needs `Connection` itself), and removing
    // by name hashes each, so only those present are removed.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    let te_trailers = keep_te_trailers
        && present & (1 << TE_INDEX) != 0
        // `trailers` takes no weight (RFC 9110 §10.1.4).
        && list_tokens(headers, TE).any(|t| t.eq_ignore_ascii_case("trailers"));
    // HOP_BY_HOP[0] is `Connection`: the fields it names (beyond `close`
    // and the fixed ones, which most name) go too.
    if present & 1 != 0 {
        let listed: Vec<HeaderName> = list_tokens(headers, CONNECTION)
            .filter(|t| {
                !t.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .filter(|name| name != HOST)
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// The fields that are hop-by-hop whatever `Connection` says (RFC 9110
/// §7.6.1, and the older `Keep-Alive` and `Proxy-Connection`). `Trailer` is
/// not one: it announces the trailer fields, which travel end to end.
static HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Where `TE` is in [`HOP_BY_HOP`].
const TE_INDEX: usize = 3;

/// Where `name` is in [`HOP_BY_HOP`]. Every response and request asks this
/// of each of its names, so it matches the name's text (a length, then
/// bytes) instead of comparing it with each of the six in turn.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "te" => Some(TE_INDEX),
        "transfer-encoding" => Some(4),
        "upgrade" => Some(5),
        _ => None,
    }
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// right-most address in `X-Forwarded-For` that is not itself trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(**ip, trusted))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// Sets the forwarding headers on a request going upstream. Values from the
/// client are kept (and extended) only when the peer is a trusted proxy;
/// otherwise they are replaced, so the origin can believe them.
pub fn set_forwarded(headers: &mut HeaderMap, peer: IpAddr, scheme: &str, trusted: bool) {
    let peer = canonical(peer);
    let host = headers.get(HOST).cloned();
    // The peer's address, written once: `X-Forwarded-For` takes it as it
    // is, `Forwarded` as a token (IPv6 quoted and bracketed).
    let mut ip = String::with_capacity(40);
    push_ip(&mut ip, peer);
    let mut element = String::with_capacity(64);
    element.push_str("for=");
    match peer {
        IpAddr::V4(_) => element.push_str(&ip),
        IpAddr::V6(_) => {
            element.push_str("\"[");
            element.push_str(&ip);
            element.push_str("]\"");
        }
    }
    element.push_str(";proto=");
    element.push_str(scheme);
    if let Some(h) = host.as_ref().and_then(|h| h.to_str().ok()) {
        if h.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c))
        {
            element.push_str(";host=");
            element.push_str(h);
        } else {
            element.push_str(";host=\"");
            element.extend(h.chars().filter(|&c| c != '"'));
            element.push('"');
        }
    }
    // An untrusted peer's values are replaced, so they are not even read.
    let append = |name: &HeaderName, add: String| -> Option<HeaderValue> {
        match trusted.then(|| join(headers, name)).flatten() {
            Some(prev) if !prev.is_empty() => {
                HeaderValue::try_from(format!("{}, {add}", prev.to_str().ok()?)).ok()
            }
            _ => HeaderValue::try_from(add).ok(),
        }
    };
    let xff = append(&X_FORWARDED_FOR, ip);
    let forwarded = append(&FORWARDED, element);
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Some(v) = forwarded {
        headers.insert(FORWARDED, v);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
        );
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// Writes an address as `Display` does (IPv4 digit by digit: formatting
/// machinery costs more than the rest of the forwarding headers).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

fn join(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if parts.is_empty() {
        None
    } else {
        HeaderValue::from_str(&parts.join(", ")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "192.168.1.10",
            "1.20.3.199",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn each_hop_by_hop_name_is_found_at_its_place_and_no_other_name_is() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        for other in [
            "host",
            "content-length",
            "x-connection",
            "tee",
            "upgrades",
            "trailer",
        ] {
            assert_eq!(hop_by_hop_index(&HeaderName::from_static(other)), None);
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn only_te_trailers_goes_upstream_and_trailer_always_stays() {
        let sent = |te: &str, upstream: bool| {
            let mut h = HeaderMap::new();
            h.insert(CONNECTION, HeaderValue::from_static("te"));
            h.insert(TE, HeaderValue::from_str(te).unwrap());
            h.insert("trailer", HeaderValue::from_static("x-sum"));
            if upstream {
                remove_hop_by_hop_upstream(&mut h);
            } else {
                remove_hop_by_hop(&mut h);
            }
            let te = h.get(TE).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(h["trailer"], "x-sum");
            te
        };
        assert_eq!(sent("trailers", true).as_deref(), Some("trailers"));
        assert_eq!(
            sent("gzip;q=0.5, Trailers", true).as_deref(),
            Some("trailers")
        );
        assert_eq!(sent("gzip, deflate", true), None);
        assert_eq!(sent("trailers", false), None);
    }

    #[test]
    fn hosts_are_a_name_or_address_and_a_port() {
        for good in [
            "example.com",
            "Example.COM:8080",
            "127.0.0.1",
            "[::1]:443",
            "a-b.c_d~e",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "",
            "good.example/r/victim",
            "a?b",
            "a#b",
            "user@host",
            "a b",
            "host:port",
            "host:123456",
            "[::1",
            "[zz]",
            ":80",
            "a:b:c",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_prepared_head_has_one_host_and_no_hop_by_hop_fields() {
        let strip = [HeaderName::from_static("x-original-url")];
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("good.example"));
        h.insert(
            CONNECTION,
            HeaderValue::from_static("accept-language, host"),
        );
        h.insert("accept-language", HeaderValue::from_static("de"));
        h.insert("x-original-url", HeaderValue::from_static("/admin"));
        prepare_request(&mut h, None, false, &strip).unwrap();
        assert_eq!(h[HOST], "good.example");
        assert!(!h.contains_key("accept-language") && !h.contains_key(CONNECTION));
        assert!(!h.contains_key("x-original-url"));
        let mut trusted = HeaderMap::new();
        trusted.insert(HOST, HeaderValue::from_static("h"));
        trusted.insert("x-original-url", HeaderValue::from_static("/a"));
        prepare_request(&mut trusted, None, true, &strip).unwrap();
        assert!(trusted.contains_key("x-original-url"));

        let mut two = HeaderMap::new();
        two.append(HOST, HeaderValue::from_static("a"));
        two.append(HOST, HeaderValue::from_static("b"));
        assert_eq!(
            prepare_request(&mut two, None, false, &strip),
            Err(BadHead::TwoHosts)
        );
        assert_eq!(
            prepare_request(&mut HeaderMap::new(), None, false, &strip),
            Err(BadHead::NoHost)
        );
        let mut h2 = HeaderMap::new();
        prepare_request(&mut h2, Some("good.example"), false, &strip).unwrap();
        assert_eq!(h2[HOST], "good.example", ":authority becomes Host");
        let mut differ = HeaderMap::new();
        differ.insert(HOST, HeaderValue::from_static("evil.example"));
        assert_eq!(
            prepare_request(&mut differ, Some("good.example"), false, &strip),
            Err(BadHead::AuthorityMismatch)
        );
    }

    #[test]
    fn client_ip_believes_only_trusted_proxies() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("1.2.3.4, 203.0.113.9, 10.0.0.2"),
        );
        assert_eq!(
            client_ip("127.0.0.1".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("198.51.100.1".parse().unwrap(), &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("127.0.0.1".parse().unwrap(), &HeaderMap::new(), &trusted),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_headers_are_replaced_from_untrusted_peers() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("shop.example"));
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_forwarded(&mut h, "192.0.2.7".parse().unwrap(), "http", false);
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[FORWARDED], "for=192.0.2.7;proto=http;host=shop.example");
        assert_eq!(h[&X_FORWARDED_HOST], "shop.example");

        let mut t = HeaderMap::new();
        t.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        t.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_forwarded(&mut t, "::1".parse().unwrap(), "http", true);
        assert_eq!(t[&X_FORWARDED_FOR], "203.0.113.9, ::1");
        assert_eq!(t[&X_FORWARDED_PROTO], "https");
        assert_eq!(t[FORWARDED], "for=\"[::1]\";proto=http");
    }
}
