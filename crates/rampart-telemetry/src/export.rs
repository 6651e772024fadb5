//! The HTTP client the OTLP exporter sends batches with. The SDK's batch
//! processor runs on its own thread, outside the runtime; each export is
//! spawned onto the runtime, where the connection pool lives.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::HttpError;

/// The most of a collector's answer read (it carries at most a partial
/// success message).
const MAX_ANSWER: usize = 64 * 1024;

/// Sends export requests on a runtime, each bounded by a timeout.
#[derive(Debug, Clone)]
pub struct Client {
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    inner: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    /// A client for `http://` and `https://` collectors (the system's
    /// roots).
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("no TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            runtime,
            timeout,
            inner,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (inner, timeout) = (self.inner.clone(), self.timeout);
        let sent = self.runtime.spawn(async move {
            let exchange = async {
                let answer = inner.request(request.map(Full::new)).await?;
                let (head, body) = answer.into_parts();
                let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(head, body))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {timeout:?}").into()),
            }
        });
        sent.await?
    }
}
