//! The per-user certificate limit (`--max-certificates-per-user`), enforced in the transaction
//! that records the certificates ([`crate::domain::CertificateStore::record_certificates`]), so
//! concurrent issues, in one process or on several replicas, never take a user past it.
//!
//! What is limited is what the issue pipeline has always counted: a user's certificates (by
//! project and certificate username, whichever database the user is in, deleted or not) whose
//! `not_after` is later than the time.
//!
//! Counting those in every commit would cost a range scan per user per batch, growing with the
//! user's certificates. Instead each user has a row in `user_certificate_counts` whose `held`
//! is never less than the user's certificates unexpired now or later (migration 0007 starts
//! it from the unexpired ones). The first statement of the recording transaction raises the
//! row of each user in the batch by the number of the batch's certificates for that user:
//!
//! - On PostgreSQL the upsert locks the row until the commit, so a batch for the same user on
//!   another replica waits for it, then raises the committed value and sees the certificates
//!   committed with it. Rows are raised in (project, username) order, so two batches never wait
//!   for each other in a cycle.
//! - On SQLite the transaction begins `IMMEDIATE` (`Backend::BEGIN_WRITE`): it holds the
//!   database's one write lock from its start, so nothing it reads (the count, the exact
//!   recount) can be made stale by another connection's write before it commits, and it never
//!   has to upgrade a read snapshot to a writer (which fails at once with "database is
//!   locked").
//!
//! When the raised value is within the limit (the common case) every certificate of the user
//! fits: one statement per batch for all its users. When it would pass the limit, the user's
//! unexpired certificates are counted exactly (so expired ones free their places), the batch's
//! first certificates of the user that fit are admitted and the others refused
//! (`LimitReached`), and `held` is set to the exact count plus those admitted. `held` may run
//! ahead of the truth (certificates expire; a record refused for its serial was counted), which
//! costs an exact count at the limit, never a refusal.

use std::collections::{BTreeMap, HashMap};

use sqlx::database::HasStatementCache;
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::convert::to_secs;
use super::db::Backend;
use crate::domain::{NewCertificate, StoreResult};

/// The most users raised in one statement (3 parameters each).
const USERS_PER_STATEMENT: usize = 1000;

/// One user's certificates in a batch.
#[derive(Debug)]
pub(super) struct UserBatch<'a> {
    project_id: &'a str,
    username: &'a str,
    /// Where the user's certificates are in the batch, in order.
    positions: Vec<usize>,
    /// The smallest limit among them.
    max: i64,
    /// The latest time among them that certificates are counted at (Unix seconds): the closest
    /// to the commit.
    now: i64,
}

/// Groups a batch's certificates by user, ordered by (project, username).
pub(super) fn users_of(items: &[NewCertificate]) -> Vec<UserBatch<'_>> {
    let mut users: BTreeMap<(&str, &str), UserBatch<'_>> = BTreeMap::new();
    for (position, item) in items.iter().enumerate() {
        let (project_id, username) = (
            item.record.project_id.as_str(),
            item.record.username.as_str(),
        );
        let max = i64::try_from(item.limit.max).unwrap_or(i64::MAX);
        let now = to_secs(item.limit.now);
        users
            .entry((project_id, username))
            .and_modify(|user| {
                user.positions.push(position);
                user.max = user.max.min(max);
                user.now = user.now.max(now);
            })
            .or_insert_with(|| UserBatch {
                project_id,
                username,
                positions: vec![position],
                max,
                now,
            });
    }
    users.into_values().collect()
}

/// Raises the counts of the batch's `users` (from [`users_of`]) in the transaction on `conn`
/// and returns, for each of the batch's `len` certificates, whether it fits its user's limit.
pub(super) async fn admit<DB>(
    conn: &mut DB::Connection,
    users: &[UserBatch<'_>],
    len: usize,
) -> StoreResult<Vec<bool>>
where
    DB: Backend + HasStatementCache,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String, String, i64): FromRow<'r, DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    let mut admitted = vec![true; len];
    let mut raised: HashMap<(String, String), i64> = HashMap::with_capacity(users.len());
    for chunk in users.chunks(USERS_PER_STATEMENT) {
        let sql = raise_statement(chunk.len());
        let mut raise = sqlx::query_as::<DB, (String, String, i64)>(&sql);
        for user in chunk {
            raise = raise
                .bind(user.project_id)
                .bind(user.username)
                .bind(user.positions.len() as i64);
        }
        // Batches vary in their number of users and would only churn the statement cache.
        let rows = raise
            .persistent(chunk.len() == 1)
            .fetch_all(&mut *conn)
            .await
            .map_err(DB::map_err)?;
        raised.extend(
            rows.into_iter()
                .map(|(project_id, username, held)| ((project_id, username), held)),
        );
    }
    for user in users {
        let key = (user.project_id.to_owned(), user.username.to_owned());
        let Some(&held) = raised.get(&key) else {
            return Err(crate::domain::StoreError::Other(
                "a raised certificate count was not returned".into(),
            ));
        };
        if held <= user.max {
            continue;
        }
        // Past the limit by the count: count exactly.
        let (unexpired,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM certificates \
             WHERE project_id = $1 AND username = $2 AND not_after > $3 AND revoked_at IS NULL",
        )
        .bind(user.project_id)
        .bind(user.username)
        .bind(user.now)
        .fetch_one(&mut *conn)
        .await
        .map_err(DB::map_err)?;
        let fits = usize::try_from(user.max.saturating_sub(unexpired).max(0))
            .unwrap_or(usize::MAX)
            .min(user.positions.len());
        for &position in &user.positions[fits..] {
            admitted[position] = false;
        }
        sqlx::query(
            "UPDATE user_certificate_counts SET held = $1 WHERE project_id = $2 AND username = $3",
        )
        .bind(unexpired + fits as i64)
        .bind(user.project_id)
        .bind(user.username)
        .execute(&mut *conn)
        .await
        .map_err(DB::map_err)?;
    }
    Ok(admitted)
}

/// The positions of the batch's certificates whose user must exist and no longer does (deleted
/// on `$external`): checked after [`admit`] locked the users' count rows, which a deletion's
/// revocation locks too, so a deletion either committed before (the user is gone here) or
/// waits for this transaction and then revokes what it recorded.
pub(super) async fn users_gone<DB>(
    conn: &mut DB::Connection,
    users: &[UserBatch<'_>],
    items: &[NewCertificate],
) -> StoreResult<Vec<usize>>
where
    DB: Backend + HasStatementCache,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    let mut gone = Vec::new();
    for user in users {
        if !user.positions.iter().any(|&p| items[p].user_must_exist) {
            continue;
        }
        let exists: Option<(i64,)> = sqlx::query_as(
            "SELECT CAST(1 AS BIGINT) FROM database_users \
             WHERE project_id = $1 AND database_name = '$external' AND username = $2",
        )
        .bind(user.project_id)
        .bind(user.username)
        .fetch_optional(&mut *conn)
        .await
        .map_err(DB::map_err)?;
        if exists.is_none() {
            gone.extend(
                user.positions
                    .iter()
                    .copied()
                    .filter(|&p| items[p].user_must_exist),
            );
        }
    }
    Ok(gone)
}

/// The upsert that raises the counts of `users` users by their parameters (project, username,
/// certificates: `$1, $2, $3` for the first) and returns the raised counts.
fn raise_statement(users: usize) -> String {
    let mut sql =
        String::from("INSERT INTO user_certificate_counts (project_id, username, held) VALUES ");
    for user in 0..users {
        let first = 3 * user + 1;
        if user > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${})", first, first + 1, first + 2));
    }
    sql.push_str(
        " ON CONFLICT (project_id, username) DO UPDATE \
         SET held = user_certificate_counts.held + excluded.held \
         RETURNING project_id, username, held",
    );
    sql
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::{
        Actor, AuditAction, AuditEvent, AuditOutcome, CertificateLimit, CertificateRecord,
        ProjectId,
    };

    fn item(project: &ProjectId, username: &str, max: u64, now: i64) -> NewCertificate {
        let now = OffsetDateTime::from_unix_timestamp(now).unwrap();
        NewCertificate {
            record: CertificateRecord {
                serial: 1,
                project_id: project.clone(),
                username: username.into(),
                subject: format!("CN={username}"),
                not_before: now,
                not_after: now,
                sha256_fingerprint: String::new(),
                ca_generation: 1,
            },
            event: AuditEvent {
                id: String::new(),
                at: now,
                actor: Actor::System,
                client_address: None,
                org_id: None,
                project_id: None,
                action: AuditAction::CertificateIssued,
                target: None,
                serial: None,
                outcome: AuditOutcome::Success,
            },
            limit: CertificateLimit { max, now },
            user_must_exist: false,
        }
    }

    #[test]
    fn users_are_grouped_in_key_order_with_the_tightest_limit_and_latest_time() {
        let now = OffsetDateTime::now_utc();
        let (p, q) = (ProjectId::generate(now), ProjectId::generate(now));
        let (p, q) = if p.as_str() < q.as_str() {
            (p, q)
        } else {
            (q, p)
        };
        let items = [
            item(&q, "bob", 5, 10),
            item(&p, "bob", 5, 10),
            item(&q, "alice", 5, 10),
            item(&q, "bob", 3, 20),
            item(&q, "bob", 9, 15),
        ];
        let users = users_of(&items);
        let summary: Vec<(&str, &str, Vec<usize>, i64, i64)> = users
            .iter()
            .map(|u| (u.project_id, u.username, u.positions.clone(), u.max, u.now))
            .collect();
        assert_eq!(
            summary,
            [
                (p.as_str(), "bob", vec![1], 5, 10),
                (q.as_str(), "alice", vec![2], 5, 10),
                (q.as_str(), "bob", vec![0, 3, 4], 3, 20),
            ]
        );
        let huge = [item(&p, "a", u64::MAX, 0)];
        assert_eq!(
            users_of(&huge)[0].max,
            i64::MAX,
            "a limit past i64 saturates"
        );
    }

    #[test]
    fn the_raise_statement_numbers_three_parameters_per_user() {
        assert_eq!(
            raise_statement(2),
            "INSERT INTO user_certificate_counts (project_id, username, held) \
             VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (project_id, username) DO UPDATE \
             SET held = user_certificate_counts.held + excluded.held \
             RETURNING project_id, username, held"
        );
    }
}
