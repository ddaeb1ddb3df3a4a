//! TLS for both listeners (rustls with the aws-lc-rs provider), reloadable from disk, and the
//! optional mutual TLS of the gRPC listener.
//!
//! Each listener holds a [`TlsReloader`]: the current `rustls::ServerConfig` behind a lock, read
//! once per accepted connection. [`TlsReloader::reload`] builds a new config from the files and
//! swaps it in; connections already open keep the config they were accepted with, so a reload
//! drops none of them. A reload that fails (a missing, unparsable or mismatched file) keeps the
//! old config and reports the error.
//!
//! With a client CA, the gRPC listener asks for a client certificate and verifies it against
//! that CA (webpki: chain, validity, the clientAuth usage). A connection that presents no
//! certificate is accepted when client certificates are [`ClientCertMode::Optional`] (callers
//! then authenticate with Basic credentials) and refused at the handshake when they are
//! [`ClientCertMode::Required`]; a certificate that does not verify is always refused. A
//! verified certificate names the API key it acts as by the [`PrincipalRule`]: a SAN URI
//! `dbcert:api-key:<publicKey>`, which the certificates dbcert issues never carry. The client-CA
//! file is also checked against the store's project CAs (`client_ca.rs`), at start and before a
//! reload is installed ([`TlsReloader::stage`], [`TlsReloader::install`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocols of the gRPC listener.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// The ALPN protocols of the HTTP listener.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The server certificate files, shared by both listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Mutual TLS on the gRPC listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutualTls {
    /// PEM file with the CA certificates client certificates must chain to.
    pub client_ca: PathBuf,
    /// Whether a client must present a certificate.
    pub mode: ClientCertMode,
    /// How a verified certificate names its API key.
    pub rule: PrincipalRule,
}

/// Whether the gRPC listener requires a client certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientCertMode {
    /// A client may present one (then it must verify) or authenticate with Basic credentials.
    #[default]
    Optional,
    /// Every connection must present a certificate that verifies.
    Required,
}

/// The scheme and prefix of the SAN URI that names the API key a client certificate acts as:
/// `dbcert:api-key:<publicKey>`.
pub const API_KEY_URI_PREFIX: &str = "dbcert:api-key:";

/// How a verified client certificate maps to the API key it acts as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrincipalRule {
    /// The certificate carries exactly one subjectAltName URI of the `dbcert` scheme (in any
    /// case), and it is `dbcert:api-key:<publicKey>` ([`API_KEY_URI_PREFIX`], exactly this
    /// lowercase form) with a well-formed public key; the key must exist, and its
    /// roles apply as if it had sent Basic credentials. The subject (CN included) is not read:
    /// the Atlas leaf profile dbcert issues has a CN (the username) and no SAN, so no
    /// certificate dbcert issues can name a key.
    #[default]
    SanUri,
}

/// The TLS configuration of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server certificate and key.
    pub files: TlsFiles,
    /// Mutual TLS on the gRPC listener, if configured.
    pub mutual: Option<MutualTls>,
}

/// An error loading TLS files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The client CA file holds no certificate rustls accepts as a trust anchor.
    #[error("no usable CA certificate in {path}")]
    ClientCa {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("invalid tls configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file could not be read or holds no PEM object of the expected kind.
    #[error("failed to read {what} from {path}")]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
}

/// A listener's TLS configuration, reloadable while serving.
pub struct TlsReloader {
    files: TlsFiles,
    mutual: Option<MutualTls>,
    alpn: &'static [&'static [u8]],
    current: RwLock<StagedTls>,
}

/// A configuration built from the files, not serving yet: [`TlsReloader::install`] puts it in
/// service once its client CAs are checked.
#[derive(Clone)]
pub struct StagedTls {
    config: Arc<ServerConfig>,
    /// The certificates of the client-CA file (mutual TLS only).
    client_cas: Arc<[CertificateDer<'static>]>,
}

/// The TLS of the two listeners: both or neither (plain TCP).
#[derive(Clone, Debug, Default)]
pub struct ListenerTls {
    /// The gRPC listener's, with mutual TLS if configured.
    pub grpc: Option<Arc<TlsReloader>>,
    /// The HTTP listener's.
    pub http: Option<Arc<TlsReloader>>,
}

// === impl ListenerTls ===

impl ListenerTls {
    /// Loads the configuration of each listener (none without settings).
    pub fn load(tls: Option<&TlsSettings>) -> anyhow::Result<Self> {
        use anyhow::Context as _;

        let Some(tls) = tls else {
            return Ok(Self::default());
        };
        let grpc = TlsReloader::load(tls.files.clone(), tls.mutual.clone(), ALPN_GRPC)
            .context("failed to load the tls configuration of the gRPC listener")?;
        let http = TlsReloader::load(tls.files.clone(), None, ALPN_HTTP)
            .context("failed to load the tls configuration of the HTTP listener")?;
        tracing::info!(
            cert = %tls.files.cert.display(),
            mutual_tls = tls.mutual.is_some(),
            "tls enabled on both listeners"
        );
        Ok(Self {
            grpc: Some(Arc::new(grpc)),
            http: Some(Arc::new(http)),
        })
    }

    /// The reloaders of the listeners that use TLS.
    pub fn reloaders(&self) -> Vec<Arc<TlsReloader>> {
        [self.grpc.clone(), self.http.clone()]
            .into_iter()
            .flatten()
            .collect()
    }
}

// === impl TlsReloader ===

impl TlsReloader {
    /// Loads the files into a first configuration.
    pub fn load(
        files: TlsFiles,
        mutual: Option<MutualTls>,
        alpn: &'static [&'static [u8]],
    ) -> Result<Self, TlsError> {
        let staged = build_config(&files, mutual.as_ref(), alpn)?;
        Ok(Self {
            files,
            mutual,
            alpn,
            current: RwLock::new(staged),
        })
    }

    /// Reads the files again into a configuration that does not serve yet.
    pub fn stage(&self) -> Result<StagedTls, TlsError> {
        build_config(&self.files, self.mutual.as_ref(), self.alpn)
    }

    /// Serves new connections with `staged`; connections already open keep theirs.
    pub fn install(&self, staged: StagedTls) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = staged;
    }

    /// Reads the files again and serves new connections with them; on error the old
    /// configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.install(self.stage()?);
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .config
            .clone();
        TlsAcceptor::from(config)
    }

    /// The client-CA file and the certificates it held when the configuration in service was
    /// read (mutual TLS only).
    pub fn client_cas(&self) -> Option<(&Path, Arc<[CertificateDer<'static>]>)> {
        let mutual = self.mutual.as_ref()?;
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some((mutual.client_ca.as_path(), current.client_cas.clone()))
    }

    /// The client-CA file (mutual TLS only).
    pub fn client_ca_file(&self) -> Option<&Path> {
        self.mutual.as_ref().map(|m| m.client_ca.as_path())
    }

    /// The principal rule, when client certificates are verified.
    pub fn principal_rule(&self) -> Option<PrincipalRule> {
        self.mutual.as_ref().map(|m| m.rule)
    }
}

impl fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            files,
            mutual,
            alpn: _,
            current: _,
        } = self;
        f.debug_struct("TlsReloader")
            .field("files", files)
            .field("mutual", mutual)
            .finish_non_exhaustive()
    }
}

// === impl StagedTls ===

impl StagedTls {
    /// The certificates of the client-CA file (empty without mutual TLS).
    pub fn client_cas(&self) -> &[CertificateDer<'static>] {
        &self.client_cas
    }
}

impl fmt::Debug for StagedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedTls")
            .field("client_cas", &self.client_cas.len())
            .finish_non_exhaustive()
    }
}

// === impl PrincipalRule ===

impl PrincipalRule {
    /// The public key a verified client certificate (DER) acts as, if the rule names one.
    pub fn public_key(self, certificate: &[u8]) -> Option<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(certificate).ok()?;
        match self {
            Self::SanUri => {
                // A SAN extension that does not parse (or appears twice) names nothing.
                let san = cert.subject_alternative_name().ok()??;
                // Every URI of the `dbcert` scheme is a candidate, in any case (URI schemes are
                // case-insensitive, RFC 3986 section 3.1): `DBCERT:api-key:...` next to a
                // marker makes two, not one.
                let mut candidates = san
                    .value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
                        _ => None,
                    })
                    .filter(|uri| is_dbcert_scheme(uri));
                let uri = candidates.next()?;
                // Exactly one candidate, in the exact lowercase form, of a public key's shape:
                // nothing ambiguous maps to a key.
                if candidates.next().is_some() {
                    return None;
                }
                let key = uri.strip_prefix(API_KEY_URI_PREFIX)?;
                crate::domain::is_public_key(key).then(|| key.to_owned())
            }
        }
    }
}

/// Whether a URI's scheme is `dbcert`, in any case.
fn is_dbcert_scheme(uri: &str) -> bool {
    uri.split_once(':')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("dbcert"))
}

fn build_config(
    files: &TlsFiles,
    mutual: Option<&MutualTls>,
    alpn: &[&[u8]],
) -> Result<StagedTls, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = read_certs(&files.cert, "certificates")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Pem {
        what: "a private key",
        path: files.key.clone(),
        source,
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(Box::new(e)))?;
    let mut client_cas = Vec::new();
    let builder = match mutual {
        None => builder.with_no_client_auth(),
        Some(mutual) => {
            client_cas = read_certs(&mutual.client_ca, "CA certificates")?;
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(client_cas.iter().cloned());
            if added == 0 {
                return Err(TlsError::ClientCa {
                    path: mutual.client_ca.clone(),
                });
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match mutual.mode {
                ClientCertMode::Optional => verifier.allow_unauthenticated(),
                ClientCertMode::Required => verifier,
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(Box::new(e)))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(Box::new(e)))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(StagedTls {
        config: Arc::new(config),
        client_cas: client_cas.into(),
    })
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        what,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(pem_error(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cert(common_name: Option<&str>, uris: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params.subject_alt_names = uris
            .iter()
            .map(|uri| rcgen::SanType::URI((*uri).try_into().unwrap()))
            .collect();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_rule_maps_exactly_one_well_formed_san_uri_marker() {
        let rule = PrincipalRule::SanUri;
        let key = |common_name, uris: &[&str]| rule.public_key(&cert(common_name, uris));
        assert_eq!(
            key(None, &["dbcert:api-key:abcdefgh"]).as_deref(),
            Some("abcdefgh")
        );
        // The CN is not read: neither needed nor enough.
        assert_eq!(
            key(Some("zzzzzzzz"), &["dbcert:api-key:abcdefgh"]).as_deref(),
            Some("abcdefgh")
        );
        assert_eq!(key(Some("abcdefgh"), &[]), None);
        // Other URIs are ignored; a second marker, a bad shape or another scheme name nothing.
        assert_eq!(
            key(None, &["https://example.com/", "dbcert:api-key:abcdefgh"]).as_deref(),
            Some("abcdefgh")
        );
        assert_eq!(
            key(
                None,
                &["dbcert:api-key:abcdefgh", "dbcert:api-key:bcdefghi"]
            ),
            None
        );
        // The scheme is case-insensitive: another case is a second candidate (no way around
        // "exactly one"), and alone it names nothing (only the exact lowercase form maps).
        for other in [
            "DBCERT:api-key:bcdefghi",
            "Dbcert:api-key:abcdefgh",
            "dbcert:API-KEY:abcdefgh",
        ] {
            assert_eq!(
                key(None, &[other, "dbcert:api-key:abcdefgh"]),
                None,
                "{other}"
            );
            assert_eq!(
                key(None, &["dbcert:api-key:abcdefgh", other]),
                None,
                "{other}"
            );
            assert_eq!(key(None, &[other]), None, "{other}");
        }
        assert_eq!(key(None, &["dbcert:api-key:ABCDEFGH"]), None);
        assert_eq!(key(None, &["dbcert:api-key:abcdefgh/x"]), None);
        assert_eq!(key(None, &["urn:dbcert:api-key:abcdefgh"]), None);
        assert_eq!(rule.public_key(b"not a certificate"), None);
    }

    #[test]
    fn a_bad_file_is_an_error_and_reload_keeps_the_old_config() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let reloader = TlsReloader::load(files.clone(), None, ALPN_HTTP).unwrap();
        std::fs::write(&files.cert, "garbage").unwrap();
        let error = reloader.reload().unwrap_err();
        assert!(matches!(error, TlsError::Pem { .. }), "{error:?}");
        // A key that does not match the certificate is refused too.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, other.serialize_pem()).unwrap();
        assert!(reloader.reload().is_err());
        assert!(!format!("{reloader:?}").contains("PRIVATE"));
    }
}
