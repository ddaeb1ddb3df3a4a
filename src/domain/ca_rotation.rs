//! Project CA rotation: a new CA generation becomes the issuing CA at once, and the older ones
//! stay in the project's trust bundle while a certificate they signed is unexpired and not
//! revoked, then drop out. (Master key rotation, which re-seals CA keys, is `rotation.rs`.)
//!
//! Generations are numbered from 1 (the project's first CA, made with its first certificate);
//! a rotation reads the issuing generation `n` and stores `n + 1` only if `n` still issues
//! (a compare-and-set in the store), so rotations racing on any replicas end with exactly one
//! new CA: the others change nothing and get `PROJECT_CA_ROTATION_CONFLICT` (409, gRPC
//! `ABORTED`), and may read the new CA and try again if they still want another.

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::info;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, Principal};
use super::ca::{ProjectCa, pem_encode};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::issuer::project_ca_not_found;
use super::key_type::KeyType;
use super::model::ProjectId;
use super::store::{StoreError, StoredCa};

/// The generation of a project's first CA.
pub const FIRST_GENERATION: u32 = 1;

/// A project's issuing CA, unsealed, with its generation.
#[derive(Clone, Debug)]
pub struct IssuingCa {
    /// Which of the project's CAs it is (1 the first; each rotation adds one).
    pub generation: u32,
    /// The CA, ready to sign.
    pub ca: Arc<ProjectCa>,
}

/// One CA certificate of a project (no key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificate {
    /// Which of the project's CAs it is.
    pub generation: u32,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Its subject (RFC 4514 string).
    pub subject: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

/// A project's trust bundle: the CAs a mongod must trust for every certificate of the project
/// that is unexpired and not revoked, the issuing CA first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    /// The CAs, newest generation (the issuing CA) first; never empty.
    pub cas: Vec<CaCertificate>,
}

// === impl CaBundle ===

impl CaBundle {
    /// The issuing CA.
    pub fn issuing(&self) -> &CaCertificate {
        &self.cas[0]
    }

    /// Every CA's PEM, concatenated: the file for mongod's `net.tls.CAFile`.
    pub fn pem(&self) -> String {
        self.cas
            .iter()
            .map(|ca| ca.certificate_pem.as_str())
            .collect()
    }
}

// === impl Core ===

impl Core {
    /// Returns the project's trust bundle (read role), the issuing CA first;
    /// `PROJECT_CA_NOT_FOUND` (404) before the first certificate.
    ///
    /// A read never creates the CA: creating it fixes the project's CA key type for good, and
    /// a read-only key must not be able to change what the owner may still decide (a GET is
    /// safe, RFC 9110 section 9.2.1; a CA authority such as AWS Private CA answers a CA that
    /// is not yet issued with an error rather than making one on read). The answer is the same
    /// for every caller that may read the project, whatever its write access, so REST and
    /// gRPC, readers and owners see one rule: the CA is created with the first certificate.
    /// Only certificates are read: no CA key is unsealed.
    pub async fn project_ca_certificate(
        &self,
        principal: &Principal,
        group_id: &str,
    ) -> AtlasResult<CaBundle> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        let stored = self
            .store
            .trusted_project_cas(&project.id, self.clock.now())
            .await
            .map_err(store_error)?;
        if stored.is_empty() {
            return Err(project_ca_not_found(&project.id));
        }
        let cas = stored
            .iter()
            .map(|ca| ca_certificate(ca.generation, &ca.cert_der))
            .collect::<AtlasResult<Vec<_>>>()?;
        Ok(CaBundle { cas })
    }

    /// Rotates the project's CA (GROUP_OWNER): generates a CA of `key_type` (absent: the
    /// project's current CA key type setting), which issues from now on, and records the
    /// `PROJECT_CA_ROTATED` event with it. Older CAs stay in the trust bundle while they have
    /// live certificates. `PROJECT_CA_NOT_FOUND` before the project's first CA;
    /// `PROJECT_CA_ROTATION_CONFLICT` when another rotation came first.
    pub async fn rotate_project_ca(
        &self,
        principal: &Principal,
        group_id: &str,
        key_type: Option<KeyType>,
    ) -> AtlasResult<CaCertificate> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        if let Some(key_type) = key_type.filter(|key_type| !key_type.allowed_for_ca()) {
            return Err(AtlasError::invalid_enum_value(
                "ca_key_type",
                key_type.as_str(),
            ));
        }
        // Read from the database, not a cache: the generation this rotation starts from.
        let current = self
            .store
            .project_ca(&project.id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| project_ca_not_found(&project.id))?;
        let key_type = match key_type {
            Some(key_type) => key_type,
            None => {
                self.store
                    .user_security(&project.id)
                    .await
                    .map_err(store_error)?
                    .ca_key_type
            }
        };
        let generation = current
            .generation
            .checked_add(1)
            .ok_or_else(|| AtlasError::internal("project ca generations exhausted"))?;
        let (project_id, subject, now) = (
            project.id.clone(),
            self.settings.ca_subject.clone(),
            self.clock.now(),
        );
        let new = tokio::task::spawn_blocking(move || {
            ProjectCa::generate(&project_id, &subject, key_type, generation, now)
        })
        .await
        .map_err(AtlasError::internal)?
        .map_err(AtlasError::internal)?;
        let sealed = self
            .keyring
            .seal(
                &ca_key_context(&project.id, generation),
                new.key_pkcs8.secret_der(),
            )
            .map_err(AtlasError::internal)?;
        let stored = StoredCa {
            generation,
            cert_der: new.ca.certificate_der().to_vec(),
            sealed_key: Some(sealed),
        };
        let event = AuditEvent::by(
            principal,
            now,
            AuditAction::ProjectCaRotated,
            Some(&project.id),
        )
        .with_target(format!("generation {generation}"));
        match self
            .store
            .rotate_project_ca(&project.id, &stored, key_type, now, &event)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(AtlasError::new(
                    ErrorCode::ProjectCaRotationConflict,
                    format!(
                        "Another rotation of project {}'s CA came first: generation {} is not the issuing CA any more. Read the CA and rotate again if another is still wanted.",
                        project.id, current.generation
                    ),
                    vec![project.id.to_string(), current.generation.to_string()],
                ));
            }
            Err(error) => return Err(store_error(error)),
        }
        event.log();
        info!(
            project_id = %project.id,
            generation,
            previous_generation = current.generation,
            subject = new.ca.subject(),
            %key_type,
            key_id = %principal.key_id,
            "rotated project ca"
        );
        let answer = CaCertificate {
            generation,
            certificate_pem: new.ca.certificate_pem().to_owned(),
            subject: new.ca.subject().to_owned(),
            not_before: new.ca.not_before(),
            not_after: new.ca.not_after(),
        };
        self.cache_ca(
            &project.id,
            IssuingCa {
                generation,
                ca: Arc::new(new.ca),
            },
        );
        Ok(answer)
    }
}

/// The AEAD context binding a sealed CA key to its project and generation. Generation 1 keeps
/// the context of the CAs made before rotation existed, so their sealed keys open unchanged.
pub fn ca_key_context(project_id: &ProjectId, generation: u32) -> String {
    if generation == FIRST_GENERATION {
        format!("dbcert/v1/project-ca-key/{project_id}")
    } else {
        format!("dbcert/v1/project-ca-key/{project_id}/generation/{generation}")
    }
}

/// Reads a stored CA certificate's subject and validity.
fn ca_certificate(generation: u32, der: &[u8]) -> AtlasResult<CaCertificate> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| AtlasError::internal("stored project ca certificate is unreadable"))?;
    Ok(CaCertificate {
        generation,
        certificate_pem: pem_encode("CERTIFICATE", der),
        subject: parsed.subject().to_string(),
        not_before: parsed.validity().not_before.to_datetime(),
        not_after: parsed.validity().not_after.to_datetime(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_contexts_differ_per_generation_and_keep_the_first() {
        let id = ProjectId::parse("5f1d2c3b4a5968778695a4b3").unwrap();
        assert_eq!(
            ca_key_context(&id, 1),
            "dbcert/v1/project-ca-key/5f1d2c3b4a5968778695a4b3"
        );
        assert_ne!(ca_key_context(&id, 2), ca_key_context(&id, 1));
        assert_ne!(ca_key_context(&id, 2), ca_key_context(&id, 3));
    }
}
