//! X.509 client certificates of a database user: `POST
//! /groups/{groupId}/databaseUsers/{username}/certs` (PEM: certificate, then its private key)
//! and `GET` on the same path (the user's certificates, no keys).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Gateway;
use super::body::{AtlasBody, AtlasJson};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, list, rpc, timestamp};
use super::response::Reply;
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::certificate_service_server::CertificateService;

/// The routes under one API version's prefix. `{first}` is the username (see
/// [`super::database_users::routes`]).
pub fn routes(routes: Routes) -> Routes {
    routes.route(
        "/groups/{group_id}/databaseUsers/{first}/certs",
        get(list_certificates).post(create_certificate),
    )
}

/// The body of `POST …/certs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCertificate {
    /// 1 to 24; absent, 3.
    #[schemars(range(min = 1, max = crate::domain::MAX_MONTHS))]
    months_until_expiration: Option<i64>,
}

impl AtlasBody for NewCertificate {}

/// A certificate as Atlas lists it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    #[serde(rename = "_id")]
    id: i64,
    created_at: Option<String>,
    group_id: String,
    not_after: Option<String>,
    subject: String,
}

async fn create_certificate(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    AtlasJson(body): AtlasJson<NewCertificate>,
) -> Handled {
    let request = v1::CreateUserCertificateRequest {
        group_id,
        username,
        months_until_expiration: body.months_until_expiration,
        // The Atlas API has no key type: REST certificates stay RSA-4096.
        key_type: v1::KeyType::Unspecified as i32,
        csr_pem: None,
    };
    let mut issued =
        CertificateService::create_user_certificate(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    // One allocation of the final size, so no reallocation leaves a stray copy of the key;
    // the message's own copy is zeroized here. The body handed to hyper cannot be.
    let key = Zeroizing::new(std::mem::take(&mut issued.private_key_pem));
    let mut pem = String::with_capacity(issued.certificate_pem.len() + 1 + key.len());
    pem.push_str(&issued.certificate_pem);
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&key);
    Ok(Reply::Pem(StatusCode::CREATED, pem))
}

async fn list_certificates(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    paging: Paging,
) -> Handled {
    let request = v1::ListUserCertificatesRequest {
        group_id,
        username,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = CertificateService::list_user_certificates(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|c| Certificate {
            id: c.serial_number,
            created_at: timestamp(c.created_at),
            group_id: c.group_id,
            not_after: timestamp(c.not_after),
            subject: c.subject,
        })
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}
