//! The audit trail (`audit_events`): events are written through the writer pool, as the
//! certificate records they often accompany, and kept at microsecond precision.

use async_trait::async_trait;
use sqlx::{Database, Encode, QueryBuilder, Type};
use time::OffsetDateTime;

use super::SqlStore;
use super::convert::{
    corrupt, from_micros, limit, micros_ceil, micros_floor, offset, org_id, paged, project_id,
    to_micros,
};
use super::db::{Backend, dispatch};
use crate::domain::{
    Actor, ApiKeyId, AuditAction, AuditEvent, AuditFilter, AuditOutcome, AuditScope, AuditStore,
    Page, Paged, StoreResult,
};

/// The columns of an event ([`AuditRow`]).
const AUDIT_SELECT: &str = "SELECT id, occurred_at_us, action, outcome, actor_key_id, \
     actor_public_key, remote_address, org_id, project_id, target, serial FROM audit_events";

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        dispatch!(&self.db, |pools: DB| {
            // One row: the same text every time, worth caching as a prepared statement.
            push_audit_rows::<DB>(&[event])
                .build()
                .execute(&pools.writer)
                .await
                .map_err(DB::map_err)?;
        });
        Ok(())
    }

    async fn list_audit_events(
        &self,
        scope: &AuditScope,
        filter: &AuditFilter,
        page: Page,
    ) -> StoreResult<Paged<AuditEvent>> {
        let (rows, total): (Vec<AuditRow>, Option<i64>) = dispatch!(&self.db, |pools: DB| {
            let mut select = QueryBuilder::<DB>::new(AUDIT_SELECT);
            push_audit_conditions(&mut select, scope, filter);
            select
                .push(" ORDER BY occurred_at_us DESC, id DESC LIMIT ")
                .push_bind(limit(page))
                .push(" OFFSET ")
                .push_bind(offset(page));
            let rows = select
                .build_query_as()
                .fetch_all(&pools.read)
                .await
                .map_err(DB::map_err)?;
            let total = if page.include_count {
                let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*) AS n FROM audit_events");
                push_audit_conditions(&mut count, scope, filter);
                Some(
                    count
                        .build_query_scalar()
                        .fetch_one(&pools.read)
                        .await
                        .map_err(DB::map_err)?,
                )
            } else {
                None
            };
            (rows, total)
        });
        let events = rows
            .into_iter()
            .map(AuditRow::into_event)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(events, page, total))
    }

    async fn audit_event(&self, id: &str) -> StoreResult<Option<AuditEvent>> {
        let row: Option<AuditRow> = dispatch!(&self.db, |pools: DB| {
            let mut select = QueryBuilder::<DB>::new(AUDIT_SELECT);
            select.push(" WHERE id = ").push_bind(id);
            select
                .build_query_as()
                .fetch_optional(&pools.read)
                .await
                .map_err(DB::map_err)?
        });
        row.map(AuditRow::into_event).transpose()
    }

    async fn purge_audit_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let before = micros_ceil(before);
        // The batch's last event: the limit-th oldest before the cutoff, found on the
        // (occurred_at_us, id) index. Then one DELETE of the range up to it, an index range
        // scan too: one short transaction however large the backlog (a DELETE with
        // `id IN (SELECT … LIMIT n)` reads the whole table on PostgreSQL). Replicas purging at
        // once walk the range in the same order; one waits for the other's batch and finds its
        // rows gone. The DELETE goes through the writer pool, as every other write of audit
        // events.
        let deleted = dispatch!(&self.db, |pools: DB| {
            let last: Option<(i64, String)> = sqlx::query_as(
                "SELECT occurred_at_us, id FROM audit_events WHERE occurred_at_us < $1 \
                 ORDER BY occurred_at_us, id LIMIT 1 OFFSET $2",
            )
            .bind(before)
            .bind(i64::from(limit) - 1)
            .fetch_optional(&pools.read)
            .await
            .map_err(DB::map_err)?;
            let done = match last {
                Some((at, id)) => {
                    sqlx::query(
                        "DELETE FROM audit_events \
                         WHERE occurred_at_us <= $1 AND (occurred_at_us < $1 OR id <= $2)",
                    )
                    .bind(at)
                    .bind(id)
                    .execute(&pools.writer)
                    .await
                }
                // Fewer than a batch before the cutoff.
                None => {
                    sqlx::query("DELETE FROM audit_events WHERE occurred_at_us < $1")
                        .bind(before)
                        .execute(&pools.writer)
                        .await
                }
            };
            done.map_err(DB::map_err)?.rows_affected()
        });
        Ok(deleted)
    }
}

/// One INSERT of audit events (one round trip to the database for a whole group commit
/// instead of one per event). `events` must not be empty.
pub(super) fn push_audit_rows<'a, DB>(events: &[&'a AuditEvent]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
{
    debug_assert!(!events.is_empty(), "an INSERT needs a row");
    let mut builder = QueryBuilder::new(
        "INSERT INTO audit_events (id, occurred_at_us, action, outcome, actor_key_id, \
         actor_public_key, remote_address, org_id, project_id, target, serial) ",
    );
    builder.push_values(events, |mut row, event| {
        let (key_id, public_key) = match &event.actor {
            Actor::ApiKey { id, public_key } => {
                (id.as_ref().map(|id| id.as_str()), public_key.as_deref())
            }
            Actor::System => (None, None),
        };
        row.push_bind(event.id.as_str())
            .push_bind(to_micros(event.at))
            .push_bind(event.action.as_str())
            .push_bind(event.outcome.as_str())
            .push_bind(key_id)
            .push_bind(public_key)
            .push_bind(event.client_address.map(|a| a.to_string()))
            .push_bind(event.org_id.as_ref().map(|id| id.as_str()))
            .push_bind(event.project_id.as_ref().map(|id| id.as_str()))
            .push_bind(event.target.as_deref())
            .push_bind(event.serial);
    });
    builder
}

/// Appends the `WHERE` clause of a scope and a filter.
fn push_audit_conditions<'q, DB>(
    builder: &mut QueryBuilder<'q, DB>,
    scope: &'q AuditScope,
    filter: &AuditFilter,
) where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    match scope {
        AuditScope::Project(id) => builder.push(" WHERE project_id = ").push_bind(id.as_str()),
        AuditScope::Org(id) => builder.push(" WHERE org_id = ").push_bind(id.as_str()),
    };
    if let Some(min) = filter.min_date {
        builder
            .push(" AND occurred_at_us >= ")
            .push_bind(micros_ceil(min));
    }
    if let Some(max) = filter.max_date {
        builder
            .push(" AND occurred_at_us <= ")
            .push_bind(micros_floor(max));
    }
    if filter.no_action {
        builder.push(" AND 1 = 0");
    } else if !filter.actions.is_empty() {
        builder.push(" AND action IN (");
        let mut names = builder.separated(", ");
        for action in &filter.actions {
            names.push_bind(action.as_str());
        }
        builder.push(")");
    }
}

/// A row of `audit_events`.
#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    occurred_at_us: i64,
    action: String,
    outcome: String,
    actor_key_id: Option<String>,
    actor_public_key: Option<String>,
    remote_address: Option<String>,
    org_id: Option<String>,
    project_id: Option<String>,
    target: Option<String>,
    serial: Option<i64>,
}

impl AuditRow {
    fn into_event(self) -> StoreResult<AuditEvent> {
        let key_id = self
            .actor_key_id
            .map(|id| ApiKeyId::parse(&id).map_err(|_| corrupt("api key id")))
            .transpose()?;
        let actor = if key_id.is_none() && self.actor_public_key.is_none() {
            Actor::System
        } else {
            Actor::ApiKey {
                id: key_id,
                public_key: self.actor_public_key,
            }
        };
        Ok(AuditEvent {
            id: self.id,
            at: from_micros(self.occurred_at_us)?,
            actor,
            client_address: self
                .remote_address
                .map(|a| a.parse().map_err(|_| corrupt("remote address")))
                .transpose()?,
            org_id: self.org_id.as_deref().map(org_id).transpose()?,
            project_id: self.project_id.as_deref().map(project_id).transpose()?,
            action: AuditAction::parse(&self.action).ok_or_else(|| corrupt("audit action"))?,
            target: self.target,
            serial: self.serial,
            outcome: AuditOutcome::parse(&self.outcome).ok_or_else(|| corrupt("audit outcome"))?,
        })
    }
}
