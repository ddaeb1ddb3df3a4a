//! Prometheus text-format metrics, served as `GET /metrics` on the HTTP listener (merged with
//! the gateway's router in `app.rs`): the leaf key pool's depth, capacity and hit counts, and
//! the group commits of certificate records.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::domain::{KeyPool, KeyPoolStats};

/// The content type of the Prometheus text exposition format.
const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the router serving `GET /metrics`.
pub fn router(key_pool: KeyPool) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(key_pool)
}

async fn metrics(State(key_pool): State<KeyPool>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT_TYPE_PROMETHEUS)], render(&key_pool))
}

/// A metric family: name, type, help, and its value for one key type.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&KeyPoolStats) -> u64,
);

/// Renders the metrics as Prometheus text.
pub fn render(key_pool: &KeyPool) -> String {
    let stats = key_pool.stats();
    let mut out = String::new();
    let families: [Family; 4] = [
        (
            "dbcert_key_pool_depth",
            "gauge",
            "Pre-generated leaf keys ready to use.",
            |s| s.depth as u64,
        ),
        (
            "dbcert_key_pool_capacity",
            "gauge",
            "The most pre-generated leaf keys kept ready.",
            |s| s.capacity as u64,
        ),
        (
            "dbcert_key_pool_hits_total",
            "counter",
            "Certificates issued with a pre-generated key.",
            |s| s.hits,
        ),
        (
            "dbcert_key_pool_misses_total",
            "counter",
            "Certificates of a pooled key type whose key was generated inline (pool empty).",
            |s| s.misses,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in &stats {
            let _ = writeln!(out, "{name}{{key_type=\"{}\"}} {}", s.key_type, value(s));
        }
    }
    let (commits, records) = crate::storage::group_commit_totals();
    for (name, help, value) in [
        (
            "dbcert_certificate_commits_total",
            "Transactions that recorded issued certificates (group commits).",
            commits,
        ),
        (
            "dbcert_certificate_records_total",
            "Issued certificates recorded by those transactions.",
            records,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_per_type() {
        let pool = KeyPool::start(&crate::domain::KeyPoolConfig {
            size: 1,
            workers: 1,
            types: vec![crate::domain::KeyType::EcdsaP256],
        });
        let text = render(&pool);
        assert!(
            text.contains("# TYPE dbcert_key_pool_depth gauge"),
            "{text}"
        );
        assert!(
            text.contains("dbcert_key_pool_capacity{key_type=\"ECDSA_P256\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dbcert_key_pool_misses_total{key_type=\"ECDSA_P256\"} 0"),
            "{text}"
        );
        // A disabled pool has no per-type samples; the group commit counters are always there.
        let disabled = render(&KeyPool::disabled());
        assert!(
            disabled
                .lines()
                .filter(|l| !l.starts_with('#'))
                .all(|l| l.starts_with("dbcert_certificate_")),
            "{disabled}"
        );
        assert!(
            disabled.contains("\ndbcert_certificate_commits_total "),
            "{disabled}"
        );
        assert!(
            disabled.contains("\ndbcert_certificate_records_total "),
            "{disabled}"
        );
    }
}
