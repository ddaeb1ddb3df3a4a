//! Hostile inputs over REST and gRPC, as a table: each case gets the right Atlas error (where
//! hyper's HTTP/1 parser refuses a request before any route sees it too: 400, 414, 431), and
//! after each case the server still answers health SERVING and a normal authenticated call.
//!
//! REST cases go over raw TCP, so paths reach the server byte for byte (no client normalises
//! `..`, `%2E%2E` or invalid UTF-8), with real Digest credentials for the exact target.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dbcert::proto::v1::{CreateUserCertificateRequest, ListOrganizationsRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::atlas::{self, Alg, Atlas, authorization};
use crate::harness::{TestServer, error_code};

/// A raw HTTP/1.1 response.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn error_code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                // An enveloped error carries it under "content".
                let code = v["errorCode"]
                    .as_str()
                    .or(v["content"]["errorCode"].as_str());
                code.map(str::to_owned)
            })
            .unwrap_or_default()
    }
}

/// How a case authenticates.
#[derive(Clone, Copy, Debug)]
enum Auth {
    /// Correct Digest credentials for the exact target.
    Digest,
    /// This Authorization value as is.
    Header(&'static str),
    /// Correct credentials cut in half.
    Truncated,
    /// Correct credentials sent twice (the second is the case).
    Replayed,
}

/// Sends raw bytes: `METHOD target HTTP/1.1`, headers, body (a slow body stalls after `body`).
async fn send_raw(
    server: &TestServer,
    method: &str,
    target: &[u8],
    auth: Option<Auth>,
    extra_headers: &str,
    body: &[u8],
    declared_length: Option<usize>,
) -> Raw {
    let target_text = String::from_utf8_lossy(target).into_owned();
    let atlas = Atlas::new(server);
    let authorization_header = match auth {
        None => String::new(),
        Some(Auth::Header(value)) => format!("Authorization: {value}\r\n"),
        Some(kind) => {
            let nonce = atlas.nonce().await;
            let value = authorization(
                &server.key,
                Alg::Md5,
                method,
                &target_text,
                &nonce,
                1,
                "c0ffee01",
            );
            match kind {
                Auth::Truncated => format!("Authorization: {}\r\n", &value[..value.len() / 2]),
                Auth::Replayed => {
                    let first = exchange(
                        server,
                        method,
                        target,
                        &format!("Authorization: {value}\r\n"),
                        extra_headers,
                        body,
                        declared_length,
                    )
                    .await;
                    assert!(
                        first.status < 400 || first.status == 404,
                        "first use must pass auth: {first:?}"
                    );
                    format!("Authorization: {value}\r\n")
                }
                _ => format!("Authorization: {value}\r\n"),
            }
        }
    };
    exchange(
        server,
        method,
        target,
        &authorization_header,
        extra_headers,
        body,
        declared_length,
    )
    .await
}

async fn exchange(
    server: &TestServer,
    method: &str,
    target: &[u8],
    authorization_header: &str,
    extra_headers: &str,
    body: &[u8],
    declared_length: Option<usize>,
) -> Raw {
    let mut request = Vec::new();
    request.extend_from_slice(method.as_bytes());
    request.push(b' ');
    request.extend_from_slice(target);
    request.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{authorization_header}{extra_headers}Content-Length: {}\r\n\r\n",
            server.http_addr,
            declared_length.unwrap_or(body.len())
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    // The server may answer (and close) before taking the whole request: ignore write errors.
    let _ = tcp.write_all(&request).await;
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 8192];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server must answer within the bound");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    Raw {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[track_caller]
fn check(name: &str, raw: &Raw, status: u16, code: Option<&str>) {
    assert_eq!(raw.status, status, "{name}: {raw:?}");
    if let Some(code) = code {
        assert_eq!(raw.error_code(), code, "{name}: {raw:?}");
        let head = raw.head.to_ascii_lowercase();
        assert!(
            head.contains(&format!("x-error-code: {}", code.to_ascii_lowercase())),
            "{name}: {raw:?}"
        );
        assert!(
            head.contains("content-type: application/json"),
            "{name}: {raw:?}"
        );
        // The whole Atlas body (enveloped under "content" when the request asked for it).
        let body: serde_json::Value = serde_json::from_str(&raw.body).unwrap();
        let body = body.get("content").unwrap_or(&body);
        assert_eq!(body["error"], status, "{name}: {raw:?}");
        for key in ["detail", "errorCode", "reason"] {
            assert!(body[key].is_string(), "{name}: no {key}: {raw:?}");
        }
    }
}

async fn assert_healthy(server: &TestServer, name: &str) {
    let status = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: health failed: {e}"))
        .into_inner()
        .status;
    assert_eq!(status, 1, "{name}: health not SERVING");
    let resp = Atlas::new(server).get("/api/atlas/v1.0/orgs").await;
    assert_eq!(
        resp.status, 200,
        "{name}: a normal call failed: {}",
        resp.body
    );
}

async fn hostile_server() -> (TestServer, String) {
    let server = TestServer::start_with(|config| {
        // Every malformed header is a failed authentication: keep the table from throttling
        // itself (throttling has its own tests).
        config.throttle.burst = 0;
        config.limits.request_timeout = Duration::from_secs(2);
        // Room for a 10,000-character username in the path *and* the Digest uri, and for a
        // target longer than hyper's own limit on targets (414).
        config.limits.max_header_bytes = 128 * 1024;
    })
    .await;
    let clients = server.clients().await;
    let group_id = clients.create_project("hostile").await;
    clients.create_managed_user(&group_id, "alice").await;
    (server, group_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_rest_requests_get_atlas_errors_and_the_server_stays_healthy() {
    let (server, g) = hostile_server().await;
    let certs = format!("/api/atlas/v1.0/groups/{g}/databaseUsers/alice/certs");
    let long_user = "u".repeat(10_000);
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let huge = vec![b' '; 2 * 1024 * 1024];
    let big_header = format!("X-Filler: {}\r\n", "a".repeat(200 * 1024));
    let many_headers: String = (0..120).map(|i| format!("X-Many-{i}: 1\r\n")).collect();

    // (name, method, target, auth, extra headers, body, declared length, status, errorCode)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<u8>,
        Option<Auth>,
        String,
        Vec<u8>,
        Option<usize>,
        u16,
        Option<&'a str>,
    );
    let d = Some(Auth::Digest);
    let json = "Content-Type: application/json\r\n".to_owned();
    let cases: Vec<Case<'_>> = vec![
        (
            "oversized body",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            huge.clone(),
            None,
            413,
            Some("REQUEST_TOO_LARGE"),
        ),
        (
            "oversized declared length",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            Vec::new(),
            Some(1 << 40),
            413,
            Some("REQUEST_TOO_LARGE"),
        ),
        (
            "deeply nested array",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            nested.clone().into(),
            None,
            400,
            Some("MALFORMED_JSON"),
        ),
        (
            "deeply nested object",
            "POST",
            "/api/atlas/v1.0/groups".into(),
            d,
            json.clone(),
            deep_object.clone().into(),
            None,
            400,
            Some("MALFORMED_JSON"),
        ),
        (
            "json not an object",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            b"[1,2]".to_vec(),
            None,
            400,
            Some("INVALID_JSON"),
        ),
        (
            "invalid utf-8 in body",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            b"{\"monthsUntilExpiration\":\"\xff\"}".to_vec(),
            None,
            400,
            Some("MALFORMED_JSON"),
        ),
        (
            "percent-encoded invalid utf-8 in path",
            "GET",
            format!("/api/atlas/v1.0/groups/{g}/databaseUsers/%FF%FE/certs").into(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_PATH_PARAMETER"),
        ),
        (
            "raw invalid utf-8 in path",
            "GET",
            [b"/api/atlas/v1.0/groups/".as_slice(), b"\xff\xfe"].concat(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_REQUEST"),
        ),
        (
            "percent-encoded NUL in username",
            "GET",
            format!("/api/atlas/v1.0/groups/{g}/databaseUsers/al%00ice/certs").into(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "raw NUL in path",
            "GET",
            b"/api/atlas/v1.0/groups/\0/databaseUsers".to_vec(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_REQUEST"),
        ),
        (
            "dot-dot username",
            "POST",
            format!("/api/atlas/v1.0/groups/{g}/databaseUsers/../certs").into(),
            d,
            json.clone(),
            b"{}".to_vec(),
            None,
            404,
            Some("USERNAME_NOT_FOUND"),
        ),
        (
            "encoded dot-dot username",
            "POST",
            format!("/api/atlas/v1.0/groups/{g}/databaseUsers/%2E%2E/certs").into(),
            d,
            json.clone(),
            b"{}".to_vec(),
            None,
            404,
            Some("USERNAME_NOT_FOUND"),
        ),
        (
            "encoded slash in username",
            "POST",
            format!("/api/atlas/v1.0/groups/{g}/databaseUsers/a%2Fb/certs").into(),
            d,
            json.clone(),
            b"{}".to_vec(),
            None,
            404,
            Some("USERNAME_NOT_FOUND"),
        ),
        (
            "dot-dot escaping the prefix",
            "GET",
            b"/api/atlas/v1.0/../../../etc/passwd".to_vec(),
            d,
            String::new(),
            Vec::new(),
            None,
            404,
            Some("RESOURCE_NOT_FOUND"),
        ),
        (
            "dot-dot group id",
            "GET",
            b"/api/atlas/v1.0/groups/../databaseUsers".to_vec(),
            d,
            String::new(),
            Vec::new(),
            None,
            404,
            Some("INVALID_GROUP_ID"),
        ),
        (
            "10,000-character username",
            "POST",
            format!("/api/atlas/v1.0/groups/{g}/databaseUsers/{long_user}/certs").into(),
            d,
            json.clone(),
            b"{}".to_vec(),
            None,
            400,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "repeated pretty flag",
            "GET",
            format!("/api/atlas/v1.0/groups/{g}?pretty=true&pretty=false").into(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_QUERY_PARAMETER"),
        ),
        (
            "repeated envelope flag",
            "GET",
            format!("/api/atlas/v1.0/groups/{g}?envelope=true&envelope=true").into(),
            None,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_QUERY_PARAMETER"),
        ),
        (
            "repeated pageNum",
            "GET",
            format!("{certs}?pageNum=1&pageNum=2").into(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_QUERY_PARAMETER"),
        ),
        (
            "non-numeric pageNum",
            "GET",
            format!("{certs}?pageNum=one").into(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_QUERY_PARAMETER"),
        ),
        (
            "overflowing itemsPerPage",
            "GET",
            format!("{certs}?itemsPerPage=99999999999999999999").into(),
            d,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_QUERY_PARAMETER"),
        ),
        (
            "non-numeric months",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            br#"{"monthsUntilExpiration":"twelve"}"#.to_vec(),
            None,
            400,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "fractional months",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            br#"{"monthsUntilExpiration":1.5}"#.to_vec(),
            None,
            400,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "overflowing months",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            br#"{"monthsUntilExpiration":99999999999999999999}"#.to_vec(),
            None,
            400,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "i64::MAX months",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            br#"{"monthsUntilExpiration":9223372036854775807}"#.to_vec(),
            None,
            400,
            Some("CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS"),
        ),
        (
            "i64::MIN months",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            br#"{"monthsUntilExpiration":-9223372036854775808}"#.to_vec(),
            None,
            400,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "months out of f64 range",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            br#"{"monthsUntilExpiration":1e400}"#.to_vec(),
            None,
            400,
            Some("MALFORMED_JSON"),
        ),
        (
            "xml content type and body",
            "POST",
            certs.clone().into(),
            d,
            "Content-Type: application/xml\r\n".to_owned(),
            b"<months>12</months>".to_vec(),
            None,
            400,
            Some("MALFORMED_JSON"),
        ),
        (
            "form content type and body",
            "POST",
            certs.clone().into(),
            d,
            "Content-Type: application/x-www-form-urlencoded\r\n".to_owned(),
            b"monthsUntilExpiration=12".to_vec(),
            None,
            400,
            Some("MALFORMED_JSON"),
        ),
        (
            "no authorization",
            "GET",
            certs.clone().into(),
            None,
            String::new(),
            Vec::new(),
            None,
            401,
            Some("UNEXPECTED_ERROR"),
        ),
        (
            "malformed digest",
            "GET",
            certs.clone().into(),
            Some(Auth::Header("Digest garbage")),
            String::new(),
            Vec::new(),
            None,
            401,
            Some("UNEXPECTED_ERROR"),
        ),
        (
            "basic instead of digest",
            "GET",
            certs.clone().into(),
            Some(Auth::Header("Basic YWJjZGVmZ2g6eA==")),
            String::new(),
            Vec::new(),
            None,
            401,
            Some("UNEXPECTED_ERROR"),
        ),
        (
            "forged nonce",
            "GET",
            certs.clone().into(),
            Some(Auth::Header(
                r#"Digest username="abcdefgh", realm="MMS Public API", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="/", response="00", qop=auth, nc=00000001, cnonce="x""#,
            )),
            String::new(),
            Vec::new(),
            None,
            401,
            Some("UNEXPECTED_ERROR"),
        ),
        (
            "truncated digest",
            "GET",
            certs.clone().into(),
            Some(Auth::Truncated),
            String::new(),
            Vec::new(),
            None,
            401,
            Some("UNEXPECTED_ERROR"),
        ),
        (
            "replayed digest",
            "GET",
            certs.clone().into(),
            Some(Auth::Replayed),
            String::new(),
            Vec::new(),
            None,
            401,
            Some("UNEXPECTED_ERROR"),
        ),
        (
            "oversized header",
            "GET",
            certs.clone().into(),
            d,
            big_header.clone(),
            Vec::new(),
            None,
            431,
            Some("REQUEST_HEADERS_TOO_LARGE"),
        ),
        (
            "too many header fields",
            "GET",
            certs.clone().into(),
            d,
            many_headers.clone(),
            Vec::new(),
            None,
            431,
            Some("REQUEST_HEADERS_TOO_LARGE"),
        ),
        (
            "target over hyper's 65,534 bytes",
            "GET",
            format!("/api/atlas/v1.0/groups/{}", "g".repeat(70_000)).into(),
            None,
            String::new(),
            Vec::new(),
            None,
            414,
            Some("URI_TOO_LONG"),
        ),
        (
            "space in a header name",
            "GET",
            certs.clone().into(),
            d,
            "Bad Header: x\r\n".to_owned(),
            Vec::new(),
            None,
            400,
            Some("INVALID_REQUEST"),
        ),
        (
            "invalid method token",
            "G(T",
            certs.clone().into(),
            None,
            String::new(),
            Vec::new(),
            None,
            400,
            Some("INVALID_REQUEST"),
        ),
        (
            "conflicting content lengths",
            "POST",
            certs.clone().into(),
            d,
            "Content-Length: 7\r\n".to_owned(),
            b"{}".to_vec(),
            None,
            400,
            Some("INVALID_REQUEST"),
        ),
        (
            "slow body",
            "POST",
            certs.clone().into(),
            d,
            json.clone(),
            b"{\"monthsUntil".to_vec(),
            Some(64),
            504,
            Some("TIMEOUT"),
        ),
    ];
    for (name, method, target, auth, headers, body, declared, status, code) in cases {
        let raw = send_raw(&server, method, &target, auth, &headers, &body, declared).await;
        check(name, &raw, status, code);
        assert_healthy(&server, name).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_grpc_requests_get_atlas_errors_and_the_server_stays_healthy() {
    let (server, g) = hostile_server().await;
    let clients = server.clients().await;
    let issue = |group_id: String, username: String, months: Option<i64>| {
        let clients = clients.clone();
        async move {
            clients
                .certificates()
                .create_user_certificate(CreateUserCertificateRequest {
                    group_id,
                    username,
                    months_until_expiration: months,
                    key_type: 0,
                    csr_pem: None,
                })
                .await
        }
    };
    use tonic::Code;
    // (name, group id, username, months, gRPC code, Atlas errorCode)
    type GrpcCase<'a> = (&'a str, String, String, Option<i64>, Code, Option<&'a str>);
    let cases: Vec<GrpcCase<'_>> = vec![
        (
            "10,000-character username",
            g.clone(),
            "u".repeat(10_000),
            Some(1),
            Code::InvalidArgument,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "NUL in username",
            g.clone(),
            "al\0ice".into(),
            Some(1),
            Code::InvalidArgument,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "dot-dot username",
            g.clone(),
            "..".into(),
            Some(1),
            Code::NotFound,
            Some("USERNAME_NOT_FOUND"),
        ),
        (
            "slash username",
            g.clone(),
            "a/b".into(),
            Some(1),
            Code::NotFound,
            Some("USERNAME_NOT_FOUND"),
        ),
        (
            "dot-dot group id",
            "../..".into(),
            "alice".into(),
            Some(1),
            Code::InvalidArgument,
            Some("INVALID_GROUP_ID"),
        ),
        (
            "empty username",
            g.clone(),
            String::new(),
            Some(1),
            Code::InvalidArgument,
            Some("MISSING_ATTRIBUTE"),
        ),
        (
            "zero months",
            g.clone(),
            "alice".into(),
            Some(0),
            Code::InvalidArgument,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "i64::MIN months",
            g.clone(),
            "alice".into(),
            Some(i64::MIN),
            Code::InvalidArgument,
            Some("INVALID_ATTRIBUTE"),
        ),
        (
            "i64::MAX months",
            g.clone(),
            "alice".into(),
            Some(i64::MAX),
            Code::InvalidArgument,
            Some("CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS"),
        ),
        (
            "oversized message",
            g.clone(),
            "u".repeat(2 * 1024 * 1024),
            Some(1),
            Code::OutOfRange,
            None,
        ),
    ];
    for (name, group_id, username, months, code, atlas_code) in cases {
        let status = issue(group_id, username, months).await.unwrap_err();
        assert_eq!(status.code(), code, "{name}: {status:?}");
        if let Some(atlas_code) = atlas_code {
            assert_eq!(error_code(&status), atlas_code, "{name}");
        }
        assert_healthy(&server, name).await;
    }

    // Malformed, truncated and foreign authorization metadata.
    let good = clients.key.basic();
    let truncated = good[..good.len() - 6].to_owned();
    for (name, value) in [
        ("not basic", "Bearer abc".to_owned()),
        ("bad base64", "Basic !!!!".to_owned()),
        ("no colon", "Basic YWJjZGVmZ2g=".to_owned()),
        ("truncated basic", truncated),
        ("huge basic", format!("Basic {}", "A".repeat(8000))),
        ("empty basic", "Basic ".to_owned()),
    ] {
        let mut request = tonic::Request::new(ListOrganizationsRequest::default());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        let status =
            dbcert::proto::v1::organization_service_client::OrganizationServiceClient::new(
                server.channel().await,
            )
            .list_organizations(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
        assert_healthy(&server, name).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_after_pipelined_requests_leaves_their_responses_intact() {
    let (server, g) = hostile_server().await;
    let host = server.http_addr;
    // On one connection, in one write: a 401 (JSON body), a HEAD (a Content-Length but no
    // body), a 404, an OPTIONS (405), then a request line hyper cannot parse.
    let mut stream = Vec::new();
    for (method, target) in [
        ("GET", format!("/api/atlas/v1.0/groups/{g}")),
        ("HEAD", "/api/atlas/v1.0/orgs".to_owned()),
        ("GET", "/api/atlas/v1.0/nowhere".to_owned()),
        ("OPTIONS", "/api/atlas/v1.0/orgs".to_owned()),
    ] {
        stream.extend_from_slice(
            format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
    }
    stream.extend_from_slice(b"GET /api/atlas/v1.0/\xff\0 HTTP/1.1\r\nHost: x\r\n\r\n");
    // What follows the refusal is never read.
    stream.extend_from_slice(
        format!("GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    );
    let mut tcp = TcpStream::connect(host).await.unwrap();
    tcp.write_all(&stream).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection after the refusal")
        .unwrap();
    let responses = atlas::parse_responses(&bytes, &[false, true, false, false, false]);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 404, 405, 400], "{responses:?}");
    assert_eq!(
        responses[0].body,
        serde_json::to_string(&dbcert::gateway::response::challenge_body()).unwrap()
    );
    assert!(
        responses[1].head.contains("content-length: "),
        "{responses:?}"
    );
    responses[2].assert_error(404, "RESOURCE_NOT_FOUND");
    responses[3].assert_error(405, "METHOD_NOT_ALLOWED");
    responses[4].assert_error(400, "INVALID_REQUEST");
    assert!(
        responses[4].head.contains("connection: close"),
        "{responses:?}"
    );
    assert_healthy(&server, "pipelined refusal").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_over_http2_passes_the_refusal_layer_untouched() {
    use hyper::body::Body as _;
    let (server, g) = hostile_server().await;
    let tcp = TcpStream::connect(server.http_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    // Several requests on one HTTP/2 connection, among them one whose answer is large.
    for (target, status) in [
        ("/api/atlas/v1.0/orgs".to_owned(), 401),
        (format!("/api/atlas/v1.0/{}", "x".repeat(8000)), 404),
        (format!("/api/atlas/v1.0/groups/{g}"), 401),
    ] {
        let request = http::Request::builder()
            .uri(format!("http://{}{target}", server.http_addr))
            .body(String::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), status, "{target}");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let declared: usize = response.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame.unwrap().into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        assert_eq!(bytes.len(), declared, "{target}");
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"], status, "{target}");
    }
    assert_healthy(&server, "http/2").await;
    server.stop().await;
}
