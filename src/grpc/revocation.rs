//! The revocation calls of `dbcert.v1.CertificateService` (dbcert's extension):
//! `RevokeUserCertificate`, `RevokeUserCertificates` and `ListUserCertificateStatuses`. The
//! service trait's impl (`certificates.rs`) delegates to these functions.

use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::Services;
use super::convert::{page, page_parts, timestamp};
use super::status::to_status;
use crate::domain::{self, CertificateState, CertificateStatus, RevocationReason};
use crate::proto::v1::{
    self, ListUserCertificateStatusesRequest, ListUserCertificateStatusesResponse,
    RevokeUserCertificateRequest, RevokeUserCertificateResponse, RevokeUserCertificatesRequest,
    RevokeUserCertificatesResponse,
};

/// `RevokeUserCertificate`.
pub(super) async fn revoke_user_certificate(
    services: &Services,
    request: Request<RevokeUserCertificateRequest>,
) -> Result<Response<RevokeUserCertificateResponse>, Status> {
    let principal = services.authenticate(&request).await?;
    let req = request.into_inner();
    let reason = reason_from_proto(req.reason).map_err(to_status)?;
    let state = services
        .core
        .revoke_user_certificate(
            &principal,
            &req.group_id,
            &req.username,
            req.serial_number,
            reason,
        )
        .await
        .map_err(to_status)?;
    let now = services.core.now();
    Ok(Response::new(RevokeUserCertificateResponse {
        certificate: Some(status_to_proto(state, now)),
    }))
}

/// `RevokeUserCertificates`.
pub(super) async fn revoke_user_certificates(
    services: &Services,
    request: Request<RevokeUserCertificatesRequest>,
) -> Result<Response<RevokeUserCertificatesResponse>, Status> {
    let principal = services.authenticate(&request).await?;
    let req = request.into_inner();
    let reason = reason_from_proto(req.reason).map_err(to_status)?;
    let revoked = services
        .core
        .revoke_user_certificates(&principal, &req.group_id, &req.username, reason)
        .await
        .map_err(to_status)?;
    let now = services.core.now();
    Ok(Response::new(RevokeUserCertificatesResponse {
        revoked: revoked
            .into_iter()
            .map(|state| status_to_proto(state, now))
            .collect(),
    }))
}

/// `ListUserCertificateStatuses`.
pub(super) async fn list_user_certificate_statuses(
    services: &Services,
    request: Request<ListUserCertificateStatusesRequest>,
) -> Result<Response<ListUserCertificateStatusesResponse>, Status> {
    let principal = services.authenticate(&request).await?;
    let req = request.into_inner();
    let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
    let states = services
        .core
        .list_user_certificate_states(&principal, &req.group_id, &req.username, page)
        .await
        .map_err(to_status)?;
    let now = services.core.now();
    let (results, total_count, has_next_page) =
        page_parts(states, |state| status_to_proto(state, now));
    Ok(Response::new(ListUserCertificateStatusesResponse {
        results,
        total_count,
        has_next_page,
    }))
}

/// The reason of a request; an unknown number is `INVALID_ENUM_VALUE`.
fn reason_from_proto(value: i32) -> domain::AtlasResult<RevocationReason> {
    use v1::RevocationReason as P;
    match P::try_from(value) {
        Ok(P::Unspecified) => Ok(RevocationReason::Unspecified),
        Ok(P::KeyCompromise) => Ok(RevocationReason::KeyCompromise),
        Ok(P::CaCompromise) => Ok(RevocationReason::CaCompromise),
        Ok(P::AffiliationChanged) => Ok(RevocationReason::AffiliationChanged),
        Ok(P::Superseded) => Ok(RevocationReason::Superseded),
        Ok(P::CessationOfOperation) => Ok(RevocationReason::CessationOfOperation),
        Ok(P::PrivilegeWithdrawn) => Ok(RevocationReason::PrivilegeWithdrawn),
        Err(_) => Err(domain::AtlasError::invalid_enum_value(
            "reason",
            &value.to_string(),
        )),
    }
}

/// The protobuf reason of a reason.
pub fn reason_to_proto(reason: RevocationReason) -> v1::RevocationReason {
    use v1::RevocationReason as P;
    match reason {
        RevocationReason::Unspecified => P::Unspecified,
        RevocationReason::KeyCompromise => P::KeyCompromise,
        RevocationReason::CaCompromise => P::CaCompromise,
        RevocationReason::AffiliationChanged => P::AffiliationChanged,
        RevocationReason::Superseded => P::Superseded,
        RevocationReason::CessationOfOperation => P::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => P::PrivilegeWithdrawn,
    }
}

/// A certificate and its status at `now`.
fn status_to_proto(state: CertificateState, now: OffsetDateTime) -> v1::UserCertificateStatus {
    let (status, revoked_at, reason) = match state.status(now) {
        CertificateStatus::Valid => (v1::CertificateStatus::Valid, None, None),
        CertificateStatus::Expired => (v1::CertificateStatus::Expired, None, None),
        CertificateStatus::Revoked(revocation) => (
            v1::CertificateStatus::Revoked,
            Some(timestamp(revocation.at)),
            Some(revocation.reason),
        ),
    };
    let record = state.record;
    v1::UserCertificateStatus {
        serial_number: record.serial,
        subject: record.subject,
        group_id: record.project_id.to_string(),
        created_at: Some(timestamp(record.not_before)),
        not_after: Some(timestamp(record.not_after)),
        status: status as i32,
        revoked_at,
        reason: reason.map_or(v1::RevocationReason::Unspecified, reason_to_proto) as i32,
        sha256_fingerprint: record.sha256_fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_keeps_its_rfc_5280_code_as_its_proto_number() {
        for &reason in RevocationReason::ALL {
            let proto = reason_to_proto(reason);
            assert_eq!(proto as i32, i32::from(reason.code()), "{reason}");
            assert_eq!(reason_from_proto(proto as i32).ok(), Some(reason));
        }
        assert!(
            reason_from_proto(6).is_err(),
            "certificateHold is not offered"
        );
    }
}
