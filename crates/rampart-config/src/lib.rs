//! Rampart's configuration.
//!
//! Loading happens in two stages: the TOML text is parsed into the raw serde
//! structs of [`raw`] (unknown keys rejected, every scalar parsed with its
//! span), then [`validate()`] turns them into the typed [`Config`] of
//! [`model`] that the rest of Rampart uses, one section at a time. Every
//! error names the file, line, column and field. Tests and embedders may
//! also build a [`Config`] directly.

pub mod model;
pub mod pattern;
pub mod raw;
pub mod rewrite;
pub mod validate;

use std::path::Path;

pub use ipnet::IpNet;
pub use model::*;
pub use pattern::{PathPattern, RouteMatch};
pub use rampart_core::Template;
pub use rewrite::{host_name, HeaderEdits, HostPattern, PathRewrite};
pub use validate::validate;

/// A configuration error with its place in the file.
pub type ConfigError = rampart_core::FileError;

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (text, file) = rampart_core::located::read_text(path)?;
    parse(&text, &file)
}

/// Parses and validates config text; `file` names it in errors. A config
/// that routes nothing is refused (at the end of the file, where a route
/// would go): a gateway answering every request 404 is a mistake, such as
/// an empty file, never a setup.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let config = rampart_core::located::parse_toml(text, file, validate)?;
    if config.routes.is_empty() {
        return Err(ConfigError {
            field: "routes".into(),
            ..ConfigError::at(
                text,
                file,
                text.len(),
                "none: the config proxies nothing; add a [[routes]] table (`match` and \
                 `upstream`) and the [[upstreams]] it names"
                    .into(),
            )
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests;
