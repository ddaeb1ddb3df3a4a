//! Requests and latency per REST route: the route *template* (axum's `MatchedPath`, such as
//! `/api/atlas/v1.0/groups/{group_id}/databaseUsers/{username}/certs`), never the raw path, so
//! no project id, username or key id becomes a label and the label set stays bounded.
//!
//! Two layers cooperate. [`RestMetricsLayer`] wraps the whole REST stack, outside the
//! admission limit and the timeout, so shed (503) and timed-out (504) requests are counted and
//! timed too; it puts an empty [`RouteSlot`] in the request. [`RouteTagLayer`] runs inside the
//! gateway's router, where the route is matched, and fills the slot with the template. A request
//! no route matched (404, or shed before routing) is labelled `unmatched`. A request whose
//! client went away before the answer is counted with status `499` (nginx's "client closed
//! request").

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

use super::grpc::LATENCY_BUCKETS;

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";
/// The status label of a request whose client went away before the answer.
const CLIENT_CLOSED: u16 = 499;

/// The families of REST requests.
#[derive(Clone, Debug)]
pub struct RestMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// Where [`RouteTagLayer`] writes the matched route template for [`RestMetricsLayer`].
#[derive(Clone, Debug, Default)]
pub struct RouteSlot(Arc<OnceLock<&'static str>>);

/// Records every REST request (see the module documentation).
#[derive(Clone, Debug)]
pub struct RestMetricsLayer {
    metrics: RestMetrics,
}

/// The service of [`RestMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RestMetricsService<S> {
    inner: S,
    metrics: RestMetrics,
}

/// Fills the request's [`RouteSlot`] with its matched route template; add it to the router
/// with `Router::layer`, whose layers run after routing.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteTagLayer;

/// The service of [`RouteTagLayer`].
#[derive(Clone, Debug)]
pub struct RouteTag<S> {
    inner: S,
}

/// One request being measured; recorded when it is dropped.
struct Observation {
    metrics: RestMetrics,
    method: &'static str,
    route: RouteSlot,
    started: Instant,
    status: u16,
}

// === impl RestMetrics ===

impl RestMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        };
        registry.register(
            "http_requests",
            "REST requests, by route template, method and HTTP status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a REST request's arrival to its response head, by route template and \
             method",
            metrics.latency.clone(),
        );
        metrics
    }

    /// The layer recording into these families.
    pub fn layer(&self) -> RestMetricsLayer {
        RestMetricsLayer {
            metrics: self.clone(),
        }
    }
}

impl<S> Layer<S> for RestMetricsLayer {
    type Service = RestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for RestMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let route = RouteSlot::default();
        request.extensions_mut().insert(route.clone());
        let mut observation = Observation {
            metrics: self.metrics.clone(),
            method: method_label(request.method()),
            route,
            started: Instant::now(),
            status: CLIENT_CLOSED,
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            if let Ok(response) = &result {
                observation.status = response.status().as_u16();
            }
            drop(observation);
            result
        })
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        let route = self.route.0.get().copied().unwrap_or(UNMATCHED);
        let method = self.method;
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: self.status,
            })
            .inc();
        self.metrics
            .latency
            .get_or_create(&RouteLabels { route, method })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

// === impl RouteTag ===

impl<S> Layer<S> for RouteTagLayer {
    type Service = RouteTag<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteTag { inner }
    }
}

impl<S, B> Service<http::Request<B>> for RouteTag<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let extensions = request.extensions();
        if let (Some(slot), Some(matched)) = (
            extensions.get::<RouteSlot>(),
            extensions.get::<MatchedPath>(),
        ) {
            let _ = slot.0.set(intern(matched.as_str()));
        }
        self.inner.call(request)
    }
}

/// The label of an HTTP method: the standard ones by name, any other `OTHER` (a client may
/// send any token as a method).
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The one `'static` copy of a route template. Templates come from the route table only (a
/// `MatchedPath` is never a request's own path), so the set is bounded by it; each is leaked
/// once per process.
fn intern(template: &str) -> &'static str {
    static TEMPLATES: OnceLock<RwLock<HashMap<Box<str>, &'static str>>> = OnceLock::new();
    let templates = TEMPLATES.get_or_init(Default::default);
    if let Some(interned) = templates
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(template)
    {
        return interned;
    }
    let mut templates = templates.write().unwrap_or_else(PoisonError::into_inner);
    templates
        .entry(template.into())
        .or_insert_with(|| Box::leak(template.to_owned().into_boxed_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_interned_once() {
        let a = intern("/api/atlas/v2/groups/{group_id}");
        let b = intern(&String::from("/api/atlas/v2/groups/{group_id}"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(
            method_label(&http::Method::from_bytes(b"BREW").unwrap()),
            "OTHER"
        );
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
    }
}
