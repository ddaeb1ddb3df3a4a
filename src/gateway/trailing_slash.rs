//! A trailing slash on any route: `GET /api/atlas/v2/orgs/` is `GET /api/atlas/v2/orgs`.
//!
//! Atlas answers both spellings (its Java stack matches a path with or without one trailing
//! slash), and real clients send it: PyPI `atlasapi` builds `…/orgs/` and `…/groups/`. Done once,
//! here, before the router sees the request, so every route (Atlas's and dbcert's own) accepts
//! it and the route table, and with it the OpenAPI document, names each path once.
//!
//! Only one slash is removed, and never the root's: `//` and `/x//` still reach no route. The
//! target as sent stays in the request ([`SentUri`]): HTTP Digest signs it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::Uri;
use axum::http::uri::PathAndQuery;
use axum::response::Response;
use tower::{Layer, Service};

/// The request target as the client sent it, before a trailing slash was trimmed: the `uri`
/// a Digest response must match. Present only on requests whose target was trimmed.
#[derive(Clone, Debug)]
pub struct SentUri(pub Uri);

/// Removes one trailing slash from a request's path before routing.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrimTrailingSlashLayer;

impl<S> Layer<S> for TrimTrailingSlashLayer {
    type Service = TrimTrailingSlash<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrimTrailingSlash { inner }
    }
}

/// The service of [`TrimTrailingSlashLayer`].
#[derive(Clone, Debug)]
pub struct TrimTrailingSlash<S> {
    inner: S,
}

impl<S> Service<Request> for TrimTrailingSlash<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(uri) = trimmed(request.uri()) {
            let sent = std::mem::replace(request.uri_mut(), uri);
            request.extensions_mut().insert(SentUri(sent));
        }
        Box::pin(self.inner.call(request))
    }
}

/// The URI without its path's one trailing slash; `None` when there is nothing to trim.
fn trimmed(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let without = path.strip_suffix('/')?;
    if without.is_empty() || without.ends_with('/') {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{without}?{query}"),
        None => without.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    // A prefix of a valid path, with the same query, is a valid path and query.
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn trim(uri: &str) -> Option<String> {
        trimmed(&uri.parse().unwrap()).map(|u| u.to_string())
    }

    #[test]
    fn one_trailing_slash_goes_and_the_query_stays() {
        assert_eq!(
            trim("/api/atlas/v2/orgs/").as_deref(),
            Some("/api/atlas/v2/orgs")
        );
        assert_eq!(
            trim("/api/atlas/v1.0/groups/?pretty=true").as_deref(),
            Some("/api/atlas/v1.0/groups?pretty=true")
        );
        assert_eq!(
            trim("http://h:1/api/atlas/v2/").as_deref(),
            Some("http://h:1/api/atlas/v2")
        );
    }

    #[test]
    fn nothing_else_changes() {
        assert_eq!(trim("/api/atlas/v2/orgs"), None);
        assert_eq!(trim("/"), None);
        assert_eq!(trim("//"), None);
        assert_eq!(trim("/api/atlas/v2/orgs//"), None);
        assert_eq!(trim("/api/atlas/v2/orgs?x=/"), None);
    }
}
