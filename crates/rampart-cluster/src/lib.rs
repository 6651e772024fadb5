//! What Rampart's nodes share through Redis (single node, Sentinel or
//! Cluster URLs): the connection with its per-call deadline ([`redis`]),
//! the shared tier's reads on a pipelined connection of their own
//! ([`reads`]),
//! the shared cache tier and its tag index ([`l2`]) with the entry codec
//! ([`codec`]), the purge log and fan-out that keep every node's memory
//! tier in step ([`fanout`]), and rate limits counted across nodes
//! ([`rate_limit`]). Redis trouble degrades, it never fails a request: every
//! call has a deadline and a failed one is a miss.

pub mod codec;
pub mod fanout;
pub mod l2;
pub mod rate_limit;
pub mod reads;
pub mod redis;

pub use fanout::{Delivery, Fanout, FlushReason, Incoming};
pub use redis::{Op, Redis, RedisError, RedisMetrics};
