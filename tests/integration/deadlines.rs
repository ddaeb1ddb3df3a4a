//! Deadlines over gRPC with real clients: a caller's `grpc-timeout` shorter than the work, and
//! the server's own `--request-timeout`, both end in `DEADLINE_EXCEEDED` with the Atlas
//! `TIMEOUT` error (HTTP status 504 in its `ErrorInfo`), not tonic's bare `CANCELLED`; the
//! server stays healthy and serves the next call. (REST's 504 `TIMEOUT` on a slow body is in
//! tests/integration/limits_and_throttling.rs and tests/integration/hostile_inputs.rs.)

#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use dbcert::proto::v1::{CreateUserCertificateRequest, KeyType, ListOrganizationsRequest};
use hyper::body::{Bytes, Frame};
use sqlx::Connection as _;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt as _;

use crate::harness::{TestServer, error_code};

/// Asserts the Atlas timeout: `DEADLINE_EXCEEDED`, `ErrorInfo` reason `TIMEOUT`, HTTP 504.
#[track_caller]
fn assert_timeout(status: &tonic::Status) {
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(error_code(status), "TIMEOUT");
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(info.metadata["httpStatus"], "504", "{status:?}");
}

async fn assert_healthy(server: &TestServer) {
    let status = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1, "health not SERVING");
    let orgs = server
        .clients()
        .await
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap();
    assert_eq!(orgs.into_inner().results.len(), 1);
}

/// A request body: one data frame, then the end, or nothing ever again (`stall`): a call
/// whose message never completes waits until a deadline ends it.
struct TestBody {
    data: Option<Bytes>,
    stall: bool,
}

impl TestBody {
    /// Uncompressed, 64 bytes announced, 2 sent.
    fn stalled() -> Self {
        Self {
            data: Some(Bytes::from_static(&[0, 0, 0, 0, 64, 0x0a, 0x00])),
            stall: true,
        }
    }

    /// A whole gRPC message.
    fn message(message: &impl prost::Message) -> Self {
        let encoded = message.encode_to_vec();
        let mut data = vec![0];
        data.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
        data.extend_from_slice(&encoded);
        Self {
            data: Some(Bytes::from(data)),
            stall: false,
        }
    }
}

impl hyper::body::Body for TestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.data.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

fn grpc_request(
    server: &TestServer,
    path: &str,
    grpc_timeout: Option<&str>,
    body: TestBody,
) -> http::Request<TestBody> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}{path}", server.grpc_addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", server.key.basic());
    if let Some(timeout) = grpc_timeout {
        request = request.header("grpc-timeout", timeout);
    }
    request.body(body).unwrap()
}

/// The status of a trailers-only answer (how a refusal comes back: in the headers).
fn refusal_status<B: std::fmt::Debug>(response: &http::Response<B>) -> tonic::Status {
    tonic::Status::from_header_map(response.headers())
        .unwrap_or_else(|| panic!("no grpc-status: {response:?}"))
}

/// Sends one call over a bare HTTP/2 connection: unlike tonic's client, nothing on this side
/// enforces `grpc-timeout`, so what comes back is the server's answer.
async fn raw_call(request: http::Request<TestBody>, addr: std::net::SocketAddr) -> tonic::Status {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .expect("the server answers within its deadline")
        .unwrap();
    refusal_status(&response)
}

/// Calls `ListOrganizations` with a stalled body through tonic's channel (its client stack,
/// which enforces `grpc-timeout` too).
async fn stalled_call(server: &TestServer, grpc_timeout: Option<&str>) -> tonic::Status {
    try_stalled_call(server, grpc_timeout)
        .await
        .unwrap_or_else(|error| panic!("no answer from the server: {error}"))
}

/// As [`stalled_call`], with the client's own timer firing first (tonic answers CANCELLED
/// "Timeout expired") as an `Err`.
async fn try_stalled_call(
    server: &TestServer,
    grpc_timeout: Option<&str>,
) -> Result<tonic::Status, String> {
    use tower::ServiceExt as _;
    let request = grpc_request(
        server,
        "/dbcert.v1.OrganizationService/ListOrganizations",
        grpc_timeout,
        TestBody::stalled(),
    )
    .map(tonic::body::Body::new);
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        server.channel().await.oneshot(request),
    )
    .await
    .expect("the server answers within its deadline");
    match response {
        Ok(response) => Ok(refusal_status(&response)),
        // The client's own timer fired first (tonic answers CANCELLED "Timeout expired").
        Err(error) => Err(format!("{error:?}")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callers_deadline_shorter_than_the_work_is_deadline_exceeded() {
    // No key pool: an RSA-4096 key is generated inline for the call, taking far longer (a
    // quarter to a few seconds of CPU) than the caller's 20 ms.
    let server = TestServer::start_with(|config| {
        assert!(!config.key_pool.is_enabled());
    })
    .await;
    let clients = server.clients().await;
    let group_id = clients.create_project("deadlines").await;
    clients.create_managed_user(&group_id, "alice").await;
    let message = CreateUserCertificateRequest {
        group_id: group_id.clone(),
        username: "alice".into(),
        months_until_expiration: Some(1),
        key_type: KeyType::Rsa4096 as i32,
        csr_pem: None,
    };
    let request = grpc_request(
        &server,
        "/dbcert.v1.CertificateService/CreateUserCertificate",
        Some("20m"),
        TestBody::message(&message),
    );
    // Whatever the machine's speed, the work outlasts the deadline: SQLite's write lock is
    // held here, so the call cannot store its CA or record its certificate before it ends.
    let database = server.data_dir.join("dbcert.sqlite3");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    assert_timeout(&raw_call(request, server.grpc_addr).await);
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    assert_healthy(&server).await;
    // Without a deadline the same call completes.
    let issued = clients
        .certificates()
        .create_user_certificate(message)
        .await
        .unwrap()
        .into_inner();
    assert!(issued.certificate_pem.contains("BEGIN CERTIFICATE"));

    // Through tonic's own client, whose timer runs too: the server answers first (it takes a
    // head start of a tenth of the deadline, here 50 ms) and the caller sees its answer. A call
    // whose message never arrives ends at the caller's deadline, not the server's (60 s).
    // Those 50 ms are the whole margin: a machine too busy to deliver the answer in them lets
    // the caller's timer win, so a few attempts are allowed; without the head start the
    // caller's timer wins every one.
    let mut answered = None;
    for _ in 0..5 {
        match try_stalled_call(&server, Some("500m")).await {
            Ok(status) => {
                answered = Some(status);
                break;
            }
            Err(error) => eprintln!("the caller's own timer fired first: {error}"),
        }
    }
    let answered = answered.expect("the server's answer never came before the caller's deadline");
    assert_timeout(&answered);
    assert_healthy(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_servers_request_timeout_ends_a_grpc_call_with_deadline_exceeded() {
    let server = TestServer::start_with(|config| {
        config.limits.request_timeout = Duration::from_secs(1);
    })
    .await;
    assert_timeout(&stalled_call(&server, None).await);
    assert_healthy(&server).await;
    // A caller's deadline longer than the server's timeout does not extend it.
    assert_timeout(&stalled_call(&server, Some("100S")).await);
    assert_healthy(&server).await;
    server.stop().await;
}
