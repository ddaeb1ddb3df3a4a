//! The shared store for several replicas: PostgreSQL through a pooled async driver. Migrations
//! run under sqlx's advisory lock, so replicas starting together are safe.
//!
//! Outages: a call that cannot get a working connection within [`ACQUIRE_TIMEOUT`] fails with
//! [`StoreError::Unavailable`] (UNAVAILABLE / HTTP 503) instead of hanging. Pooled connections
//! are pinged before use, so connections the server cut (restart, failover) are dropped and
//! replaced and the service recovers by itself once the database is back.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::SqlStore;
use super::db::{Backend, Db, Pools};
use crate::domain::{StoreError, StoreResult};

/// The most connections one replica opens.
const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a working connection before failing with `Unavailable`.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The PostgreSQL backend: opens a [`SqlStore`] on a PostgreSQL database.
#[derive(Debug)]
pub enum PostgresStore {}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`; `sslmode` in the URL selects TLS) and migrates. The
    /// store has neither group commit nor cache ([`SqlStore::with_group_commit`],
    /// [`SqlStore::with_cache`]).
    pub async fn open(url: &str) -> StoreResult<SqlStore> {
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
            .map_err(sqlx::Postgres::map_err)?;
        // Holds `pg_advisory_lock` for the run: replicas starting together migrate once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| match error {
                sqlx::migrate::MigrateError::Execute(error) => sqlx::Postgres::map_err(error),
                other => StoreError::Other(other.into()),
            })?;
        // Certificate records and audit events go through the same pool (see `Pools::writer`).
        Ok(SqlStore::new(Db::Postgres(Pools {
            writer: pool.clone(),
            read: pool,
        })))
    }
}

impl Backend for sqlx::Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";

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
            // A connection the server (or a proxy in front of it) closes while sqlx opens it
            // shows as a protocol error, not an I/O error: sqlx reads the missing answer to its
            // SSLRequest as byte 0x00 ("unexpected response from SSLRequest"). It is an outage
            // like any refused connection.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.into()),
            _ => StoreError::Other(error.into()),
        }
    }
}
