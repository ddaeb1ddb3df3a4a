//! API keys as credentials: generating them, verifying Basic and Digest credentials against
//! the stored HA1 values, and the role checks every operation makes.

use std::collections::HashMap;

use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult};
use super::model::{ApiKeyId, OrgId, OrgRole, Project, ProjectId, ProjectRole};
use super::store::ApiKeyRecord;

/// The digest realm of the Atlas Administration API; part of every stored HA1.
pub const DIGEST_REALM: &str = "MMS Public API";

/// What an operation does to a resource; which roles allow what is in `roles.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads it: any project role ("Project Read Only"), any organization role ("Organization
    /// Member").
    Read,
    /// Creates, changes or deletes database users ("Project Database Access Admin").
    ManageDatabaseUsers,
    /// Creates projects in an organization ("Organization Project Creator").
    CreateProject,
    /// Changes it otherwise: GROUP_OWNER ("Project Owner") or ORG_OWNER.
    Write,
}

/// An authenticated API key and its roles, resolved per request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The key's id.
    pub key_id: ApiKeyId,
    /// The key's public key.
    pub public_key: String,
    /// The key's organization.
    pub org_id: OrgId,
    /// Its organization roles.
    pub org_roles: Vec<OrgRole>,
    /// Its roles on each project it is assigned to.
    pub project_roles: HashMap<ProjectId, Vec<ProjectRole>>,
    /// The address the request came from, when it came from the network (for the audit
    /// trail); set by the transport.
    pub client_address: Option<std::net::SocketAddr>,
}

/// A freshly generated API key pair. The private key exists only here and in the response.
pub struct NewApiKey {
    /// The stored record.
    pub record: ApiKeyRecord,
    /// The private key (UUID form).
    pub private_key: Zeroizing<String>,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            record,
            private_key: _,
        } = self;
        f.debug_struct("NewApiKey")
            .field("record", record)
            .finish_non_exhaustive()
    }
}

/// The stored secrets of a key, for HTTP Digest verification, with the principal the key
/// authenticates as (read in the same lookup, so a Digest request looks its key up once).
pub struct DigestSecrets {
    /// `MD5(publicKey:realm:privateKey)`, lowercase hex.
    pub ha1_md5: Zeroizing<String>,
    /// `SHA-256(publicKey:realm:privateKey)`, lowercase hex.
    pub ha1_sha256: Zeroizing<String>,
    principal: Principal,
}

// === impl DigestSecrets ===

impl DigestSecrets {
    /// Returns the key's principal: call it only once a Digest response has been verified
    /// against these secrets.
    pub fn into_principal(self) -> Principal {
        self.principal
    }
}

// === impl Principal ===

impl Principal {
    fn from_record(record: ApiKeyRecord) -> Self {
        Self {
            key_id: record.id,
            public_key: record.public_key,
            org_id: record.org_id,
            org_roles: record.org_roles,
            project_roles: group_roles(record.project_roles),
            client_address: None,
        }
    }

    /// Whether the key holds an organization role.
    pub fn has_org_role(&self, role: OrgRole) -> bool {
        self.org_roles.contains(&role)
    }

    /// The roles the key holds on a project of its organization: those it was assigned there
    /// and those its organization roles imply (ORG_OWNER: GROUP_OWNER, ORG_READ_ONLY:
    /// GROUP_READ_ONLY).
    pub fn roles_on(&self, project_id: &ProjectId) -> impl Iterator<Item = ProjectRole> + '_ {
        let assigned = self
            .project_roles
            .get(project_id)
            .into_iter()
            .flatten()
            .copied();
        let implied = self
            .org_roles
            .iter()
            .filter_map(|role| role.implied_project_role());
        assigned.chain(implied)
    }

    /// Checks access to a project: another organization's key is `NOT_IN_GROUP`, a key of the
    /// organization without the needed role `USER_UNAUTHORIZED` (or `NOT_IN_GROUP` when it holds
    /// no role on the project at all).
    pub fn authorize_project(&self, project: &Project, access: Access) -> AtlasResult<()> {
        if self.org_id != project.org_id {
            return Err(AtlasError::not_in_group(project.id.as_str()));
        }
        let mut roles = self.roles_on(&project.id).peekable();
        if roles.peek().is_none() {
            return Err(AtlasError::not_in_group(project.id.as_str()));
        }
        if roles.any(|role| role.allows(access)) {
            Ok(())
        } else {
            Err(AtlasError::user_unauthorized())
        }
    }

    /// Checks access to the organization itself (its keys, its projects list, new projects).
    pub fn authorize_org(&self, org_id: &OrgId, access: Access) -> AtlasResult<()> {
        let allowed =
            self.org_id == *org_id && self.org_roles.iter().any(|role| role.allows_org(access));
        if allowed {
            Ok(())
        } else {
            Err(AtlasError::user_unauthorized())
        }
    }
}

/// Groups (project, role) pairs by project.
fn group_roles(pairs: Vec<(ProjectId, ProjectRole)>) -> HashMap<ProjectId, Vec<ProjectRole>> {
    let mut roles: HashMap<ProjectId, Vec<ProjectRole>> = HashMap::new();
    for (project, role) in pairs {
        roles.entry(project).or_default().push(role);
    }
    roles
}

// === credentials ===

/// Computes an HA1 value of RFC 7616: `H(username:realm:password)`, lowercase hex.
fn ha1<D: Digest>(public_key: &str, private_key: &str) -> Zeroizing<String> {
    let mut hasher = D::new();
    hasher.update(public_key.as_bytes());
    hasher.update(b":");
    hasher.update(DIGEST_REALM.as_bytes());
    hasher.update(b":");
    hasher.update(private_key.as_bytes());
    Zeroizing::new(hex::encode(hasher.finalize()))
}

/// Whether a string has the shape of an Atlas public key: 8 lowercase ASCII letters.
pub fn is_public_key(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_lowercase())
}

/// Whether a string has the shape of an Atlas private key: a lowercase UUID.
pub fn is_private_key(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// Generates a random public key: 8 lowercase letters.
fn generate_public_key() -> String {
    (0..8)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect()
}

impl NewApiKey {
    /// Builds a key record for the given pair, hashing the private key.
    pub fn from_pair(
        id: ApiKeyId,
        org_id: OrgId,
        public_key: String,
        private_key: Zeroizing<String>,
        desc: String,
        org_roles: Vec<OrgRole>,
        created: time::OffsetDateTime,
    ) -> Self {
        let record = ApiKeyRecord {
            id,
            org_id,
            ha1_md5: ha1::<Md5>(&public_key, &private_key).to_string(),
            ha1_sha256: ha1::<Sha256>(&public_key, &private_key).to_string(),
            public_key,
            desc,
            org_roles,
            project_roles: Vec::new(),
            created,
        };
        Self {
            record,
            private_key,
        }
    }

    /// Generates a fresh key pair.
    pub fn generate(
        org_id: OrgId,
        desc: String,
        org_roles: Vec<OrgRole>,
        now: time::OffsetDateTime,
    ) -> Self {
        let private_key = Zeroizing::new(uuid::Uuid::new_v4().hyphenated().to_string());
        Self::from_pair(
            ApiKeyId::generate(now),
            org_id,
            generate_public_key(),
            private_key,
            desc,
            org_roles,
            now,
        )
    }
}

/// Masks a private key for listings: Atlas shows only its shape.
pub fn masked_private_key() -> &'static str {
    "********-****-****-************"
}

impl Core {
    /// Verifies Basic credentials (`publicKey`, `privateKey`) and resolves the key's roles.
    pub async fn authenticate_basic(
        &self,
        public_key: &str,
        private_key: &str,
    ) -> AtlasResult<Principal> {
        let record = self.api_key_for_credentials(public_key).await?;
        let presented = ha1::<Sha256>(public_key, private_key);
        // Compare in constant time, and against a dummy when the key is unknown, so the time
        // taken does not tell which public keys exist.
        let expected = record
            .as_ref()
            .map_or("0".repeat(64), |r| r.ha1_sha256.clone());
        let equal: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
        match record {
            Some(record) if equal => Ok(Principal::from_record(record)),
            _ => Err(AtlasError::unauthenticated()),
        }
    }

    /// Resolves a key whose possession was proven otherwise: the key named by a verified client
    /// certificate (mutual TLS).
    pub async fn principal_for_verified_key(&self, public_key: &str) -> AtlasResult<Principal> {
        self.api_key_for_credentials(public_key)
            .await?
            .map(Principal::from_record)
            .ok_or_else(AtlasError::unauthenticated)
    }

    /// Returns the secret that authenticates new HTTP Digest nonces. It is derived from the
    /// primary master key, so every replica sharing it accepts the nonces of the others.
    pub fn digest_nonce_secret(&self) -> &[u8; 32] {
        &self.nonce_secrets[0]
    }

    /// Returns the secrets a nonce may be authenticated with: one per key of the keyring, so
    /// during a master key rotation nonces made by replicas on either primary are accepted.
    pub fn digest_nonce_secrets(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.nonce_secrets.iter().map(|secret| &**secret)
    }

    /// Records a (nonce, nc) use; `false` means a replay. Old uses are purged now and then.
    pub async fn record_digest_nonce_use(
        &self,
        nonce: &str,
        nc: &str,
        expires_at: time::OffsetDateTime,
    ) -> AtlasResult<bool> {
        if rand::random_range(0..256u32) == 0 {
            let _ = self.store.purge_nonce_uses(self.clock.now()).await;
        }
        self.store
            .record_nonce_use(nonce, nc, expires_at)
            .await
            .map_err(store_error)
    }

    /// Returns the current time of the core's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// Returns a key's HA1 values for HTTP Digest verification, with its principal; `None` for
    /// an unknown key.
    pub async fn digest_secrets(&self, public_key: &str) -> AtlasResult<Option<DigestSecrets>> {
        Ok(self
            .api_key_for_credentials(public_key)
            .await?
            .map(|mut record| DigestSecrets {
                ha1_md5: Zeroizing::new(std::mem::take(&mut record.ha1_md5)),
                ha1_sha256: Zeroizing::new(std::mem::take(&mut record.ha1_sha256)),
                principal: Principal::from_record(record),
            }))
    }

    /// Looks up the key that credentials name: through the store's cache, which keeps "no such
    /// key" as it keeps a key, so a key that exists and one that does not take the same path
    /// and time. A value without the shape of a public key names no key (every key has that
    /// shape, which is public): it is answered without a lookup, so junk neither loads the
    /// database nor fills the cache.
    pub(crate) async fn api_key_for_credentials(
        &self,
        public_key: &str,
    ) -> AtlasResult<Option<ApiKeyRecord>> {
        if !is_public_key(public_key) {
            return Ok(None);
        }
        self.store
            .api_key_by_public_key(public_key)
            .await
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn principal(
        org: &OrgId,
        org_roles: Vec<OrgRole>,
        project_roles: Vec<(ProjectId, ProjectRole)>,
    ) -> Principal {
        Principal {
            key_id: ApiKeyId::generate(OffsetDateTime::UNIX_EPOCH),
            public_key: "abcdefgh".into(),
            org_id: org.clone(),
            org_roles,
            project_roles: group_roles(project_roles),
            client_address: None,
        }
    }

    #[test]
    fn role_matrix() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let org = OrgId::generate(now);
        let other_org = OrgId::generate(now);
        let project = Project {
            id: ProjectId::generate(now),
            name: "p".into(),
            org_id: org.clone(),
            created: now,
        };
        let pid = project.id.clone();
        let code = |p: &Principal, a| {
            p.authorize_project(&project, a)
                .err()
                .map(|e| e.code().as_str())
        };
        let owner = principal(&org, vec![OrgRole::OrgOwner], vec![]);
        assert_eq!(code(&owner, Access::Write), None);
        let org_ro = principal(&org, vec![OrgRole::OrgReadOnly], vec![]);
        assert_eq!(code(&org_ro, Access::Read), None);
        assert_eq!(code(&org_ro, Access::Write), Some("USER_UNAUTHORIZED"));
        let group_owner = principal(&org, vec![], vec![(pid.clone(), ProjectRole::GroupOwner)]);
        assert_eq!(code(&group_owner, Access::Write), None);
        let group_ro = principal(
            &org,
            vec![],
            vec![(pid.clone(), ProjectRole::GroupReadOnly)],
        );
        assert_eq!(code(&group_ro, Access::Read), None);
        assert_eq!(code(&group_ro, Access::Write), Some("USER_UNAUTHORIZED"));
        // Every project role reads; database-user managers manage users, not certificates.
        let users_admin = principal(
            &org,
            vec![OrgRole::OrgMember],
            vec![
                (pid.clone(), ProjectRole::GroupDatabaseAccessAdmin),
                (pid.clone(), ProjectRole::GroupDataAccessReadOnly),
            ],
        );
        assert_eq!(code(&users_admin, Access::Read), None);
        assert_eq!(code(&users_admin, Access::ManageDatabaseUsers), None);
        assert_eq!(code(&users_admin, Access::Write), Some("USER_UNAUTHORIZED"));
        let data_ro = principal(
            &org,
            vec![],
            vec![(pid.clone(), ProjectRole::GroupDataAccessReadOnly)],
        );
        assert_eq!(code(&data_ro, Access::Read), None);
        assert_eq!(
            code(&data_ro, Access::ManageDatabaseUsers),
            Some("USER_UNAUTHORIZED")
        );
        // Organization roles other than owner and read-only reach no project by themselves.
        let billing = principal(&org, vec![OrgRole::OrgBillingAdmin], vec![]);
        assert_eq!(code(&billing, Access::Read), Some("NOT_IN_GROUP"));
        assert!(billing.authorize_org(&org, Access::Read).is_ok());
        assert!(billing.authorize_org(&org, Access::CreateProject).is_err());
        assert!(billing.authorize_org(&other_org, Access::Read).is_err());
        let creator = principal(&org, vec![OrgRole::OrgGroupCreator], vec![]);
        assert!(creator.authorize_org(&org, Access::CreateProject).is_ok());
        assert!(creator.authorize_org(&org, Access::Write).is_err());
        let stranger = principal(&org, vec![], vec![]);
        assert_eq!(code(&stranger, Access::Read), Some("NOT_IN_GROUP"));
        let foreign = principal(
            &other_org,
            vec![OrgRole::OrgOwner],
            vec![(pid, ProjectRole::GroupOwner)],
        );
        assert_eq!(code(&foreign, Access::Read), Some("NOT_IN_GROUP"));
    }

    #[test]
    fn key_shapes() {
        let key = NewApiKey::generate(
            OrgId::generate(OffsetDateTime::UNIX_EPOCH),
            "d".into(),
            vec![],
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(is_public_key(&key.record.public_key));
        assert!(is_private_key(&key.private_key));
        assert!(!is_private_key("ABCDEF00-0000-0000-0000-000000000000"));
        assert!(!is_public_key("abcdefg1"));
        assert!(!format!("{key:?}").contains(key.private_key.as_str()));
    }

    #[test]
    fn ha1_is_the_hash_of_key_realm_and_secret() {
        // HA1 of RFC 7616 §3.4.2: H(username:realm:password), lowercase hex. The expected values
        // were computed independently with Python's hashlib:
        //   s = b"abcdefgh:MMS Public API:5d0e3f6a-1c2b-4d3e-9f8a-7b6c5d4e3f2a"
        //   hashlib.md5(s).hexdigest(); hashlib.sha256(s).hexdigest()
        const PRIVATE_KEY: &str = "5d0e3f6a-1c2b-4d3e-9f8a-7b6c5d4e3f2a";
        const MD5: &str = "b462e5c36f12cb1dbd5cb001ff2213df";
        const SHA256: &str = "750de03d9fd44a01bf7e725b3307b39658ebe30dc8f57d8b6c47055a31f04079";
        assert_eq!(ha1::<Md5>("abcdefgh", PRIVATE_KEY).as_str(), MD5);
        assert_eq!(ha1::<Sha256>("abcdefgh", PRIVATE_KEY).as_str(), SHA256);
        // The stored record holds the same values.
        let now = OffsetDateTime::UNIX_EPOCH;
        let key = NewApiKey::from_pair(
            ApiKeyId::generate(now),
            OrgId::generate(now),
            "abcdefgh".into(),
            Zeroizing::new(PRIVATE_KEY.into()),
            "d".into(),
            vec![],
            now,
        );
        assert_eq!(key.record.ha1_md5, MD5);
        assert_eq!(key.record.ha1_sha256, SHA256);
    }
}
