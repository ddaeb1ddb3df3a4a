//! `dbcert.v1.CertificateService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::convert::{key_type_from_proto, page, page_parts, timestamp};
use super::status::to_status;
use super::{Services, revocation};
use crate::domain::{AtlasError, ErrorCode, KeySource};
use crate::proto::v1::{
    self, CreateUserCertificateRequest, CreateUserCertificateResponse,
    GetProjectCaCertificateRequest, GetProjectCaCertificateResponse,
    ListUserCertificateStatusesRequest, ListUserCertificateStatusesResponse,
    ListUserCertificatesRequest, ListUserCertificatesResponse, RevokeUserCertificateRequest,
    RevokeUserCertificateResponse, RevokeUserCertificatesRequest, RevokeUserCertificatesResponse,
    RotateProjectCaRequest, RotateProjectCaResponse,
    certificate_service_server::CertificateService,
};

#[tonic::async_trait]
impl CertificateService for Services {
    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn create_user_certificate(
        &self,
        request: Request<CreateUserCertificateRequest>,
    ) -> Result<Response<CreateUserCertificateResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key_type = key_type_from_proto("key_type", req.key_type).map_err(to_status)?;
        let key_source = match (&req.csr_pem, key_type) {
            (None, key_type) => KeySource::Generate(key_type.unwrap_or_default()),
            (Some(csr_pem), None) => KeySource::Csr(csr_pem),
            (Some(_), Some(_)) => return Err(to_status(key_type_with_csr())),
        };
        let mut issued = self
            .core
            .create_user_certificate(
                &principal,
                &req.group_id,
                &req.username,
                req.months_until_expiration,
                key_source,
            )
            .await
            .map_err(to_status)?;
        self.issued.inc(issued.key_type);
        // The key's buffer moves into the message rather than being copied; what is left in
        // `issued` (an empty string) is zeroized on drop. The message itself cannot be
        // zeroized: prost encodes it into tonic's buffers (see SECURITY.md).
        Ok(Response::new(CreateUserCertificateResponse {
            certificate_pem: std::mem::take(&mut issued.certificate_pem),
            private_key_pem: std::mem::take(&mut *issued.private_key_pem),
            serial_number: issued.serial,
            subject: std::mem::take(&mut issued.subject),
            not_before: Some(timestamp(issued.validity.not_before)),
            not_after: Some(timestamp(issued.validity.not_after)),
        }))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn list_user_certificates(
        &self,
        request: Request<ListUserCertificatesRequest>,
    ) -> Result<Response<ListUserCertificatesResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let certificates = self
            .core
            .list_user_certificates(&principal, &req.group_id, &req.username, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) =
            page_parts(certificates, |c| v1::UserCertificate {
                serial_number: c.serial,
                subject: c.subject,
                group_id: c.project_id.to_string(),
                created_at: Some(timestamp(c.not_before)),
                not_after: Some(timestamp(c.not_after)),
            });
        Ok(Response::new(ListUserCertificatesResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_project_ca_certificate(
        &self,
        request: Request<GetProjectCaCertificateRequest>,
    ) -> Result<Response<GetProjectCaCertificateResponse>, Status> {
        self.project_ca_certificate(request).await
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn rotate_project_ca(
        &self,
        request: Request<RotateProjectCaRequest>,
    ) -> Result<Response<RotateProjectCaResponse>, Status> {
        self.rotate_ca(request).await
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn revoke_user_certificate(
        &self,
        request: Request<RevokeUserCertificateRequest>,
    ) -> Result<Response<RevokeUserCertificateResponse>, Status> {
        revocation::revoke_user_certificate(self, request).await
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn revoke_user_certificates(
        &self,
        request: Request<RevokeUserCertificatesRequest>,
    ) -> Result<Response<RevokeUserCertificatesResponse>, Status> {
        revocation::revoke_user_certificates(self, request).await
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn list_user_certificate_statuses(
        &self,
        request: Request<ListUserCertificateStatusesRequest>,
    ) -> Result<Response<ListUserCertificateStatusesResponse>, Status> {
        revocation::list_user_certificate_statuses(self, request).await
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_project_crl(
        &self,
        request: Request<v1::GetProjectCrlRequest>,
    ) -> Result<Response<v1::GetProjectCrlResponse>, Status> {
        super::crl::get_project_crl(self, request).await
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_ocsp_response(
        &self,
        request: Request<v1::GetOcspResponseRequest>,
    ) -> Result<Response<v1::GetOcspResponseResponse>, Status> {
        super::crl::get_ocsp_response(self, request).await
    }
}

/// `INVALID_ATTRIBUTE`: a key type was asked for with a CSR, whose key decides the type.
fn key_type_with_csr() -> AtlasError {
    AtlasError::new(
        ErrorCode::InvalidAttribute,
        "The attribute keyType cannot be combined with a certificate signing request: the \
         certificate is for the request's key.",
        vec!["keyType".to_owned()],
    )
    .with_field("key_type")
}
