//! The service's own key-value settings (`meta` table) and the health check.

use async_trait::async_trait;

use super::SqlStore;
use super::db::{Backend, dispatch};
use crate::domain::{MetaStore, StoreResult};

#[async_trait]
impl MetaStore for SqlStore {
    async fn put_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        dispatch!(&self.db, |pools: DB| {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&pools.read)
            .await
            .map_err(DB::map_err)?;
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_one(&pools.read)
                .await
                .map_err(DB::map_err)
        })
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        dispatch!(&self.db, |pools: DB| {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(&pools.read)
                .await
                .map_err(DB::map_err)
        })
    }

    async fn replace_meta(&self, key: &str, expected: &str, value: &str) -> StoreResult<bool> {
        let done = dispatch!(&self.db, |pools: DB| {
            sqlx::query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3")
                .bind(value)
                .bind(key)
                .bind(expected)
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
        });
        Ok(done > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        dispatch!(&self.db, |pools: DB| {
            sqlx::query("SELECT 1")
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?;
        });
        Ok(())
    }
}
