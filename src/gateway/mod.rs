//! The Atlas REST gateway: translates the Atlas Administration API's HTTP surface (under both
//! `/api/atlas/v1.0` and `/api/atlas/v2`) into in-process calls of the gRPC services, and renders
//! their answers as Atlas does. No business rule lives here: errors come from the services'
//! `google.rpc.ErrorInfo` (see [`response`]).
//!
//! Request flow: request id and trace span (no bodies, no `Authorization` logged) → the Atlas
//! layer ([`atlas_layer`]: version from the path, `pretty`/`envelope` flags, the
//! `Content-Length` bound) → the route (404/405 in Atlas shape when none matches) → HTTP Digest
//! (the [`Authenticated`](extract::Authenticated) extractor asks the shared
//! [`Authenticator`]) → path and body extraction ([`extract`]; bodies as serde types, `body.rs`)
//! → the resource's handler and the RPC, carrying the verified principal →
//! [`response::render`].
//!
//! The gateway holds the gRPC services and the authenticator, not the core: every operation is
//! an RPC, and authentication is done before it because Digest signs the HTTP method and target,
//! which the RPC does not carry.
//!
//! One file per Atlas resource holds its routes, request and response types:
//! `organizations.rs`, `api_keys.rs`, `projects.rs`, `database_users.rs`, `certificates.rs`,
//! `user_security.rs`, `events.rs`, and the API root `root.rs`; `routes.rs` merges them, `resource.rs` holds what they
//! share (the list shape, links, timestamps, path segments), `versions.rs` the v2 media-type
//! versions of each operation (`Accept: application/vnd.atlas.YYYY-MM-DD+json`). `openapi/` builds the OpenAPI
//! document of them all from their types and serves it at `/api/dbcert/v1/openapi.json`.

mod api_key_access_list;
mod api_keys;
mod body;
mod ca;
mod certificates;
mod crl;
mod csr;
mod database_users;
mod event_filter;
mod events;
pub mod extract;
mod ocsp;
pub mod openapi;
mod organizations;
mod projects;
mod resource;
pub mod response;
mod revocation;
mod root;
mod routes;
#[cfg(test)]
mod tests;
mod trailing_slash;
mod unread_body;
mod user_security;
pub mod versions;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use self::extract::RequestContext;
pub use self::extract::{Links, PublicUrl};
use self::response::{ApiError, ApiVersion, Reply, render};
use crate::auth::Authenticator;
use crate::grpc::Services;
use crate::middleware::{LimitError, RenderLimitError};

/// The largest request body accepted (bytes); larger ones get 413 `REQUEST_TOO_LARGE`, refused
/// by `Content-Length` before reading or as soon as a streamed body passes the bound.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the gateway calls: the gRPC services, and the authenticator for HTTP Digest.
#[derive(Clone, Debug)]
pub struct Gateway {
    services: Arc<Services>,
    authenticator: Arc<Authenticator>,
    links: Arc<Links>,
}

impl Gateway {
    /// Creates the gateway; requests are authenticated by `authenticator` (shared with the
    /// gRPC services: one throttle of failed authentications for both listeners).
    pub fn new(services: Arc<Services>, authenticator: Arc<Authenticator>) -> Self {
        Self {
            services,
            authenticator,
            links: Arc::new(Links::default()),
        }
    }

    /// Sets how `links` name this server (default: plaintext, no trusted proxy, no public URL).
    pub fn with_links(mut self, links: Links) -> Self {
        self.links = Arc::new(links);
        self
    }
}

/// Renders the limit layers' refusals of REST requests as Atlas errors (503
/// `SERVICE_UNAVAILABLE` with `Retry-After`, 504 `TIMEOUT`, 500 `UNEXPECTED_ERROR`), in the
/// version of the request's path, without flags (they are not read yet).
#[derive(Clone, Copy, Debug, Default)]
pub struct RestLimitErrors;

impl RenderLimitError<axum::body::Body> for RestLimitErrors {
    fn render(&self, error: LimitError, path: &str) -> Response {
        let version = if path.starts_with("/api/atlas/v2") {
            ApiVersion::V2
        } else {
            ApiVersion::V1
        };
        let error = match error {
            LimitError::Overloaded => ApiError::overloaded(),
            LimitError::TimedOut => ApiError::timed_out(),
            LimitError::Internal => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNEXPECTED_ERROR",
                "Unexpected error.",
                Vec::new(),
            ),
        };
        render(error.into(), response::Flags::default(), version)
    }
}

/// The path template of every route the gateway serves (axum syntax), for the OpenAPI
/// document's drift test.
pub fn route_templates() -> Vec<String> {
    routes::templates()
}

/// Builds the gateway's router: the Atlas routes of both versions, Atlas-shaped 404 and 405,
/// the flags and body-size layer, request ids and tracing; a trailing slash is trimmed before
/// routing ([`trailing_slash`]).
pub fn router(gateway: Gateway) -> Router {
    let links = gateway.links.clone();
    let routed = atlas(
        routes::routes()
            // Per matched route: the v2 media-type version (`versions.rs`).
            .route_layer(middleware::from_fn(versions::negotiate))
            .fallback(not_found)
            .with_state(gateway),
    )
    .layer(axum::Extension(links))
    // After routing (a `Router::layer` runs per route): the matched route template for the
    // REST metrics, never the raw path.
    .layer(crate::metrics::RouteTagLayer);
    // A `Router::layer` runs after routing; the path must change before, so the routed router
    // is the fallback service of an empty one, behind the trimming layer.
    Router::new().fallback_service(tower::Layer::layer(
        &trailing_slash::TrimTrailingSlashLayer,
        routed,
    ))
}

/// The layers around the routes: the Atlas layer ([`atlas_layer`]), `Connection: close` after
/// an unread body ([`unread_body`]), request ids and tracing.
fn atlas(routes: Router) -> Router {
    routes
        .layer(middleware::from_fn(atlas_layer))
        // Around the Atlas layer, which answers some requests (a declared body too large)
        // without reading their bodies.
        .layer(middleware::from_fn(unread_body::close_after_unread_body))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// No route: a bare 404, which [`atlas_layer`] renders as `RESOURCE_NOT_FOUND` with the path.
async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// Reads the version and flags of a request (400 `INVALID_QUERY_PARAMETER` for a flag that is
/// not `true`/`false`), refuses bodies declared over [`MAX_BODY_BYTES`], and renders whatever the
/// route answered with those flags.
async fn atlas_layer(mut request: Request, next: Next) -> Response {
    // The TCP peer, as recorded by the listener (or axum's `ConnectInfo`): only a trusted proxy's
    // forwarded headers name the scheme and host of `links`.
    let peer = request
        .extensions()
        .get::<crate::listener::PeerInfo>()
        .and_then(|peer| peer.remote_addr)
        .or_else(|| {
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0)
        })
        .map(|addr| addr.ip());
    let base_url = match request.extensions().get::<Arc<Links>>() {
        Some(links) => links.base_url(request.uri(), request.headers(), peer),
        None => Links::default().base_url(request.uri(), request.headers(), peer),
    };
    let (context, flag_error) = RequestContext::with_base_url(request.uri(), base_url);
    if let Some(error) = flag_error {
        return render(error.into(), context.flags, context.version);
    }
    let (flags, version) = (context.flags, context.version);
    let declared_too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.parse::<u64>().map_or(true, |n| n > MAX_BODY_BYTES as u64));
    if declared_too_large {
        return render(ApiError::request_too_large().into(), flags, version);
    }
    let method = request.method().clone();
    let path = context.path.clone();
    request.extensions_mut().insert(context);
    let mut response = next.run(request).await;
    let served = response
        .extensions()
        .get::<versions::ServedVersion>()
        .copied();
    if let Some(reply) = response.extensions_mut().remove::<Reply>() {
        let mut rendered = render(reply, flags, version);
        versions::stamp(&mut rendered, served);
        return rendered;
    }
    match response.status() {
        StatusCode::NOT_FOUND => render(ApiError::resource_not_found(&path).into(), flags, version),
        StatusCode::METHOD_NOT_ALLOWED => render(
            method_not_allowed(&method, response.headers().get(header::ALLOW)),
            flags,
            version,
        ),
        _ => response,
    }
}

fn method_not_allowed(method: &Method, allow: Option<&HeaderValue>) -> Reply {
    let mut error = ApiError::method_not_allowed(method.as_str());
    if let Some(allow) = allow {
        error.headers.push((header::ALLOW, allow.clone()));
    }
    error.into()
}
