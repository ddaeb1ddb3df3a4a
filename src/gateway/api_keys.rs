//! Programmatic API keys: an organization's (`GET`/`POST /orgs/{orgId}/apiKeys`,
//! `GET`/`PATCH`/`DELETE /orgs/{orgId}/apiKeys/{id}`) and a project's (`GET`/`POST
//! /groups/{groupId}/apiKeys`; `PATCH` (roles), `POST` (add) and `DELETE` (remove)
//! `/groups/{groupId}/apiKeys/{id}`). A key's `self` link is its organization path, in a
//! project's answers too, as Atlas's recorded answers have it.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Gateway;
use super::body::{self, AtlasBody, AtlasJson};
use super::extract::{AtlasPath, Authenticated, JsonBody, Paging, RequestContext};
use super::resource::{Handled, Link, created, entity, list, rpc, segment, self_link};
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::domain::{AtlasError, OrgRole, ProjectRole};
use crate::proto::v1;
use crate::proto::v1::api_key_service_server::ApiKeyService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route(
            "/orgs/{org_id}/apiKeys",
            get(list_api_keys).post(create_api_key),
        )
        .route(
            "/orgs/{org_id}/apiKeys/{api_user_id}",
            get(api_key).patch(update_api_key).delete(delete_api_key),
        )
        .route(
            "/groups/{group_id}/apiKeys",
            get(list_project_api_keys).post(create_project_api_key),
        )
        .route(
            "/groups/{group_id}/apiKeys/{api_user_id}",
            patch(update_project_api_key)
                .post(add_project_api_key)
                .delete(remove_project_api_key),
        )
}

/// The body of `POST /orgs/{orgId}/apiKeys`, attributes in the order they are checked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    #[schemars(required, length(min = 1))]
    desc: Option<String>,
    #[schemars(required, length(min = 1), with = "RoleNames<OrgRole>")]
    roles: Option<Vec<String>>,
}

impl AtlasBody for NewApiKey {
    /// readOnly in the spec's `ApiKeyUserDetails`, the key as read.
    const READ_ONLY: &'static [&'static str] = &["id", "links", "privateKey", "publicKey"];
}

/// The body of `PATCH /orgs/{orgId}/apiKeys/{id}`: either attribute, or both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyChanges {
    #[schemars(length(min = 1, max = 250))]
    desc: Option<String>,
    #[schemars(with = "Option<RoleNames<OrgRole>>")]
    roles: Option<Vec<String>>,
}

impl AtlasBody for ApiKeyChanges {}

/// The body of `POST /groups/{groupId}/apiKeys`: a new key with roles on the project.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProjectApiKey {
    #[schemars(required, length(min = 1, max = 250))]
    desc: Option<String>,
    #[schemars(required, length(min = 1), with = "RoleNames<ProjectRole>")]
    roles: Option<Vec<String>>,
}

impl AtlasBody for NewProjectApiKey {}

/// One item of an assignment body (`PATCH` sends one object, v2's `POST` a list of them;
/// both forms are read on both methods). `desc` only in `PATCH`'s.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    #[schemars(length(min = 1, max = 250))]
    desc: Option<String>,
    #[schemars(with = "Option<RoleNames<ProjectRole>>")]
    roles: Option<Vec<String>>,
}

impl AtlasBody for Assignment {
    /// readOnly in the spec's `UserAccessRoleAssignment`.
    const READ_ONLY: &'static [&'static str] = &["userId"];
}

/// The schema of a `roles` list: the core's role names (the core checks them: another name is
/// 400 `INVALID_ENUM_VALUE`).
struct RoleNames<R>(std::marker::PhantomData<R>);

impl JsonSchema for RoleNames<OrgRole> {
    fn schema_name() -> Cow<'static, str> {
        "OrgRoleNames".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = OrgRole::ALL.iter().map(|r| r.as_str()).collect();
        json_schema!({"type": "array", "items": {"enum": names}})
    }
}

impl JsonSchema for RoleNames<ProjectRole> {
    fn schema_name() -> Cow<'static, str> {
        "ProjectRoleNames".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = ProjectRole::ALL.iter().map(|r| r.as_str()).collect();
        json_schema!({"type": "array", "items": {"enum": names}})
    }
}

/// An API key as Atlas shows it (`privateKey` is empty except in the answer to its creation).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    desc: String,
    id: String,
    links: Vec<Link>,
    private_key: String,
    public_key: String,
    roles: Vec<ApiKeyRole>,
}

/// A role of a key: in its organization or in one project.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum ApiKeyRole {
    /// An organization role.
    Org {
        /// The organization.
        org_id: String,
        /// The role.
        role_name: String,
    },
    /// A project role.
    Group {
        /// The project.
        group_id: String,
        /// The role.
        role_name: String,
    },
}

impl ApiKey {
    /// The key, its `self` link at `self_path` (segments already encoded).
    fn new(ctx: &RequestContext, key: v1::ApiKey, self_path: &str) -> Self {
        let roles = key
            .roles
            .into_iter()
            .map(|r| {
                if r.group_id.is_empty() {
                    ApiKeyRole::Org {
                        org_id: r.org_id,
                        role_name: r.role_name,
                    }
                } else {
                    ApiKeyRole::Group {
                        group_id: r.group_id,
                        role_name: r.role_name,
                    }
                }
            })
            .collect();
        Self {
            desc: key.desc,
            id: key.id,
            links: self_link(ctx.resource_href(self_path)),
            private_key: key.private_key,
            public_key: key.public_key,
            roles,
        }
    }
}

fn org_key_path(org_id: &str, key_id: &str) -> String {
    format!("/orgs/{}/apiKeys/{}", segment(org_id), segment(key_id))
}

/// A key as answered: its `self` link at its organization's path (the key's organization is
/// that of its organization role).
pub(super) fn answer(ctx: &RequestContext, key: v1::ApiKey) -> ApiKey {
    let org_id = key
        .roles
        .iter()
        .find(|r| !r.org_id.is_empty())
        .map(|r| r.org_id.clone())
        .unwrap_or_default();
    let self_path = org_key_path(&org_id, &key.id);
    ApiKey::new(ctx, key, &self_path)
}

/// A page of keys as answered.
fn key_list(ctx: &RequestContext, paging: Paging, page: v1::ListApiKeysResponse) -> Reply {
    let results = page
        .results
        .into_iter()
        .map(|key| answer(ctx, key))
        .collect();
    list(ctx, paging, results, page.total_count, page.has_next_page)
}

async fn create_api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<NewApiKey>,
) -> Handled {
    let request = v1::CreateApiKeyRequest {
        org_id: org_id.clone(),
        desc: body.desc.unwrap_or_default(),
        roles: body.roles.unwrap_or_default(),
    };
    let key = ApiKeyService::create_api_key(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner()
        .api_key
        .unwrap_or_default();
    let self_path = org_key_path(&org_id, &key.id);
    Ok(entity(created(&ctx), &ApiKey::new(&ctx, key, &self_path)))
}

async fn list_api_keys(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    paging: Paging,
) -> Handled {
    let request = v1::ListApiKeysRequest {
        org_id: org_id.clone(),
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = ApiKeyService::list_api_keys(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(key_list(&ctx, paging, page))
}

async fn api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id)): AtlasPath<(String, String)>,
) -> Handled {
    let request = v1::GetApiKeyRequest { org_id, api_key_id };
    let key = ApiKeyService::get_api_key(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &answer(&ctx, key)))
}

async fn update_api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id)): AtlasPath<(String, String)>,
    AtlasJson(body): AtlasJson<ApiKeyChanges>,
) -> Handled {
    let request = v1::UpdateApiKeyRequest {
        org_id,
        api_key_id,
        desc: body.desc,
        roles: body.roles.map(|roles| v1::RoleNames { roles }),
    };
    let key = ApiKeyService::update_api_key(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &answer(&ctx, key)))
}

async fn delete_api_key(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id)): AtlasPath<(String, String)>,
) -> Handled {
    let request = v1::DeleteApiKeyRequest { org_id, api_key_id };
    ApiKeyService::delete_api_key(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}

async fn list_project_api_keys(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    paging: Paging,
) -> Handled {
    let request = v1::ListProjectApiKeysRequest {
        group_id,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = ApiKeyService::list_project_api_keys(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(key_list(&ctx, paging, page))
}

async fn create_project_api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<NewProjectApiKey>,
) -> Handled {
    let request = v1::CreateProjectApiKeyRequest {
        group_id,
        desc: body.desc.unwrap_or_default(),
        roles: body.roles.unwrap_or_default(),
    };
    let key = ApiKeyService::create_project_api_key(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner()
        .api_key
        .unwrap_or_default();
    Ok(entity(created(&ctx), &answer(&ctx, key)))
}

/// Reads an assignment body: one object or a list of them; their roles are joined, the last
/// `desc` wins.
fn assignment_body(body: Value) -> Result<(Vec<String>, Option<String>), ApiError> {
    let items = match body {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(ApiError::invalid_json()),
    };
    let mut roles = Vec::new();
    let mut desc = None;
    for item in items {
        let item: Assignment = body::parse(item, &[])?;
        roles.extend(item.roles.unwrap_or_default());
        desc = item.desc.or(desc);
    }
    Ok((roles, desc))
}

/// Assigns roles on the project to a key: `PATCH`, answered with the key (200). The roles
/// replace the key's roles on the project; at least one is needed (`DELETE` removes a key).
async fn update_project_api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, api_key_id)): AtlasPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Handled {
    let (roles, desc) = assignment_body(body)?;
    if roles.is_empty() {
        return Err(ApiError::from_atlas(&AtlasError::missing_attribute("roles", "roles")).into());
    }
    let request = v1::AssignApiKeyToProjectRequest {
        group_id,
        api_key_id,
        roles,
        desc,
    };
    let key = ApiKeyService::assign_api_key_to_project(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &answer(&ctx, key)))
}

/// Adds a key to the project with roles: v2's `POST` with `[{"roles":[…]}]`, answered 204 No
/// Content as the spec says.
async fn add_project_api_key(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, api_key_id)): AtlasPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Handled {
    let (roles, desc) = assignment_body(body)?;
    if roles.is_empty() {
        return Err(ApiError::from_atlas(&AtlasError::missing_attribute("roles", "roles")).into());
    }
    let request = v1::AssignApiKeyToProjectRequest {
        group_id,
        api_key_id,
        roles,
        desc,
    };
    ApiKeyService::assign_api_key_to_project(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}

/// Removes a key from the project (204).
async fn remove_project_api_key(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, api_key_id)): AtlasPath<(String, String)>,
) -> Handled {
    let request = v1::UnassignApiKeyFromProjectRequest {
        group_id,
        api_key_id,
    };
    ApiKeyService::unassign_api_key_from_project(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}
