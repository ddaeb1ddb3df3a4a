//! Crash safety: the real binary is SIGKILLed while certificates are being issued concurrently,
//! restarted on the same data directory, and every certificate a client received is listed, the
//! project keeps its CA, issuing works again, and SQLite's integrity check says ok.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Clients, Key};
use dbcert::proto::v1::ListUserCertificatesRequest;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn spawn(data: &Path, key: &Key, grpc: SocketAddr, http: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dbcert"))
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--grpc-listen", &grpc.to_string()])
        .args(["--http-listen", &http.to_string()])
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        )
        .env_remove("DBCERT_MASTER_KEY")
        .env_remove("DBCERT_DATABASE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dbcert")
}

async fn connect_serving(grpc: SocketAddr, key: &Key) -> Clients {
    let endpoint = format!("http://{grpc}");
    for _ in 0..400 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
        {
            let status = HealthClient::new(channel.clone())
                .check(HealthCheckRequest::default())
                .await;
            if status.is_ok_and(|s| s.into_inner().status == 1) {
                return Clients::new(channel, key.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dbcert did not become SERVING");
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    panic!("dbcert did not exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_concurrent_issuance_loses_no_delivered_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let key = Key::random();
    let (grpc, http) = (free_addr(), free_addr());
    let mut child = spawn(&data, &key, grpc, http);
    let clients = connect_serving(grpc, &key).await;
    let group_id = clients.create_project("crash").await;
    clients.create_managed_user(&group_id, "victim").await;
    // The CA exists before the race, so the kill lands among leaf issues.
    let first = clients.issue(&group_id, "victim", Some(3)).await.unwrap();
    let ca_before = clients.project_ca_pem(&group_id).await;

    // Eight concurrent issues (RSA-4096 each); SIGKILL once two have been delivered.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (clients, group_id, tx) = (clients.clone(), group_id.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            if let Ok(cert) = clients.issue(&group_id, "victim", Some(6)).await {
                let _ = tx.send(cert.serial_number);
            }
        }));
    }
    drop(tx);
    let mut delivered = vec![first.serial_number];
    while delivered.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(serial)) => delivered.push(serial),
            Ok(None) => break,
            Err(_) => panic!("no certificate delivered within the bound"),
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = wait_exit(&mut child).await;
    assert!(!status.success(), "SIGKILL: {status:?}");
    for task in tasks {
        task.await.unwrap();
    }
    // Responses that made it out before the kill count as delivered too.
    while let Ok(serial) = rx.try_recv() {
        delivered.push(serial);
    }

    // Restart on the same directory: everything delivered is there.
    let mut child = spawn(&data, &key, grpc, http);
    let clients = connect_serving(grpc, &key).await;
    let listed = clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.clone(),
            username: "victim".into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: HashSet<i64> = listed.results.iter().map(|c| c.serial_number).collect();
    for serial in &delivered {
        assert!(
            listed.contains(serial),
            "delivered certificate {serial} missing after the crash; listed {listed:?}"
        );
    }
    assert_eq!(clients.project_ca_pem(&group_id).await, ca_before);
    clients.issue(&group_id, "victim", Some(1)).await.unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(wait_exit(&mut child).await.success());

    let url = format!("sqlite://{}?mode=ro", data.join("dbcert.sqlite3").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let check: (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check.0, "ok");
    let rows: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM certificates")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Delivered ones plus the one issued after the restart.
    assert!(rows.0 as usize > delivered.len(), "{rows:?}");
    pool.close().await;
}
