//! Certificate revocation lists: one per project CA generation, signed by that CA (RFC 5280
//! §5: version 2, authority key identifier, CRL number, a reason code per entry), listing each
//! revoked certificate until it expires.
//!
//! The signed CRL is stored (`CrlStore`, `project_crls`) and served from a per-process cache
//! that each request checks against the stored CRL's number and the project's latest
//! revocation time (one key lookup and one index lookup), so a CRL re-signed on another
//! replica is what this one serves next, and a revocation made anywhere (even one whose
//! re-signing failed) makes the next request sign a CRL that lists it. A CRL is re-signed
//! half-way through its validity (`--crl-validity`), by the first request or the background
//! task that finds it due, once across replicas (a claim in the database), and at once after
//! every revocation ([`Core::refresh_project_crls`]). CRL numbers come from a
//! counter in the database, so they only grow, whichever replica signs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

use super::ca::{CaError, ProjectCa, pem_encode};
use super::ca_rotation::ca_key_context;
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::ProjectId;
use super::store::{CrlVersion, RevokedSerial, StoredCrl};

/// The default validity of a CRL (`--crl-validity`): seven days, re-signed after half of it.
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::days(7);

/// How long one replica's claim to re-sign a due CRL keeps the others from doing the same.
const REFRESH_CLAIM: Duration = Duration::minutes(2);

/// The reasons a revocation may give, as the API spells them, with their RFC 5280 codes.
pub const REVOCATION_REASONS: &[(&str, RevocationReason)] = &[
    ("unspecified", RevocationReason::Unspecified),
    ("keyCompromise", RevocationReason::KeyCompromise),
    ("caCompromise", RevocationReason::CaCompromise),
    ("affiliationChanged", RevocationReason::AffiliationChanged),
    ("superseded", RevocationReason::Superseded),
    (
        "cessationOfOperation",
        RevocationReason::CessationOfOperation,
    ),
    ("privilegeWithdrawn", RevocationReason::PrivilegeWithdrawn),
];

/// The RFC 5280 reason code of a stored reason name; `None` for `unspecified`, unknown or
/// absent names (RFC 5280 §5.3.1: the extension SHOULD be absent rather than `unspecified`).
pub(super) fn reason_code(name: Option<&str>) -> Option<RevocationReason> {
    let name = name?;
    REVOCATION_REASONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, code)| *code)
        .filter(|code| *code != RevocationReason::Unspecified)
}

/// A signed CRL of one project CA generation, as served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectCrl {
    /// The CA generation whose CRL it is (1: the project's first CA).
    pub generation: u32,
    /// Its CRL number.
    pub number: u64,
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// The CRL, PEM (`X509 CRL`).
    pub pem: String,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
    /// When it is re-signed.
    pub refresh_at: OffsetDateTime,
}

impl ProjectCrl {
    fn from_stored(generation: u32, stored: StoredCrl) -> Self {
        Self {
            generation,
            number: stored.number,
            pem: pem_encode("X509 CRL", &stored.der),
            der: stored.der,
            this_update: stored.this_update,
            next_update: stored.next_update,
            refresh_at: stored.refresh_at,
        }
    }
}

type CrlKey = (ProjectId, u32);

/// The CRLs this process serves, and one lock per CRL being signed (so one process signs one
/// CRL at a time for a CA, however many requests find it due).
#[derive(Default)]
pub(super) struct CrlCache {
    crls: Mutex<HashMap<CrlKey, Arc<ProjectCrl>>>,
    /// Unsealed CAs by project and generation (a CA's certificate and key never change).
    cas: Mutex<HashMap<CrlKey, Arc<ProjectCa>>>,
    signing: tokio::sync::Mutex<HashMap<CrlKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl CrlCache {
    fn get(&self, key: &CrlKey) -> Option<Arc<ProjectCrl>> {
        self.crls
            .lock()
            .expect("crl cache lock must not be poisoned")
            .get(key)
            .cloned()
    }

    /// Keeps `crl` unless a newer one is cached; returns the one kept.
    fn put(&self, key: CrlKey, crl: Arc<ProjectCrl>) -> Arc<ProjectCrl> {
        let mut crls = self
            .crls
            .lock()
            .expect("crl cache lock must not be poisoned");
        match crls.get(&key) {
            Some(cached) if cached.number > crl.number => cached.clone(),
            _ => {
                crls.insert(key, crl.clone());
                crl
            }
        }
    }

    fn ca(&self, key: &CrlKey) -> Option<Arc<ProjectCa>> {
        self.cas
            .lock()
            .expect("crl ca cache lock must not be poisoned")
            .get(key)
            .cloned()
    }

    fn put_ca(&self, key: CrlKey, ca: Arc<ProjectCa>) {
        self.cas
            .lock()
            .expect("crl ca cache lock must not be poisoned")
            .insert(key, ca);
    }

    /// Forgets a project's CRLs, unsealed CAs and signing locks; returns whether it held any
    /// CA.
    pub(super) async fn forget_project(&self, project_id: &ProjectId) -> bool {
        let held = {
            let mut cas = self
                .cas
                .lock()
                .expect("crl ca cache lock must not be poisoned");
            let before = cas.len();
            cas.retain(|(id, _), _| id != project_id);
            cas.len() < before
        };
        self.crls
            .lock()
            .expect("crl cache lock must not be poisoned")
            .retain(|(id, _), _| id != project_id);
        self.signing
            .lock()
            .await
            .retain(|(id, _), _| id != project_id);
        held
    }

    /// The projects whose unsealed CAs are held.
    pub(super) fn projects(&self) -> Vec<ProjectId> {
        let cas = self
            .cas
            .lock()
            .expect("crl ca cache lock must not be poisoned");
        let mut projects: Vec<ProjectId> = cas.keys().map(|(id, _)| id.clone()).collect();
        projects.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        projects.dedup();
        projects
    }

    async fn signing_lock(&self, key: &CrlKey) -> Arc<tokio::sync::Mutex<()>> {
        self.signing
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone()
    }
}

// === impl ProjectCa ===

impl ProjectCa {
    /// Signs a CRL of this CA listing `revoked`, valid from `this_update` to `next_update`.
    /// Its authority key identifier is the CA certificate's subject key identifier.
    pub fn sign_crl(
        &self,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        revoked: &[RevokedSerial],
    ) -> Result<Vec<u8>, CaError> {
        let (_, cert) = x509_parser::parse_x509_certificate(self.certificate_der())
            .map_err(|_| CaError::Unreadable)?;
        let key_identifier_method = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                    Some(KeyIdMethod::PreSpecified(ski.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|entry| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&entry.serial.to_be_bytes()),
                    revocation_time: entry.revoked_at,
                    reason_code: reason_code(entry.reason.as_deref()),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method,
        };
        Ok(params.signed_by(self.issuer())?.der().to_vec())
    }
}

// === impl Core ===

impl Core {
    /// Every current CRL of a project, the issuing CA's first. No principal: a CRL is public
    /// by design. An unknown project is `GROUP_NOT_FOUND`; a project without a CA yet
    /// `PROJECT_CA_NOT_FOUND` (both 404).
    pub async fn project_crls(&self, group_id: &str) -> AtlasResult<Vec<Arc<ProjectCrl>>> {
        let project_id = self.live_project_id(group_id).await?;
        let cas = self.crl_cas(&project_id, false).await?;
        let mut crls = Vec::with_capacity(cas.len());
        for (generation, ca) in cas {
            crls.push(self.current_crl(&project_id, generation, ca).await?);
        }
        Ok(crls)
    }

    /// Re-signs every CRL of a project now (after a revocation), so the next CRL any replica
    /// serves lists it.
    pub async fn refresh_project_crls(&self, project_id: &ProjectId) -> AtlasResult<()> {
        for (generation, ca) in self.crl_cas(project_id, false).await? {
            let key = (project_id.clone(), generation);
            let lock = self.crls.signing_lock(&key).await;
            let _guard = lock.lock().await;
            self.sign_and_store(project_id, generation, ca).await?;
        }
        Ok(())
    }

    /// After a revocation in `project_id`: re-signs its CRLs now. A failure is only logged:
    /// the revocation stands, and the next CRL read signs a CRL that lists it (it checks the
    /// project's latest revocation time).
    pub(super) async fn crl_after_revocation(&self, project_id: &ProjectId) {
        if let Err(error) = self.refresh_project_crls(project_id).await {
            warn!(%project_id, %error, "crl re-signing after a revocation failed; the next read signs it");
        }
    }

    /// Re-signs up to `limit` stored CRLs whose time has come (the background task), each
    /// once across replicas; returns how many it looked at (`limit`: there may be more). A
    /// CRL that fails is logged and left claimed until its claim lapses, so the next call
    /// moves on to the others rather than stopping at it.
    pub async fn refresh_due_crls(&self, limit: u32) -> AtlasResult<usize> {
        let now = self.clock.now();
        let due = self.store.crls_due(now, limit).await.map_err(store_error)?;
        let examined = due.len();
        for (project_id, generation) in due {
            if let Err(error) = self.refresh_due_crl(&project_id, generation, now).await {
                warn!(%project_id, generation, %error, "re-signing a due crl failed; trying again when its claim lapses");
            }
        }
        Ok(examined)
    }

    /// Re-signs one due CRL if this process wins its claim.
    async fn refresh_due_crl(
        &self,
        project_id: &ProjectId,
        generation: u32,
        now: OffsetDateTime,
    ) -> AtlasResult<()> {
        if !self
            .store
            .claim_crl_refresh(project_id, generation, now, now + REFRESH_CLAIM)
            .await
            .map_err(store_error)?
        {
            return Ok(());
        }
        let Some((_, ca)) = self
            .crl_cas(project_id, true)
            .await?
            .into_iter()
            .find(|(g, _)| *g == generation)
        else {
            return Ok(());
        };
        let key = (project_id.clone(), generation);
        let lock = self.crls.signing_lock(&key).await;
        let _guard = lock.lock().await;
        self.sign_and_store(project_id, generation, ca).await?;
        Ok(())
    }

    /// The CRL to serve for one CA generation: the cached one while the stored CRL has its
    /// number and is not due, else the stored one, else a new one.
    async fn current_crl(
        &self,
        project_id: &ProjectId,
        generation: u32,
        ca: Arc<ProjectCa>,
    ) -> AtlasResult<Arc<ProjectCrl>> {
        let key = (project_id.clone(), generation);
        let now = self.clock.now();
        let version = self
            .store
            .crl_version(project_id, generation)
            .await
            .map_err(store_error)?
            .filter(|v| v.number > 0);
        // Stale once due, or when a revocation may have come after it was signed.
        let fresh = |v: &CrlVersion| {
            now < v.refresh_at && v.last_revocation.is_none_or(|at| at < v.this_update)
        };
        if let Some(version) = version
            && fresh(&version)
        {
            if let Some(cached) = self.crls.get(&key)
                && cached.number == version.number
            {
                return Ok(cached);
            }
            if let Some(stored) = self
                .store
                .project_crl(project_id, generation)
                .await
                .map_err(store_error)?
            {
                return Ok(self
                    .crls
                    .put(key, Arc::new(ProjectCrl::from_stored(generation, stored))));
            }
        }
        // Absent or due: sign one, one signer per CRL in this process.
        let lock = self.crls.signing_lock(&key).await;
        let _guard = lock.lock().await;
        // Signed meanwhile (by the request this one waited for)?
        if let Some(cached) = self.crls.get(&key)
            && version.is_none_or(|v| cached.number > v.number)
        {
            return Ok(cached);
        }
        // Due but still valid, with no revocation missing: only the replica that claims the
        // re-signing does it, the others serve the stored one meanwhile.
        if let Some(version) = version
            && now < version.next_update
            && version
                .last_revocation
                .is_none_or(|at| at < version.this_update)
            && !self
                .store
                .claim_crl_refresh(project_id, generation, now, now + REFRESH_CLAIM)
                .await
                .map_err(store_error)?
            && let Some(stored) = self
                .store
                .project_crl(project_id, generation)
                .await
                .map_err(store_error)?
        {
            return Ok(self
                .crls
                .put(key, Arc::new(ProjectCrl::from_stored(generation, stored))));
        }
        self.sign_and_store(project_id, generation, ca).await
    }

    /// Numbers, signs and stores a CRL of one CA generation with its revoked, unexpired
    /// certificates. The caller holds the CRL's signing lock.
    async fn sign_and_store(
        &self,
        project_id: &ProjectId,
        generation: u32,
        ca: Arc<ProjectCa>,
    ) -> AtlasResult<Arc<ProjectCrl>> {
        let now = self
            .clock
            .now()
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond");
        let validity = self.settings.crl_validity;
        let number = self
            .store
            .next_crl_number(project_id, generation)
            .await
            .map_err(store_error)?;
        let revoked = self
            .store
            .revoked_by_ca(project_id, generation, now)
            .await
            .map_err(store_error)?;
        let (this_update, next_update) = (now, now + validity);
        let entries = revoked.len();
        let der = tokio::task::spawn_blocking(move || {
            ca.sign_crl(number, this_update, next_update, &revoked)
        })
        .await
        .map_err(AtlasError::internal)?
        .map_err(AtlasError::internal)?;
        let stored = StoredCrl {
            number,
            der,
            this_update,
            next_update,
            refresh_at: now + validity / 2,
        };
        let key = (project_id.clone(), generation);
        if !self
            .store
            .store_crl(project_id, generation, &stored)
            .await
            .map_err(store_error)?
        {
            // Another replica stored a newer CRL meanwhile: serve that one.
            if let Some(newer) = self
                .store
                .project_crl(project_id, generation)
                .await
                .map_err(store_error)?
            {
                return Ok(self
                    .crls
                    .put(key, Arc::new(ProjectCrl::from_stored(generation, newer))));
            }
        }
        info!(%project_id, generation, number, entries, "signed project crl");
        Ok(self
            .crls
            .put(key, Arc::new(ProjectCrl::from_stored(generation, stored))))
    }

    /// A live project's id; `GROUP_NOT_FOUND` otherwise.
    pub(super) async fn live_project_id(&self, group_id: &str) -> AtlasResult<ProjectId> {
        let project_id = ProjectId::parse(group_id)?;
        self.store
            .project(&project_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| AtlasError::group_not_found(project_id.as_str()))?;
        Ok(project_id)
    }

    /// The project's CAs with their generations, the issuing CA (newest) first: those of its
    /// trust bundle (the CAs a CRL is served for), or with `all` every CA it has had (an OCSP
    /// answer about a certificate of a CA that left the bundle). `PROJECT_CA_NOT_FOUND` before
    /// the project's first certificate. Unsealed CAs are kept in [`CrlCache`].
    pub(super) async fn crl_cas(
        &self,
        project_id: &ProjectId,
        all: bool,
    ) -> AtlasResult<Vec<(u32, Arc<ProjectCa>)>> {
        let stored = if all {
            self.store.project_cas(project_id).await
        } else {
            self.store
                .trusted_project_cas(project_id, self.clock.now())
                .await
        }
        .map_err(store_error)?;
        if stored.is_empty() {
            return Err(no_ca_yet(project_id));
        }
        let mut cas = Vec::with_capacity(stored.len());
        for ca in stored {
            let key = (project_id.clone(), ca.generation);
            // Destroyed (the project was deleted through some replica): a copy held here goes.
            let Some(sealed) = ca.sealed_key else {
                self.crls.forget_project(project_id).await;
                return Err(AtlasError::internal("project ca key was destroyed"));
            };
            if let Some(cached) = self.crls.ca(&key) {
                cas.push((ca.generation, cached));
                continue;
            }
            let secret = self
                .keyring
                .open(&ca_key_context(project_id, ca.generation), &sealed)
                .map_err(AtlasError::internal)?;
            let unsealed = Arc::new(
                ProjectCa::from_parts(ca.cert_der, &secret).map_err(AtlasError::internal)?,
            );
            self.crls.put_ca(key, unsealed.clone());
            cas.push((ca.generation, unsealed));
        }
        Ok(cas)
    }
}

/// `PROJECT_CA_NOT_FOUND`: nothing to revoke or answer for before the project's first
/// certificate.
fn no_ca_yet(project_id: &ProjectId) -> AtlasError {
    AtlasError::new(
        ErrorCode::ProjectCaNotFound,
        format!(
            "Project {project_id} has no CA yet: it is created with the project's first certificate."
        ),
        vec![project_id.to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_map_to_codes_and_unspecified_is_left_out() {
        assert_eq!(
            reason_code(Some("keyCompromise")),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            reason_code(Some("privilegeWithdrawn")),
            Some(RevocationReason::PrivilegeWithdrawn)
        );
        assert_eq!(reason_code(Some("unspecified")), None);
        assert_eq!(reason_code(Some("certificateHold")), None);
        assert_eq!(reason_code(None), None);
    }
}
