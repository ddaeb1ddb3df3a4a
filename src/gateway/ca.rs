//! The project CA over REST, dbcert's own routes (Atlas has no CA rotation):
//! `GET /api/dbcert/v1/groups/{groupId}/ca` (the trust bundle, PEM: mongod's `net.tls.CAFile`)
//! and `POST /api/dbcert/v1/groups/{groupId}/ca/rotate` (`{"caKeyType": "RSA_4096"}`, the
//! attribute optional; a new issuing CA).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson, CaKeyTypeName};
use super::extract::{AtlasPath, Authenticated};
use super::resource::{Handled, entity, rpc, timestamp};
use super::response::Reply;
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::certificate_service_server::CertificateService;

/// The routes, under `/api/dbcert/v1`.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/groups/{group_id}/ca", get(trust_bundle))
        .route("/groups/{group_id}/ca/rotate", post(rotate))
}

/// The body of `POST …/ca/rotate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaRotation {
    /// The new CA's key type; absent, the project's current CA key type.
    ca_key_type: Option<CaKeyTypeName>,
}

impl AtlasBody for CaRotation {}

/// A project CA certificate.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCa {
    /// Which of the project's CAs it is: 1 the first, each rotation adds one.
    generation: u32,
    /// The certificate, PEM.
    certificate_pem: String,
    /// Its subject (RFC 4514).
    subject: String,
    not_before: Option<String>,
    not_after: Option<String>,
}

/// `GET …/ca`: every CA of the trust bundle, PEM, the issuing CA first.
async fn trust_bundle(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::GetProjectCaCertificateRequest { group_id };
    let bundle =
        CertificateService::get_project_ca_certificate(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    Ok(Reply::Pem(StatusCode::OK, bundle.bundle_pem))
}

/// `POST …/ca/rotate`: the new issuing CA.
async fn rotate(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<CaRotation>,
) -> Handled {
    let request = v1::RotateProjectCaRequest {
        group_id,
        ca_key_type: body
            .ca_key_type
            .map_or(v1::KeyType::Unspecified, |CaKeyTypeName(key_type)| key_type)
            as i32,
    };
    let rotated = CertificateService::rotate_project_ca(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let ca = rotated.ca.unwrap_or_default();
    let answer = ProjectCa {
        generation: ca.generation,
        certificate_pem: ca.certificate_pem,
        subject: ca.subject,
        not_before: timestamp(ca.not_before),
        not_after: timestamp(ca.not_after),
    };
    Ok(entity(StatusCode::OK, &answer))
}
