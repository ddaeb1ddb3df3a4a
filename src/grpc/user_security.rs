//! `dbcert.v1.UserSecurityService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{key_type_from_proto, user_security};
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
        let ca_key_type = key_type_from_proto("ca_key_type", req.ca_key_type).map_err(to_status)?;
        let mut security = None;
        if let Some(key_type) = ca_key_type {
            security = Some(
                self.core
                    .set_ca_key_type(&principal, &req.group_id, key_type)
                    .await
                    .map_err(to_status)?,
            );
        }
        // Without a customer CA, a request that sets the CA key type leaves the customer CA
        // alone; one that sets nothing clears it (the behaviour before ca_key_type existed).
        if req.customer_x509.is_some() || ca_key_type.is_none() {
            let cas = req.customer_x509.map(|c| c.cas).unwrap_or_default();
            security = Some(
                self.core
                    .set_customer_ca(&principal, &req.group_id, &cas)
                    .await
                    .map_err(to_status)?,
            );
        }
        let security = security.expect("one of the two branches ran");
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
