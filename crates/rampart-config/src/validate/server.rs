//! `[server]` and `[admin]`.

use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use crate::model::{
    AdminConfig, CertConfig, Readiness, ServerConfig, TlsConfig, DEFAULT_STRIP_FROM_UNTRUSTED,
};
use crate::raw;

use super::common::{one_of, Invalid};
use super::rewrite::host_list;

/// `[server]`: the public listener and its limits.
pub(super) fn server(s: raw::RawServer) -> Result<ServerConfig, Invalid> {
    Ok(ServerConfig {
        listen: s
            .listen
            .map_or_else(|| "127.0.0.1:8080".parse().expect("valid"), |l| l.0),
        trusted_proxies: s.trusted_proxies.into_iter().map(|c| c.0).collect(),
        max_header_size: s.max_header_size.map_or(64 * 1024, |v| v.0 as usize),
        max_body_size: s.max_body_size.map_or(10 << 20, |v| v.0),
        header_read_timeout: s
            .header_read_timeout
            .map_or(Duration::from_secs(10), |d| d.0),
        shutdown_timeout: s.shutdown_timeout.map_or(Duration::from_secs(30), |d| d.0),
        max_connections: s.max_connections.map_or(10_000, |v| v as usize),
        max_limit_keys: s.max_limit_keys.map_or(100_000, |v| v.max(1) as usize),
        strip_from_untrusted: match s.strip_from_untrusted {
            None => DEFAULT_STRIP_FROM_UNTRUSTED
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            Some(list) => list
                .iter()
                .map(|h| {
                    HeaderName::from_bytes(h.get_ref().0.trim().as_bytes()).map_err(|_| {
                        (
                            h.span().start,
                            format!("invalid header name {:?}", h.get_ref().0),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        },
        reload_on_change: s
            .reload_on_change
            .map(|d| d.0.max(Duration::from_millis(10))),
        tls: match s.tls {
            None => None,
            Some(t) => Some(tls(t)?),
        },
    })
}

/// `[server.tls]`: at least one certificate; files are read when the
/// listener starts (and by `rampart check`), not here.
fn tls(raw: toml::Spanned<raw::RawTls>) -> Result<TlsConfig, Invalid> {
    let at = raw.span().start;
    let raw = raw.into_inner();
    let path = |t: &toml::Spanned<raw::Text>| -> Result<std::path::PathBuf, Invalid> {
        if t.get_ref().0.trim().is_empty() {
            return Err((t.span().start, "a file path may not be empty".into()));
        }
        Ok(std::path::PathBuf::from(&t.get_ref().0))
    };
    let mut certs = Vec::new();
    match (&raw.cert, &raw.key) {
        (Some(cert), Some(key)) => certs.push(CertConfig {
            hosts: Vec::new(),
            cert: path(cert)?,
            key: path(key)?,
            field: "server.tls".into(),
        }),
        (None, None) => {}
        (Some(c), None) => {
            return Err((
                c.span().start,
                "cert needs its key: add key = \"key.pem\"".into(),
            ))
        }
        (None, Some(k)) => {
            return Err((
                k.span().start,
                "key needs its cert: add cert = \"cert.pem\"".into(),
            ))
        }
    }
    for (i, c) in raw.certs.unwrap_or_default().into_iter().enumerate() {
        let hosts = host_list(c.hosts, "hosts lists at least one name")?;
        certs.push(CertConfig {
            hosts,
            cert: path(&c.cert)?,
            key: path(&c.key)?,
            field: format!("server.tls.certs[{}]", i + 1),
        });
    }
    if certs.is_empty() {
        return Err((at, "tls needs a certificate: cert = \"cert.pem\" and key = \"key.pem\", or [[server.tls.certs]]".into()));
    }
    let hsts = match raw.hsts {
        None => None,
        Some(h) => {
            let text = h.get_ref().0.trim();
            let valid = text
                .split(';')
                .next()
                .and_then(|d| d.trim().strip_prefix("max-age="))
                .is_some_and(|n| n.parse::<u64>().is_ok());
            match (valid, http::HeaderValue::from_str(text)) {
                (true, Ok(v)) => Some(v),
                _ => {
                    return Err((
                        h.span().start,
                        format!("hsts {text:?} is not a Strict-Transport-Security value such as \"max-age=63072000; includeSubDomains\""),
                    ))
                }
            }
        }
    };
    Ok(TlsConfig {
        certs,
        redirect_from: raw.redirect_from.map(|l| l.0),
        hsts,
    })
}

/// Values that ship in examples and tutorials: an admin token or webhook
/// secret equal to one of them (any case) would let anyone in.
const PLACEHOLDERS: [&str; 14] = [
    "change-me",
    "changeme",
    "change_me",
    "demo-token",
    "replace-me",
    "replaceme",
    "your-token",
    "your-secret",
    "secret",
    "password",
    "token",
    "admin",
    "example",
    "test",
];

/// The shortest admin token or webhook secret accepted.
const MIN_SECRET_LEN: usize = 8;

/// A token or secret: never empty, a known placeholder or shorter than
/// [`MIN_SECRET_LEN`], which would be auth in name only.
fn secret(value: Option<Spanned<raw::Text>>, what: &str) -> Result<Option<String>, Invalid> {
    let Some(value) = value else {
        return Ok(None);
    };
    let at = value.span().start;
    let text = value.into_inner().0;
    let trimmed = text.trim();
    let hint = "set a secret of your own (e.g. from `openssl rand -hex 32`) or remove the key";
    if trimmed.is_empty() {
        return Err((at, format!("the {what} is empty; {hint}")));
    }
    if PLACEHOLDERS.iter().any(|p| trimmed.eq_ignore_ascii_case(p)) {
        return Err((
            at,
            format!("the {what} is the placeholder {trimmed:?}, which anyone could guess; {hint}"),
        ));
    }
    if trimmed.chars().count() < MIN_SECRET_LEN {
        return Err((
            at,
            format!("the {what} is shorter than {MIN_SECRET_LEN} characters; {hint}"),
        ));
    }
    Ok(Some(text))
}

/// `[admin]`: off when absent; an empty, placeholder or short token or
/// secret is a mistake, never "no auth".
pub(super) fn admin(admin: Option<raw::RawAdmin>) -> Result<Option<AdminConfig>, Invalid> {
    let Some(a) = admin else {
        return Ok(None);
    };
    let ready = one_of(
        a.ready.as_ref(),
        "readiness",
        &[
            ("serving", Readiness::Serving),
            ("upstreams", Readiness::Upstreams),
        ],
        Readiness::Serving,
    )?;
    Ok(Some(AdminConfig {
        listen: a.listen.0,
        token: secret(a.token, "admin token")?,
        webhook_secret: secret(a.webhook_secret, "webhook secret")?,
        ready,
    }))
}
