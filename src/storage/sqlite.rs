//! The embedded default store: one SQLite file under the data directory, in WAL mode with
//! `synchronous = FULL`, so a committed certificate record survives a crash or power loss.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::*;
use crate::domain::{
    Actor, ApiKeyId, ApiKeyRecord, AuditAction, AuditEvent, AuditFilter, AuditOutcome, AuditScope,
    CertificateRecord, DatabaseName, DatabaseUser, OrgId, Organization, Page, Paged, Project,
    ProjectId, ProjectRole, StoreError, StoreResult, StoredCa, UserSecurity, Username,
};

type Db = sqlx::Sqlite;

/// The SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection that writes certificate records and audit events (the hot writes).
    /// In WAL mode a connection drops its whole page cache whenever another connection has
    /// written since its last transaction; with the writes spread over a pool, every group
    /// commit began by re-reading its index pages from the WAL (most of the writer's CPU).
    /// One long-lived connection keeps them cached.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(e.into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Random serials make every certificate insert dirty its own index pages: a 16 MiB
            // page cache per connection and a 64 MiB WAL between checkpoints (instead of 2 MiB
            // and 4 MiB) keep those pages from being re-read and re-copied on every commit.
            .pragma("cache_size", "-16384")
            .pragma("wal_autocheckpoint", "16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        let writer = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, writer })
    }

    /// The URL of the default database file in a data directory.
    pub fn url_in(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("dbcert.sqlite3").display())
    }
}

fn map_err(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.into())
        }
        _ => StoreError::Other(error.into()),
    }
}

impl_store!(SqliteStore);
