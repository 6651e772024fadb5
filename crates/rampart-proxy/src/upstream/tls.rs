//! TLS to an upstream's targets: verified against the system's roots or
//! the upstream's own CA, SNI from the target's host or `server_name`, an
//! optional client certificate (mutual TLS), and ALPN offering `h2` and
//! `http/1.1` so targets that speak HTTP/2 get it. Verification is skipped
//! only with `danger_accept_invalid_certs = true`, and then loudly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_config::UpstreamTls;
use rampart_core::tls::AcceptAny;
use rustls::crypto::ring as provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why an upstream's TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("upstream {upstream}: tls: {}: {detail}", file.display())]
    File {
        /// The upstream.
        upstream: String,
        /// The file.
        file: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The system's roots could not be read.
    #[error("upstream {upstream}: tls: no system root certificates could be read; set tls.ca")]
    NoRoots {
        /// The upstream.
        upstream: String,
    },
    /// rustls refused the settings.
    #[error("upstream {upstream}: tls: {source}")]
    Rustls {
        /// The upstream.
        upstream: String,
        /// Why.
        source: rustls::Error,
    },
}

fn certs(upstream: &str, file: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let error = |detail: String| UpstreamTlsError::File {
        upstream: upstream.to_string(),
        file: file.to_path_buf(),
        detail,
    };
    let pem = std::fs::read(file).map_err(|e| error(e.to_string()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The rustls client settings for an upstream (ALPN is set by the connector).
pub fn client_config(
    tls: &UpstreamTls,
    upstream: &str,
) -> Result<rustls::ClientConfig, UpstreamTlsError> {
    let rustls_error = |source| UpstreamTlsError::Rustls {
        upstream: upstream.to_string(),
        source,
    };
    let provider = Arc::new(provider::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?;
    let builder = if tls.danger_accept_invalid_certs {
        tracing::warn!(
            upstream,
            "danger_accept_invalid_certs: the upstream's certificate is not verified; anyone on the path can read and change this traffic"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(
                provider.signature_verification_algorithms,
            )))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca {
            Some(ca) => {
                for cert in certs(upstream, ca)? {
                    roots.add(cert).map_err(rustls_error)?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(UpstreamTlsError::NoRoots {
                        upstream: upstream.to_string(),
                    });
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    match &tls.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = certs(upstream, cert)?;
            let key_pem = std::fs::read(key).map_err(|e| UpstreamTlsError::File {
                upstream: upstream.to_string(),
                file: key.clone(),
                detail: e.to_string(),
            })?;
            let key_der =
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| UpstreamTlsError::File {
                    upstream: upstream.to_string(),
                    file: key.clone(),
                    detail: e.to_string(),
                })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(rustls_error)
        }
    }
}
