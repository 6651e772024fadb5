//! Stage two: the raw structs of [`crate::raw`] become the typed
//! [`Config`], one section at a time, in the order later sections need
//! (routes name upstreams and may count in Redis; warmers name routes).
//! Every error carries the byte offset of the offending value, which
//! [`rampart_core::located`] turns into file, line, column and field.

mod cache;
mod common;
mod events;
mod rewrite;
mod routes;
mod server;
mod telemetry;
mod upstreams;

use crate::model::{AccessFormat, Config, LogConfig};
use crate::raw;

pub use common::Invalid;

/// Turns the raw structs into a [`Config`].
pub fn validate(raw: raw::RawConfig) -> Result<Config, Invalid> {
    let server = server::server(raw.server)?;
    let admin = server::admin(raw.admin)?;
    let cache = cache::cache(raw.cache)?;
    let compression = cache::compression(raw.compression)?;
    let upstreams = upstreams::upstreams(raw.upstreams)?;
    let routes = routes::routes(raw.routes, &upstreams, &cache)?;
    let events = events::events(raw.events)?;
    let warmers = events::warmers(raw.warmers, &routes)?;
    Ok(Config {
        server,
        admin,
        cache,
        compression,
        log: LogConfig {
            access: raw.log.access.unwrap_or(true),
            access_sample: match raw.log.access_sample {
                None => 1.0,
                Some(s) if s.get_ref().is_finite() && *s.get_ref() > 0.0 && *s.get_ref() <= 1.0 => {
                    *s.get_ref()
                }
                Some(s) => {
                    return Err((
                        s.span().start,
                        "a share above 0 and at most 1 (0.1 logs one request in ten; a 5xx is always logged)".into(),
                    ))
                }
            },
            access_format: common::one_of(
                raw.log.access_format.as_ref(),
                "format",
                &[("json", AccessFormat::Json), ("combined", AccessFormat::Combined)],
                AccessFormat::Json,
            )?,
            access_file: match &raw.log.access_file {
                None => None,
                Some(f) => {
                    let path = std::path::PathBuf::from(&f.get_ref().0);
                    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                    if f.get_ref().0.trim().is_empty() || dir.is_some_and(|d| !d.is_dir()) {
                        return Err((
                            f.span().start,
                            format!("{:?}: give a file in a directory that exists", f.get_ref().0),
                        ));
                    }
                    Some(path)
                }
            },
        },
        tracing: telemetry::tracing(raw.tracing)?,
        upstreams,
        routes,
        events,
        warmers,
        priority_weights: [
            raw.priorities.critical.unwrap_or(100).max(1),
            raw.priorities.high.unwrap_or(50).max(1),
            raw.priorities.default.unwrap_or(30).max(1),
            raw.priorities.low.unwrap_or(10).max(1),
        ],
    })
}
