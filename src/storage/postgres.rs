//! The shared store for several replicas: PostgreSQL through a pooled async driver. Migrations
//! run under sqlx's advisory lock, so replicas starting together are safe.

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::sql::*;
use crate::domain::{
    ApiKeyId, ApiKeyRecord, CertificateRecord, DatabaseName, DatabaseUser, OrgId, Organization,
    Page, Paged, Project, ProjectId, ProjectRole, StoreError, StoreResult, StoredCa, UserSecurity,
    Username,
};

type Db = sqlx::Postgres;

/// The PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`; `sslmode` in the URL selects TLS) and migrates.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Fail fast when the database is down: callers get UNAVAILABLE, not a hang.
            .acquire_timeout(Duration::from_secs(3))
            .test_before_acquire(true)
            .connect(url)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        Ok(Self { pool })
    }
}

fn map_err(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        // Class 08 (connection exception), 57P0x (the server is shutting down or restarting).
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
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
