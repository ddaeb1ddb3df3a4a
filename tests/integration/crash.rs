//! Crash safety: the real binary is SIGKILLed while certificates are being issued concurrently,
//! restarted on the same data directory, and every certificate a client received is listed, the
//! project keeps its CA, issuing works again, and SQLite's integrity check says ok.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use dbcert::proto::v1::ListUserCertificatesRequest;
use nix::sys::signal::Signal;

use crate::harness::Key;
use crate::harness::binary::{Spawned, serve_command};

/// `dbcert serve` on `data` with `key` as its bootstrap key.
async fn spawn(data: &Path, key: &Key) -> Spawned {
    let mut command = serve_command(data);
    command.env(
        "DBCERT_BOOTSTRAP_API_KEY",
        format!("{}:{}", key.public, key.private),
    );
    Spawned::start(command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_concurrent_issuance_loses_no_delivered_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let key = Key::random();
    let mut child = spawn(&data, &key).await;
    let clients = child.clients(&key).await;
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
    child.signal(Signal::SIGKILL);
    let status = child.wait_exit().await;
    assert!(!status.success(), "SIGKILL: {status:?}");
    for task in tasks {
        task.await.unwrap();
    }
    // Responses that made it out before the kill count as delivered too.
    while let Ok(serial) = rx.try_recv() {
        delivered.push(serial);
    }

    // Restart on the same directory: everything delivered is there.
    let mut child = spawn(&data, &key).await;
    let clients = child.clients(&key).await;
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

    child.signal(Signal::SIGTERM);
    assert!(child.wait_exit().await.success());

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
