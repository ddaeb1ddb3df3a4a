//! `dbcert healthcheck`: asks a server's gRPC health service, for container HEALTHCHECKs.
//!
//! It reads the server's own environment (`DBCERT_GRPC_LISTEN`, `DBCERT_TLS_CERT_FILE`), so in
//! the server's container it needs no setup of its own. When the server serves TLS, the check
//! speaks TLS and verifies the server:
//!
//! - with `--ca-file`, against those CA certificates and the name `--server-name` (default: the
//!   IP address it connects to), as any client would;
//! - otherwise it trusts exactly the certificate the server is configured to serve (the first
//!   certificate of `--tls-cert-file`, the server's own file): byte for byte, whatever its
//!   issuer or names. A certificate replaced on disk but not yet loaded (no SIGHUP) fails the
//!   check, which is what the operator needs to hear.
//!
//! A server that requires client certificates (`--grpc-client-cert required`) needs
//! `--client-cert-file`/`--client-key-file`, a certificate its client CA signed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::HealthcheckArgs;

/// How long the check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Exits 0 when the server reports SERVING for the service, 1 otherwise.
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    let addr = loopback_if_unspecified(args.grpc_listen);
    // Set when the server asks for a client certificate and the check has none to give.
    let asked_for_certificate = Arc::new(AtomicBool::new(false));
    let result = async {
        let tls = tls_client(&args, addr, &asked_for_certificate)?;
        check(addr, tls, args.service.clone()).await
    }
    .await;
    match result {
        Ok(ServingStatus::Serving) => {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("{}", status.as_str_name());
            ExitCode::FAILURE
        }
        Err(error) => {
            let asked = asked_for_certificate.load(Ordering::Relaxed);
            eprintln!("health check failed: {}", explain(&error, &args, asked));
            ExitCode::FAILURE
        }
    }
}

/// How to reach the server over TLS.
struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

async fn check(
    addr: SocketAddr,
    tls: Option<TlsClient>,
    service: String,
) -> anyhow::Result<ServingStatus> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    let channel = match tls {
        None => endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach {addr} over plaintext gRPC"))?,
        Some(tls) => {
            let connector = tower::service_fn(move |_: http::Uri| {
                let (config, name) = (tls.config.clone(), tls.server_name.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(readable_tls_error)?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            });
            tokio::time::timeout(TIMEOUT, endpoint.connect_with_connector(connector))
                .await
                .map_err(|_| anyhow!("no tls connection to {addr} within {TIMEOUT:?}"))?
                .with_context(|| format!("cannot reach {addr} over gRPC with TLS"))?
        }
    };
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .map_err(|status| anyhow!("no answer from {addr}: {}", status_text(&status)))?;
    Ok(response.into_inner().status())
}

/// A status's message, or for a transport failure the chain of its causes.
fn status_text(status: &tonic::Status) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        causes.push(error.to_string());
        source = error.source();
    }
    if causes.is_empty() {
        format!("{:?}: {}", status.code(), status.message())
    } else {
        causes.join(": ")
    }
}

/// The TLS client of the check, if the server serves TLS (its certificate file is known) or a
/// CA file is given.
fn tls_client(
    args: &HealthcheckArgs,
    addr: SocketAddr,
    asked_for_certificate: &Arc<AtomicBool>,
) -> anyhow::Result<Option<TlsClient>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("no tls protocol version available")?;
    let builder = match (args.ca_file.as_deref(), args.tls_cert_file.as_deref()) {
        (Some(ca_file), _) => {
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(read_certs(ca_file)?);
            if added == 0 {
                return Err(anyhow!("no usable CA certificate in {}", ca_file.display()));
            }
            builder.with_root_certificates(roots)
        }
        (None, Some(cert_file)) => {
            let served = read_certs(cert_file)?.swap_remove(0);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ExactCertificate {
                    expected: served,
                    file: cert_file.to_path_buf(),
                    algorithms: provider.signature_verification_algorithms,
                }))
        }
        (None, None) => return Ok(None),
    };
    let key = match (&args.client_cert_file, &args.client_key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certs(cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
                format!("failed to read a private key from {}", key_file.display())
            })?;
            let key = CertifiedKey::from_der(chain, key, &provider)
                .context("the client certificate and key do not make a usable pair")?;
            Some(Arc::new(key))
        }
        _ => None,
    };
    let mut config = builder.with_client_cert_resolver(Arc::new(ClientCertificate {
        key,
        asked: asked_for_certificate.clone(),
    }));
    config.alpn_protocols = vec![b"h2".to_vec()];
    let server_name = match &args.server_name {
        Some(name) => ServerName::try_from(name.clone())
            .with_context(|| format!("invalid --server-name {name:?}"))?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    Ok(Some(TlsClient {
        config: Arc::new(config),
        server_name,
    }))
}

/// Every certificate of a PEM file; at least one.
pub(crate) fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("failed to read certificates from {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// A handshake error whose rustls cause prints as its message (rustls prints a verifier's own
/// error with `Debug`).
pub(crate) fn readable_tls_error(error: std::io::Error) -> std::io::Error {
    let own = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                Some(other.0.to_string())
            }
            _ => None,
        });
    match own {
        Some(text) => std::io::Error::new(error.kind(), text),
        None => error,
    }
}

/// The error's chain (each cause once), with what to do about the usual TLS mistakes.
fn explain(error: &anyhow::Error, args: &HealthcheckArgs, asked_for_certificate: bool) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    let hint = if text.contains(NotTheConfiguredCertificate::MARK) {
        None
    } else if text.contains("UnknownIssuer") {
        Some(match &args.ca_file {
            Some(ca) => format!(
                "the server's certificate is not signed by a CA in {}",
                ca.display()
            ),
            None => "the server's certificate is not trusted".to_owned(),
        })
    } else if text.contains("not valid for name") {
        Some(
            "set --server-name (DBCERT_HEALTHCHECK_SERVER_NAME) to a name of the server's \
             certificate"
                .to_owned(),
        )
    } else if args.client_cert_file.is_some()
        && (asked_for_certificate || text.contains("UnknownCA"))
    {
        Some(
            "if the server refused the client certificate, it must be one the server's \
             --grpc-client-ca-file signed"
                .to_owned(),
        )
    } else if asked_for_certificate || text.contains("CertificateRequired") {
        Some(
            "the server asked for a client certificate and none was given; if it requires one \
             (--grpc-client-cert required), give --client-cert-file and --client-key-file \
             (DBCERT_HEALTHCHECK_CLIENT_CERT_FILE, DBCERT_HEALTHCHECK_CLIENT_KEY_FILE)"
                .to_owned(),
        )
    } else if args.tls_cert_file.is_none() && args.ca_file.is_none() && !text.contains("refused") {
        Some(
            "if the server serves TLS, give it the server's certificate file \
             (--tls-cert-file / DBCERT_TLS_CERT_FILE)"
                .to_owned(),
        )
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

/// Trusts exactly one certificate: the one the server is configured to serve.
#[derive(Debug)]
struct ExactCertificate {
    expected: CertificateDer<'static>,
    file: PathBuf,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ExactCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(NotTheConfiguredCertificate(self.file.clone()))),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Presents the configured client certificate, if any, noting that the server asked for one.
#[derive(Debug)]
struct ClientCertificate {
    key: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The server presented another certificate than the one in its configured file.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's certificate is not the one in {} (replaced without SIGHUP, or another server?)",
    .0.display()
)]
struct NotTheConfiguredCertificate(PathBuf);

impl NotTheConfiguredCertificate {
    /// A part of the message, to recognise it.
    const MARK: &str = "the server's certificate is not the one in";
}

/// A server listening on 0.0.0.0 or [::] is reached on loopback.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}
