//! The project's OCSP responder (RFC 6960), public (no Digest authentication, as a CRL):
//! `POST /api/dbcert/v1/groups/{groupId}/ocsp` with an `application/ocsp-request` body (at most
//! 64 KiB, else 413) and the GET form `…/ocsp/{base64 request}` (RFC 6960 appendix A.1). The
//! answer is `application/ocsp-response`, a signed response or an OCSP failure status
//! (`malformedRequest` for what does not parse); an unknown project or one without a CA yet is
//! an Atlas error body (404).
//!
//! Cost: each answer is one signature, and the core signs at most a few at once (beyond that
//! the answer is the OCSP `tryLater` status), so the public responder cannot take the CPU.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;

use super::Gateway;
use super::extract::AtlasPath;
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::domain::MAX_OCSP_REQUEST_BYTES;
use crate::proto::v1;
use crate::proto::v1::certificate_service_server::CertificateService;

/// The media type of an OCSP response (RFC 6960 appendix C.2).
pub const OCSP_RESPONSE: &str = "application/ocsp-response";

/// The routes under `/api/dbcert/v1`.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/groups/{group_id}/ocsp", post(ocsp_post))
        .route("/groups/{group_id}/ocsp/{*request}", get(ocsp_get))
}

async fn ocsp_post(
    State(gateway): State<Gateway>,
    AtlasPath(group_id): AtlasPath<String>,
    request: Request,
) -> Response {
    let body = match to_bytes(request.into_body(), MAX_OCSP_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(_) => return Reply::Error(ApiError::request_too_large()).into_response(),
    };
    answer(&gateway, group_id, body.to_vec()).await
}

async fn ocsp_get(
    State(gateway): State<Gateway>,
    AtlasPath((group_id, encoded)): AtlasPath<(String, String)>,
) -> Response {
    // The path is percent-decoded already; clients use standard base64, some the URL-safe
    // alphabet. What decodes to nothing is answered `malformedRequest` by the core.
    let encoded = encoded.trim_start_matches('/');
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
        .unwrap_or_default();
    answer(&gateway, group_id, der).await
}

async fn answer(gateway: &Gateway, group_id: String, ocsp_request: Vec<u8>) -> Response {
    let request = tonic::Request::new(v1::GetOcspResponseRequest {
        group_id,
        ocsp_request,
    });
    match CertificateService::get_ocsp_response(&*gateway.services, request).await {
        Ok(answer) => {
            let mut response = (
                StatusCode::OK,
                Body::from(answer.into_inner().ocsp_response),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(OCSP_RESPONSE),
            );
            // Every answer is produced now (and may carry the request's nonce).
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(status) => Reply::from(status).into_response(),
    }
}
