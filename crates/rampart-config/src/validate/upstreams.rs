//! `[[upstreams]]`: targets, pools, admission, health checks, balancing,
//! retries and circuit breakers.

use std::time::Duration;

use crate::model::{
    AdmissionConfig, Balance, CircuitConfig, HealthConfig, UpstreamConfig, UpstreamTls,
};
use crate::raw;

use super::common::{one_of, Invalid};
use super::rewrite;

/// `tls = { ca, server_name, cert, key, danger_accept_invalid_certs }`;
/// `https://` targets without it verify against the system's roots.
fn upstream_tls(
    raw: Option<toml::Spanned<raw::RawUpstreamTls>>,
    https: bool,
) -> Result<Option<UpstreamTls>, Invalid> {
    let Some(raw) = raw else {
        return Ok(https.then(UpstreamTls::default));
    };
    let at = raw.span().start;
    if !https {
        return Err((
            at,
            "tls needs https:// targets, such as \"https://api.internal:443\"".into(),
        ));
    }
    let raw = raw.into_inner();
    let path = |t: &toml::Spanned<raw::Text>| std::path::PathBuf::from(&t.get_ref().0);
    let client_cert = match (&raw.cert, &raw.key) {
        (Some(c), Some(k)) => Some((path(c), path(k))),
        (None, None) => None,
        (Some(c), None) => return Err((c.span().start, "a client cert needs its key".into())),
        (None, Some(k)) => return Err((k.span().start, "a client key needs its cert".into())),
    };
    let server_name = match &raw.server_name {
        None => None,
        Some(n) => {
            let name = n.get_ref().0.trim();
            if rustls_name_ok(name) {
                Some(name.to_string())
            } else {
                return Err((
                    n.span().start,
                    format!("server_name {name:?} is not a host name"),
                ));
            }
        }
    };
    Ok(Some(UpstreamTls {
        ca: raw.ca.as_ref().map(path),
        server_name,
        client_cert,
        danger_accept_invalid_certs: raw.danger_accept_invalid_certs.unwrap_or(false),
    }))
}

/// A DNS name or an IP address.
fn rustls_name_ok(name: &str) -> bool {
    !name.is_empty()
        && (name.parse::<std::net::IpAddr>().is_ok()
            || name.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

/// Every upstream, names unique.
pub(super) fn upstreams(raw: Vec<raw::RawUpstream>) -> Result<Vec<UpstreamConfig>, Invalid> {
    let mut upstreams: Vec<UpstreamConfig> = Vec::new();
    for u in raw {
        let name = u.name.get_ref().0.clone();
        if name.is_empty() {
            return Err((u.name.span().start, "an upstream needs a name".into()));
        }
        if upstreams.iter().any(|x| x.name == name) {
            return Err((
                u.name.span().start,
                format!("upstream {name:?} is defined twice"),
            ));
        }
        if u.targets.get_ref().is_empty() {
            return Err((
                u.targets.span().start,
                "an upstream needs at least one target".into(),
            ));
        }
        let https = u.targets.get_ref().iter().filter(|t| t.1).count();
        if https != 0 && https != u.targets.get_ref().len() {
            return Err((
                u.targets.span().start,
                "targets of one upstream are all https:// or all plain; make two upstreams".into(),
            ));
        }
        let tls = upstream_tls(u.tls, https != 0)?;
        let h2c = match u.h2c {
            Some(h) if *h.get_ref() && https != 0 => {
                return Err((
                    h.span().start,
                    "h2c is for plain targets; over https:// HTTP/2 is chosen by ALPN".into(),
                ))
            }
            Some(h) => *h.get_ref(),
            None => false,
        };
        upstreams.push(UpstreamConfig {
            name,
            tls,
            h2c,
            targets: u.targets.into_inner().into_iter().map(|t| t.0).collect(),
            connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            timeout: u.timeout.map_or(Duration::from_secs(30), |d| d.0),
            max_idle_per_target: u.max_idle_per_target.map_or(256, |v| v as usize),
            idle_timeout: u.idle_timeout.map_or(Duration::from_secs(60), |d| d.0),
            admission: match (u.max_concurrency, u.queue) {
                (None, None) => None,
                (max, queue) => Some(AdmissionConfig {
                    max_concurrency: max.unwrap_or(100).max(1) as usize,
                    queue_size: queue.as_ref().map_or(0, |q| q.size as usize),
                    queue_timeout: queue.as_ref().map_or(Duration::ZERO, |q| q.timeout.0),
                }),
            },
            health: match u.health {
                None => None,
                Some(h) => {
                    let at = h.span().start;
                    let h = h.into_inner();
                    if h.interval.as_ref().is_some_and(|d| d.0.is_zero()) {
                        return Err((at, "health interval must be more than zero".into()));
                    }
                    let path = h.path.get_ref().0.clone();
                    if !path.starts_with('/') {
                        return Err((
                            h.path.span().start,
                            format!("health path {path:?} must start with '/'"),
                        ));
                    }
                    Some(HealthConfig {
                        path,
                        interval: h.interval.map_or(Duration::from_secs(5), |d| d.0),
                        timeout: h.timeout.map_or(Duration::from_secs(2), |d| d.0),
                        healthy_after: h.healthy_after.unwrap_or(2).max(1),
                        unhealthy_after: h.unhealthy_after.unwrap_or(3).max(1),
                    })
                }
            },
            balance: one_of(
                u.balance.as_ref(),
                "balance",
                &[
                    ("least-in-flight", Balance::LeastInFlight),
                    ("round-robin", Balance::RoundRobin),
                ],
                Balance::LeastInFlight,
            )?,
            retry: u.retry.unwrap_or(true),
            host_header: rewrite::host_header(u.host_header.as_ref())?,
            circuit: match u.circuit {
                None => None,
                Some(c) => {
                    let at = c.span().start;
                    let c = c.into_inner();
                    if c.failure_rate.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
                        return Err((
                            at,
                            "failure_rate is a share between 0 and 1, such as 0.5".into(),
                        ));
                    }
                    Some(CircuitConfig {
                        failures: c.failures.unwrap_or(10).max(1),
                        failure_rate: c.failure_rate,
                        window: c.window.unwrap_or(100).max(1),
                        min_requests: c.min_requests.unwrap_or(20).max(1),
                        open_for: c.open_for.map_or(Duration::from_secs(60), |d| d.0),
                        probes: c.probes.unwrap_or(1).max(1),
                    })
                }
            },
        });
    }

    Ok(upstreams)
}
