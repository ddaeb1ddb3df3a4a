//! The project's certificate revocation lists, public (a CRL is public by design; no Digest
//! authentication): `GET /api/dbcert/v1/groups/{groupId}/crl` (the issuing CA's CRL, DER,
//! `application/pkix-crl`), `GET …/crl/{generation}` (the CRL of one CA generation of the
//! trust bundle, DER: the URL of a leaf's CRL Distribution Point under
//! `--leaf-revocation-pointers crl`) and `GET …/crl.pem` (every current CA's CRL, PEM: mongod's
//! `net.tls.CRLFile`). Errors (unknown project, no CA yet, no such generation in the trust
//! bundle) are Atlas error bodies.
//!
//! Cost: the CRLs are served from the core's cache after one key lookup in the database, and
//! signed at most once per CA at a time; an `ETag` (the CRL numbers) answers a revalidation
//! with 304 and no body, and `Cache-Control: max-age` lets clients and proxies keep them.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Gateway;
use super::extract::AtlasPath;
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::certificate_service_server::CertificateService;

/// The media type of a DER CRL (RFC 2585).
pub const PKIX_CRL: &str = "application/pkix-crl";
/// The media type of the PEM CRLs.
pub const PEM_FILE: &str = "application/x-pem-file";
/// How long clients and proxies may keep a CRL without asking again (seconds). A revocation
/// re-signs the CRL at once; a kept copy lags it by at most this.
const MAX_AGE_SECS: u32 = 60;

/// The routes under `/api/dbcert/v1`.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/groups/{group_id}/crl", get(crl_der))
        .route("/groups/{group_id}/crl.pem", get(crl_pem))
        .route(
            "/groups/{group_id}/crl/{generation}",
            get(crl_of_generation),
        )
}

async fn crls(gateway: &Gateway, group_id: String) -> Result<v1::GetProjectCrlResponse, Reply> {
    let request = tonic::Request::new(v1::GetProjectCrlRequest { group_id });
    Ok(
        CertificateService::get_project_crl(&*gateway.services, request)
            .await?
            .into_inner(),
    )
}

async fn crl_der(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    AtlasPath(group_id): AtlasPath<String>,
) -> Response {
    match crls(&gateway, group_id).await {
        Ok(mut answer) if !answer.crls.is_empty() => {
            let issuing = answer.crls.swap_remove(0);
            let etag = etag(std::slice::from_ref(&issuing));
            public(&headers, PKIX_CRL, &etag, issuing.crl_der)
        }
        Ok(_) => Reply::Error(super::response::ApiError::from_status(
            &tonic::Status::internal("no crl"),
        ))
        .into_response(),
        Err(reply) => reply.into_response(),
    }
}

/// The DER CRL of one CA generation while that CA is in the project's trust bundle. A
/// generation that is not a canonical positive decimal (`1`, not `01` or `+1`) names no
/// resource: 404 `RESOURCE_NOT_FOUND`, as one that left (or never was in) the bundle.
async fn crl_of_generation(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    AtlasPath((group_id, generation)): AtlasPath<(String, String)>,
) -> Response {
    let Some(wanted) = parse_generation(&generation) else {
        return no_such_generation(&group_id, &generation);
    };
    match crls(&gateway, group_id.clone()).await {
        Ok(answer) => match answer
            .crls
            .into_iter()
            .find(|crl| crl.ca_generation == wanted)
        {
            Some(crl) => {
                let etag = etag(std::slice::from_ref(&crl));
                public(&headers, PKIX_CRL, &etag, crl.crl_der)
            }
            None => no_such_generation(&group_id, &generation),
        },
        Err(reply) => reply.into_response(),
    }
}

/// A CA generation as written in a CRL URL: a positive decimal without sign or leading zero.
fn parse_generation(text: &str) -> Option<u32> {
    let generation: u32 = text.parse().ok()?;
    (generation > 0 && generation.to_string() == text).then_some(generation)
}

/// 404 `RESOURCE_NOT_FOUND`: the project's trust bundle has no CA of that generation.
fn no_such_generation(group_id: &str, generation: &str) -> Response {
    Reply::Error(ApiError::new(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        format!(
            "Project {group_id} has no CA of generation {generation} in its trust bundle: no \
             CRL is served for it."
        ),
        vec![group_id.to_owned(), generation.to_owned()],
    ))
    .into_response()
}

async fn crl_pem(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    AtlasPath(group_id): AtlasPath<String>,
) -> Response {
    match crls(&gateway, group_id).await {
        Ok(answer) => {
            let etag = etag(&answer.crls);
            public(&headers, PEM_FILE, &etag, answer.crl_pem.into_bytes())
        }
        Err(reply) => reply.into_response(),
    }
}

/// The entity tag of CRLs: their generations and numbers, which change with every new CRL.
fn etag(crls: &[v1::ProjectCrl]) -> String {
    let parts: Vec<String> = crls
        .iter()
        .map(|crl| format!("{}.{}", crl.ca_generation, crl.crl_number))
        .collect();
    format!("\"crl-{}\"", parts.join("-"))
}

/// A public, cacheable answer; 304 when the client holds this version.
fn public(headers: &HeaderMap, content_type: &'static str, etag: &str, body: Vec<u8>) -> Response {
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    let mut response = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty()).into_response()
    } else {
        let mut response = (StatusCode::OK, Body::from(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECS}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_canonical_positive_decimals() {
        assert_eq!(parse_generation("1"), Some(1));
        assert_eq!(parse_generation("42"), Some(42));
        for bad in ["0", "01", "+1", "-1", "", "1.0", "x", "4294967296", " 1"] {
            assert_eq!(parse_generation(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn leaf_urls_use_the_prefix_the_routes_are_under() {
        assert_eq!(
            crate::domain::DBCERT_API_PATH,
            super::super::openapi::PREFIX
        );
    }
}
