//! TLS to `https://` targets: verified against the system's roots and any
//! `--cacert` certificates, or not at all with `--insecure` (said in the
//! report's warnings). HTTP/1.1 connections offer `http/1.1` by ALPN,
//! HTTP/2 ones `h2`.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::failure::{Failed, Failure};

/// How `https://` targets are verified.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any certificate (`--insecure`).
    pub insecure: bool,
    /// Certificates trusted besides the system's (`--cacert`).
    pub ca: Vec<CertificateDer<'static>>,
}

impl TlsOptions {
    /// Reads the PEM certificates of a `--cacert` file.
    pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        Ok(certs)
    }
}

/// The client side of TLS for one protocol: HTTP/1.1 or HTTP/2.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// A client offering `alpn` (`b"http/1.1"` or `b"h2"`).
    pub fn new(options: &TlsOptions, alpn: &[u8]) -> Result<Self, String> {
        let provider = Arc::new(provider::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = if options.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(rampart_core::tls::AcceptAny(
                    provider.signature_verification_algorithms,
                )))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            for cert in &options.ca {
                roots
                    .add(cert.clone())
                    .map_err(|e| format!("--cacert: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The rustls settings (for hyper's connector).
    pub fn config(&self) -> rustls::ClientConfig {
        (*self.config).clone()
    }

    /// Settings for a connector that never meets an `https://` URL (no
    /// roots are read: any certificate would be refused).
    pub fn unused_config() -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            })
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            })
    }

    /// Runs the handshake on a connected stream to `host`.
    pub async fn handshake(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failed> {
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|e| Failed::new(Failure::Tls, format!("{host}: {e}")))?
            .to_owned();
        TlsConnector::from(Arc::clone(&self.config))
            .connect(name, stream)
            .await
            .map_err(|e| Failed::new(Failure::Tls, format!("TLS with {host}: {e}")))
    }
}
