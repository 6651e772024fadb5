//! The small vocabulary every Rampart crate shares: time ([`clock`]), human
//! units for durations and sizes ([`units`]), `${ENV}` interpolation
//! ([`env`]), templates ([`template`]), errors located in TOML files
//! ([`located`]), problem+json answers ([`problem`]), the TLS verifier
//! of an unverified client ([`tls`]) and CPU time from `/proc`
//! ([`proc_stat`]). Each idea has its
//! one home here, so the config, the gateway, the guards and the load
//! tester speak of it the same way.

pub mod clock;
pub mod env;
pub mod located;
pub mod problem;
pub mod proc_stat;
pub mod template;
pub mod tls;
pub mod units;

pub use clock::{Clock, ManualClock, SystemClock};
pub use located::FileError;
pub use problem::Problem;
pub use template::Template;
