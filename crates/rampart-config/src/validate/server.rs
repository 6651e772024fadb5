//! `[server]` and `[admin]`.

use std::time::Duration;

use http::HeaderName;

use crate::model::{AdminConfig, ServerConfig, DEFAULT_STRIP_FROM_UNTRUSTED};
use crate::raw;

use super::common::Invalid;

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
    })
}

/// `[admin]`: off when absent; an empty token or secret is a mistake, never "no auth".
pub(super) fn admin(admin: Option<raw::RawAdmin>) -> Result<Option<AdminConfig>, Invalid> {
    Ok(match admin {
        None => None,
        Some(a) => {
            let token = match a.token {
                Some(t) if t.get_ref().0.trim().is_empty() => {
                    return Err((
                        t.span().start,
                        "the admin token is empty; set it or remove the key".into(),
                    ))
                }
                Some(t) => Some(t.into_inner().0),
                None => None,
            };
            let webhook_secret = match a.webhook_secret {
                Some(t) if t.get_ref().0.trim().is_empty() => {
                    return Err((
                        t.span().start,
                        "the webhook secret is empty; set it or remove the key".into(),
                    ))
                }
                Some(t) => Some(t.into_inner().0),
                None => None,
            };
            Some(AdminConfig {
                listen: a.listen.0,
                token,
                webhook_secret,
            })
        }
    })
}
