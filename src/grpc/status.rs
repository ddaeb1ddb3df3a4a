//! The one mapping from the core's [`AtlasError`] to a gRPC [`Status`]: the code from the
//! error's kind, the Atlas errorCode as `google.rpc.ErrorInfo.reason` (with the Atlas HTTP
//! status and parameters in its metadata, so the REST gateway renders Atlas errors without
//! deciding them again), and a `BadRequest` field violation for a bad field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::domain::{AtlasError, ErrorCode, ErrorKind};

/// The `ErrorInfo.domain` of dbcert's errors.
pub const ERROR_DOMAIN: &str = "dbcert";
/// The `ErrorInfo.metadata` key holding the Atlas HTTP status.
pub const METADATA_HTTP_STATUS: &str = "httpStatus";
/// The `ErrorInfo.metadata` key holding the Atlas parameters, as a JSON array.
pub const METADATA_PARAMETERS: &str = "parameters";

/// Maps an error kind to its gRPC code.
pub fn grpc_code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Aborted => Code::Aborted,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Unavailable => Code::Unavailable,
    }
}

/// Converts a core error into a status. Internal and unavailable errors are logged here, once.
pub fn to_status(error: AtlasError) -> Status {
    let code = error.code();
    log_server_error(&error);
    let parameters = serde_json::to_string(error.parameters()).expect("strings serialize");
    let metadata = HashMap::from([
        (
            METADATA_HTTP_STATUS.to_owned(),
            code.http_status().to_string(),
        ),
        (METADATA_PARAMETERS.to_owned(), parameters),
    ]);
    let mut details = ErrorDetails::with_error_info(code.as_str(), ERROR_DOMAIN, metadata);
    if let Some(field) = error.field() {
        details.add_bad_request_violation(field, error.detail());
    }
    Status::with_error_details(grpc_code(code.kind()), error.detail(), details)
}

/// Logs an internal or unavailable error, with its causes, where it is mapped for a client
/// (here, and in the REST gateway for an error met while authenticating); other errors are the
/// client's and are not logged.
pub fn log_server_error(error: &AtlasError) {
    match error.code() {
        ErrorCode::UnexpectedError => error!(error = %display_chain(error), "request failed"),
        ErrorCode::ServiceUnavailable => {
            tracing::warn!(error = %display_chain(error), "store unavailable")
        }
        _ => {}
    }
}

/// The `retry-after` metadata key of throttled and shed calls (seconds), beside the
/// `google.rpc.RetryInfo` detail.
pub const METADATA_RETRY_AFTER: &str = "retry-after";

/// A refusal decided by the network layer rather than the core: an Atlas errorCode and HTTP
/// status in `ErrorInfo` like every other error, and, when the client should come back, a
/// `RetryInfo` detail and `retry-after` metadata.
pub fn network_status(
    code: Code,
    error_code: &str,
    http_status: u16,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> Status {
    let metadata = HashMap::from([
        (METADATA_HTTP_STATUS.to_owned(), http_status.to_string()),
        (METADATA_PARAMETERS.to_owned(), "[]".to_owned()),
    ]);
    let mut details = ErrorDetails::with_error_info(error_code, ERROR_DOMAIN, metadata);
    let mut headers = tonic::metadata::MetadataMap::new();
    if let Some(wait) = retry_after {
        let secs = crate::auth::throttle::retry_after_secs(wait);
        details.set_retry_info(Some(std::time::Duration::from_secs(secs)));
        headers.insert(
            METADATA_RETRY_AFTER,
            tonic::metadata::MetadataValue::from(secs),
        );
    }
    Status::with_error_details_and_metadata(code, message, details, headers)
}

/// `RESOURCE_EXHAUSTED` / `RATE_LIMITED` (HTTP 429): too many failed authentications.
pub fn rate_limited(wait: std::time::Duration) -> Status {
    network_status(
        Code::ResourceExhausted,
        "RATE_LIMITED",
        429,
        "Too many failed authentication attempts; retry later.",
        Some(wait),
    )
}

/// Renders the limit layers' refusals of gRPC calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcLimitErrors;

impl crate::middleware::RenderLimitError<tonic::body::Body> for GrpcLimitErrors {
    fn render(
        &self,
        error: crate::middleware::LimitError,
        _path: &str,
    ) -> http::Response<tonic::body::Body> {
        use crate::middleware::{LimitError, OVERLOAD_RETRY_AFTER};
        let status = match error {
            LimitError::Overloaded => network_status(
                Code::Unavailable,
                "SERVICE_UNAVAILABLE",
                503,
                "The server is overloaded; retry later.",
                Some(OVERLOAD_RETRY_AFTER),
            ),
            LimitError::TimedOut => network_status(
                Code::DeadlineExceeded,
                "TIMEOUT",
                504,
                "The request took too long.",
                None,
            ),
            LimitError::Internal => network_status(
                Code::Internal,
                "UNEXPECTED_ERROR",
                500,
                "Unexpected error.",
                None,
            ),
        };
        status.into_http()
    }
}

/// Renders an error with its sources, for the log.
fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_an_error_info_with_its_http_status() {
        for &code in ErrorCode::ALL {
            let status = to_status(AtlasError::new(code, "detail", vec!["p".into()]));
            assert_eq!(status.code(), grpc_code(code.kind()));
            let details = status.get_error_details();
            let info = details.error_info().expect("error info");
            assert_eq!(info.reason, code.as_str());
            assert_eq!(
                info.metadata[METADATA_HTTP_STATUS],
                code.http_status().to_string()
            );
            assert_eq!(info.metadata[METADATA_PARAMETERS], "[\"p\"]");
        }
    }

    #[test]
    fn internal_errors_show_no_cause() {
        let status = to_status(AtlasError::internal("connection string postgres://u:pw@h"));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("pw"));
    }

    #[test]
    fn bad_fields_become_violations() {
        let status = to_status(AtlasError::invalid_group_id("xyz"));
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("bad request").field_violations;
        assert_eq!(violations[0].field, "group_id");
    }
}
