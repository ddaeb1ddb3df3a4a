//! `CertificateService.GetProjectCrl` and `GetOcspResponse`: the project's revocation
//! information, answered without credentials (a CRL and an OCSP answer are public by design,
//! as on the REST routes), so no key is looked up and nothing is authorised.

use tonic::{Request, Response, Status};

use super::Services;
use super::convert::timestamp;
use super::status::to_status;
use crate::proto::v1;

pub(super) async fn get_project_crl(
    services: &Services,
    request: Request<v1::GetProjectCrlRequest>,
) -> Result<Response<v1::GetProjectCrlResponse>, Status> {
    let req = request.into_inner();
    let crls = services
        .core
        .project_crls(&req.group_id)
        .await
        .map_err(to_status)?;
    let crl_pem = crls.iter().map(|crl| crl.pem.as_str()).collect();
    Ok(Response::new(v1::GetProjectCrlResponse {
        crls: crls
            .iter()
            .map(|crl| v1::ProjectCrl {
                ca_generation: crl.generation,
                crl_number: crl.number,
                crl_der: crl.der.clone(),
                this_update: Some(timestamp(crl.this_update)),
                next_update: Some(timestamp(crl.next_update)),
            })
            .collect(),
        crl_pem,
    }))
}

pub(super) async fn get_ocsp_response(
    services: &Services,
    request: Request<v1::GetOcspResponseRequest>,
) -> Result<Response<v1::GetOcspResponseResponse>, Status> {
    let req = request.into_inner();
    let ocsp_response = services
        .core
        .ocsp_response(&req.group_id, &req.ocsp_request)
        .await
        .map_err(to_status)?;
    Ok(Response::new(v1::GetOcspResponseResponse { ocsp_response }))
}
