//! `dbcert.v1.ProjectService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{page, page_parts, project};
use super::status::to_status;
use crate::proto::v1::{
    CreateProjectRequest, DeleteProjectRequest, DeleteProjectResponse, GetProjectByNameRequest,
    GetProjectRequest, ListProjectsRequest, ListProjectsResponse, Project, UpdateProjectRequest,
    project_service_server::ProjectService,
};

#[tonic::async_trait]
impl ProjectService for Services {
    #[instrument(skip_all)]
    async fn create_project(
        &self,
        request: Request<CreateProjectRequest>,
    ) -> Result<Response<Project>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let created = self
            .core
            .create_project(&principal, &req.name, &req.org_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(project(created)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_project(
        &self,
        request: Request<GetProjectRequest>,
    ) -> Result<Response<Project>, Status> {
        let principal = self.authenticate(&request).await?;
        let found = self
            .core
            .project(&principal, &request.get_ref().group_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(project(found)))
    }

    #[instrument(skip_all)]
    async fn list_projects(
        &self,
        request: Request<ListProjectsRequest>,
    ) -> Result<Response<ListProjectsResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let projects = if req.org_id.is_empty() {
            self.core.list_projects(&principal, page).await
        } else {
            self.core
                .list_organization_projects(&principal, &req.org_id, page)
                .await
        }
        .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(projects, project);
        Ok(Response::new(ListProjectsResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all)]
    async fn get_project_by_name(
        &self,
        request: Request<GetProjectByNameRequest>,
    ) -> Result<Response<Project>, Status> {
        let principal = self.authenticate(&request).await?;
        let found = self
            .core
            .project_by_name(&principal, &request.get_ref().name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(project(found)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn update_project(
        &self,
        request: Request<UpdateProjectRequest>,
    ) -> Result<Response<Project>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let renamed = self
            .core
            .rename_project(&principal, &req.group_id, &req.name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(project(renamed)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn delete_project(
        &self,
        request: Request<DeleteProjectRequest>,
    ) -> Result<Response<DeleteProjectResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        self.core
            .delete_project(&principal, &request.get_ref().group_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteProjectResponse {}))
    }
}
