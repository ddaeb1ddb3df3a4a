//! Group commit for certificate records: a [`Store`] decorator that queues concurrent
//! `record_certificate` (certificate and its audit event) and `insert_certificate` calls and
//! writes each queue-full in one transaction ([`Store::record_certificates`],
//! [`Store::insert_certificates`]), so concurrent issues share one commit (one fsync) instead
//! of paying one each. Every caller is answered only after the commit holding its record (and
//! its audit event), so both are still durable before its certificate is returned. There is no artificial delay: a
//! batch is whatever queued while the previous commit ran, so a lone request commits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::domain::{
    ApiKeyId, ApiKeyRecord, AuditEvent, AuditFilter, AuditScope, CertificateRecord, DatabaseName,
    DatabaseUser, KeyType, OrgId, Organization, Page, Paged, Project, ProjectId, ProjectRole,
    Store, StoreError, StoreResult, StoredCa, UserSecurity, Username,
};

/// The most records committed in one transaction.
pub const MAX_GROUP_COMMIT: usize = 1024;
/// How many records may wait for the writer before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 8192;
/// How often the writer lets the runtime run other tasks before committing a batch that is
/// not alone: requests already past signing join this commit instead of waiting for the next.
const GATHER_YIELDS: usize = 2;

/// Group commits made by this process (all stores), for metrics.
static COMMITS: AtomicU64 = AtomicU64::new(0);
/// Certificate records written by those commits.
static RECORDS: AtomicU64 = AtomicU64::new(0);

/// Returns (commits, records) of every group-commit writer in this process.
pub fn group_commit_totals() -> (u64, u64) {
    (
        COMMITS.load(Ordering::Relaxed),
        RECORDS.load(Ordering::Relaxed),
    )
}

/// A store whose certificate inserts are group-committed; everything else is passed through.
pub struct GroupCommitStore {
    inner: Arc<dyn Store>,
    queue: mpsc::Sender<Pending>,
}

struct Pending {
    record: CertificateRecord,
    /// The audit event to store with the record (`record_certificate`), if any.
    event: Option<AuditEvent>,
    reply: oneshot::Sender<StoreResult<()>>,
}

impl GroupCommitStore {
    /// Wraps a store and starts its writer task (on the current Tokio runtime). The writer
    /// stops when the store is dropped.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(inner.clone(), pending));
        Self { inner, queue }
    }
}

impl std::fmt::Debug for GroupCommitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitStore").finish_non_exhaustive()
    }
}

/// The writer: takes whatever is queued (up to [`MAX_GROUP_COMMIT`]), commits it in one
/// transaction, answers each caller, repeats.
async fn write_batches(store: Arc<dyn Store>, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_GROUP_COMMIT);
    while pending.recv_many(&mut batch, MAX_GROUP_COMMIT).await > 0 {
        // Under load (more than one record waiting), gather the requests that are about to
        // enqueue; a lone request is committed at once.
        if batch.len() > 1 {
            for _ in 0..GATHER_YIELDS {
                tokio::task::yield_now().await;
                while batch.len() < MAX_GROUP_COMMIT {
                    match pending.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
            }
        }
        let records = batch.len();
        // Records with their audit events (issues) and plain records are written by separate
        // transactions; under normal load every record of a batch has its event.
        let (audited, plain): (Vec<_>, Vec<_>) = batch.drain(..).partition(|p| p.event.is_some());
        if !audited.is_empty() {
            COMMITS.fetch_add(1, Ordering::Relaxed);
            RECORDS.fetch_add(audited.len() as u64, Ordering::Relaxed);
            let (items, replies): (Vec<_>, Vec<_>) = audited
                .into_iter()
                .filter_map(|p| Some(((p.record, p.event?), p.reply)))
                .unzip();
            match store.record_certificates(&items).await {
                Ok(results) if results.len() == items.len() => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                // The batch failed as a whole (or answered oddly): nothing was committed.
                // Record one by one, so each caller gets the answer for its own record.
                _ => {
                    for (reply, (record, event)) in replies.into_iter().zip(&items) {
                        let _ = reply.send(store.record_certificate(record, event).await);
                    }
                }
            }
        }
        if !plain.is_empty() {
            COMMITS.fetch_add(1, Ordering::Relaxed);
            RECORDS.fetch_add(plain.len() as u64, Ordering::Relaxed);
            let (records, replies): (Vec<_>, Vec<_>) =
                plain.into_iter().map(|p| (p.record, p.reply)).unzip();
            match store.insert_certificates(&records).await {
                Ok(results) if results.len() == records.len() => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                _ => {
                    for (reply, record) in replies.into_iter().zip(&records) {
                        let _ = reply.send(store.insert_certificate(record).await);
                    }
                }
            }
        }
        tracing::trace!(records, "group commit");
    }
}

impl GroupCommitStore {
    /// Queues a record (with its audit event, if any) for the writer and waits for its commit.
    async fn enqueue(
        &self,
        record: &CertificateRecord,
        event: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            record: record.clone(),
            event: event.cloned(),
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("certificate writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("certificate writer stopped".into()))?
    }
}

#[async_trait]
impl Store for GroupCommitStore {
    async fn insert_certificate(&self, record: &CertificateRecord) -> StoreResult<()> {
        self.enqueue(record, None).await
    }

    async fn record_certificate(
        &self,
        record: &CertificateRecord,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        self.enqueue(record, Some(event)).await
    }

    async fn record_certificates(
        &self,
        items: &[(CertificateRecord, AuditEvent)],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        self.inner.record_certificates(items).await
    }

    async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        self.inner.insert_audit_event(event).await
    }

    async fn list_audit_events(
        &self,
        scope: &AuditScope,
        filter: &AuditFilter,
        page: Page,
    ) -> StoreResult<Paged<AuditEvent>> {
        self.inner.list_audit_events(scope, filter, page).await
    }

    async fn purge_audit_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.inner.purge_audit_events(before, limit).await
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.inner.meta(key).await
    }

    async fn replace_meta(&self, key: &str, expected: &str, value: &str) -> StoreResult<bool> {
        self.inner.replace_meta(key, expected, value).await
    }

    async fn sealed_ca_keys(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, Vec<u8>)>> {
        self.inner.sealed_ca_keys(after, limit).await
    }

    async fn replace_sealed_ca_key(
        &self,
        project_id: &ProjectId,
        expected: &[u8],
        sealed_key: &[u8],
    ) -> StoreResult<bool> {
        self.inner
            .replace_sealed_ca_key(project_id, expected, sealed_key)
            .await
    }

    async fn insert_certificates(
        &self,
        records: &[CertificateRecord],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        self.inner.insert_certificates(records).await
    }

    async fn put_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        self.inner.put_meta_if_absent(key, value).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
        self.inner.insert_organization(org).await
    }

    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.inner.organization(id).await
    }

    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        self.inner.insert_project(project).await
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.inner.project(id).await
    }

    async fn list_projects(
        &self,
        org_id: &OrgId,
        member: Option<&ApiKeyId>,
        page: Page,
    ) -> StoreResult<Paged<Project>> {
        self.inner.list_projects(org_id, member, page).await
    }

    async fn delete_project(&self, id: &ProjectId, now: OffsetDateTime) -> StoreResult<bool> {
        self.inner.delete_project(id, now).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.inner.insert_api_key(key).await
    }

    async fn update_api_key_secrets(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        self.inner.update_api_key_secrets(key).await
    }

    async fn api_key_by_public_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.inner.api_key_by_public_key(public_key).await
    }

    async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        self.inner.api_key(id).await
    }

    async fn list_api_keys(&self, org_id: &OrgId, page: Page) -> StoreResult<Paged<ApiKeyRecord>> {
        self.inner.list_api_keys(org_id, page).await
    }

    async fn delete_api_key(&self, org_id: &OrgId, id: &ApiKeyId) -> StoreResult<bool> {
        self.inner.delete_api_key(org_id, id).await
    }

    async fn set_api_key_project_roles(
        &self,
        id: &ApiKeyId,
        project_id: &ProjectId,
        roles: &[ProjectRole],
    ) -> StoreResult<()> {
        self.inner
            .set_api_key_project_roles(id, project_id, roles)
            .await
    }

    async fn any_api_key(&self) -> StoreResult<bool> {
        self.inner.any_api_key().await
    }

    async fn insert_database_user(&self, user: &DatabaseUser) -> StoreResult<()> {
        self.inner.insert_database_user(user).await
    }

    async fn database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<Option<DatabaseUser>> {
        self.inner
            .database_user(project_id, database_name, username)
            .await
    }

    async fn list_database_users(
        &self,
        project_id: &ProjectId,
        page: Page,
    ) -> StoreResult<Paged<DatabaseUser>> {
        self.inner.list_database_users(project_id, page).await
    }

    async fn update_database_user(&self, user: &DatabaseUser) -> StoreResult<bool> {
        self.inner.update_database_user(user).await
    }

    async fn delete_database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<bool> {
        self.inner
            .delete_database_user(project_id, database_name, username)
            .await
    }

    async fn user_security(&self, project_id: &ProjectId) -> StoreResult<UserSecurity> {
        self.inner.user_security(project_id).await
    }

    async fn set_customer_ca(&self, project_id: &ProjectId, pem: Option<&str>) -> StoreResult<()> {
        self.inner.set_customer_ca(project_id, pem).await
    }

    async fn set_ca_key_type(
        &self,
        project_id: &ProjectId,
        key_type: KeyType,
    ) -> StoreResult<bool> {
        self.inner.set_ca_key_type(project_id, key_type).await
    }

    async fn project_ca(&self, project_id: &ProjectId) -> StoreResult<Option<StoredCa>> {
        self.inner.project_ca(project_id).await
    }

    async fn insert_project_ca(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        created: OffsetDateTime,
    ) -> StoreResult<()> {
        self.inner.insert_project_ca(project_id, ca, created).await
    }

    async fn insert_project_ca_of_type(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.inner
            .insert_project_ca_of_type(project_id, ca, key_type, created)
            .await
    }

    async fn list_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
        page: Page,
    ) -> StoreResult<Paged<CertificateRecord>> {
        self.inner
            .list_certificates(project_id, username, now, page)
            .await
    }

    async fn count_unexpired_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        self.inner
            .count_unexpired_certificates(project_id, username, now)
            .await
    }

    async fn record_nonce_use(
        &self,
        nonce: &str,
        nc: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.inner.record_nonce_use(nonce, nc, expires_at).await
    }

    async fn purge_nonce_uses(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.inner.purge_nonce_uses(now).await
    }
}
