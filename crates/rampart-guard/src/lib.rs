//! Traffic guards as pure state machines: every decision takes the time as an
//! argument (`now`, a [`std::time::Duration`] since any fixed origin), so
//! tests move time instead of sleeping and the same code runs under any
//! clock. The gateway calls them in its request path; [`layer`] offers them
//! as tower layers for any other service. Counting across nodes in Redis
//! lives with the rest of what nodes share, in `rampart-cluster`.

pub mod admission;
pub mod breaker;
pub mod gcra;
pub mod health;
pub mod layer;
pub mod priority;
