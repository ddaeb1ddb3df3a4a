//! Rendering: the one place where a handler's [`Reply`] becomes HTTP bytes, with the `pretty`
//! and `envelope` flags applied, the Atlas error body, and the `tonic::Code` → HTTP table.
//!
//! # `envelope=true` and the HTTP status
//!
//! An enveloped response keeps its real HTTP status: the envelope's `"status"` mirrors the status
//! line. Atlas's record is silent on this; we keep the status because HTTP Digest needs a real
//! 401 to start its handshake (forcing 200 would break every Digest client that asks for an
//! envelope), and because a client that can read the status line loses nothing. The one
//! exception is 204 No Content, which cannot carry a body (RFC 9110 §15.3.5): enveloped, it is
//! sent as HTTP 200 with `{"status":204,"content":{}}`.

use std::io;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::domain::AtlasError;
use crate::grpc::{METADATA_HTTP_STATUS, METADATA_PARAMETERS};

/// The header naming the Atlas errorCode of an error response.
pub const X_ERROR_CODE: HeaderName = HeaderName::from_static("x-error-code");
/// The media type of v2 responses, as recorded from Atlas.
pub const V2_CONTENT_TYPE: &str = "application/vnd.atlas.2023-01-01+json;charset=utf-8";
/// The media type of v1 responses and of every error response.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The recorded body of Atlas's Digest challenge (its key order is not the usual error order).
pub const CHALLENGE_DETAIL: &str = "You are not authorized for this resource.";

/// Which of the two Atlas API prefixes a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/api/atlas/v1.0`.
    V1,
    /// `/api/atlas/v2` (media type `application/vnd.atlas.2023-01-01+json`).
    V2,
}

impl ApiVersion {
    /// Returns the path prefix of the version.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::V1 => "/api/atlas/v1.0",
            Self::V2 => "/api/atlas/v2",
        }
    }

    /// Returns the `Content-Type` of successful responses.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V1 => JSON_CONTENT_TYPE,
            Self::V2 => V2_CONTENT_TYPE,
        }
    }
}

/// The query flags every Atlas endpoint takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Jackson-style pretty JSON.
    pub pretty: bool,
    /// Wrap the body in `{"status":…,"content":…}`.
    pub envelope: bool,
}

/// What a handler answers; rendered by [`render`] once the request's flags are known. Its
/// `Debug` never shows a PEM body (it holds a private key).
#[derive(Clone)]
pub enum Reply {
    /// One entity, a JSON object.
    Entity(StatusCode, Value),
    /// A list object (`links`, `results`, `totalCount`): enveloped, it gains `"status"`.
    List(StatusCode, Map<String, Value>),
    /// Raw PEM text (the create-certificate endpoint).
    Pem(StatusCode, String),
    /// No content (204).
    Empty,
    /// An Atlas error.
    Error(ApiError),
    /// A Digest challenge: 401, the recorded body, `WWW-Authenticate` headers.
    Challenge(Vec<HeaderValue>),
}

/// An Atlas error: HTTP status, errorCode, detail and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The Atlas errorCode.
    pub error_code: String,
    /// The human-readable detail.
    pub detail: String,
    /// The parameters of the detail.
    pub parameters: Vec<Value>,
    /// Extra headers (e.g. `Allow` on a 405).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

// === impl ApiError ===

impl ApiError {
    /// Creates an error.
    pub fn new(
        status: StatusCode,
        error_code: &str,
        detail: impl Into<String>,
        parameters: Vec<String>,
    ) -> Self {
        Self {
            status,
            error_code: error_code.to_owned(),
            detail: detail.into(),
            parameters: parameters.into_iter().map(Value::String).collect(),
            headers: Vec::new(),
        }
    }

    /// 400 `INVALID_ATTRIBUTE` for a body attribute that is unknown or has a bad value.
    pub fn invalid_attribute(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ATTRIBUTE",
            format!("Invalid attribute {name} specified."),
            vec![name.to_owned()],
        )
    }

    /// 400 `MALFORMED_JSON`: the body does not parse as JSON.
    pub fn malformed_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            "Received JSON is malformed.",
            Vec::new(),
        )
    }

    /// 400 `INVALID_JSON`: the body is JSON but not of the expected shape (e.g. not an object).
    pub fn invalid_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "Received JSON does not match expected format.",
            Vec::new(),
        )
    }

    /// 400 `INVALID_QUERY_PARAMETER`.
    pub fn invalid_query_parameter(name: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_PARAMETER",
            format!("Invalid query parameter {name} specified: {value}."),
            vec![name.to_owned()],
        )
    }

    /// 400 `INVALID_ENUM_VALUE`.
    pub fn invalid_enum_value(value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ENUM_VALUE",
            format!("An invalid enumeration value {value} was specified."),
            vec![value.to_owned()],
        )
    }

    /// 400 `INVALID_PATH_PARAMETER`: a path segment that does not decode (bad UTF-8).
    pub fn invalid_path() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PATH_PARAMETER",
            "The request path contains an invalid parameter.",
            Vec::new(),
        )
    }

    /// 404 `RESOURCE_NOT_FOUND`: no route.
    pub fn resource_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            format!("Cannot find resource {path}."),
            vec![path.to_owned()],
        )
    }

    /// 405 `METHOD_NOT_ALLOWED`.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("The method {method} is not allowed on this resource."),
            vec![method.to_owned()],
        )
    }

    /// 413 `REQUEST_TOO_LARGE`: the body exceeds [`super::MAX_BODY_BYTES`].
    pub fn request_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_TOO_LARGE",
            format!(
                "The request body exceeds the limit of {} bytes.",
                super::MAX_BODY_BYTES
            ),
            Vec::new(),
        )
    }

    /// 400 `INVALID_REQUEST`: hyper could not parse the request line or a header (invalid UTF-8
    /// or NUL in the target, a bad method, version or header field).
    pub fn unparsable_request() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "The request could not be parsed as HTTP.",
            Vec::new(),
        )
    }

    /// 414 `URI_TOO_LONG`: the request target is longer than `max` bytes.
    pub fn uri_too_long(max: usize) -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            format!("The request target exceeds the limit of {max} bytes."),
            Vec::new(),
        )
    }

    /// 431 `REQUEST_HEADERS_TOO_LARGE`: the request head is over `max_bytes` or has more than
    /// `max_fields` header fields.
    pub fn request_head_too_large(max_bytes: usize, max_fields: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "REQUEST_HEADERS_TOO_LARGE",
            format!(
                "The request head exceeds the limit of {max_bytes} bytes or {max_fields} header fields."
            ),
            Vec::new(),
        )
    }

    /// 429 `RATE_LIMITED` with `Retry-After`: too many failed authentications from this address
    /// or for this key.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "Too many failed authentication attempts; retry later.",
            Vec::new(),
        );
        error.headers.push(retry_after(wait));
        error
    }

    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After`: the server sheds load.
    pub fn overloaded() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The server is overloaded; retry later.",
            Vec::new(),
        );
        error
            .headers
            .push(retry_after(crate::middleware::OVERLOAD_RETRY_AFTER));
        error
    }

    /// 504 `TIMEOUT`: the request took longer than the server allows.
    pub fn timed_out() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            "The request took too long.",
            Vec::new(),
        )
    }

    /// Translates a core error decided outside an RPC (a store failure while authenticating):
    /// the same error a service would give as a status, read by [`Self::from_status`]. Internal
    /// and unavailable errors are logged, as `grpc/status.rs` logs them for RPCs.
    pub fn from_atlas(error: &AtlasError) -> Self {
        crate::grpc::log_server_error(error);
        let code = error.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(
            status,
            code.as_str(),
            error.detail(),
            error.parameters().to_vec(),
        )
    }

    /// Translates a gRPC status from the services: the Atlas errorCode, HTTP status and
    /// parameters come from its `google.rpc.ErrorInfo`; without one, from [`http_status`].
    pub fn from_status(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let Some(info) = details.error_info() else {
            let http = http_status(status.code());
            let (error_code, detail) = match http {
                StatusCode::INTERNAL_SERVER_ERROR => {
                    ("UNEXPECTED_ERROR", "Unexpected error.".to_owned())
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    ("SERVICE_UNAVAILABLE", status.message().to_owned())
                }
                _ => (
                    fallback_error_code(status.code()),
                    status.message().to_owned(),
                ),
            };
            return Self::new(http, error_code, detail, Vec::new());
        };
        let http = info
            .metadata
            .get(METADATA_HTTP_STATUS)
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or_else(|| http_status(status.code()));
        let parameters = info
            .metadata
            .get(METADATA_PARAMETERS)
            .and_then(|p| serde_json::from_str::<Vec<Value>>(p).ok())
            .unwrap_or_default();
        Self {
            status: http,
            error_code: info.reason.clone(),
            detail: status.message().to_owned(),
            parameters,
            headers: Vec::new(),
        }
    }

    /// The Atlas error body, keys in Atlas's order: detail, error, errorCode, parameters, reason.
    pub fn body(&self) -> Value {
        let body = ErrorBody {
            detail: self.detail.clone(),
            error: self.status.as_u16(),
            error_code: self.error_code.clone(),
            parameters: self.parameters.clone(),
            reason: reason_phrase(self.status),
        };
        serde_json::to_value(body).expect("an error body must serialize")
    }
}

/// The body of every Atlas error, keys in Atlas's order (the OpenAPI document's `ApiError`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ApiError")]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    detail: String,
    /// The HTTP status, repeated.
    error: u16,
    /// The Atlas errorCode, stable for programs (also in the `X-Error-Code` header).
    error_code: String,
    /// The values the detail names (an attribute, an id, a value), in its order.
    parameters: Vec<Value>,
    /// The HTTP reason phrase of `error`.
    reason: &'static str,
}

/// The recorded body of Atlas's Digest challenge (401), keys in their recorded order: it has
/// no `parameters` (the OpenAPI document's `DigestChallenge`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "DigestChallenge")]
pub struct ChallengeBody {
    /// Always 401.
    error: u16,
    /// Always `Unauthorized`.
    reason: &'static str,
    /// Always `You are not authorized for this resource.`.
    detail: &'static str,
    /// Always `UNEXPECTED_ERROR`.
    error_code: &'static str,
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

fn retry_after(wait: std::time::Duration) -> (HeaderName, HeaderValue) {
    (
        header::RETRY_AFTER,
        HeaderValue::from(crate::auth::throttle::retry_after_secs(wait)),
    )
}

// === impl Reply ===

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entity(status, _) => f
                .debug_tuple("Entity")
                .field(status)
                .finish_non_exhaustive(),
            Self::List(status, _) => f.debug_tuple("List").field(status).finish_non_exhaustive(),
            Self::Pem(status, _) => f.debug_tuple("Pem").field(status).finish_non_exhaustive(),
            Self::Empty => f.write_str("Empty"),
            Self::Error(error) => f.debug_tuple("Error").field(error).finish(),
            Self::Challenge(_) => f.write_str("Challenge"),
        }
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Self::Error(error)
    }
}

impl From<tonic::Status> for Reply {
    fn from(status: tonic::Status) -> Self {
        Self::Error(ApiError::from_status(&status))
    }
}

/// A reply travels to the rendering middleware in the response's extensions, because only the
/// middleware knows the request's flags and version.
impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        response.extensions_mut().insert(self);
        response
    }
}

/// The recorded 401 body of a Digest challenge, in its recorded key order.
pub fn challenge_body() -> Value {
    let body = ChallengeBody {
        error: 401,
        reason: "Unauthorized",
        detail: CHALLENGE_DETAIL,
        error_code: "UNEXPECTED_ERROR",
    };
    serde_json::to_value(body).expect("a challenge body must serialize")
}

/// Renders a reply with the request's flags and version.
pub fn render(reply: Reply, flags: Flags, version: ApiVersion) -> Response {
    match reply {
        Reply::Entity(status, body) => json_response(status, body, flags, version.content_type()),
        Reply::List(status, mut list) => {
            if flags.envelope {
                insert_sorted(&mut list, "status", Value::from(status.as_u16()));
            }
            let body = serialize(&Value::Object(list), flags.pretty);
            bytes_response(status, body, version.content_type())
        }
        Reply::Pem(status, pem) => {
            if flags.envelope {
                json_response(status, Value::String(pem), flags, version.content_type())
            } else {
                bytes_response(status, pem.into_bytes(), version.content_type())
            }
        }
        Reply::Empty if flags.envelope => {
            let body = envelope(StatusCode::NO_CONTENT, Value::Object(Map::new()));
            bytes_response(
                StatusCode::OK,
                serialize(&body, flags.pretty),
                version.content_type(),
            )
        }
        Reply::Empty => StatusCode::NO_CONTENT.into_response(),
        Reply::Error(error) => {
            let mut response = json_response(error.status, error.body(), flags, JSON_CONTENT_TYPE);
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&error.error_code) {
                headers.insert(X_ERROR_CODE, value);
            }
            for (name, value) in error.headers {
                headers.append(name, value);
            }
            response
        }
        Reply::Challenge(challenges) => {
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                challenge_body(),
                flags,
                JSON_CONTENT_TYPE,
            );
            let headers: &mut HeaderMap = response.headers_mut();
            headers.insert(X_ERROR_CODE, HeaderValue::from_static("UNEXPECTED_ERROR"));
            for challenge in challenges {
                headers.append(header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
    }
}

fn json_response(
    status: StatusCode,
    body: Value,
    flags: Flags,
    content_type: &'static str,
) -> Response {
    let body = if flags.envelope {
        envelope(status, body)
    } else {
        body
    };
    bytes_response(status, serialize(&body, flags.pretty), content_type)
}

fn envelope(status: StatusCode, content: Value) -> Value {
    let mut wrapped = Map::new();
    wrapped.insert("status".into(), Value::from(status.as_u16()));
    wrapped.insert("content".into(), content);
    Value::Object(wrapped)
}

fn bytes_response(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Inserts a key keeping Atlas's alphabetical key order (the map preserves insertion order).
fn insert_sorted(map: &mut Map<String, Value>, key: &str, value: Value) {
    let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
    let at = entries.partition_point(|(k, _)| k.as_str() < key);
    entries.insert(at, (key.to_owned(), value));
    map.extend(entries);
}

/// Serializes compactly, or in Jackson's pretty style.
pub fn serialize(value: &Value, pretty: bool) -> Vec<u8> {
    if !pretty {
        return serde_json::to_vec(value).expect("a JSON value must serialize");
    }
    let mut out = Vec::with_capacity(256);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, JacksonFormatter::default());
    serde::Serialize::serialize(value, &mut serializer).expect("a JSON value must serialize");
    out
}

/// Jackson's `DefaultPrettyPrinter`: objects break lines with a 2-space indent per object level
/// and `"key" : value`; arrays stay inline (`[ a, b ]`, `[ {` … `} ]`, empty `[ ]`); an empty
/// object is `{ }`.
#[derive(Debug, Default)]
struct JacksonFormatter {
    nesting: usize,
    has_value: bool,
}

impl JacksonFormatter {
    fn indent<W: ?Sized + io::Write>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\n")?;
        for _ in 0..self.nesting {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for JacksonFormatter {
    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.nesting += 1;
        self.has_value = false;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.nesting -= 1;
        if self.has_value {
            self.indent(writer)?;
        } else {
            writer.write_all(b" ")?;
        }
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            writer.write_all(b",")?;
        }
        self.indent(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b" : ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.has_value = false;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b" ]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        writer.write_all(if first { b" " } else { b", " })
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Maps a gRPC code to the HTTP status of an error that carries no `ErrorInfo`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The Atlas errorCode of an error that carries no `ErrorInfo`.
fn fallback_error_code(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "INVALID_ATTRIBUTE",
        Code::Unauthenticated => "USER_UNAUTHORIZED",
        Code::PermissionDenied => "ACCESS_FORBIDDEN",
        Code::NotFound => "RESOURCE_NOT_FOUND",
        Code::AlreadyExists => "DUPLICATE_RESOURCE",
        Code::ResourceExhausted => "RATE_LIMITED",
        Code::DeadlineExceeded => "TIMEOUT",
        _ => "UNEXPECTED_ERROR",
    }
}

/// The reason phrase Atlas (JAX-RS) puts in `reason`.
fn reason_phrase(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
        other => other.canonical_reason().unwrap_or("Unknown"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn code_table_is_total() {
        let table = [
            (Code::Ok, 500),
            (Code::Cancelled, 500),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 500),
            (Code::Aborted, 500),
            (Code::OutOfRange, 500),
            (Code::Unimplemented, 500),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
            let error = ApiError::from_status(&tonic::Status::new(code, "m"));
            assert_eq!(error.status.as_u16(), http);
        }
    }

    #[test]
    fn every_core_error_code_renders_its_atlas_status() {
        for &code in crate::domain::ErrorCode::ALL {
            let status =
                crate::grpc::to_status(crate::domain::AtlasError::new(code, "d", vec!["p".into()]));
            let error = ApiError::from_status(&status);
            assert_eq!(error.status.as_u16(), code.http_status(), "{code:?}");
            assert_eq!(error.error_code, code.as_str());
            assert_eq!(error.parameters, vec![Value::from("p")]);
        }
    }

    #[test]
    fn core_errors_render_as_they_would_through_a_status() {
        for &code in crate::domain::ErrorCode::ALL {
            let error = || AtlasError::new(code, "d", vec!["p".into()]);
            let through_status = ApiError::from_status(&crate::grpc::to_status(error()));
            assert_eq!(ApiError::from_atlas(&error()), through_status, "{code:?}");
        }
        let outage = || AtlasError::unavailable("store down");
        assert_eq!(
            ApiError::from_atlas(&outage()),
            ApiError::from_status(&crate::grpc::to_status(outage()))
        );
    }

    #[test]
    fn error_info_decides_over_the_code() {
        let info = ErrorDetails::with_error_info(
            "NOT_IN_GROUP",
            "dbcert",
            HashMap::from([
                (METADATA_HTTP_STATUS.to_owned(), "401".to_owned()),
                (METADATA_PARAMETERS.to_owned(), "[\"abc\"]".to_owned()),
            ]),
        );
        let status =
            tonic::Status::with_error_details(Code::PermissionDenied, "Not in group abc.", info);
        let error = ApiError::from_status(&status);
        let body = serde_json::to_string(&error.body()).unwrap();
        assert_eq!(
            body,
            r#"{"detail":"Not in group abc.","error":401,"errorCode":"NOT_IN_GROUP","parameters":["abc"],"reason":"Unauthorized"}"#
        );
    }

    #[test]
    fn jackson_pretty_matches_the_reference_style() {
        let value: Value = serde_json::from_str(
            r#"{"links":[{"href":"http://h/x?pretty=true","rel":"self"}],"results":[{"_id":1,"subject":"CN=a"}],"empty":[],"obj":{},"nums":[1,2],"totalCount":2}"#,
        )
        .unwrap();
        let text = String::from_utf8(serialize(&value, true)).unwrap();
        let expected = "{\n  \"links\" : [ {\n    \"href\" : \"http://h/x?pretty=true\",\n    \"rel\" : \"self\"\n  } ],\n  \"results\" : [ {\n    \"_id\" : 1,\n    \"subject\" : \"CN=a\"\n  } ],\n  \"empty\" : [ ],\n  \"obj\" : { },\n  \"nums\" : [ 1, 2 ],\n  \"totalCount\" : 2\n}";
        assert_eq!(text, expected);
        assert_eq!(
            String::from_utf8(serialize(&Value::Object(Map::new()), true)).unwrap(),
            "{ }"
        );
        assert_eq!(
            String::from_utf8(serialize(&value, false)).unwrap(),
            value.to_string()
        );
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn envelope_wraps_entities_and_extends_lists() {
        let flags = Flags {
            pretty: false,
            envelope: true,
        };
        let mut list = Map::new();
        list.insert("links".into(), Value::Array(vec![]));
        list.insert("results".into(), Value::Array(vec![]));
        list.insert("totalCount".into(), Value::from(0));
        let response = render(Reply::List(StatusCode::OK, list), flags, ApiVersion::V1);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(
            body_text(response).await,
            r#"{"links":[],"results":[],"status":200,"totalCount":0}"#
        );
        let entity: Value = serde_json::from_str(r#"{"id":"a","name":"n"}"#).unwrap();
        let response = render(
            Reply::Entity(StatusCode::CREATED, entity),
            flags,
            ApiVersion::V2,
        );
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], V2_CONTENT_TYPE);
        assert_eq!(
            body_text(response).await,
            r#"{"status":201,"content":{"id":"a","name":"n"}}"#
        );
        let response = render(
            Reply::Error(ApiError::malformed_json()),
            Flags {
                pretty: true,
                envelope: false,
            },
            ApiVersion::V2,
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(response.headers()[X_ERROR_CODE], "MALFORMED_JSON");
        assert_eq!(
            body_text(response).await,
            "{\n  \"detail\" : \"Received JSON is malformed.\",\n  \"error\" : 400,\n  \"errorCode\" : \"MALFORMED_JSON\",\n  \"parameters\" : [ ],\n  \"reason\" : \"Bad Request\"\n}"
        );
        let response = render(Reply::Empty, flags, ApiVersion::V1);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, r#"{"status":204,"content":{}}"#);
        let response = render(
            Reply::Empty,
            Flags {
                pretty: true,
                envelope: false,
            },
            ApiVersion::V1,
        );
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(body_text(response).await, "");
    }

    #[test]
    fn debug_hides_pem_bodies() {
        let pem = concat!("-----BEGIN ", "PRIVATE KEY-----\nsecret\n");
        let text = format!("{:?}", Reply::Pem(StatusCode::CREATED, pem.to_owned()));
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn list_status_is_inserted_alphabetically() {
        let mut list = Map::new();
        list.insert("links".into(), Value::Array(vec![]));
        list.insert("results".into(), Value::Array(vec![]));
        list.insert("totalCount".into(), Value::from(0));
        insert_sorted(&mut list, "status", Value::from(200));
        assert_eq!(
            Value::Object(list).to_string(),
            r#"{"links":[],"results":[],"status":200,"totalCount":0}"#
        );
    }
}
