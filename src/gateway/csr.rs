//! CSR issuance over REST, dbcert's own route (Atlas has none): `POST
//! /api/dbcert/v1/groups/{groupId}/databaseUsers/{username}/certs` with `{"csr": "<PEM>",
//! "monthsUntilExpiration": N}` answers 201 with the certificate PEM alone (the caller holds the
//! key), with the Content-Type of the Atlas route's PEM answer. Roles and checks are the Atlas
//! route's (GROUP_OWNER, a MANAGED user, the per-user limit, 1 to 24 months, not in
//! self-managed X.509 mode); what the core checks of the request is in `domain/csr.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use schemars::JsonSchema;
use serde::Deserialize;

use super::Gateway;
use super::body::{AtlasBody, AtlasJson};
use super::extract::{AtlasPath, Authenticated};
use super::resource::{Handled, rpc};
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::certificate_service_server::CertificateService;

/// The route under `/api/dbcert/v1`. `{username}` is the database user's name.
pub fn routes(routes: Routes) -> Routes {
    routes.route(
        "/groups/{group_id}/databaseUsers/{username}/certs",
        post(create_certificate_from_csr),
    )
}

/// The body of `POST /api/dbcert/v1/…/certs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsrCertificateRequest {
    /// A PKCS#10 certificate signing request, PEM (`-----BEGIN CERTIFICATE REQUEST-----`), at
    /// most 16 KiB. Its key: RSA 2048, 3072 or 4096 bits, or ECDSA P-256 or P-384; its subject:
    /// empty or exactly `CN=<username>`. Only its public key is used.
    #[schemars(required, length(min = 1, max = crate::domain::MAX_CSR_PEM_BYTES))]
    csr: Option<String>,
    /// 1 to 24; absent, 3.
    #[schemars(range(min = 1, max = crate::domain::MAX_MONTHS))]
    months_until_expiration: Option<i64>,
}

impl AtlasBody for CsrCertificateRequest {}

async fn create_certificate_from_csr(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    AtlasJson(body): AtlasJson<CsrCertificateRequest>,
) -> Handled {
    let Some(csr) = body.csr else {
        return Err(Reply::from(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ATTRIBUTE",
            "The required attribute csr was not specified.",
            vec!["csr".to_owned()],
        )));
    };
    let request = v1::CreateUserCertificateRequest {
        group_id,
        username,
        months_until_expiration: body.months_until_expiration,
        key_type: v1::KeyType::Unspecified as i32,
        csr_pem: Some(csr),
    };
    let issued =
        CertificateService::create_user_certificate(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    debug_assert!(
        issued.private_key_pem.is_empty(),
        "a csr's key stays with the caller"
    );
    Ok(Reply::Pem(StatusCode::CREATED, issued.certificate_pem))
}
