//! The OpenAPI 3.1 document of the REST surface, built from the gateway's own types and served
//! unauthenticated at `GET /api/dbcert/v1/openapi.json`.
//!
//! The bodies' schemas are derived (`schemars`) from the serde types the handlers read and
//! write, the error bodies from [`ErrorBody`] and [`ChallengeBody`], the list shape from
//! `resource::ListPage`; what types cannot say (statuses, roles, query
//! parameters) is the table in [`operations`]. Three tests keep the document true:
//! - `openapi/dbcert.json` in the repository is this document (regenerate it with
//!   `DBCERT_BLESS_OPENAPI=1 cargo test --locked --lib gateway::openapi`);
//! - `tests/integration/openapi_contract.rs` checks that the route table and the document name
//!   the same methods and paths;
//! - `.ci/schemathesis.sh` sends generated requests to a live server and checks every answer
//!   against the document (status, content type, body schema).
//!
//! The document is public, like Atlas's own published specification: it holds nothing that is
//! not in the repository.

pub mod operations;
mod parameters;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::routing::get;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use self::operations::{ATLAS, DBCERT, Operation, Query, SchemaFn, Status, Success};
use self::parameters::{component_parameter, parameters, path_parameters};
use super::response::{
    ApiVersion, CHALLENGE_DETAIL, ChallengeBody, ErrorBody, JSON_CONTENT_TYPE, Reply,
};
use super::routes::Routes;
use crate::domain::ErrorCode;

/// The prefix of dbcert's own REST routes (what Atlas lacks).
pub const PREFIX: &str = "/api/dbcert/v1";

/// The media type v2 requests and answers carry (without the `charset` the server adds).
const V2_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";

/// The route serving the document.
pub fn routes(routes: Routes) -> Routes {
    routes.route("/openapi.json", get(serve))
}

/// The document, with `pretty` and `envelope` like every answer; no key needed.
async fn serve() -> Reply {
    Reply::Entity(StatusCode::OK, document().clone())
}

/// The OpenAPI document of the REST surface.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

/// The document as committed in `openapi/dbcert.json`: pretty, with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(document()).expect("a JSON value must serialize");
    text.push('\n');
    text
}

// === building ===

/// The two schema generators: request bodies are read (serde's deserialize contract: an
/// `Option` may be absent), answers written (the serialize contract: a field is absent only
/// when it is skipped).
struct Generators {
    request: SchemaGenerator,
    response: SchemaGenerator,
}

impl Generators {
    fn new() -> Self {
        let settings = || {
            SchemaSettings::draft2020_12().with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.meta_schema = None;
            })
        };
        Self {
            request: settings().for_deserialize().into_generator(),
            response: settings().for_serialize().into_generator(),
        }
    }

    fn response<T: JsonSchema>(&mut self) -> Value {
        self.response.subschema_for::<T>().to_value()
    }

    /// The definitions of both generators; a name both define must mean the same schema.
    fn definitions(mut self) -> Map<String, Value> {
        let mut all = self.request.take_definitions(true);
        for (name, schema) in self.response.take_definitions(true) {
            if let Some(other) = all.get(&name) {
                assert_eq!(
                    other, &schema,
                    "schema {name} differs between requests and answers"
                );
            }
            all.insert(name, schema);
        }
        let mut sorted: Vec<(String, Value)> = all.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.into_iter().collect()
    }
}

fn build() -> Value {
    let mut generators = Generators::new();
    // The components every operation refers to, generated first so their names are fixed.
    let error = generators.response::<ErrorBody>();
    let challenge = generators.response::<ChallengeBody>();
    let mut paths = Map::new();
    for version in [ApiVersion::V1, ApiVersion::V2] {
        for operation in ATLAS {
            let path = format!("{}{}", version.prefix(), operation.path);
            let item = paths
                .entry(path)
                .or_insert_with(|| Value::Object(Map::new()));
            item[operation.method] = atlas_operation(&mut generators, operation, version);
        }
    }
    for operation in DBCERT {
        let path = format!("{PREFIX}{}", operation.path);
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        // dbcert's routes answer like v1: `application/json`.
        let mut object = atlas_operation(&mut generators, operation, ApiVersion::V1);
        object["operationId"] = Value::String(operation.id.to_owned());
        item[operation.method] = object;
    }
    paths.insert(format!("{PREFIX}/openapi.json"), document_operation());
    let responses = error_responses(&error, &challenge);
    let schemas = generators.definitions();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dbcert",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Atlas-compatible issuer of X.509 client certificates for database users",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "The REST listener (`--http-listen`)"}],
        "security": [{"DigestAuth": []}],
        "tags": tags(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "DigestAuth": {
                    "type": "http",
                    "scheme": "digest",
                    "description": "HTTP Digest (RFC 7616) with an API key: the public key is \
                        the username, the private key the password. The challenge is \
                        `Digest realm=\"MMS Public API\", domain=\"\", nonce=\"…\", algorithm=MD5, \
                        qop=\"auth\", stale=false`; MD5, SHA-256 and their `-sess` variants are \
                        verified, `qop=auth` with `nc` and `cnonce` is required, a nonce lives \
                        300 s and a replayed (nonce, nc) is refused.",
                },
            },
            "parameters": parameters(),
            "headers": headers(),
            "responses": responses,
            "schemas": schemas,
        },
    })
}

const DESCRIPTION: &str = "The REST surface of dbcert: the Atlas Administration API routes it \
    reimplements, under `/api/atlas/v1.0` (media type `application/json`) and `/api/atlas/v2` \
    (`application/vnd.atlas.2023-01-01+json`, the one version Atlas publishes for each of these \
    operations: an `Accept` naming only other Atlas versions is 406 `INVALID_VERSION_DATE`, a \
    malformed one 406 `NOT_ACCEPTABLE`, none at all the 2023-01-01 answer), and dbcert's own \
    routes under `/api/dbcert/v1`.\n\n\
    Every operation takes `pretty` (Jackson-style indented JSON) and `envelope` (the body \
    becomes `{\"status\": <HTTP status>, \"content\": <body>}`; a list gains `status` instead; \
    the HTTP status is kept, except that an enveloped 204 is sent as 200). Errors are JSON \
    objects with `detail`, `error`, `errorCode`, `parameters` and `reason`, with \
    `Content-Type: application/json` and an `X-Error-Code` header on both versions. Bodies \
    over 1 MiB are refused (413), unknown attributes too (400 `INVALID_ATTRIBUTE`). HEAD is \
    answered wherever GET is, without a body. Any other method on a documented path is 405 \
    `METHOD_NOT_ALLOWED` with `Allow`; an unknown path is 404 `RESOURCE_NOT_FOUND`.";

fn tags() -> Value {
    let mut seen: Vec<&str> = Vec::new();
    for operation in operations::all() {
        if !seen.contains(&operation.tag) {
            seen.push(operation.tag);
        }
    }
    // The tag of `GET /openapi.json`, which is not in the tables.
    if !seen.contains(&"dbcert") {
        seen.push("dbcert");
    }
    let tags = seen
        .into_iter()
        .map(|name| match name {
            "dbcert" => json!({"name": name, "description": "dbcert's own routes"}),
            _ => json!({"name": name}),
        })
        .collect();
    Value::Array(tags)
}

/// The operation object of an Atlas operation under one version's prefix.
fn atlas_operation(
    generators: &mut Generators,
    operation: &Operation,
    version: ApiVersion,
) -> Value {
    let media_type = match version {
        ApiVersion::V1 => JSON_CONTENT_TYPE,
        ApiVersion::V2 => V2_MEDIA_TYPE,
    };
    let id = match version {
        ApiVersion::V1 => format!("{}V1", operation.id),
        ApiVersion::V2 => operation.id.to_owned(),
    };
    let mut parameters: Vec<Value> = path_parameters(operation.path);
    let mut names = vec!["pretty", "envelope"];
    if matches!(operation.query, Query::Paging | Query::Events) {
        names.extend(["pageNum", "itemsPerPage", "includeCount"]);
    }
    if operation.query == Query::Events {
        names.extend(["eventType", "minDate", "maxDate"]);
    }
    parameters.extend(names.into_iter().map(component_parameter));
    let mut responses = success_responses(generators, &operation.success, version, media_type);
    let public = matches!(operation.success, Success::Public { .. });
    let mut statuses: Vec<u16> = if public {
        UNAUTHENTICATED.to_vec()
    } else {
        EVERY_REQUEST.to_vec()
    };
    statuses.extend(operation.errors);
    if version == ApiVersion::V2 {
        // An `Accept` naming only versions the operation does not publish (`versions.rs`).
        statuses.push(406);
    }
    statuses.sort_unstable();
    for status in statuses {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{status}")}),
        );
    }
    let mut object = json!({
        "operationId": id,
        "tags": [operation.tag],
        "summary": operation.summary,
        "description": operation.description,
        "parameters": parameters,
        "responses": responses,
    });
    if let Success::Public {
        request: Some(request),
        ..
    } = operation.success
    {
        object["security"] = json!([]);
        object["requestBody"] = json!({
            "required": true,
            "content": {request: {"schema": {"type": "string", "contentMediaType": request}}},
        });
    } else if public {
        object["security"] = json!([]);
    }
    if let Some(body) = operation.body {
        let schema = body_schema(generators, body);
        object["requestBody"] = json!({
            "required": false,
            "description": "Read as JSON whatever its `Content-Type`; an empty body is `{}`; \
                `null` is the same as an absent attribute.",
            "content": {media_type: {"schema": schema}},
        });
    }
    object
}

fn body_schema(generators: &mut Generators, body: SchemaFn) -> Value {
    body(&mut generators.request).to_value()
}

/// The statuses every authenticated request may get, whatever its operation: a malformed
/// request or flag (400), no or a wrong Digest answer (401), a body over 1 MiB (413), a target
/// or head over the limits (414, 431), too many failed authentications (429), an internal
/// error (500), an overloaded server or unreachable store (503), the request timeout (504).
const EVERY_REQUEST: &[u16] = &[400, 401, 413, 414, 429, 431, 500, 503, 504];

/// The statuses of the unauthenticated document route.
const UNAUTHENTICATED: &[u16] = &[400, 413, 414, 431, 500, 503, 504];

fn success_responses(
    generators: &mut Generators,
    success: &Success,
    version: ApiVersion,
    media_type: &str,
) -> Map<String, Value> {
    let mut responses = Map::new();
    match success {
        Success::Entity(status, schema) => {
            let status = match (status, version) {
                (Status::Always(status), _) => *status,
                (Status::Created, ApiVersion::V1) => 201,
                (Status::Created, ApiVersion::V2) => 200,
                (Status::Accepted, ApiVersion::V1) => 200,
                (Status::Accepted, ApiVersion::V2) => 202,
            };
            let entity = schema(&mut generators.response).to_value();
            responses.insert(
                status.to_string(),
                json!({
                    "description": "The entity; enveloped, `{\"status\":…,\"content\":<entity>}`.",
                    "content": {media_type: {"schema": {"anyOf": [entity, envelope(status, &entity)]}}},
                }),
            );
        }
        Success::List(page) | Success::CreatedList(page) => {
            let status = match (success, version) {
                (Success::CreatedList(_), ApiVersion::V1) => "201",
                _ => "200",
            };
            let page = list_page(generators, *page);
            responses.insert(
                status.into(),
                json!({
                    "description": "A page of results: `links` (`self` echoing the query, \
                        `previous` and `next` when they exist), `results`, and `totalCount` \
                        (0 with `includeCount=false`, as recorded); enveloped, it also has `status`.",
                    "content": {media_type: {"schema": page}},
                }),
            );
        }
        Success::Pem => {
            responses.insert(
                "201".into(),
                json!({
                    "description": "The certificate, then its unencrypted PKCS#8 private key, \
                        as PEM text (LF line endings, 64-character lines), NOT JSON although \
                        the media type says so, exactly as Atlas answers; the key is not kept \
                        by dbcert. Enveloped, `{\"status\":201,\"content\":\"<the PEM text>\"}`.",
                    "content": {media_type: {}},
                }),
            );
        }
        Success::CertificatePem => {
            responses.insert(
                "201".into(),
                json!({
                    "description": "The certificate alone as PEM text (LF line endings, \
                        64-character lines), NOT JSON although the media type says so, as the \
                        Atlas route answers; no private key (the caller holds it). Enveloped, \
                        `{\"status\":201,\"content\":\"<the PEM text>\"}`.",
                    "content": {media_type: {}},
                }),
            );
        }
        Success::Public {
            content_type,
            description,
            ..
        } => {
            responses.insert(
                "200".into(),
                json!({
                    "description": description,
                    "content": {*content_type: {"schema": {"type": "string", "contentMediaType": content_type}}},
                }),
            );
        }
        Success::TrustBundle => {
            responses.insert(
                "200".into(),
                json!({
                    "description": "The project's trust bundle, the file for mongod's \
                        `net.tls.CAFile`: the issuing CA's certificate, then each older CA's \
                        that signed a certificate still unexpired and not revoked, newest \
                        first, as PEM text (LF line endings), NOT JSON although the media type \
                        says so, as the certificate answers. Enveloped, \
                        `{\"status\":200,\"content\":\"<the PEM text>\"}`.",
                    "content": {media_type: {}},
                }),
            );
        }
        Success::Empty => {
            responses.insert("204".into(), json!({"description": "Done; no body."}));
            responses.insert(
                "200".into(),
                json!({
                    "description": "Done, with `envelope=true`: 204 cannot carry the envelope.",
                    "content": {media_type: {"schema": envelope(204, &json!({"type": "object", "maxProperties": 0}))}},
                }),
            );
        }
    }
    responses
}

/// A list page (`ListPage` of the items), with `status` when enveloped.
fn list_page(generators: &mut Generators, page: SchemaFn) -> Value {
    let page = page(&mut generators.response).to_value();
    json!({"allOf": [page, {"properties": {
        "status": {"const": 200, "description": "Only with `envelope=true`."},
    }}]})
}

/// `{"status": status, "content": content}`.
fn envelope(status: u16, content: &Value) -> Value {
    json!({
        "type": "object",
        "required": ["status", "content"],
        "properties": {"status": {"const": status}, "content": content},
        "additionalProperties": false,
    })
}

fn headers() -> Value {
    json!({
        "X-Error-Code": {
            "description": "The `errorCode` of the body.",
            "schema": {"type": "string"},
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 0},
        },
        "WWW-Authenticate": {
            "description": "The Digest challenge, on a 401 that asks for credentials.",
            "schema": {"type": "string"},
        },
    })
}

/// The error codes of each status: the core's (from [`ErrorCode::ALL`]) and the gateway's.
fn error_codes() -> BTreeMap<u16, Vec<&'static str>> {
    let mut codes: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for &code in ErrorCode::ALL {
        codes
            .entry(code.http_status())
            .or_default()
            .push(code.as_str());
    }
    let gateway: &[(u16, &str)] = &[
        (400, "MALFORMED_JSON"),
        (400, "INVALID_JSON"),
        (400, "INVALID_PATH_PARAMETER"),
        (400, "INVALID_REQUEST"),
        (401, "UNEXPECTED_ERROR"),
        (404, "RESOURCE_NOT_FOUND"),
        (406, "INVALID_VERSION_DATE"),
        (406, "NOT_ACCEPTABLE"),
        (413, "REQUEST_TOO_LARGE"),
        (414, "URI_TOO_LONG"),
        (429, "RATE_LIMITED"),
        (431, "REQUEST_HEADERS_TOO_LARGE"),
        (504, "TIMEOUT"),
    ];
    for &(status, code) in gateway {
        codes.entry(status).or_default().push(code);
    }
    for list in codes.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    codes
}

/// The response objects of the error statuses (`#/components/responses/<status>`).
fn error_responses(error: &Value, challenge: &Value) -> Value {
    let codes = error_codes();
    let mut responses = Map::new();
    for &status in EVERY_REQUEST.iter().chain(&[404, 406, 409]) {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let listed = codes
            .get(&status)
            .map(|codes| {
                codes
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let body = json!({
            "allOf": [error, {"properties": {"error": {"const": status}}}],
        });
        let schema = if status == 401 {
            json!({"anyOf": [challenge, body, envelope(401, challenge), envelope(401, &body)]})
        } else {
            json!({"anyOf": [body, envelope(status, &body)]})
        };
        let mut response = json!({
            "description": format!("{reason}: the Atlas error body; errorCode one of {listed}."),
            "headers": {"X-Error-Code": {"$ref": "#/components/headers/X-Error-Code"}},
            "content": {JSON_CONTENT_TYPE: {"schema": schema}},
        });
        match status {
            401 => {
                response["description"] = Value::String(format!(
                    "{reason}: a Digest challenge (`WWW-Authenticate`, the body `{CHALLENGE_DETAIL}` \
                     as Atlas records it, without `parameters`), or the Atlas error body \
                     (errorCode one of {listed})."
                ));
                response["headers"]["WWW-Authenticate"] =
                    json!({"$ref": "#/components/headers/WWW-Authenticate"});
            }
            429 | 503 => {
                response["headers"]["Retry-After"] =
                    json!({"$ref": "#/components/headers/Retry-After"});
            }
            _ => {}
        }
        responses.insert(status.to_string(), response);
    }
    let mut sorted: Vec<(String, Value)> = responses.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}

/// `GET /api/dbcert/v1/openapi.json`: this document, unauthenticated.
fn document_operation() -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "This document (OpenAPI 3.1); enveloped, \
                `{\"status\":200,\"content\":<document>}`.",
            "content": {JSON_CONTENT_TYPE: {"schema": {"type": "object"}}},
        }),
    );
    for status in UNAUTHENTICATED {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{status}")}),
        );
    }
    json!({
        "get": {
            "operationId": "getOpenApiDocument",
            "tags": ["dbcert"],
            "summary": "Return this OpenAPI document",
            "description": "No key needed: like Atlas's published specification, the document \
                holds nothing that is not in dbcert's repository (`openapi/dbcert.json`).",
            "security": [],
            "parameters": [component_parameter("pretty"), component_parameter("envelope")],
            "responses": responses,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The committed file, `openapi/dbcert.json`.
    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/dbcert.json");

    /// An operation listed twice would be rendered once, the later copy silently winning.
    #[test]
    fn each_operation_is_listed_once() {
        let mut ids = std::collections::HashSet::new();
        for operation in operations::all() {
            assert!(ids.insert(operation.id), "{} listed twice", operation.id);
        }
    }

    #[test]
    fn each_tag_is_listed_once() {
        let document = build();
        let mut names: Vec<&str> = document["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let listed = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), listed, "{names:?}");
    }

    #[test]
    fn committed_document_is_current() {
        let generated = document_text();
        if std::env::var_os("DBCERT_BLESS_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/dbcert.json differs from the document the gateway's types generate; \
             regenerate it with `DBCERT_BLESS_OPENAPI=1 cargo test --locked --lib \
             gateway::openapi` and review the diff"
        );
    }
}
