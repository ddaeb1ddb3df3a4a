//! Organizations: `GET /orgs`, the organizations the key belongs to, and `GET /orgs/{orgId}`.

use axum::extract::State;
use axum::routing::get;
use schemars::JsonSchema;
use serde::Serialize;

use super::Gateway;
use axum::http::StatusCode;

use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, entity, list, rpc, segment, self_link};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::organization_service_server::OrganizationService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/orgs", get(list_orgs))
        .route("/orgs/{org_id}", get(get_org))
}

/// An organization as Atlas shows it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    id: String,
    is_deleted: bool,
    links: Vec<Link>,
    name: String,
}

impl Organization {
    fn new(ctx: &RequestContext, org: v1::Organization) -> Self {
        let path = format!("/orgs/{}", segment(&org.id));
        let mut links = self_link(ctx.resource_href(&path));
        // As recorded (`TestAtlasOrgs/Describe`), less the teams and users dbcert does not have.
        links.push(Link::related(
            ctx.resource_href(&format!("{path}/groups")),
            "https://cloud.mongodb.com/groups",
        ));
        Self {
            links,
            id: org.id,
            is_deleted: org.is_deleted,
            name: org.name,
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
    Ok(entity(StatusCode::OK, &Organization::new(&ctx, org)))
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
