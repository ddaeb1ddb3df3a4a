//! Revocation (issue 11 item 1), on the real server over gRPC and REST, on SQLite and on
//! PostgreSQL: revoking one certificate and all of a user's, each refusal (already revoked,
//! unknown serial, another user's, another project's, bad serial or reason, a read-only key)
//! with its own error and nothing changed, revoked certificates leaving the Atlas list and the
//! per-user limit, deleting a user revoking its certificates so a re-created user does not
//! revive them, the status listing, the audit events, two replicas on one PostgreSQL database,
//! and restarts. The stored state is also read straight from the database with SQL, not only
//! through the service that wrote it.

mod rest;

use std::time::Duration;

use dbcert::proto::v1::{
    AssignApiKeyToProjectRequest, CertificateStatus, CreateApiKeyRequest,
    DeleteDatabaseUserRequest, ListAuditEventsRequest, ListUserCertificateStatusesRequest,
    ListUserCertificatesRequest, RevocationReason, RevokeUserCertificateRequest,
    RevokeUserCertificatesRequest, UserCertificateStatus,
};
use serde_json::Value;
use tonic::Code;

use crate::harness::atlas::Atlas;
use crate::harness::pg::TestDatabase;
use crate::harness::{Clients, Key, TestServer, assert_error};

const DBCERT: &str = "/api/dbcert/v1";

// === helpers ===

async fn project_key(clients: &Clients, group_id: &str, role: &str) -> Key {
    let org_id = clients.first_org_id().await;
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id,
            desc: format!("{role} key"),
            roles: vec!["ORG_MEMBER".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    clients
        .api_keys()
        .assign_api_key_to_project(AssignApiKeyToProjectRequest {
            group_id: group_id.into(),
            api_key_id: created.id.clone(),
            roles: vec![role.into()],
            desc: None,
        })
        .await
        .unwrap();
    Key {
        public: created.public_key,
        private: created.private_key,
    }
}

async fn revoke(
    clients: &Clients,
    group_id: &str,
    username: &str,
    serial: i64,
    reason: RevocationReason,
) -> Result<UserCertificateStatus, tonic::Status> {
    clients
        .certificates()
        .revoke_user_certificate(RevokeUserCertificateRequest {
            group_id: group_id.into(),
            username: username.into(),
            serial_number: serial,
            reason: reason as i32,
        })
        .await
        .map(|r| r.into_inner().certificate.unwrap())
}

async fn revoke_all(clients: &Clients, group_id: &str, username: &str) -> Vec<i64> {
    clients
        .certificates()
        .revoke_user_certificates(RevokeUserCertificatesRequest {
            group_id: group_id.into(),
            username: username.into(),
            reason: RevocationReason::Superseded as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .revoked
        .iter()
        .map(|c| c.serial_number)
        .collect()
}

async fn statuses(clients: &Clients, group_id: &str, username: &str) -> Vec<UserCertificateStatus> {
    clients
        .certificates()
        .list_user_certificate_statuses(ListUserCertificateStatusesRequest {
            group_id: group_id.into(),
            username: username.into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
}

/// The serials of the Atlas list (unexpired, not revoked).
async fn atlas_list(clients: &Clients, group_id: &str, username: &str) -> Vec<i64> {
    clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.into(),
            username: username.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .iter()
        .map(|c| c.serial_number)
        .collect()
}

/// The serials of the project's MONGODB_USER_X509_CERT_REVOKED events.
async fn revoked_events(clients: &Clients, group_id: &str) -> Vec<(i64, String)> {
    clients
        .audit()
        .list_audit_events(ListAuditEventsRequest {
            group_id: group_id.into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .filter(|e| e.event_type_name == "MONGODB_USER_X509_CERT_REVOKED")
        .map(|e| (e.serial_number.unwrap(), e.target))
        .collect()
}

/// (serial, status, reason) of a status listing.
/// By serial: certificates issued within one second share notBefore and are listed by serial.
fn summary(list: &[UserCertificateStatus]) -> Vec<(i64, i32, i32)> {
    let mut summary: Vec<_> = list
        .iter()
        .map(|c| (c.serial_number, c.status, c.reason))
        .collect();
    summary.sort_unstable();
    summary
}

/// The entry of `serial` in a status listing.
#[track_caller]
fn of(list: &[UserCertificateStatus], serial: i64) -> &UserCertificateStatus {
    list.iter().find(|c| c.serial_number == serial).unwrap()
}

/// Sorted serials.
fn sorted(mut serials: Vec<i64>) -> Vec<i64> {
    serials.sort_unstable();
    serials
}

fn with_database(url: Option<String>) -> impl FnOnce(&mut dbcert::config::Config) {
    move |config| {
        if let Some(url) = url {
            config.database_url = url;
        }
    }
}

// === gRPC: revoke one, revoke all, refusals change nothing ===

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_revokes_and_refuses_without_changing_anything() {
    revokes_and_refuses_without_changing_anything(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_revokes_and_refuses_without_changing_anything() {
    let Some(db) = TestDatabase::create("postgres_revokes_and_refuses").await else {
        return;
    };
    revokes_and_refuses_without_changing_anything(Some(db.url.clone())).await;
}

async fn revokes_and_refuses_without_changing_anything(database_url: Option<String>) {
    let server = TestServer::start_with(with_database(database_url)).await;
    let clients = server.clients().await;
    let group = clients.create_project("revocation").await;
    let other_group = clients.create_project("revocation-other").await;
    for user in ["alice", "bob"] {
        clients.create_managed_user(&group, user).await;
    }
    clients.create_managed_user(&other_group, "alice").await;
    let a1 = clients.issue(&group, "alice", Some(1)).await.unwrap();
    let a2 = clients.issue(&group, "alice", Some(2)).await.unwrap();
    let b1 = clients.issue(&group, "bob", None).await.unwrap();
    let q1 = clients.issue(&other_group, "alice", None).await.unwrap();

    // A read-only key may list but not revoke.
    let reader = clients.as_key(&project_key(&clients, &group, "GROUP_READ_ONLY").await);
    assert_error(
        revoke(
            &reader,
            &group,
            "alice",
            a1.serial_number,
            RevocationReason::Unspecified,
        )
        .await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    assert_eq!(statuses(&reader, &group, "alice").await.len(), 2);

    let revoked = revoke(
        &clients,
        &group,
        "alice",
        a1.serial_number,
        RevocationReason::KeyCompromise,
    )
    .await
    .unwrap();
    assert_eq!(revoked.serial_number, a1.serial_number);
    assert_eq!(revoked.status, CertificateStatus::Revoked as i32);
    assert_eq!(revoked.reason, RevocationReason::KeyCompromise as i32);
    let revoked_at = revoked.revoked_at.unwrap().seconds;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - 60..=now).contains(&revoked_at),
        "{revoked_at} vs {now}"
    );

    let before = (
        summary(&statuses(&clients, &group, "alice").await),
        summary(&statuses(&clients, &group, "bob").await),
        summary(&statuses(&clients, &other_group, "alice").await),
        revoked_events(&clients, &group).await,
        revoked_events(&clients, &other_group).await,
    );
    let mut expected = vec![
        (
            a1.serial_number,
            CertificateStatus::Revoked as i32,
            RevocationReason::KeyCompromise as i32,
        ),
        (a2.serial_number, CertificateStatus::Valid as i32, 0),
    ];
    expected.sort_unstable();
    assert_eq!(before.0, expected);
    assert_eq!(before.3, [(a1.serial_number, "alice".to_owned())]);

    // Each refusal has its own error.
    assert_error(
        revoke(
            &clients,
            &group,
            "alice",
            a1.serial_number,
            RevocationReason::Superseded,
        )
        .await,
        Code::FailedPrecondition,
        "CERTIFICATE_ALREADY_REVOKED",
    );
    let unknown = (1..i64::MAX)
        .find(|s| ![a1.serial_number, a2.serial_number, b1.serial_number].contains(s))
        .unwrap();
    assert_error(
        revoke(
            &clients,
            &group,
            "alice",
            unknown,
            RevocationReason::Unspecified,
        )
        .await,
        Code::NotFound,
        "CERTIFICATE_NOT_FOUND",
    );
    assert_error(
        revoke(
            &clients,
            &group,
            "alice",
            b1.serial_number,
            RevocationReason::Unspecified,
        )
        .await,
        Code::NotFound,
        "CERTIFICATE_NOT_ISSUED_TO_USER",
    );
    assert_error(
        revoke(
            &clients,
            &group,
            "alice",
            q1.serial_number,
            RevocationReason::Unspecified,
        )
        .await,
        Code::NotFound,
        "CERTIFICATE_NOT_FOUND",
    );
    for serial in [0, -5] {
        assert_error(
            revoke(
                &clients,
                &group,
                "alice",
                serial,
                RevocationReason::Unspecified,
            )
            .await,
            Code::InvalidArgument,
            "INVALID_SERIAL_NUMBER",
        );
    }
    let bad_reason = clients
        .certificates()
        .revoke_user_certificate(RevokeUserCertificateRequest {
            group_id: group.clone(),
            username: "alice".into(),
            serial_number: a2.serial_number,
            reason: 6, // certificateHold: not a revocation dbcert makes
        })
        .await;
    assert_error(bad_reason, Code::InvalidArgument, "INVALID_ENUM_VALUE");

    // Nothing changed: statuses, events, and bob's and the other project's certificates.
    let after = (
        summary(&statuses(&clients, &group, "alice").await),
        summary(&statuses(&clients, &group, "bob").await),
        summary(&statuses(&clients, &other_group, "alice").await),
        revoked_events(&clients, &group).await,
        revoked_events(&clients, &other_group).await,
    );
    assert_eq!(after, before);
    assert_eq!(
        atlas_list(&clients, &group, "alice").await,
        [a2.serial_number]
    );
    assert_eq!(
        atlas_list(&clients, &group, "bob").await,
        [b1.serial_number]
    );
    assert_eq!(
        atlas_list(&clients, &other_group, "alice").await,
        [q1.serial_number]
    );

    // Revoke-all takes what is left, once.
    assert_eq!(
        revoke_all(&clients, &group, "alice").await,
        [a2.serial_number]
    );
    assert_eq!(
        revoke_all(&clients, &group, "alice").await,
        Vec::<i64>::new()
    );
    assert!(atlas_list(&clients, &group, "alice").await.is_empty());
    let listed = statuses(&clients, &group, "alice").await;
    assert_eq!(
        of(&listed, a2.serial_number).reason,
        RevocationReason::Superseded as i32
    );
    assert!(
        listed
            .iter()
            .all(|c| c.status == CertificateStatus::Revoked as i32)
    );
    assert_eq!(
        revoked_events(&clients, &group).await,
        // Newest first.
        [
            (a2.serial_number, "alice".to_owned()),
            (a1.serial_number, "alice".to_owned())
        ]
    );
    assert_eq!(
        atlas_list(&clients, &group, "bob").await,
        [b1.serial_number]
    );
    server.stop().await;
}

// === the per-user limit ===

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_user_at_the_limit_gets_a_certificate_after_revoking_one() {
    at_the_limit_revoking_frees_a_place(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_user_at_the_limit_gets_a_certificate_after_revoking_one() {
    let Some(db) = TestDatabase::create("postgres_limit_after_revoking").await else {
        return;
    };
    at_the_limit_revoking_frees_a_place(Some(db.url.clone())).await;
}

async fn at_the_limit_revoking_frees_a_place(database_url: Option<String>) {
    let server = TestServer::start_with(|config| {
        with_database(database_url)(config);
        config.core.max_certificates_per_user = 2;
    })
    .await;
    let clients = server.clients().await;
    let group = clients.create_project("capped").await;
    clients.create_managed_user(&group, "dana").await;
    let first = clients.issue(&group, "dana", None).await.unwrap();
    clients.issue(&group, "dana", None).await.unwrap();
    assert_error(
        clients.issue(&group, "dana", None).await,
        Code::ResourceExhausted,
        "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED",
    );
    revoke(
        &clients,
        &group,
        "dana",
        first.serial_number,
        RevocationReason::Superseded,
    )
    .await
    .unwrap();
    clients.issue(&group, "dana", None).await.unwrap();
    assert_error(
        clients.issue(&group, "dana", None).await,
        Code::ResourceExhausted,
        "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED",
    );
    // Revoke-all frees every place.
    assert_eq!(revoke_all(&clients, &group, "dana").await.len(), 2);
    clients.issue(&group, "dana", None).await.unwrap();
    clients.issue(&group, "dana", None).await.unwrap();
    assert_eq!(statuses(&clients, &group, "dana").await.len(), 5);
    server.stop().await;
}

// === deleting a user ===

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_deleting_a_user_revokes_its_certificates_for_good() {
    deleting_a_user_revokes_its_certificates(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_deleting_a_user_revokes_its_certificates_for_good() {
    let Some(db) = TestDatabase::create("postgres_delete_revokes").await else {
        return;
    };
    deleting_a_user_revokes_its_certificates(Some(db.url.clone())).await;
    // Read straight from the database: both rows carry the revocation.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let rows: Vec<(String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT username, revoked_at, revocation_reason FROM certificates ORDER BY serial",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let erin: Vec<_> = rows.iter().filter(|r| r.0 == "erin").collect();
    assert_eq!(erin.len(), 3, "{rows:?}");
    let revoked = erin
        .iter()
        .filter(|r| r.1.is_some() && r.2.as_deref() == Some("cessationOfOperation"))
        .count();
    assert_eq!(revoked, 2, "{rows:?}");
}

async fn deleting_a_user_revokes_its_certificates(database_url: Option<String>) {
    let server = TestServer::start_with(with_database(database_url)).await;
    let clients = server.clients().await;
    let atlas = Atlas::new(&server);
    let group = clients.create_project("deleted-users").await;
    clients.create_managed_user(&group, "erin").await;
    let e1 = clients.issue(&group, "erin", None).await.unwrap();
    let e2 = clients.issue(&group, "erin", None).await.unwrap();
    clients
        .users()
        .delete_database_user(DeleteDatabaseUserRequest {
            group_id: group.clone(),
            database_name: "$external".into(),
            username: "erin".into(),
        })
        .await
        .unwrap();
    clients.create_managed_user(&group, "erin").await;
    let certs = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers/erin/certs"
        ))
        .await;
    assert_eq!(certs.status, 200, "{}", certs.body);
    assert_eq!(
        certs.json()["results"],
        Value::Array(vec![]),
        "{}",
        certs.body
    );
    assert_eq!(certs.json()["totalCount"], 0);
    let listed = statuses(&clients, &group, "erin").await;
    assert_eq!(
        summary(&listed),
        sorted(vec![e1.serial_number, e2.serial_number])
            .into_iter()
            .map(|s| (
                s,
                CertificateStatus::Revoked as i32,
                RevocationReason::CessationOfOperation as i32
            ))
            .collect::<Vec<_>>()
    );
    let mut events = revoked_events(&clients, &group).await;
    events.sort();
    let mut expected = vec![
        (e1.serial_number, "erin".to_owned()),
        (e2.serial_number, "erin".to_owned()),
    ];
    expected.sort();
    assert_eq!(events, expected);
    // The re-created user gets new certificates as usual; only they are listed.
    let e3 = clients.issue(&group, "erin", None).await.unwrap();
    assert_eq!(
        atlas_list(&clients, &group, "erin").await,
        [e3.serial_number]
    );
    server.stop().await;
}

// === replicas and restarts ===

/// Two servers on one PostgreSQL database (each with its own caches) act as one: a revocation
/// through one is seen by the other at once (its listings read the database), refusals are
/// the same through both, and everything survives a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_through_one_replica_is_seen_by_the_other_and_survives_restart() {
    let Some(db) = TestDatabase::create("revocation_replicas").await else {
        return;
    };
    // One data directory, so both use one master key; the database is PostgreSQL.
    let temp = tempfile::tempdir().unwrap();
    let key = Key::random();
    let url = db.url.clone();
    let config = |config: &mut dbcert::config::Config| {
        config.database_url = url.clone();
        config.cache_ttl = Duration::from_secs(30);
    };
    let first = TestServer::start_in(temp.path(), key.clone(), config).await;
    let second = TestServer::start_in(temp.path(), key.clone(), config).await;
    let (one, two) = (first.clients().await, second.clients().await);
    let group = one.create_project("replicated").await;
    one.create_managed_user(&group, "hank").await;
    let h1 = one.issue(&group, "hank", None).await.unwrap();
    let h2 = one.issue(&group, "hank", None).await.unwrap();
    // Both replicas have read (and cached) what they could.
    assert_eq!(atlas_list(&two, &group, "hank").await.len(), 2);

    revoke(
        &two,
        &group,
        "hank",
        h1.serial_number,
        RevocationReason::KeyCompromise,
    )
    .await
    .unwrap();
    assert_eq!(atlas_list(&one, &group, "hank").await, [h2.serial_number]);
    let seen = statuses(&one, &group, "hank").await;
    assert_eq!(
        of(&seen, h1.serial_number).status,
        CertificateStatus::Revoked as i32
    );
    assert_eq!(
        of(&seen, h1.serial_number).reason,
        RevocationReason::KeyCompromise as i32
    );
    assert_error(
        revoke(
            &one,
            &group,
            "hank",
            h1.serial_number,
            RevocationReason::Unspecified,
        )
        .await,
        Code::FailedPrecondition,
        "CERTIFICATE_ALREADY_REVOKED",
    );
    // Deleting through the second revokes what the first issued.
    two.users()
        .delete_database_user(DeleteDatabaseUserRequest {
            group_id: group.clone(),
            database_name: "$external".into(),
            username: "hank".into(),
        })
        .await
        .unwrap();
    let listed = statuses(&one, &group, "hank").await;
    let h2_now = of(&listed, h2.serial_number);
    assert_eq!(h2_now.status, CertificateStatus::Revoked as i32);
    assert_eq!(h2_now.reason, RevocationReason::CessationOfOperation as i32);
    let before_restart = summary(&listed);
    first.stop().await;
    second.stop().await;

    let again = TestServer::start_in(temp.path(), key, config).await;
    let clients = again.clients().await;
    assert_eq!(
        summary(&statuses(&clients, &group, "hank").await),
        before_restart
    );
    assert!(atlas_list(&clients, &group, "hank").await.is_empty());
    assert_eq!(revoked_events(&clients, &group).await.len(), 2);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_revocations_survive_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let key = Key::random();
    let server = TestServer::start_in(temp.path(), key.clone(), |_| {}).await;
    let clients = server.clients().await;
    let group = clients.create_project("restarted").await;
    clients.create_managed_user(&group, "ivy").await;
    let i1 = clients.issue(&group, "ivy", None).await.unwrap();
    let i2 = clients.issue(&group, "ivy", None).await.unwrap();
    revoke(
        &clients,
        &group,
        "ivy",
        i1.serial_number,
        RevocationReason::PrivilegeWithdrawn,
    )
    .await
    .unwrap();
    let before = summary(&statuses(&clients, &group, "ivy").await);
    server.stop().await;

    // Read straight from the SQLite file, with the sqlite3 module of Python.
    let python = std::env::var("DBCERT_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let db_file = dbcert::storage::SqliteStore::url_in(temp.path());
    let path = db_file
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             print(list(c.execute('SELECT serial, revoked_at IS NOT NULL, revocation_reason \
             FROM certificates ORDER BY serial')))",
            &path,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        text.contains(&format!("({}, 1, 'privilegeWithdrawn')", i1.serial_number)),
        "{text}"
    );
    assert!(
        text.contains(&format!("({}, 0, None)", i2.serial_number)),
        "{text}"
    );

    let again = TestServer::start_in(temp.path(), key, |_| {}).await;
    let clients = again.clients().await;
    assert_eq!(summary(&statuses(&clients, &group, "ivy").await), before);
    assert_eq!(
        atlas_list(&clients, &group, "ivy").await,
        [i2.serial_number]
    );
    again.stop().await;
}
