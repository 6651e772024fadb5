//! Rampart's edge: where connections arrive. [`listener::serve`] runs an
//! accept loop with a bound on open connections, speaks HTTP/1.1 and h2c on
//! one port with limits on request heads and the time to send them, and on
//! shutdown stops accepting and drains the requests in flight. What to do
//! with a request is the handler's business (the proxy's request path, the
//! admin API).

pub mod listener;
pub mod tls;

pub use listener::{serve, Conn, ConnLimits, Stops, TlsSwap};
