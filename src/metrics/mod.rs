//! Prometheus metrics through `prometheus-client` (typed families, OpenMetrics text), served as
//! `GET /metrics` on the HTTP listener or on a listener of its own (`--metrics-listen`).
//!
//! One [`Metrics`] per application holds the registry and the handles the adapters record
//! into; recording is an atomic add or a histogram observation under a per-series lock, with
//! labels that are `&'static str` or integers (no allocation per request):
//!
//! - `grpc.rs`: a tower layer on the tonic server, per RPC (`grpc_service`, `grpc_method`,
//!   `grpc_code`), with the code read from the response headers or trailers;
//! - `rest.rs`: a tower layer around the REST gateway, per route template (axum's
//!   `MatchedPath`, never the raw path), method and status;
//! - `auth.rs`: failed authentications and throttling, recorded by the `Authenticator`;
//! - `store.rs`: group-commit batch sizes and commit latency, recorded by `storage/batch.rs`;
//! - `expiry.rs`: certificates expiring within 7 and 30 days, counted in the store at most
//!   once a minute per replica, at scrape time;
//! - the key pool's depth, capacity, hits and misses and the group-commit totals are read at
//!   scrape time from what `domain/key_pool.rs` and `storage/batch.rs` count anyway.
//!
//! The domain layer records nothing itself and depends on no metrics crate: the issued
//! certificates are counted by the gRPC adapter (`grpc/certificates.rs`).

mod auth;
mod expiry;
mod grpc;
mod rest;
mod store;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tracing::error;

pub use self::auth::AuthMetrics;
pub use self::expiry::{EXPIRY_REFRESH, ExpiryGauges};
pub use self::grpc::{GrpcMetrics, GrpcMetricsLayer};
pub use self::rest::{RestMetrics, RestMetricsLayer, RouteTagLayer};
pub use self::store::{STORE, StoreMetrics};
use crate::domain::{Core, KeyPool, KeyType};

/// The content type of the OpenMetrics text exposition format, which Prometheus scrapes.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry of one application and the handles its adapters record into. Clones share
/// them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    grpc: GrpcMetrics,
    rest: RestMetrics,
    auth: AuthMetrics,
    issued: IssuedCertificates,
    expiry: Arc<ExpiryGauges>,
}

/// Certificates issued, per key type of the leaf.
#[derive(Clone, Debug, Default)]
pub struct IssuedCertificates(Family<KeyTypeLabel, Counter>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyTypeLabel {
    key_type: &'static str,
}

// === impl Metrics ===

impl Metrics {
    /// Registers every family: the recorded ones, and the collectors reading the key pool, the
    /// group-commit totals and (through `core`'s store) the certificates about to expire.
    pub fn new(core: Arc<Core>, key_pool: KeyPool) -> Self {
        let mut registry = Registry::with_prefix("dbcert");
        let grpc = GrpcMetrics::register(&mut registry);
        let rest = RestMetrics::register(&mut registry);
        let auth = AuthMetrics::register(&mut registry);
        let issued = IssuedCertificates::default();
        // Every key type from zero, so the family is there (and `rate` works) before the first.
        for &key_type in KeyType::ALL {
            let _ = issued.0.get_or_create(&KeyTypeLabel {
                key_type: key_type.as_str(),
            });
        }
        registry.register(
            "certificates_issued",
            "Client certificates issued (recorded with their audit event), per key type of the leaf",
            issued.0.clone(),
        );
        STORE.register(&mut registry);
        let expiry = Arc::new(ExpiryGauges::register(&mut registry, core));
        registry.register_collector(Box::new(PoolAndCommits { key_pool }));
        Self {
            registry: Arc::new(registry),
            grpc,
            rest,
            auth,
            issued,
            expiry,
        }
    }

    /// The handles of the gRPC layer.
    pub fn grpc(&self) -> &GrpcMetrics {
        &self.grpc
    }

    /// The handles of the REST layer.
    pub fn rest(&self) -> &RestMetrics {
        &self.rest
    }

    /// The handles of the authenticator.
    pub fn auth(&self) -> &AuthMetrics {
        &self.auth
    }

    /// The issued-certificates counter of the gRPC adapter.
    pub fn issued(&self) -> &IssuedCertificates {
        &self.issued
    }

    /// Renders every family as OpenMetrics text, refreshing the expiry counts first if they
    /// are older than [`EXPIRY_REFRESH`].
    pub async fn render(&self) -> Result<String, fmt::Error> {
        self.expiry.refresh_if_stale().await;
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

// === impl IssuedCertificates ===

impl IssuedCertificates {
    /// Counts one certificate issued with a leaf key of `key_type`.
    pub fn inc(&self, key_type: KeyType) {
        self.0
            .get_or_create(&KeyTypeLabel {
                key_type: key_type.as_str(),
            })
            .inc();
    }
}

/// Builds the router serving `GET /metrics` (unauthenticated, as Prometheus scrapes; it shows
/// counts and no secret, key, username or raw path).
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Metrics>) -> Response {
    match metrics.render().await {
        Ok(text) => ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], text).into_response(),
        Err(error) => {
            error!(%error, "failed to encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

// === Key pool and group-commit totals ===

/// Reads, at scrape time, what the key pool and the group-commit writer count anyway.
#[derive(Debug)]
struct PoolAndCommits {
    key_pool: KeyPool,
}

impl Collector for PoolAndCommits {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let stats = self.key_pool.stats();
        type Value = fn(&crate::domain::KeyPoolStats) -> u64;
        let gauges: [(&str, &str, Value); 2] = [
            (
                "key_pool_depth",
                "Pre-generated leaf keys ready to use.",
                |s| s.depth as u64,
            ),
            (
                "key_pool_capacity",
                "The most pre-generated leaf keys kept ready.",
                |s| s.capacity as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for s in &stats {
                let label = KeyTypeLabel {
                    key_type: s.key_type.as_str(),
                };
                ConstGauge::new(value(s) as i64).encode(family.encode_family(&label)?)?;
            }
        }
        let counters: [(&str, &str, Value); 2] = [
            (
                "key_pool_hits",
                "Certificates issued with a pre-generated key.",
                |s| s.hits,
            ),
            (
                "key_pool_misses",
                "Certificates of a pooled key type whose key was generated inline (pool empty).",
                |s| s.misses,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for s in &stats {
                let label = KeyTypeLabel {
                    key_type: s.key_type.as_str(),
                };
                ConstCounter::new(value(s)).encode(family.encode_family(&label)?)?;
            }
        }
        let (commits, records) = crate::storage::group_commit_totals();
        for (name, help, value) in [
            (
                "certificate_commits",
                "Transactions that recorded issued certificates (group commits).",
                commits,
            ),
            (
                "certificate_records",
                "Issued certificates recorded by those transactions.",
                records,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
