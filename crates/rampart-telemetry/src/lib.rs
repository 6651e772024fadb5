//! Rampart's logs and traces.
//!
//! Logs are JSON lines on stderr, filtered by `RUST_LOG` (default `info`;
//! the access log is the `rampart::access` target, each request's span
//! `rampart::request`). With `[tracing]` configured, each request's spans
//! are also exported over OTLP/HTTP to a collector: the request (server
//! span), its cache lookups, a coalesced wait and each upstream call
//! (client span, whose id goes upstream as the `traceparent` parent). The
//! spans of the export are their own: `RUST_LOG` does not filter them.
//!
//! [`span`] holds what the request path calls; [`init`] is called once by
//! `rampart serve`.

mod export;
pub mod span;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use rampart_config::TracingConfig;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What [`init`] started; [`Telemetry::shutdown`] sends the spans still
/// queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built (its TLS roots, say).
    #[error("tracing.otlp_endpoint: cannot export to {endpoint}: {detail}")]
    Exporter {
        /// The collector's URL.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// A global subscriber was installed already.
    #[error("logging was set up twice")]
    AlreadySet,
}

/// Installs the process's subscriber: the JSON log on stderr and, when
/// `tracing` is given, the OTLP exporter, whose requests run on `runtime`.
pub fn init(
    tracing: Option<&TracingConfig>,
    runtime: &tokio::runtime::Handle,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let Some(config) = tracing else {
        tracing_subscriber::registry()
            .with(log)
            .try_init()
            .map_err(|_| TelemetryError::AlreadySet)?;
        return Ok(Telemetry { provider: None });
    };
    let provider = provider(config, runtime)?;
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("rampart"))
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        // The request's spans, and warnings logged inside them as events.
        .with_filter(
            Targets::new()
                .with_target(span::REQUEST_TARGET, LevelFilter::INFO)
                .with_target(span::STAGE_TARGET, LevelFilter::DEBUG)
                .with_default(LevelFilter::WARN),
        );
    tracing_subscriber::registry()
        .with(log)
        .with(spans)
        .try_init()
        .map_err(|_| TelemetryError::AlreadySet)?;
    span::EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// The tracer provider: OTLP/HTTP protobuf to the collector, in batches
/// (the SDK's bounded queue: spans beyond it are dropped, never waited
/// for), new traces sampled at `sample`, continued ones as their caller
/// decided.
fn provider(
    config: &TracingConfig,
    runtime: &tokio::runtime::Handle,
) -> Result<SdkTracerProvider, TelemetryError> {
    let failed = |detail: String| TelemetryError::Exporter {
        endpoint: config.otlp_endpoint.to_string(),
        detail,
    };
    let client = export::Client::new(runtime.clone(), config.timeout).map_err(failed)?;
    let headers = config
        .headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().to_string();
            (name.to_string(), value)
        })
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(config.otlp_endpoint.to_string())
        .with_timeout(config.timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample,
        ))))
        .with_resource(resource)
        .build())
}

impl Telemetry {
    /// Sends the spans still queued (bounded by the export timeout). Call
    /// it off the runtime's threads while the runtime still runs: the
    /// export requests run on it.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "the last spans were not exported");
            }
        }
    }
}
