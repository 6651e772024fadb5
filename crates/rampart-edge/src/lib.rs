//! Rampart's edge: where connections arrive. [`listener::serve`] runs an
//! accept loop with a bound on open connections; [`connection`] serves each
//! one: HTTP/1.1 or HTTP/2 (h2c on a plain port) by its first bytes, with
//! limits on request heads and the time to send them, idle HTTP/1.1
//! connections parked without buffers, and on shutdown the requests in
//! flight drained. What to do with a request is the handler's business
//! (the proxy's request path, the admin API).

mod activity;
pub mod connection;
pub mod listener;
pub mod memory;
pub mod tls;

pub use activity::RequestBody;
pub use connection::Conn;
pub use listener::{serve, ConnGauges, ConnLimits, Stops, TlsSwap};
