//! Revocation of certificates (`certificates.revoked_at`, `revocation_reason`, migration 0009):
//! [`RevocationStore`] for [`SqlStore`].
//!
//! Each revocation is one transaction on the writer pool, begun as the certificate records'
//! are (`Backend::BEGIN_WRITE`): first the user's row of `user_certificate_counts` is locked
//! (the order the records take, so the two never wait for each other in a cycle), then the
//! certificates are revoked by a conditional UPDATE (`revoked_at IS NULL`: of two concurrent
//! revocations of one certificate, on any replica, one wins and the other finds it revoked),
//! `held` is lowered by the revoked certificates that were still unexpired (so it stays at least
//! the user's certificates neither expired nor revoked, the invariant of
//! `certificate_limit.rs`), and each revoked certificate's audit event is inserted. Nothing
//! about revocations is cached; the user's cached count is dropped here, and other replicas'
//! cached counts only overcount (an early refusal within the cache TTL, never a certificate
//! past the limit).

use async_trait::async_trait;
use sqlx::database::HasStatementCache;
use sqlx::{Executor, FromRow, IntoArguments};
use time::OffsetDateTime;

use super::SqlStore;
use super::audit::push_audit_rows;
use super::convert::{corrupt, from_secs, limit, offset, paged, project_id, to_secs};
use super::db::{Backend, dispatch};
use crate::domain::{
    CertificateRecord, CertificateState, DatabaseName, Page, Paged, ProjectId, Revocation,
    RevocationReason, RevocationStore, RevokeOutcome, RevokeRequest, RevokedCertificate,
    StoreResult, Username, revocation_event,
};

/// The columns of a [`StateRow`].
const STATE_COLUMNS: &str = "project_id, serial, username, subject, not_before, not_after, \
                             sha256_fingerprint, ca_generation, revoked_at, revocation_reason";

/// Inserts the audit event of each of `$records` revoked by `$request`, in the transaction
/// `$tx` of backend `$DB` (inside `dispatch!`, where the types are concrete).
macro_rules! insert_events {
    ($tx:expr, $DB:ident, $request:expr, $records:expr) => {
        let events: Vec<_> = $records
            .iter()
            .map(|record| revocation_event($request, record))
            .collect();
        for chunk in events.chunks(EVENTS_PER_STATEMENT) {
            let chunk: Vec<_> = chunk.iter().collect();
            push_audit_rows::<$DB>(&chunk)
                .build()
                .persistent(false)
                .execute(&mut *$tx)
                .await
                .map_err($DB::map_err)?;
        }
    };
}

/// The most audit events in one INSERT (11 parameters each).
const EVENTS_PER_STATEMENT: usize = 512;

#[async_trait]
impl RevocationStore for SqlStore {
    async fn revoke_certificate(
        &self,
        project_id: &ProjectId,
        username: &str,
        serial: i64,
        request: &RevokeRequest,
    ) -> StoreResult<RevokeOutcome> {
        let outcome: StoreResult<RevokeOutcome> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                let mut tx = pools
                    .writer
                    .begin_with(DB::BEGIN_WRITE)
                    .await
                    .map_err(DB::map_err)?;
                let revoked = revoke_in::<DB>(
                    &mut tx,
                    project_id.as_str(),
                    username,
                    Some(serial),
                    request,
                )
                .await?;
                if let Some(record) = revoked.into_iter().next() {
                    insert_events!(tx, DB, request, std::slice::from_ref(&record));
                    tx.commit().await.map_err(DB::map_err)?;
                    RevokeOutcome::Revoked(record)
                } else {
                    // Nothing was revoked: say why, from the row as it is (locked by nothing;
                    // the transaction is rolled back, so the count row is untouched).
                    let row: Option<StateRow> = sqlx::query_as(&format!(
                        "SELECT {STATE_COLUMNS} FROM certificates \
                         WHERE project_id = $1 AND serial = $2"
                    ))
                    .bind(project_id.as_str())
                    .bind(serial)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                    match row.map(StateRow::into_state).transpose()? {
                        None => RevokeOutcome::NotFound,
                        Some(state) if state.record.username != username => {
                            RevokeOutcome::OtherUser
                        }
                        Some(CertificateState {
                            revocation: Some(revocation),
                            ..
                        }) => RevokeOutcome::AlreadyRevoked(revocation),
                        // Unreachable by the UPDATE's condition; kept total.
                        Some(_) => RevokeOutcome::NotFound,
                    }
                }
            }))
        }
        .await;
        self.forget_count(project_id, username);
        outcome
    }

    async fn revoke_user_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        request: &RevokeRequest,
    ) -> StoreResult<Vec<CertificateRecord>> {
        let revoked: StoreResult<Vec<CertificateRecord>> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                let mut tx = pools
                    .writer
                    .begin_with(DB::BEGIN_WRITE)
                    .await
                    .map_err(DB::map_err)?;
                let revoked =
                    revoke_in::<DB>(&mut tx, project_id.as_str(), username, None, request).await?;
                insert_events!(tx, DB, request, revoked);
                tx.commit().await.map_err(DB::map_err)?;
                revoked
            }))
        }
        .await;
        self.forget_count(project_id, username);
        revoked
    }

    async fn delete_database_user_revoking(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
        revoke: Option<&RevokeRequest>,
        due: Option<OffsetDateTime>,
    ) -> StoreResult<Option<Vec<CertificateRecord>>> {
        let deleted: StoreResult<Option<Vec<CertificateRecord>>> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                let mut tx = pools
                    .writer
                    .begin_with(DB::BEGIN_WRITE)
                    .await
                    .map_err(DB::map_err)?;
                // With `due`, one statement: of replicas racing on the row, the one whose
                // DELETE takes it gets a row count of 1, the others 0.
                let done = sqlx::query(
                    "DELETE FROM database_users \
                     WHERE project_id = $1 AND database_name = $2 AND username = $3 \
                     AND ($4 IS NULL OR (delete_after IS NOT NULL AND delete_after <= $4))",
                )
                .bind(project_id.as_str())
                .bind(database_name.as_str())
                .bind(username.as_str())
                .bind(due.map(to_secs))
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                if done.rows_affected() == 0 {
                    None
                } else {
                    let revoked = match revoke {
                        Some(request) => {
                            let revoked = revoke_in::<DB>(
                                &mut tx,
                                project_id.as_str(),
                                username.as_str(),
                                None,
                                request,
                            )
                            .await?;
                            insert_events!(tx, DB, request, revoked);
                            revoked
                        }
                        None => Vec::new(),
                    };
                    tx.commit().await.map_err(DB::map_err)?;
                    Some(revoked)
                }
            }))
        }
        .await;
        self.cache.users.clear();
        self.forget_count(project_id, username.as_str());
        deleted
    }

    async fn list_certificate_states(
        &self,
        project_id: &ProjectId,
        username: &str,
        page: Page,
    ) -> StoreResult<Paged<CertificateState>> {
        let (rows, total): (Vec<StateRow>, Option<i64>) = dispatch!(&self.db, |pools: DB| {
            let rows = sqlx::query_as(&format!(
                "SELECT {STATE_COLUMNS} FROM certificates \
                 WHERE project_id = $1 AND username = $2 \
                 ORDER BY not_before, serial LIMIT $3 OFFSET $4"
            ))
            .bind(project_id.as_str())
            .bind(username)
            .bind(limit(page))
            .bind(offset(page))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?;
            let total = if page.include_count {
                Some(
                    sqlx::query_scalar(
                        "SELECT COUNT(*) AS n FROM certificates \
                         WHERE project_id = $1 AND username = $2",
                    )
                    .bind(project_id.as_str())
                    .bind(username)
                    .fetch_one(&pools.read)
                    .await
                    .map_err(DB::map_err)?,
                )
            } else {
                None
            };
            (rows, total)
        });
        let states = rows
            .into_iter()
            .map(StateRow::into_state)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(states, page, total))
    }

    async fn certificate_state(
        &self,
        project_id: &ProjectId,
        serial: i64,
    ) -> StoreResult<Option<CertificateState>> {
        let row: Option<StateRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(&format!(
                "SELECT {STATE_COLUMNS} FROM certificates WHERE project_id = $1 AND serial = $2"
            ))
            .bind(project_id.as_str())
            .bind(serial)
            .fetch_optional(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        row.map(StateRow::into_state).transpose()
    }

    async fn revoked_certificates(
        &self,
        project_id: &ProjectId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<RevokedCertificate>> {
        // A range on `certificates_revoked` (migration 0009), a partial index of the revoked
        // certificates alone.
        let rows: Vec<(i64, i64, String, i64)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT serial, revoked_at, revocation_reason, not_after FROM certificates \
                 WHERE project_id = $1 AND revoked_at IS NOT NULL AND not_after > $2 \
                 ORDER BY serial",
            )
            .bind(project_id.as_str())
            .bind(to_secs(now))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter()
            .map(|(serial, revoked_at, reason, not_after)| {
                Ok(RevokedCertificate {
                    serial,
                    revocation: revocation(Some(revoked_at), Some(reason))?
                        .ok_or_else(|| corrupt("revocation"))?,
                    not_after: from_secs(not_after)?,
                })
            })
            .collect()
    }
}

impl SqlStore {
    /// Drops a user's cached count of unexpired certificates (a revocation lowered it).
    fn forget_count(&self, project_id: &ProjectId, username: &str) {
        self.cache
            .certificate_counts
            .remove(&(project_id.clone(), username.to_owned()));
    }
}

/// Revokes, in the transaction on `conn`, the user's certificate `serial` (if it is the
/// user's and not revoked) or, without a serial, every certificate of the user neither
/// expired nor revoked; lowers the user's held count and inserts an audit event per revoked
/// certificate (the caller inserts their audit events, [`insert_events!`]). Returns the
/// revoked certificates, oldest first.
async fn revoke_in<DB>(
    conn: &mut DB::Connection,
    project_id: &str,
    username: &str,
    serial: Option<i64>,
    request: &RevokeRequest,
) -> StoreResult<Vec<CertificateRecord>>
where
    DB: Backend + HasStatementCache,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> StateRow: FromRow<'r, DB::Row>,
{
    let at = to_secs(request.revocation.at);
    // The count row first, as a certificate record locks it (PostgreSQL; SQLite's IMMEDIATE
    // transaction already holds the one write lock). An upsert, not an UPDATE: a record of the
    // user's first certificate inserts the row, and only an insert of the same key waits for
    // it, so the revocation below sees what that record stored (or the record, checking its
    // user after this commits, is refused: `certificate_limit::users_gone`).
    sqlx::query(
        "INSERT INTO user_certificate_counts (project_id, username, held) VALUES ($1, $2, 0) \
         ON CONFLICT (project_id, username) DO UPDATE SET held = user_certificate_counts.held",
    )
    .bind(project_id)
    .bind(username)
    .execute(&mut *conn)
    .await
    .map_err(DB::map_err)?;
    let rows: Vec<StateRow> = match serial {
        Some(serial) => sqlx::query_as(&format!(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
             WHERE project_id = $3 AND serial = $4 AND username = $5 AND revoked_at IS NULL \
             RETURNING {STATE_COLUMNS}"
        ))
        .bind(at)
        .bind(request.revocation.reason.as_str())
        .bind(project_id)
        .bind(serial)
        .bind(username)
        .fetch_all(&mut *conn)
        .await
        .map_err(DB::map_err)?,
        None => sqlx::query_as(&format!(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
             WHERE project_id = $3 AND username = $4 AND not_after > $5 AND revoked_at IS NULL \
             RETURNING {STATE_COLUMNS}"
        ))
        .bind(at)
        .bind(request.revocation.reason.as_str())
        .bind(project_id)
        .bind(username)
        .bind(at)
        .fetch_all(&mut *conn)
        .await
        .map_err(DB::map_err)?,
    };
    let mut records = rows
        .into_iter()
        .map(|row| row.into_state().map(|state| state.record))
        .collect::<StoreResult<Vec<_>>>()?;
    records.sort_by_key(|record| (record.not_before, record.serial));
    let unexpired = records
        .iter()
        .filter(|record| to_secs(record.not_after) > at)
        .count() as i64;
    if unexpired > 0 {
        sqlx::query(
            "UPDATE user_certificate_counts \
             SET held = CASE WHEN held > $1 THEN held - $2 ELSE 0 END \
             WHERE project_id = $3 AND username = $4",
        )
        .bind(unexpired)
        .bind(unexpired)
        .bind(project_id)
        .bind(username)
        .execute(&mut *conn)
        .await
        .map_err(DB::map_err)?;
    }
    Ok(records)
}

/// A row of `certificates` with its revocation columns.
#[derive(sqlx::FromRow)]
pub(super) struct StateRow {
    project_id: String,
    serial: i64,
    username: String,
    subject: String,
    not_before: i64,
    not_after: i64,
    sha256_fingerprint: String,
    ca_generation: i64,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
}

impl StateRow {
    fn into_state(self) -> StoreResult<CertificateState> {
        Ok(CertificateState {
            revocation: revocation(self.revoked_at, self.revocation_reason)?,
            record: CertificateRecord {
                serial: self.serial,
                project_id: project_id(&self.project_id)?,
                username: self.username,
                subject: self.subject,
                not_before: from_secs(self.not_before)?,
                not_after: from_secs(self.not_after)?,
                sha256_fingerprint: self.sha256_fingerprint,
                ca_generation: u32::try_from(self.ca_generation)
                    .map_err(|_| corrupt("certificate ca generation"))?,
            },
        })
    }
}

/// The revocation of the two stored columns (both NULL: none; one alone is corrupt).
fn revocation(at: Option<i64>, reason: Option<String>) -> StoreResult<Option<Revocation>> {
    match (at, reason) {
        (None, None) => Ok(None),
        (Some(at), Some(reason)) => Ok(Some(Revocation {
            at: from_secs(at)?,
            reason: RevocationReason::parse(&reason).ok_or_else(|| corrupt("revocation reason"))?,
        })),
        _ => Err(corrupt("revocation")),
    }
}
