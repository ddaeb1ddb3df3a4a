//! Every CA a project has had (`project_ca_generations`, migration 0010) and which of them
//! issues (`project_cas.generation`, read through the store's cache, `cache.rs`).
//!
//! The first CA's creators race on `project_cas`' primary key (the loser re-reads). A rotation
//! is one transaction that moves `project_cas.generation` from the generation it read to the
//! next only if it still names the one read, and inserts that generation's row (primary key
//! (project, generation)): of rotations racing on any replicas, one moves it and the others
//! change nothing and get `Conflict`.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SqlStore;
use super::audit::push_audit_rows;
use super::convert::{corrupt, project_id, to_secs};
use super::db::{Backend, dispatch};
use crate::domain::{
    AuditEvent, KeyType, ProjectCaStore, ProjectId, StoreError, StoreResult, StoredCa,
};

/// A row of `project_ca_generations`: (generation, cert_der, sealed_key).
type CaRow = (i64, Vec<u8>, Option<Vec<u8>>);

#[async_trait]
impl ProjectCaStore for SqlStore {
    async fn project_ca(&self, project_id: &ProjectId) -> StoreResult<Option<StoredCa>> {
        let row: Option<CaRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT g.generation, g.cert_der, g.sealed_key \
                 FROM project_cas p JOIN project_ca_generations g \
                 ON g.project_id = p.project_id AND g.generation = p.generation \
                 WHERE p.project_id = $1",
            )
            .bind(project_id.as_str())
            .fetch_optional(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        row.map(stored_ca).transpose()
    }

    async fn project_ca_generation(&self, project_id: &ProjectId) -> StoreResult<Option<u32>> {
        self.cache
            .ca_generations
            .get_or_read(project_id, || async {
                let generation: Option<i64> = dispatch!(&self.db, |pools: DB| {
                    sqlx::query_scalar("SELECT generation FROM project_cas WHERE project_id = $1")
                        .bind(project_id.as_str())
                        .fetch_optional(&pools.read)
                        .await
                        .map_err(DB::map_err)?
                });
                generation.map(generation_from).transpose()
            })
            .await
    }

    async fn project_cas(&self, project_id: &ProjectId) -> StoreResult<Vec<StoredCa>> {
        let rows: Vec<CaRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT generation, cert_der, sealed_key FROM project_ca_generations \
                 WHERE project_id = $1 ORDER BY generation DESC",
            )
            .bind(project_id.as_str())
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter().map(stored_ca).collect()
    }

    async fn trusted_project_cas(
        &self,
        project_id: &ProjectId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<StoredCa>> {
        // The issuing CA, and each older one while a certificate it signed is unexpired and
        // not revoked (one probe of `certificates_by_ca_generation` per generation).
        let rows: Vec<CaRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT g.generation, g.cert_der, g.sealed_key \
                 FROM project_ca_generations g JOIN project_cas p ON p.project_id = g.project_id \
                 WHERE g.project_id = $1 AND (g.generation = p.generation OR EXISTS ( \
                     SELECT 1 FROM certificates c WHERE c.project_id = g.project_id \
                     AND c.ca_generation = g.generation AND c.not_after > $2 \
                     AND c.revoked_at IS NULL)) \
                 ORDER BY g.generation DESC",
            )
            .bind(project_id.as_str())
            .bind(to_secs(now))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter().map(stored_ca).collect()
    }

    async fn insert_project_ca_of_type(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
    ) -> StoreResult<bool> {
        debug_assert_eq!(ca.generation, 1, "a project's first ca is generation 1");
        let inserted: StoreResult<bool> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                // Locks the project's row (PostgreSQL) or the database (SQLite) against a
                // concurrent change of the setting, and fixes the setting.
                let locked = sqlx::query(
                    "UPDATE projects SET ca_key_type_locked = 1 WHERE id = $1 AND ca_key_type = $2",
                )
                .bind(project_id.as_str())
                .bind(key_type.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                if locked.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO project_cas (project_id, generation, created_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(project_id.as_str())
                .bind(i64::from(ca.generation))
                .bind(to_secs(created))
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                sqlx::query(INSERT_GENERATION)
                    .bind(project_id.as_str())
                    .bind(i64::from(ca.generation))
                    .bind(ca.cert_der.as_slice())
                    .bind(ca.sealed_key.as_deref())
                    .bind(to_secs(created))
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                tx.commit().await.map_err(DB::map_err)?;
                true
            }))
        }
        .await;
        // Also when the setting changed under us (`Ok(false)`): the next read must see it.
        self.cache.security.remove(project_id);
        self.cache.ca_generations.remove(project_id);
        inserted
    }

    async fn rotate_project_ca(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let Some(expected) = ca.generation.checked_sub(1).filter(|&g| g > 0) else {
            return Err(StoreError::Other(
                "a rotation makes generation 2 or later".into(),
            ));
        };
        let rotated: StoreResult<()> = async {
            dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                // The compare-and-set every racing rotation goes through: a write first, so it
                // takes the row lock (PostgreSQL) or the database's (SQLite) before anything
                // else, and the losers find the generation moved.
                let moved = sqlx::query(
                    "UPDATE project_cas SET generation = $1 WHERE project_id = $2 \
                     AND generation = $3 AND EXISTS (SELECT 1 FROM projects \
                     WHERE id = $2 AND deleted_at IS NULL)",
                )
                .bind(i64::from(ca.generation))
                .bind(project_id.as_str())
                .bind(i64::from(expected))
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                if moved.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                sqlx::query(INSERT_GENERATION)
                    .bind(project_id.as_str())
                    .bind(i64::from(ca.generation))
                    .bind(ca.cert_der.as_slice())
                    .bind(ca.sealed_key.as_deref())
                    .bind(to_secs(created))
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                sqlx::query("UPDATE projects SET ca_key_type = $1 WHERE id = $2")
                    .bind(key_type.as_str())
                    .bind(project_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                push_audit_rows::<DB>(&[event])
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                tx.commit().await.map_err(DB::map_err)?;
            });
            Ok(())
        }
        .await;
        // The issuing generation and the CA key type setting may have changed.
        self.cache.security.remove(project_id);
        self.cache.ca_generations.remove(project_id);
        rotated
    }

    async fn sealed_ca_keys(
        &self,
        after: Option<(&ProjectId, u32)>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, u32, Vec<u8>)>> {
        let (after_id, after_generation) = after_key(after);
        let rows: Vec<(String, i64, Vec<u8>)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT project_id, generation, sealed_key FROM project_ca_generations \
                 WHERE sealed_key IS NOT NULL \
                 AND (project_id > $1 OR (project_id = $1 AND generation > $2)) \
                 ORDER BY project_id, generation LIMIT $3",
            )
            .bind(after_id)
            .bind(after_generation)
            .bind(i64::from(limit))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter()
            .map(|(id, generation, sealed_key)| {
                Ok((project_id(&id)?, generation_from(generation)?, sealed_key))
            })
            .collect()
    }

    async fn project_ca_certificates(
        &self,
        after: Option<(&ProjectId, u32)>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, u32, Vec<u8>)>> {
        let (after_id, after_generation) = after_key(after);
        let rows: Vec<(String, i64, Vec<u8>)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT project_id, generation, cert_der FROM project_ca_generations \
                 WHERE project_id > $1 OR (project_id = $1 AND generation > $2) \
                 ORDER BY project_id, generation LIMIT $3",
            )
            .bind(after_id)
            .bind(after_generation)
            .bind(i64::from(limit))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter()
            .map(|(id, generation, cert_der)| {
                Ok((project_id(&id)?, generation_from(generation)?, cert_der))
            })
            .collect()
    }

    async fn replace_sealed_ca_key(
        &self,
        project_id: &ProjectId,
        generation: u32,
        expected: &[u8],
        sealed_key: &[u8],
    ) -> StoreResult<bool> {
        let replaced: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "UPDATE project_ca_generations SET sealed_key = $1 \
                     WHERE project_id = $2 AND generation = $3 AND sealed_key = $4",
                )
                .bind(sealed_key)
                .bind(project_id.as_str())
                .bind(i64::from(generation))
                .bind(expected)
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        // CAs are not cached here; the X.509 settings are dropped so nothing read before the
        // re-sealing outlives it.
        self.cache.security.remove(project_id);
        replaced
    }
}

/// Inserts one generation's row: (project id, generation, cert_der, sealed_key, created_at).
const INSERT_GENERATION: &str = "INSERT INTO project_ca_generations \
     (project_id, generation, cert_der, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5)";

/// The (project id, generation) a listing starts after; `("", 0)` from the beginning.
fn after_key(after: Option<(&ProjectId, u32)>) -> (&str, i64) {
    after.map_or(("", 0), |(id, generation)| {
        (id.as_str(), i64::from(generation))
    })
}

fn generation_from(value: i64) -> StoreResult<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| corrupt("project ca generation"))
}

fn stored_ca((generation, cert_der, sealed_key): CaRow) -> StoreResult<StoredCa> {
    Ok(StoredCa {
        generation: generation_from(generation)?,
        cert_der,
        sealed_key,
    })
}
