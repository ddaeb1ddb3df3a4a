//! `--trusted-proxies`: behind a trusted proxy, failed-authentication throttling and the audit
//! trail use the client named by `X-Forwarded-For` (REST) or `x-forwarded-for` metadata (gRPC),
//! read from the right; from an untrusted peer the header is ignored, so a client cannot spoof
//! its way out of throttling.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dbcert::auth::TrustedProxies;
use dbcert::proto::v1::{
    AssignApiKeyToProjectRequest, CreateApiKeyRequest, ListAuditEventsRequest,
    ListOrganizationEventsRequest, ListOrganizationsRequest,
    organization_service_client::OrganizationServiceClient,
};
use tonic::Code;

use crate::harness::atlas::{Alg, Atlas, authorization};
use crate::harness::{Clients, Key, TestServer, error_code};

/// A server allowing 2 failed authentications per address (or key) before 429, trusting
/// `trusted` (comma-separated) as proxies.
async fn server(trusted: &str) -> TestServer {
    let networks = trusted
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|n| TrustedProxies::parse_network(n).unwrap())
        .collect();
    TestServer::start_with(|config| {
        config.throttle.burst = 2;
        config.throttle.refill = Duration::from_secs(600);
        config.trusted_proxies = TrustedProxies::new(networks);
    })
    .await
}

/// A REST call signed with Digest by `key` (a key that does not exist, or a wrong secret),
/// carrying `X-Forwarded-For` values; returns the HTTP status and errorCode.
async fn rest_attempt(server: &TestServer, key: &Key, forwarded_for: &[&str]) -> (u16, String) {
    let atlas = Atlas::new(server);
    let target = "/api/atlas/v1.0/orgs";
    let nonce = atlas.nonce().await;
    let auth = authorization(key, Alg::Md5, "GET", target, &nonce, 1, "0badc0de");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(forwarded_for.iter().map(|v| ("x-forwarded-for", *v)));
    let response = atlas.raw("GET", target, None, &headers).await;
    let code = response.header("x-error-code");
    (response.status, code)
}

/// A gRPC call with Basic credentials of `key`, carrying `x-forwarded-for` metadata.
async fn grpc_attempt(server: &TestServer, key: &Key, forwarded_for: Option<&str>) -> Code {
    let mut request = tonic::Request::new(ListOrganizationsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", key.basic().parse().unwrap());
    if let Some(value) = forwarded_for {
        request
            .metadata_mut()
            .insert("x-forwarded-for", value.parse().unwrap());
    }
    match OrganizationServiceClient::new(server.channel().await)
        .list_organizations(request)
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => {
            if status.code() == Code::ResourceExhausted {
                assert_eq!(error_code(&status), "RATE_LIMITED");
            }
            status.code()
        }
    }
}

const REFUSED: (u16, &str) = (401, "UNEXPECTED_ERROR");
const THROTTLED: (u16, &str) = (429, "RATE_LIMITED");

#[track_caller]
fn assert_outcome(actual: (u16, String), expected: (u16, &str), what: &str) {
    assert_eq!((actual.0, actual.1.as_str()), expected, "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_is_throttled_on_its_own() {
    let server = server("127.0.0.1").await;
    // Each attempt claims a new key, so only the address buckets fill.
    let attempt = |forwarded: &'static [&'static str]| {
        let server = &server;
        async move { rest_attempt(server, &Key::random(), forwarded).await }
    };
    assert_outcome(attempt(&["203.0.113.1"]).await, REFUSED, "first failure");
    assert_outcome(attempt(&["203.0.113.1"]).await, REFUSED, "second failure");
    assert_outcome(attempt(&["203.0.113.1"]).await, THROTTLED, "over the burst");
    // Another forwarded client, and the proxy itself, are not throttled.
    assert_outcome(attempt(&["203.0.113.2"]).await, REFUSED, "another client");
    assert_outcome(attempt(&[]).await, REFUSED, "the proxy's own address");
    // Forging a left part does not escape: the rightmost untrusted address counts, after
    // trusted hops, over several header lines too.
    assert_outcome(
        attempt(&["198.51.100.7, 203.0.113.1"]).await,
        THROTTLED,
        "forged left part",
    );
    assert_outcome(
        attempt(&["198.51.100.7", "203.0.113.1, 127.0.0.1"]).await,
        THROTTLED,
        "a second trusted hop",
    );
    // A malformed entry stops at the last trusted hop: the proxy's address.
    assert_outcome(
        attempt(&["203.0.113.1, unknown"]).await,
        REFUSED,
        "malformed entry",
    );

    // gRPC: the same addresses, the same (per-replica) buckets.
    assert_eq!(
        grpc_attempt(&server, &Key::random(), Some("203.0.113.1")).await,
        Code::ResourceExhausted
    );
    for expected in [
        Code::Unauthenticated,
        Code::Unauthenticated,
        Code::ResourceExhausted,
    ] {
        assert_eq!(
            grpc_attempt(&server, &Key::random(), Some("203.0.113.3")).await,
            expected
        );
    }
    assert_eq!(
        grpc_attempt(&server, &Key::random(), Some("203.0.113.4")).await,
        Code::Unauthenticated
    );
    // The right credentials from an unthrottled client still work.
    assert_eq!(
        grpc_attempt(&server, &server.key, Some("203.0.113.5")).await,
        Code::Ok
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trust_the_header_is_ignored_and_spoofing_does_not_escape_throttling() {
    let server = server("").await;
    let attempt = |forwarded: &'static str| {
        let server = &server;
        async move { rest_attempt(server, &Key::random(), &[forwarded]).await }
    };
    assert_outcome(attempt("203.0.113.1").await, REFUSED, "first failure");
    assert_outcome(attempt("203.0.113.2").await, REFUSED, "second failure");
    assert_outcome(attempt("203.0.113.3").await, THROTTLED, "a third address");
    assert_eq!(
        grpc_attempt(&server, &Key::random(), Some("203.0.113.4")).await,
        Code::ResourceExhausted
    );
    server.stop().await;

    // A trusted network that does not hold the peer: the same.
    let server = server_trusting_others().await;
    for expected in [REFUSED, REFUSED, THROTTLED] {
        let forwarded = format!("203.0.113.{}", rand::random_range(1..250u8));
        assert_outcome(
            rest_attempt(&server, &Key::random(), &[&forwarded]).await,
            expected,
            &forwarded,
        );
    }
    server.stop().await;
}

async fn server_trusting_others() -> TestServer {
    server("10.0.0.0/8,::1").await
}

/// The audit events of a project, over gRPC as the bootstrap key.
async fn project_events(clients: &Clients, group_id: &str) -> Vec<(String, String)> {
    clients
        .audit()
        .list_audit_events(ListAuditEventsRequest {
            group_id: group_id.into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|e| (e.event_type_name, e.remote_address))
        .collect()
}

/// An organization's failed authentications as (scheme, remote address), oldest first.
async fn org_failed_authentications(clients: &Clients, org_id: &str) -> Vec<(String, String)> {
    clients
        .audit()
        .list_organization_events(ListOrganizationEventsRequest {
            org_id: org_id.into(),
            items_per_page: 500,
            event_type: vec!["AUTHENTICATION_FAILED".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        // Listed newest first.
        .rev()
        .map(|e| (e.target, e.remote_address))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_records_the_forwarded_client() {
    let server = server("127.0.0.0/8").await;
    let clients = server.clients().await;
    let org = clients.first_org_id().await;
    let group_id = clients.create_project("forwarded").await;

    // Successful changes: over REST with X-Forwarded-For, over gRPC with the metadata.
    let atlas = Atlas::new(&server);
    let target = format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers");
    let body = serde_json::json!({
        "databaseName": "$external",
        "groupId": group_id,
        "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
        "username": "alice",
        "x509Type": "MANAGED",
    })
    .to_string();
    let nonce = atlas.nonce().await;
    let auth = atlas.authorization("POST", &target, &nonce, 1);
    let response = atlas
        .raw(
            "POST",
            &target,
            Some(&body),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("x-forwarded-for", "192.0.2.60"),
            ],
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let mut request = tonic::Request::new(dbcert::proto::v1::CreateUserCertificateRequest {
        group_id: group_id.clone(),
        username: "alice".into(),
        months_until_expiration: Some(1),
        key_type: dbcert::proto::v1::KeyType::EcdsaP256 as i32,
        csr_pem: None,
    });
    request
        .metadata_mut()
        .insert("x-forwarded-for", "192.0.2.61:4711".parse().unwrap());
    clients
        .certificates()
        .create_user_certificate(request)
        .await
        .unwrap();
    let events = project_events(&clients, &group_id).await;
    assert!(
        events.contains(&("MONGODB_USER_ADDED".into(), "192.0.2.60:0".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&(
            "MONGODB_USER_X509_CERT_CREATED".into(),
            "192.0.2.61:4711".into()
        )),
        "{events:?}"
    );
    // The project was created without the header: the TCP peer.
    let created = events
        .iter()
        .find(|(name, _)| name == "GROUP_CREATED")
        .unwrap();
    assert!(created.1.starts_with("127.0.0.1:"), "{events:?}");

    // Failed authentications of an existing key with a wrong secret (events of the key's
    // organization, listed by its owner).
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id: org.clone(),
            desc: "guessed".into(),
            roles: vec!["ORG_MEMBER".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    clients
        .api_keys()
        .assign_api_key_to_project(AssignApiKeyToProjectRequest {
            group_id: group_id.clone(),
            api_key_id: created.id.clone(),
            roles: vec!["GROUP_READ_ONLY".into()],
            desc: None,
        })
        .await
        .unwrap();
    let wrong = Key {
        public: created.public_key.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    assert_outcome(
        rest_attempt(&server, &wrong, &["192.0.2.70"]).await,
        REFUSED,
        "wrong secret over REST",
    );
    assert_eq!(
        grpc_attempt(&server, &wrong, Some("192.0.2.71")).await,
        Code::Unauthenticated
    );
    let failures = org_failed_authentications(&clients, &org).await;
    assert_eq!(
        failures,
        [
            ("digest".to_owned(), "192.0.2.70:0".to_owned()),
            ("basic".to_owned(), "192.0.2.71:0".to_owned()),
        ],
    );
    server.stop().await;
}
