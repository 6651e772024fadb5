//! Traffic guards as pure state machines: every decision takes the time as an
//! argument (`now`, a [`std::time::Duration`] since any fixed origin), so
//! tests move time instead of sleeping and the same code runs under any
//! clock. The gateway wraps them in its request path.

pub mod admission;
pub mod breaker;
pub mod cluster;
pub mod gcra;
pub mod health;
pub mod layer;
pub mod priority;
