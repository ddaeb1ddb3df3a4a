//! The composition root: prepares the data directory and master key, opens the store, builds
//! the core, the gRPC services, health, reflection and the REST gateway, and serves them on the
//! listeners it is given until the shutdown future resolves.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tracing::{debug, error, info, warn};

use crate::auth::Authenticator;
use crate::config::{Config, MasterKeySource};
use crate::domain::{Bootstrap, Core, KeyPool, Keyring, MasterKey, Store, SystemClock};
use crate::grpc::{GrpcLimitErrors, Services};
use crate::listener;
use crate::middleware::{AdmissionLayer, GrpcDeadlineLayer, LimitErrorsLayer, Limits};
use crate::proto::v1::{
    api_key_service_server::ApiKeyServiceServer, audit_service_server::AuditServiceServer,
    certificate_service_server::CertificateServiceServer,
    database_user_service_server::DatabaseUserServiceServer,
    organization_service_server::OrganizationServiceServer,
    project_service_server::ProjectServiceServer,
    user_security_service_server::UserSecurityServiceServer,
};
use crate::refusals::{Recorded, RefusalIo, Refusals, RequestLog};
use crate::tls::{self, TlsReloader, TlsSettings};
use crate::{gateway, metrics, proto, storage};

/// The file in the data directory holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master-key";
/// The file in the data directory holding a generated bootstrap API key.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-api-key";
/// The largest gRPC message accepted (bytes).
pub const MAX_GRPC_MESSAGE: usize = 1024 * 1024;
/// The most headers an HTTP/1 request may carry.
const MAX_HTTP1_HEADERS: usize = 100;
/// HTTP/2 streams a client may open and reset before the server answers (rapid reset).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 50;
/// How often idle HTTP/2 connections are pinged, so dead peers are noticed.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the store is pinged for the health service.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often audit events past the retention are purged (the first run is at start).
const AUDIT_PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The most audit events one purge batch deletes: a short transaction, so writers (and other
/// replicas) never wait long behind it, whatever the backlog.
const AUDIT_PURGE_BATCH: u32 = 1_000;
/// The pause between two purge batches, so a large backlog does not hold SQLite's write lock
/// (or a PostgreSQL connection) back to back.
const AUDIT_PURGE_PAUSE: Duration = Duration::from_millis(50);

/// The gRPC service names whose health is reported (besides "" for the whole server).
const SERVICE_NAMES: &[&str] = &[
    "dbcert.v1.ApiKeyService",
    "dbcert.v1.AuditService",
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
    let keyring = load_keyring(&config)?;
    let store = storage::open(&config.database_url).await.with_context(|| {
        format!(
            "failed to open the store at {}",
            storage::redact_url(&config.database_url)
        )
    })?;
    crate::domain::check_master_key(store.as_ref(), &keyring).await?;
    let store: Arc<dyn Store> = Arc::new(storage::CachingStore::new(store, config.cache_ttl));
    let key_pool = KeyPool::start(&config.key_pool);
    info!(key_pool = ?config.key_pool, cache_ttl = ?config.cache_ttl, "performance settings");
    let core = Arc::new(
        Core::new(store, keyring, Arc::new(SystemClock), config.core.clone())
            .with_key_pool(key_pool.clone()),
    );
    bootstrap(&core, &config).await?;

    let (grpc_tls, http_tls) = load_tls(config.tls.as_ref())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    if grpc_tls.is_some() || http_tls.is_some() {
        let reloaders = [grpc_tls.clone(), http_tls.clone()].into_iter().flatten();
        tokio::spawn(reload_tls_on_sighup(
            reloaders.collect(),
            hangup_signal()?,
            stop_rx.clone(),
        ));
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&health_reporter, ServingStatus::Serving).await;

    let limits = config.limits;
    // One pool of permits for both listeners: the limit is global, not per connection.
    let permits = Arc::new(Semaphore::new(limits.max_concurrent_requests));
    let trusted_proxies = config.trusted_proxies.clone();
    if !trusted_proxies.networks().is_empty() {
        info!(trusted_proxies = ?trusted_proxies.networks(), "x-forwarded-for trusted from these proxies");
    }
    // One authenticator (and so one throttle) for both listeners.
    let authenticator = Arc::new(Authenticator::new(
        core.clone(),
        config.throttle,
        trusted_proxies,
    ));
    let services = Arc::new(Services::new(core.clone(), authenticator.clone()));
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

    // Outermost first: render refusals as gRPC statuses, shed beyond the global limit, time out
    // (at the caller's `grpc-timeout` if it is shorter).
    let grpc_layers = ServiceBuilder::new()
        .layer(LimitErrorsLayer::new(GrpcLimitErrors))
        .layer(AdmissionLayer::new(permits.clone()))
        .layer(GrpcDeadlineLayer::new(limits.request_timeout))
        .into_inner();
    let grpc_server = Server::builder()
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_bytes)
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .layer(grpc_layers)
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
        .add_service(
            AuditServiceServer::from_arc(services.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .serve_with_incoming_shutdown(
            listener::incoming(listeners.grpc, grpc_tls, limits.header_read_timeout),
            stopped(stop_rx.clone()),
        );

    let gateway = ServiceBuilder::new()
        .layer(LimitErrorsLayer::new(gateway::RestLimitErrors))
        .layer(AdmissionLayer::new(permits))
        .layer(TimeoutLayer::new(limits.request_timeout))
        .service(gateway::router(gateway::Gateway::new(
            services.clone(),
            authenticator,
        )));
    // `/metrics` is answered outside the admission limit: it reads counters only, and an
    // overloaded server is when its operators most need to scrape it.
    let http_service = metrics::router(key_pool.clone()).fallback_service(gateway);
    let http_server = serve_http(
        listener::incoming(listeners.http, http_tls, limits.header_read_timeout),
        http_service,
        limits,
        stopped(stop_rx.clone()),
    );

    let probe = tokio::spawn(probe_store(
        core.clone(),
        health_reporter.clone(),
        stop_rx.clone(),
    ));
    let purge = match config.audit_retention {
        Some(retention) => {
            info!(
                retention_days = retention.as_secs() / 86_400,
                "audit events are purged past the retention"
            );
            Some(tokio::spawn(purge_audit_events(
                core.clone(),
                retention,
                stop_rx.clone(),
            )))
        }
        None => {
            info!("audit retention 0: audit events are kept forever");
            None
        }
    };
    info!(%grpc_addr, %http_addr, "dbcert serving");

    let grpc_task = tokio::spawn(grpc_server);
    let http_task = tokio::spawn(http_server);
    shutdown.await;

    info!("shutting down: health NOT_SERVING, finishing in-flight calls");
    set_health(&health_reporter, ServingStatus::NotServing).await;
    let _ = stop_tx.send(true);
    probe.abort();
    if let Some(purge) = purge {
        // It stops at the signal between batches; a batch in flight may complete or not,
        // either is harmless (the next run deletes what is left).
        purge.abort();
    }
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

/// Serves HTTP/1.1 and HTTP/2 (hyper) on the gateway's connections, with the head limits and
/// the header read timeout, until `shutdown`; then lets open connections finish their requests.
async fn serve_http<S>(
    mut incoming: listener::Incoming,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tokio_stream::StreamExt as _;
    use tower::ServiceExt as _;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's floor for its read buffer is 8 KiB; the head must fit in it.
        .max_buf_size((limits.max_header_bytes as usize).max(8192))
        .max_headers(MAX_HTTP1_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let refusals = Refusals::new(
        (limits.max_header_bytes as usize).max(8192),
        MAX_HTTP1_HEADERS,
    );
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = incoming.next() => conn,
            () = &mut shutdown => break,
        };
        let Some(Ok(conn)) = conn else {
            break;
        };
        let peer = conn.peer().clone();
        let service = service.clone().map_request(
            move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(peer.clone());
                request
            },
        );
        // hyper's own answers to requests it cannot parse become Atlas errors (see refusals).
        let requests = Arc::new(RequestLog::default());
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(RefusalIo::new(conn, requests.clone(), refusals.clone())),
                Recorded::new(
                    hyper_util::service::TowerToHyperService::new(service),
                    requests,
                ),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "http connection ended with an error");
            }
        });
    }
    drop(incoming);
    graceful.shutdown().await;
    Ok(())
}

/// Loads the TLS configuration of each listener (gRPC with mutual TLS if configured).
#[allow(clippy::type_complexity)]
fn load_tls(
    tls: Option<&TlsSettings>,
) -> anyhow::Result<(Option<Arc<TlsReloader>>, Option<Arc<TlsReloader>>)> {
    let Some(tls) = tls else {
        return Ok((None, None));
    };
    let grpc = TlsReloader::load(tls.files.clone(), tls.mutual.clone(), tls::ALPN_GRPC)
        .context("failed to load the tls configuration of the gRPC listener")?;
    let http = TlsReloader::load(tls.files.clone(), None, tls::ALPN_HTTP)
        .context("failed to load the tls configuration of the HTTP listener")?;
    info!(
        cert = %tls.files.cert.display(),
        mutual_tls = tls.mutual.is_some(),
        "tls enabled on both listeners"
    );
    Ok((Some(Arc::new(grpc)), Some(Arc::new(http))))
}

fn hangup_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).context("cannot listen for SIGHUP")
}

/// Reloads the TLS files on each SIGHUP; a failed reload keeps the previous configuration.
async fn reload_tls_on_sighup(
    reloaders: Vec<Arc<TlsReloader>>,
    mut hangup: tokio::signal::unix::Signal,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            received = hangup.recv() => if received.is_none() { return },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        info!("received SIGHUP: reloading tls files");
        let mut ok = true;
        for reloader in &reloaders {
            if let Err(error) = reloader.reload() {
                ok = false;
                error!(error = %anyhow::Error::new(error).to_string(), "tls reload failed; still serving the previous certificate");
            }
        }
        if ok {
            info!("tls files reloaded");
        }
    }
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

/// Deletes audit events older than `retention`, at start and then every
/// [`AUDIT_PURGE_INTERVAL`], in batches of [`AUDIT_PURGE_BATCH`] until none is left. Every
/// replica runs it; they do not need to agree (a deleted event is gone for all). A failure is
/// logged and the purge tried again at the next interval.
async fn purge_audit_events(core: Arc<Core>, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let mut purged = 0u64;
        loop {
            match core.purge_audit_events(retention, AUDIT_PURGE_BATCH).await {
                Ok(deleted) => {
                    purged += deleted;
                    if deleted < u64::from(AUDIT_PURGE_BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    warn!(%error, purged, "audit purge failed; trying again at the next interval");
                    break;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(AUDIT_PURGE_PAUSE) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
        if purged > 0 {
            info!(
                target: "dbcert::audit",
                purged,
                retention_days = retention.as_secs() / 86_400,
                "audit events past the retention purged"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(AUDIT_PURGE_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
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

/// Loads the primary master key and the additional ones.
fn load_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let primary = load_master_key(config)?;
    let others = config
        .additional_master_keys
        .iter()
        .map(|path| read_master_key_file(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keyring = Keyring::new(primary, others)
        .context("an additional master key is the primary key or listed twice")?;
    info!(keyring = ?keyring, "master keys loaded (ids only)");
    Ok(keyring)
}

/// Reads a master key file (base64 of 32 bytes).
pub fn read_master_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("failed to read master key file {}", path.display()))?,
    );
    MasterKey::from_base64(&text)
        .with_context(|| format!("invalid master key in {}", path.display()))
}

fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.master_key {
        MasterKeySource::Inline(text) => {
            MasterKey::from_base64(text).context("invalid DBCERT_MASTER_KEY")
        }
        MasterKeySource::File(path) => read_master_key_file(path),
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
