//! Projects (Atlas "groups"): `GET`/`POST /groups`, `GET`/`PATCH`/`DELETE /groups/{groupId}`,
//! `GET /groups/byName/{groupName}` and an organization's, `GET /orgs/{orgId}/groups`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson, NoItems};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, entity, list, rpc, segment, self_link, timestamp};
use super::response::Reply;
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::project_service_server::ProjectService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/groups", get(list_projects).post(create_project))
        .route(
            "/groups/{group_id}",
            get(get_project)
                .patch(update_project)
                .delete(delete_project),
        )
        // A static segment outranks `{group_id}` in the router, as in Atlas.
        .route("/groups/byName/{group_name}", get(get_project_by_name))
        .route("/orgs/{org_id}/groups", get(list_org_projects))
}

/// The body of `POST /groups` (the spec's `Group`), attributes in the order they are checked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProject {
    /// Alert settings have no meaning here; accepted (Atlas's own CLI sends it) and ignored.
    #[allow(dead_code)]
    with_default_alerts_settings: Option<bool>,
    /// dbcert keeps no tags: accepted empty, as every project reads (`"tags":[]`).
    #[allow(dead_code)]
    tags: Option<NoItems>,
    #[schemars(required, length(min = 1))]
    name: Option<String>,
    org_id: Option<String>,
}

/// The spec's readOnly attributes of `Group`, which generated SDKs send on create.
const GROUP_READ_ONLY: &[&str] = &["clusterCount", "created", "id", "links"];

impl AtlasBody for NewProject {
    const READ_ONLY: &'static [&'static str] = GROUP_READ_ONLY;
}

/// The body of `PATCH /groups/{groupId}` (the spec's `GroupUpdate`): a new `name`; without one
/// nothing changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectChanges {
    /// Accepted and ignored, as on create.
    #[allow(dead_code)]
    with_default_alerts_settings: Option<bool>,
    /// Accepted empty, as on create.
    #[allow(dead_code)]
    tags: Option<NoItems>,
    #[schemars(length(min = 1))]
    name: Option<String>,
}

impl AtlasBody for ProjectChanges {
    /// `GroupUpdate` has none, but a client may send back the `Group` it read.
    const READ_ONLY: &'static [&'static str] = GROUP_READ_ONLY;
}

/// A project as Atlas shows it (keys in the recorded order).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    cluster_count: i64,
    created: Option<String>,
    id: String,
    links: Vec<Link>,
    name: String,
    org_id: String,
    /// Always empty: dbcert keeps no tags.
    tags: Vec<String>,
}

impl Project {
    fn new(ctx: &RequestContext, project: v1::Project) -> Self {
        Self {
            cluster_count: project.cluster_count,
            created: timestamp(project.created),
            links: self_link(ctx.resource_href(&format!("/groups/{}", segment(&project.id)))),
            id: project.id,
            name: project.name,
            org_id: project.org_id,
            tags: Vec::new(),
        }
    }
}

async fn create_project(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasJson(body): AtlasJson<NewProject>,
) -> Handled {
    let request = v1::CreateProjectRequest {
        name: body.name.unwrap_or_default(),
        org_id: body.org_id.unwrap_or_default(),
    };
    let project = ProjectService::create_project(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    // 201 on both versions: recorded on v2 (the Atlas CLI's e2e snapshot
    // `TestAtlasProjects/Create/POST_api_atlas_v2_groups_1`, although the spec says 200) and v1.
    Ok(entity(StatusCode::CREATED, &Project::new(&ctx, project)))
}

async fn list_projects(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    paging: Paging,
) -> Handled {
    list_projects_of(gateway, ctx, auth, paging, String::new()).await
}

/// `GET /orgs/{orgId}/groups`: the organization's projects the key can read (the key's own
/// organization; another is `USER_UNAUTHORIZED`).
async fn list_org_projects(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    paging: Paging,
) -> Handled {
    list_projects_of(gateway, ctx, auth, paging, org_id).await
}

async fn list_projects_of(
    gateway: Gateway,
    ctx: RequestContext,
    auth: Authenticated,
    paging: Paging,
    org_id: String,
) -> Handled {
    let request = v1::ListProjectsRequest {
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
        org_id,
    };
    let page = ProjectService::list_projects(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|p| Project::new(&ctx, p))
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

async fn get_project(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::GetProjectRequest { group_id };
    let project = ProjectService::get_project(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &Project::new(&ctx, project)))
}

/// `GET /groups/byName/{groupName}`: 404 `GROUP_NAME_NOT_FOUND` when the key's organization
/// has no project of that name.
async fn get_project_by_name(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(name): AtlasPath<String>,
) -> Handled {
    let request = v1::GetProjectByNameRequest { name };
    let project = ProjectService::get_project_by_name(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &Project::new(&ctx, project)))
}

/// `PATCH /groups/{groupId}`: renames the project (200 with it, as recorded); a body without
/// `name` changes nothing and answers the project.
async fn update_project(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<ProjectChanges>,
) -> Handled {
    let project = match body.name {
        Some(name) => {
            let request = v1::UpdateProjectRequest { group_id, name };
            ProjectService::update_project(&*gateway.services, rpc(&auth, request)).await?
        }
        None => {
            let request = v1::GetProjectRequest { group_id };
            ProjectService::get_project(&*gateway.services, rpc(&auth, request)).await?
        }
    }
    .into_inner();
    Ok(entity(StatusCode::OK, &Project::new(&ctx, project)))
}

async fn delete_project(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::DeleteProjectRequest { group_id };
    ProjectService::delete_project(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}
