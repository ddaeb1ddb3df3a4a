//! Requests and latency per RPC: a tower layer on the tonic server, outside every other layer,
//! so calls shed or timed out by the limits are counted with the status they got.
//!
//! The labels are bounded: `grpc_service` and `grpc_method` come from a table of the methods
//! the server offers (dbcert's, health's and reflection's descriptors, read once per process);
//! any other path is counted as `unknown`. `grpc_code` is the status code's canonical name,
//! read from the response headers (a trailers-only error) or else from the trailers at the end
//! of the body; a call whose response is dropped before its status (the client went away) is
//! `CANCELLED`. The call is timed until its status is known.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prost::Message as _;
use tower::{Layer, Service};

/// Upper bounds of the latency buckets (seconds), for calls from tens of microseconds (ECDSA)
/// to seconds (RSA-4096 generated inline).
pub(super) const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The label of a path that names no method the server offers.
const UNKNOWN: &str = "unknown";

/// The families of gRPC calls.
#[derive(Clone, Debug)]
pub struct GrpcMetrics {
    requests: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

/// Records every call of the service it wraps (see the module documentation).
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: GrpcMetrics,
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcMetrics,
}

/// One call being measured; recorded once, when its status is known or when it is dropped.
struct Observation {
    metrics: GrpcMetrics,
    method: MethodLabels,
    started: Instant,
    code: Option<&'static str>,
    recorded: bool,
}

// === impl GrpcMetrics ===

impl GrpcMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        };
        registry.register(
            "grpc_requests",
            "gRPC calls, by service, method and status code",
            metrics.requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "Time from a gRPC call's arrival to its status, by service and method",
            metrics.latency.clone(),
        );
        metrics
    }

    /// The layer recording into these families.
    pub fn layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            metrics: self.clone(),
        }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let observation = Observation {
            metrics: self.metrics.clone(),
            method: method_labels(request.uri().path()),
            started: Instant::now(),
            code: None,
            recorded: false,
        };
        ResponseFuture {
            inner: self.inner.call(request),
            observation: Some(observation),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcMetricsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        observation: Option<Observation>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<ObservedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let mut observation = this.observation.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let (Some(observation), Some(code)) =
                    (observation.as_mut(), status_code(response.headers()))
                {
                    // A trailers-only response: the status is known now.
                    observation.code = Some(code);
                    observation.record();
                }
                Ok(response.map(|inner| ObservedBody { inner, observation }))
            }
            Err(error) => {
                if let Some(observation) = observation.as_mut() {
                    observation.code = Some("INTERNAL");
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call's status when the trailers carrying it pass.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        observation: Option<Observation>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(observation) = this.observation.as_mut().filter(|o| !o.recorded) {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(code) = frame.trailers_ref().and_then(status_code) {
                        observation.code = Some(code);
                        observation.record();
                    }
                }
                Some(Err(_)) => {
                    observation.code = Some("INTERNAL");
                    observation.record();
                }
                // The end without a status: gRPC calls it UNKNOWN.
                None => {
                    observation.code = Some("UNKNOWN");
                    observation.record();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl Observation ===

impl Observation {
    /// Records the call with its code (`CANCELLED` if none is known) once.
    fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let code = self.code.unwrap_or("CANCELLED");
        let MethodLabels {
            grpc_service,
            grpc_method,
        } = self.method;
        self.metrics
            .requests
            .get_or_create(&CallLabels {
                grpc_service,
                grpc_method,
                grpc_code: code,
            })
            .inc();
        self.metrics
            .latency
            .get_or_create(&self.method)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.record();
    }
}

/// The canonical name of the `grpc-status` in `headers`, if there is one.
fn status_code(headers: &http::HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?;
    let code = std::str::from_utf8(value.as_bytes()).ok()?.parse().ok()?;
    Some(code_name(tonic::Code::from_i32(code)))
}

/// The status code's name as the gRPC specification spells it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

// === The method table ===

/// The labels of a request path: its service and method if the server offers them, else
/// `unknown` for both (so no path a client makes up becomes a label).
fn method_labels(path: &str) -> MethodLabels {
    methods().get(path).copied().unwrap_or(MethodLabels {
        grpc_service: UNKNOWN,
        grpc_method: UNKNOWN,
    })
}

/// Every method of the services the server offers, by path (`/package.Service/Method`).
fn methods() -> &'static HashMap<String, MethodLabels> {
    static METHODS: OnceLock<HashMap<String, MethodLabels>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = HashMap::new();
        for set in [
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            // The sets are compiled in; one that does not decode would be a build error of
            // tonic's or ours, and leaves only its methods `unknown`.
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in set.file {
                let package = file.package().to_owned();
                for service in file.service {
                    let full = format!("{package}.{}", service.name());
                    // Leaked once per process: a few dozen names, labels for its lifetime.
                    let grpc_service: &'static str = Box::leak(full.clone().into_boxed_str());
                    for method in service.method {
                        let grpc_method: &'static str =
                            Box::leak(method.name().to_owned().into_boxed_str());
                        methods.insert(
                            format!("/{full}/{grpc_method}"),
                            MethodLabels {
                                grpc_service,
                                grpc_method,
                            },
                        );
                    }
                }
            }
        }
        methods
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_offered_methods_are_labelled_and_others_are_unknown() {
        let labels = method_labels("/dbcert.v1.CertificateService/CreateUserCertificate");
        assert_eq!(
            (labels.grpc_service, labels.grpc_method),
            ("dbcert.v1.CertificateService", "CreateUserCertificate")
        );
        let health = method_labels("/grpc.health.v1.Health/Check");
        assert_eq!(health.grpc_method, "Check");
        let reflection =
            method_labels("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
        assert_eq!(
            reflection.grpc_service,
            "grpc.reflection.v1alpha.ServerReflection"
        );
        for made_up in [
            "/dbcert.v1.CertificateService/Nope",
            "/x/y",
            "/",
            "/dbcert.v1.CertificateService/CreateUserCertificate/extra",
        ] {
            let labels = method_labels(made_up);
            assert_eq!(
                (labels.grpc_service, labels.grpc_method),
                (UNKNOWN, UNKNOWN)
            );
        }
    }

    #[test]
    fn codes_are_read_from_grpc_status() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("16"));
        assert_eq!(status_code(&headers), Some("UNAUTHENTICATED"));
        headers.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(status_code(&headers), Some("OK"));
    }
}
