//! `dbcert.v1.DatabaseUserService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{
    attribute_changes, database_user, page, page_parts, roles_from_proto, x509_type_from_proto,
};
use super::status::to_status;
use crate::domain::NewDatabaseUser;
use crate::proto::v1::{
    CreateDatabaseUserRequest, DatabaseUser, DeleteDatabaseUserRequest, DeleteDatabaseUserResponse,
    GetDatabaseUserRequest, ListDatabaseUsersRequest, ListDatabaseUsersResponse,
    UpdateDatabaseUserRequest, database_user_service_server::DatabaseUserService,
};

#[tonic::async_trait]
impl DatabaseUserService for Services {
    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn create_database_user(
        &self,
        request: Request<CreateDatabaseUserRequest>,
    ) -> Result<Response<DatabaseUser>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let new = NewDatabaseUser {
            group_id: &req.group_id,
            username: &req.username,
            database_name: &req.database_name,
            x509_type: x509_type_from_proto(req.x509_type).map_err(to_status)?,
            roles: roles_from_proto(req.roles).map_err(to_status)?,
            attributes: attribute_changes(
                Some(req.description),
                Some(req.labels),
                Some(req.scopes),
                req.delete_after_date,
            )
            .map_err(to_status)?,
        };
        let user = self
            .core
            .create_database_user(&principal, new)
            .await
            .map_err(to_status)?;
        Ok(Response::new(database_user(user)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_database_user(
        &self,
        request: Request<GetDatabaseUserRequest>,
    ) -> Result<Response<DatabaseUser>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let user = self
            .core
            .database_user(&principal, &req.group_id, &req.database_name, &req.username)
            .await
            .map_err(to_status)?;
        Ok(Response::new(database_user(user)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn list_database_users(
        &self,
        request: Request<ListDatabaseUsersRequest>,
    ) -> Result<Response<ListDatabaseUsersResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let users = self
            .core
            .list_database_users(&principal, &req.group_id, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(users, database_user);
        Ok(Response::new(ListDatabaseUsersResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn update_database_user(
        &self,
        request: Request<UpdateDatabaseUserRequest>,
    ) -> Result<Response<DatabaseUser>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let x509_type = req
            .x509_type
            .map(x509_type_from_proto)
            .transpose()
            .map_err(to_status)?;
        let roles = req
            .roles
            .map(|r| roles_from_proto(r.roles))
            .transpose()
            .map_err(to_status)?;
        let attributes = attribute_changes(
            req.description,
            req.labels.map(|l| l.labels),
            req.scopes.map(|s| s.scopes),
            req.delete_after_date,
        )
        .map_err(to_status)?;
        let user = self
            .core
            .update_database_user(
                &principal,
                &req.group_id,
                &req.database_name,
                &req.username,
                x509_type,
                roles,
                attributes,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(database_user(user)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn delete_database_user(
        &self,
        request: Request<DeleteDatabaseUserRequest>,
    ) -> Result<Response<DeleteDatabaseUserResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        self.core
            .delete_database_user(&principal, &req.group_id, &req.database_name, &req.username)
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteDatabaseUserResponse {}))
    }
}
