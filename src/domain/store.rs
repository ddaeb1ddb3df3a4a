//! The storage port: what the service core needs from a database, one trait per aggregate
//! ([`MetaStore`], [`ProjectStore`], [`ApiKeyStore`], [`DatabaseUserStore`],
//! [`UserSecurityStore`], [`CertificateStore`], [`RevocationStore`] (in `revocation.rs`),
//! [`AuditStore`], [`NonceStore`]) and [`Store`],
//! all of them together, which the core holds. `crate::storage` implements them for SQLite and
//! PostgreSQL, one module per aggregate; one conformance suite (`tests/integration/storage_conformance.rs`)
//! holds both to the same behaviour.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::access_list::{AccessListAdd, AccessListEntry, AccessListItem};
use super::audit::{AuditEvent, AuditFilter, AuditScope};
use super::key_type::KeyType;
use super::model::{
    ApiKeyId, CertificateRecord, DatabaseName, DatabaseUser, OrgId, OrgRole, Organization, Page,
    Paged, Project, ProjectId, ProjectRole, UserSecurity, Username,
};
use super::revocation::RevocationStore;

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
    /// The certificate's database user was deleted before it was recorded
    /// ([`NewCertificate::user_must_exist`]); nothing was stored.
    #[error("database user gone")]
    UserGone,
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

/// A project CA as stored: one generation of the project's CAs.
#[derive(Clone, Debug)]
pub struct StoredCa {
    /// Which of the project's CAs it is: 1 is the project's first, each rotation adds one; the
    /// highest is the issuing CA.
    pub generation: u32,
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
    /// Whether its user must still exist on `$external` when it is recorded: checked in the
    /// recording transaction after the user's count row is locked, the lock a user's deletion
    /// (which revokes the user's certificates) also takes, so a certificate issued while its
    /// user is deleted is either revoked by the deletion or refused here (`UserGone`), never
    /// left valid for a re-created user of that name. The core always sets it.
    pub user_must_exist: bool,
}

/// The storage port of the service core: every aggregate's trait. Implemented for anything that
/// implements them all.
pub trait Store:
    MetaStore
    + ProjectStore
    + ApiKeyStore
    + DatabaseUserStore
    + UserSecurityStore
    + ProjectCaStore
    + CertificateStore
    + RevocationStore
    + AuditStore
    + NonceStore
    + CrlStore
{
}

impl<T> Store for T where
    T: MetaStore
        + ProjectStore
        + ApiKeyStore
        + DatabaseUserStore
        + UserSecurityStore
        + ProjectCaStore
        + CertificateStore
        + RevocationStore
        + AuditStore
        + NonceStore
        + CrlStore
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
    /// Returns a live (not deleted) organization.
    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>>;

    /// Renames a live organization. Returns whether it existed.
    async fn rename_organization(&self, id: &OrgId, name: &str) -> StoreResult<bool>;
    /// Marks a live organization deleted and deletes its API keys, in one transaction;
    /// `Conflict` (and nothing changed) while it has live projects. Returns whether it existed.
    async fn delete_organization(&self, id: &OrgId, now: OffsetDateTime) -> StoreResult<bool>;

    /// Inserts a project; `Conflict` when its organization has a live project of that name.
    async fn insert_project(&self, project: &Project) -> StoreResult<()>;
    /// Returns a live (not deleted) project.
    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;
    /// Returns an organization's live project of that name (names are unique among them).
    async fn project_by_name(&self, org_id: &OrgId, name: &str) -> StoreResult<Option<Project>>;
    /// Renames a live project; `Conflict` when its organization has another live project of
    /// that name. Returns whether the project existed.
    async fn rename_project(&self, id: &ProjectId, name: &str) -> StoreResult<bool>;
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
    /// Inserts an API key with its project roles, in one transaction; `Conflict` when the
    /// public key is taken.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Changes a key's description and/or organization roles (`None` leaves it). Returns
    /// whether the organization has the key.
    async fn update_api_key(
        &self,
        org_id: &OrgId,
        id: &ApiKeyId,
        desc: Option<&str>,
        org_roles: Option<&[OrgRole]>,
    ) -> StoreResult<bool>;
    /// Lists the keys holding a role on a project, oldest first.
    async fn list_project_api_keys(
        &self,
        project_id: &ProjectId,
        page: Page,
    ) -> StoreResult<Paged<ApiKeyRecord>>;
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
    /// A key's access list, oldest first (through the read cache: authentication reads it).
    async fn api_key_access_list(&self, id: &ApiKeyId) -> StoreResult<Vec<AccessListItem>>;
    /// Adds entries to the access list of an organization's key, in one transaction that
    /// holds the key's row, so concurrent adds cannot pass `max` entries together.
    async fn add_api_key_access_list(
        &self,
        org_id: &OrgId,
        id: &ApiKeyId,
        entries: &[AccessListEntry],
        now: OffsetDateTime,
        max: usize,
    ) -> StoreResult<AccessListAdd>;
    /// Removes one entry from a key's access list. Returns whether it was there.
    async fn delete_api_key_access_list_entry(
        &self,
        id: &ApiKeyId,
        entry: &AccessListEntry,
    ) -> StoreResult<bool>;
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
    /// Replaces a user's x509Type, roles and attributes. Returns whether it existed.
    async fn update_database_user(&self, user: &DatabaseUser) -> StoreResult<bool>;
    /// Deletes a user. Returns whether it existed.
    async fn delete_database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<bool>;
    /// Returns up to `limit` users whose deleteAfterDate is at or before `now`, earliest first.
    async fn due_database_users(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<DatabaseUser>>;
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

/// Every CA a project has had (its generations), the issuing one being the newest.
///
/// Lists are ordered newest generation first, so the issuing CA comes first.
#[async_trait]
pub trait ProjectCaStore: Send + Sync + 'static {
    /// Returns a project's issuing CA (its newest generation).
    async fn project_ca(&self, project_id: &ProjectId) -> StoreResult<Option<StoredCa>>;
    /// Returns the generation of a project's issuing CA: one indexed read, for a cached CA to
    /// see a rotation made by another replica.
    async fn project_ca_generation(&self, project_id: &ProjectId) -> StoreResult<Option<u32>>;
    /// Lists every CA of a project, newest generation (the issuing CA) first, with their
    /// certificates and sealed keys (`None` once the project is deleted).
    async fn project_cas(&self, project_id: &ProjectId) -> StoreResult<Vec<StoredCa>>;
    /// Lists the project's trust bundle at `now`, newest generation first: the issuing CA, and
    /// each older CA that signed a certificate still unexpired at `now` and not revoked.
    async fn trusted_project_cas(
        &self,
        project_id: &ProjectId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<StoredCa>>;
    /// Inserts a project's first CA (`ca.generation` is 1) of the given key type, fixing the
    /// project's CA key type setting in the same transaction. `Ok(false)` (nothing inserted)
    /// when the setting is no longer `key_type` (it was changed meanwhile); `Conflict` when the
    /// project has a CA (another replica won).
    async fn insert_project_ca_of_type(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Makes `ca` the project's issuing CA, in one transaction with its audit event and the
    /// project's CA key type setting (`key_type`), if the issuing generation still is
    /// `ca.generation - 1`. `Conflict` (nothing changed) when it is not: another rotation (on
    /// any replica) came first, or the project has no CA or is deleted.
    async fn rotate_project_ca(
        &self,
        project_id: &ProjectId,
        ca: &StoredCa,
        key_type: KeyType,
        created: OffsetDateTime,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// Lists up to `limit` sealed CA keys of every generation (those not destroyed) after
    /// `after` in (project id, generation) order: a master key rotation walks them all.
    async fn sealed_ca_keys(
        &self,
        after: Option<(&ProjectId, u32)>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, u32, Vec<u8>)>>;
    /// Lists up to `limit` project CA certificates (DER) of every generation after `after` in
    /// (project id, generation) order, those of deleted projects included (their certificates
    /// may still be valid): the client-CA check walks them all.
    async fn project_ca_certificates(
        &self,
        after: Option<(&ProjectId, u32)>,
        limit: u32,
    ) -> StoreResult<Vec<(ProjectId, u32, Vec<u8>)>>;
    /// Replaces the sealed key of one generation of a project's CAs if it still is
    /// `expected`; returns whether it did.
    async fn replace_sealed_ca_key(
        &self,
        project_id: &ProjectId,
        generation: u32,
        expected: &[u8],
        sealed_key: &[u8],
    ) -> StoreResult<bool>;
}

/// The records of the certificates the project CAs issued.
#[async_trait]
pub trait CertificateStore: Send + Sync + 'static {
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

/// A signed CRL as stored (`project_crls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrl {
    /// Its CRL number.
    pub number: u64,
    /// The signed CRL, DER.
    pub der: Vec<u8>,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// When it is to be re-signed (half-way through its validity).
    pub refresh_at: OffsetDateTime,
}

/// What a reader checks a cached CRL against: the stored CRL's number and times, and the
/// project's latest revocation (one key lookup and one index lookup, no CRL bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlVersion {
    /// The stored CRL's number (0: none stored yet).
    pub number: u64,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// When the project's latest revocation happened (any CA's), if any: a CRL whose
    /// thisUpdate is not later may lack it.
    pub last_revocation: Option<OffsetDateTime>,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// When it is to be re-signed.
    pub refresh_at: OffsetDateTime,
}

/// A revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedSerial {
    /// Its serial number.
    pub serial: i64,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// The RFC 5280 reason name as the API spells it (`keyCompromise`, …).
    pub reason: Option<String>,
}

/// One certificate's revocation status (OCSP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateStatusRecord {
    /// The generation of the project CA that signed it.
    pub generation: u32,
    /// Its notAfter.
    pub not_after: OffsetDateTime,
    /// When it was revoked and why, if it was.
    pub revoked: Option<RevokedSerial>,
}

/// Project CRLs (one per CA generation) and the revocation facts they are made of.
#[async_trait]
pub trait CrlStore: Send + Sync + 'static {
    /// Hands out the next CRL number of a project CA generation (1 first). The counter is
    /// shared by every replica and only grows, so numbers are strictly increasing.
    async fn next_crl_number(&self, project_id: &ProjectId, generation: u32) -> StoreResult<u64>;
    /// Stores a signed CRL unless one with a higher or equal number is stored (a slower signer
    /// never replaces a newer CRL); returns whether it did.
    async fn store_crl(
        &self,
        project_id: &ProjectId,
        generation: u32,
        crl: &StoredCrl,
    ) -> StoreResult<bool>;
    /// The stored CRL's version with the project's latest revocation time (cheap: a key
    /// lookup and an index lookup); `None` before the first number is handed out.
    async fn crl_version(
        &self,
        project_id: &ProjectId,
        generation: u32,
    ) -> StoreResult<Option<CrlVersion>>;
    /// The stored CRL, if one was signed.
    async fn project_crl(
        &self,
        project_id: &ProjectId,
        generation: u32,
    ) -> StoreResult<Option<StoredCrl>>;
    /// Claims the re-signing of a CRL until `until`: true for one caller (across replicas)
    /// among those that claim before the claim lapses.
    async fn claim_crl_refresh(
        &self,
        project_id: &ProjectId,
        generation: u32,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Lists up to `limit` stored CRLs of live projects whose re-signing time has come by
    /// `now` and that no claim holds at `now`, oldest first (a deleted project's CA keys are
    /// destroyed: its CRLs are not served). Claimed ones are left out so that a CRL being
    /// re-signed elsewhere, or failing, does not keep the others from their turn.
    async fn crls_due(&self, now: OffsetDateTime, limit: u32)
    -> StoreResult<Vec<(ProjectId, u32)>>;
    /// Lists the certificates of a project CA generation that are revoked and unexpired at
    /// `now`, by serial.
    async fn revoked_by_ca(
        &self,
        project_id: &ProjectId,
        generation: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<RevokedSerial>>;
    /// One certificate's status by serial, if the project issued it.
    async fn certificate_status(
        &self,
        project_id: &ProjectId,
        serial: i64,
    ) -> StoreResult<Option<CertificateStatusRecord>>;
}
