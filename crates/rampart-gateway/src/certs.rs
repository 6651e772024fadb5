//! The public listener's certificates: loaded at start and on every
//! reload (so renewed files are picked up), warned about when they near
//! their end, and exported as seconds left before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use rampart_config::TlsConfig;
use rampart_edge::tls::{CertInfo, Tls, TlsError};

/// Certificates closer than this to their end are warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// Reads `config`'s certificates and keys, warning about any that expire
/// within [`EXPIRY_WARNING`] of `now`.
pub fn load(config: &TlsConfig, now: SystemTime) -> Result<Tls, TlsError> {
    let tls = rampart_edge::tls::load(config)?;
    for cert in &tls.certs {
        let left = cert.remaining(now);
        if left.is_zero() {
            tracing::error!(file = %cert.file.display(), subject = %cert.subject, "TLS certificate has expired");
        } else if left < EXPIRY_WARNING {
            tracing::warn!(
                file = %cert.file.display(),
                subject = %cert.subject,
                days_left = left.as_secs() / 86_400,
                "TLS certificate expires soon"
            );
        }
    }
    Ok(tls)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    file: String,
    subject: String,
}

/// `rampart_tls_certificate_expiry_seconds{file,subject}`, computed at
/// scrape time from the certificates in use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expiry {
    pub certs: Arc<ArcSwap<Vec<CertInfo>>>,
}

impl Collector for Expiry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let certs = self.certs.load();
        if certs.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now();
        let mut family = encoder.encode_descriptor(
            "tls_certificate_expiry_seconds",
            "Seconds left before each certificate of the public listener expires (0 once expired)",
            None,
            MetricType::Gauge,
        )?;
        for cert in certs.iter() {
            let labels = CertLabels {
                file: cert.file.display().to_string(),
                subject: cert.subject.clone(),
            };
            let gauge = ConstGauge::new(cert.remaining(now).as_secs() as i64);
            gauge.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
