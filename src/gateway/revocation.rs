//! Revocation over REST, dbcert's own routes under `/api/dbcert/v1` (Atlas has no revoke call):
//!
//! - `POST /groups/{groupId}/databaseUsers/{username}/certs/{serialNumber}/revoke` with
//!   `{"reason": "keyCompromise"}` (reason optional: `unspecified`) revokes one certificate and
//!   answers it with its status (200);
//! - `POST /groups/{groupId}/databaseUsers/{username}/certs/revoke` revokes every certificate
//!   of the user neither expired nor revoked and answers them (`{"revoked": [...]}`, 200);
//! - `GET /groups/{groupId}/databaseUsers/{username}/certs` lists every certificate of the
//!   user with its status (valid, revoked with time and reason, expired), paged like the Atlas
//!   list.
//!
//! Same Digest authentication, roles (GROUP_OWNER to revoke, GROUP_READ_ONLY to list), error
//! body, `pretty` and `envelope` as the Atlas routes.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson, carry};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, entity, list, rpc, timestamp};
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::domain::{RevocationReason, invalid_serial};
use crate::proto::v1;
use crate::proto::v1::certificate_service_server::CertificateService;

/// The routes under `/api/dbcert/v1`.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route(
            "/groups/{group_id}/databaseUsers/{username}/certs",
            get(list_statuses),
        )
        .route(
            "/groups/{group_id}/databaseUsers/{username}/certs/revoke",
            post(revoke_all),
        )
        .route(
            "/groups/{group_id}/databaseUsers/{username}/certs/{serial_number}/revoke",
            post(revoke_one),
        )
}

/// The body of both revoke routes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revoke {
    /// The RFC 5280 reason; absent, `unspecified`.
    reason: Option<ReasonName>,
}

impl AtlasBody for Revoke {}

/// A certificate with its status.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The serial number (the Atlas list's `_id`).
    #[serde(rename = "_id")]
    id: i64,
    created_at: Option<String>,
    group_id: String,
    not_after: Option<String>,
    subject: String,
    /// The SHA-256 fingerprint of the DER certificate, lowercase hex.
    sha256_fingerprint: String,
    /// `VALID`, `REVOKED` or `EXPIRED` (a revoked certificate stays `REVOKED` once expired).
    status: &'static str,
    /// When it was revoked (only when `REVOKED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    /// Why (only when `REVOKED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_reason: Option<&'static str>,
}

/// The answer of the revoke-all route.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedCertificates {
    /// The certificates this call revoked, oldest first (empty: there was none to revoke).
    revoked: Vec<CertificateStatus>,
}

async fn revoke_one(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, username, serial)): AtlasPath<(String, String, String)>,
    AtlasJson(body): AtlasJson<Revoke>,
) -> Handled {
    let serial_number = parse_serial(&serial)?;
    let request = v1::RevokeUserCertificateRequest {
        group_id,
        username,
        serial_number,
        reason: body.reason_proto(),
    };
    let answer =
        CertificateService::revoke_user_certificate(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    let certificate = answer.certificate.map(status_of).ok_or_else(|| {
        ApiError::from_atlas(&crate::domain::AtlasError::internal("no certificate"))
    })?;
    Ok(entity(StatusCode::OK, &certificate))
}

async fn revoke_all(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    AtlasJson(body): AtlasJson<Revoke>,
) -> Handled {
    let request = v1::RevokeUserCertificatesRequest {
        group_id,
        username,
        reason: body.reason_proto(),
    };
    let answer =
        CertificateService::revoke_user_certificates(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    let revoked = RevokedCertificates {
        revoked: answer.revoked.into_iter().map(status_of).collect(),
    };
    Ok(entity(StatusCode::OK, &revoked))
}

async fn list_statuses(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    paging: Paging,
) -> Handled {
    let request = v1::ListUserCertificateStatusesRequest {
        group_id,
        username,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page =
        CertificateService::list_user_certificate_statuses(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    let results = page.results.into_iter().map(status_of).collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

/// A path's serial number: a positive decimal integer of at most 63 bits, else 400
/// `INVALID_SERIAL_NUMBER`.
fn parse_serial(text: &str) -> Result<i64, Reply> {
    let refuse = || Reply::Error(ApiError::from_atlas(&invalid_serial(text)));
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    match text.parse::<i64>() {
        Ok(serial) if serial > 0 => Ok(serial),
        _ => Err(refuse()),
    }
}

fn status_of(c: v1::UserCertificateStatus) -> CertificateStatus {
    let status = match v1::CertificateStatus::try_from(c.status) {
        Ok(v1::CertificateStatus::Revoked) => "REVOKED",
        Ok(v1::CertificateStatus::Expired) => "EXPIRED",
        _ => "VALID",
    };
    let revoked = status == "REVOKED";
    CertificateStatus {
        id: c.serial_number,
        created_at: timestamp(c.created_at),
        group_id: c.group_id,
        not_after: timestamp(c.not_after),
        subject: c.subject,
        sha256_fingerprint: c.sha256_fingerprint,
        status,
        revoked_at: if revoked {
            timestamp(c.revoked_at)
        } else {
            None
        },
        revocation_reason: revoked.then(|| reason_name(c.reason)),
    }
}

/// The API name of a protobuf reason number.
fn reason_name(reason: i32) -> &'static str {
    use v1::RevocationReason as P;
    let reason = match P::try_from(reason) {
        Ok(P::KeyCompromise) => RevocationReason::KeyCompromise,
        Ok(P::CaCompromise) => RevocationReason::CaCompromise,
        Ok(P::AffiliationChanged) => RevocationReason::AffiliationChanged,
        Ok(P::Superseded) => RevocationReason::Superseded,
        Ok(P::CessationOfOperation) => RevocationReason::CessationOfOperation,
        Ok(P::PrivilegeWithdrawn) => RevocationReason::PrivilegeWithdrawn,
        Ok(P::Unspecified) | Err(_) => RevocationReason::Unspecified,
    };
    reason.as_str()
}

impl Revoke {
    fn reason_proto(&self) -> i32 {
        self.reason
            .map_or(v1::RevocationReason::Unspecified, |r| r.0) as i32
    }
}

/// A revocation reason by its RFC 5280 name: a string that is not one is 400
/// `INVALID_ENUM_VALUE` naming it; a value that is not a string is `INVALID_ATTRIBUTE`.
#[derive(Clone, Copy, Debug)]
pub struct ReasonName(v1::RevocationReason);

impl<'de> Deserialize<'de> for ReasonName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use v1::RevocationReason as P;
        let name = String::deserialize(deserializer)?;
        let reason = match RevocationReason::parse(&name) {
            Some(RevocationReason::Unspecified) => P::Unspecified,
            Some(RevocationReason::KeyCompromise) => P::KeyCompromise,
            Some(RevocationReason::CaCompromise) => P::CaCompromise,
            Some(RevocationReason::AffiliationChanged) => P::AffiliationChanged,
            Some(RevocationReason::Superseded) => P::Superseded,
            Some(RevocationReason::CessationOfOperation) => P::CessationOfOperation,
            Some(RevocationReason::PrivilegeWithdrawn) => P::PrivilegeWithdrawn,
            None => return Err(carry(ApiError::invalid_enum_value(&name))),
        };
        Ok(Self(reason))
    }
}

impl JsonSchema for ReasonName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "RevocationReason".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
        json_schema!({"type": "string", "enum": names})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_decimal_63_bit_integers() {
        assert_eq!(parse_serial("1").ok(), Some(1));
        assert_eq!(
            parse_serial("9223372036854775807").ok(),
            Some(i64::MAX),
            "the largest"
        );
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1e3",
            "0x10",
            " 1",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert!(parse_serial(bad).is_err(), "{bad:?}");
        }
    }
}
