//! `dbcert dbusers certs revoke|revoke-all`: the real binary against a real server; the
//! revocations are checked through the status listing (gRPC) and the documented exit codes.

use dbcert::proto::v1::{CertificateStatus, ListUserCertificateStatusesRequest, RevocationReason};

use super::{Client, ecdsa_ca};
use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn revokes_one_certificate_and_then_all_of_a_user() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    let clients = server.clients().await;
    let group = clients.create_project("cli-revoke").await;
    ecdsa_ca(&server, &group).await;
    clients.create_managed_user(&group, "jack").await;
    let j1 = clients.issue(&group, "jack", None).await.unwrap();
    let j2 = clients.issue(&group, "jack", None).await.unwrap();
    let j3 = clients.issue(&group, "jack", None).await.unwrap();
    let statuses = || async {
        clients
            .certificates()
            .list_user_certificate_statuses(ListUserCertificateStatusesRequest {
                group_id: group.clone(),
                username: "jack".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .results
            .iter()
            .map(|c| (c.serial_number, c.status, c.reason))
            .collect::<std::collections::BTreeSet<_>>()
    };

    let j1_serial = j1.serial_number.to_string();
    let run = cli
        .run(&[
            "dbusers",
            "certs",
            "revoke",
            "--projectId",
            &group,
            "--username",
            "jack",
            "--serialNumber",
            &j1_serial,
            "--reason",
            "keyCompromise",
        ])
        .await;
    run.expect(0);
    assert!(
        run.stdout.contains(&format!(
            "Certificate {j1_serial} of CN=jack revoked (keyCompromise)"
        )),
        "{}",
        run.stdout
    );

    // Again: the server's refusal, exit 1 (a conflict is not a usage error), nothing changed.
    let before = statuses().await;
    let run = cli
        .run(&[
            "dbusers",
            "certs",
            "revoke",
            "--projectId",
            &group,
            "--username",
            "jack",
            "--serialNumber",
            &j1_serial,
        ])
        .await;
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.stderr.contains("CERTIFICATE_ALREADY_REVOKED"),
        "{}",
        run.stderr
    );
    // An unknown reason is refused by the client before any call.
    let run = cli
        .run(&[
            "dbusers",
            "certs",
            "revoke",
            "--projectId",
            &group,
            "--username",
            "jack",
            "--serialNumber",
            &j1_serial,
            "--reason",
            "certificateHold",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(statuses().await, before);

    let run = cli
        .run(&[
            "dbusers",
            "certs",
            "revoke-all",
            "--projectId",
            &group,
            "--username",
            "jack",
            "--reason",
            "superseded",
            "--output",
            "json",
        ])
        .await;
    run.expect(0);
    let mut revoked: Vec<i64> = run.json()["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["_id"].as_i64().unwrap())
        .collect();
    revoked.sort_unstable();
    let mut expected = vec![j2.serial_number, j3.serial_number];
    expected.sort_unstable();
    assert_eq!(
        revoked, expected,
        "by notBefore, then serial: the same second here"
    );
    let (revoked, superseded, key) = (
        CertificateStatus::Revoked as i32,
        RevocationReason::Superseded as i32,
        RevocationReason::KeyCompromise as i32,
    );
    assert_eq!(
        statuses().await,
        [
            (j1.serial_number, revoked, key),
            (j2.serial_number, revoked, superseded),
            (j3.serial_number, revoked, superseded),
        ]
        .into()
    );
    let run = cli
        .run(&[
            "dbusers",
            "certs",
            "revoke-all",
            "--projectId",
            &group,
            "--username",
            "jack",
        ])
        .await;
    run.expect(0);
    assert!(
        run.stdout.contains("0 certificate(s) of jack revoked"),
        "{}",
        run.stdout
    );
}
