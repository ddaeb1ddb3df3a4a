//! A short-lived in-process read cache in front of the store, for the lookups every request
//! makes: the API key (authentication), the project, its X.509 settings, the database user, and
//! a user's count of unexpired certificates (the per-user limit).
//!
//! Staleness bound: an entry is used for at most the TTL (`--cache-ttl`, default 1 s) after it
//! was read. Writes made through this process invalidate the entries they touch at once (a
//! deleted key, a changed role, a deleted user or project, a customer CA take effect for the
//! next request here); writes made by another replica take effect here within the TTL. A
//! user's certificate count is kept current by this process's own inserts and may lag other
//! replicas' inserts by the TTL (it never undercounts this replica's). A TTL of 0 disables the
//! cache. Only found records are cached, never "not found".

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{
    ApiKeyId, ApiKeyRecord, AuditEvent, AuditFilter, AuditScope, CertificateRecord, DatabaseName,
    DatabaseUser, KeyType, OrgId, Organization, Page, Paged, Project, ProjectId, ProjectRole,
    Store, StoreResult, StoredCa, UserSecurity, Username,
};

/// The most entries one cache holds; past it, the cache is emptied (a crude but bounded policy).
const MAX_ENTRIES: usize = 100_000;

/// The store behind a read cache with a bounded staleness.
pub struct CachingStore {
    inner: Arc<dyn Store>,
    api_keys: TtlCache<String, ApiKeyRecord>,
    projects: TtlCache<ProjectId, Project>,
    security: TtlCache<ProjectId, UserSecurity>,
    users: TtlCache<(ProjectId, &'static str, Username), DatabaseUser>,
    certificate_counts: TtlCache<(ProjectId, String), u64>,
}

impl CachingStore {
    /// Puts a cache with entries living `ttl` in front of `inner`.
    pub fn new(inner: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            inner,
            api_keys: TtlCache::new(ttl),
            projects: TtlCache::new(ttl),
            security: TtlCache::new(ttl),
            users: TtlCache::new(ttl),
            certificate_counts: TtlCache::new(ttl),
        }
    }

    fn forget_project(&self, id: &ProjectId) {
        self.projects.remove(id);
        self.security.remove(id);
        self.users.clear();
        self.api_keys.clear();
        self.certificate_counts.clear();
    }
}

impl std::fmt::Debug for CachingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingStore")
            .field("ttl", &self.projects.ttl)
            .finish_non_exhaustive()
    }
}

/// A map whose entries expire `ttl` after insertion.
struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // Every critical section is a single map operation: a panic cannot leave it half-done.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.lock();
        let (at, value) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Inserts a value read at `at` (before the read started, so its age is not understated).
    fn insert_read_at(&self, key: K, value: V, at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (at, value));
    }

    fn update(&self, key: &K, f: impl FnOnce(&mut V)) {
        if let Some((_, value)) = self.lock().get_mut(key) {
            f(value);
        }
    }

    fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

#[async_trait]
impl Store for CachingStore {
    // --- cached reads ---

    async fn api_key_by_public_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
        if let Some(record) = self.api_keys.get(&public_key.to_owned()) {
            return Ok(Some(record));
        }
        let at = Instant::now();
        let record = self.inner.api_key_by_public_key(public_key).await?;
        if let Some(record) = &record {
            self.api_keys
                .insert_read_at(public_key.to_owned(), record.clone(), at);
        }
        Ok(record)
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        if let Some(project) = self.projects.get(id) {
            return Ok(Some(project));
        }
        let at = Instant::now();
        let project = self.inner.project(id).await?;
        if let Some(project) = &project {
            self.projects
                .insert_read_at(id.clone(), project.clone(), at);
        }
        Ok(project)
    }

    async fn user_security(&self, project_id: &ProjectId) -> StoreResult<UserSecurity> {
        if let Some(security) = self.security.get(project_id) {
            return Ok(security);
        }
        let at = Instant::now();
        let security = self.inner.user_security(project_id).await?;
        self.security
            .insert_read_at(project_id.clone(), security.clone(), at);
        Ok(security)
    }

    async fn database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<Option<DatabaseUser>> {
        let key = (project_id.clone(), database_name.as_str(), username.clone());
        if let Some(user) = self.users.get(&key) {
            return Ok(Some(user));
        }
        let at = Instant::now();
        let user = self
            .inner
            .database_user(project_id, database_name, username)
            .await?;
        if let Some(user) = &user {
            self.users.insert_read_at(key, user.clone(), at);
        }
        Ok(user)
    }

    async fn count_unexpired_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        // Certificates expiring within the TTL are still counted: the cache only overcounts.
        let key = (project_id.clone(), username.to_owned());
        if let Some(count) = self.certificate_counts.get(&key) {
            return Ok(count);
        }
        let at = Instant::now();
        let count = self
            .inner
            .count_unexpired_certificates(project_id, username, now)
            .await?;
        self.certificate_counts.insert_read_at(key, count, at);
        Ok(count)
    }

    // --- writes that invalidate ---

    async fn insert_certificate(&self, record: &CertificateRecord) -> StoreResult<()> {
        self.inner.insert_certificate(record).await?;
        self.count_inserted(std::slice::from_ref(record));
        Ok(())
    }

    async fn insert_certificates(
        &self,
        records: &[CertificateRecord],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        let results = self.inner.insert_certificates(records).await?;
        let inserted: Vec<CertificateRecord> = records
            .iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|(record, _)| record.clone())
            .collect();
        self.count_inserted(&inserted);
        Ok(results)
    }

    async fn record_certificate(
        &self,
        record: &CertificateRecord,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        self.inner.record_certificate(record, event).await?;
        self.count_inserted(std::slice::from_ref(record));
        Ok(())
    }

    async fn record_certificates(
        &self,
        items: &[(CertificateRecord, AuditEvent)],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        let results = self.inner.record_certificates(items).await?;
        let inserted: Vec<CertificateRecord> = items
            .iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|((record, _), _)| record.clone())
            .collect();
        self.count_inserted(&inserted);
        Ok(results)
    }

    async fn replace_sealed_ca_key(
        &self,
        project_id: &ProjectId,
        expected: &[u8],
        sealed_key: &[u8],
    ) -> StoreResult<bool> {
        // CAs are not cached here; the X.509 settings are dropped so nothing read before the
        // re-sealing outlives it.
        let result = self
            .inner
            .replace_sealed_ca_key(project_id, expected, sealed_key)
            .await;
        self.security.remove(project_id);
        result
    }

    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        self.forget_project(&project.id);
        self.inner.insert_project(project).await
    }

    async fn delete_project(&self, id: &ProjectId, now: OffsetDateTime) -> StoreResult<bool> {
        let result = self.inner.delete_project(id, now).await;
        self.forget_project(id);
        result
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let result = self.inner.insert_api_key(key).await;
        self.api_keys.clear();
        result
    }

    async fn update_api_key_secrets(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        let result = self.inner.update_api_key_secrets(key).await;
        self.api_keys.clear();
        result
    }

    async fn delete_api_key(&self, org_id: &OrgId, id: &ApiKeyId) -> StoreResult<bool> {
        let result = self.inner.delete_api_key(org_id, id).await;
        self.api_keys.clear();
        result
    }

    async fn set_api_key_project_roles(
        &self,
        id: &ApiKeyId,
        project_id: &ProjectId,
        roles: &[ProjectRole],
    ) -> StoreResult<()> {
        let result = self
            .inner
            .set_api_key_project_roles(id, project_id, roles)
            .await;
        self.api_keys.clear();
        result
    }

    async fn insert_database_user(&self, user: &DatabaseUser) -> StoreResult<()> {
        let result = self.inner.insert_database_user(user).await;
        self.users.clear();
        result
    }

    async fn update_database_user(&self, user: &DatabaseUser) -> StoreResult<bool> {
        let result = self.inner.update_database_user(user).await;
        self.users.clear();
        result
    }

    async fn delete_database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<bool> {
        let result = self
            .inner
            .delete_database_user(project_id, database_name, username)
            .await;
        self.users.clear();
        result
    }

    async fn set_customer_ca(&self, project_id: &ProjectId, pem: Option<&str>) -> StoreResult<()> {
        let result = self.inner.set_customer_ca(project_id, pem).await;
        self.security.remove(project_id);
        result
    }

    async fn set_ca_key_type(
        &self,
        project_id: &ProjectId,
        key_type: KeyType,
    ) -> StoreResult<bool> {
        let result = self.inner.set_ca_key_type(project_id, key_type).await;
        self.security.remove(project_id);
        result
    }

    async fn insert_project_ca(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        created: OffsetDateTime,
    ) -> StoreResult<()> {
        let result = self.inner.insert_project_ca(project_id, ca, created).await;
        self.security.remove(project_id);
        result
    }

    async fn insert_project_ca_of_type(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
    ) -> StoreResult<bool> {
        // Also when the setting changed under us (`Ok(false)`): the next read must see it.
        let result = self
            .inner
            .insert_project_ca_of_type(project_id, ca, key_type, created)
            .await;
        self.security.remove(project_id);
        result
    }

    // --- passed through ---

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

    async fn list_projects(
        &self,
        org_id: &OrgId,
        member: Option<&ApiKeyId>,
        page: Page,
    ) -> StoreResult<Paged<Project>> {
        self.inner.list_projects(org_id, member, page).await
    }

    async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        self.inner.api_key(id).await
    }

    async fn list_api_keys(&self, org_id: &OrgId, page: Page) -> StoreResult<Paged<ApiKeyRecord>> {
        self.inner.list_api_keys(org_id, page).await
    }

    async fn any_api_key(&self) -> StoreResult<bool> {
        self.inner.any_api_key().await
    }

    async fn list_database_users(
        &self,
        project_id: &ProjectId,
        page: Page,
    ) -> StoreResult<Paged<DatabaseUser>> {
        self.inner.list_database_users(project_id, page).await
    }

    async fn project_ca(&self, project_id: &ProjectId) -> StoreResult<Option<StoredCa>> {
        self.inner.project_ca(project_id).await
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

impl CachingStore {
    fn count_inserted(&self, records: &[CertificateRecord]) {
        for record in records {
            let key = (record.project_id.clone(), record.username.clone());
            self.certificate_counts.update(&key, |count| *count += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_zero_ttl_disables() {
        let cache = TtlCache::new(Duration::from_millis(30));
        cache.insert_read_at(1, "a", Instant::now());
        assert_eq!(cache.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&1), None);
        let off = TtlCache::new(Duration::ZERO);
        off.insert_read_at(1, "a", Instant::now());
        assert_eq!(off.get(&1), None);
    }
}
