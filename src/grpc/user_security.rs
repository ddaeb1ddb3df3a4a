//! `dbcert.v1.UserSecurityService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::user_security;
use super::status::to_status;
use crate::proto::v1::{
    DeleteCustomerX509Request, GetUserSecurityRequest, UpdateUserSecurityRequest, UserSecurity,
    user_security_service_server::UserSecurityService,
};

#[tonic::async_trait]
impl UserSecurityService for Services {
    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_user_security(
        &self,
        request: Request<GetUserSecurityRequest>,
    ) -> Result<Response<UserSecurity>, Status> {
        let principal = self.authenticate(&request).await?;
        let security = self
            .core
            .user_security(&principal, &request.get_ref().group_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(user_security(security)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn update_user_security(
        &self,
        request: Request<UpdateUserSecurityRequest>,
    ) -> Result<Response<UserSecurity>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let cas = req.customer_x509.map(|c| c.cas).unwrap_or_default();
        let security = self
            .core
            .set_customer_ca(&principal, &req.group_id, &cas)
            .await
            .map_err(to_status)?;
        Ok(Response::new(user_security(security)))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn delete_customer_x509(
        &self,
        request: Request<DeleteCustomerX509Request>,
    ) -> Result<Response<UserSecurity>, Status> {
        let principal = self.authenticate(&request).await?;
        let security = self
            .core
            .set_customer_ca(&principal, &request.get_ref().group_id, "")
            .await
            .map_err(to_status)?;
        Ok(Response::new(user_security(security)))
    }
}
