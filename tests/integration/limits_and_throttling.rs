//! The network limits: failed authentications throttled per address and per key over both
//! listeners (429 `RATE_LIMITED` / `RESOURCE_EXHAUSTED` with Retry-After), the global
//! concurrency limit shedding load (503 / `UNAVAILABLE` with Retry-After, health exempt), and the
//! request timeout cutting a slow body (504 `TIMEOUT`), and the open connections bounded per
//! listener (`--max-connections`).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dbcert::proto::v1::ListOrganizationsRequest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt as _;

use crate::harness::atlas::{Alg, Atlas, authorization};
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::{self, Key, TestServer, assert_error};

fn throttled(burst: u32) -> impl FnOnce(&mut dbcert::config::Config) {
    move |config| {
        config.throttle.burst = burst;
        config.throttle.refill = Duration::from_secs(60);
    }
}

fn wrong(key: &Key) -> Key {
    Key {
        public: key.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_digest_logins_are_throttled_per_address_and_key() {
    let server = TestServer::start_with(throttled(3)).await;
    let good = Atlas::new(&server);
    let bad = Atlas::with_key(&server, wrong(&server.key));
    // The handshake's credential-less first request is not a failure.
    for _ in 0..5 {
        assert_eq!(
            good.raw("GET", "/api/atlas/v1.0/orgs", None, &[])
                .await
                .status,
            401
        );
    }
    for _ in 0..3 {
        assert_eq!(bad.get("/api/atlas/v1.0/orgs").await.status, 401);
    }
    let refused = bad.get("/api/atlas/v1.0/orgs").await;
    refused.assert_error(429, "RATE_LIMITED");
    let retry_after: u64 = refused.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Throttled callers are refused before verification, even with the right key.
    good.get("/api/atlas/v1.0/orgs")
        .await
        .assert_error(429, "RATE_LIMITED");
    // The address is shared with the gRPC listener's throttle.
    let clients = server.clients().await;
    assert_error(
        clients
            .orgs()
            .list_organizations(ListOrganizationsRequest::default())
            .await,
        tonic::Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_basic_logins_are_throttled_with_retry_info() {
    let server = TestServer::start_with(throttled(3)).await;
    let clients = server.clients().await;
    // No credentials at all: UNAUTHENTICATED, not counted.
    let anonymous = dbcert::proto::v1::organization_service_client::OrganizationServiceClient::new(
        server.channel().await,
    );
    for _ in 0..5 {
        let status = anonymous
            .clone()
            .list_organizations(dbcert::proto::v1::ListOrganizationsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    clients
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap();
    let bad = clients.as_key(&wrong(&server.key));
    for _ in 0..3 {
        assert_error(
            bad.orgs()
                .list_organizations(ListOrganizationsRequest::default())
                .await,
            tonic::Code::Unauthenticated,
            "USER_UNAUTHORIZED",
        );
    }
    let status = bad
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(harness::error_code(&status), "RATE_LIMITED");
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().metadata["httpStatus"], "429");
    let delay = details.retry_info().unwrap().retry_delay.unwrap();
    assert!(delay >= Duration::from_secs(1), "{delay:?}");
    let header: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(Duration::from_secs(header), delay);
    server.stop().await;
}

/// Sends a Digest-authenticated POST whose body never completes; returns the open connection.
async fn slow_post(server: &TestServer) -> TcpStream {
    let atlas = Atlas::new(server);
    let nonce = atlas.nonce().await;
    let target = "/api/atlas/v1.0/groups";
    let auth = authorization(&server.key, Alg::Md5, "POST", target, &nonce, 1, "0a4f113b");
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"name\":",
        server.http_addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

/// Reads a whole HTTP/1 response (the server closes the connection), bounded in time.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut bytes))
        .await
        .expect("the server must answer within the bound")
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn health(addr: SocketAddr) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_global_limit_requests_are_shed_with_retry_after() {
    let server = TestServer::start_with(|config| {
        config.limits.max_concurrent_requests = 1;
        config.limits.request_timeout = Duration::from_secs(30);
    })
    .await;
    let atlas = Atlas::new(&server);
    let clients = server.clients().await;
    let slow = slow_post(&server).await;

    // Bounded wait until the slow request holds the only permit.
    let mut shed = None;
    for _ in 0..200 {
        let resp = atlas.raw("GET", "/api/atlas/v1.0/orgs", None, &[]).await;
        if resp.status == 503 {
            shed = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let shed = shed.expect("a second request must be shed");
    shed.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(shed.header("retry-after"), "1");

    let status = clients
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(harness::error_code(&status), "SERVICE_UNAVAILABLE");
    assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    assert_eq!(
        status.get_error_details().retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(1))
    );
    // Health is exempt: the server is busy, not broken. So are its metrics: an overloaded
    // server is when its operators need them.
    assert_eq!(health(server.grpc_addr).await, 1);
    let metrics = atlas.raw("GET", "/metrics", None, &[]).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics.body.contains("dbcert_key_pool_depth"),
        "{}",
        metrics.body
    );

    drop(slow);
    let mut recovered = false;
    for _ in 0..200 {
        if clients
            .orgs()
            .list_organizations(ListOrganizationsRequest::default())
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        recovered,
        "the permit must come back when the slow client leaves"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_is_cut_by_the_request_timeout() {
    let server = TestServer::start_with(|config| {
        config.limits.request_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = slow_post(&server).await;
    let response = read_response(&mut slow).await;
    assert!(response.starts_with("HTTP/1.1 504"), "{response}");
    assert!(response.contains("\"errorCode\":\"TIMEOUT\""), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-error-code: timeout"),
        "{response}"
    );
    assert_eq!(health(server.grpc_addr).await, 1);
    assert_eq!(
        Atlas::new(&server).get("/api/atlas/v1.0/orgs").await.status,
        200
    );
    server.stop().await;
}

/// Sends an unauthenticated request on a kept-alive connection and returns its whole answer
/// (head and `Content-Length` body); empty when the server closed the connection without one.
/// Bounded in time.
async fn first_answer(tcp: &mut TcpStream) -> String {
    let request = "GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: dbcert\r\n\r\n";
    // A closed connection may refuse the write or answer the read with EOF or a reset.
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            bytes.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server must answer or close within the bound");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_until_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(&dir.path().join("data"));
    command.args(["--max-connections", "2"]);
    let server = Spawned::start(command).await;
    server.wait_serving().await;
    let addr = server.http_addr;

    // Two kept-alive connections, each answered: the listener's two slots.
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    for tcp in [&mut first, &mut second] {
        let answer = first_answer(tcp).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    }
    // A third is accepted and closed at once, unanswered, with a warning.
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert_eq!(first_answer(&mut third).await, "");
    assert!(
        server.wait_for_log("connection limit reached").await,
        "{}",
        server.log()
    );
    // The gRPC listener has slots of its own.
    assert_eq!(health(server.grpc_addr).await, 1);

    // One ends: its slot comes back once the server has seen the close.
    drop(first);
    let mut answered = false;
    for _ in 0..100 {
        let mut next = TcpStream::connect(addr).await.unwrap();
        if first_answer(&mut next).await.starts_with("HTTP/1.1 401") {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "the slot must come back when a connection ends");
    // The second is still served.
    assert!(first_answer(&mut second).await.starts_with("HTTP/1.1 401"));
}

/// Connects to `addr` from the loopback address `from` (Linux routes 127.0.0.0/8 to lo).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(&dir.path().join("data"));
    command.args([
        "--max-connections",
        "10",
        "--max-connections-per-address",
        "2",
    ]);
    let server = Spawned::start(command).await;
    server.wait_serving().await;
    let addr = server.http_addr;

    // 127.0.0.2 holds its two connections; its third is closed unanswered.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect_from("127.0.0.2", addr).await;
        let answer = first_answer(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
        held.push(tcp);
    }
    let mut third = connect_from("127.0.0.2", addr).await;
    assert_eq!(first_answer(&mut third).await, "");
    assert!(
        server
            .wait_for_log("connection limit per address reached")
            .await,
        "{}",
        server.log()
    );
    // Another address is served meanwhile.
    let mut other = connect_from("127.0.0.3", addr).await;
    assert!(first_answer(&mut other).await.starts_with("HTTP/1.1 401"));

    // One of 127.0.0.2's ends: its slot comes back once the server has seen the close.
    held.pop();
    let mut answered = false;
    for _ in 0..100 {
        let mut next = connect_from("127.0.0.2", addr).await;
        if first_answer(&mut next).await.starts_with("HTTP/1.1 401") {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        answered,
        "the address's slot must come back when a connection ends"
    );
}
