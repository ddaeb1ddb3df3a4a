//! The service core: the one object every transport calls. Its operations live in the files
//! named after their resource (`issuer.rs`, `projects.rs`, …); this file holds its state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::auth::{Access, Principal};
use super::ca::CaSubject;
use super::ca_rotation::IssuingCa;
use super::error::{AtlasError, AtlasResult};
use super::key_pool::KeyPool;
use super::model::{Project, ProjectId};
use super::revocation_pointers::RevocationPointerSettings;
use super::secret::Keyring;
use super::store::{Store, StoreError};

/// The label of the HTTP Digest nonce secret derived from a master key.
pub const DIGEST_NONCE_LABEL: &str = "dbcert/v1/digest-nonce";

/// The source of the current time, passed in so tests can fix it.
pub trait Clock: Send + Sync + 'static {
    /// Returns the current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The core's tunables.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// The O and OU of project CAs.
    pub ca_subject: CaSubject,
    /// The most unexpired certificates one user may hold (`ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED`).
    pub max_certificates_per_user: u64,
    /// How long a CRL is valid (`--crl-validity`); it is re-signed after half of it.
    pub crl_validity: time::Duration,
    /// The revocation pointers leaves carry (`--leaf-revocation-pointers`); `None`, the
    /// default, keeps leaves exactly Atlas's profile.
    pub leaf_revocation_pointers: Option<RevocationPointerSettings>,
}

impl CoreSettings {
    /// The default `O` of project CAs (the command line's default too).
    pub const DEFAULT_CA_ORGANIZATION: &str = "dbcert";
    /// The default `OU` of project CAs (the command line's default too).
    pub const DEFAULT_CA_ORGANIZATIONAL_UNIT: &str = "Managed X.509";
    /// The default most unexpired certificates one user may hold (the command line's default
    /// too).
    pub const DEFAULT_MAX_CERTIFICATES_PER_USER: u64 = 100;
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            ca_subject: CaSubject {
                organization: Self::DEFAULT_CA_ORGANIZATION.to_owned(),
                organizational_unit: Self::DEFAULT_CA_ORGANIZATIONAL_UNIT.to_owned(),
            },
            max_certificates_per_user: Self::DEFAULT_MAX_CERTIFICATES_PER_USER,
            crl_validity: super::crl::DEFAULT_CRL_VALIDITY,
            leaf_revocation_pointers: None,
        }
    }
}

/// The service core: authorisation, validation and the issue pipeline over a [`Store`].
pub struct Core {
    pub(super) store: Arc<dyn Store>,
    pub(super) keyring: Keyring,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: CoreSettings,
    /// Unsealed issuing CAs, so a signature does not pay for unsealing and parsing.
    pub(super) ca_cache: Mutex<HashMap<ProjectId, IssuingCa>>,
    /// One lock per project whose CA is being created, so one process makes one CA key.
    pub(super) ca_creation: tokio::sync::Mutex<HashMap<ProjectId, Arc<tokio::sync::Mutex<()>>>>,
    /// Authenticate HTTP Digest nonces, derived from each master key of the keyring; the
    /// primary's (first) makes new nonces, any of them verifies one.
    pub(super) nonce_secrets: Vec<zeroize::Zeroizing<[u8; 32]>>,
    /// Pre-generated leaf keys (disabled unless [`Core::with_key_pool`] gives one).
    pub(super) key_pool: KeyPool,
    /// The CRLs served (`crl.rs`).
    pub(super) crls: super::crl::CrlCache,
    /// Bounds the OCSP answers being signed at once (`ocsp.rs`).
    pub(super) ocsp_signers: super::ocsp::OcspSigners,
    /// Serializes a key's removal of its own access list entries in this process, so the
    /// check that the caller keeps an entry holds for the removal (`access_list.rs`).
    pub(super) own_access_list: tokio::sync::Mutex<()>,
}

impl Core {
    /// Creates the core over a keyring (or a single master key).
    pub fn new(
        store: Arc<dyn Store>,
        keyring: impl Into<Keyring>,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
    ) -> Self {
        let keyring = keyring.into();
        let nonce_secrets = keyring.derive_secrets(DIGEST_NONCE_LABEL);
        Self {
            nonce_secrets,
            store,
            keyring,
            clock,
            settings,
            ca_cache: Mutex::new(HashMap::new()),
            ca_creation: tokio::sync::Mutex::new(HashMap::new()),
            key_pool: KeyPool::disabled(),
            crls: Default::default(),
            ocsp_signers: Default::default(),
            own_access_list: tokio::sync::Mutex::new(()),
        }
    }

    /// Uses a pool of pre-generated leaf keys.
    pub fn with_key_pool(mut self, key_pool: KeyPool) -> Self {
        self.key_pool = key_pool;
        self
    }

    /// Returns the leaf key pool (for metrics and shutdown).
    pub fn key_pool(&self) -> &KeyPool {
        &self.key_pool
    }

    /// Returns the store (for health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Returns the keyring of master keys.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Loads a live project and checks that the principal may access it.
    pub(super) async fn authorized_project(
        &self,
        principal: &Principal,
        group_id: &str,
        access: Access,
    ) -> AtlasResult<Project> {
        let project_id = ProjectId::parse(group_id)?;
        let project = self
            .store
            .project(&project_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| AtlasError::group_not_found(project_id.as_str()))?;
        principal.authorize_project(&project, access)?;
        Ok(project)
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Maps a store failure that no operation expected.
pub(super) fn store_error(error: StoreError) -> AtlasError {
    match error {
        StoreError::Unavailable(source) => AtlasError::unavailable(source),
        other => AtlasError::internal(other),
    }
}
