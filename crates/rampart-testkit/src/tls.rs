//! Certificates made in the test (a private CA and leaves it signs, written
//! as PEM files), and a real TLS client that reports what was negotiated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// A private certificate authority.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as written to disk.
pub struct Leaf {
    /// The PEM chain file.
    pub cert: PathBuf,
    /// The PEM key file.
    pub key: PathBuf,
    /// The certificate, to compare with what a server presented.
    pub der: CertificateDer<'static>,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("ca key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca cert"),
        }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes the CA certificate to `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.pem()).expect("write ca");
        path
    }

    /// A leaf for `names`, valid until `not_after_year`, written as
    /// `dir/stem.crt` and `dir/stem.key`.
    pub fn leaf(&self, dir: &Path, stem: &str, names: &[&str], not_after_year: i32) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or(stem),
        );
        params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        Leaf {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
        }
    }
}

/// What one HTTPS request through a real TLS client saw.
#[derive(Debug)]
pub struct TlsGot {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// The protocol ALPN chose (`h2`, `http/1.1`).
    pub alpn: Option<String>,
    /// The leaf certificate the server presented.
    pub peer_cert: Option<CertificateDer<'static>>,
    /// Whether the handshake resumed an earlier session.
    pub resumed: bool,
    /// The HTTP version spoken.
    pub version: http::Version,
}

/// A TLS client trusting `roots`, offering `alpn` (`["h2", "http/1.1"]`).
pub fn client(roots: &[CertificateDer<'static>], alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// One GET of `path` to `addr` over TLS, with SNI `server_name`, speaking
/// whatever ALPN chose. Fails the test when the handshake fails.
pub async fn get(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
    path: &str,
) -> TlsGot {
    try_get(config, addr, server_name, path)
        .await
        .unwrap_or_else(|e| panic!("TLS request to {addr} ({server_name}): {e}"))
}

/// [`get`], returning the handshake or request error instead of failing.
pub async fn try_get(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
    path: &str,
) -> Result<TlsGot, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let alpn = session
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let peer_cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let request = Request::get(path)
        .header(http::header::HOST, server_name)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = if alpn.as_deref() == Some("h2") {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut request = request;
        *request.uri_mut() = format!("https://{server_name}{path}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        send.send_request(request)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request)
            .await
            .map_err(|e| e.to_string())?
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(TlsGot {
        status: parts.status,
        headers: parts.headers,
        body,
        alpn,
        peer_cert,
        resumed,
        version: parts.version,
    })
}

/// What an HTTPS origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP version.
    pub version: http::Version,
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// Whether the client presented a certificate.
    pub client_cert: bool,
}

/// An HTTPS origin on 127.0.0.1 serving `leaf`, offering `alpn`, asking for
/// client certificates signed by `client_ca` when given. It answers
/// `200 "secure"` and records what it saw.
pub async fn https_origin(
    leaf: &Leaf,
    alpn: &[&str],
    client_ca: Option<CertificateDer<'static>>,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Seen>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![leaf.der.clone()];
    let key_pem = std::fs::read(&leaf.key).expect("key");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key_pem).expect("key pem");
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).expect("client ca");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), Arc::clone(&record));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let sni = session.server_name().map(str::to_string);
                let client_cert = session.peer_certificates().is_some_and(|c| !c.is_empty());
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        record.lock().expect("lock").push(Seen {
                            version: req.version(),
                            sni: sni.clone(),
                            client_cert,
                        });
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from_static(b"secure")),
                            ))
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}
