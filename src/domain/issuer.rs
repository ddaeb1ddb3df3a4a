//! The issue pipeline: parse → authorise → check the user and the project's mode → load or
//! create the project CA → sign on a blocking thread → record durably → respond.

use std::sync::Arc;

use tracing::{info, warn};

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, Principal};
use super::ca::{CaError, IssuedCertificate, ProjectCa, random_serial};
use super::ca_rotation::{FIRST_GENERATION, IssuingCa, ca_key_context};
use super::core::{Core, store_error};
use super::csr::CsrPublicKey;
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::key_pool::PooledKey;
use super::key_type::KeyType;
use super::model::{
    CertificateRecord, DatabaseName, Page, Paged, Project, ProjectId, Username, X509Type,
};
use super::revocation_pointers::RevocationPointers;
use super::store::{CertificateLimit, NewCertificate, StoreError, StoredCa};
use super::validity::{Months, Validity};

/// Where a new certificate's key comes from.
#[derive(Clone, Copy, Debug)]
pub enum KeySource<'a> {
    /// dbcert generates a key of this type and returns it with the certificate.
    Generate(KeyType),
    /// The public key of this PEM certificate signing request (see `csr.rs`); the caller
    /// keeps the private key.
    Csr(&'a str),
}

/// The key asked for, once a CSR is verified.
enum RequestedKey {
    /// A key of this type, to generate (or take from the pool).
    Generate(KeyType),
    /// A CSR's verified public key.
    Csr(CsrPublicKey),
}

/// The key a certificate is being signed for.
enum LeafKey {
    /// A generated key pair (returned to the caller).
    Generated(PooledKey, KeyType),
    /// A CSR's verified public key.
    Csr(CsrPublicKey),
}

/// How often a serial collision (one in 2^63) is retried before giving up.
const SERIAL_ATTEMPTS: usize = 3;
/// How often a CA creation is retried when the project's CA key type changes meanwhile.
const CA_CREATION_ATTEMPTS: usize = 3;

impl Core {
    /// Creates a certificate for a MANAGED database user: with a private key of the given type,
    /// or for the public key of a certificate signing request (checked before anything else
    /// is read or recorded; see `csr.rs`).
    pub async fn create_user_certificate(
        &self,
        principal: &Principal,
        group_id: &str,
        username: &str,
        months_until_expiration: Option<i64>,
        key_source: KeySource<'_>,
    ) -> AtlasResult<IssuedCertificate> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let username = Username::parse(username)?;
        let months = Months::parse(months_until_expiration)?;
        // A CSR is checked here, before anything is read or written: a refused one leaves
        // no trace (not even the project's CA).
        let requested = match key_source {
            KeySource::Generate(key_type) => RequestedKey::Generate(key_type),
            KeySource::Csr(pem) => RequestedKey::Csr(CsrPublicKey::parse(pem, &username)?),
        };

        let security = self
            .store
            .user_security(&project.id)
            .await
            .map_err(store_error)?;
        if security.customer_ca_pem.is_some() {
            return Err(AtlasError::new(
                ErrorCode::CannotGenerateCertIfAdvancedX509,
                "Cannot generate X.509 certificates while self-managed X.509 is enabled.",
                Vec::new(),
            ));
        }
        let user = self
            .store
            .database_user(&project.id, DatabaseName::External, &username)
            .await
            .map_err(store_error)?;
        let user = match user {
            Some(user) => user,
            None => self
                .store
                .database_user(&project.id, DatabaseName::Admin, &username)
                .await
                .map_err(store_error)?
                .ok_or_else(|| AtlasError::username_not_found(username.as_str()))?,
        };
        if user.x509_type != X509Type::Managed {
            return Err(AtlasError::new(
                ErrorCode::UserNotManagedX509,
                "The user does not have managed mode X509 enabled.",
                Vec::new(),
            ));
        }

        // An early refusal from the (possibly cached) count, before any key is spent; the
        // limit itself is enforced when the certificate is recorded, in the transaction that
        // records it (concurrent issues here or on other replicas all pass this check).
        let now = self.clock.now();
        let limit = CertificateLimit {
            max: self.settings.max_certificates_per_user,
            now,
        };
        let held = self
            .store
            .count_unexpired_certificates(&project.id, username.as_str(), now)
            .await
            .map_err(store_error)?;
        if held >= limit.max {
            return Err(limit_exceeded(&username, limit.max));
        }

        let IssuingCa {
            generation: ca_generation,
            ca,
        } = self.project_ca(&project).await?;
        let validity = Validity::for_months(now, months, ca.not_after());
        // The revocation pointers the operator opted into name this CA generation's CRL.
        let pointers = self
            .settings
            .leaf_revocation_pointers
            .as_ref()
            .map_or(RevocationPointers::NONE, |settings| {
                settings.for_leaf(&project.id, ca_generation)
            });

        // A CSR's key; else a ready key from the pool when there is one; else a fresh one. RSA
        // key generation (RSA-4096: about 0.7 s of CPU) and RSA signing (milliseconds) run on
        // blocking threads; ECDSA generation and signing take tens of microseconds and run
        // inline.
        let (mut key, inline) = match requested {
            RequestedKey::Csr(csr) => (
                LeafKey::Csr(csr),
                !ca.key_type().is_expensive_to_sign_with(),
            ),
            RequestedKey::Generate(key_type) => {
                let pooled = self.key_pool.take(key_type);
                let inline = !ca.key_type().is_expensive_to_sign_with()
                    && (pooled.is_some() || !key_type.is_expensive_to_generate());
                let key = match pooled {
                    Some(key) => key,
                    None if inline => key_type
                        .generate()
                        .map(PooledKey::new)
                        .map_err(AtlasError::internal)?,
                    None => {
                        tokio::task::spawn_blocking(move || key_type.generate().map(PooledKey::new))
                            .await
                            .map_err(AtlasError::internal)?
                            .map_err(AtlasError::internal)?
                    }
                };
                (LeafKey::Generated(key, key_type), inline)
            }
        };

        for attempt in 1..=SERIAL_ATTEMPTS {
            let serial = random_serial();
            let issued = if inline {
                key.sign(&ca, &username, validity, serial, &pointers)
            } else {
                let (signing_ca, subject_user, leaf_pointers) =
                    (ca.clone(), username.clone(), pointers.clone());
                let (issued, returned_key) = tokio::task::spawn_blocking(move || {
                    let issued =
                        key.sign(&signing_ca, &subject_user, validity, serial, &leaf_pointers);
                    (issued, key)
                })
                .await
                .map_err(AtlasError::internal)?;
                key = returned_key;
                issued
            };
            // On error the key is dropped, which zeroizes it.
            let issued = issued.map_err(AtlasError::internal)?;
            let record = CertificateRecord {
                serial: issued.serial,
                project_id: project.id.clone(),
                username: username.to_string(),
                subject: issued.subject.clone(),
                not_before: validity.not_before,
                not_after: validity.not_after,
                sha256_fingerprint: issued.sha256_fingerprint.clone(),
                ca_generation,
            };
            let event = AuditEvent::by(
                principal,
                now,
                AuditAction::CertificateIssued,
                Some(&project.id),
            )
            .with_target(username.as_str());
            let event = AuditEvent {
                serial: Some(issued.serial),
                ..event
            };
            let certificate = NewCertificate {
                record,
                event,
                limit,
                user_must_exist: true,
            };
            match self.store.record_certificate(&certificate).await {
                Ok(()) => {
                    // rcgen keeps the key's PKCS#8 bytes and does not wipe them on drop; the
                    // pooled key wrapper does.
                    drop(key);
                    certificate.event.log();
                    info!(
                        project_id = %project.id,
                        serial = issued.serial,
                        sha256 = %issued.sha256_fingerprint,
                        not_after = %validity.not_after,
                        key_id = %principal.key_id,
                        key_source = issued_key_source(&issued),
                        "issued client certificate"
                    );
                    return Ok(issued);
                }
                Err(StoreError::Conflict) if attempt < SERIAL_ATTEMPTS => {
                    warn!(project_id = %project.id, serial, "serial collision, drawing another");
                }
                // Concurrent issues (here or on another replica) took the last places.
                Err(StoreError::LimitReached) => {
                    drop(key);
                    return Err(limit_exceeded(&username, limit.max));
                }
                // Deleted (here or on another replica) while its certificate was being made.
                Err(StoreError::UserGone) => {
                    drop(key);
                    return Err(AtlasError::username_not_found(username.as_str()));
                }
                Err(error) => {
                    drop(key);
                    return Err(store_error(error));
                }
            }
        }
        drop(key);
        Err(AtlasError::internal("serial collisions exhausted"))
    }

    /// Lists a user's unexpired certificates, oldest first. The user may have been deleted.
    pub async fn list_user_certificates(
        &self,
        principal: &Principal,
        group_id: &str,
        username: &str,
        page: Page,
    ) -> AtlasResult<Paged<CertificateRecord>> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        let username = Username::parse(username)?;
        self.store
            .list_certificates(&project.id, username.as_str(), self.clock.now(), page)
            .await
            .map_err(store_error)
    }

    /// Counts every project's certificates unexpired now that expire within `within` (for the
    /// expiry metrics; not an operation of any principal, so nothing is authorised).
    pub async fn count_certificates_expiring_within(
        &self,
        within: std::time::Duration,
    ) -> AtlasResult<u64> {
        let now = self.clock.now();
        self.store
            .count_certificates_expiring(now, now + within)
            .await
            .map_err(store_error)
    }

    /// Loads the project's issuing CA (cached), or creates it: insert-or-read, so concurrent
    /// first issues (in this process or on other replicas) all end up with the one stored CA.
    /// The cached CA is used while the store's issuing generation (read through its cache, so
    /// a rotation on another replica is seen within the cache TTL) is no newer.
    pub(super) async fn project_ca(&self, project: &Project) -> AtlasResult<IssuingCa> {
        let generation = self
            .store
            .project_ca_generation(&project.id)
            .await
            .map_err(store_error)?;
        if let Some(ca) = generation.and_then(|generation| self.cached_ca(&project.id, generation))
        {
            return Ok(ca);
        }
        let lock = {
            let mut locks = self.ca_creation.lock().await;
            locks.entry(project.id.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if let Some(ca) = generation.and_then(|generation| self.cached_ca(&project.id, generation))
        {
            return Ok(ca);
        }
        let ca = match self.load_ca(&project.id).await? {
            Some(ca) => ca,
            None => self.create_ca(project).await?,
        };
        self.cache_ca(&project.id, ca.clone());
        self.ca_creation.lock().await.remove(&project.id);
        Ok(ca)
    }

    /// The cached issuing CA of a project if it is of `generation` or newer.
    fn cached_ca(&self, project_id: &ProjectId, generation: u32) -> Option<IssuingCa> {
        self.ca_cache
            .lock()
            .expect("ca cache lock must not be poisoned")
            .get(project_id)
            .filter(|ca| ca.generation >= generation)
            .cloned()
    }

    /// Caches a project's issuing CA unless a newer generation is cached.
    pub(super) fn cache_ca(&self, project_id: &ProjectId, ca: IssuingCa) {
        let mut cache = self
            .ca_cache
            .lock()
            .expect("ca cache lock must not be poisoned");
        if cache
            .get(project_id)
            .is_none_or(|cached| cached.generation <= ca.generation)
        {
            cache.insert(project_id.clone(), ca);
        }
    }

    /// Forgets the unsealed CAs of a project held in this process, for issuing and for its
    /// CRLs and OCSP answers (the project was deleted: its CA keys are destroyed in the store,
    /// and no copy should outlive them here). Returns whether any was held.
    pub(super) async fn forget_project_cas(&self, project_id: &ProjectId) -> bool {
        let issuing = self
            .ca_cache
            .lock()
            .expect("ca cache lock must not be poisoned")
            .remove(project_id)
            .is_some();
        let revocation = self.crls.forget_project(project_id).await;
        issuing || revocation
    }

    /// Forgets the unsealed CAs held here of projects deleted through any replica (the
    /// background task's sweep; a deletion through this process forgets them at once).
    /// Returns how many projects' CAs went.
    pub async fn forget_deleted_project_cas(&self) -> AtlasResult<usize> {
        let mut held: Vec<ProjectId> = self
            .ca_cache
            .lock()
            .expect("ca cache lock must not be poisoned")
            .keys()
            .cloned()
            .collect();
        held.extend(self.crls.projects());
        held.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        held.dedup();
        let mut forgotten = 0;
        for project_id in held {
            let live = self
                .store
                .project(&project_id)
                .await
                .map_err(store_error)?
                .is_some();
            if !live && self.forget_project_cas(&project_id).await {
                info!(%project_id, "forgot the ca keys of a deleted project");
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Loads and unseals the project's issuing CA.
    async fn load_ca(&self, project_id: &ProjectId) -> AtlasResult<Option<IssuingCa>> {
        let Some(stored) = self
            .store
            .project_ca(project_id)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        self.unseal_ca(project_id, stored).map(Some)
    }

    /// Unseals a stored CA generation.
    pub(super) fn unseal_ca(
        &self,
        project_id: &ProjectId,
        stored: StoredCa,
    ) -> AtlasResult<IssuingCa> {
        let Some(sealed) = stored.sealed_key else {
            return Err(AtlasError::internal("project ca key was destroyed"));
        };
        let key = self
            .keyring
            .open(&ca_key_context(project_id, stored.generation), &sealed)
            .map_err(AtlasError::internal)?;
        let ca = ProjectCa::from_parts(stored.cert_der, &key).map_err(AtlasError::internal)?;
        Ok(IssuingCa {
            generation: stored.generation,
            ca: Arc::new(ca),
        })
    }

    /// Creates the project's CA with the key type of its settings. The store inserts it only
    /// if the setting is unchanged, and fixes the setting in the same transaction.
    async fn create_ca(&self, project: &Project) -> AtlasResult<IssuingCa> {
        for _ in 0..CA_CREATION_ATTEMPTS {
            let key_type = self
                .store
                .user_security(&project.id)
                .await
                .map_err(store_error)?
                .ca_key_type;
            let (project_id, subject, now) = (
                project.id.clone(),
                self.settings.ca_subject.clone(),
                self.clock.now(),
            );
            let new = tokio::task::spawn_blocking(move || {
                ProjectCa::generate(&project_id, &subject, key_type, FIRST_GENERATION, now)
            })
            .await
            .map_err(AtlasError::internal)?
            .map_err(AtlasError::internal)?;
            let sealed = self
                .keyring
                .seal(
                    &ca_key_context(&project.id, FIRST_GENERATION),
                    new.key_pkcs8.secret_der(),
                )
                .map_err(AtlasError::internal)?;
            let stored = StoredCa {
                generation: FIRST_GENERATION,
                cert_der: new.ca.certificate_der().to_vec(),
                sealed_key: Some(sealed),
            };
            match self
                .store
                .insert_project_ca_of_type(&project.id, &stored, key_type, now)
                .await
            {
                Ok(true) => {
                    info!(project_id = %project.id, subject = new.ca.subject(), %key_type, "created project ca");
                    return Ok(IssuingCa {
                        generation: FIRST_GENERATION,
                        ca: Arc::new(new.ca),
                    });
                }
                // The CA key type setting changed since it was read: read it again.
                Ok(false) => {}
                // Another replica created it first: use theirs.
                Err(StoreError::Conflict) => {
                    return self
                        .load_ca(&project.id)
                        .await?
                        .ok_or_else(|| AtlasError::internal("project ca vanished after conflict"));
                }
                Err(error) => return Err(store_error(error)),
            }
        }
        Err(AtlasError::internal(
            "project ca key type kept changing during ca creation",
        ))
    }
}

// === impl LeafKey ===

impl LeafKey {
    /// Signs the Atlas leaf profile (with the opted-in revocation pointers) for this key: the
    /// same profile whether the key was generated or came from a CSR.
    fn sign(
        &self,
        ca: &ProjectCa,
        username: &Username,
        validity: Validity,
        serial: i64,
        pointers: &RevocationPointers,
    ) -> Result<IssuedCertificate, CaError> {
        match self {
            Self::Generated(key, key_type) => ca.issue_with_key(
                username,
                validity,
                serial,
                key.key_pair(),
                *key_type,
                pointers,
            ),
            Self::Csr(key) => ca.issue_for_csr(username, validity, serial, key, pointers),
        }
    }
}

/// `csr` when the certificate's key came from a CSR (no private key), else `generated`.
fn issued_key_source(issued: &IssuedCertificate) -> &'static str {
    if issued.private_key_pem.is_empty() {
        "csr"
    } else {
        "generated"
    }
}

/// `PROJECT_CA_NOT_FOUND`: the project has no CA yet.
pub(super) fn project_ca_not_found(project_id: &ProjectId) -> AtlasError {
    AtlasError::new(
        ErrorCode::ProjectCaNotFound,
        format!(
            "Project {project_id} has no CA yet: it is created with the project's first certificate."
        ),
        vec![project_id.to_string()],
    )
}

/// `ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED`: the user holds `limit` unexpired certificates.
fn limit_exceeded(username: &Username, limit: u64) -> AtlasError {
    AtlasError::new(
        ErrorCode::AtlasGeneratedCertsLimitExceeded,
        format!(
            "The user {username} already has the maximum of {limit} unexpired Atlas-generated certificates."
        ),
        vec![username.to_string(), limit.to_string()],
    )
}
