//! The composition root, in two steps:
//!
//! - [`App::build`] turns the configuration into a ready application: the data directory and
//!   master keys (`secrets.rs`), the store, the core and its key pool, the gRPC services,
//!   health and reflection, the REST gateway, the layers of both listeners and their TLS;
//! - [`App::serve`] serves it on the listeners it is given (`http_server.rs` for HTTP,
//!   tonic for gRPC) beside its background tasks (`background.rs`), until the shutdown
//!   future resolves, then lets in-flight calls finish within the grace period.
//!
//! [`serve`] does both; `main.rs` and the tests call it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_stream::StreamExt as _;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::timeout::TimeoutLayer;
use tracing::{error, info, warn};

use crate::auth::Authenticator;
use crate::background::{self, Background, TlsReload};
use crate::config::Config;
use crate::domain::{Core, KeyPool, SystemClock};
use crate::grpc::{GrpcLimitErrors, Services};
use crate::http_server::{
    self, HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT, MAX_PENDING_ACCEPT_RESET_STREAMS,
};
use crate::keep_alive::{Activity, ConnTimeouts, KeepAliveIo};
use crate::metrics::{GrpcMetricsLayer, Metrics};
use crate::middleware::{AdmissionLayer, GrpcDeadlineLayer, LimitErrorsLayer, Limits};
use crate::proto::v1::{
    api_key_service_server::ApiKeyServiceServer, audit_service_server::AuditServiceServer,
    certificate_service_server::CertificateServiceServer,
    database_user_service_server::DatabaseUserServiceServer,
    organization_service_server::OrganizationServiceServer,
    project_service_server::ProjectServiceServer,
    user_security_service_server::UserSecurityServiceServer,
};
use crate::tls::ListenerTls;
use crate::{client_ca, gateway, listener, metrics, proto, secrets, storage};

pub use crate::secrets::{BOOTSTRAP_KEY_FILE, MASTER_KEY_FILE, read_master_key_file};

/// The largest gRPC message accepted (bytes).
pub const MAX_GRPC_MESSAGE: usize = 1024 * 1024;

/// The listeners a server answers on, bound by the caller (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// The HTTP (Atlas REST gateway) listener; it serves `/metrics` too unless `metrics` is
    /// given.
    pub http: TcpListener,
    /// The listener of `/metrics` alone (`--metrics-listen`), if the operator chose one.
    pub metrics: Option<TcpListener>,
}

/// An application built from its configuration, ready to serve (see the module documentation).
pub struct App {
    core: Arc<Core>,
    key_pool: KeyPool,
    health: HealthReporter,
    /// The gRPC services (health, reflection, the dbcert services) and the layers around them.
    grpc: (Routes, GrpcLayers),
    /// `/metrics` and the REST gateway in its layers.
    http: axum::Router,
    /// The REST gateway in its layers alone, for an HTTP listener beside a metrics listener.
    gateway: axum::Router,
    /// `/metrics` alone, for a listener of its own.
    metrics: axum::Router,
    tls: ListenerTls,
    tls_reload: Option<TlsReload>,
    limits: Limits,
    shutdown_grace: Duration,
    audit_retention: Option<Duration>,
}

/// The layers of the gRPC services, outermost last (as `ServiceBuilder` nests them).
type GrpcLayers = Stack<
    GrpcDeadlineLayer,
    Stack<
        AdmissionLayer,
        Stack<LimitErrorsLayer<GrpcLimitErrors>, Stack<GrpcMetricsLayer, Identity>>,
    >,
>;

/// Runs a server until `shutdown` resolves, then lets in-flight calls finish.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    App::build(config).await?.serve(listeners, shutdown).await
}

/// Logs a warning when a listener reachable from other hosts (not loopback) serves plaintext:
/// API keys, private keys and certificates would then cross the network unencrypted.
fn warn_if_plaintext(listener: &str, addr: SocketAddr, tls: bool) {
    if !tls && !addr.ip().is_loopback() {
        warn!(
            listener,
            %addr,
            "listening in plaintext on a non-loopback address: set --tls-cert-file and --tls-key-file \
             (DBCERT_TLS_CERT_FILE, DBCERT_TLS_KEY_FILE) to serve TLS, or bind to 127.0.0.1 behind a TLS proxy"
        );
    }
}

/// Binds the two listeners.
pub async fn bind(grpc: SocketAddr, http: SocketAddr) -> anyhow::Result<Listeners> {
    Ok(Listeners {
        grpc: TcpListener::bind(grpc)
            .await
            .with_context(|| format!("failed to bind the gRPC listener on {grpc}"))?,
        http: TcpListener::bind(http)
            .await
            .with_context(|| format!("failed to bind the HTTP listener on {http}"))?,
        metrics: None,
    })
}

/// Binds the metrics listener (`--metrics-listen`).
pub async fn bind_metrics(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to bind the metrics listener on {addr}"))
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

// === impl App ===

impl App {
    /// Prepares the data directory and master keys, opens and checks the store, bootstraps the
    /// first API key, and builds everything the listeners serve; health is SERVING from here.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        secrets::prepare_files(&config)?;
        let keyring = secrets::load_keyring(&config)?;
        let store = storage::open_with_cache(&config.database_url, config.cache_ttl)
            .await
            .with_context(|| {
                format!(
                    "failed to open the store at {}",
                    storage::redact_url(&config.database_url)
                )
            })?;
        crate::domain::check_master_key(store.as_ref(), &keyring).await?;
        let key_pool = KeyPool::start(&config.key_pool);
        info!(key_pool = ?config.key_pool, cache_ttl = ?config.cache_ttl, "performance settings");
        let core = Arc::new(
            Core::new(store, keyring, Arc::new(SystemClock), config.core.clone())
                .with_key_pool(key_pool.clone()),
        );
        secrets::bootstrap(&core, &config).await?;

        let tls = ListenerTls::load(config.tls.as_ref())?;
        for (path, client_cas) in tls.reloaders().iter().filter_map(|r| r.client_cas()) {
            client_ca::refuse_project_cas(core.store().as_ref(), path, &client_cas).await?;
        }
        let tls_reload = TlsReload::listen(tls.reloaders())?;

        let (health, health_service) = tonic_health::server::health_reporter();
        background::set_health(&health, ServingStatus::Serving).await;

        let limits = config.limits;
        // One pool of permits for both listeners: the limit is global, not per connection.
        let permits = Arc::new(Semaphore::new(limits.max_concurrent_requests));
        let metrics = Metrics::new(core.clone(), key_pool.clone());
        let (services, gateway) = front_doors(&config, &core, &metrics);

        let grpc_routes = Routes::new(health_service)
            .add_service(reflection_v1()?)
            .add_service(reflection_v1alpha()?)
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
                AuditServiceServer::from_arc(services).max_decoding_message_size(MAX_GRPC_MESSAGE),
            );
        // Outermost first: count and time every call (with the status the layers below gave
        // it), render refusals as gRPC statuses, shed beyond the global limit, time out (at the
        // caller's `grpc-timeout` if it is shorter).
        let grpc_layers = ServiceBuilder::new()
            .layer(metrics.grpc().layer())
            .layer(LimitErrorsLayer::new(GrpcLimitErrors))
            .layer(AdmissionLayer::new(permits.clone()))
            .layer(GrpcDeadlineLayer::new(limits.request_timeout))
            .into_inner();

        // The same order on the REST side, with tower's timeout.
        let gateway = ServiceBuilder::new()
            .layer(metrics.rest().layer())
            .layer(LimitErrorsLayer::new(gateway::RestLimitErrors))
            .layer(AdmissionLayer::new(permits))
            .layer(TimeoutLayer::new(limits.request_timeout))
            .service(gateway::router(gateway));
        // `/metrics` is answered outside the admission limit: it reads counters only, and an
        // overloaded server is when its operators most need to scrape it.
        let metrics = metrics::router(metrics);
        let http = metrics.clone().fallback_service(gateway.clone());
        let gateway = axum::Router::new().fallback_service(gateway);

        Ok(Self {
            core,
            key_pool,
            health,
            grpc: (grpc_routes, grpc_layers),
            http,
            gateway,
            metrics,
            tls,
            tls_reload,
            limits,
            shutdown_grace: config.shutdown_grace,
            audit_retention: config.audit_retention,
        })
    }

    /// The HTTP listener's router (`/metrics` and the REST gateway in its layers), for serving it
    /// elsewhere or calling it without a socket (`tower::ServiceExt::oneshot` in tests).
    pub fn http_router(&self) -> axum::Router {
        self.http.clone()
    }

    /// Serves on `listeners`, with the background tasks, until `shutdown` resolves; then
    /// reports NOT_SERVING, stops accepting, and waits up to the grace period for in-flight
    /// calls.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            core,
            key_pool,
            health,
            grpc: (grpc_routes, grpc_layers),
            http,
            gateway,
            metrics,
            tls,
            tls_reload,
            limits,
            shutdown_grace,
            audit_retention,
        } = self;
        let grpc_addr = listeners.grpc.local_addr()?;
        let http_addr = listeners.http.local_addr()?;
        warn_if_plaintext("gRPC", grpc_addr, tls.grpc.is_some());
        warn_if_plaintext("HTTP", http_addr, tls.http.is_some());
        let (stop_tx, stop_rx) = watch::channel(false);

        // A gRPC connection must complete the HTTP/2 preface within the header read timeout of
        // the accept (after the TLS handshake), and a peer that stops reading is dropped after
        // the request timeout (`keep_alive`); no service is tracked, so no idle timeout.
        let grpc_timeouts = ConnTimeouts {
            idle: limits.http_idle_timeout,
            header_read: limits.header_read_timeout,
            write: limits.request_timeout,
        };
        let grpc_incoming = listener::incoming(
            listeners.grpc,
            tls.grpc,
            limits.header_read_timeout,
            limits.connections(),
        )
        .map(move |conn| {
            conn.map(|conn| KeepAliveIo::new(conn, Arc::new(Activity::default()), grpc_timeouts))
        });
        let grpc_server = Server::builder()
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .http2_max_header_list_size(limits.max_header_bytes)
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .layer(grpc_layers)
            .add_routes(grpc_routes)
            .serve_with_incoming_shutdown(grpc_incoming, background::stopped(stop_rx.clone()));
        // With a metrics listener, `/metrics` is served there only.
        let metrics_server = match listeners.metrics {
            Some(listener) => {
                let metrics_addr = listener.local_addr()?;
                info!(%metrics_addr, "metrics served on their own listener");
                Some(tokio::spawn(http_server::serve(
                    listener::incoming(
                        listener,
                        None,
                        limits.header_read_timeout,
                        limits.connections(),
                    ),
                    metrics,
                    limits,
                    background::stopped(stop_rx.clone()),
                )))
            }
            None => None,
        };
        let http_server = http_server::serve(
            listener::incoming(
                listeners.http,
                tls.http,
                limits.header_read_timeout,
                limits.connections(),
            ),
            if metrics_server.is_some() {
                gateway
            } else {
                http
            },
            limits,
            background::stopped(stop_rx.clone()),
        );
        let background = Background::start(&core, &health, tls_reload, audit_retention, &stop_rx);
        info!(%grpc_addr, %http_addr, "dbcert serving");

        let grpc_task = tokio::spawn(grpc_server);
        let http_task = tokio::spawn(http_server);
        shutdown.await;

        info!("shutting down: health NOT_SERVING, finishing in-flight calls");
        background::set_health(&health, ServingStatus::NotServing).await;
        let _ = stop_tx.send(true);
        background.stop();
        key_pool.stop();
        let drained = tokio::time::timeout(shutdown_grace, async {
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
                if let Some(metrics) = metrics_server {
                    metrics
                        .await
                        .context("metrics server panicked")?
                        .context("metrics server failed")?;
                }
                info!("shut down cleanly");
            }
            Err(_) => {
                warn!(grace = ?shutdown_grace, "in-flight calls did not finish within the grace period")
            }
        }
        Ok(())
    }
}

// === Front doors ===

/// Builds the two front doors over the core: the gRPC services and the REST gateway (which calls
/// those services in-process), sharing one [`Authenticator`] (and so one failed-authentication
/// throttle and one view of the trusted proxies).
fn front_doors(
    config: &Config,
    core: &Arc<Core>,
    metrics: &Metrics,
) -> (Arc<Services>, gateway::Gateway) {
    let trusted_proxies = config.trusted_proxies.clone();
    if !trusted_proxies.networks().is_empty() {
        info!(trusted_proxies = ?trusted_proxies.networks(), "x-forwarded-for trusted from these proxies");
    }
    if let Some(public_url) = &config.public_url {
        info!(
            public_url = public_url.as_str(),
            "links name this public URL"
        );
    }
    if let Some(pointers) = &config.core.leaf_revocation_pointers {
        info!(
            crl = pointers.crl,
            ocsp = pointers.ocsp,
            base_url = %pointers.base_url,
            "certificates issued from now on carry revocation pointers"
        );
        if pointers.base_url.starts_with("https://") {
            warn!(
                base_url = %pointers.base_url,
                "the revocation pointers are https URLs: openssl's -crl_download and many \
                 relying parties fetch CRLs over http only, and RFC 5280 advises http for CRL \
                 distribution points (the CRL and OCSP answers are signed); consider \
                 --leaf-revocation-pointer-url http://<host>"
            );
        }
    }
    let links = gateway::Links {
        public_url: config.public_url.clone(),
        tls: config.tls.is_some(),
        trusted_proxies: trusted_proxies.clone(),
    };
    let authenticator = Arc::new(
        Authenticator::new(core.clone(), config.throttle, trusted_proxies)
            .with_metrics(metrics.auth().clone()),
    );
    let services = Arc::new(
        Services::new(core.clone(), authenticator.clone())
            .with_issued_counter(metrics.issued().clone()),
    );
    let gateway = gateway::Gateway::new(services.clone(), authenticator).with_links(links);
    (services, gateway)
}

// === Reflection ===

/// gRPC reflection (v1) over dbcert's and health's descriptors.
fn reflection_v1() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("failed to build reflection v1")
}

/// gRPC reflection (v1alpha, for older clients) over the same descriptors.
fn reflection_v1alpha() -> anyhow::Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("failed to build reflection v1alpha")
}
