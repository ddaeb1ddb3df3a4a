//! Input hygiene over REST (issue 13 item 10): usernames with invisible characters, MANAGED
//! usernames longer than a certificate's common name may be, and bodies with a repeated key
//! are refused with Atlas errors, and nothing is created; the real binary warns when it
//! listens in plaintext on a non-loopback address.

use std::process::Command;

use serde_json::json;

use crate::harness::TestServer;
use crate::harness::atlas::Atlas;
use crate::harness::binary::{self, Spawned};

fn managed_user(group: &str, username: &str) -> String {
    json!({
        "databaseName": "$external",
        "groupId": group,
        "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
        "username": username,
        "x509Type": "MANAGED",
    })
    .to_string()
}

async fn user_count(atlas: &Atlas, group: &str) -> u64 {
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers?includeCount=true"
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["totalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn invisible_characters_and_blank_usernames_are_refused() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("sec-input-chars").await;
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers");
    for username in ["ad\u{202E}nimda", "a\u{200B}b", "\u{FEFF}alice", " "] {
        let body = atlas
            .post(&path, &managed_user(&group, username))
            .await
            .assert_error(400, "INVALID_ATTRIBUTE");
        assert_eq!(body["parameters"], json!(["username"]), "{username:?}");
    }
    assert_eq!(user_count(&atlas, &group).await, 0);
}

#[tokio::test]
async fn managed_usernames_are_at_most_64_characters() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("sec-input-cn").await;
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers");
    let body = atlas
        .post(&path, &managed_user(&group, &"a".repeat(65)))
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    assert_eq!(body["parameters"], json!(["username"]));
    assert!(body["detail"].as_str().unwrap().contains("64"), "{body}");
    // 64 characters, counted as characters (not bytes), still fit a CN.
    atlas.create_managed_user(&group, &"é".repeat(64)).await;
    assert_eq!(user_count(&atlas, &group).await, 1);
    // A CUSTOMER user keeps the general bound, but cannot be made MANAGED with a longer name.
    let long = "c".repeat(65);
    let customer = managed_user(&group, &long).replace("MANAGED", "CUSTOMER");
    let resp = atlas.post(&path, &customer).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let user_path = format!("{path}/%24external/{long}");
    atlas
        .patch(&user_path, r#"{"x509Type":"MANAGED"}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    assert_eq!(atlas.get(&user_path).await.json()["x509Type"], "CUSTOMER");
}

#[tokio::test]
async fn repeated_keys_are_refused_at_any_depth() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("sec-input-dup").await;
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers");
    let top = format!(
        r#"{{"databaseName":"$external","groupId":"{group}","roles":[{{"databaseName":"admin","roleName":"readAnyDatabase"}}],"username":"alice","x509Type":"MANAGED","username":"admin"}}"#
    );
    let body = atlas
        .post(&path, &top)
        .await
        .assert_error(400, "INVALID_JSON");
    assert_eq!(body["parameters"], json!(["username"]));
    assert!(
        body["detail"].as_str().unwrap().contains("username"),
        "{body}"
    );
    let nested = format!(
        r#"{{"databaseName":"$external","groupId":"{group}","roles":[{{"databaseName":"admin","roleName":"read","roleName":"readAnyDatabase"}}],"username":"bob","x509Type":"MANAGED"}}"#
    );
    let body = atlas
        .post(&path, &nested)
        .await
        .assert_error(400, "INVALID_JSON");
    assert_eq!(body["parameters"], json!(["roleName"]));
    // Projects too: every body goes through the same reader.
    atlas
        .post("/api/atlas/v1.0/groups", r#"{"name":"a","name":"b"}"#)
        .await
        .assert_error(400, "INVALID_JSON");
    assert_eq!(user_count(&atlas, &group).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plaintext_listener_off_loopback_is_warned_about() {
    let data = tempfile::tempdir().unwrap();
    crate::harness::private_dir(data.path());
    let mut command = Command::new(binary::BIN);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--grpc-listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0"])
        .env_clear()
        .env("RUST_LOG", "info");
    let child = Spawned::start(command).await;
    child.wait_serving().await;
    let log = child.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("listening in plaintext"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("HTTP")
            && warnings[0].contains("--tls-cert-file")
            && warnings[0].contains("--tls-key-file"),
        "{log}"
    );
}
