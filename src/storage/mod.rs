//! Storage backends of the [`crate::domain::Store`] port, chosen by URL scheme.

mod batch;
mod cache;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

pub use self::batch::{GroupCommitStore, MAX_GROUP_COMMIT, group_commit_totals};
pub use self::cache::CachingStore;
pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;
use crate::domain::{Store, StoreError, StoreResult};

/// Opens and migrates the store at `url`: `sqlite://…` or `postgres://…`/`postgresql://…`.
/// Certificate inserts are group-committed ([`GroupCommitStore`]).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(url).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PostgresStore::open(url).await?)
    } else {
        return Err(StoreError::Other(
            "unsupported database url: expected sqlite:// or postgres://".into(),
        ));
    };
    Ok(Arc::new(GroupCommitStore::new(store)))
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
    use super::*;

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
