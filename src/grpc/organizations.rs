//! `dbcert.v1.OrganizationService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{api_key, organization, page, page_parts};
use super::status::to_status;
use crate::proto::v1::{
    CreateOrganizationRequest, CreateOrganizationResponse, DeleteOrganizationRequest,
    DeleteOrganizationResponse, GetOrganizationRequest, ListOrganizationsRequest,
    ListOrganizationsResponse, Organization, UpdateOrganizationRequest,
    organization_service_server::OrganizationService,
};

#[tonic::async_trait]
impl OrganizationService for Services {
    #[instrument(skip_all)]
    async fn list_organizations(
        &self,
        request: Request<ListOrganizationsRequest>,
    ) -> Result<Response<ListOrganizationsResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let orgs = self
            .core
            .list_organizations(&principal, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(orgs, organization);
        Ok(Response::new(ListOrganizationsResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn get_organization(
        &self,
        request: Request<GetOrganizationRequest>,
    ) -> Result<Response<Organization>, Status> {
        let principal = self.authenticate(&request).await?;
        let org = self
            .core
            .organization(&principal, &request.get_ref().org_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(organization(org)))
    }

    #[instrument(skip_all)]
    async fn create_organization(
        &self,
        request: Request<CreateOrganizationRequest>,
    ) -> Result<Response<CreateOrganizationResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let (org, key) = self
            .core
            .create_organization(&principal, &req.name, &req.api_key_desc)
            .await
            .map_err(to_status)?;
        Ok(Response::new(CreateOrganizationResponse {
            organization: Some(organization(org)),
            api_key: Some(api_key(key.record, Some(&key.private_key))),
        }))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn update_organization(
        &self,
        request: Request<UpdateOrganizationRequest>,
    ) -> Result<Response<Organization>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let renamed = self
            .core
            .rename_organization(&principal, &req.org_id, &req.name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(organization(renamed)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn delete_organization(
        &self,
        request: Request<DeleteOrganizationRequest>,
    ) -> Result<Response<DeleteOrganizationResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        self.core
            .delete_organization(&principal, &request.get_ref().org_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteOrganizationResponse {}))
    }
}
