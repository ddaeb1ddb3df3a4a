//! The shared store for several replicas: PostgreSQL through a pooled async driver. Migrations
//! run under sqlx's advisory lock, so replicas starting together are safe.
//!
//! Outages: a call that cannot get a working connection within [`ACQUIRE_TIMEOUT`] fails with
//! [`StoreError::Unavailable`] (UNAVAILABLE / HTTP 503) instead of hanging. Pooled connections
//! are pinged before use, so connections the server cut (restart, failover) are dropped and
//! replaced and the service recovers by itself once the database is back.

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::sql::*;
use crate::domain::{
    Actor, ApiKeyId, ApiKeyRecord, AuditAction, AuditEvent, AuditFilter, AuditOutcome, AuditScope,
    CertificateRecord, DatabaseName, DatabaseUser, OrgId, Organization, Page, Paged, Project,
    ProjectId, ProjectRole, StoreError, StoreResult, StoredCa, UserSecurity, Username,
};

type Db = sqlx::Postgres;

/// The most connections one replica opens.
const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a working connection before failing with `Unavailable`.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Certificate records and audit events are written through the same pool: PostgreSQL
    /// has no per-connection page cache to keep warm (see the SQLite store).
    writer: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`; `sslmode` in the URL selects TLS) and migrates.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // Fail fast when the database is down: callers get UNAVAILABLE, not a hang. While
            // connecting, sqlx retries a refused connection until this deadline.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection the server closed (restart, failover) is noticed and replaced here
            // rather than failing the caller's statement.
            .test_before_acquire(true)
            .connect(url)
            .await
            .map_err(map_err)?;
        // Holds `pg_advisory_lock` for the run: replicas starting together migrate once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| match error {
                sqlx::migrate::MigrateError::Execute(error) => map_err(error),
                other => StoreError::Other(other.into()),
            })?;
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }
}

fn map_err(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        // Class 08 (connection exception), 53 (insufficient resources, e.g. too many
        // connections), 57P0x (the server is shutting down, restarting or not yet up).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")
            }) =>
        {
            StoreError::Unavailable(error.into())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.into()),
        _ => StoreError::Other(error.into()),
    }
}

impl_store!(PostgresStore);
