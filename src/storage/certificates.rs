//! The records of the certificates the project CAs issued (`certificates`; the CAs themselves
//! are in `ca_generations.rs`). Issued certificates are recorded with their audit events in one
//! transaction on the writer pool, which also holds each user to the per-user limit
//! (`certificate_limit.rs`); with group commit ([`super::SqlStore::with_group_commit`])
//! concurrent records share it (`batch.rs`).

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{Database, Encode, QueryBuilder, Type};
use time::OffsetDateTime;

use super::audit::push_audit_rows;
use super::convert::{corrupt, from_secs, limit, offset, paged, project_id, to_secs};
use super::db::{Backend, dispatch};
use super::{SqlStore, certificate_limit};
use crate::domain::{
    CertificateRecord, CertificateStore, NewCertificate, Page, Paged, ProjectId, StoreError,
    StoreResult,
};

/// The most certificate rows in one INSERT statement (8 parameters each: far below SQLite's
/// 32766 and PostgreSQL's 65535 parameter limits).
const CERTIFICATE_BATCH_CHUNK: usize = 512;

#[async_trait]
impl CertificateStore for SqlStore {
    async fn list_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
        page: Page,
    ) -> StoreResult<Paged<CertificateRecord>> {
        let rows: Vec<CertificateRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT project_id, serial, username, subject, not_before, not_after, \
                 sha256_fingerprint, ca_generation FROM certificates \
                 WHERE project_id = $1 AND username = $2 AND not_after > $3 \
                 AND revoked_at IS NULL ORDER BY not_before, serial LIMIT $4 OFFSET $5",
            )
            .bind(project_id.as_str())
            .bind(username)
            .bind(to_secs(now))
            .bind(limit(page))
            .bind(offset(page))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        let records = rows
            .into_iter()
            .map(CertificateRow::into_record)
            .collect::<StoreResult<Vec<_>>>()?;
        let total = if page.include_count {
            // Counted in the database, not taken from the cache: a listing is exact.
            Some(self.count_unexpired(project_id, username, now).await? as i64)
        } else {
            None
        };
        Ok(paged(records, page, total))
    }

    async fn count_unexpired_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        // Certificates expiring within the TTL are still counted: the cache only overcounts.
        if self.cache.certificate_counts.is_disabled() {
            return self.count_unexpired(project_id, username, now).await;
        }
        let key = (project_id.clone(), username.to_owned());
        self.cache
            .certificate_counts
            .get_or_read_value(&key, || self.count_unexpired(project_id, username, now))
            .await
    }

    async fn record_certificate(&self, certificate: &NewCertificate) -> StoreResult<()> {
        let Some(group_commit) = &self.group_commit else {
            // A batch of one, which keeps the cache itself.
            return self
                .record_certificates(std::slice::from_ref(certificate))
                .await?
                .pop()
                .unwrap_or_else(|| Err(StoreError::Other("no result for the record".into())));
        };
        let recorded = group_commit.record(certificate).await;
        match &recorded {
            Ok(()) => self.cache.count_inserted([&certificate.record]),
            Err(StoreError::LimitReached) => self.cache.count_full(certificate),
            Err(_) => {}
        }
        recorded
    }

    async fn record_certificates(
        &self,
        items: &[NewCertificate],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        let users = certificate_limit::users_of(items);
        // One multi-row INSERT per chunk, in one transaction: one commit for the batch, with
        // each inserted record's audit event. First the users' counts are raised and checked
        // (`certificate_limit.rs`): a record past its user's limit gets `LimitReached`. ON
        // CONFLICT DO NOTHING keeps a taken serial from failing the others; that record gets
        // `Conflict`. Neither has its event stored.
        let results = dispatch!(&self.db, |pools: DB| {
            let mut tx = pools
                .writer
                .begin_with(DB::BEGIN_WRITE)
                .await
                .map_err(DB::map_err)?;
            let mut admitted = certificate_limit::admit::<DB>(&mut tx, &users, items.len()).await?;
            let gone = certificate_limit::users_gone::<DB>(&mut tx, &users, items).await?;
            for &position in &gone {
                admitted[position] = false;
            }
            let mut results: Vec<StoreResult<()>> = admitted
                .iter()
                .map(|&fits| {
                    if fits {
                        Ok(())
                    } else {
                        Err(StoreError::LimitReached)
                    }
                })
                .collect();
            for &position in &gone {
                results[position] = Err(StoreError::UserGone);
            }
            let positions: Vec<usize> = (0..items.len()).filter(|&i| admitted[i]).collect();
            for chunk in positions.chunks(CERTIFICATE_BATCH_CHUNK) {
                let records: Vec<&CertificateRecord> =
                    chunk.iter().map(|&i| &items[i].record).collect();
                let written = insert_certificate_rows::<DB>(&records)
                    .build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?
                    .rows_affected();
                // When every row went in (all but once in 2^63 draws) the row count says so;
                // otherwise each record is looked up by its key, user and fingerprint, which
                // only the row it wrote has. (`RETURNING` would say it directly, but streams
                // one message per row back from SQLite's worker thread on every batch, for a
                // case that practically never happens.)
                let mut inserted: HashSet<(&str, i64)> = if written == records.len() as u64 {
                    records.iter().map(|record| key(record)).collect()
                } else {
                    let mut inserted = HashSet::with_capacity(records.len());
                    for record in &records {
                        let ours = sqlx::query(
                            "SELECT 1 FROM certificates WHERE project_id = $1 AND serial = $2 \
                             AND username = $3 AND sha256_fingerprint = $4",
                        )
                        .bind(record.project_id.as_str())
                        .bind(record.serial)
                        .bind(record.username.as_str())
                        .bind(record.sha256_fingerprint.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(DB::map_err)?;
                        if ours.is_some() {
                            inserted.insert(key(record));
                        }
                    }
                    inserted
                };
                // A key inserted once answers Ok once: a duplicate within the batch conflicts.
                let mut events = Vec::with_capacity(chunk.len());
                for &i in chunk {
                    if inserted.remove(&key(&items[i].record)) {
                        events.push(&items[i].event);
                    } else {
                        results[i] = Err(StoreError::Conflict);
                    }
                }
                if !events.is_empty() {
                    // Batches vary in length and would only churn the statement cache.
                    push_audit_rows::<DB>(&events)
                        .build()
                        .persistent(events.len() == 1)
                        .execute(&mut *tx)
                        .await
                        .map_err(DB::map_err)?;
                }
            }
            tx.commit().await.map_err(DB::map_err)?;
            results
        });
        let inserted = items.iter().zip(&results);
        self.cache.count_inserted(
            inserted
                .clone()
                .filter(|(_, result)| result.is_ok())
                .map(|(item, _)| &item.record),
        );
        for (item, _) in
            inserted.filter(|(_, result)| matches!(result, Err(StoreError::LimitReached)))
        {
            self.cache.count_full(item);
        }
        Ok(results)
    }

    async fn count_certificates_expiring(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<u64> {
        // A range on `certificates_by_not_after` (migration 0008): only the certificates in the
        // window are read, however many have expired or expire later.
        let count: i64 = dispatch!(&self.db, |pools: DB| {
            sqlx::query_scalar(
                "SELECT COUNT(*) AS n FROM certificates \
                 WHERE not_after > $1 AND not_after <= $2 AND revoked_at IS NULL",
            )
            .bind(to_secs(now))
            .bind(to_secs(until))
            .fetch_one(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        Ok(count.max(0) as u64)
    }
}

impl SqlStore {
    /// Counts a user's certificates unexpired at `now` in the database.
    async fn count_unexpired(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let count: i64 = dispatch!(&self.db, |pools: DB| {
            sqlx::query_scalar(
                "SELECT COUNT(*) AS n FROM certificates \
                 WHERE project_id = $1 AND username = $2 AND not_after > $3 \
                 AND revoked_at IS NULL",
            )
            .bind(project_id.as_str())
            .bind(username)
            .bind(to_secs(now))
            .fetch_one(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        Ok(count.max(0) as u64)
    }
}

/// The key a certificate record is unique by: (project, serial).
fn key(record: &CertificateRecord) -> (&str, i64) {
    (record.project_id.as_str(), record.serial)
}

/// One INSERT of certificate records that skips serials already taken.
fn insert_certificate_rows<'a, DB>(records: &[&'a CertificateRecord]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut builder = QueryBuilder::new(
        "INSERT INTO certificates (project_id, serial, username, subject, not_before, \
         not_after, sha256_fingerprint, ca_generation) ",
    );
    builder.push_values(records, |mut row, record| {
        row.push_bind(record.project_id.as_str())
            .push_bind(record.serial)
            .push_bind(record.username.as_str())
            .push_bind(record.subject.as_str())
            .push_bind(to_secs(record.not_before))
            .push_bind(to_secs(record.not_after))
            .push_bind(record.sha256_fingerprint.as_str())
            .push_bind(i64::from(record.ca_generation));
    });
    builder.push(" ON CONFLICT (project_id, serial) DO NOTHING");
    builder
}

/// A row of `certificates`.
#[derive(sqlx::FromRow)]
struct CertificateRow {
    project_id: String,
    serial: i64,
    username: String,
    subject: String,
    not_before: i64,
    not_after: i64,
    sha256_fingerprint: String,
    ca_generation: i64,
}

impl CertificateRow {
    fn into_record(self) -> StoreResult<CertificateRecord> {
        Ok(CertificateRecord {
            serial: self.serial,
            project_id: project_id(&self.project_id)?,
            username: self.username,
            subject: self.subject,
            not_before: from_secs(self.not_before)?,
            not_after: from_secs(self.not_after)?,
            sha256_fingerprint: self.sha256_fingerprint,
            ca_generation: u32::try_from(self.ca_generation)
                .map_err(|_| corrupt("certificate ca generation"))?,
        })
    }
}
