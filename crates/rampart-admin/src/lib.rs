//! The admin listener: `/` (a live dashboard over `/metrics`), `/metrics`
//! (Prometheus), `/healthz` (alive) and
//! `/readyz` (this node can serve), open; `/admin/purge`,
//! `/admin/cache/stats`, `/admin/cache/entry`, `/admin/cache/entries` and
//! `/admin/reload` with the bearer token;
//! `/admin/events/{name}` with the bearer token or an HMAC signature of the
//! body.
//!
//! Modules, top down: `routes` (which endpoint) → `dashboard`, `metrics`,
//! `probes`, `purge`, `inspect`, `reload` (the endpoints) → `admin` (the handles), `reply`, `auth`,
//! beside `process` (the process's own metrics, a collector the gateway
//! registers).

mod admin;
mod auth;
mod dashboard;
mod inspect;
mod metrics;
mod probes;
pub mod process;
mod purge;
mod reload;
mod reply;
mod routes;

pub use admin::{Admin, Reload, ReloadError, ReloadFuture, Reloaded};
pub use auth::signature_ok;
pub use routes::handle;
