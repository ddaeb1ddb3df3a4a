//! The server's life: one CA per project under concurrent first issues, unique serials, a
//! restart that keeps the CA and the records, and the real binary's bootstrap and SIGTERM.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic fails the test

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Key, TestServer, openssl, write};
use dbcert::proto::v1::ListUserCertificatesRequest;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

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

    // The CA key is sealed: the database holds no PEM or DER private key in the clear.
    let db = std::fs::read(temp.path().join("dbcert.sqlite3")).unwrap();
    assert!(!db.windows(11).any(|w| w == b"PRIVATE KEY"));
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_bootstraps_a_key_and_exits_zero_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let (grpc_port, http_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbcert"))
        .args(["serve", "--data-dir"])
        .arg(data.path())
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .env_remove("DBCERT_BOOTSTRAP_API_KEY")
        .env_remove("DBCERT_MASTER_KEY")
        .env_remove("DBCERT_DATABASE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dbcert");

    // Wait (bounded) for SERVING.
    let endpoint = format!("http://127.0.0.1:{grpc_port}");
    let mut serving = false;
    for _ in 0..200 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok_and(|s| s.into_inner().status == 1) {
                serving = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(serving, "dbcert did not become SERVING");

    // The healthcheck subcommand agrees.
    let check = Command::new(env!("CARGO_BIN_EXE_dbcert"))
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
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let clients = common::Clients::new(
        channel,
        Key {
            public: public.into(),
            private: private.into(),
        },
    );
    clients.create_project("bootstrapped").await;

    // SIGTERM: exit 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("dbcert did not exit after SIGTERM");
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains("received SIGTERM") && log.contains("shut down cleanly"),
        "{log}"
    );
    assert!(!log.contains(private), "the private key must not be logged");
}
