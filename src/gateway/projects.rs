//! Projects (Atlas "groups"): `GET`/`POST /groups`, `GET`/`DELETE /groups/{groupId}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, created, entity, list, rpc, segment, self_link, timestamp};
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
            get(get_project).delete(delete_project),
        )
}

/// The body of `POST /groups`, attributes in the order they are checked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProject {
    /// Alert settings have no meaning here; accepted (Atlas's own CLI sends it) and ignored.
    #[allow(dead_code)]
    with_default_alerts_settings: Option<bool>,
    #[schemars(required, length(min = 1))]
    name: Option<String>,
    org_id: Option<String>,
}

impl AtlasBody for NewProject {}

/// A project as Atlas shows it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    cluster_count: i64,
    created: Option<String>,
    id: String,
    links: Vec<Link>,
    name: String,
    org_id: String,
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
    Ok(entity(created(&ctx), &Project::new(&ctx, project)))
}

async fn list_projects(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    paging: Paging,
) -> Handled {
    let request = v1::ListProjectsRequest {
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
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

async fn delete_project(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::DeleteProjectRequest { group_id };
    ProjectService::delete_project(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}
