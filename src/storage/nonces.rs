//! Uses of HTTP Digest nonces (`digest_nonce_uses`), shared by every replica so a replayed
//! (nonce, nonce count) pair is refused on any of them.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SqlStore;
use super::convert::to_secs;
use super::db::{Backend, dispatch};
use crate::domain::{NonceStore, StoreResult};

#[async_trait]
impl NonceStore for SqlStore {
    async fn record_nonce_use(
        &self,
        nonce: &str,
        nc: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = dispatch!(&self.db, |pools: DB| {
            sqlx::query(
                "INSERT INTO digest_nonce_uses (nonce, nc, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (nonce, nc) DO NOTHING",
            )
            .bind(nonce)
            .bind(nc)
            .bind(to_secs(expires_at))
            .execute(&pools.read)
            .await
            .map_err(DB::map_err)?
            .rows_affected()
        });
        Ok(done == 1)
    }

    async fn purge_nonce_uses(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = dispatch!(&self.db, |pools: DB| {
            sqlx::query("DELETE FROM digest_nonce_uses WHERE expires_at < $1")
                .bind(to_secs(now))
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
        });
        Ok(done)
    }
}
