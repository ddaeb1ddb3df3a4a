//! The storage port: what the service core needs from a database, one trait per aggregate
//! ([`MetaStore`], [`ProjectStore`], [`ApiKeyStore`], [`DatabaseUserStore`],
//! [`UserSecurityStore`], [`CertificateStore`], [`AuditStore`], [`NonceStore`]) and [`Store`],
//! all of them together, which the core holds. `crate::storage` implements them for SQLite and
//! PostgreSQL, one module per aggregate; one conformance suite (`tests/integration/storage_conformance.rs`)
//! holds both to the same behaviour.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::audit::{AuditEvent, AuditFilter, AuditScope};
use super::key_type::KeyType;
use super::model::{
    ApiKeyId, CertificateRecord, DatabaseName, DatabaseUser, OrgId, OrgRole, Organization, Page,
    Paged, Project, ProjectId, ProjectRole, UserSecurity, Username,
};

/// Failures of a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("record already exists")]
    Conflict,
    /// The database cannot be reached; the call may be retried.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The certificate's user already holds the most unexpired certificates its limit allows
    /// ([`CertificateStore::record_certificate`]); nothing was stored.
    #[error("certificate limit reached")]
    LimitReached,
    /// Any other database failure.
    #[error("store failure")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The result type of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// An API key as stored: never the private key itself, only the digest HA1 values
/// (`H(publicKey:realm:privateKey)`), which verify both HTTP Digest and Basic credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's id.
    pub id: ApiKeyId,
    /// The owning organization.
    pub org_id: OrgId,
    /// The public key (the digest username).
    pub public_key: String,
    /// The description.
    pub desc: String,
    /// MD5 HA1, lowercase hex.
    pub ha1_md5: String,
    /// SHA-256 HA1, lowercase hex.
    pub ha1_sha256: String,
    /// Organization roles.
    pub org_roles: Vec<OrgRole>,
    /// Project roles.
    pub project_roles: Vec<(ProjectId, ProjectRole)>,
    /// When it was created.
    pub created: OffsetDateTime,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            id,
            org_id,
            public_key,
            desc,
            ha1_md5: _,
            ha1_sha256: _,
            org_roles,
            project_roles,
            created,
        } = self;
        f.debug_struct("ApiKeyRecord")
            .field("id", id)
            .field("org_id", org_id)
            .field("public_key", public_key)
            .field("desc", desc)
            .field("org_roles", org_roles)
            .field("project_roles", project_roles)
            .field("created", created)
            .finish_non_exhaustive()
    }
}

/// A project CA as stored.
#[derive(Clone, Debug)]
pub struct StoredCa {
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// The CA private key sealed under the master key; `None` once the project is deleted.
    pub sealed_key: Option<Vec<u8>>,
}

/// The per-user limit a new certificate must fit (`--max-certificates-per-user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateLimit {
    /// The most certificates of the user (same project and username) that may be unexpired
    /// at `now`, the new one included.
    pub max: u64,
    /// When the user's certificates are counted: those whose `not_after` is later are held.
    pub now: OffsetDateTime,
}

/// An issued certificate to record: its record, its audit event and its user's limit.
#[derive(Clone, Debug)]
pub struct NewCertificate {
    /// The certificate record.
    pub record: CertificateRecord,
    /// Its `MONGODB_USER_X509_CERT_CREATED` event, stored with it or not at all.
    pub event: AuditEvent,
    /// The limit it must fit.
    pub limit: CertificateLimit,
}

/// The storage port of the service core: every aggregate's trait. Implemented for anything that
/// implements them all.
pub trait Store:
    MetaStore
    + ProjectStore
    + ApiKeyStore
    + DatabaseUserStore
    + UserSecurityStore
    + CertificateStore
    + AuditStore
    + NonceStore
{
}

impl<T> Store for T where
    T: MetaStore
        + ProjectStore
        + ApiKeyStore
        + DatabaseUserStore
        + UserSecurityStore
        + CertificateStore
        + AuditStore
        + NonceStore
{
}

/// Key-value settings of the service itself, and the health check.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Stores `value` under `key` unless a value is there; returns the value now stored.
    async fn put_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;

    /// Returns the value stored under `key`.
    async fn meta(&self, key: &str) -> StoreResult<Option<String>>;

    /// Replaces the value under `key` if it still is `expected`; returns whether it did.
    async fn replace_meta(&self, key: &str, expected: &str, value: &str) -> StoreResult<bool>;

    /// Checks that the database answers (for health).
    async fn ping(&self) -> StoreResult<()>;
}

/// Organizations and their projects.
#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    /// Inserts an organization.
    async fn insert_organization(&self, org: &Organization) -> StoreResult<()>;
    /// Returns an organization.
    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>>;

    /// Inserts a project; `Conflict` when its organization has a live project of that name.
    async fn insert_project(&self, project: &Project) -> StoreResult<()>;
    /// Returns a live (not deleted) project.
    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;
    /// Lists an organization's live projects, oldest first; with `member`, only the projects
    /// that key holds a role on.
    async fn list_projects(
        &self,
        org_id: &OrgId,
        member: Option<&ApiKeyId>,
        page: Page,
    ) -> StoreResult<Paged<Project>>;
    /// Deletes a project with its users, settings and API key roles; its CA key is destroyed,
    /// its CA certificate and certificate records are kept. Returns whether it existed.
    async fn delete_project(&self, id: &ProjectId, now: OffsetDateTime) -> StoreResult<bool>;
}

/// API keys and their project roles.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Inserts an API key; `Conflict` when the public key is taken.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Replaces the secrets and organization roles of a key found by public key (bootstrap).
    async fn update_api_key_secrets(&self, key: &ApiKeyRecord) -> StoreResult<bool>;
    /// Returns a key by public key.
    async fn api_key_by_public_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Returns a key by id.
    async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>>;
    /// Lists an organization's keys, oldest first.
    async fn list_api_keys(&self, org_id: &OrgId, page: Page) -> StoreResult<Paged<ApiKeyRecord>>;
    /// Deletes a key of an organization. Returns whether it existed.
    async fn delete_api_key(&self, org_id: &OrgId, id: &ApiKeyId) -> StoreResult<bool>;
    /// Replaces a key's roles on one project (empty removes it from the project).
    async fn set_api_key_project_roles(
        &self,
        id: &ApiKeyId,
        project_id: &ProjectId,
        roles: &[ProjectRole],
    ) -> StoreResult<()>;
    /// Whether any API key exists.
    async fn any_api_key(&self) -> StoreResult<bool>;
}

/// Database users of projects.
#[async_trait]
pub trait DatabaseUserStore: Send + Sync + 'static {
    /// Inserts a user; `Conflict` when (project, database, username) exists.
    async fn insert_database_user(&self, user: &DatabaseUser) -> StoreResult<()>;
    /// Returns a user.
    async fn database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<Option<DatabaseUser>>;
    /// Lists a project's users by username.
    async fn list_database_users(
        &self,
        project_id: &ProjectId,
        page: Page,
    ) -> StoreResult<Paged<DatabaseUser>>;
    /// Replaces a user's x509Type and roles. Returns whether it existed.
    async fn update_database_user(&self, user: &DatabaseUser) -> StoreResult<bool>;
    /// Deletes a user. Returns whether it existed.
    async fn delete_database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<bool>;
}

/// A project's X.509 settings.
#[async_trait]
pub trait UserSecurityStore: Send + Sync + 'static {
    /// Returns a project's X.509 settings.
    async fn user_security(&self, project_id: &ProjectId) -> StoreResult<UserSecurity>;
    /// Sets or clears the customer CA.
    async fn set_customer_ca(&self, project_id: &ProjectId, pem: Option<&str>) -> StoreResult<()>;
    /// Sets the key type of the project's future CA; `false` (nothing changed) once the CA
    /// exists (or is being created with the current type) or the project is gone.
    async fn set_ca_key_type(&self, project_id: &ProjectId, key_type: KeyType)
    -> StoreResult<bool>;
}

/// Project CAs and the records of the certificates they issued.
#[async_trait]
pub trait CertificateStore: Send + Sync + 'static {
    /// Returns a project's CA.
    async fn project_ca(&self, project_id: &ProjectId) -> StoreResult<Option<StoredCa>>;
    /// Inserts a project's CA of the given key type, fixing the project's CA key type setting
    /// in the same transaction. `Ok(false)` (nothing inserted) when the setting is no longer
    /// `key_type` (it was changed meanwhile); `Conflict` when the project has a CA (another
    /// replica won).
    async fn insert_project_ca_of_type(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Lists up to `limit` sealed CA keys (projects whose key was not destroyed) with project
    /// ids after `after`, ordered by project id: a master key rotation walks them all.
    async fn sealed_ca_keys(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, Vec<u8>)>>;
    /// Lists up to `limit` project CA certificates (DER) with project ids after `after`,
    /// ordered by project id, those of deleted projects included (their certificates may still
    /// be valid): the client-CA check walks them all.
    async fn project_ca_certificates(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, Vec<u8>)>>;
    /// Replaces a project's sealed CA key if it still is `expected`; returns whether it did.
    async fn replace_sealed_ca_key(
        &self,
        project_id: &ProjectId,
        expected: &[u8],
        sealed_key: &[u8],
    ) -> StoreResult<bool>;
    /// Lists a user's certificates unexpired at `now`, oldest first.
    async fn list_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
        page: Page,
    ) -> StoreResult<Paged<CertificateRecord>>;
    /// Counts a user's certificates unexpired at `now`. A cached answer may lag what other
    /// replicas recorded; the limit itself is enforced by [`Self::record_certificate`].
    async fn count_unexpired_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// Counts every project's certificates unexpired at `now` that expire by `until` (for the
    /// expiry metrics; a range over `not_after`, read from an index).
    async fn count_certificates_expiring(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// Records an issued certificate and its audit event in one transaction, so neither is
    /// stored without the other, if it fits its user's limit. The limit is checked in that
    /// transaction, serialised with every other record of the user (on any replica), so
    /// concurrent records never take a user past it. `Conflict` when the serial is taken for
    /// the CA; `LimitReached` when the user already holds `limit.max` certificates unexpired at
    /// `limit.now`.
    async fn record_certificate(&self, certificate: &NewCertificate) -> StoreResult<()>;
    /// Records several issued certificates, each with its audit event, in one transaction where
    /// the backend can (one commit for all). Each gets its own result: `Conflict` when its
    /// serial is taken, `LimitReached` when its user's limit is reached (the batch's
    /// certificates of one user are admitted in order), and then its event is not stored
    /// either. The outer error means nothing was recorded.
    async fn record_certificates(
        &self,
        items: &[NewCertificate],
    ) -> StoreResult<Vec<StoreResult<()>>>;
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Stores an audit event.
    async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Lists the audit events of a scope that pass `filter`, newest first (as Atlas lists
    /// events; ties by id, descending).
    async fn list_audit_events(
        &self,
        scope: &AuditScope,
        filter: &AuditFilter,
        page: Page,
    ) -> StoreResult<Paged<AuditEvent>>;
    /// Returns the audit event of that id, whatever its scope.
    async fn audit_event(&self, id: &str) -> StoreResult<Option<AuditEvent>>;
    /// Deletes up to `limit` audit events that happened before `before`, oldest first, with
    /// statements whose cost is bounded by `limit`, not by the backlog (no long transaction or
    /// lock); returns how many it deleted. Safe to run concurrently (replicas): an event is
    /// deleted once. Certificate records are untouched.
    async fn purge_audit_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// Uses of HTTP Digest nonces, shared by all replicas.
#[async_trait]
pub trait NonceStore: Send + Sync + 'static {
    /// Records the use of a (nonce, nonce count) pair; false when it was used before (a
    /// replay). Shared by all replicas, so a nonce can be used on any of them.
    async fn record_nonce_use(
        &self,
        nonce: &str,
        nc: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Forgets nonce uses that expired before `now`.
    async fn purge_nonce_uses(&self, now: OffsetDateTime) -> StoreResult<u64>;
}
