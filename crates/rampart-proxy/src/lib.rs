//! Rampart's request path. [`handle`] takes one request through the stages
//! written down in order in `path.rs` (route → rate limits → cache lookup
//! and coalesced fill → admission → upstream → store → respond); the
//! [`State`] it reads is built once from a validated config.
//!
//! Modules, from the top of the path down (each imports only modules below
//! it): `path` (the stages) → `lookup` (cache stage) → `fill` (origin
//! request for the cache) → `store` (keeping a response) → `cache_ctx` →
//! `respond` (answers) → `forward` (requests upstream, admission) →
//! `upstream` (pools, balancing, breakers, health checks, retries), beside
//! `limits` (rate limits), `invalidate` (purges), `tiers` (L1, L2,
//! coalescer), and the leaves `compress`, `headers`, `tags`, `router`,
//! `request`, `identity`, `access` (the access log), `body`, `error`,
//! `metrics`, `outcome`.

pub mod access;
pub mod body;
mod cache_ctx;
mod compress;
pub mod error;
mod fill;
pub mod forward;
mod headers;
pub mod identity;
pub mod invalidate;
mod limits;
pub mod lookup;
pub mod metrics;
pub mod outcome;
mod path;
pub mod redirect;
pub mod request;
mod respond;
pub mod router;
mod state;
mod store;
mod tags;
pub mod tiers;
mod upgrade;
pub mod upstream;

pub use cache_ctx::CacheCtx;
pub use path::handle;
pub use state::{BuildError, State};
