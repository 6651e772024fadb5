//! The parts of a request kept while it is served (the body travels apart).

use std::net::IpAddr;

use http::{HeaderMap, Method, Uri};

use crate::identity::Identity;

/// A request's head, as received.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Target.
    pub uri: Uri,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The peer's address.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// Whether it came over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// Its request id and trace, sent upstream with every request made
    /// for it.
    pub identity: Identity,
}

impl RequestHead {
    /// The path and query to send upstream (`/` when the target has none).
    pub fn path_and_query(&self) -> Uri {
        self.uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
    }

    /// The scheme the client used, as forwarding headers name it.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The cache's URL key for this request. It names no scheme: a
    /// listener serves one (TLS or plain), and purges name URLs either way.
    pub fn primary_key(&self) -> String {
        rampart_cache::key::primary_key("http", &self.uri, &self.headers)
    }
}
