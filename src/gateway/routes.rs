//! The route table: each Atlas resource's routes, under each API version's prefix, and dbcert's
//! own routes under `/api/dbcert/v1`. A handler turns path, query and body into one gRPC
//! request, calls the service in-process with the Digest-verified key, and shapes the answer as
//! Atlas does; rules (roles, limits, validation of values) are the core's.
//!
//! Every route is added through [`Routes::route`], which also records its path template: the
//! OpenAPI document's drift test (`tests/integration/openapi_contract.rs`) compares those
//! templates, and the methods each one answers, with the operations the document describes.

use axum::Router;
use axum::routing::MethodRouter;

use super::response::ApiVersion;
use super::{
    Gateway, api_key_access_list, api_keys, ca, certificates, crl, csr, database_users, events,
    ocsp, openapi, organizations, projects, revocation, root, user_security,
};

/// Routes being added under one prefix, with the path template of each.
pub struct Routes {
    prefix: &'static str,
    router: Router<Gateway>,
    templates: Vec<String>,
}

impl Routes {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            router: Router::new(),
            templates: Vec::new(),
        }
    }

    /// Adds the handlers of `path` (axum syntax, after the prefix).
    pub fn route(mut self, path: &str, handlers: MethodRouter<Gateway>) -> Self {
        let template = format!("{}{path}", self.prefix);
        self.router = self.router.route(&template, handlers);
        self.templates.push(template);
        self
    }

    fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.templates.extend(other.templates);
        self
    }
}

/// The routes of both API versions and of dbcert's own API.
pub fn routes() -> Router<Gateway> {
    table().router
}

/// The path template of every route, in the order they were added.
pub fn templates() -> Vec<String> {
    table().templates
}

fn table() -> Routes {
    [ApiVersion::V1, ApiVersion::V2]
        .into_iter()
        .fold(Routes::new(""), |routes, version| {
            let prefix = version.prefix();
            let resources = [
                root::routes,
                organizations::routes,
                api_keys::routes,
                api_key_access_list::routes,
                projects::routes,
                database_users::routes,
                certificates::routes,
                user_security::routes,
                events::routes,
            ];
            resources.into_iter().fold(routes, |routes, resource| {
                routes.merge(resource(Routes::new(prefix)))
            })
        })
        .merge(csr::routes(Routes::new(openapi::PREFIX)))
        .merge(revocation::routes(Routes::new(openapi::PREFIX)))
        .merge(openapi::routes(Routes::new(openapi::PREFIX)))
        .merge(crl::routes(Routes::new(openapi::PREFIX)))
        .merge(ocsp::routes(Routes::new(openapi::PREFIX)))
        .merge(ca::routes(Routes::new(openapi::PREFIX)))
}
