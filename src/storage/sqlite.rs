//! The embedded default store: one SQLite file under the data directory, in WAL mode with
//! `synchronous = FULL`, so a committed certificate record survives a crash or power loss.
//! The file holds the Digest HA1 values, which work as passwords: it is created 0600 before
//! SQLite opens it (SQLite gives its `-wal` and `-shm` files the database file's mode), and
//! `-wal`/`-shm` files open to group or others are restricted after opening.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
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
        let file = Self::file_of(url);
        if let Some(path) = &file {
            create_private(path).map_err(|e| StoreError::Other(e.into()))?;
        }
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
        if let Some(path) = &file {
            for suffix in ["-wal", "-shm"] {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                restrict(Path::new(&name)).map_err(|e| StoreError::Other(e.into()))?;
            }
        }
        Ok(SqlStore::new(Db::Sqlite(Pools { read, writer })))
    }

    /// The database file a `sqlite:` URL names, or `None` for another URL or an in-memory
    /// database.
    pub fn file_of(url: &str) -> Option<PathBuf> {
        if !url.starts_with("sqlite:") || url.contains("mode=memory") {
            return None;
        }
        let options = SqliteConnectOptions::from_str(url).ok()?;
        let path = options.get_filename();
        (path != Path::new(":memory:") && !path.as_os_str().is_empty()).then(|| path.to_owned())
    }

    /// The URL of the default database file in a data directory.
    pub fn url_in(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("dbcert.sqlite3").display())
    }
}

/// Creates `path` empty with mode 0600 unless it exists (an empty file is an empty SQLite
/// database). The mode is given at creation, so the file is never open to others, whatever the
/// process umask (the safe equivalent of a 0077 umask for this one file).
fn create_private(path: &Path) -> std::io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes group and other permissions away from `path` if it exists.
fn restrict(path: &Path) -> std::io::Result<()> {
    let permissions = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if permissions.mode() & 0o077 != 0 {
        fs::set_permissions(
            path,
            fs::Permissions::from_mode(permissions.mode() & 0o7700),
        )?;
    }
    Ok(())
}

impl Backend for sqlx::Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

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
