//! The service core: the one object every transport calls. Its operations live in the files
//! named after their resource (`issuer.rs`, `projects.rs`, …); this file holds its state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::auth::{Access, Principal};
use super::ca::{CaSubject, ProjectCa};
use super::error::{AtlasError, AtlasResult};
use super::key_pool::KeyPool;
use super::model::{Project, ProjectId};
use super::secret::MasterKey;
use super::store::{Store, StoreError};

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
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            ca_subject: CaSubject {
                organization: "dbcert".to_owned(),
                organizational_unit: "Managed X.509".to_owned(),
            },
            max_certificates_per_user: 100,
        }
    }
}

/// The service core: authorisation, validation and the issue pipeline over a [`Store`].
pub struct Core {
    pub(super) store: Arc<dyn Store>,
    pub(super) master_key: MasterKey,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: CoreSettings,
    /// Unsealed CAs, so a signature does not pay for unsealing and parsing.
    pub(super) ca_cache: Mutex<HashMap<ProjectId, Arc<ProjectCa>>>,
    /// One lock per project whose CA is being created, so one process makes one CA key.
    pub(super) ca_creation: tokio::sync::Mutex<HashMap<ProjectId, Arc<tokio::sync::Mutex<()>>>>,
    /// Authenticates HTTP Digest nonces; derived from the master key.
    pub(super) nonce_secret: zeroize::Zeroizing<[u8; 32]>,
    /// Pre-generated leaf keys (disabled unless [`Core::with_key_pool`] gives one).
    pub(super) key_pool: KeyPool,
}

impl Core {
    /// Creates the core.
    pub fn new(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
    ) -> Self {
        let nonce_secret =
            zeroize::Zeroizing::new(master_key.derive_secret("dbcert/v1/digest-nonce"));
        Self {
            nonce_secret,
            store,
            master_key,
            clock,
            settings,
            ca_cache: Mutex::new(HashMap::new()),
            ca_creation: tokio::sync::Mutex::new(HashMap::new()),
            key_pool: KeyPool::disabled(),
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

    /// Returns the master key.
    pub fn master_key(&self) -> &MasterKey {
        &self.master_key
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
