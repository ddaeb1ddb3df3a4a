//! `dbcert.v1.ApiKeyService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{api_key, page, page_parts, timestamp};
use super::status::to_status;
use crate::domain::{
    AccessListEntry, AccessListItem, AtlasError, MAX_ACCESS_LIST_ENTRIES_PER_REQUEST, Page, Paged,
};
use crate::proto::v1::{
    AddApiKeyAccessListRequest, ApiKey, ApiKeyAccessListEntry, ApiKeyAccessListEntryRequest,
    AssignApiKeyToProjectRequest, CreateApiKeyRequest, CreateApiKeyResponse,
    CreateProjectApiKeyRequest, DeleteApiKeyAccessListEntryResponse, DeleteApiKeyRequest,
    DeleteApiKeyResponse, GetApiKeyRequest, ListApiKeyAccessListRequest,
    ListApiKeyAccessListResponse, ListApiKeysRequest, ListApiKeysResponse,
    ListProjectApiKeysRequest, UnassignApiKeyFromProjectRequest, UnassignApiKeyFromProjectResponse,
    UpdateApiKeyRequest, api_key_service_server::ApiKeyService,
};

#[tonic::async_trait]
impl ApiKeyService for Services {
    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn list_api_key_access_list(
        &self,
        request: Request<ListApiKeyAccessListRequest>,
    ) -> Result<Response<ListApiKeyAccessListResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let items = self
            .core
            .api_key_access_list(&principal, &req.org_id, &req.api_key_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(access_list_page(items, page)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn add_api_key_access_list(
        &self,
        request: Request<AddApiKeyAccessListRequest>,
    ) -> Result<Response<ListApiKeyAccessListResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        if req.entries.len() > MAX_ACCESS_LIST_ENTRIES_PER_REQUEST {
            return Err(to_status(AtlasError::invalid_attribute(
                "accessList",
                "too many entries",
            )));
        }
        let entries = req
            .entries
            .iter()
            .map(
                |addition| match (&addition.ip_address, &addition.cidr_block) {
                    (Some(ip), None) => AccessListEntry::parse_ip_address(ip),
                    (None, Some(cidr)) => AccessListEntry::parse_cidr_block(cidr),
                    (None, None) => Err(AtlasError::missing_attribute("ipAddress", "ipAddress")),
                    (Some(_), Some(cidr)) => Err(AtlasError::invalid_attribute("cidrBlock", cidr)),
                },
            )
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_status)?;
        let items = self
            .core
            .add_api_key_access_list(&principal, &req.org_id, &req.api_key_id, &entries)
            .await
            .map_err(to_status)?;
        Ok(Response::new(access_list_page(items, page)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn get_api_key_access_list_entry(
        &self,
        request: Request<ApiKeyAccessListEntryRequest>,
    ) -> Result<Response<ApiKeyAccessListEntry>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let item = self
            .core
            .api_key_access_list_entry(&principal, &req.org_id, &req.api_key_id, &req.ip_address)
            .await
            .map_err(to_status)?;
        Ok(Response::new(access_list_entry(item)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn delete_api_key_access_list_entry(
        &self,
        request: Request<ApiKeyAccessListEntryRequest>,
    ) -> Result<Response<DeleteApiKeyAccessListEntryResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        self.core
            .delete_api_key_access_list_entry(
                &principal,
                &req.org_id,
                &req.api_key_id,
                &req.ip_address,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteApiKeyAccessListEntryResponse {}))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key = self
            .core
            .create_api_key(&principal, &req.org_id, &req.desc, &req.roles)
            .await
            .map_err(to_status)?;
        Ok(Response::new(CreateApiKeyResponse {
            api_key: Some(api_key(key.record, Some(&key.private_key))),
        }))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let keys = self
            .core
            .list_api_keys(&principal, &req.org_id, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(keys, |k| api_key(k, None));
        Ok(Response::new(ListApiKeysResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn delete_api_key(
        &self,
        request: Request<DeleteApiKeyRequest>,
    ) -> Result<Response<DeleteApiKeyResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        self.core
            .delete_api_key(&principal, &req.org_id, &req.api_key_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteApiKeyResponse {}))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn assign_api_key_to_project(
        &self,
        request: Request<AssignApiKeyToProjectRequest>,
    ) -> Result<Response<ApiKey>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key = self
            .core
            .assign_api_key_to_project(
                &principal,
                &req.group_id,
                &req.api_key_id,
                &req.roles,
                req.desc.as_deref(),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(api_key(key, None)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn get_api_key(
        &self,
        request: Request<GetApiKeyRequest>,
    ) -> Result<Response<ApiKey>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key = self
            .core
            .api_key(&principal, &req.org_id, &req.api_key_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(api_key(key, None)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn update_api_key(
        &self,
        request: Request<UpdateApiKeyRequest>,
    ) -> Result<Response<ApiKey>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key = self
            .core
            .update_api_key(
                &principal,
                &req.org_id,
                &req.api_key_id,
                req.desc.as_deref(),
                req.roles.as_ref().map(|r| r.roles.as_slice()),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(api_key(key, None)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn list_project_api_keys(
        &self,
        request: Request<ListProjectApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let keys = self
            .core
            .list_project_api_keys(&principal, &req.group_id, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(keys, |k| api_key(k, None));
        Ok(Response::new(ListApiKeysResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn create_project_api_key(
        &self,
        request: Request<CreateProjectApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key = self
            .core
            .create_project_api_key(&principal, &req.group_id, &req.desc, &req.roles)
            .await
            .map_err(to_status)?;
        Ok(Response::new(CreateApiKeyResponse {
            api_key: Some(api_key(key.record, Some(&key.private_key))),
        }))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn unassign_api_key_from_project(
        &self,
        request: Request<UnassignApiKeyFromProjectRequest>,
    ) -> Result<Response<UnassignApiKeyFromProjectResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        self.core
            .unassign_api_key_from_project(&principal, &req.group_id, &req.api_key_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(UnassignApiKeyFromProjectResponse {}))
    }
}

/// The message of one page of an access list.
fn access_list_page(items: Vec<AccessListItem>, page: Page) -> ListApiKeyAccessListResponse {
    let (results, total_count, has_next_page) =
        page_parts(Paged::of_all(items, page), access_list_entry);
    ListApiKeyAccessListResponse {
        results,
        total_count,
        has_next_page,
    }
}

/// The message of one access list entry.
fn access_list_entry(item: AccessListItem) -> ApiKeyAccessListEntry {
    ApiKeyAccessListEntry {
        cidr_block: item.entry.cidr_block(),
        ip_address: item.entry.ip_address(),
        created: Some(timestamp(item.created)),
    }
}
