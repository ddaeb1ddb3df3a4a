//! Project CRLs (`project_crls`, migration 0011) and the revocation facts they list (the
//! `revoked_at`, `revocation_reason` and `ca_generation` columns of `certificates`).
//!
//! The CRL number is a counter in the CRL's row, raised by `UPDATE … RETURNING` (after an
//! insert-if-absent), so every replica draws from the one sequence and numbers only grow. A
//! signed CRL is stored only over an older number, so two replicas re-signing at once end with
//! the newer CRL stored.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SqlStore;
use super::convert::{corrupt, from_secs, project_id, to_secs};
use super::db::{Backend, dispatch};
use crate::domain::{
    CertificateStatusRecord, CrlStore, CrlVersion, ProjectId, RevokedSerial, StoreResult, StoredCrl,
};

#[async_trait]
impl CrlStore for SqlStore {
    async fn next_crl_number(&self, project_id: &ProjectId, generation: u32) -> StoreResult<u64> {
        let number: i64 = dispatch!(&self.db, |pools: DB| {
            sqlx::query_scalar(
                "INSERT INTO project_crls (project_id, generation, last_number) VALUES ($1, $2, 1) \
                 ON CONFLICT (project_id, generation) \
                 DO UPDATE SET last_number = project_crls.last_number + 1 \
                 RETURNING last_number",
            )
            .bind(project_id.as_str())
            .bind(i64::from(generation))
            .fetch_one(&pools.writer)
            .await
            .map_err(DB::map_err)?
        });
        u64::try_from(number).map_err(|_| corrupt("crl number"))
    }

    async fn store_crl(
        &self,
        project_id: &ProjectId,
        generation: u32,
        crl: &StoredCrl,
    ) -> StoreResult<bool> {
        let number = i64::try_from(crl.number).map_err(|_| corrupt("crl number"))?;
        let stored = dispatch!(&self.db, |pools: DB| {
            sqlx::query(
                "UPDATE project_crls SET crl_number = $3, crl_der = $4, this_update = $5, \
                 next_update = $6, refresh_at = $7, claimed_until = 0 \
                 WHERE project_id = $1 AND generation = $2 AND crl_number < $3",
            )
            .bind(project_id.as_str())
            .bind(i64::from(generation))
            .bind(number)
            .bind(crl.der.as_slice())
            .bind(to_secs(crl.this_update))
            .bind(to_secs(crl.next_update))
            .bind(to_secs(crl.refresh_at))
            .execute(&pools.writer)
            .await
            .map_err(DB::map_err)?
            .rows_affected()
        });
        Ok(stored == 1)
    }

    async fn crl_version(
        &self,
        project_id: &ProjectId,
        generation: u32,
    ) -> StoreResult<Option<CrlVersion>> {
        // The latest revocation is read from the partial index of revoked certificates
        // (`certificates_revoked_at`, migration 0011): one index lookup, whatever their number.
        let row: Option<(i64, i64, i64, i64, Option<i64>)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT crl_number, this_update, next_update, refresh_at, \
                 (SELECT MAX(revoked_at) FROM certificates \
                  WHERE project_id = $1 AND revoked_at IS NOT NULL) \
                 FROM project_crls WHERE project_id = $1 AND generation = $2",
            )
            .bind(project_id.as_str())
            .bind(i64::from(generation))
            .fetch_optional(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        row.map(
            |(number, this_update, next_update, refresh_at, last_revocation)| {
                Ok(CrlVersion {
                    number: u64::try_from(number).map_err(|_| corrupt("crl number"))?,
                    this_update: from_secs(this_update)?,
                    last_revocation: last_revocation.map(from_secs).transpose()?,
                    next_update: from_secs(next_update)?,
                    refresh_at: from_secs(refresh_at)?,
                })
            },
        )
        .transpose()
    }

    async fn project_crl(
        &self,
        project_id: &ProjectId,
        generation: u32,
    ) -> StoreResult<Option<StoredCrl>> {
        let row: Option<(i64, Option<Vec<u8>>, i64, i64, i64)> =
            dispatch!(&self.db, |pools: DB| {
                sqlx::query_as(
                    "SELECT crl_number, crl_der, this_update, next_update, refresh_at \
                 FROM project_crls WHERE project_id = $1 AND generation = $2",
                )
                .bind(project_id.as_str())
                .bind(i64::from(generation))
                .fetch_optional(&pools.read)
                .await
                .map_err(DB::map_err)?
            });
        let Some((number, Some(der), this_update, next_update, refresh_at)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredCrl {
            number: u64::try_from(number).map_err(|_| corrupt("crl number"))?,
            der,
            this_update: from_secs(this_update)?,
            next_update: from_secs(next_update)?,
            refresh_at: from_secs(refresh_at)?,
        }))
    }

    async fn claim_crl_refresh(
        &self,
        project_id: &ProjectId,
        generation: u32,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<bool> {
        let claimed = dispatch!(&self.db, |pools: DB| {
            sqlx::query(
                "UPDATE project_crls SET claimed_until = $4 \
                 WHERE project_id = $1 AND generation = $2 AND claimed_until <= $3",
            )
            .bind(project_id.as_str())
            .bind(i64::from(generation))
            .bind(to_secs(now))
            .bind(to_secs(until))
            .execute(&pools.writer)
            .await
            .map_err(DB::map_err)?
            .rows_affected()
        });
        Ok(claimed == 1)
    }

    async fn crls_due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, u32)>> {
        let rows: Vec<(String, i64)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT project_id, generation FROM project_crls \
                 WHERE refresh_at <= $1 AND claimed_until <= $1 AND crl_der IS NOT NULL \
                 AND project_id IN (SELECT id FROM projects WHERE deleted_at IS NULL) \
                 ORDER BY refresh_at, project_id, generation LIMIT $2",
            )
            .bind(to_secs(now))
            .bind(i64::from(limit))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter()
            .map(|(id, generation)| {
                Ok((
                    project_id(&id)?,
                    u32::try_from(generation).map_err(|_| corrupt("ca generation"))?,
                ))
            })
            .collect()
    }

    async fn revoked_by_ca(
        &self,
        project_id: &ProjectId,
        generation: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<RevokedSerial>> {
        let rows: Vec<(i64, i64, Option<String>)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT serial, revoked_at, revocation_reason FROM certificates \
                 WHERE project_id = $1 AND ca_generation = $2 AND revoked_at IS NOT NULL \
                 AND not_after > $3 ORDER BY serial",
            )
            .bind(project_id.as_str())
            .bind(i64::from(generation))
            .bind(to_secs(now))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter()
            .map(|(serial, revoked_at, reason)| {
                Ok(RevokedSerial {
                    serial,
                    revoked_at: from_secs(revoked_at)?,
                    reason,
                })
            })
            .collect()
    }

    async fn certificate_status(
        &self,
        project_id: &ProjectId,
        serial: i64,
    ) -> StoreResult<Option<CertificateStatusRecord>> {
        let row: Option<(i64, i64, Option<i64>, Option<String>)> =
            dispatch!(&self.db, |pools: DB| {
                sqlx::query_as(
                    "SELECT ca_generation, not_after, revoked_at, revocation_reason \
                     FROM certificates WHERE project_id = $1 AND serial = $2",
                )
                .bind(project_id.as_str())
                .bind(serial)
                .fetch_optional(&pools.read)
                .await
                .map_err(DB::map_err)?
            });
        row.map(|(generation, not_after, revoked_at, reason)| {
            Ok(CertificateStatusRecord {
                generation: u32::try_from(generation).map_err(|_| corrupt("ca generation"))?,
                not_after: from_secs(not_after)?,
                revoked: revoked_at
                    .map(|at| {
                        Ok::<_, crate::domain::StoreError>(RevokedSerial {
                            serial,
                            revoked_at: from_secs(at)?,
                            reason,
                        })
                    })
                    .transpose()?,
            })
        })
        .transpose()
    }
}
