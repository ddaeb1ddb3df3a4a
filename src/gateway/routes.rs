//! The route table: each Atlas resource's routes, under each API version's prefix. A handler
//! turns path, query and body into one gRPC request, calls the service in-process with the
//! Digest-verified key, and shapes the answer as Atlas does; rules (roles, limits, validation
//! of values) are the core's.

use axum::Router;

use super::response::ApiVersion;
use super::{
    Gateway, api_keys, certificates, database_users, events, organizations, projects, user_security,
};

/// The routes of both API versions.
pub fn routes() -> Router<Gateway> {
    [ApiVersion::V1, ApiVersion::V2]
        .into_iter()
        .fold(Router::new(), |router, version| {
            let prefix = version.prefix();
            router
                .merge(organizations::routes(prefix))
                .merge(api_keys::routes(prefix))
                .merge(projects::routes(prefix))
                .merge(database_users::routes(prefix))
                .merge(certificates::routes(prefix))
                .merge(user_security::routes(prefix))
                .merge(events::routes(prefix))
        })
}
