//! Rampart's load tester.
//!
//! A scenario file ([`plan`]) names scenarios, each an executor running a
//! flow of steps. Open executors schedule iterations at a planned rate and
//! measure latency from the *intended* start, so a stalled target cannot hide
//! its stall (no coordinated omission); the service time from the actual send
//! is recorded beside it. Every sample lands in HDR histograms ([`recorder`]);
//! the [`report`] carries them serialised, so shard reports merge exactly and
//! runs compare exactly ([`compare`]).

pub mod compare;
pub mod engine;
pub mod failure;
pub mod html;
pub mod http1;
pub mod http2;
pub mod plan;
pub mod raw;
pub mod recorder;
pub mod report;
pub mod summary;
pub mod template;
pub mod threshold;
pub mod tls;
pub mod vu;

pub use engine::{run, RunError, RunOptions};
pub use plan::{load, parse, Plan, PlanError};
pub use report::Report;
