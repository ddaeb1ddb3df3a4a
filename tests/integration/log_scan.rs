//! No key material in anything the process writes: the real binary runs with
//! `RUST_LOG=trace`, issues certificates over gRPC and REST, serves the CA, creates and lists
//! API keys, and then every byte it wrote to stdout and stderr is scanned for `PRIVATE KEY`,
//! the leaf keys' base64 (whole and line by line), the API private keys (also inside Basic
//! credentials), their HA1 values and the master key.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use base64::Engine as _;
use dbcert::proto::v1::{CreateApiKeyRequest, ListApiKeysRequest};
use md5::{Digest as _, Md5};
use nix::sys::signal::Signal;
use sha2::Sha256;

use crate::harness::Key;
use crate::harness::atlas;
use crate::harness::binary::{Spawned, serve_command, strip_ansi};

fn ha1s(key: &Key) -> [String; 2] {
    let input = format!("{}:MMS Public API:{}", key.public, key.private);
    [
        hex::encode(Md5::digest(input.as_bytes())),
        hex::encode(Sha256::digest(input.as_bytes())),
    ]
}

/// The secrets of a key: its private key, Basic credential, HA1 values.
fn key_secrets(key: &Key) -> Vec<String> {
    let mut secrets = vec![
        key.private.clone(),
        key.basic().trim_start_matches("Basic ").to_owned(),
    ];
    secrets.extend(ha1s(key));
    secrets
}

/// The secrets of a PEM private key: its base64 body whole, and each full line of it.
fn pem_secrets(pem: &str) -> Vec<String> {
    let body: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    assert!(body.len() > 10, "not a PEM key");
    let mut secrets = vec![body.concat()];
    secrets.extend(body.iter().filter(|l| l.len() >= 40).map(|l| l.to_string()));
    secrets
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_material_in_trace_logs() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let bootstrap = Key::random();
    let mut command = serve_command(&dir.path().join("data"));
    command
        .env("RUST_LOG", "trace")
        .env("DBCERT_MASTER_KEY", &master_key)
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", bootstrap.public, bootstrap.private),
        );
    let mut server = Spawned::start(command).await;
    let http_addr = server.http_addr;
    let clients = server.clients(&bootstrap).await;
    let mut secrets = vec![master_key.clone()];
    secrets.extend(key_secrets(&bootstrap));

    // gRPC: a project, a user, two certificates, the CA.
    let group_id = clients.create_project("scanned").await;
    clients.create_managed_user(&group_id, "grpc-user").await;
    let mut pems = Vec::new();
    for _ in 0..2 {
        pems.push(
            clients
                .issue(&group_id, "grpc-user", Some(1))
                .await
                .unwrap()
                .private_key_pem,
        );
    }
    clients.project_ca_pem(&group_id).await;

    // REST: a user and two certificates.
    let atlas = atlas::Atlas {
        http: reqwest::Client::new(),
        base: format!("http://{http_addr}"),
        key: bootstrap.clone(),
        alg: atlas::Alg::Md5,
    };
    atlas.create_managed_user(&group_id, "rest-user").await;
    for _ in 0..2 {
        let resp = atlas
            .post(
                &format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/rest-user/certs"),
                r#"{"monthsUntilExpiration": 1}"#,
            )
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        let start = resp
            .body
            .find(concat!("-----BEGIN ", "PRIVATE KEY-----"))
            .unwrap();
        pems.push(resp.body[start..].to_owned());
    }

    // API keys: one created over gRPC, one over REST; both listed; both used.
    let org_id = clients.first_org_id().await;
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id: org_id.clone(),
            desc: "grpc key".into(),
            roles: vec!["ORG_OWNER".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let grpc_key = Key {
        public: created.public_key,
        private: created.private_key,
    };
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"),
            r#"{"desc": "rest key", "roles": ["ORG_OWNER"]}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let rest_key = Key {
        public: resp.json()["publicKey"].as_str().unwrap().to_owned(),
        private: resp.json()["privateKey"].as_str().unwrap().to_owned(),
    };
    for key in [&grpc_key, &rest_key] {
        secrets.extend(key_secrets(key));
        clients
            .as_key(key)
            .api_keys()
            .list_api_keys(ListApiKeysRequest {
                org_id: org_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let resp = atlas::Atlas {
            key: key.clone(),
            ..atlas.clone()
        }
        .get(&format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"))
        .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    // A wrong secret: refused, and the attempt's secret is not logged either.
    let wrong = Key {
        public: bootstrap.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    secrets.extend(key_secrets(&wrong));
    let refused = clients
        .as_key(&wrong)
        .projects()
        .list_projects(dbcert::proto::v1::ListProjectsRequest::default())
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    for pem in &pems {
        secrets.extend(pem_secrets(pem));
    }

    // Stop, so everything is flushed, then scan.
    server.signal(Signal::SIGTERM);
    server.wait_exit().await;
    let output = server.output();
    let raw = String::from_utf8_lossy(&output);
    let text = strip_ansi(&raw);
    assert!(
        text.contains("TRACE") && text.contains("issued client certificate"),
        "the scan needs trace output"
    );
    assert!(!text.contains("PRIVATE KEY"), "`PRIVATE KEY` in the output");
    for secret in &secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "key material in the raw output"
        );
        if let Some(at) = text.find(secret.as_str()) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!(
                "key material in the output ({} bytes scanned), in the line:\n{}",
                output.len(),
                &text[line_start..line_end.min(line_start + 400)]
            );
        }
    }
}
