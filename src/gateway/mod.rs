//! The Atlas REST gateway: translates the Atlas Administration API's HTTP surface into calls
//! of the gRPC services (in-process) and renders their answers as Atlas does.

use std::sync::Arc;

use axum::Router;

use crate::domain::Core;
use crate::grpc::Services;

/// What the gateway calls: the gRPC services, and the core's key store for Digest checks.
#[derive(Clone, Debug)]
pub struct Gateway {
    services: Arc<Services>,
    core: Arc<Core>,
}

impl Gateway {
    /// Creates the gateway.
    pub fn new(services: Arc<Services>, core: Arc<Core>) -> Self {
        Self { services, core }
    }
}

/// Builds the gateway's router.
pub fn router(gateway: Gateway) -> Router {
    let _ = (&gateway.services, &gateway.core);
    Router::new()
}
