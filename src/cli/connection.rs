//! The client's connection: the server URL (`http://` plaintext, `https://` TLS), the rustls
//! configuration (the CA file or the Mozilla roots, an optional client certificate for mutual
//! TLS), the tonic channel, and the `authorization: Basic base64(public:private)` metadata every
//! call carries, as grpcurl users send it (README, quick start).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::profile::{PRIVATE_KEY_VAR, PUBLIC_KEY_VAR, Settings};
use super::{CliError, Exit};
use crate::healthcheck::{read_certs, readable_tls_error};

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take (an RSA-4096 key made while the pool is empty takes a second or
/// two; a server under load queues).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A channel whose calls carry the API key.
pub type Authed = InterceptedService<Channel, BasicAuth>;

/// A connected client: the channel with credentials, and the server's URL for messages.
pub struct Connection {
    /// The channel, with the credentials interceptor.
    pub channel: Channel,
    /// Adds the API key to every call.
    pub auth: BasicAuth,
    /// The server's URL as given.
    pub server: String,
    /// Whether a client certificate is presented (for the hint of a refused connection).
    client_cert: bool,
}

impl Connection {
    /// Connects to the server of `settings`. Fails with [`Exit::Unauthenticated`] when there is
    /// neither an API key nor a client certificate, [`Exit::Usage`] for a bad URL or TLS file,
    /// and [`Exit::Unavailable`] when the server cannot be reached.
    pub async fn open(settings: &Settings) -> Result<Self, CliError> {
        if settings.api_key.is_none() && settings.client_cert.is_none() {
            return Err(CliError::new(
                Exit::Unauthenticated,
                format!(
                    "no credentials: set {PUBLIC_KEY_VAR} and {PRIVATE_KEY_VAR}, or a profile \
                     with public_api_key and private_api_key, or give a client certificate \
                     (--client-cert-file, --client-key-file)"
                ),
            ));
        }
        let target = Target::parse(&settings.server)?;
        let auth = BasicAuth::new(settings)?;
        if !target.tls && auth.0.is_some() && !target.is_loopback() {
            eprintln!(
                "warning: sending the API key unencrypted to {} (use an https:// server)",
                settings.server
            );
        }
        let endpoint = Endpoint::from_shared(format!("http://{}", target.authority))
            .map_err(|e| CliError::usage(format!("invalid --server {}: {e}", settings.server)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        let unreachable = |error: tonic::transport::Error| {
            CliError::new(
                Exit::Unavailable,
                format!("cannot reach {}: {}", settings.server, causes(&error)),
            )
        };
        let channel = if target.tls {
            let config = Arc::new(tls_config(settings)?);
            let name = match &settings.server_name {
                Some(name) => ServerName::try_from(name.clone())
                    .map_err(|e| CliError::usage(format!("invalid --server-name {name:?}: {e}")))?,
                None => target.server_name()?,
            };
            let (host, port) = (target.host.clone(), target.port);
            let connector = tower::service_fn(move |_: http::Uri| {
                let (config, name, host) = (config.clone(), name.clone(), host.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(readable_tls_error)?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            });
            tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect_with_connector(connector))
                .await
                .map_err(|_| {
                    CliError::new(
                        Exit::Unavailable,
                        format!(
                            "cannot reach {}: no TLS connection within {CONNECT_TIMEOUT:?}",
                            settings.server
                        ),
                    )
                })?
                .map_err(unreachable)?
        } else {
            endpoint.connect().await.map_err(unreachable)?
        };
        Ok(Self {
            channel,
            auth,
            server: settings.server.clone(),
            client_cert: settings.client_cert.is_some(),
        })
    }

    /// The channel with credentials, for a generated client's `with_interceptor`.
    pub fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// The error of a failed call.
    pub fn error(&self, status: &tonic::Status) -> CliError {
        let error = CliError::from_status(status, &self.server);
        if self.client_cert && error.exit() == Exit::Unavailable {
            // TLS 1.3 reports a refused client certificate only as a closed connection.
            return CliError::new(
                Exit::Unavailable,
                format!(
                    "{error} (if the server refused the client certificate, it must be one its \
                     --grpc-client-ca-file signed)"
                ),
            );
        }
        error
    }
}

/// Adds `authorization: Basic …` to every call, when an API key is configured (with only a
/// client certificate, the server authenticates the connection).
#[derive(Clone)]
pub struct BasicAuth(Option<MetadataValue<Ascii>>);

impl BasicAuth {
    fn new(settings: &Settings) -> Result<Self, CliError> {
        let Some(key) = &settings.api_key else {
            return Ok(Self(None));
        };
        let pair = zeroize::Zeroizing::new(format!("{}:{}", key.public, key.private.as_str()));
        let value = zeroize::Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        ));
        let mut value = MetadataValue::try_from(value.as_str())
            .map_err(|_| CliError::usage("the API key holds characters a header cannot carry"))?;
        // Kept out of HTTP/2 header compression tables and redacted in Debug.
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

impl tonic::service::Interceptor for BasicAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A parsed server URL.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
}

impl Target {
    fn parse(server: &str) -> Result<Self, CliError> {
        let invalid = |why: &str| {
            CliError::usage(format!(
                "invalid server {server:?}: {why} (expected http://HOST:PORT or https://HOST:PORT)"
            ))
        };
        let uri: http::Uri = server.parse().map_err(|_| invalid("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        if uri
            .path_and_query()
            .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
        {
            return Err(invalid("no path is allowed"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            tls,
            authority: format!("{}:{port}", authority.host()),
            host,
            port,
        })
    }

    fn is_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    fn server_name(&self) -> Result<ServerName<'static>, CliError> {
        ServerName::try_from(self.host.clone())
            .map_err(|e| CliError::usage(format!("invalid server name {:?}: {e}", self.host)))
    }
}

/// The rustls client configuration: roots from --ca-file or the Mozilla set, the client
/// certificate if given, ALPN h2.
fn tls_config(settings: &Settings) -> Result<ClientConfig, CliError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(ca_file) => {
            let certs = read_certs(ca_file).map_err(|e| CliError::usage(format!("{e:#}")))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(CliError::usage(format!(
                    "no usable CA certificate in {}",
                    ca_file.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::other(format!("no tls protocol version available: {e}")))?
        .with_root_certificates(roots);
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = read_certs(cert_file).map_err(|e| CliError::usage(format!("{e:#}")))?;
            // The key file's contents never reach the message.
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| {
                CliError::usage(format!(
                    "no private key could be read from {}",
                    key_file.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                CliError::usage(format!(
                    "the client certificate and key do not make a usable pair: {e}"
                ))
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A transport error's causes, each once.
fn causes(error: &tonic::transport::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse_with_scheme_defaults() {
        let t = Target::parse("http://127.0.0.1:50051").unwrap();
        assert!(!t.tls && t.is_loopback());
        assert_eq!(t.authority, "127.0.0.1:50051");
        let t = Target::parse("https://dbcert.example.com").unwrap();
        assert!(t.tls && !t.is_loopback());
        assert_eq!((t.host.as_str(), t.port), ("dbcert.example.com", 443));
        let t = Target::parse("https://[::1]:8443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert!(t.is_loopback());
        for bad in ["127.0.0.1:50051", "ftp://h:1", "http://h:1/path", "http://"] {
            let error = Target::parse(bad).err().unwrap();
            assert_eq!(error.exit(), Exit::Usage, "{bad}");
        }
    }
}
