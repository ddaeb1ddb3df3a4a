//! Master key rotation without downtime: `dbcert rotate-master-key` re-seals every project CA
//! key and the check value while a server holding both keys keeps issuing; afterwards a server
//! with only the new key opens everything and the old key alone opens nothing. Runs on SQLite
//! and, with `DBCERT_TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::Command;

use dbcert::config::{Config, MasterKeySource};
use dbcert::domain::MasterKey;

use crate::harness::atlas;
use crate::harness::pg::TestDatabase;
use crate::harness::{Key, TestServer, openssl, write};

/// Writes a fresh master key file, readable by its owner only (the server refuses others).
pub(crate) fn key_file(dir: &Path, name: &str) -> PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap()
        .write_all(MasterKey::generate().to_base64().as_bytes())
        .unwrap();
    path
}

/// Runs `dbcert rotate-master-key` and returns (success, stdout).
pub(crate) fn rotate(database_url: &str, old: &Path, new: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dbcert"))
        .args(["rotate-master-key", "--database", database_url])
        .arg("--old-master-key-file")
        .arg(old)
        .arg("--new-master-key-file")
        .arg(new)
        .env_remove("DBCERT_OLD_MASTER_KEY_FILES")
        .env_remove("DBCERT_NEW_MASTER_KEY_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for secret in [old, new] {
        let key = std::fs::read_to_string(secret).unwrap();
        assert!(
            !stdout.contains(key.trim()) && !stderr.contains(key.trim()),
            "a master key was printed"
        );
    }
    (output.status.success(), format!("{stdout}{stderr}"))
}

pub(crate) fn keyring(
    database_url: &str,
    primary: &Path,
    others: &[&Path],
) -> impl FnOnce(&mut Config) + use<> {
    let (url, primary) = (database_url.to_owned(), primary.to_path_buf());
    let others: Vec<PathBuf> = others.iter().map(|p| p.to_path_buf()).collect();
    move |config: &mut Config| {
        config.database_url = url;
        config.master_key = MasterKeySource::File(primary);
        config.additional_master_keys = others;
    }
}

#[track_caller]
fn assert_chains(ca_pem: &str, cert_pem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", ca_pem);
    let cert = write(dir.path(), "cert.pem", cert_pem);
    let (ok, out) = openssl(&["verify", "-purpose", "sslclient", "-CAfile", &ca, &cert]);
    assert!(ok, "{out}");
}

async fn rotation_keeps_serving(database_url: Option<String>) {
    let temp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let url = database_url.unwrap_or_else(|| dbcert::storage::SqliteStore::url_in(temp.path()));
    let (old, new) = (key_file(keys.path(), "old"), key_file(keys.path(), "new"));
    let key = Key::random();

    // Before: everything sealed under the old key (projects a and b have CAs).
    let server = TestServer::start_in(temp.path(), key.clone(), keyring(&url, &old, &[])).await;
    let clients = server.clients().await;
    let (a, b) = (
        clients.create_project("a").await,
        clients.create_project("b").await,
    );
    for project in [&a, &b] {
        clients.create_managed_user(project, "u").await;
        clients.issue(project, "u", Some(1)).await.unwrap();
    }
    let ca_a = clients.project_ca_pem(&a).await;
    let ca_b = clients.project_ca_pem(&b).await;
    server.stop().await;

    // Rolling restarts: the new key primary, the old one additional. Project c's new CA is
    // sealed under the new key; a's is loaded under the old one.
    let server = TestServer::start_in(temp.path(), key.clone(), keyring(&url, &new, &[&old])).await;
    let clients = server.clients().await;
    clients.issue(&a, "u", Some(1)).await.unwrap();
    let c = clients.create_project("c").await;
    clients.create_managed_user(&c, "u").await;
    clients.issue(&c, "u", Some(1)).await.unwrap();
    let ca_c = clients.project_ca_pem(&c).await;

    // The rotation, with the server running.
    let (ok, out) = rotate(&url, &old, &new);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "resealed=2 already_current=1 unopenable=0 changed_concurrently=0 check_resealed=true"
        ),
        "{out}"
    );
    // It keeps issuing: a from its cache, b loading its freshly re-sealed key.
    let issued_a = clients.issue(&a, "u", Some(1)).await.unwrap();
    let issued_b = clients.issue(&b, "u", Some(1)).await.unwrap();
    assert_chains(&ca_a, &issued_a.certificate_pem);
    assert_chains(&ca_b, &issued_b.certificate_pem);

    // Idempotent: a second pass finds nothing to do.
    let (ok, out) = rotate(&url, &old, &new);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "resealed=0 already_current=3 unopenable=0 changed_concurrently=0 check_resealed=false"
        ),
        "{out}"
    );
    server.stop().await;

    // The old key dropped: the new key alone opens every CA.
    let server = TestServer::start_in(temp.path(), key.clone(), keyring(&url, &new, &[])).await;
    let clients = server.clients().await;
    for (project, ca) in [(&a, &ca_a), (&b, &ca_b), (&c, &ca_c)] {
        let issued = clients.issue(project, "u", Some(1)).await.unwrap();
        assert_eq!(&clients.project_ca_pem(project).await, ca);
        assert_chains(ca, &issued.certificate_pem);
    }
    server.stop().await;

    // The old key alone no longer opens the store.
    let mut config = Config::for_test(temp.path().to_path_buf());
    keyring(&url, &old, &[])(&mut config);
    let listeners = dbcert::app::bind(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let error = dbcert::app::serve(config, listeners, std::future::pending())
        .await
        .expect_err("the old key alone must be refused");
    assert!(
        format!("{error:#}").contains("master key does not match"),
        "{error:#}"
    );
    // Nor does a rotation from a key that never sealed anything here.
    let stranger = key_file(keys.path(), "stranger");
    let (ok, out) = rotate(&url, &stranger, &key_file(keys.path(), "newer"));
    assert!(!ok && out.contains("master key does not match"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_on_sqlite_keeps_serving_and_retires_the_old_key() {
    rotation_keeps_serving(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_on_postgres_keeps_serving_and_retires_the_old_key() {
    let Some(db) = TestDatabase::create("rotation_on_postgres").await else {
        return;
    };
    rotation_keeps_serving(Some(db.url.clone())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_nonces_of_either_key_are_accepted_during_a_rotation() {
    let temp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let url = dbcert::storage::SqliteStore::url_in(temp.path());
    let (old, new) = (key_file(keys.path(), "old"), key_file(keys.path(), "new"));
    let server =
        TestServer::start_in(temp.path(), Key::random(), keyring(&url, &new, &[&old])).await;
    let atlas = atlas::Atlas::new(&server);
    let target = "/api/atlas/v1.0/orgs";
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stranger = MasterKey::generate();
    for (key, expected) in [
        (dbcert::app::read_master_key_file(&old).unwrap(), 200),
        (dbcert::app::read_master_key_file(&new).unwrap(), 200),
        (stranger, 401),
    ] {
        let secret = key.derive_secret(dbcert::domain::DIGEST_NONCE_LABEL);
        let nonce = dbcert::auth::digest::new_nonce(&secret, now);
        let auth = atlas.authorization("GET", target, &nonce, 1);
        let resp = atlas
            .raw("GET", target, None, &[("authorization", &auth)])
            .await;
        assert_eq!(resp.status, expected, "{}", resp.body);
    }
    server.stop().await;
}
