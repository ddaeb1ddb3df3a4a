//! Conversions between domain values and stored columns that every aggregate uses: times (Unix
//! seconds, or microseconds for audit events), ids, and pages.

use time::OffsetDateTime;

use crate::domain::{OrgId, Page, Paged, ProjectId, StoreError, StoreResult};

/// Converts a time to the stored Unix seconds.
pub(super) fn to_secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Converts stored Unix seconds to a time.
pub(super) fn from_secs(secs: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StoreError::Other(e.into()))
}

/// Converts a time to the stored Unix microseconds.
pub(super) fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The first whole microsecond at or after `t`: an event stored at `m` microseconds is at or
/// after `t` exactly when `m >= micros_ceil(t)`, and before `t` when `m < micros_ceil(t)`.
pub(super) fn micros_ceil(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1000) + i128::from(nanos.rem_euclid(1000) != 0))
        .unwrap_or(i64::MAX)
}

/// The last whole microsecond at or before `t`: an event stored at `m` microseconds is at or
/// before `t` exactly when `m <= micros_floor(t)`.
pub(super) fn micros_floor(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// Converts stored Unix microseconds to a time.
pub(super) fn from_micros(micros: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|e| StoreError::Other(e.into()))
}

/// A stored value that does not parse back: the database was changed behind our back.
pub(super) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Other(format!("corrupt stored {what}").into())
}

/// Parses a stored project id.
pub(super) fn project_id(text: &str) -> StoreResult<ProjectId> {
    ProjectId::parse(text).map_err(|_| corrupt("project id"))
}

/// Parses a stored organization id.
pub(super) fn org_id(text: &str) -> StoreResult<OrgId> {
    OrgId::parse(text).map_err(|_| corrupt("org id"))
}

/// Builds a page from rows fetched with `LIMIT items_per_page + 1`.
pub(super) fn paged<T>(mut rows: Vec<T>, page: Page, total_count: Option<i64>) -> Paged<T> {
    let has_next_page = rows.len() > page.items_per_page as usize;
    rows.truncate(page.items_per_page as usize);
    Paged {
        results: rows,
        total_count: total_count.map(|n| n.max(0) as u64),
        has_next_page,
    }
}

/// The `LIMIT` of a page: one more row than it shows, to know whether a next page exists.
pub(super) fn limit(page: Page) -> i64 {
    i64::from(page.items_per_page) + 1
}

/// The `OFFSET` of a page.
pub(super) fn offset(page: Page) -> i64 {
    i64::try_from(page.offset()).unwrap_or(i64::MAX)
}
