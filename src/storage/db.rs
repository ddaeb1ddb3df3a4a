//! The database a [`super::SqlStore`] talks to: the pools of one backend ([`Pools`]), the
//! choice between the two backends ([`Db`]), and [`dispatch!`], which runs one piece of code on
//! whichever backend it is.
//!
//! The schema and every statement are portable between SQLite and PostgreSQL (numbered `$N`
//! parameters, `ON CONFLICT`, partial unique indexes), so each store method is written once, in
//! its aggregate's module, as a body that `dispatch!` compiles for each backend's concrete pool
//! type; where the dialects differ, the body says so. Only connecting, migrations and error
//! classification differ per backend ([`Backend`], in `sqlite.rs` and `postgres.rs`).

use sqlx::{Database, Pool};

use crate::domain::StoreError;

/// What differs between the backends beyond the SQL: how their errors map onto the port's, and
/// how a transaction that reads before it writes begins.
pub(super) trait Backend: Database {
    /// Begins a transaction that reads and then writes (the certificate records, which read
    /// their users' counts first): on SQLite `BEGIN IMMEDIATE`, which takes the write lock at
    /// once, since a deferred transaction whose read snapshot another connection's write made
    /// stale cannot upgrade to a writer and fails at once with "database is locked"; on
    /// PostgreSQL a plain `BEGIN` (rows are locked as they are written).
    const BEGIN_WRITE: &'static str;

    /// Classifies a driver error: a unique violation is `Conflict`, an unreachable database
    /// `Unavailable`, anything else `Other`.
    fn map_err(error: sqlx::Error) -> StoreError;
}

/// The pools of one backend.
#[derive(Debug)]
pub(super) struct Pools<DB: Database> {
    /// Reads, and every write but the hot ones below.
    pub(super) read: Pool<DB>,
    /// Certificate records and audit events (the hot writes). On SQLite this is one long-lived
    /// connection of its own: in WAL mode a connection drops its whole page cache whenever
    /// another connection has written since its last transaction; with these writes spread over
    /// a pool, every group commit began by re-reading its index pages from the WAL (most of the
    /// writer's CPU). One connection keeps them cached. On PostgreSQL, which has no
    /// per-connection page cache to keep warm, it is the same pool as `read`.
    pub(super) writer: Pool<DB>,
}

// Not derived: the derive would require `DB: Clone`.
impl<DB: Database> Clone for Pools<DB> {
    fn clone(&self) -> Self {
        Self {
            read: self.read.clone(),
            writer: self.writer.clone(),
        }
    }
}

/// The database of a store: SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub(super) enum Db {
    /// The embedded default (`sqlite.rs`).
    Sqlite(Pools<sqlx::Sqlite>),
    /// The shared database of several replicas (`postgres.rs`).
    Postgres(Pools<sqlx::Postgres>),
}

/// Runs `$body` on the backend of `$db` (a `&Db`), with `$pools` bound to its [`Pools`] and
/// `$DB` naming its `sqlx::Database` type (for `$DB::map_err` from [`Backend`], and for
/// `QueryBuilder::<$DB>`). The body is compiled once per backend, against that backend's
/// concrete types, so it needs no generic bounds and its compiler errors point at it.
///
/// ```text
/// dispatch!(&self.db, |pools: DB| {
///     sqlx::query("SELECT 1").execute(&pools.read).await.map_err(DB::map_err)
/// })
/// ```
macro_rules! dispatch {
    ($db:expr, |$pools:ident: $DB:ident| $body:expr) => {
        match $db {
            $crate::storage::db::Db::Sqlite($pools) => {
                #[allow(dead_code, clippy::upper_case_acronyms)]
                type $DB = sqlx::Sqlite;
                $body
            }
            $crate::storage::db::Db::Postgres($pools) => {
                #[allow(dead_code, clippy::upper_case_acronyms)]
                type $DB = sqlx::Postgres;
                $body
            }
        }
    };
}

pub(super) use dispatch;
