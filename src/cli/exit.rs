//! The client's exit codes and error messages, which scripts may rely on (README, "Command-line
//! client"): one [`Exit`] per kind of outcome, and the one mapping from a gRPC status (with the
//! Atlas errorCode the server puts in its `ErrorInfo`) to it.

use std::fmt;

use tonic::Code;
use tonic_types::StatusExt as _;

/// An exit code of a client command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did what it was asked.
    Success = 0,
    /// Anything else: an internal server error, a local I/O error, an unexpected answer.
    Other = 1,
    /// Usage: bad flags or arguments, a bad profile file, or a request the server refused as
    /// invalid (`INVALID_ARGUMENT`).
    Usage = 2,
    /// Authentication failed: no credentials, or the server refused them (`UNAUTHENTICATED`).
    Unauthenticated = 3,
    /// The project, user or CA does not exist (`NOT_FOUND`).
    NotFound = 4,
    /// A conflict or a limit: it exists already (`ALREADY_EXISTS`), the user holds the most
    /// certificates allowed, self-managed X.509 is on (`FAILED_PRECONDITION`), or the --out
    /// file exists and --force was not given.
    Conflict = 5,
    /// The server could not be reached (connection refused, DNS, TLS handshake, timeout), or
    /// answered `UNAVAILABLE`, `DEADLINE_EXCEEDED` or `RATE_LIMITED`: trying later may work.
    Unavailable = 6,
    /// The API key lacks the role the call needs (`PERMISSION_DENIED`).
    PermissionDenied = 7,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit as u8)
    }
}

/// A failed command: its exit code and the message printed on stderr after `error: `.
#[derive(Debug)]
pub struct CliError {
    exit: Exit,
    message: String,
}

impl CliError {
    /// An error with an exit code and a message (which must never hold a secret).
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// A local error of another kind (I/O, an unexpected answer).
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Exit::Other, message)
    }

    /// The exit code.
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The error of a failed call: the exit code of its status, and a message naming the
    /// server's Atlas errorCode and detail (`USER_NOT_FOUND: No user with username …`), or, for
    /// a call that never reached the server, why (`cannot reach …: connection refused`).
    pub fn from_status(status: &tonic::Status, server: &str) -> Self {
        let details = status.get_error_details();
        let error_code = details.error_info().map(|info| info.reason.clone());
        match error_code {
            Some(error_code) => Self::new(
                exit_of(status.code(), Some(&error_code)),
                format!("{error_code}: {}", status.message()),
            ),
            // The call failed in the transport (refused, reset, a TLS alert such as a client
            // certificate the server does not accept), not in the server's code.
            None if std::error::Error::source(status).is_some()
                || status.code() == Code::Unavailable =>
            {
                Self::new(
                    Exit::Unavailable,
                    format!("cannot reach {server}: {}", transport_causes(status)),
                )
            }
            None => Self::new(
                exit_of(status.code(), None),
                format!("{:?}: {}", status.code(), status.message()),
            ),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The exit code of a gRPC status code, with the Atlas errorCode where one code covers two
/// outcomes (`RESOURCE_EXHAUSTED` is a limit, or throttling to wait out).
fn exit_of(code: Code, error_code: Option<&str>) -> Exit {
    match code {
        Code::Ok => Exit::Success,
        Code::InvalidArgument | Code::OutOfRange => Exit::Usage,
        Code::Unauthenticated => Exit::Unauthenticated,
        Code::PermissionDenied => Exit::PermissionDenied,
        Code::NotFound => Exit::NotFound,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => Exit::Conflict,
        Code::ResourceExhausted if error_code == Some("RATE_LIMITED") => Exit::Unavailable,
        Code::ResourceExhausted => Exit::Conflict,
        Code::Unavailable | Code::DeadlineExceeded => Exit::Unavailable,
        Code::Cancelled | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
            Exit::Other
        }
    }
}

/// The chain of causes of a transport failure (`connection refused`, a TLS error), each once.
fn transport_causes(status: &tonic::Status) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        let cause = error.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
        source = error.source();
    }
    if text.is_empty() {
        text = status.message().to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_has_its_documented_exit_code() {
        let table = [
            (Code::Ok, None, 0),
            (Code::InvalidArgument, Some("INVALID_ATTRIBUTE"), 2),
            (Code::Unauthenticated, Some("USER_UNAUTHORIZED"), 3),
            (Code::NotFound, Some("USER_NOT_FOUND"), 4),
            (Code::AlreadyExists, Some("USER_ALREADY_EXISTS"), 5),
            (Code::FailedPrecondition, Some("CA_KEY_TYPE_IMMUTABLE"), 5),
            (
                Code::ResourceExhausted,
                Some("ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED"),
                5,
            ),
            (Code::ResourceExhausted, Some("RATE_LIMITED"), 6),
            (Code::Unavailable, Some("SERVICE_UNAVAILABLE"), 6),
            (Code::DeadlineExceeded, Some("TIMEOUT"), 6),
            (Code::PermissionDenied, Some("NOT_IN_GROUP"), 7),
            (Code::Internal, Some("UNEXPECTED_ERROR"), 1),
        ];
        for (code, error_code, exit) in table {
            assert_eq!(
                exit_of(code, error_code) as u8,
                exit,
                "{code:?} {error_code:?}"
            );
        }
    }
}
