//! The API root: `GET /api/atlas/v2` (and `/api/atlas/v1.0`), Atlas's `getSystemStatus`.
//!
//! Its shape is the v2 spec's `SystemStatus` (`openapi/atlas-api-transformed.yaml` in
//! mongodb/atlas-sdk-go): the calling key (`apiKey`: `accessList`, `id`, `publicKey`, `roles`),
//! `appName`, `build`, `links`, `throttling`. It describes the Digest-verified key, so it is
//! rendered from the principal the authentication produced: no RPC is involved, and nothing is
//! looked up again.

use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::Serialize;

use super::api_keys::ApiKeyRole;
use super::extract::{Authenticated, RequestContext};
use super::resource::{Handled, Link, entity, self_link};
use super::routes::Routes;

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
    /// Always empty: dbcert keeps no access lists.
    access_list: Vec<String>,
    id: String,
    public_key: String,
    roles: Vec<ApiKeyRole>,
}

async fn system_status(ctx: RequestContext, auth: Authenticated) -> Handled {
    let principal = &auth.0.0;
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
            access_list: Vec::new(),
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
