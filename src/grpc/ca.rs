//! The project CA calls of `dbcert.v1.CertificateService`: `GetProjectCaCertificate` (the
//! issuing CA and the trust bundle) and `RotateProjectCa`. `certificates.rs` delegates to them.

use tonic::{Request, Response, Status};

use super::Services;
use super::convert::{key_type_from_proto, timestamp};
use super::status::to_status;
use crate::domain::CaCertificate;
use crate::proto::v1::{
    GetProjectCaCertificateRequest, GetProjectCaCertificateResponse, ProjectCaCertificate,
    RotateProjectCaRequest, RotateProjectCaResponse,
};

impl Services {
    /// `GetProjectCaCertificate`: the issuing CA, and the trust bundle.
    pub(super) async fn project_ca_certificate(
        &self,
        request: Request<GetProjectCaCertificateRequest>,
    ) -> Result<Response<GetProjectCaCertificateResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let bundle = self
            .core
            .project_ca_certificate(&principal, &req.group_id)
            .await
            .map_err(to_status)?;
        let bundle_pem = bundle.pem();
        let issuing = bundle.issuing().clone();
        Ok(Response::new(GetProjectCaCertificateResponse {
            certificate_pem: issuing.certificate_pem,
            subject: issuing.subject,
            not_before: Some(timestamp(issuing.not_before)),
            not_after: Some(timestamp(issuing.not_after)),
            generation: issuing.generation,
            trust_bundle: bundle.cas.into_iter().map(ca_certificate).collect(),
            bundle_pem,
        }))
    }

    /// `RotateProjectCa`: a new issuing CA.
    pub(super) async fn rotate_ca(
        &self,
        request: Request<RotateProjectCaRequest>,
    ) -> Result<Response<RotateProjectCaResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let key_type = key_type_from_proto("ca_key_type", req.ca_key_type).map_err(to_status)?;
        let ca = self
            .core
            .rotate_project_ca(&principal, &req.group_id, key_type)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RotateProjectCaResponse {
            ca: Some(ca_certificate(ca)),
        }))
    }
}

fn ca_certificate(ca: CaCertificate) -> ProjectCaCertificate {
    ProjectCaCertificate {
        generation: ca.generation,
        certificate_pem: ca.certificate_pem,
        subject: ca.subject,
        not_before: Some(timestamp(ca.not_before)),
        not_after: Some(timestamp(ca.not_after)),
    }
}
