//! Command-line and environment configuration (clap; every flag is also a `DBCERT_*` variable).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use zeroize::Zeroizing;

use crate::auth::{ThrottleSettings, TrustedProxies};
use crate::domain::{CaSubject, CoreSettings, KeyPoolConfig, KeyType};
use crate::gateway::PublicUrl;
use crate::middleware::Limits;
use crate::storage::redact_url;
use crate::tls::{ClientCertMode, MutualTls, PrincipalRule, TlsFiles, TlsSettings};

pub use self::env_secrets::EnvSecrets;
pub use self::revocation_pointers::RevocationPointer;
use self::revocation_pointers::{leaf_revocation_pointers, parse_revocation_pointer};

/// The default gRPC listen address.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50051";
/// The default HTTP (Atlas REST gateway) listen address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./dbcert-data";
/// The default `O` of project CAs (defined by the core's settings).
pub const DEFAULT_CA_ORGANIZATION: &str = CoreSettings::DEFAULT_CA_ORGANIZATION;
/// The default `OU` of project CAs (defined by the core's settings).
pub const DEFAULT_CA_ORGANIZATIONAL_UNIT: &str = CoreSettings::DEFAULT_CA_ORGANIZATIONAL_UNIT;
/// How long in-flight calls may take to finish after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: &str = "30s";
/// The longest a request may run.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "60s";
/// The longest a client may take to send request headers (from their first byte) or finish a
/// TLS handshake.
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// How long a kept-alive HTTP/1 connection may wait for its next request: longer than the idle
/// time of common client pools (Go and reqwest 90 s, .NET 60 s, nginx upstreams 60 s), so that
/// they, not dbcert, close an idle connection.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: &str = "120s";
/// Requests in progress at once over both listeners.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Open connections per listener (keep it below the process's open-files limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open connections per client address and listener: a tenth of the whole.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1_000;
/// The largest request head (bytes).
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 16 * 1024;
/// Concurrent HTTP/2 streams per connection.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Failed authentications allowed in a burst per client address, whatever keys they name.
pub const DEFAULT_AUTH_FAILURE_BURST: u32 = 10;
/// Failed authentications allowed in a burst per client address naming one key.
pub const DEFAULT_AUTH_FAILURE_KEY_BURST: u32 = ThrottleSettings::DEFAULT_KEY_BURST;
/// Failed authentications naming one key, from any addresses, in a burst before the
/// distributed-guessing warning (which refuses no one).
pub const DEFAULT_AUTH_FAILURE_KEY_ALERT: u32 = ThrottleSettings::DEFAULT_KEY_ALERT;
/// The time one failed authentication takes to be forgotten.
pub const DEFAULT_AUTH_FAILURE_REFILL: &str = "6s";
/// Ready leaf keys kept per pooled key type.
pub const DEFAULT_KEY_POOL_SIZE: usize = 16;
/// Threads generating pooled keys (one leaves the other cores to requests).
pub const DEFAULT_KEY_POOL_WORKERS: usize = 1;
/// The pooled key types: only RSA keys are slow enough to be worth pooling.
pub const DEFAULT_KEY_POOL_TYPES: &str = "RSA_4096";
/// How long cached API keys, projects, settings, users and certificate counts are used.
pub const DEFAULT_CACHE_TTL: &str = "1s";
/// The default `--crl-validity` (`domain::DEFAULT_CRL_VALIDITY`).
pub const DEFAULT_CRL_VALIDITY: &str = "7d";
/// Days audit events are kept before the background purge deletes them: a year, as audit
/// standards commonly ask (PCI DSS 10.5.1 keeps audit history for at least twelve months).
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;
/// The longest retention accepted (100 years): beyond it use 0, keep forever.
pub const MAX_AUDIT_RETENTION_DAYS: u32 = 36_500;

/// dbcert: a self-hosted, Atlas-compatible issuer of X.509 client certificates for database
/// users.
#[derive(Debug, Parser)]
#[command(name = "dbcert", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The end of `dbcert serve --help`: the secrets taken from the environment only.
const SERVE_AFTER_HELP: &str = "Secrets, from the environment only (refused on the command line, where `ps` shows them):
  DBCERT_MASTER_KEY         the master key itself (base64 of 32 bytes); prefer --master-key-file
  DBCERT_BOOTSTRAP_API_KEY  publicKey:privateKey of an ORG_OWNER key to ensure in the default organization";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the gRPC service and the Atlas REST gateway.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(Box<ServeArgs>),
    /// Asks a running server's gRPC health service; exits 0 when it is SERVING.
    Healthcheck(HealthcheckArgs),
    /// Re-seals every project CA key and the master key check under a new master key, while
    /// the replicas keep serving (see docs/deployment.md, "Rotating the master key").
    RotateMasterKey(RotateMasterKeyArgs),
    /// Client: creates and lists projects, prints a project's CA (as `atlas projects`).
    Projects(crate::cli::ProjectsArgs),
    /// Client: creates, lists and deletes database users, issues and lists their certificates
    /// (as `atlas dbusers`).
    Dbusers(crate::cli::DbusersArgs),
}

/// The log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Flags of `dbcert serve`.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address of the gRPC listener.
    #[arg(long, env = "DBCERT_GRPC_LISTEN", default_value = DEFAULT_GRPC_LISTEN)]
    pub grpc_listen: SocketAddr,
    /// Address of the HTTP listener (the Atlas REST gateway).
    #[arg(long, env = "DBCERT_HTTP_LISTEN", default_value = DEFAULT_HTTP_LISTEN)]
    pub http_listen: SocketAddr,
    /// Address of a plaintext listener serving only `GET /metrics`; the HTTP listener then
    /// serves no `/metrics`. Default: `/metrics` on the HTTP listener.
    #[arg(long, env = "DBCERT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for the embedded database, the generated master key and bootstrap key.
    #[arg(long, env = "DBCERT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` or `postgres://…`. Default: SQLite in the data directory.
    #[arg(long, env = "DBCERT_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// File holding the master key (base64 of 32 bytes) that seals CA private keys.
    #[arg(long, env = "DBCERT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Files of further master keys, accepted for opening CA keys and Digest nonces but never
    /// used to seal: the other key during a master key rotation. Repeatable; comma-separated in
    /// the environment.
    #[arg(
        long,
        env = "DBCERT_ADDITIONAL_MASTER_KEY_FILES",
        value_delimiter = ','
    )]
    pub additional_master_key_file: Vec<PathBuf>,
    /// The master key and the bootstrap key: environment only.
    #[command(flatten)]
    pub secrets: EnvSecrets,
    /// Start even when the master key file, the SQLite file or the data directory is open to
    /// group or others (logged as a warning at every start).
    #[arg(long, env = "DBCERT_ALLOW_INSECURE_PERMISSIONS")]
    pub allow_insecure_permissions: bool,
    /// `O` of project CA subjects.
    #[arg(long, env = "DBCERT_CA_ORGANIZATION", default_value = DEFAULT_CA_ORGANIZATION)]
    pub ca_organization: String,
    /// `OU` of project CA subjects.
    #[arg(long, env = "DBCERT_CA_ORGANIZATIONAL_UNIT", default_value = DEFAULT_CA_ORGANIZATIONAL_UNIT)]
    pub ca_organizational_unit: String,
    /// Most unexpired certificates per user (ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED beyond).
    #[arg(long, env = "DBCERT_MAX_CERTIFICATES_PER_USER", default_value_t = CoreSettings::DEFAULT_MAX_CERTIFICATES_PER_USER)]
    pub max_certificates_per_user: u64,
    /// How long a project CRL is valid (its nextUpdate); it is re-signed after half of it and
    /// on every revocation. `7d`, `12h`, `30m` or seconds; 2 minutes to 365 days.
    #[arg(long, env = "DBCERT_CRL_VALIDITY", default_value = DEFAULT_CRL_VALIDITY, value_parser = parse_crl_validity)]
    pub crl_validity: Duration,
    /// Log format.
    #[arg(long, env = "DBCERT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Time given to in-flight calls after SIGTERM/SIGINT.
    #[arg(long, env = "DBCERT_SHUTDOWN_GRACE", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// The longest a request may run (then 504 / DEADLINE_EXCEEDED).
    #[arg(long, env = "DBCERT_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The longest a client may take to send request headers (HTTP/1, from their first byte) or
    /// finish a TLS handshake.
    #[arg(long, env = "DBCERT_HEADER_READ_TIMEOUT", default_value = DEFAULT_HEADER_READ_TIMEOUT, value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long an HTTP/1 keep-alive connection may wait for its next request before dbcert
    /// closes it (cleanly, between requests).
    #[arg(long, env = "DBCERT_HTTP_IDLE_TIMEOUT", default_value = DEFAULT_HTTP_IDLE_TIMEOUT, value_parser = parse_positive_duration)]
    pub http_idle_timeout: Duration,
    /// Requests in progress at once over both listeners; more get 503 / UNAVAILABLE.
    #[arg(long, env = "DBCERT_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Open connections per listener; beyond it a new connection is closed at once (and a
    /// warning logged) until one ends. Keep it below the open-files limit (`ulimit -n`).
    #[arg(
        long,
        env = "DBCERT_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = parse_connection_count
    )]
    pub max_connections: usize,
    /// Open connections per client address (an IPv4 address, or an IPv6 /64) and listener;
    /// beyond it that address's new connections are closed at once until one ends. Behind a
    /// proxy every connection comes from the proxy: keep it above the proxy's pool.
    #[arg(
        long,
        env = "DBCERT_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        value_parser = parse_connection_count
    )]
    pub max_connections_per_address: usize,
    /// The largest request head in bytes (HTTP/1 headers, HTTP/2 header list).
    #[arg(long, env = "DBCERT_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: u32,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "DBCERT_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS)]
    pub http2_max_concurrent_streams: u32,
    /// Failed authentications allowed in a burst per client address, whatever keys they name
    /// (0: throttling off). A key alone is never refused.
    #[arg(long, env = "DBCERT_AUTH_FAILURE_BURST", default_value_t = DEFAULT_AUTH_FAILURE_BURST)]
    pub auth_failure_burst: u32,
    /// Failed authentications allowed in a burst per client address naming one key (0: no
    /// limit beyond --auth-failure-burst).
    #[arg(long, env = "DBCERT_AUTH_FAILURE_KEY_BURST", default_value_t = DEFAULT_AUTH_FAILURE_KEY_BURST)]
    pub auth_failure_key_burst: u32,
    /// Failed authentications naming one key, from any addresses, in a burst before a
    /// "distributed guessing suspected" warning is logged (0: no warning). Refuses no one.
    #[arg(long, env = "DBCERT_AUTH_FAILURE_KEY_ALERT", default_value_t = DEFAULT_AUTH_FAILURE_KEY_ALERT)]
    pub auth_failure_key_alert: u32,
    /// The time one failed authentication takes to be forgotten.
    #[arg(long, env = "DBCERT_AUTH_FAILURE_REFILL", default_value = DEFAULT_AUTH_FAILURE_REFILL, value_parser = parse_duration)]
    pub auth_failure_refill: Duration,
    /// Proxies whose X-Forwarded-For names the client (for throttling and the audit trail):
    /// comma-separated IPs and CIDR networks. Default: none, the TCP peer is the client.
    #[arg(
        long,
        env = "DBCERT_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = TrustedProxies::parse_network
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// The URL clients reach dbcert at (`https://dbcert.example.com`: scheme and host, no path),
    /// used in `links` instead of the request's Host and forwarded headers.
    #[arg(long, env = "DBCERT_PUBLIC_URL", value_parser = PublicUrl::parse)]
    pub public_url: Option<PublicUrl>,
    /// Revocation pointers written into leaf certificates, comma-separated: `crl` (a CRL
    /// Distribution Point naming the CRL of the CA that signs the leaf) and/or `ocsp` (an
    /// Authority Information Access OCSP URL). The URLs start with --leaf-revocation-pointer-url,
    /// else --public-url (one is needed). Default: none, the leaf is exactly Atlas's profile.
    #[arg(
        long,
        env = "DBCERT_LEAF_REVOCATION_POINTERS",
        value_delimiter = ',',
        value_parser = parse_revocation_pointer
    )]
    pub leaf_revocation_pointers: Vec<RevocationPointer>,
    /// The base URL of the revocation pointers (`http://crl.example.com`: scheme and host, no
    /// path) instead of --public-url: plain http for an https API, since relying parties fetch
    /// CRLs over http. Only with --leaf-revocation-pointers.
    #[arg(long, env = "DBCERT_LEAF_REVOCATION_POINTER_URL", value_parser = PublicUrl::parse)]
    pub leaf_revocation_pointer_url: Option<PublicUrl>,
    /// PEM certificate chain served by both listeners; with --tls-key-file, turns TLS on.
    #[arg(long, env = "DBCERT_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file. Both are read again on SIGHUP.
    #[arg(long, env = "DBCERT_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that gRPC client certificates must chain to (turns mutual TLS on).
    #[arg(long, env = "DBCERT_GRPC_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub grpc_client_ca_file: Option<PathBuf>,
    /// Whether gRPC clients must present a certificate (with --grpc-client-ca-file).
    #[arg(long, env = "DBCERT_GRPC_CLIENT_CERT", value_enum, default_value_t = ClientCertMode::Optional)]
    pub grpc_client_cert: ClientCertMode,
    /// How a verified client certificate names the API key it acts as (`san-uri`: one SAN URI
    /// `dbcert:api-key:<publicKey>`).
    #[arg(long, env = "DBCERT_MTLS_PRINCIPAL_RULE", value_enum, default_value_t = PrincipalRule::SanUri)]
    pub mtls_principal_rule: PrincipalRule,
    /// Ready leaf keys kept per pooled key type (0 disables the pool).
    #[arg(long, env = "DBCERT_KEY_POOL_SIZE", default_value_t = DEFAULT_KEY_POOL_SIZE)]
    pub key_pool_size: usize,
    /// Threads generating pooled keys (0 disables the pool).
    #[arg(long, env = "DBCERT_KEY_POOL_WORKERS", default_value_t = DEFAULT_KEY_POOL_WORKERS)]
    pub key_pool_workers: usize,
    /// Comma-separated key types to pool: RSA_2048, RSA_3072, RSA_4096, ECDSA_P256, ECDSA_P384.
    #[arg(long, env = "DBCERT_KEY_POOL_TYPES", default_value = DEFAULT_KEY_POOL_TYPES, value_parser = parse_key_types)]
    pub key_pool_types: KeyTypes,
    /// How long cached lookups (API keys and roles, projects, X.509 settings, database users,
    /// certificate counts) may be used; changes made through another replica take effect
    /// within it (0 disables the cache).
    #[arg(long, env = "DBCERT_CACHE_TTL", default_value = DEFAULT_CACHE_TTL, value_parser = parse_duration)]
    pub cache_ttl: Duration,
    /// Days audit events are kept; older ones are deleted by a background task (0: keep
    /// forever). Certificate records are not audit events and are kept.
    #[arg(
        long,
        env = "DBCERT_AUDIT_RETENTION_DAYS",
        default_value_t = DEFAULT_AUDIT_RETENTION_DAYS,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_AUDIT_RETENTION_DAYS))
    )]
    pub audit_retention_days: u32,
}

/// A list of key types (a flag value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyTypes(pub Vec<KeyType>);

/// Flags of `dbcert healthcheck`.
#[derive(Clone, Debug, Args)]
pub struct HealthcheckArgs {
    /// The server's gRPC address (an unspecified IP such as 0.0.0.0 means loopback).
    #[arg(long, env = "DBCERT_GRPC_LISTEN", default_value = DEFAULT_GRPC_LISTEN)]
    pub grpc_listen: SocketAddr,
    /// The service to ask about ("" for the whole server).
    #[arg(long, default_value = "")]
    pub service: String,
    /// The server's certificate file (the server's own variable): the check then speaks TLS
    /// and, without --ca-file, trusts exactly the first certificate in it.
    #[arg(long, env = "DBCERT_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM CA certificates to verify the server against instead (with its name: see
    /// --server-name); turns TLS on.
    #[arg(long, env = "DBCERT_HEALTHCHECK_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must hold under --ca-file (default: the IP address
    /// the check connects to).
    #[arg(long, env = "DBCERT_HEALTHCHECK_SERVER_NAME")]
    pub server_name: Option<String>,
    /// PEM client certificate (chain) to present, for a server that requires one.
    #[arg(
        long,
        env = "DBCERT_HEALTHCHECK_CLIENT_CERT_FILE",
        requires = "client_key_file"
    )]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of --client-cert-file.
    #[arg(
        long,
        env = "DBCERT_HEALTHCHECK_CLIENT_KEY_FILE",
        requires = "client_cert_file"
    )]
    pub client_key_file: Option<PathBuf>,
}

/// Flags of `dbcert rotate-master-key`.
#[derive(Clone, Args)]
pub struct RotateMasterKeyArgs {
    /// The data directory (locates the default SQLite database).
    #[arg(long, env = "DBCERT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` or `postgres://…`. Default: SQLite in the data directory.
    #[arg(long, env = "DBCERT_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// File of the key values are sealed under now. Repeatable (an unfinished earlier rotation
    /// may have left values under two keys); comma-separated in the environment.
    #[arg(
        long,
        env = "DBCERT_OLD_MASTER_KEY_FILES",
        value_delimiter = ',',
        required = true
    )]
    pub old_master_key_file: Vec<PathBuf>,
    /// File of the key to re-seal everything under.
    #[arg(long, env = "DBCERT_NEW_MASTER_KEY_FILE")]
    pub new_master_key_file: PathBuf,
}

impl RotateMasterKeyArgs {
    /// The database URL: the flag, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| crate::storage::SqliteStore::url_in(&self.data_dir))
    }
}

impl fmt::Debug for RotateMasterKeyArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            data_dir,
            database,
            old_master_key_file,
            new_master_key_file,
        } = self;
        f.debug_struct("RotateMasterKeyArgs")
            .field("data_dir", data_dir)
            .field("database", &database.as_deref().map(redact_url))
            .field("old_master_key_file", old_master_key_file)
            .field("new_master_key_file", new_master_key_file)
            .finish()
    }
}

/// Where the master key comes from.
pub enum MasterKeySource {
    /// A file given by the operator.
    File(PathBuf),
    /// The key itself, from the environment.
    Inline(Zeroizing<String>),
    /// `<data-dir>/master-key`, generated on first start.
    DataDir,
}

/// The validated configuration of a server.
pub struct Config {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database URL.
    pub database_url: String,
    /// The master key source: the primary key, which seals.
    pub master_key: MasterKeySource,
    /// Files of further master keys, accepted for opening only (during a rotation).
    pub additional_master_keys: Vec<PathBuf>,
    /// The configured bootstrap key (`public`, `private`).
    pub bootstrap_api_key: Option<(String, Zeroizing<String>)>,
    /// Start even when a secret file or the data directory is open to group or others.
    pub allow_insecure_permissions: bool,
    /// Settings of the core.
    pub core: CoreSettings,
    /// Time given to in-flight calls after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The network limits of both listeners.
    pub limits: Limits,
    /// Throttling of failed authentications.
    pub throttle: ThrottleSettings,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// `--public-url`: the scheme and host of `links`, whatever the request says.
    pub public_url: Option<PublicUrl>,
    /// TLS on both listeners (and mutual TLS on gRPC); `None` serves plaintext.
    pub tls: Option<TlsSettings>,
    /// The leaf key pool.
    pub key_pool: KeyPoolConfig,
    /// How long cached store lookups may be used (0: no cache).
    pub cache_ttl: Duration,
    /// How long audit events are kept (`None`: forever).
    pub audit_retention: Option<Duration>,
}

/// A configuration error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The bootstrap key is not `public:private`.
    #[error("DBCERT_BOOTSTRAP_API_KEY must be <publicKey>:<privateKey>")]
    BootstrapKey,
    /// Both a master key and a master key file were given.
    #[error("give either DBCERT_MASTER_KEY or --master-key-file, not both")]
    TwoMasterKeys,
    /// Revocation pointers were asked for without a base URL for them to start with.
    #[error(
        "--leaf-revocation-pointers (DBCERT_LEAF_REVOCATION_POINTERS) needs \
         --leaf-revocation-pointer-url (DBCERT_LEAF_REVOCATION_POINTER_URL) or --public-url \
         (DBCERT_PUBLIC_URL): the CRL and OCSP URLs written into certificates start with it"
    )]
    RevocationPointersWithoutUrl,
    /// A pointer URL was given without pointers to use it in.
    #[error(
        "--leaf-revocation-pointer-url (DBCERT_LEAF_REVOCATION_POINTER_URL) is only used with \
         --leaf-revocation-pointers (DBCERT_LEAF_REVOCATION_POINTERS), which is not set: \
         set both, or neither"
    )]
    RevocationPointerUrlWithoutPointers,
}

impl ServeArgs {
    /// Validates the flags into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let database_url = self
            .database
            .unwrap_or_else(|| crate::storage::SqliteStore::url_in(&self.data_dir));
        let master_key = match (self.master_key_file, self.secrets.master_key) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoMasterKeys),
            (Some(file), None) => MasterKeySource::File(file),
            (None, Some(key)) => MasterKeySource::Inline(Zeroizing::new(key)),
            (None, None) => MasterKeySource::DataDir,
        };
        let bootstrap_api_key = match self.secrets.bootstrap_api_key {
            None => None,
            Some(pair) => {
                let pair = Zeroizing::new(pair);
                let (public, private) = pair.split_once(':').ok_or(ConfigError::BootstrapKey)?;
                Some((public.to_owned(), Zeroizing::new(private.to_owned())))
            }
        };
        let leaf_revocation_pointers = leaf_revocation_pointers(
            &self.leaf_revocation_pointers,
            self.leaf_revocation_pointer_url.as_ref(),
            self.public_url.as_ref(),
        )?;
        Ok(Config {
            data_dir: self.data_dir,
            database_url,
            master_key,
            additional_master_keys: self.additional_master_key_file,
            bootstrap_api_key,
            allow_insecure_permissions: self.allow_insecure_permissions,
            core: CoreSettings {
                ca_subject: CaSubject {
                    organization: self.ca_organization,
                    organizational_unit: self.ca_organizational_unit,
                },
                max_certificates_per_user: self.max_certificates_per_user,
                crl_validity: time::Duration::try_from(self.crl_validity)
                    .expect("the crl validity must be within a year (checked at parsing)"),
                leaf_revocation_pointers,
            },
            shutdown_grace: self.shutdown_grace,
            limits: Limits {
                max_concurrent_requests: self.max_concurrent_requests.max(1),
                max_connections: self.max_connections.max(1),
                max_connections_per_address: self.max_connections_per_address.max(1),
                request_timeout: self.request_timeout,
                header_read_timeout: self.header_read_timeout,
                http_idle_timeout: self.http_idle_timeout,
                max_header_bytes: self.max_header_bytes,
                http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            },
            throttle: ThrottleSettings {
                key_burst: self.auth_failure_key_burst,
                key_alert: self.auth_failure_key_alert,
                ..ThrottleSettings::new(self.auth_failure_burst, self.auth_failure_refill)
            },
            trusted_proxies: TrustedProxies::new(self.trusted_proxies),
            public_url: self.public_url,
            tls: match (self.tls_cert_file, self.tls_key_file) {
                (Some(cert), Some(key)) => Some(TlsSettings {
                    files: TlsFiles { cert, key },
                    mutual: self.grpc_client_ca_file.map(|client_ca| MutualTls {
                        client_ca,
                        mode: self.grpc_client_cert,
                        rule: self.mtls_principal_rule,
                    }),
                }),
                _ => None,
            },
            key_pool: KeyPoolConfig {
                size: self.key_pool_size,
                workers: self.key_pool_workers,
                types: self.key_pool_types.0,
            },
            cache_ttl: self.cache_ttl,
            audit_retention: audit_retention(self.audit_retention_days),
        })
    }
}

/// The retention of `days` days (0: none, keep forever).
fn audit_retention(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 24 * 60 * 60))
}

impl Config {
    /// A configuration for tests: everything under `data_dir`, defaults elsewhere, except that
    /// the key pool is off (many test servers would otherwise all generate RSA keys).
    pub fn for_test(data_dir: PathBuf) -> Self {
        Self {
            database_url: crate::storage::SqliteStore::url_in(&data_dir),
            data_dir,
            master_key: MasterKeySource::DataDir,
            additional_master_keys: Vec::new(),
            bootstrap_api_key: None,
            allow_insecure_permissions: false,
            core: CoreSettings::default(),
            shutdown_grace: Duration::from_secs(10),
            limits: Limits::default(),
            throttle: ThrottleSettings::new(
                DEFAULT_AUTH_FAILURE_BURST,
                default_duration(DEFAULT_AUTH_FAILURE_REFILL),
            ),
            trusted_proxies: TrustedProxies::default(),
            public_url: None,
            tls: None,
            key_pool: KeyPoolConfig::disabled(),
            cache_ttl: default_duration(DEFAULT_CACHE_TTL),
            audit_retention: audit_retention(DEFAULT_AUDIT_RETENTION_DAYS),
        }
    }
}

/// Parses `RSA_4096,ECDSA_P256` (empty: none).
fn parse_key_types(text: &str) -> Result<KeyTypes, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            KeyType::parse(s).ok_or_else(|| {
                format!(
                    "unknown key type {s:?} (use RSA_2048, RSA_3072, RSA_4096, ECDSA_P256, ECDSA_P384)"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(KeyTypes)
}

/// The duration of a `DEFAULT_*` constant of this file, for the defaults of types built
/// without the command line (`Limits::default()`, [`Config::for_test`]).
pub(crate) fn default_duration(default: &'static str) -> Duration {
    // Every DEFAULT_* duration parses (the unit test `default_durations_parse`).
    parse_duration(default).expect("a DEFAULT_* duration must parse")
}

/// Parses a duration that is not zero.
/// A bound on open connections: 1 to 1,000,000 (0 would refuse every connection; a huge value
/// would overflow the accept loop's semaphore).
fn parse_connection_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(format!("{text:?} is not a count from 1 to 1000000")),
    }
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?} must be longer than zero")),
        duration => Ok(duration),
    }
}

/// Parses `30s`, `500ms`, `2m` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!(
            "invalid duration unit in {text:?} (use ms, s or m)"
        )),
    }
}

/// Parses a CRL validity: `7d`, `12h`, `30m` or plain seconds, from 2 minutes to 365 days.
fn parse_crl_validity(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (use s, m, h or d)"
            ));
        }
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if (120..=365 * 86_400).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("{text:?} must be from 2 minutes to 365 days")),
    }
}

mod env_secrets;
mod redacted_debug;
mod revocation_pointers;
#[cfg(test)]
mod tests;
