//! The gRPC adapter: implements the generated `dbcert.v1` service traits over the [`Core`].
//! Each handler authenticates, converts the request, calls the core and converts the result;
//! no rule is decided here.

mod api_keys;
mod audit;
mod auth;
mod certificates;
mod convert;
mod database_users;
mod organizations;
mod projects;
mod status;
mod user_security;

use std::sync::Arc;

pub use self::auth::{ClientAddress, VerifiedApiKey};
pub use self::status::{
    ERROR_DOMAIN, GrpcLimitErrors, METADATA_HTTP_STATUS, METADATA_PARAMETERS, METADATA_RETRY_AFTER,
    grpc_code, network_status, rate_limited, to_status,
};
use crate::domain::Core;
use crate::forwarded::TrustedProxies;
use crate::throttle::AuthThrottle;

/// The gRPC adapter: one value implements every `dbcert.v1` service over a shared core.
#[derive(Clone, Debug)]
pub struct Services {
    core: Arc<Core>,
    throttle: Arc<AuthThrottle>,
    trusted_proxies: Arc<TrustedProxies>,
}

impl Services {
    /// Wraps the core; failed authentications are throttled by `throttle`, per client address
    /// (behind `trusted_proxies`, the one their `x-forwarded-for` names).
    pub fn new(
        core: Arc<Core>,
        throttle: Arc<AuthThrottle>,
        trusted_proxies: Arc<TrustedProxies>,
    ) -> Self {
        Self {
            core,
            throttle,
            trusted_proxies,
        }
    }

    /// Authenticates a call (see [`auth::authenticate`]).
    async fn authenticate<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<crate::domain::Principal, tonic::Status> {
        auth::authenticate(&self.core, &self.throttle, &self.trusted_proxies, request).await
    }
}
