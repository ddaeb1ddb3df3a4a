//! The gRPC adapter: implements the generated `dbcert.v1` service traits over the [`Core`].
//! Each handler authenticates, converts the request, calls the core and converts the result;
//! no rule is decided here.

mod api_keys;
mod audit;
mod auth;
mod ca;
mod certificates;
mod convert;
mod crl;
mod database_users;
mod organizations;
mod projects;
mod revocation;
mod status;
mod user_security;

use std::sync::Arc;

pub use self::status::{
    ERROR_DOMAIN, GrpcLimitErrors, METADATA_HTTP_STATUS, METADATA_PARAMETERS, METADATA_RETRY_AFTER,
    grpc_code, log_server_error, network_status, rate_limited, to_status,
};
use crate::auth::Authenticator;
use crate::domain::Core;
use crate::metrics::IssuedCertificates;

/// The gRPC adapter: one value implements every `dbcert.v1` service over a shared core.
#[derive(Clone, Debug)]
pub struct Services {
    core: Arc<Core>,
    authenticator: Arc<Authenticator>,
    /// Certificates issued, per key type (counted here: the core records no metrics).
    issued: IssuedCertificates,
}

impl Services {
    /// Wraps the core; calls are authenticated by `authenticator` (shared with the REST
    /// gateway, so both listeners count failures in one throttle).
    pub fn new(core: Arc<Core>, authenticator: Arc<Authenticator>) -> Self {
        Self {
            core,
            authenticator,
            issued: IssuedCertificates::default(),
        }
    }

    /// Counts the certificates issued in `issued` (`metrics/mod.rs`).
    pub fn with_issued_counter(mut self, issued: IssuedCertificates) -> Self {
        self.issued = issued;
        self
    }

    /// Authenticates a call (see [`auth::authenticate`]).
    async fn authenticate<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<crate::domain::Principal, tonic::Status> {
        auth::authenticate(&self.authenticator, request).await
    }
}
