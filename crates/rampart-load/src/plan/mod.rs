//! A scenario file becomes a [`Plan`] in two stages: serde reads it into the
//! raw structs of [`crate::raw`], then `validate` checks every name a
//! scenario refers to (flow, feeder, variable) and builds the typed plan of
//! `model`, before any request is sent. Errors name the file, line, column
//! and field.

mod model;
mod validate;

use std::path::Path;

use rampart_core::FileError;

use crate::raw::RawPlan;
pub use model::*;
pub use validate::{check_base_url, quick, Quick, QUICK_CONNECTIONS};

/// A scenario-file error: the same shape as a config error.
pub type PlanError = FileError;

/// Reads and validates a scenario file; CSV paths are relative to it.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let (text, file) = rampart_core::located::read_text(path)?;
    parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Parses and validates scenario text.
pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Plan, PlanError> {
    rampart_core::located::parse_toml(text, file, |raw: RawPlan| validate::validate(raw, dir))
}

#[cfg(test)]
mod tests;
