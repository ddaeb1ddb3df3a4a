//! Organizations: `GET /orgs`, the organizations the key belongs to, `POST /orgs` (the
//! operator's key creates one, with its first API key), and `GET`/`PATCH`/`DELETE
//! /orgs/{orgId}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Gateway;
use super::api_keys::{ApiKey, answer};
use super::body::{AtlasBody, AtlasJson, Nested};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, entity, list, rpc, segment, self_link};
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::organization_service_server::OrganizationService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/orgs", get(list_orgs).post(create_org))
        .route(
            "/orgs/{org_id}",
            get(get_org).patch(update_org).delete(delete_org),
        )
}

/// The body of `POST /orgs` (the spec's `CreateOrganizationRequest`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganization {
    /// The first API key of the organization: its description; its roles, when sent, must be
    /// `["ORG_OWNER"]`, the one role dbcert gives that key.
    api_key: Option<Nested<NewOrganizationKey>>,
    /// dbcert has no federation: accepted empty and ignored.
    #[allow(dead_code)]
    federation_settings_id: Option<String>,
    #[schemars(required, length(min = 1))]
    name: Option<String>,
    /// dbcert has no console users to own the organization (its first API key does): accepted
    /// and ignored.
    #[allow(dead_code)]
    org_owner_id: Option<String>,
    /// dbcert has no alerts: accepted and ignored.
    #[allow(dead_code)]
    skip_default_alerts_settings: Option<bool>,
}

impl AtlasBody for NewOrganization {}

/// `apiKey` of [`NewOrganization`] (the spec's `CreateAtlasOrganizationApiKey`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganizationKey {
    desc: Option<String>,
    roles: Option<Vec<String>>,
}

impl AtlasBody for NewOrganizationKey {}

/// The body of `PATCH /orgs/{orgId}` (the spec's `AtlasOrganization`): a new `name`; without
/// one nothing changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationChanges {
    #[schemars(length(min = 1))]
    name: Option<String>,
    /// As read: always false here; accepted and ignored.
    #[allow(dead_code)]
    skip_default_alerts_settings: Option<bool>,
}

impl AtlasBody for OrganizationChanges {
    /// readOnly in the spec's `AtlasOrganization`, so the organization read can be sent back.
    const READ_ONLY: &'static [&'static str] = &["id", "isDeleted", "links"];
}

/// The answer to `POST /orgs` (the spec's `CreateOrganizationResponse`, less
/// `federationSettingsId` and `orgOwnerId`, which dbcert has no users or federation for).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrganization {
    /// The organization's first key, ORG_OWNER, with its private key (shown only here).
    api_key: ApiKey,
    organization: Organization,
}

/// An organization as Atlas shows it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    id: String,
    is_deleted: bool,
    links: Vec<Link>,
    name: String,
    /// Atlas's default alerts do not exist here: always false, as recorded.
    skip_default_alerts_settings: bool,
}

impl Organization {
    fn new(ctx: &RequestContext, org: v1::Organization) -> Self {
        Self {
            links: self_link(ctx.resource_href(&format!("/orgs/{}", segment(&org.id)))),
            id: org.id,
            is_deleted: org.is_deleted,
            name: org.name,
            skip_default_alerts_settings: false,
        }
    }
}

/// `GET /orgs/{orgId}`: the key's own organization (another is `USER_UNAUTHORIZED`).
async fn get_org(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
) -> Handled {
    let request = v1::GetOrganizationRequest { org_id };
    let org = OrganizationService::get_organization(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let mut org = Organization::new(&ctx, org);
    // As recorded (the Atlas CLI's e2e snapshot `TestAtlasOrgs/Describe`), less the teams and
    // users dbcert does not have; list entries link only themselves.
    org.links.push(Link::related(
        ctx.resource_href(&format!("/orgs/{}/groups", segment(&org.id))),
        "https://cloud.mongodb.com/groups",
    ));
    Ok(entity(StatusCode::OK, &org))
}

async fn list_orgs(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    paging: Paging,
) -> Handled {
    let request = v1::ListOrganizationsRequest {
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = OrganizationService::list_organizations(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|org| Organization::new(&ctx, org))
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

/// `POST /orgs`: 201 with the organization and its first API key.
async fn create_org(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasJson(body): AtlasJson<NewOrganization>,
) -> Handled {
    let key = body.api_key.map(|Nested(key)| key);
    if let Some(roles) = key.as_ref().and_then(|key| key.roles.as_ref())
        && roles.iter().any(|role| role != "ORG_OWNER")
    {
        return Err(ApiError::invalid_attribute("roles").into());
    }
    let request = v1::CreateOrganizationRequest {
        name: body.name.unwrap_or_default(),
        api_key_desc: key.and_then(|key| key.desc).unwrap_or_default(),
    };
    let made = OrganizationService::create_organization(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let answer = CreatedOrganization {
        api_key: answer(&ctx, made.api_key.unwrap_or_default()),
        organization: Organization::new(&ctx, made.organization.unwrap_or_default()),
    };
    // 201 on both versions: the spec's createOrganization answers 201.
    Ok(entity(StatusCode::CREATED, &answer))
}

/// `PATCH /orgs/{orgId}`: renames the organization (200 with it); a body without `name`
/// changes nothing and answers the organization.
async fn update_org(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<OrganizationChanges>,
) -> Handled {
    let org = match body.name {
        Some(name) => {
            let request = v1::UpdateOrganizationRequest { org_id, name };
            OrganizationService::update_organization(&*gateway.services, rpc(&auth, request))
                .await?
        }
        None => {
            let request = v1::GetOrganizationRequest { org_id };
            OrganizationService::get_organization(&*gateway.services, rpc(&auth, request)).await?
        }
    }
    .into_inner();
    Ok(entity(StatusCode::OK, &Organization::new(&ctx, org)))
}

/// `DELETE /orgs/{orgId}`: 204; 409 `CANNOT_DELETE_ORG_ACTIVE_PROJECTS` while it has projects.
async fn delete_org(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
) -> Handled {
    let request = v1::DeleteOrganizationRequest { org_id };
    OrganizationService::delete_organization(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}
