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
    ERROR_DOMAIN, METADATA_HTTP_STATUS, METADATA_PARAMETERS, grpc_code, to_status,
};
use crate::domain::Core;

/// The gRPC adapter: one value implements every `dbcert.v1` service over a shared core.
#[derive(Clone, Debug)]
pub struct Services {
    core: Arc<Core>,
}

impl Services {
    /// Wraps the core.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}
