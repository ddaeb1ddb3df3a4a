//! docs/operations.md's SQLite backup and restore, as written there: `sqlite3 … ".backup …"`
//! (SQLite's online backup API, run by the real sqlite3 program) on the live store of a running
//! server, then a second server started on a data directory holding only the copy and the
//! master key file. It must serve what the first held at the moment of the backup: the
//! project, its user, its certificate records and its CA, whose private key it can still
//! unseal (it issues a new certificate under the same CA). Needs sqlite3; skipped without it
//! (a failure under `DBCERT_REQUIRE_TOOLS=1`).

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use dbcert::proto::v1::{
    CreateUserCertificateRequest, GetProjectRequest, KeyType, ListUserCertificatesRequest,
};
use tonic::Code;

use crate::harness::binary::{Spawned, serve_command};
use crate::harness::{Clients, Key, openssl, skip_missing_tool, write};

/// A server on `data_dir` (SQLite, the generated master key), without the RSA key pool.
async fn server(data_dir: &Path, key: &Key) -> (Spawned, Clients) {
    let mut command = serve_command(data_dir);
    command
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        )
        .env("DBCERT_KEY_POOL_WORKERS", "0");
    let process = Spawned::start(command).await;
    process.wait_serving().await;
    let clients = Clients::new(process.channel().await, key.clone());
    (process, clients)
}

/// Issues an ECDSA P-256 certificate; returns its serial number.
async fn issue(clients: &Clients, group_id: &str) -> i64 {
    clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group_id.into(),
            username: "app-user".into(),
            months_until_expiration: Some(3),
            key_type: KeyType::EcdsaP256 as i32,
            csr_pem: None,
        })
        .await
        .unwrap()
        .into_inner()
        .serial_number
}

async fn serials(clients: &Clients, group_id: &str) -> Vec<i64> {
    let mut serials: Vec<i64> = clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.into(),
            username: "app-user".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|c| c.serial_number)
        .collect();
    serials.sort_unstable();
    serials
}

/// Runs a shell command line (the documentation's, with paths filled in) in `dir`.
fn sh(dir: &Path, line: &str) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{line}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_sqlite_backup_restores_into_a_working_server() {
    if Command::new("sqlite3").arg("-version").output().is_err()
        && skip_missing_tool("sqlite3", "not on PATH")
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let live = work.path().join("dbcert-data");
    let key = Key::random();
    let (first, clients) = server(&live, &key).await;
    let group_id = clients.create_project("backed-up").await;
    clients.create_managed_user(&group_id, "app-user").await;
    let mut before = vec![
        issue(&clients, &group_id).await,
        issue(&clients, &group_id).await,
    ];
    before.sort_unstable();
    let ca_pem = clients.project_ca_pem(&group_id).await;

    // docs/operations.md, "SQLite: online backup", while the server runs.
    std::fs::create_dir(work.path().join("backup")).unwrap();
    sh(
        work.path(),
        r#"(umask 077 && sqlite3 dbcert-data/dbcert.sqlite3 ".backup 'backup/dbcert.sqlite3'")"#,
    );
    sh(
        work.path(),
        "install -m 0600 dbcert-data/master-key backup/master-key",
    );
    let check = sh(
        work.path(),
        "sqlite3 backup/dbcert.sqlite3 'PRAGMA integrity_check'",
    );
    assert_eq!(check.trim(), "ok");
    let mode = std::fs::metadata(work.path().join("backup/dbcert.sqlite3"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the backup is private to its owner");

    // Written after the backup: not in it.
    let later = clients.create_project("after-the-backup").await;
    issue(&clients, &group_id).await;
    drop(first);

    // docs/operations.md, "SQLite: restore", into a fresh data directory.
    sh(
        work.path(),
        "mkdir -m 0700 restored && install -m 0600 backup/dbcert.sqlite3 restored/dbcert.sqlite3 \
         && install -m 0600 backup/master-key restored/master-key",
    );
    let (second, restored) = server(&work.path().join("restored"), &key).await;
    assert_eq!(serials(&restored, &group_id).await, before);
    assert_eq!(restored.project_ca_pem(&group_id).await, ca_pem);
    let missing = restored
        .projects()
        .get_project(GetProjectRequest {
            group_id: later.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    // The CA's sealed key opens with the backed-up master key: a new certificate chains to
    // the same CA (checked by openssl).
    let issued = restored
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group_id.clone(),
            username: "app-user".into(),
            months_until_expiration: Some(3),
            key_type: KeyType::EcdsaP256 as i32,
            csr_pem: None,
        })
        .await
        .unwrap_or_else(|status| panic!("{status:?}\n{}", second.log()))
        .into_inner();
    let ca = write(work.path(), "ca.pem", &ca_pem);
    let leaf = write(work.path(), "leaf.pem", &issued.certificate_pem);
    let (ok, out) = openssl(&["verify", "-CAfile", &ca, &leaf]);
    assert!(ok, "{out}");
    assert_eq!(serials(&restored, &group_id).await.len(), before.len() + 1);
}
