//! The server in-process: `app::serve` on listeners bound here to `127.0.0.1:0` before it
//! starts (so there is no port to race for), with real SQLite in a temporary directory and a
//! bootstrap key generated at test time. [`TestServer::start`] returns once gRPC health says
//! SERVING.

use std::path::{Path, PathBuf};

use dbcert::app::{self, Listeners};
use dbcert::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::clients::{Clients, Key};

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
        client: rustls::ClientConfig,
        key: Key,
    ) -> Self {
        Self::start_tls_with(settings, client, key, |_| {}).await
    }

    /// As [`Self::start_tls`], adjusting the config first.
    pub async fn start_tls_with(
        settings: dbcert::tls::TlsSettings,
        mut client: rustls::ClientConfig,
        key: Key,
        customize: impl FnOnce(&mut Config),
    ) -> Self {
        client.alpn_protocols = vec![b"h2".to_vec()];
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_inner(
            &dir,
            key,
            |config| {
                config.tls = Some(settings);
                customize(config);
            },
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
        super::private_dir(dir);
        let mut config = Config::for_test(dir.to_path_buf());
        config.bootstrap_api_key = Some((key.public.clone(), key.private.clone().into()));
        customize(&mut config);
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let (now_tx, mut now_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(app::serve(
            config,
            Listeners {
                grpc,
                http,
                metrics: None,
            },
            async move {
                tokio::select! {
                    _ = rx => {}
                    _ = now_rx.wait_for(|v| *v) => {}
                }
            },
        ));
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
