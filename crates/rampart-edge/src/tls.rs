//! TLS termination with rustls: certificates read from PEM files, chosen
//! by SNI, ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 only, session
//! resumption by ticket and by session cache. [`load`] reads and checks
//! every file (a key that does not belong to its certificate is refused),
//! so `rampart check`, start and reload all fail the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_config::{CertConfig, HostPattern, TlsConfig};
use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{field}: cannot read {}: {source}", file.display())]
    Read {
        /// Where in the config.
        field: String,
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{field}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file.display())]
    NoCertificate {
        /// Where in the config.
        field: String,
        /// The file.
        file: PathBuf,
    },
    /// A key file holds no usable private key.
    #[error("{field}: {} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {detail}", file.display())]
    BadKey {
        /// Where in the config.
        field: String,
        /// The file.
        file: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The certificate cannot be parsed.
    #[error("{field}: {} is not a valid X.509 certificate: {detail}", file.display())]
    BadCertificate {
        /// Where in the config.
        field: String,
        /// The file.
        file: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The key is not the certificate's.
    #[error("{field}: the key {} does not belong to the certificate {}", key.display(), cert.display())]
    Mismatch {
        /// Where in the config.
        field: String,
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the settings.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A loaded certificate, for metrics and warnings.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The certificate file.
    pub file: PathBuf,
    /// The leaf's subject.
    pub subject: String,
    /// The leaf's end of validity, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl CertInfo {
    /// Time left before it expires at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Duration::from_secs(
            u64::try_from(self.not_after)
                .unwrap_or(0)
                .saturating_sub(now),
        )
    }
}

/// Server settings ready for the listener, and what was loaded.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The rustls settings.
    pub server: Arc<rustls::ServerConfig>,
    /// Every certificate, in config order.
    pub certs: Vec<CertInfo>,
}

/// Reads every certificate and key of `config` and builds the settings.
pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    for c in &config.certs {
        let (key, info) = certified(c)?;
        keys.push((c.hosts.clone(), Arc::new(key)));
        certs.push(info);
    }
    let resolver = Sni { keys };
    let mut server =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    server.ticketer = provider::Ticketer::new()?;
    server.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Tls {
        server: Arc::new(server),
        certs,
    })
}

fn read(field: &str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        field: field.to_string(),
        file: file.to_path_buf(),
        source,
    })
}

fn certified(c: &CertConfig) -> Result<(CertifiedKey, CertInfo), TlsError> {
    let pem = read(&c.field, &c.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            field: c.field.clone(),
            file: c.cert.clone(),
            detail: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            field: c.field.clone(),
            file: c.cert.clone(),
        });
    };
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
            field: c.field.clone(),
            file: c.cert.clone(),
            detail: e.to_string(),
        })?;
    let info = CertInfo {
        file: c.cert.clone(),
        subject: parsed.subject().to_string(),
        not_after: parsed.validity().not_after.timestamp(),
    };
    let bad_key = |detail: String| TlsError::BadKey {
        field: c.field.clone(),
        file: c.key.clone(),
        detail,
    };
    let key_pem = read(&c.field, &c.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signing = provider::sign::any_supported_type(&key).map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    if certified.keys_match().is_err() {
        return Err(TlsError::Mismatch {
            field: c.field.clone(),
            cert: c.cert.clone(),
            key: c.key.clone(),
        });
    }
    Ok((certified, info))
}

/// Picks the certificate by the client's SNI: the first whose hosts match,
/// else the first configured.
#[derive(Debug)]
struct Sni {
    keys: Vec<(Vec<HostPattern>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|name| {
            self.keys
                .iter()
                .find(|(hosts, _)| hosts.iter().any(|h| h.matches(name)))
        });
        chosen
            .or_else(|| self.keys.first())
            .map(|(_, k)| Arc::clone(k))
    }
}
