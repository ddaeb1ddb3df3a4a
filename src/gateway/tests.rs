//! Router tests through `tower::ServiceExt::oneshot`: what the gateway answers before any RPC
//! (404/405 in Atlas shape, the flags, body bounds, malformed and refused bodies, undecodable
//! path segments), byte for byte. The routes here are small handlers over the gateway's real
//! layers and extractors; the handlers that call the services are covered by `tests/`.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, patch};
use serde_json::json;
use tower::ServiceExt as _;

use super::body::AtlasJson;
use super::certificates::NewCertificate;
use super::database_users::DatabaseUserChanges;
use super::extract::{AtlasPath, RequestContext};
use super::response::{JSON_CONTENT_TYPE, Reply, V2_CONTENT_TYPE, X_ERROR_CODE};
use super::{MAX_BODY_BYTES, atlas, not_found};

const CERTS: &str = "/groups/{group_id}/databaseUsers/{first}/certs";
const USER: &str = "/groups/{group_id}/databaseUsers/{first}/{second}";

async fn create_certificate(
    ctx: RequestContext,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    AtlasJson(_): AtlasJson<NewCertificate>,
) -> Reply {
    let status = super::resource::created(&ctx);
    Reply::Entity(status, json!({"groupId": group_id, "username": username}))
}

async fn update_user(
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
    AtlasJson(_): AtlasJson<DatabaseUserChanges>,
) -> Reply {
    Reply::Entity(
        StatusCode::OK,
        json!({"databaseName": database_name, "groupId": group_id, "username": username}),
    )
}

fn router() -> Router {
    let mut routes = Router::new();
    for prefix in ["/api/atlas/v1.0", "/api/atlas/v2"] {
        routes = routes
            .route(
                &format!("{prefix}{CERTS}"),
                get(|| async { Reply::Empty }).post(create_certificate),
            )
            .route(&format!("{prefix}{USER}"), patch(update_user));
    }
    atlas(routes.fallback(not_found))
}

async fn send(method: &str, uri: &str, body: Body) -> Response {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "h:1")
        .body(body)
        .unwrap();
    router().oneshot(request).await.unwrap()
}

/// Status, `Content-Type`, `X-Error-Code` (or "-") and body of a response.
async fn parts(response: Response) -> (u16, String, String, String) {
    let status = response.status().as_u16();
    let header_text = |name: axum::http::HeaderName| {
        response
            .headers()
            .get(name)
            .map_or("-".to_owned(), |v: &axum::http::HeaderValue| {
                v.to_str().unwrap().to_owned()
            })
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let error_code = header_text(X_ERROR_CODE);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        error_code,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn error(status: u16, code: &str, detail: &str, parameters: &str, reason: &str) -> String {
    format!(
        r#"{{"detail":"{detail}","error":{status},"errorCode":"{code}","parameters":{parameters},"reason":"{reason}"}}"#
    )
}

const CERTS_V1: &str = "/api/atlas/v1.0/groups/g1/databaseUsers/alice/certs";

#[tokio::test]
async fn no_route_is_an_atlas_404_in_the_flags_asked() {
    let (status, content_type, code, body) =
        parts(send("GET", "/api/atlas/v1.0/nothing/here", Body::empty()).await).await;
    assert_eq!((status, content_type.as_str()), (404, JSON_CONTENT_TYPE));
    assert_eq!(code, "RESOURCE_NOT_FOUND");
    assert_eq!(
        body,
        error(
            404,
            "RESOURCE_NOT_FOUND",
            "Cannot find resource /api/atlas/v1.0/nothing/here.",
            r#"["/api/atlas/v1.0/nothing/here"]"#,
            "Not Found"
        )
    );
    let (status, _, _, body) = parts(
        send(
            "GET",
            "/api/atlas/v2/x?pretty=true&envelope=true",
            Body::empty(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        "{\n  \"status\" : 404,\n  \"content\" : {\n    \"detail\" : \"Cannot find resource /api/atlas/v2/x.\",\n    \"error\" : 404,\n    \"errorCode\" : \"RESOURCE_NOT_FOUND\",\n    \"parameters\" : [ \"/api/atlas/v2/x\" ],\n    \"reason\" : \"Not Found\"\n  }\n}"
    );
}

#[tokio::test]
async fn a_method_the_route_lacks_is_an_atlas_405_with_allow() {
    let response = send("DELETE", CERTS_V1, Body::empty()).await;
    let allow = response.headers()[header::ALLOW]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let (status, _, code, body) = parts(response).await;
    assert_eq!((status, code.as_str()), (405, "METHOD_NOT_ALLOWED"));
    assert_eq!(
        body,
        error(
            405,
            "METHOD_NOT_ALLOWED",
            "The method DELETE is not allowed on this resource.",
            r#"["DELETE"]"#,
            "Method Not Allowed"
        )
    );
}

#[tokio::test]
async fn a_flag_that_is_not_a_boolean_is_refused_before_the_route() {
    let (status, _, code, body) = parts(
        send(
            "POST",
            "/api/atlas/v1.0/nothing?envelope=true&pretty=yes",
            Body::empty(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "INVALID_QUERY_PARAMETER"));
    // The flags read before the bad one apply to its error.
    assert_eq!(
        body,
        format!(
            r#"{{"status":400,"content":{}}}"#,
            error(
                400,
                "INVALID_QUERY_PARAMETER",
                "Invalid query parameter pretty specified: yes.",
                r#"["pretty"]"#,
                "Bad Request"
            )
        )
    );
}

#[tokio::test]
async fn bodies_over_the_bound_are_413_declared_or_streamed() {
    let too_large = error(
        413,
        "REQUEST_TOO_LARGE",
        &format!("The request body exceeds the limit of {MAX_BODY_BYTES} bytes."),
        "[]",
        "Request Entity Too Large",
    );
    let request = Request::builder()
        .method("POST")
        .uri(CERTS_V1)
        .header(header::CONTENT_LENGTH, (MAX_BODY_BYTES + 1).to_string())
        .body(Body::empty())
        .unwrap();
    let (status, _, _, body) = parts(router().oneshot(request).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (413, too_large.as_str()));
    let chunks = futures_chunks(MAX_BODY_BYTES + 1);
    let (status, _, _, body) = parts(send("POST", CERTS_V1, chunks).await).await;
    assert_eq!((status, body.as_str()), (413, too_large.as_str()));
}

/// A streamed body (no `Content-Length`) of `len` bytes.
fn futures_chunks(len: usize) -> Body {
    let chunks = (0..len.div_ceil(65_536)).map(move |i| {
        let size = (len - i * 65_536).min(65_536);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; size]))
    });
    Body::from_stream(tokio_stream::iter(chunks))
}

#[tokio::test]
async fn malformed_and_refused_bodies_answer_atlas_errors() {
    let cases = [
        (
            CERTS_V1,
            "POST",
            "{",
            error(
                400,
                "MALFORMED_JSON",
                "Received JSON is malformed.",
                "[]",
                "Bad Request",
            ),
        ),
        (
            CERTS_V1,
            "POST",
            "[1]",
            error(
                400,
                "INVALID_JSON",
                "Received JSON does not match expected format.",
                "[]",
                "Bad Request",
            ),
        ),
        (
            CERTS_V1,
            "POST",
            r#"{"monthsUntilExpiration": "x", "color": 1}"#,
            error(
                400,
                "INVALID_ATTRIBUTE",
                "Invalid attribute color specified.",
                r#"["color"]"#,
                "Bad Request",
            ),
        ),
        (
            CERTS_V1,
            "POST",
            r#"{"monthsUntilExpiration": 1.5}"#,
            error(
                400,
                "INVALID_ATTRIBUTE",
                "Invalid attribute monthsUntilExpiration specified.",
                r#"["monthsUntilExpiration"]"#,
                "Bad Request",
            ),
        ),
        (
            "/api/atlas/v1.0/groups/g1/databaseUsers/admin/alice",
            "PATCH",
            r#"{"x509Type": "BAD", "username": "bob"}"#,
            error(
                400,
                "INVALID_ATTRIBUTE",
                "Invalid attribute username specified.",
                r#"["username"]"#,
                "Bad Request",
            ),
        ),
        (
            "/api/atlas/v1.0/groups/g1/databaseUsers/admin/alice",
            "PATCH",
            r#"{"x509Type": "BAD", "roles": [{"roleName": 1}]}"#,
            error(
                400,
                "INVALID_ENUM_VALUE",
                "An invalid enumeration value BAD was specified.",
                r#"["BAD"]"#,
                "Bad Request",
            ),
        ),
        (
            "/api/atlas/v1.0/groups/g1/databaseUsers/admin/alice",
            "PATCH",
            r#"{"roles": [{"roleName": "read", "color": 1}]}"#,
            error(
                400,
                "INVALID_ATTRIBUTE",
                "Invalid attribute color specified.",
                r#"["color"]"#,
                "Bad Request",
            ),
        ),
    ];
    for (uri, method, body, expected) in cases {
        let (status, content_type, _, text) =
            parts(send(method, uri, Body::from(body)).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(content_type, JSON_CONTENT_TYPE);
        assert_eq!(text, expected, "{body}");
    }
}

#[tokio::test]
async fn good_bodies_reach_the_handler_with_decoded_paths() {
    let (status, content_type, _, body) = parts(
        send(
            "POST",
            "/api/atlas/v2/groups/g1/databaseUsers/al%20ice/certs",
            Body::from(r#"{"monthsUntilExpiration": null}"#),
        )
        .await,
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, V2_CONTENT_TYPE));
    assert_eq!(body, r#"{"groupId":"g1","username":"al ice"}"#);
    // An empty body reads as `{}`; the path's user is the body's.
    let (status, _, _, body) = parts(
        send(
            "PATCH",
            "/api/atlas/v1.0/groups/g1/databaseUsers/admin/alice",
            Body::from(r#"{"groupId":"g1","databaseName":"admin","username":"alice","labels":[],"links":[1]}"#),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"databaseName":"admin","groupId":"g1","username":"alice"}"#
    );
    let (status, _, _, _) = parts(send("POST", CERTS_V1, Body::empty()).await).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_path_segment_that_does_not_decode_is_an_atlas_400() {
    let (status, _, code, body) = parts(
        send(
            "POST",
            "/api/atlas/v1.0/groups/g1/databaseUsers/%FF/certs",
            Body::empty(),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "INVALID_PATH_PARAMETER"));
    assert_eq!(
        body,
        error(
            400,
            "INVALID_PATH_PARAMETER",
            "The request path contains an invalid parameter.",
            "[]",
            "Bad Request"
        )
    );
}
