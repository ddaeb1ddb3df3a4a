//! The API root: `GET /api/atlas/v2` (and `/api/atlas/v1.0`), Atlas's `getSystemStatus`.
//!
//! Its shape is the v2 spec's `SystemStatus` (`openapi/atlas-api-transformed.yaml` in
//! mongodb/atlas-sdk-go): the calling key (`apiKey`: `accessList`, `id`, `publicKey`, `roles`),
//! `appName`, `build`, `links`, `throttling`. It describes the Digest-verified key, so it is
//! rendered from the principal the authentication produced, with one RPC for the key's own
//! access list (which a key may always read).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::Serialize;

use super::Gateway;
use super::api_keys::ApiKeyRole;
use super::extract::{Authenticated, RequestContext};
use super::resource::{Handled, Link, entity, rpc, self_link};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::api_key_service_server::ApiKeyService;

/// The routes under one API version's prefix: the prefix itself.
pub fn routes(routes: Routes) -> Routes {
    routes.route("", get(system_status))
}

/// The answer of the API root (the spec's `SystemStatus`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemStatus {
    api_key: CallingKey,
    /// The service answering: `dbcert`, not Atlas's `MongoDB Atlas`.
    app_name: &'static str,
    /// dbcert's version (Atlas gives its git commit).
    build: &'static str,
    links: Vec<Link>,
    /// dbcert throttles only failed authentications, which this call cannot show.
    throttling: bool,
}

/// The calling key as the API root shows it (the spec's `ApiKey`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallingKey {
    /// The key's access list (empty: usable from anywhere).
    access_list: Vec<AccessListItem>,
    id: String,
    public_key: String,
    roles: Vec<ApiKeyRole>,
}

/// An entry of the calling key's access list (the spec's `AccessListItem`); `ipAddress` only
/// when the entry is one address, as in the access list's own answers.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessListItem {
    cidr_block: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
}

async fn system_status(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
) -> Handled {
    let principal = &auth.0.0;
    let request = v1::ListApiKeyAccessListRequest {
        org_id: principal.org_id.to_string(),
        api_key_id: principal.key_id.to_string(),
        // A key holds at most 100 entries, one default page.
        ..Default::default()
    };
    let access_list =
        ApiKeyService::list_api_key_access_list(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|e| AccessListItem {
                cidr_block: e.cidr_block,
                ip_address: e.ip_address,
            })
            .collect();
    let mut roles: Vec<ApiKeyRole> = principal
        .org_roles
        .iter()
        .map(|role| ApiKeyRole::Org {
            org_id: principal.org_id.to_string(),
            role_name: role.as_str().to_owned(),
        })
        .collect();
    let mut project_roles: Vec<(String, &'static str)> = principal
        .project_roles
        .iter()
        .flat_map(|(project, roles)| {
            roles
                .iter()
                .map(|role| (project.to_string(), role.as_str()))
        })
        .collect();
    project_roles.sort_unstable();
    roles.extend(
        project_roles
            .into_iter()
            .map(|(group_id, role)| ApiKeyRole::Group {
                group_id,
                role_name: role.to_owned(),
            }),
    );
    let status = SystemStatus {
        api_key: CallingKey {
            access_list,
            id: principal.key_id.to_string(),
            public_key: principal.public_key.clone(),
            roles,
        },
        app_name: "dbcert",
        build: env!("CARGO_PKG_VERSION"),
        links: self_link(ctx.resource_href("")),
        throttling: false,
    };
    Ok(entity(StatusCode::OK, &status))
}
