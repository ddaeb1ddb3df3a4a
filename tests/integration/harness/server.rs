//! Shared test harness: the real server on pre-bound `127.0.0.1:0` listeners with real SQLite
//! in a temporary directory, a bootstrap key generated at test time, and independent checks
//! (openssl, x509-parser) of what it issues.

#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use dbcert::app::{self, Listeners};
use dbcert::config::Config;
use dbcert::proto::v1::{
    api_key_service_client::ApiKeyServiceClient, audit_service_client::AuditServiceClient,
    certificate_service_client::CertificateServiceClient,
    database_user_service_client::DatabaseUserServiceClient,
    organization_service_client::OrganizationServiceClient,
    project_service_client::ProjectServiceClient,
    user_security_service_client::UserSecurityServiceClient,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// An API key pair.
#[derive(Clone, Debug)]
pub struct Key {
    pub public: String,
    pub private: String,
}

impl Key {
    /// A random key of Atlas's shape, generated at test time.
    pub fn random() -> Self {
        let public: String = (0..8)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        Self {
            public,
            private: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The gRPC `authorization` metadata value.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.public, self.private);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// A running server.
pub struct TestServer {
    pub grpc_addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub key: Key,
    _temp: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    shutdown_now: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// With TLS on, the client configuration that trusts the server.
    pub tls_client: Option<rustls::ClientConfig>,
}

/// Installs a test log writer once.
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl TestServer {
    /// Starts a server on a fresh temporary data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on a fresh temporary data directory, adjusting the config first.
    pub async fn start_with(customize: impl FnOnce(&mut Config)) -> Self {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_in(&dir, Key::random(), customize).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server with TLS, trusted by clients through `client` (ALPN h2 is set here).
    pub async fn start_tls(
        settings: dbcert::tls::TlsSettings,
        mut client: rustls::ClientConfig,
        key: Key,
    ) -> Self {
        client.alpn_protocols = vec![b"h2".to_vec()];
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_inner(
            &dir,
            key,
            |config| config.tls = Some(settings),
            Some(client),
        )
        .await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server on a given data directory with a given bootstrap key.
    pub async fn start_in(dir: &Path, key: Key, customize: impl FnOnce(&mut Config)) -> Self {
        Self::start_inner(dir, key, customize, None).await
    }

    async fn start_inner(
        dir: &Path,
        key: Key,
        customize: impl FnOnce(&mut Config),
        tls_client: Option<rustls::ClientConfig>,
    ) -> Self {
        trace_init();
        let mut config = Config::for_test(dir.to_path_buf());
        config.bootstrap_api_key = Some((key.public.clone(), key.private.clone().into()));
        customize(&mut config);
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let (now_tx, mut now_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(app::serve(config, Listeners { grpc, http }, async move {
            tokio::select! {
                _ = rx => {}
                _ = now_rx.wait_for(|v| *v) => {}
            }
        }));
        let server = Self {
            grpc_addr,
            http_addr,
            data_dir: dir.to_path_buf(),
            key,
            _temp: None,
            shutdown: Some(tx),
            shutdown_now: Some(now_tx),
            task: Some(task),
            tls_client,
        };
        server.wait_serving().await;
        server
    }

    /// Waits until the health service answers SERVING (the listeners are bound already, so
    /// this only waits for the store to open).
    async fn wait_serving(&self) {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        for _ in 0..600 {
            if let Some(task) = &self.task
                && task.is_finished()
            {
                panic!("server exited during start");
            }
            if let Ok(channel) = self.try_channel().await {
                let status = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if status.is_ok_and(|s| s.into_inner().status == 1) {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server did not become SERVING");
    }

    /// Signals shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        // The sender is consumed by `stop`; signalling here leaves it to `stop` to wait.
        if let Some(tx) = &self.shutdown_now {
            let _ = tx.send(true);
        }
    }

    /// Stops the server and waits for it to finish; returns the data directory's guard.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
        self._temp.take()
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> Channel {
        self.try_channel().await.expect("connect")
    }

    async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_addr)).unwrap();
        match &self.tls_client {
            None => endpoint.connect().await,
            Some(config) => {
                endpoint
                    .connect_with_connector(tls_connector(self.grpc_addr, config.clone()))
                    .await
            }
        }
    }

    /// A client set authenticated as the bootstrap key.
    pub async fn clients(&self) -> Clients {
        Clients::new(self.channel().await, self.key.clone())
    }
}

/// A TLS handshake to `addr` as `localhost`.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
}

/// A connector for tonic's plain transport that speaks TLS underneath.
pub fn tls_connector(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_: http::Uri| {
        let config = config.clone();
        async move {
            tls_connect(addr, config)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }
    })
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Generated clients that put a key's Basic credentials on every request.
#[derive(Clone)]
pub struct Clients {
    pub channel: Channel,
    pub key: Key,
}

type Authed = tonic::service::interceptor::InterceptedService<Channel, AuthInterceptor>;

/// Adds `authorization` metadata.
#[derive(Clone)]
pub struct AuthInterceptor(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for AuthInterceptor {
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

impl Clients {
    pub fn new(channel: Channel, key: Key) -> Self {
        Self { channel, key }
    }

    /// The same channel as another key.
    pub fn as_key(&self, key: &Key) -> Self {
        Self::new(self.channel.clone(), key.clone())
    }

    fn interceptor(&self) -> AuthInterceptor {
        AuthInterceptor(Some(self.key.basic().parse().unwrap()))
    }

    pub fn certificates(&self) -> CertificateServiceClient<Authed> {
        CertificateServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn projects(&self) -> ProjectServiceClient<Authed> {
        ProjectServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn users(&self) -> DatabaseUserServiceClient<Authed> {
        DatabaseUserServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn orgs(&self) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn security(&self) -> UserSecurityServiceClient<Authed> {
        UserSecurityServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn api_keys(&self) -> ApiKeyServiceClient<Authed> {
        ApiKeyServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }

    /// Creates a project and returns its id.
    pub async fn create_project(&self, name: &str) -> String {
        self.projects()
            .create_project(dbcert::proto::v1::CreateProjectRequest {
                name: name.into(),
                org_id: String::new(),
            })
            .await
            .expect("create project")
            .into_inner()
            .id
    }

    /// Creates a MANAGED X.509 user on `$external`.
    pub async fn create_managed_user(&self, group_id: &str, username: &str) {
        self.create_user(
            group_id,
            username,
            dbcert::proto::v1::X509Type::Managed,
            "$external",
        )
        .await
        .expect("create managed user");
    }

    pub async fn create_user(
        &self,
        group_id: &str,
        username: &str,
        x509_type: dbcert::proto::v1::X509Type,
        database_name: &str,
    ) -> Result<dbcert::proto::v1::DatabaseUser, tonic::Status> {
        self.users()
            .create_database_user(dbcert::proto::v1::CreateDatabaseUserRequest {
                group_id: group_id.into(),
                username: username.into(),
                database_name: database_name.into(),
                x509_type: x509_type as i32,
                roles: vec![dbcert::proto::v1::DatabaseUserRole {
                    database_name: "admin".into(),
                    role_name: "readWriteAnyDatabase".into(),
                    collection_name: String::new(),
                }],
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn issue(
        &self,
        group_id: &str,
        username: &str,
        months: Option<i64>,
    ) -> Result<dbcert::proto::v1::CreateUserCertificateResponse, tonic::Status> {
        self.certificates()
            .create_user_certificate(dbcert::proto::v1::CreateUserCertificateRequest {
                group_id: group_id.into(),
                username: username.into(),
                months_until_expiration: months,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn project_ca_pem(&self, group_id: &str) -> String {
        self.certificates()
            .get_project_ca_certificate(dbcert::proto::v1::GetProjectCaCertificateRequest {
                group_id: group_id.into(),
            })
            .await
            .expect("get project ca")
            .into_inner()
            .certificate_pem
    }
}

/// The Atlas errorCode (`ErrorInfo.reason`) of a status.
#[track_caller]
pub fn error_code(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .unwrap_or_else(|| panic!("status without ErrorInfo: {status:?}"))
        .reason
        .clone()
}

/// Asserts a status's gRPC code and Atlas errorCode.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    error_code_expected: &str,
) {
    let status = result.expect_err("expected an error");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_code(&status), error_code_expected, "{status:?}");
}

/// Runs openssl with arguments, returning (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Writes a file into a directory and returns its path as a string.
pub fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}
