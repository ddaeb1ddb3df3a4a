//! The composition root: prepares the data directory and master key, opens the store, builds
//! the core, the gRPC services, health, reflection and the REST gateway, and serves them on the
//! listeners it is given until the shutdown future resolves.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{error, info, warn};

use crate::config::{Config, MasterKeySource};
use crate::domain::{Bootstrap, Core, KeyPool, MasterKey, Store, SystemClock};
use crate::grpc::Services;
use crate::proto::v1::{
    api_key_service_server::ApiKeyServiceServer,
    certificate_service_server::CertificateServiceServer,
    database_user_service_server::DatabaseUserServiceServer,
    organization_service_server::OrganizationServiceServer,
    project_service_server::ProjectServiceServer,
    user_security_service_server::UserSecurityServiceServer,
};
use crate::{gateway, metrics, proto, storage};

/// The file in the data directory holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master-key";
/// The file in the data directory holding a generated bootstrap API key.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-api-key";
/// The largest gRPC message accepted (bytes).
pub const MAX_GRPC_MESSAGE: usize = 1024 * 1024;
/// How often the store is pinged for the health service.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The meta key holding a value sealed under the master key, to detect a wrong key at start.
const MASTER_KEY_CHECK_META: &str = "master_key_check";

/// The gRPC service names whose health is reported (besides "" for the whole server).
const SERVICE_NAMES: &[&str] = &[
    "dbcert.v1.ApiKeyService",
    "dbcert.v1.CertificateService",
    "dbcert.v1.DatabaseUserService",
    "dbcert.v1.OrganizationService",
    "dbcert.v1.ProjectService",
    "dbcert.v1.UserSecurityService",
];

/// The two listeners a server answers on, bound by the caller (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// The HTTP (Atlas REST gateway) listener.
    pub http: TcpListener,
}

/// Runs a server until `shutdown` resolves, then lets in-flight calls finish.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    prepare_data_dir(&config.data_dir)?;
    let master_key = load_master_key(&config)?;
    let store = storage::open(&config.database_url).await.with_context(|| {
        format!(
            "failed to open the store at {}",
            storage::redact_url(&config.database_url)
        )
    })?;
    check_master_key(store.as_ref(), &master_key).await?;
    let store: Arc<dyn Store> = Arc::new(storage::CachingStore::new(store, config.cache_ttl));
    let key_pool = KeyPool::start(&config.key_pool);
    info!(key_pool = ?config.key_pool, cache_ttl = ?config.cache_ttl, "performance settings");
    let core = Arc::new(
        Core::new(
            store,
            master_key,
            Arc::new(SystemClock),
            config.core.clone(),
        )
        .with_key_pool(key_pool.clone()),
    );
    bootstrap(&core, &config).await?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&health_reporter, ServingStatus::Serving).await;

    let services = Arc::new(Services::new(core.clone()));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("failed to build reflection v1")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("failed to build reflection v1alpha")?;

    let grpc_addr = listeners.grpc.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let grpc_server = Server::builder()
        .timeout(config.request_timeout)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            CertificateServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            OrganizationServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            ProjectServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            DatabaseUserServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            UserSecurityServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            ApiKeyServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
            stopped(stop_rx.clone()),
        );

    let router = gateway::router(gateway::Gateway::new(services.clone(), core.clone()))
        .merge(metrics::router(key_pool.clone()));
    // axum leaves Nagle on; without TCP_NODELAY each response waits on the peer's delayed ACK.
    let http_listener = listeners.http.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            warn!(%error, "failed to set TCP_NODELAY");
        }
    });
    let http_server = axum::serve(http_listener, router)
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future();

    let probe = tokio::spawn(probe_store(
        core.clone(),
        health_reporter.clone(),
        stop_rx.clone(),
    ));
    info!(%grpc_addr, %http_addr, "dbcert serving");

    let grpc_task = tokio::spawn(grpc_server);
    let http_task = tokio::spawn(http_server);
    shutdown.await;

    info!("shutting down: health NOT_SERVING, finishing in-flight calls");
    set_health(&health_reporter, ServingStatus::NotServing).await;
    let _ = stop_tx.send(true);
    probe.abort();
    key_pool.stop();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        let grpc = grpc_task.await;
        let http = http_task.await;
        (grpc, http)
    })
    .await;
    match drained {
        Ok((grpc, http)) => {
            grpc.context("grpc server panicked")?
                .context("grpc server failed")?;
            http.context("http server panicked")?
                .context("http server failed")?;
            info!("shut down cleanly");
        }
        Err(_) => {
            warn!(grace = ?config.shutdown_grace, "in-flight calls did not finish within the grace period")
        }
    }
    Ok(())
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Reports NOT_SERVING while the store does not answer, SERVING again when it does.
async fn probe_store(core: Arc<Core>, reporter: HealthReporter, stop: watch::Receiver<bool>) {
    let mut serving = true;
    loop {
        tokio::time::sleep(STORE_PROBE_INTERVAL).await;
        if *stop.borrow() {
            return;
        }
        let ok = core.store().ping().await.is_ok();
        if ok != serving {
            serving = ok;
            if ok {
                info!("store reachable again: SERVING");
                set_health(&reporter, ServingStatus::Serving).await;
            } else {
                error!("store unreachable: NOT_SERVING");
                set_health(&reporter, ServingStatus::NotServing).await;
            }
        }
    }
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create data directory {}", dir.display()))?;
    let mut permissions = fs::metadata(dir)?.permissions();
    if permissions.mode() & 0o077 != 0 {
        permissions.set_mode(0o700);
        fs::set_permissions(dir, permissions)
            .with_context(|| format!("failed to restrict data directory {}", dir.display()))?;
    }
    Ok(())
}

fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.master_key {
        MasterKeySource::Inline(text) => {
            MasterKey::from_base64(text).context("invalid DBCERT_MASTER_KEY")
        }
        MasterKeySource::File(path) => {
            let text =
                zeroize::Zeroizing::new(fs::read_to_string(path).with_context(|| {
                    format!("failed to read master key file {}", path.display())
                })?);
            MasterKey::from_base64(&text)
                .with_context(|| format!("invalid master key in {}", path.display()))
        }
        MasterKeySource::DataDir => {
            let path = config.data_dir.join(MASTER_KEY_FILE);
            if path.exists() {
                let text = zeroize::Zeroizing::new(fs::read_to_string(&path)?);
                return MasterKey::from_base64(&text)
                    .with_context(|| format!("invalid master key in {}", path.display()));
            }
            let key = MasterKey::generate();
            write_secret_file(&path, key.to_base64().as_bytes())?;
            warn!(
                path = %path.display(),
                "no master key configured: generated one; back it up, or the CA keys sealed under it are lost \
                 (set --master-key-file or DBCERT_MASTER_KEY in production)"
            );
            Ok(key)
        }
    }
}

/// Refuses to start with a master key other than the one the store's CA keys are sealed under.
async fn check_master_key(store: &dyn crate::domain::Store, key: &MasterKey) -> anyhow::Result<()> {
    use base64::Engine as _;
    let sealed = key.seal(MASTER_KEY_CHECK_META, b"dbcert")?;
    let candidate = base64::engine::general_purpose::STANDARD.encode(sealed);
    let stored = store
        .put_meta_if_absent(MASTER_KEY_CHECK_META, &candidate)
        .await
        .context("failed to read the store")?;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .context("corrupt master key check in the store")?;
    if key.open(MASTER_KEY_CHECK_META, &stored).is_err() {
        bail!("the master key does not match the one this store was created with");
    }
    Ok(())
}

async fn bootstrap(core: &Core, config: &Config) -> anyhow::Result<()> {
    let configured = config
        .bootstrap_api_key
        .as_ref()
        .map(|(public, private)| (public.as_str(), private.as_str()));
    match core
        .bootstrap(configured)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {e}"))?
    {
        Bootstrap::ConfiguredKey => {
            info!("bootstrap api key from DBCERT_BOOTSTRAP_API_KEY is an ORG_OWNER key")
        }
        Bootstrap::Existing => {}
        Bootstrap::Generated(key) => {
            let path = config.data_dir.join(BOOTSTRAP_KEY_FILE);
            let line = zeroize::Zeroizing::new(format!(
                "{}:{}\n",
                key.record.public_key,
                key.private_key.as_str()
            ));
            write_secret_file(&path, line.as_bytes())?;
            warn!(
                path = %path.display(),
                public_key = %key.record.public_key,
                "created an ORG_OWNER api key for the empty store; its private key is in the file (mode 0600)"
            );
        }
    }
    Ok(())
}

/// Writes a new file readable by the owner only.
fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// Binds the two listeners.
pub async fn bind(
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
) -> anyhow::Result<Listeners> {
    Ok(Listeners {
        grpc: TcpListener::bind(grpc)
            .await
            .with_context(|| format!("failed to bind the gRPC listener on {grpc}"))?,
        http: TcpListener::bind(http)
            .await
            .with_context(|| format!("failed to bind the HTTP listener on {http}"))?,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            error!(%error, "cannot listen for SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => info!("received SIGINT"),
    }
}
