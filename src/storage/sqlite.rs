//! The embedded default store: one SQLite file under the data directory, in WAL mode with
//! `synchronous = FULL`, so a committed certificate record survives a crash or power loss.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::SqlStore;
use super::db::{Backend, Db, Pools};
use crate::domain::{StoreError, StoreResult};

/// The SQLite backend: opens a [`SqlStore`] on a SQLite file.
#[derive(Debug)]
pub enum SqliteStore {}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and migrates it. The
    /// store has neither group commit nor cache ([`SqlStore::with_group_commit`],
    /// [`SqlStore::with_cache`]).
    pub async fn open(url: &str) -> StoreResult<SqlStore> {
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
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(sqlx::Sqlite::map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&read)
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        // The one long-lived connection of the hot writes (see `Pools::writer`).
        let writer = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(sqlx::Sqlite::map_err)?;
        Ok(SqlStore::new(Db::Sqlite(Pools { read, writer })))
    }

    /// The URL of the default database file in a data directory.
    pub fn url_in(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("dbcert.sqlite3").display())
    }
}

impl Backend for sqlx::Sqlite {
    fn map_err(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(error.into())
            }
            _ => StoreError::Other(error.into()),
        }
    }
}
