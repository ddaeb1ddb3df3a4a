//! Revocation of issued certificates: dbcert's extension (Atlas records
//! `MONGODB_USER_X509_CERT_REVOKED` events but has no public revoke call). A certificate is
//! revoked once, with a time and an RFC 5280 reason (section 5.3.1); a revoked certificate
//! leaves the Atlas listing and its user's limit, and stays in the status listing, the CRL
//! (`revoked_certificates`) and the OCSP answers (`certificate_state`) until it expires.
//!
//! Deleting a `$external` database user revokes its unexpired certificates
//! (`cessationOfOperation`) in the transaction that deletes it
//! ([`RevocationStore::delete_database_user_revoking`]): MONGODB-X509 maps a certificate's
//! subject to a user name, so a re-created user of that name would otherwise revive them.

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::info;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{ApiKeyId, CertificateRecord, DatabaseName, Page, Paged, ProjectId, Username};
use super::store::StoreResult;

/// Why a certificate was revoked: the RFC 5280 `CRLReason`s a CA may state for a leaf
/// certificate (`removeFromCRL` and `aACompromise` are not revocations of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RevocationReason {
    /// No reason given (`unspecified`, 0): the default.
    #[default]
    Unspecified,
    /// The certificate's private key was compromised (`keyCompromise`, 1).
    KeyCompromise,
    /// The CA's key was compromised (`cACompromise`, 2).
    CaCompromise,
    /// The subject's affiliation changed (`affiliationChanged`, 3).
    AffiliationChanged,
    /// A new certificate replaces it (`superseded`, 4).
    Superseded,
    /// It is no longer needed; a deleted user's certificates (`cessationOfOperation`, 5).
    CessationOfOperation,
    /// A privilege it held was withdrawn (`privilegeWithdrawn`, 9).
    PrivilegeWithdrawn,
}

/// When and why a certificate was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// When (seconds precision, as stored).
    pub at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// A certificate with its revocation, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateState {
    /// The certificate.
    pub record: CertificateRecord,
    /// Its revocation; `None`: not revoked.
    pub revocation: Option<Revocation>,
}

/// The status of a certificate at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Neither revoked nor expired.
    Valid,
    /// Revoked (whether or not it has expired since).
    Revoked(Revocation),
    /// Expired without being revoked.
    Expired,
}

/// A revoked certificate as a CRL lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Its serial number.
    pub serial: i64,
    /// When and why it was revoked.
    pub revocation: Revocation,
    /// Its notAfter: a CRL lists it until then.
    pub not_after: OffsetDateTime,
}

/// What revoking one certificate by serial found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// It is revoked now (the record as it was).
    Revoked(CertificateRecord),
    /// It was revoked before; nothing changed.
    AlreadyRevoked(Revocation),
    /// The project has no certificate of that serial; nothing changed.
    NotFound,
    /// The project's certificate of that serial belongs to another user; nothing changed.
    OtherUser,
}

/// A revocation to write: when and why, and the audit event each revoked certificate gets
/// (see [`revocation_event`]).
#[derive(Clone, Debug)]
pub struct RevokeRequest {
    /// When and why.
    pub revocation: Revocation,
    /// The event of the revocation, without serial (the store gives each certificate its own
    /// copy, with a fresh id and the serial).
    pub event: AuditEvent,
}

/// The store side of revocation (implemented by `crate::storage`, `storage/revocation.rs`).
/// Every write is one transaction: the certificates' revocation, their audit events, and the
/// lowering of their user's held count (`held` stays at least the user's certificates neither
/// expired nor revoked), serialised with issues of the same user on any replica.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Revokes the project's certificate `serial` if it was issued to `username` and is not
    /// revoked; otherwise changes nothing and says why.
    async fn revoke_certificate(
        &self,
        project_id: &ProjectId,
        username: &str,
        serial: i64,
        request: &RevokeRequest,
    ) -> StoreResult<RevokeOutcome>;

    /// Revokes every certificate of a user neither expired at `request.revocation.at` nor
    /// revoked; returns them, oldest first.
    async fn revoke_user_certificates(
        &self,
        project_id: &ProjectId,
        username: &str,
        request: &RevokeRequest,
    ) -> StoreResult<Vec<CertificateRecord>>;

    /// Deletes a database user and, with `revoke`, revokes its username's certificates as
    /// [`Self::revoke_user_certificates`] does, in one transaction. With `due`, only a user
    /// whose deleteAfterDate is at or before it (of replicas racing on the row, one deletes
    /// it). `None` when no user was deleted (nothing changed); else the certificates it
    /// revoked.
    async fn delete_database_user_revoking(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
        revoke: Option<&RevokeRequest>,
        due: Option<OffsetDateTime>,
    ) -> StoreResult<Option<Vec<CertificateRecord>>>;

    /// Lists every certificate issued to a user (expired and revoked ones too) with its
    /// revocation, oldest first (by notBefore, then serial), read from the database (never
    /// cached: another replica's revocation shows at once).
    async fn list_certificate_states(
        &self,
        project_id: &ProjectId,
        username: &str,
        page: Page,
    ) -> StoreResult<Paged<CertificateState>>;

    /// Returns the project's certificate `serial` with its revocation (an OCSP answer).
    async fn certificate_state(
        &self,
        project_id: &ProjectId,
        serial: i64,
    ) -> StoreResult<Option<CertificateState>>;

    /// Lists the project's revoked certificates unexpired at `now`, by serial (a CRL).
    async fn revoked_certificates(
        &self,
        project_id: &ProjectId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<RevokedCertificate>>;
}

/// The audit event of one revoked certificate: `request`'s event with a fresh id and the
/// certificate's serial.
pub fn revocation_event(request: &RevokeRequest, record: &CertificateRecord) -> AuditEvent {
    AuditEvent {
        id: ApiKeyId::generate(request.event.at).as_str().to_owned(),
        serial: Some(record.serial),
        target: Some(record.username.clone()),
        ..request.event.clone()
    }
}

// === impl RevocationReason ===

impl RevocationReason {
    /// Every reason.
    pub const ALL: &[Self] = &[
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The name the API and the store use (RFC 5280's, `caCompromise` spelled so).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "caCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Parses a name of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// The `CRLReason` code (RFC 5280 section 5.3.1).
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// The reason of a `CRLReason` code.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| i64::from(r.code()) == code)
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl CertificateState ===

impl CertificateState {
    /// Its status at `now`: revoked (even once expired), expired, or valid.
    pub fn status(&self, now: OffsetDateTime) -> CertificateStatus {
        match self.revocation {
            Some(revocation) => CertificateStatus::Revoked(revocation),
            None if self.record.not_after <= now => CertificateStatus::Expired,
            None => CertificateStatus::Valid,
        }
    }
}

// === impl Core ===

impl Core {
    /// Revokes one of a user's certificates by serial. Needs GROUP_OWNER. Revoking it again,
    /// an unknown serial (another project's included) and another user's serial are refused,
    /// each with its own error, and change nothing.
    pub async fn revoke_user_certificate(
        &self,
        principal: &Principal,
        group_id: &str,
        username: &str,
        serial: i64,
        reason: RevocationReason,
    ) -> AtlasResult<CertificateState> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let username = Username::parse(username)?;
        if serial <= 0 {
            return Err(invalid_serial(&serial.to_string()));
        }
        let request = self.revoke_request(principal, &project.id, reason);
        let outcome = self
            .store
            .revoke_certificate(&project.id, username.as_str(), serial, &request)
            .await
            .map_err(store_error)?;
        match outcome {
            RevokeOutcome::Revoked(record) => {
                log_revoked(&request, &record, &principal.key_id.to_string());
                self.crl_after_revocation(&project.id).await;
                Ok(CertificateState {
                    record,
                    revocation: Some(request.revocation),
                })
            }
            RevokeOutcome::AlreadyRevoked(revocation) => Err(AtlasError::new(
                ErrorCode::CertificateAlreadyRevoked,
                format!(
                    "The certificate with serial number {serial} was already revoked ({}).",
                    revocation.reason
                ),
                vec![serial.to_string()],
            )),
            RevokeOutcome::NotFound => Err(AtlasError::new(
                ErrorCode::CertificateNotFound,
                format!(
                    "No certificate with serial number {serial} exists in group {}.",
                    project.id
                ),
                vec![serial.to_string(), project.id.to_string()],
            )),
            RevokeOutcome::OtherUser => Err(AtlasError::new(
                ErrorCode::CertificateNotIssuedToUser,
                format!(
                    "The certificate with serial number {serial} was not issued to user {username}."
                ),
                vec![serial.to_string(), username.to_string()],
            )),
        }
    }

    /// Revokes every certificate of a user that is neither expired nor revoked; returns them
    /// (none is not an error). Needs GROUP_OWNER. The user may have been deleted.
    pub async fn revoke_user_certificates(
        &self,
        principal: &Principal,
        group_id: &str,
        username: &str,
        reason: RevocationReason,
    ) -> AtlasResult<Vec<CertificateState>> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let username = Username::parse(username)?;
        let request = self.revoke_request(principal, &project.id, reason);
        let revoked = self
            .store
            .revoke_user_certificates(&project.id, username.as_str(), &request)
            .await
            .map_err(store_error)?;
        let key_id = principal.key_id.to_string();
        if !revoked.is_empty() {
            self.crl_after_revocation(&project.id).await;
        }
        Ok(revoked
            .into_iter()
            .map(|record| {
                log_revoked(&request, &record, &key_id);
                CertificateState {
                    record,
                    revocation: Some(request.revocation),
                }
            })
            .collect())
    }

    /// Lists every certificate of a user (valid, revoked, expired), oldest first. Needs
    /// GROUP_READ_ONLY. The user may have been deleted.
    pub async fn list_user_certificate_states(
        &self,
        principal: &Principal,
        group_id: &str,
        username: &str,
        page: Page,
    ) -> AtlasResult<Paged<CertificateState>> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        let username = Username::parse(username)?;
        self.store
            .list_certificate_states(&project.id, username.as_str(), page)
            .await
            .map_err(store_error)
    }

    /// A revocation by `principal` now, truncated to seconds (what the store keeps).
    pub(super) fn revoke_request(
        &self,
        principal: &Principal,
        project_id: &ProjectId,
        reason: RevocationReason,
    ) -> RevokeRequest {
        let now = self.clock.now();
        let at = now.replace_nanosecond(0).unwrap_or(now);
        RevokeRequest {
            revocation: Revocation { at, reason },
            event: AuditEvent::by(
                principal,
                now,
                AuditAction::CertificateRevoked,
                Some(project_id),
            ),
        }
    }
}

/// Logs a revocation and its audit event (the event itself was stored with it).
pub(super) fn log_revoked(request: &RevokeRequest, record: &CertificateRecord, key_id: &str) {
    revocation_event(request, record).log();
    info!(
        project_id = %record.project_id,
        serial = record.serial,
        sha256 = %record.sha256_fingerprint,
        reason = %request.revocation.reason,
        key_id,
        "revoked client certificate"
    );
}

/// `INVALID_SERIAL_NUMBER`: a serial number that is not a positive 63-bit decimal integer.
pub fn invalid_serial(value: &str) -> AtlasError {
    AtlasError::new(
        ErrorCode::InvalidSerialNumber,
        format!(
            "Invalid serial number {value} specified: a certificate serial number is a positive \
             decimal integer."
        ),
        vec![value.to_owned()],
    )
    .with_field("serial_number")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_by_name_and_code() {
        for &reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                RevocationReason::from_code(i64::from(reason.code())),
                Some(reason)
            );
        }
        assert_eq!(RevocationReason::parse("KeyCompromise"), None);
        assert_eq!(RevocationReason::from_code(6), None, "certificateHold");
        assert_eq!(RevocationReason::from_code(8), None, "removeFromCRL");
        assert_eq!(RevocationReason::PrivilegeWithdrawn.code(), 9);
    }

    #[test]
    fn status_puts_revoked_before_expired() {
        let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let mut state = CertificateState {
            record: CertificateRecord {
                serial: 7,
                project_id: ProjectId::generate(t(0)),
                username: "u".into(),
                subject: "CN=u".into(),
                not_before: t(0),
                not_after: t(100),
                sha256_fingerprint: String::new(),
                ca_generation: 1,
            },
            revocation: None,
        };
        assert_eq!(state.status(t(99)), CertificateStatus::Valid);
        assert_eq!(state.status(t(100)), CertificateStatus::Expired);
        let revocation = Revocation {
            at: t(50),
            reason: RevocationReason::Superseded,
        };
        state.revocation = Some(revocation);
        assert_eq!(state.status(t(60)), CertificateStatus::Revoked(revocation));
        assert_eq!(state.status(t(200)), CertificateStatus::Revoked(revocation));
    }
}
