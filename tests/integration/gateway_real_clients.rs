//! Real Atlas clients against the real server: the source page's curl command verbatim (host
//! changed), the README quick start, and a Python `requests` script with `HTTPDigestAuth`.
//!
//! A missing tool (curl; a Python with `requests`, named by `DBCERT_TEST_PYTHON` or found as
//! `python3`) skips the test with a "<test>: skipped: …" line on stderr, unless
//! `DBCERT_REQUIRE_TOOLS=1`.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use crate::harness::atlas::Atlas;
use crate::harness::{self, TestServer, skip_missing_tool};

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a shell command line as a user would type it; returns stdout.
fn shell(line: &str) -> String {
    let output = Command::new("sh").arg("-c").arg(line).output().expect("sh");
    assert!(
        output.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test]
async fn the_source_pages_curl_command() {
    if !curl_available() && skip_missing_tool("curl", "curl --version failed") {
        return;
    }
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("curl").await;
    atlas.create_managed_user(&group, "curl.user").await;
    let (public, private) = (&server.key.public, &server.key.private);
    let host = format!("http://{}", server.http_addr);

    // Verbatim from the source page, with only the host (and the placeholders) replaced.
    let pem = tokio::task::spawn_blocking({
        let line = format!(
            r#"curl --request POST \
--user "{public}:{private}" \
--header "Content-Type: application/json" \
--digest "{host}/api/atlas/v1.0/groups/{group}/databaseUsers/curl.user/certs?pretty=true" \
--data '{{"monthsUntilExpiration":12}}'"#
        );
        move || shell(&line)
    })
    .await
    .unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(pem.ends_with(concat!("-----END ", "PRIVATE KEY-----\n")));

    // Independent checks with openssl: subject, chain to the project CA, key matches.
    let dir = tempfile::tempdir().unwrap();
    let pem_path = harness::write(dir.path(), "user.pem", &pem);
    let ca_path = harness::write(
        dir.path(),
        "ca.pem",
        &server.clients().await.project_ca_pem(&group).await,
    );
    let (ok, text) = harness::openssl(&["x509", "-in", &pem_path, "-noout", "-subject"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("CN = curl.user") || text.contains("CN=curl.user"),
        "{text}"
    );
    let (ok, text) = harness::openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &ca_path,
        &pem_path,
    ]);
    assert!(ok, "{text}");
    let (_, cert_key) = harness::openssl(&["x509", "-in", &pem_path, "-noout", "-pubkey"]);
    let (_, private_key) = harness::openssl(&["pkey", "-in", &pem_path, "-pubout"]);
    assert_eq!(cert_key, private_key);
}

/// The README's quick start, as typed: read the bootstrap key, then create a project, a
/// MANAGED user and its certificate (`$GROUP_ID` is the project's "id" from the first answer).
const README_KEY_LINE: &str = "IFS=: read -r PUB PRIV < dbcert-data/bootstrap-api-key";
const README_QUICK_START: [&str; 3] = [
    r#"curl --user "$PUB:$PRIV" --digest \
  --header "Accept: application/json" \
  --header "Content-Type: application/json" \
  --request POST "http://127.0.0.1:8080/api/atlas/v1.0/groups?pretty=true" \
  --data '{"name": "my-project"}'"#,
    r#"curl --user "$PUB:$PRIV" --digest \
  --header "Accept: application/json" \
  --header "Content-Type: application/json" \
  --request POST "http://127.0.0.1:8080/api/atlas/v1.0/groups/$GROUP_ID/databaseUsers?pretty=true" \
  --data '{"databaseName": "$external", "username": "app-user", "x509Type": "MANAGED",
           "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]}'"#,
    r#"curl --request POST \
  --user "$PUB:$PRIV" \
  --header "Content-Type: application/json" \
  --digest "http://127.0.0.1:8080/api/atlas/v1.0/groups/$GROUP_ID/databaseUsers/app-user/certs?pretty=true" \
  --data '{"monthsUntilExpiration":12}' > app-user.pem"#,
];

#[tokio::test]
async fn the_readme_quick_start() {
    if !curl_available() && skip_missing_tool("curl", "curl --version failed") {
        return;
    }
    // The commands are the README's, character for character.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for command in std::iter::once(README_KEY_LINE).chain(README_QUICK_START) {
        assert!(
            readme.contains(command),
            "README.md no longer contains:\n{command}"
        );
    }
    let server = TestServer::start().await;
    let host = format!("http://{}", server.http_addr);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dbcert-data")).unwrap();
    let key_line = format!("{}:{}\n", server.key.public, server.key.private);
    std::fs::write(dir.path().join("dbcert-data/bootstrap-api-key"), key_line).unwrap();
    let run = |command: &str, group_id: &str| {
        let line = format!(
            "cd '{}' && {README_KEY_LINE} && GROUP_ID='{group_id}' && {}",
            dir.path().display(),
            command.replace("http://127.0.0.1:8080", &host)
        );
        tokio::task::spawn_blocking(move || shell(&line))
    };

    let project = run(README_QUICK_START[0], "").await.unwrap();
    assert!(project.contains("\"name\" : \"my-project\""), "{project}");
    let project: serde_json::Value = serde_json::from_str(&project).expect("project JSON");
    let group = project["id"].as_str().unwrap().to_owned();
    let user = run(README_QUICK_START[1], &group).await.unwrap();
    assert!(user.contains("\"x509Type\" : \"MANAGED\""), "{user}");
    run(README_QUICK_START[2], &group).await.unwrap();
    let pem = std::fs::read_to_string(dir.path().join("app-user.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(pem.ends_with(concat!("-----END ", "PRIVATE KEY-----\n")));
}

#[tokio::test]
async fn python_requests_with_http_digest_auth() {
    let python = match std::env::var("DBCERT_TEST_PYTHON") {
        Ok(python) => python,
        Err(_) => {
            let found = Command::new("python3")
                .args(["-c", "import requests"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found
                && skip_missing_tool(
                    "python requests",
                    "DBCERT_TEST_PYTHON unset and python3 lacks requests",
                )
            {
                return;
            }
            "python3".to_owned()
        }
    };
    let server = TestServer::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/atlas_requests.py"
    );
    let args = [
        script.to_owned(),
        format!("http://{}", server.http_addr),
        server.key.public.clone(),
        server.key.private.clone(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
