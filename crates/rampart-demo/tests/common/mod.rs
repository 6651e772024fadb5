//! What the demo's end-to-end suites share: an example origin on small data
//! behind its app's example config, with its events going to that gateway.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_demo::{AppKind, EventSink};
use rampart_testkit::{example_config, Got, TestClient};
use serde_json::Value;

pub const TOKEN: &str = "e2e-token";

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// An app's origin at `scale` and a gateway with the app's example config in
/// front of it; the origin's domain events go to the gateway's admin listener.
pub struct Demo {
    pub origin: rampart_demo::Origin,
    pub gateway: rampart_gateway::Running,
    pub client: TestClient,
}

impl Demo {
    pub async fn start(app: AppKind, scale: f64) -> Self {
        let admin = free_port();
        let sink = EventSink {
            admin: format!("http://{admin}"),
            token: TOKEN.into(),
        };
        let origin = rampart_demo::start(app, scale, "127.0.0.1:0".parse().unwrap(), Some(sink))
            .await
            .unwrap();
        let text = example_config(app.name(), origin.addr, admin, TOKEN);
        let config = rampart_config::parse(&text, "rampart.toml").unwrap_or_else(|e| panic!("{e}"));
        let gateway = rampart_gateway::start(&config, Arc::new(rampart_gateway::SystemClock))
            .await
            .unwrap();
        Demo {
            origin,
            gateway,
            client: TestClient::new(),
        }
    }

    /// A URL on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    /// A URL on the origin itself.
    pub fn origin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.origin.addr)
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.client.get(&self.url(path), headers).await
    }

    /// Sends `body` as JSON through the gateway.
    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Got {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.client
            .send(
                method,
                &self.url(path),
                &all,
                rampart_gateway::body::full(body.to_string()),
            )
            .await
    }

    /// Polls `path` until `done` holds for its JSON (an event's purge is
    /// applied asynchronously), up to a second.
    pub async fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..50 {
            last = json(&self.get(path, &[]).await);
            if done(&last) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{path} never changed as expected; last: {last}");
    }
}

pub fn json(got: &Got) -> Value {
    serde_json::from_str(&got.text()).unwrap_or(Value::Null)
}

pub fn cache_status(got: &Got) -> &str {
    got.header("cache-status")
}
