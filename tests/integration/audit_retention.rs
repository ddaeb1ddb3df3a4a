//! Audit retention in a served instance: the background purge deletes the events older than
//! `--audit-retention-days` (a backlog of several batches included), keeps the newer ones,
//! and never touches certificate records. Runs on SQLite and, with
//! `DBCERT_TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use std::time::{Duration, Instant};

use dbcert::domain::{
    Actor, AuditAction, AuditEvent, AuditOutcome, CertificateLimit, CertificateRecord,
    NewCertificate, OrgId, ProjectId,
};
use dbcert::proto::v1::{
    ListOrganizationEventsRequest, ListUserCertificatesRequest,
    audit_service_client::AuditServiceClient,
};
use time::OffsetDateTime;

use crate::harness::pg::TestDatabase;
use crate::harness::{Clients, Key, TestServer};

/// More old events than one purge batch (1,000) holds, so the purge must go on batch after
/// batch.
const BACKLOG: i64 = 2_100;
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_instance_purges_events_past_the_retention() {
    purges_events_past_the_retention(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_instance_purges_events_past_the_retention() {
    let Some(db) = TestDatabase::create("postgres_instance_purges_events_past_the_retention").await
    else {
        return;
    };
    purges_events_past_the_retention(Some(db.url.clone())).await;
}

async fn purges_events_past_the_retention(database_url: Option<String>) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let key = Key::random();
    let database = database_url
        .clone()
        .unwrap_or_else(|| dbcert::storage::SqliteStore::url_in(dir));
    let with = |retention: Option<Duration>| {
        let database_url = database_url.clone();
        move |config: &mut dbcert::config::Config| {
            if let Some(url) = database_url {
                config.database_url = url;
            }
            config.audit_retention = retention;
        }
    };

    // First run, keeping events forever: a project, a user and a certificate.
    let server = TestServer::start_in(dir, key.clone(), with(None)).await;
    let clients = server.clients().await;
    let org = clients.first_org_id().await;
    let group_id = clients.create_project("retained").await;
    clients.create_managed_user(&group_id, "erin").await;
    let issued = clients.issue(&group_id, "erin", Some(1)).await.unwrap();
    server.stop().await;

    // Then, as if time had passed: a backlog of certificates recorded with their events two
    // days ago, and an event from 23 hours ago, just inside a one-day retention.
    let store = dbcert::storage::open(&database).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let org_id = OrgId::parse(&org).unwrap();
    let project_id = ProjectId::parse(&group_id).unwrap();
    let backlog: Vec<NewCertificate> = (0..BACKLOG)
        .map(|n| {
            let at = now - time::Duration::days(2) + time::Duration::milliseconds(n);
            let record = CertificateRecord {
                serial: 1_000_000 + n,
                project_id: project_id.clone(),
                username: "backlog".into(),
                subject: "CN=backlog".into(),
                not_before: at,
                not_after: now + time::Duration::days(30),
                sha256_fingerprint: format!("{n:064x}"),
                ca_generation: 1,
            };
            let event = AuditEvent {
                org_id: Some(org_id.clone()),
                project_id: Some(project_id.clone()),
                serial: Some(record.serial),
                target: Some("backlog".into()),
                ..event(n, at, AuditAction::CertificateIssued)
            };
            NewCertificate {
                limit: CertificateLimit {
                    max: u64::MAX,
                    now: record.not_before,
                },
                record,
                event,
                user_must_exist: false,
            }
        })
        .collect();
    let recorded = store.record_certificates(&backlog).await.unwrap();
    assert!(recorded.iter().all(Result::is_ok));
    let recent = AuditEvent {
        org_id: Some(org_id.clone()),
        ..event(
            BACKLOG + 1,
            now - time::Duration::hours(23),
            AuditAction::ApiKeyCreated,
        )
    };
    store.insert_audit_event(&recent).await.unwrap();
    drop(store);

    // Second run with a one-day retention: the purge runs at start and goes on until no
    // event older than a day is left.
    let server = TestServer::start_in(dir, key, with(Some(DAY))).await;
    let clients = server.clients().await;
    let cutoff = prost_types::Timestamp {
        seconds: (now - time::Duration::days(1)).unix_timestamp(),
        nanos: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let old = org_events(&clients, &org, Some(cutoff)).await.total_count;
        if old == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{old:?} events older than the retention are still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Kept: the first run's events and the one inside the retention, newest first.
    let kept = org_events(&clients, &org, None).await;
    let names: Vec<&str> = kept
        .results
        .iter()
        .map(|e| e.event_type_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "MONGODB_USER_X509_CERT_CREATED",
            "MONGODB_USER_ADDED",
            "GROUP_CREATED",
            "API_KEY_CREATED",
        ]
    );
    assert_eq!(kept.results[3].id, recent.id);
    assert_eq!(kept.results[0].serial_number, Some(issued.serial_number));

    // Certificate records are not audit events: every one is still there.
    let store = dbcert::storage::open(&database).await.unwrap();
    assert_eq!(
        store
            .count_unexpired_certificates(&project_id, "backlog", now)
            .await
            .unwrap(),
        BACKLOG as u64
    );
    let listed = clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.clone(),
            username: "erin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.results.len(), 1);
    assert_eq!(listed.results[0].serial_number, issued.serial_number);
    drop(store);
    server.stop().await;
}

fn event(n: i64, at: OffsetDateTime, action: AuditAction) -> AuditEvent {
    AuditEvent {
        id: format!("{:016x}{n:08x}", rand::random::<u64>()),
        at,
        actor: Actor::System,
        client_address: None,
        org_id: None,
        project_id: None,
        action,
        target: None,
        serial: None,
        outcome: AuditOutcome::Success,
    }
}

async fn org_events(
    clients: &Clients,
    org: &str,
    max_date: Option<prost_types::Timestamp>,
) -> dbcert::proto::v1::ListOrganizationEventsResponse {
    let value: tonic::metadata::MetadataValue<_> = clients.key.basic().parse().unwrap();
    AuditServiceClient::with_interceptor(
        clients.channel.clone(),
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        },
    )
    .list_organization_events(ListOrganizationEventsRequest {
        org_id: org.into(),
        items_per_page: 500,
        max_date,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}
