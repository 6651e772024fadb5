//! Rampart's HTTP cache.
//!
//! Policy lives in pure functions of their inputs and the time
//! ([`freshness`], [`fill`], [`key`], [`conditional`], [`purge`],
//! [`encoding::negotiate`]);
//! mechanism in [`store::MemoryCache`] (the byte-bounded L1 with its tag
//! index) and [`coalesce::Coalescer`] (one origin request per key).
//! Outcomes are the enums of [`status`].

pub mod coalesce;
pub mod conditional;
pub mod encoding;
pub mod entry;
pub mod fill;
pub mod freshness;
pub mod key;
pub mod purge;
pub mod range;
pub mod status;
pub mod store;

pub use coalesce::{Coalescer, Fill, Join};
pub use entry::{CodingsAsked, Entry, EntryState};
pub use freshness::Freshness;
pub use purge::{Purge, PurgeSource, Purged};
pub use status::{CacheStatus, Forward, NoCacheReason, StaleReason, Tier};
pub use store::{Lookup, MemoryCache, TagIndexSize};
