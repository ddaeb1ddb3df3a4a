//! API key access lists (`api_key_access_list`): one row per canonical CIDR block of a key.
//! The list is read through the read cache (authentication reads it on every request); the
//! writes here clear the key's entry, so a change is seen at once by this replica and within
//! the cache TTL by the others.

use super::SqlStore;
use super::convert::{corrupt, from_secs, to_secs};
use super::db::{Backend, dispatch};
use crate::domain::{AccessListAdd, AccessListEntry, AccessListItem, ApiKeyId, OrgId, StoreResult};

impl SqlStore {
    /// See [`crate::domain::ApiKeyStore::api_key_access_list`].
    pub(super) async fn read_access_list(&self, id: &ApiKeyId) -> StoreResult<Vec<AccessListItem>> {
        self.cache
            .access_lists
            .get_or_read_value(id.as_str(), || self.read_access_list_uncached(id))
            .await
    }

    async fn read_access_list_uncached(&self, id: &ApiKeyId) -> StoreResult<Vec<AccessListItem>> {
        let rows: Vec<(String, i64)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT cidr_block, created_at FROM api_key_access_list \
                 WHERE api_key_id = $1 ORDER BY created_at, cidr_block",
            )
            .bind(id.as_str())
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter()
            .map(|(block, created)| {
                Ok(AccessListItem {
                    entry: AccessListEntry::from_stored(&block)
                        .ok_or_else(|| corrupt("access list entry"))?,
                    created: from_secs(created)?,
                })
            })
            .collect()
    }

    /// See [`crate::domain::ApiKeyStore::add_api_key_access_list`].
    pub(super) async fn add_access_list(
        &self,
        org_id: &OrgId,
        id: &ApiKeyId,
        entries: &[AccessListEntry],
        now: time::OffsetDateTime,
        max: usize,
    ) -> StoreResult<AccessListAdd> {
        let blocks: Vec<String> = entries.iter().map(AccessListEntry::cidr_block).collect();
        let added: StoreResult<AccessListAdd> = async {
            let outcome = dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                // Takes the key's row (a row lock on PostgreSQL, the write lock on SQLite):
                // concurrent adds to one key are serialized, so the count below holds.
                let found = sqlx::query(
                    "UPDATE api_keys SET description = description WHERE id = $1 AND org_id = $2",
                )
                .bind(id.as_str())
                .bind(org_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?
                .rows_affected();
                if found == 0 {
                    AccessListAdd::NoSuchKey
                } else {
                    let existing: Vec<String> = sqlx::query_scalar(
                        "SELECT cidr_block FROM api_key_access_list WHERE api_key_id = $1",
                    )
                    .bind(id.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                    let mut new: Vec<&String> =
                        blocks.iter().filter(|b| !existing.contains(b)).collect();
                    new.sort();
                    new.dedup();
                    if existing.len() + new.len() > max {
                        AccessListAdd::Full
                    } else {
                        for block in new {
                            sqlx::query(
                                "INSERT INTO api_key_access_list (api_key_id, cidr_block, \
                                 created_at) VALUES ($1, $2, $3)",
                            )
                            .bind(id.as_str())
                            .bind(block)
                            .bind(to_secs(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(DB::map_err)?;
                        }
                        tx.commit().await.map_err(DB::map_err)?;
                        AccessListAdd::Added
                    }
                }
            });
            Ok(outcome)
        }
        .await;
        self.cache.access_lists.remove(&id.as_str().to_owned());
        added
    }

    /// See [`crate::domain::ApiKeyStore::delete_api_key_access_list_entry`].
    pub(super) async fn delete_access_list_entry(
        &self,
        id: &ApiKeyId,
        entry: &AccessListEntry,
    ) -> StoreResult<bool> {
        let deleted: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "DELETE FROM api_key_access_list WHERE api_key_id = $1 AND cidr_block = $2",
                )
                .bind(id.as_str())
                .bind(entry.cidr_block())
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        self.cache.access_lists.remove(&id.as_str().to_owned());
        deleted
    }
}
