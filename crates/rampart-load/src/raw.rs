//! Stage one of a scenario file: what serde sees. Scalars that need parsing
//! parse in their `Deserialize` impls so errors carry their span; unknown
//! keys are errors.
#![allow(missing_docs)] // Fields mirror the keys documented in docs/load-testing.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub use rampart_core::units::Dur;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub scenarios: Vec<RawScenario>,
    #[serde(default)]
    pub flows: Vec<RawFlow>,
    #[serde(default)]
    pub feeders: Vec<RawFeeder>,
    #[serde(default)]
    pub thresholds: BTreeMap<String, Spanned<Vec<RawThreshold>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub duration: Dur,
    pub target: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Spanned<String>,
    pub executor: Spanned<String>,
    pub flow: Spanned<String>,
    pub feeder: Option<Spanned<String>>,
    pub start_after: Option<Dur>,
    pub vus: Option<u32>,
    pub duration: Option<Dur>,
    pub iterations: Option<u64>,
    pub max_duration: Option<Dur>,
    pub start_vus: Option<u32>,
    pub stages: Option<Vec<RawStage>>,
    pub rate: Option<f64>,
    pub start_rate: Option<f64>,
    pub per: Option<Dur>,
    pub max_vus: Option<u32>,
    pub users: Option<u32>,
    pub ramp_up: Option<Dur>,
    pub rate_per_user: Option<f64>,
    pub pool: Option<u32>,
    pub protocol: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    pub name: Spanned<String>,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawThink {
    Fixed(Dur),
    Range { min: Dur, max: Dur },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Spanned<String>,
    pub method: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub json: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub extract: BTreeMap<String, Spanned<RawExtract>>,
    pub checks: Option<RawChecks>,
    pub think: Option<RawThink>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtract {
    pub json: Option<String>,
    pub header: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecks {
    pub status: Option<Spanned<StatusList>>,
    pub body_contains: Option<String>,
    #[serde(default)]
    pub json: BTreeMap<String, toml::Value>,
    pub duration_under: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusList {
    One(u16),
    Many(Vec<u16>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeeder {
    pub name: Spanned<String>,
    pub csv: Spanned<String>,
    pub order: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawThreshold {
    Expr(String),
    Full {
        threshold: String,
        #[serde(default)]
        abort_on_fail: bool,
    },
}
