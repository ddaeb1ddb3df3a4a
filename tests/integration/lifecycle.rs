//! The server's life: one CA per project under concurrent first issues, unique serials, a
//! restart that keeps the CA and the records, and the real binary's bootstrap and SIGTERM.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic fails the test

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use dbcert::proto::v1::ListUserCertificatesRequest;
use nix::sys::signal::Signal;

use crate::harness::binary::{self, Spawned, serve_command};
use crate::harness::{Key, TestServer, openssl, write};

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_issues_share_one_ca_and_serials_are_unique() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let group_id = clients.create_project("race").await;
    clients.create_managed_user(&group_id, "racer").await;

    // Six first issues at once on a project that has no CA yet, then more to check serials.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (clients, group_id) = (clients.clone(), group_id.clone());
        tasks.push(tokio::spawn(async move {
            clients.issue(&group_id, "racer", Some(1)).await
        }));
    }
    let mut issued = Vec::new();
    for task in tasks {
        issued.push(task.await.unwrap().expect("issue"));
    }
    let mut tasks = Vec::new();
    for i in 0..18 {
        let (clients, group_id) = (clients.clone(), group_id.clone());
        tasks.push(tokio::spawn(async move {
            clients.issue(&group_id, "racer", Some(1 + i % 24)).await
        }));
    }
    for task in tasks {
        issued.push(task.await.unwrap().expect("issue"));
    }

    let ca_pem = clients.project_ca_pem(&group_id).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &ca_pem);
    let mut serials = HashSet::new();
    for (i, cert) in issued.iter().enumerate() {
        assert!(
            serials.insert(cert.serial_number),
            "duplicate serial {}",
            cert.serial_number
        );
        let path = write(dir.path(), &format!("c{i}.pem"), &cert.certificate_pem);
        let (ok, out) = openssl(&["verify", "-purpose", "sslclient", "-CAfile", &ca, &path]);
        assert!(
            ok,
            "certificate {i} does not chain to the one project CA: {out}"
        );
    }
    // Every issued certificate is recorded exactly once.
    let listed = clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.clone(),
            username: "racer".into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: HashSet<i64> = listed.results.iter().map(|c| c.serial_number).collect();
    assert_eq!(listed, serials);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_the_ca_and_the_records_and_the_same_ca_signs() {
    let temp = tempfile::tempdir().unwrap();
    let key = Key::random();
    let server = TestServer::start_in(temp.path(), key.clone(), |_| {}).await;
    let clients = server.clients().await;
    let group_id = clients.create_project("durable").await;
    clients.create_managed_user(&group_id, "keeper").await;
    let first = clients.issue(&group_id, "keeper", Some(6)).await.unwrap();
    let ca_before = clients.project_ca_pem(&group_id).await;
    server.stop().await;

    let server = TestServer::start_in(temp.path(), key, |_| {}).await;
    let clients = server.clients().await;
    let ca_after = clients.project_ca_pem(&group_id).await;
    assert_eq!(ca_before, ca_after, "the project keeps its CA");
    let listed = clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.clone(),
            username: "keeper".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.results.len(), 1);
    assert_eq!(listed.results[0].serial_number, first.serial_number);
    let second = clients.issue(&group_id, "keeper", Some(6)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &ca_after);
    for (name, cert) in [
        ("first.pem", &first.certificate_pem),
        ("second.pem", &second.certificate_pem),
    ] {
        let path = write(dir.path(), name, cert);
        let (ok, out) = openssl(&["verify", "-purpose", "sslclient", "-CAfile", &ca, &path]);
        assert!(ok, "{name}: {out}");
    }
    server.stop().await;

    // The CA key is sealed: no file of the data directory (the database, its journal) holds it
    // in the clear, as DER, hex or base64 (PEM), nor any PEM private key. The key's bytes are
    // known here by opening the stored value with the master key.
    let ca_key = unsealed_ca_key(temp.path(), &group_id).await;
    let clear = clear_forms(&ca_key);
    for entry in std::fs::read_dir(temp.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, b"PRIVATE KEY"),
            "{} holds a PEM private key",
            path.display()
        );
        for form in &clear {
            assert!(
                !contains(&bytes, form),
                "{} holds the CA key in the clear",
                path.display()
            );
        }
    }
    // A different master key cannot open this store.
    let other_key = dbcert::domain::MasterKey::generate();
    let result = {
        let mut config = dbcert::config::Config::for_test(temp.path().to_path_buf());
        config.master_key = dbcert::config::MasterKeySource::Inline(other_key.to_base64());
        let listeners = dbcert::app::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        dbcert::app::serve(config, listeners, std::future::pending()).await
    };
    let error = format!(
        "{:#}",
        result.expect_err("a wrong master key must be refused")
    );
    assert!(error.contains("master key does not match"), "{error}");
}

/// The project CA's private key (PKCS#8 DER), read from the stopped server's SQLite file and
/// opened with the master key of its data directory; checked against the CA certificate.
async fn unsealed_ca_key(data_dir: &std::path::Path, group_id: &str) -> Vec<u8> {
    use sqlx::Connection as _;
    let master = std::fs::read_to_string(data_dir.join("master-key")).unwrap();
    let master = dbcert::domain::MasterKey::from_base64(master.trim()).unwrap();
    let url = format!("sqlite://{}", data_dir.join("dbcert.sqlite3").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (cert_der, sealed): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT cert_der, sealed_key FROM project_ca_generations \
             WHERE project_id = ? AND generation = 1",
    )
    .bind(group_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    let key = master
        .open(&format!("dbcert/v1/project-ca-key/{group_id}"), &sealed)
        .expect("the stored CA key opens with the master key");
    let der = key.secret_der().to_vec();
    let pair = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    assert_eq!(
        rcgen::PublicKeyData::der_bytes(&pair),
        &*cert.public_key().subject_public_key.data,
        "the sealed key is the CA's"
    );
    der
}

/// How a PKCS#8 key would look in a file in the clear: the DER and the key it wraps (PKCS#1
/// or SEC1), each raw, in lowercase hex, and as every full line of its base64 (a PEM body).
fn clear_forms(pkcs8: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    use x509_parser::der_parser::parse_der;
    let (_, info) = parse_der(pkcs8).unwrap();
    let fields = info.as_sequence().unwrap();
    let inner = fields[2].as_slice().unwrap().to_vec();
    let mut forms = Vec::new();
    for der in [pkcs8.to_vec(), inner] {
        let base64 = base64::engine::general_purpose::STANDARD.encode(&der);
        for line in base64.as_bytes().chunks_exact(64) {
            forms.push(line.to_vec());
        }
        forms.push(hex::encode(&der).into_bytes());
        forms.push(der);
    }
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_bootstraps_a_key_and_exits_zero_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    // No bootstrap key and no master key given: both are generated into the data directory.
    let mut child = Spawned::start(serve_command(data.path())).await;
    child.wait_serving().await;
    let grpc_port = child.grpc_addr.port();

    // The healthcheck subcommand agrees.
    let check = Command::new(binary::BIN)
        .args([
            "healthcheck",
            "--grpc-listen",
            &format!("0.0.0.0:{grpc_port}"),
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // A random ORG_OWNER key was written with mode 0600, and it works.
    let key_file = data.path().join("bootstrap-api-key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(data.path().join("master-key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let line = std::fs::read_to_string(&key_file).unwrap();
    let (public, private) = line.trim().split_once(':').unwrap();
    assert!(dbcert::domain::is_public_key(public) && dbcert::domain::is_private_key(private));
    let clients = child
        .clients(&Key {
            public: public.into(),
            private: private.into(),
        })
        .await;
    clients.create_project("bootstrapped").await;

    // SIGTERM: exit 0.
    child.signal(Signal::SIGTERM);
    let status = child.wait_exit().await;
    let log = child.log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains("received SIGTERM") && log.contains("shut down cleanly"),
        "{log}"
    );
    assert!(!log.contains(private), "the private key must not be logged");
}
