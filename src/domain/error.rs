//! The domain's errors: each carries an Atlas errorCode, a detail and its parameters.

use std::fmt;

/// An Atlas error code: a stable, transport-neutral name of what went wrong.
///
/// Each code knows the HTTP status Atlas answers it with (part of the Atlas contract, not of a
/// transport library) and a [`ErrorKind`] the gRPC adapter maps to a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The per-user cap on generated certificates is reached.
    AtlasGeneratedCertsLimitExceeded,
    /// The project's CA exists, so its key type can no longer change.
    CaKeyTypeImmutable,
    /// The organization still has live projects, so it cannot be deleted.
    CannotDeleteOrgActiveProjects,
    /// Removing the access list entry would refuse the very key and address asking for it.
    CannotRemoveCallerFromAccessList,
    /// The project is in self-managed X.509 mode.
    CannotGenerateCertIfAdvancedX509,
    /// More than 24 months were asked for.
    CertExpiryCannotExceedTwoYears,
    /// The certificate is revoked already (dbcert's revocation extension).
    CertificateAlreadyRevoked,
    /// The project has no certificate of that serial number.
    CertificateNotFound,
    /// The project's certificate of that serial number was issued to another user.
    CertificateNotIssuedToUser,
    /// A certificate signing request's key is not RSA 2048/3072/4096 or ECDSA P-256/P-384.
    CsrKeyTypeNotSupported,
    /// A certificate signing request's signature does not verify with its own key.
    CsrSignatureInvalid,
    /// A certificate signing request names a subject other than `CN=<username>`.
    CsrSubjectMismatch,
    /// A non-X.509 user must live on the `admin` database.
    DatabaseNameInvalidAdmin,
    /// An X.509 user must live on the `$external` database.
    DatabaseNameInvalidExternal,
    /// The customer CA has expired.
    ExpiredX509CaCertificate,
    /// A project with that name already exists in the organization.
    GroupAlreadyExists,
    /// No such project.
    GroupNotFound,
    /// No project of that name in the caller's organization (`GET /groups/byName/{name}`).
    GroupNameNotFound,
    /// An attribute has an invalid value.
    InvalidAttribute,
    /// A certificate signing request is not one PEM PKCS#10 request, or is too large.
    InvalidCsr,
    /// An enumeration value (a role, an x509Type) is unknown.
    InvalidEnumValue,
    /// The project id is not 24 hexadecimal characters.
    InvalidGroupId,
    /// An API key id is malformed or unknown.
    InvalidApiKeyId,
    /// An organization id is malformed.
    InvalidOrgId,
    /// A paging parameter is out of range.
    InvalidQueryParameter,
    /// The key has an access list that does not hold the client's address.
    IpAddressNotOnAccessList,
    /// A certificate serial number is not a positive decimal integer.
    InvalidSerialNumber,
    /// The customer CA is not a PEM X.509 certificate.
    InvalidX509CaCertificate,
    /// A required attribute is missing.
    MissingAttribute,
    /// The project has no CA yet (it is created with the first certificate).
    ProjectCaNotFound,
    /// Another rotation of the project's CA (on any replica) came first; nothing changed.
    ProjectCaRotationConflict,
    /// No such resource under that path (an event id the project or organization lacks).
    ResourceNotFound,
    /// The key is not a member of the project's organization.
    NotInGroup,
    /// No such organization.
    OrgNotFound,
    /// The store is unreachable; try again.
    ServiceUnavailable,
    /// No or invalid credentials.
    Unauthenticated,
    /// An internal failure; details are logged, not returned.
    UnexpectedError,
    /// The database user exists already.
    UserAlreadyExists,
    /// The user is not a MANAGED X.509 user.
    UserNotManagedX509,
    /// No such database user.
    UsernameNotFound,
    /// The key lacks the role the call needs.
    UserUnauthorized,
}

/// The transport-neutral category of an [`ErrorCode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A concurrent change came first (a compare-and-set lost); retrying may succeed.
    Aborted,
    /// The resource exists already.
    AlreadyExists,
    /// The request is valid but the state forbids it.
    FailedPrecondition,
    /// An internal failure.
    Internal,
    /// The request is invalid.
    InvalidArgument,
    /// The resource does not exist.
    NotFound,
    /// The caller may not do this.
    PermissionDenied,
    /// A quota is exhausted.
    ResourceExhausted,
    /// The caller is not authenticated.
    Unauthenticated,
    /// A dependency is down; retry later.
    Unavailable,
}

impl ErrorCode {
    /// Returns the Atlas errorCode string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtlasGeneratedCertsLimitExceeded => "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED",
            Self::CaKeyTypeImmutable => "CA_KEY_TYPE_IMMUTABLE",
            Self::CannotGenerateCertIfAdvancedX509 => "CANNOT_GENERATE_CERT_IF_ADVANCED_X509",
            Self::CertExpiryCannotExceedTwoYears => "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS",
            Self::CertificateAlreadyRevoked => "CERTIFICATE_ALREADY_REVOKED",
            Self::CertificateNotFound => "CERTIFICATE_NOT_FOUND",
            Self::CertificateNotIssuedToUser => "CERTIFICATE_NOT_ISSUED_TO_USER",
            Self::CsrKeyTypeNotSupported => "CSR_KEY_TYPE_NOT_SUPPORTED",
            Self::CsrSignatureInvalid => "CSR_SIGNATURE_INVALID",
            Self::CsrSubjectMismatch => "CSR_SUBJECT_MISMATCH",
            Self::DatabaseNameInvalidAdmin => "DATABASE_NAME_INVALID_ADMIN",
            Self::DatabaseNameInvalidExternal => "DATABASE_NAME_INVALID_EXTERNAL",
            Self::ExpiredX509CaCertificate => "EXPIRED_X509_CA_CERTIFICATE",
            Self::CannotDeleteOrgActiveProjects => "CANNOT_DELETE_ORG_ACTIVE_PROJECTS",
            Self::CannotRemoveCallerFromAccessList => "CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST",
            Self::GroupAlreadyExists => "GROUP_ALREADY_EXISTS",
            Self::GroupNotFound => "GROUP_NOT_FOUND",
            Self::GroupNameNotFound => "GROUP_NAME_NOT_FOUND",
            Self::InvalidAttribute => "INVALID_ATTRIBUTE",
            Self::InvalidCsr => "INVALID_CSR",
            Self::InvalidEnumValue => "INVALID_ENUM_VALUE",
            Self::InvalidGroupId => "INVALID_GROUP_ID",
            Self::InvalidApiKeyId => "INVALID_API_KEY_ID",
            Self::InvalidOrgId => "INVALID_ORG_ID",
            Self::InvalidQueryParameter => "INVALID_QUERY_PARAMETER",
            Self::IpAddressNotOnAccessList => "IP_ADDRESS_NOT_ON_ACCESS_LIST",
            Self::InvalidSerialNumber => "INVALID_SERIAL_NUMBER",
            Self::InvalidX509CaCertificate => "INVALID_X509_CA_CERTIFICATE",
            Self::MissingAttribute => "MISSING_ATTRIBUTE",
            Self::ProjectCaNotFound => "PROJECT_CA_NOT_FOUND",
            Self::ProjectCaRotationConflict => "PROJECT_CA_ROTATION_CONFLICT",
            Self::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Self::NotInGroup => "NOT_IN_GROUP",
            Self::OrgNotFound => "ORG_NOT_FOUND",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::Unauthenticated | Self::UserUnauthorized => "USER_UNAUTHORIZED",
            Self::UnexpectedError => "UNEXPECTED_ERROR",
            Self::UserAlreadyExists => "USER_ALREADY_EXISTS",
            Self::UserNotManagedX509 => "USER_NOT_MANAGED_X509",
            Self::UsernameNotFound => "USERNAME_NOT_FOUND",
        }
    }

    /// Returns the HTTP status Atlas answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::AtlasGeneratedCertsLimitExceeded
            | Self::CaKeyTypeImmutable
            | Self::CannotGenerateCertIfAdvancedX509
            | Self::CannotRemoveCallerFromAccessList
            | Self::CertExpiryCannotExceedTwoYears
            | Self::CsrKeyTypeNotSupported
            | Self::CsrSignatureInvalid
            | Self::CsrSubjectMismatch
            | Self::DatabaseNameInvalidAdmin
            | Self::DatabaseNameInvalidExternal
            | Self::ExpiredX509CaCertificate
            | Self::InvalidAttribute
            | Self::InvalidCsr
            | Self::InvalidEnumValue
            | Self::InvalidQueryParameter
            | Self::InvalidSerialNumber
            | Self::InvalidX509CaCertificate
            | Self::MissingAttribute
            | Self::UserNotManagedX509 => 400,
            Self::NotInGroup | Self::Unauthenticated | Self::UserUnauthorized => 401,
            Self::IpAddressNotOnAccessList => 403,
            Self::CertificateNotFound
            | Self::CertificateNotIssuedToUser
            | Self::GroupNotFound
            | Self::GroupNameNotFound
            | Self::InvalidApiKeyId
            | Self::InvalidGroupId
            | Self::InvalidOrgId
            | Self::OrgNotFound
            | Self::ProjectCaNotFound
            | Self::ResourceNotFound
            | Self::UsernameNotFound => 404,
            Self::CannotDeleteOrgActiveProjects
            | Self::CertificateAlreadyRevoked
            | Self::GroupAlreadyExists
            | Self::ProjectCaRotationConflict
            | Self::UserAlreadyExists => 409,
            Self::UnexpectedError => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    /// Returns the transport-neutral category.
    pub fn kind(self) -> ErrorKind {
        match self {
            Self::AtlasGeneratedCertsLimitExceeded => ErrorKind::ResourceExhausted,
            Self::CaKeyTypeImmutable
            | Self::CannotDeleteOrgActiveProjects
            | Self::CannotGenerateCertIfAdvancedX509
            | Self::CannotRemoveCallerFromAccessList
            | Self::CertificateAlreadyRevoked
            | Self::UserNotManagedX509 => ErrorKind::FailedPrecondition,
            Self::CertExpiryCannotExceedTwoYears
            | Self::CsrKeyTypeNotSupported
            | Self::CsrSignatureInvalid
            | Self::CsrSubjectMismatch
            | Self::DatabaseNameInvalidAdmin
            | Self::DatabaseNameInvalidExternal
            | Self::ExpiredX509CaCertificate
            | Self::InvalidAttribute
            | Self::InvalidCsr
            | Self::InvalidEnumValue
            | Self::InvalidGroupId
            | Self::InvalidApiKeyId
            | Self::InvalidOrgId
            | Self::InvalidQueryParameter
            | Self::InvalidSerialNumber
            | Self::InvalidX509CaCertificate
            | Self::MissingAttribute => ErrorKind::InvalidArgument,
            Self::GroupAlreadyExists | Self::UserAlreadyExists => ErrorKind::AlreadyExists,
            Self::ProjectCaRotationConflict => ErrorKind::Aborted,
            Self::CertificateNotFound
            | Self::CertificateNotIssuedToUser
            | Self::GroupNotFound
            | Self::GroupNameNotFound
            | Self::OrgNotFound
            | Self::ProjectCaNotFound
            | Self::ResourceNotFound
            | Self::UsernameNotFound => ErrorKind::NotFound,
            Self::IpAddressNotOnAccessList | Self::NotInGroup | Self::UserUnauthorized => {
                ErrorKind::PermissionDenied
            }
            Self::ServiceUnavailable => ErrorKind::Unavailable,
            Self::Unauthenticated => ErrorKind::Unauthenticated,
            Self::UnexpectedError => ErrorKind::Internal,
        }
    }

    /// Every code, for table tests.
    pub const ALL: &'static [ErrorCode] = &[
        Self::AtlasGeneratedCertsLimitExceeded,
        Self::CaKeyTypeImmutable,
        Self::CannotGenerateCertIfAdvancedX509,
        Self::CertExpiryCannotExceedTwoYears,
        Self::CertificateAlreadyRevoked,
        Self::CertificateNotFound,
        Self::CertificateNotIssuedToUser,
        Self::CsrKeyTypeNotSupported,
        Self::CsrSignatureInvalid,
        Self::CsrSubjectMismatch,
        Self::DatabaseNameInvalidAdmin,
        Self::DatabaseNameInvalidExternal,
        Self::ExpiredX509CaCertificate,
        Self::CannotDeleteOrgActiveProjects,
        Self::CannotRemoveCallerFromAccessList,
        Self::GroupAlreadyExists,
        Self::GroupNotFound,
        Self::GroupNameNotFound,
        Self::InvalidAttribute,
        Self::InvalidCsr,
        Self::InvalidEnumValue,
        Self::InvalidGroupId,
        Self::InvalidApiKeyId,
        Self::InvalidOrgId,
        Self::InvalidQueryParameter,
        Self::IpAddressNotOnAccessList,
        Self::InvalidSerialNumber,
        Self::InvalidX509CaCertificate,
        Self::MissingAttribute,
        Self::NotInGroup,
        Self::OrgNotFound,
        Self::ProjectCaNotFound,
        Self::ProjectCaRotationConflict,
        Self::ResourceNotFound,
        Self::ServiceUnavailable,
        Self::Unauthenticated,
        Self::UnexpectedError,
        Self::UserAlreadyExists,
        Self::UserNotManagedX509,
        Self::UsernameNotFound,
        Self::UserUnauthorized,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the service core, as Atlas would report it.
///
/// The `detail` is shown to the client; an internal failure keeps its cause in `source` (for the
/// log) and shows only a generic detail.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct AtlasError {
    code: ErrorCode,
    detail: String,
    parameters: Vec<String>,
    /// The attribute at fault, for `BadRequest` field violations.
    field: Option<&'static str>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AtlasError {
    /// Creates an error with a detail and parameters.
    pub fn new(code: ErrorCode, detail: impl Into<String>, parameters: Vec<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            parameters,
            field: None,
            source: None,
        }
    }

    /// Marks the attribute at fault.
    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// Wraps an internal failure: the client sees only a generic detail.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: ErrorCode::UnexpectedError,
            detail: "Unexpected error.".to_owned(),
            parameters: Vec::new(),
            field: None,
            source: Some(source.into()),
        }
    }

    /// The store could not be reached.
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: ErrorCode::ServiceUnavailable,
            detail: "The service is temporarily unavailable. Please try again later.".to_owned(),
            parameters: Vec::new(),
            field: None,
            source: Some(source.into()),
        }
    }

    /// Returns the Atlas error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Returns the detail shown to the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Returns the parameters of the detail.
    pub fn parameters(&self) -> &[String] {
        &self.parameters
    }

    /// Returns the attribute at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    // === constructors for the recurring Atlas errors ===

    /// `GROUP_NOT_FOUND`.
    pub fn group_not_found(group_id: &str) -> Self {
        Self::new(
            ErrorCode::GroupNotFound,
            format!("No group with ID {group_id} exists."),
            vec![group_id.to_owned()],
        )
    }

    /// `INVALID_GROUP_ID`.
    pub fn invalid_group_id(group_id: &str) -> Self {
        Self::new(
            ErrorCode::InvalidGroupId,
            format!("An invalid group ID {group_id} was specified."),
            vec![group_id.to_owned()],
        )
        .with_field("group_id")
    }

    /// `USERNAME_NOT_FOUND`.
    pub fn username_not_found(username: &str) -> Self {
        Self::new(
            ErrorCode::UsernameNotFound,
            format!("No user with username {username} exists."),
            vec![username.to_owned()],
        )
    }

    /// `INVALID_ATTRIBUTE` for an attribute with a bad value.
    pub fn invalid_attribute(field: &'static str, atlas_name: &str) -> Self {
        Self::new(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute {atlas_name} specified."),
            vec![atlas_name.to_owned()],
        )
        .with_field(field)
    }

    /// `MISSING_ATTRIBUTE`.
    pub fn missing_attribute(field: &'static str, atlas_name: &str) -> Self {
        Self::new(
            ErrorCode::MissingAttribute,
            format!("The required attribute {atlas_name} was not specified."),
            vec![atlas_name.to_owned()],
        )
        .with_field(field)
    }

    /// `INVALID_ENUM_VALUE`.
    pub fn invalid_enum_value(field: &'static str, value: &str) -> Self {
        Self::new(
            ErrorCode::InvalidEnumValue,
            format!("An invalid enumeration value {value} was specified."),
            vec![value.to_owned()],
        )
        .with_field(field)
    }

    /// `NOT_IN_GROUP`.
    pub fn not_in_group(group_id: &str) -> Self {
        Self::new(
            ErrorCode::NotInGroup,
            format!("Current user is not in the group, or the group does not exist: {group_id}."),
            vec![group_id.to_owned()],
        )
    }

    /// `USER_UNAUTHORIZED`: the key lacks the role.
    pub fn user_unauthorized() -> Self {
        Self::new(
            ErrorCode::UserUnauthorized,
            "Current user is not authorized to perform this action.",
            Vec::new(),
        )
    }

    /// No or invalid credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "You are not authorized for this resource.",
            Vec::new(),
        )
    }
}

/// The result type of the service core.
pub type AtlasResult<T> = Result<T, AtlasError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_but_the_two_unauthorized_ones() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len() - 1);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = AtlasError::internal("disk full at /secret/path");
        assert_eq!(err.code(), ErrorCode::UnexpectedError);
        assert!(!err.detail().contains("secret"));
    }
}
