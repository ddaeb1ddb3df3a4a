//! Storage backends of the [`crate::domain::Store`] port, chosen by URL scheme.
//!
//! One store type, [`SqlStore`], implements the port for SQLite and PostgreSQL. It is written
//! once per aggregate, in the module named after it (`meta.rs`, `projects.rs` with
//! organizations, `api_keys.rs`, `database_users.rs`, `user_security.rs`, `ca_generations.rs`
//! with every project CA, `certificates.rs` with the certificates they issued and
//! `certificate_limit.rs` with the per-user limit, `revocation.rs`, `audit.rs`,
//! `nonces.rs`), over the two backends' pools (`db.rs`; connecting
//! and error classification in `sqlite.rs` and `postgres.rs`). Two optional components sit
//! inside it: group commit of certificate records (`batch.rs`) and a short-lived read cache
//! (`cache.rs`); the methods they concern call them, so a new store method is written in its
//! aggregate's module and in the port, nowhere else.

mod access_list;
mod api_keys;
mod audit;
mod batch;
mod ca_generations;
mod cache;
mod certificate_limit;
mod certificates;
mod convert;
mod crl;
mod database_users;
mod db;
mod meta;
mod nonces;
mod postgres;
mod projects;
mod revocation;
mod sqlite;
mod user_security;

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use self::batch::GroupCommit;
pub use self::batch::{MAX_GROUP_COMMIT, group_commit_totals};
use self::cache::ReadCache;
use self::db::Db;
pub use self::postgres::{ACQUIRE_TIMEOUT as POSTGRES_ACQUIRE_TIMEOUT, PostgresStore};
pub use self::sqlite::SqliteStore;
use crate::domain::{Store, StoreError, StoreResult};

/// How long [`open`] keeps retrying a PostgreSQL server it cannot reach, so replicas started
/// before (or with) their database wait for it instead of exiting at once.
pub const OPEN_RETRY_BUDGET: Duration = Duration::from_secs(60);
/// The first pause between attempts to reach the database at start; it doubles up to
/// [`OPEN_RETRY_MAX_DELAY`].
const OPEN_RETRY_FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest pause between attempts to reach the database at start.
const OPEN_RETRY_MAX_DELAY: Duration = Duration::from_secs(8);

/// Opens and migrates the store at `url`: `sqlite://…` or `postgres://…`/`postgresql://…`.
/// Certificate records are group-committed ([`SqlStore::with_group_commit`]); nothing is
/// cached.
///
/// An unreachable PostgreSQL server is retried with backoff for [`OPEN_RETRY_BUDGET`], each
/// retry logged; any other failure (bad URL, authentication, a failed migration) is returned
/// at once.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(open_store(url).await?.with_group_commit()))
}

/// Opens the store at `url` as [`open`] does, with reads cached for `cache_ttl`
/// ([`SqlStore::with_cache`]; zero caches nothing): the store the service runs on.
pub async fn open_with_cache(url: &str, cache_ttl: Duration) -> StoreResult<Arc<dyn Store>> {
    let store = open_store(url).await?.with_group_commit();
    Ok(Arc::new(store.with_cache(cache_ttl)))
}

/// Opens the store at `url`, retrying an unreachable PostgreSQL server (see [`open`]).
async fn open_store(url: &str) -> StoreResult<SqlStore> {
    if url.starts_with("sqlite:") {
        SqliteStore::open(url).await
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        retry_unavailable(OPEN_RETRY_BUDGET, OPEN_RETRY_FIRST_DELAY, || {
            PostgresStore::open(url)
        })
        .await
    } else {
        Err(StoreError::Other(
            "unsupported database url: expected sqlite:// or postgres://".into(),
        ))
    }
}

/// The store over SQLite or PostgreSQL ([`SqliteStore::open`], [`PostgresStore::open`]): it
/// implements every trait of the port, each in its aggregate's module.
pub struct SqlStore {
    db: Db,
    /// Reads cached for a short time; disabled (a TTL of zero) unless [`Self::with_cache`].
    cache: ReadCache,
    /// The queue of the group-commit writer, if [`Self::with_group_commit`].
    group_commit: Option<GroupCommit>,
}

impl SqlStore {
    /// Group-commits certificate records ([`crate::domain::CertificateStore::record_certificate`]):
    /// concurrent calls share one transaction (see `batch.rs`). Starts the writer task on the
    /// current Tokio runtime; it stops when the store is dropped.
    pub fn with_group_commit(mut self) -> Self {
        self.group_commit = Some(GroupCommit::start(Self::new(self.db.clone())));
        self
    }

    /// Caches the lookups every request makes for `ttl` (see `cache.rs`); zero caches nothing.
    pub fn with_cache(mut self, ttl: Duration) -> Self {
        self.cache = ReadCache::new(ttl);
        self
    }

    /// A store on `db` without group commit or cache.
    fn new(db: Db) -> Self {
        Self {
            db,
            cache: ReadCache::new(Duration::ZERO),
            group_commit: None,
        }
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            db,
            cache,
            group_commit,
        } = self;
        f.debug_struct("SqlStore")
            .field("db", db)
            .field("cache", cache)
            .field("group_commit", &group_commit.is_some())
            .finish()
    }
}

/// Runs `attempt` until it returns anything but `Unavailable`, or until the next attempt
/// would start after `budget` has passed; pauses double from `first_delay`.
async fn retry_unavailable<T, F, Fut>(
    budget: Duration,
    first_delay: Duration,
    mut attempt: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut delay = first_delay;
    let mut attempts = 1u32;
    loop {
        match attempt().await {
            Err(StoreError::Unavailable(error))
                if tokio::time::Instant::now() + delay < deadline =>
            {
                warn!(
                    attempt = attempts,
                    retry_in = ?delay,
                    error = %error,
                    "database unreachable at start, retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(OPEN_RETRY_MAX_DELAY);
                attempts += 1;
            }
            result => return result,
        }
    }
}

/// Hides the password of a database URL, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn unavailable() -> StoreError {
        StoreError::Unavailable("connection refused".into())
    }

    #[tokio::test]
    async fn retries_unavailable_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let result =
            retry_unavailable(Duration::from_secs(5), Duration::from_millis(1), || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(unavailable()),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_budget() {
        let calls = AtomicU32::new(0);
        let result: StoreResult<()> = retry_unavailable(
            Duration::from_millis(20),
            Duration::from_millis(1),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(unavailable())
            },
        )
        .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        let calls = calls.load(Ordering::SeqCst);
        assert!((2..=10).contains(&calls), "{calls} attempts");
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: StoreResult<()> =
            retry_unavailable(Duration::from_secs(5), Duration::from_millis(1), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Other("password authentication failed".into()))
            })
            .await;
        assert!(matches!(result, Err(StoreError::Other(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x"), "sqlite:///tmp/x");
    }
}
