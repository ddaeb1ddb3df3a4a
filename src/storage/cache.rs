//! A short-lived in-process read cache inside the store, for the lookups every request makes:
//! the API key and its access list (authentication), the project, its X.509 settings and issuing CA generation, the
//! database user, and a user's count of unexpired certificates (the per-user limit). The store methods of those
//! reads consult it ([`TtlCache::get_or_read`]); the writes that change what it holds clear the
//! entries they touch, in the same methods.
//!
//! Staleness bound: an entry is used for at most the TTL (`--cache-ttl`, default 1 s) after it
//! was read. Writes made through this process invalidate the entries they touch at once (a
//! deleted key, a changed role, a deleted user or project, a customer CA take effect for the
//! next request here); writes made by another replica take effect here within the TTL. A
//! user's certificate count is kept current by this process's own inserts and may lag other
//! replicas' inserts by the TTL (it never undercounts this replica's); it only refuses an issue
//! early, before a key is spent: the limit itself is enforced where the certificate is recorded
//! (`certificate_limit.rs`), and a refusal there sets the cached count to the limit. A TTL of 0
//! disables the cache. Found records are cached, and "not found" only for API keys (of the
//! public-key shape): authentication must take the same path for a key that does not exist as
//! for one that does, so timing does not tell them apart. A key created through another replica
//! is thus known here within the TTL, as any other change of theirs.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{
    AccessListItem, ApiKeyRecord, CertificateRecord, DatabaseUser, NewCertificate, Project,
    ProjectId, StoreResult, UserSecurity, Username,
};

/// The most entries one cache holds; past it, the cache is emptied (a crude but bounded policy).
const MAX_ENTRIES: usize = 100_000;

/// The cached reads of a store, each with the same TTL.
pub(super) struct ReadCache {
    /// API keys by public key; `None`: no such key.
    pub(super) api_keys: TtlCache<String, Option<ApiKeyRecord>>,
    /// API key access lists by key id (empty: no restriction).
    pub(super) access_lists: TtlCache<String, Vec<AccessListItem>>,
    /// Live projects by id.
    pub(super) projects: TtlCache<ProjectId, Project>,
    /// X.509 settings by project.
    pub(super) security: TtlCache<ProjectId, UserSecurity>,
    /// Database users by (project, database name, username).
    pub(super) users: TtlCache<(ProjectId, &'static str, Username), DatabaseUser>,
    /// Unexpired certificates by (project, username).
    pub(super) certificate_counts: TtlCache<(ProjectId, String), u64>,
    /// The generation of each project's issuing CA (a rotation on another replica is seen
    /// within the TTL; one here at once).
    pub(super) ca_generations: TtlCache<ProjectId, u32>,
}

impl ReadCache {
    /// A cache whose entries live `ttl`; zero caches nothing.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            api_keys: TtlCache::new(ttl),
            access_lists: TtlCache::new(ttl),
            projects: TtlCache::new(ttl),
            security: TtlCache::new(ttl),
            users: TtlCache::new(ttl),
            certificate_counts: TtlCache::new(ttl),
            ca_generations: TtlCache::new(ttl),
        }
    }

    /// Forgets everything read about a project (created or deleted): its settings, and users,
    /// keys and counts, which may hold it.
    pub(super) fn forget_project(&self, id: &ProjectId) {
        self.projects.remove(id);
        self.security.remove(id);
        self.ca_generations.remove(id);
        self.users.clear();
        self.api_keys.clear();
        self.certificate_counts.clear();
    }

    /// Notes that a certificate was refused at its user's limit: until the TTL passes, the
    /// user's count is taken as at least the limit, so the next issues are refused before
    /// signing (another replica's certificates may have filled the limit).
    pub(super) fn count_full(&self, refused: &NewCertificate) {
        if self.certificate_counts.is_disabled() {
            return;
        }
        let key = (
            refused.record.project_id.clone(),
            refused.record.username.clone(),
        );
        let at_least = refused.limit.max;
        self.certificate_counts
            .insert_read_at(key, at_least, Instant::now());
    }

    /// Counts certificates just recorded in their users' cached counts.
    pub(super) fn count_inserted<'a>(
        &self,
        records: impl IntoIterator<Item = &'a CertificateRecord>,
    ) {
        if self.certificate_counts.is_disabled() {
            return;
        }
        for record in records {
            let key = (record.project_id.clone(), record.username.clone());
            self.certificate_counts.update(&key, |count| *count += 1);
        }
    }
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("ttl", &self.projects.ttl)
            .finish_non_exhaustive()
    }
}

/// A map whose entries expire `ttl` after they were read from the database.
pub(super) struct TtlCache<K, V> {
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

    /// Returns the entry of `key` if it is younger than the TTL; otherwise reads it with `read`
    /// and caches it if it was found.
    pub(super) async fn get_or_read<Q, F, Fut>(&self, key: &Q, read: F) -> StoreResult<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<V>>>,
    {
        if let Some(value) = self.get_at(key, Instant::now()) {
            return Ok(Some(value));
        }
        // Taken before the read starts, so the entry's age is not understated.
        let at = Instant::now();
        let value = read().await?;
        if let Some(value) = &value {
            self.insert_read_at(key.to_owned(), value.clone(), at);
        }
        Ok(value)
    }

    /// As [`Self::get_or_read`], for a read that always has a value (a default, a count).
    pub(super) async fn get_or_read_value<Q, F, Fut>(&self, key: &Q, read: F) -> StoreResult<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<V>>,
    {
        if let Some(value) = self.get_at(key, Instant::now()) {
            return Ok(value);
        }
        let at = Instant::now();
        let value = read().await?;
        self.insert_read_at(key.to_owned(), value.clone(), at);
        Ok(value)
    }

    /// Whether the TTL is zero: nothing is cached.
    pub(super) fn is_disabled(&self) -> bool {
        self.ttl.is_zero()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // Every critical section is a single map operation: a panic cannot leave it half-done.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the entry of `key` if it is younger than the TTL at `now`.
    fn get_at<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.lock();
        let (at, value) = entries.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| value.clone())
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

    /// Changes the entry of `key`, if there is one, in place (its age is kept).
    pub(super) fn update(&self, key: &K, f: impl FnOnce(&mut V)) {
        if let Some((_, value)) = self.lock().get_mut(key) {
            f(value);
        }
    }

    /// Forgets the entry of `key`.
    pub(super) fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets every entry.
    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_zero_ttl_disables() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let cache = TtlCache::new(ms(30));
        cache.insert_read_at(1, "a", t0);
        assert_eq!(cache.get_at(&1, t0), Some("a"));
        assert_eq!(
            cache.get_at(&1, t0 + ms(29)),
            Some("a"),
            "younger than the TTL"
        );
        assert_eq!(cache.get_at(&1, t0 + ms(30)), None, "as old as the TTL");
        assert_eq!(cache.get_at(&1, t0 + ms(40)), None);
        assert_eq!(cache.get_at(&2, t0), None, "never read");
        let off = TtlCache::new(Duration::ZERO);
        off.insert_read_at(1, "a", t0);
        assert_eq!(off.get_at(&1, t0), None);
    }
}
