//! One conformance suite for every storage backend: each case below runs against
//! `SqliteStore` (a temporary file) and `PostgresStore` (a fresh database on the server named
//! by `DBCERT_TEST_DATABASE_URL`; without it the PostgreSQL cases print a skip line). A few
//! PostgreSQL-only cases at the end cover concurrent migrations and outages.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbcert::domain::{
    AccessListAdd, AccessListEntry, Actor, ApiKeyId, ApiKeyRecord, AuditAction, AuditEvent,
    AuditFilter, AuditOutcome, AuditScope, CertificateLimit, CertificateRecord, DatabaseName,
    DatabaseUser, DatabaseUserRole, MetaStore, NewCertificate, OrgId, OrgRole, Organization, Page,
    Project, ProjectId, ProjectRole, Store, StoreError, StoreResult, StoredCa, StoredCrl, Username,
    X509Type,
};
use dbcert::storage::{POSTGRES_ACQUIRE_TIMEOUT, PostgresStore, SqliteStore};
use time::OffsetDateTime;

use crate::harness;
use crate::harness::pg::{TestDatabase, with_database};

mod ca_generations;
use self::ca_generations::{
    ca_walks_cover_every_generation, concurrent_rotations_have_one_winner,
    rotation_is_compare_and_set, trust_bundle_keeps_older_cas_while_their_certificates_live,
};

// === backends ===

/// A store under test (without group commit or cache), the URL of its database (for the
/// cases that open it as the service does, through `dbcert::storage::open*`), and whatever
/// keeps the database alive.
struct Fixture {
    store: Arc<dyn Store>,
    url: String,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn sqlite(_test: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = SqliteStore::url_in(dir.path());
    let store = SqliteStore::open(&url).await.expect("open sqlite");
    Some(Fixture {
        store: Arc::new(store),
        url,
        _guard: Box::new(dir),
    })
}

async fn postgres(test: &str) -> Option<Fixture> {
    let db = TestDatabase::create(test).await?;
    let store = PostgresStore::open(&db.url).await.expect("open postgres");
    Some(Fixture {
        store: Arc::new(store),
        url: db.url.clone(),
        _guard: Box::new(db),
    })
}

/// Generates one `#[tokio::test]` per case for a backend; the cases after `opened:` also get
/// the database's URL.
macro_rules! suite {
    ($backend:ident; $($case:ident),* $(,)?; opened: $($opened:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!(stringify!($backend), "::", stringify!($case));
                    let Some(fixture) = super::$backend(test).await else { return };
                    super::$case(fixture.store.clone()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $opened() {
                    let test = concat!(stringify!($backend), "::", stringify!($opened));
                    let Some(fixture) = super::$backend(test).await else { return };
                    super::$opened(fixture.store.clone(), fixture.url.clone()).await;
                }
            )*
        }
    };
}

/// Lists the cases once, for every backend.
macro_rules! conformance_suite {
    ($backend:ident) => {
        suite!($backend;
            meta_put_if_absent_keeps_the_first_value,
            ping_answers,
            organizations_round_trip,
            organizations_are_renamed_and_deleted_with_their_keys,
            projects_round_trip_and_list_oldest_first,
            project_names_are_unique_among_live_projects,
            projects_are_found_by_name_and_renamed,
            list_projects_of_a_member_key,
            delete_project_keeps_certificates_and_destroys_the_ca_key,
            api_keys_round_trip,
            api_key_project_roles_are_replaced,
            api_key_secrets_are_updated_by_public_key,
            api_key_access_lists_add_read_delete_and_cap,
            due_crls_leave_out_claimed_ones_until_the_claim_lapses,
            database_users_crud,
            concurrent_database_user_inserts_have_one_winner,
            user_security_round_trip,
            project_ca_is_insert_or_read,
            project_ca_certificates_lists_every_ca_in_pages,
            concurrent_project_ca_inserts_have_one_winner,
            certificate_serials_are_unique_per_project,
            a_certificate_of_a_deleted_user_is_not_recorded,
            list_certificates_only_unexpired_oldest_first,
            certificates_expiring_are_counted_over_every_project,
            certificate_paging,
            paging_edge_cases,
            digest_nonce_uses_refuse_replays_and_purge,
            audit_events_are_listed_by_scope_and_filter,
            audit_purge_deletes_the_oldest_in_batches_and_keeps_certificates,
            concurrent_audit_purges_delete_each_event_once,
            rotation_is_compare_and_set,
            concurrent_rotations_have_one_winner,
            trust_bundle_keeps_older_cas_while_their_certificates_live,
            ca_walks_cover_every_generation;
            opened:
            certificates_are_recorded_in_batches_with_their_events,
            audit_purge_passes_through_the_decorators,
        );
    };
}

conformance_suite!(sqlite);
conformance_suite!(postgres);

// === helpers ===

/// Now, in whole seconds (the stores keep seconds).
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn page(num: u32, items_per_page: u32, include_count: bool) -> Page {
    Page {
        num,
        items_per_page,
        include_count,
    }
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

async fn new_org(store: &dyn Store) -> Organization {
    let org = Organization {
        id: OrgId::generate(now()),
        name: "org".into(),
    };
    store.insert_organization(&org).await.unwrap();
    org
}

fn project_in(org: &Organization, name: &str, created: OffsetDateTime) -> Project {
    Project {
        id: ProjectId::generate(created),
        name: name.into(),
        org_id: org.id.clone(),
        created,
    }
}

async fn new_project(store: &dyn Store, org: &Organization, name: &str) -> Project {
    let project = project_in(org, name, now());
    store.insert_project(&project).await.unwrap();
    project
}

fn api_key(org: &Organization, public_key: &str, created: OffsetDateTime) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId::generate(created),
        org_id: org.id.clone(),
        public_key: public_key.into(),
        desc: format!("key {public_key}"),
        ha1_md5: "0".repeat(32),
        ha1_sha256: "1".repeat(64),
        org_roles: vec![OrgRole::OrgOwner],
        project_roles: Vec::new(),
        created,
    }
}

fn database_user(project: &Project, name: &str, database_name: DatabaseName) -> DatabaseUser {
    DatabaseUser {
        project_id: project.id.clone(),
        username: user(name),
        database_name,
        x509_type: X509Type::Managed,
        roles: vec![DatabaseUserRole {
            database_name: "admin".into(),
            role_name: "readWriteAnyDatabase".into(),
            collection_name: String::new(),
        }],
        attributes: Default::default(),
    }
}

fn certificate(
    project: &Project,
    username: &str,
    serial: i64,
    not_before: OffsetDateTime,
) -> CertificateRecord {
    CertificateRecord {
        serial,
        project_id: project.id.clone(),
        username: username.into(),
        subject: format!("CN={username}"),
        not_before,
        not_after: not_before + secs(86_400),
        sha256_fingerprint: format!("{serial:064x}"),
        ca_generation: 1,
    }
}

fn issued_event(record: &CertificateRecord) -> AuditEvent {
    AuditEvent {
        id: format!("{:024x}", record.serial),
        at: record.not_before,
        actor: Actor::System,
        client_address: None,
        org_id: None,
        project_id: Some(record.project_id.clone()),
        action: AuditAction::CertificateIssued,
        target: Some(record.username.clone()),
        serial: Some(record.serial),
        outcome: AuditOutcome::Success,
    }
}

/// The client-CA check walks every project CA, a deleted project's included.
async fn project_ca_certificates_lists_every_ca_in_pages(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let mut expected = Vec::new();
    for tag in 1..=5u8 {
        let project = new_project(store.as_ref(), &org, &format!("ca-{tag}")).await;
        insert_ca(store.as_ref(), &project.id, &ca(tag), now())
            .await
            .unwrap();
        expected.push((project.id, 1, ca(tag).cert_der));
    }
    // A project without a CA is not listed; a deleted one's CA is.
    new_project(store.as_ref(), &org, "no-ca").await;
    assert!(store.delete_project(&expected[2].0, now()).await.unwrap());
    expected.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let batch = store
            .project_ca_certificates(after.as_ref().map(|(id, g)| (id, *g)), 2)
            .await
            .unwrap();
        assert!(batch.len() <= 2, "{batch:?}");
        let Some((last, generation, _)) = batch.last() else {
            break;
        };
        after = Some((last.clone(), *generation));
        listed.extend(batch);
    }
    assert_eq!(listed, expected);
}

fn ca(tag: u8) -> StoredCa {
    StoredCa {
        generation: 1,
        cert_der: vec![0x30, tag, 1, 2, 3],
        sealed_key: Some(vec![tag; 48]),
    }
}

/// Records a certificate with an event of its own, as an issue does.
async fn record_with_event(store: &dyn Store, record: &CertificateRecord) -> StoreResult<()> {
    let mut event = issued_event(record);
    event.id = format!(
        "{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    );
    store.record_certificate(&unlimited(record, event)).await
}

/// A certificate to record with its event, under no practical per-user limit.
fn unlimited(record: &CertificateRecord, event: AuditEvent) -> NewCertificate {
    NewCertificate {
        record: record.clone(),
        event,
        limit: CertificateLimit {
            max: u64::MAX,
            now: record.not_before,
        },
        user_must_exist: false,
    }
}

/// Inserts a project CA of the project's current key type.
async fn insert_ca(
    store: &dyn Store,
    project_id: &ProjectId,
    ca: &StoredCa,
    created: OffsetDateTime,
) -> StoreResult<()> {
    let key_type = store.user_security(project_id).await?.ca_key_type;
    let inserted = store
        .insert_project_ca_of_type(project_id, ca, key_type, created)
        .await?;
    assert!(inserted, "the key type did not change");
    Ok(())
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Conflict) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn serials(records: &[CertificateRecord]) -> Vec<i64> {
    records.iter().map(|r| r.serial).collect()
}

// === cases ===

async fn meta_put_if_absent_keeps_the_first_value(store: Arc<dyn Store>) {
    assert_eq!(
        store.put_meta_if_absent("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.put_meta_if_absent("k", "second").await.unwrap(),
        "first"
    );
    assert_eq!(store.put_meta_if_absent("other", "x").await.unwrap(), "x");
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

async fn organizations_round_trip(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    assert_eq!(
        store.organization(&org.id).await.unwrap(),
        Some(org.clone())
    );
    assert_eq!(
        store.organization(&OrgId::generate(now())).await.unwrap(),
        None
    );
    assert_conflict(store.insert_organization(&org).await);
}

async fn organizations_are_renamed_and_deleted_with_their_keys(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let other = new_org(store.as_ref()).await;
    assert!(store.rename_organization(&org.id, "renamed").await.unwrap());
    let renamed = store.organization(&org.id).await.unwrap().unwrap();
    assert_eq!(renamed.name, "renamed");
    assert_eq!(
        store.organization(&other.id).await.unwrap(),
        Some(other.clone())
    );
    let project = new_project(store.as_ref(), &org, "live").await;
    let key = api_key(&org, "orgkey01", now());
    store.insert_api_key(&key).await.unwrap();
    store
        .set_api_key_project_roles(&key.id, &project.id, &[ProjectRole::GroupOwner])
        .await
        .unwrap();
    let kept = api_key(&other, "orgkey02", now());
    store.insert_api_key(&kept).await.unwrap();

    // A live project refuses the deletion, which then changes nothing.
    assert_conflict(store.delete_organization(&org.id, now()).await);
    assert_eq!(store.organization(&org.id).await.unwrap(), Some(renamed));
    assert!(store.api_key(&key.id).await.unwrap().is_some());

    assert!(store.delete_project(&project.id, now()).await.unwrap());
    assert!(store.delete_organization(&org.id, now()).await.unwrap());
    assert_eq!(store.organization(&org.id).await.unwrap(), None);
    assert_eq!(store.api_key(&key.id).await.unwrap(), None);
    assert_eq!(store.api_key_by_public_key("orgkey01").await.unwrap(), None);
    // Another organization's keys stay; a deleted organization is gone for good.
    assert_eq!(store.api_key(&kept.id).await.unwrap(), Some(kept));
    assert!(!store.delete_organization(&org.id, now()).await.unwrap());
    assert!(!store.rename_organization(&org.id, "again").await.unwrap());
    assert!(
        !store
            .delete_organization(&OrgId::generate(now()), now())
            .await
            .unwrap()
    );
}

async fn projects_round_trip_and_list_oldest_first(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let t = now();
    // Inserted newest first, listed oldest first.
    let projects: Vec<Project> = (0..3)
        .map(|i| project_in(&org, &format!("p{i}"), t - secs(10 - i)))
        .collect();
    for project in projects.iter().rev() {
        store.insert_project(project).await.unwrap();
    }
    assert_eq!(
        store.project(&projects[1].id).await.unwrap(),
        Some(projects[1].clone())
    );
    assert_eq!(store.project(&ProjectId::generate(t)).await.unwrap(), None);
    let listed = store
        .list_projects(&org.id, None, page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(listed.results, projects);
    assert_eq!(listed.total_count, Some(3));
    assert!(!listed.has_next_page);
    // Another organization's projects are not listed.
    let other = new_org(store.as_ref()).await;
    new_project(store.as_ref(), &other, "p0").await;
    assert_eq!(
        store
            .list_projects(&org.id, None, page(1, 10, true))
            .await
            .unwrap()
            .total_count,
        Some(3)
    );
    // The same id twice is a conflict.
    assert_conflict(store.insert_project(&projects[0]).await);
}

async fn project_names_are_unique_among_live_projects(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let first = new_project(store.as_ref(), &org, "shared").await;
    assert_conflict(
        store
            .insert_project(&project_in(&org, "shared", now()))
            .await,
    );
    // Another organization may use the name.
    let other = new_org(store.as_ref()).await;
    new_project(store.as_ref(), &other, "shared").await;
    // Once deleted, the name is free again.
    assert!(store.delete_project(&first.id, now()).await.unwrap());
    let second = new_project(store.as_ref(), &org, "shared").await;
    assert_eq!(store.project(&second.id).await.unwrap(), Some(second));
}

async fn projects_are_found_by_name_and_renamed(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let other = new_org(store.as_ref()).await;
    let first = new_project(store.as_ref(), &org, "first").await;
    let second = new_project(store.as_ref(), &org, "second").await;
    let elsewhere = new_project(store.as_ref(), &other, "third").await;
    let by_name = |org_id, name| {
        let store = store.clone();
        async move { store.project_by_name(&org_id, name).await.unwrap() }
    };
    assert_eq!(by_name(org.id.clone(), "first").await, Some(first.clone()));
    assert_eq!(
        by_name(org.id.clone(), "third").await,
        None,
        "names are per organization"
    );
    assert_eq!(by_name(other.id.clone(), "third").await, Some(elsewhere));

    // A name taken in the organization is `Conflict`, and nothing changes.
    assert_conflict(store.rename_project(&first.id, "second").await);
    assert_eq!(
        store.project(&first.id).await.unwrap().unwrap().name,
        "first"
    );
    // A name of another organization is free; the old name is free after the rename.
    assert!(store.rename_project(&first.id, "third").await.unwrap());
    assert_eq!(
        store.project(&first.id).await.unwrap().unwrap().name,
        "third"
    );
    assert_eq!(by_name(org.id.clone(), "first").await, None);
    assert_eq!(
        by_name(org.id.clone(), "third").await.map(|p| p.id),
        Some(first.id.clone())
    );
    new_project(store.as_ref(), &org, "first").await;

    // A deleted project is neither found nor renamed.
    assert!(store.delete_project(&second.id, now()).await.unwrap());
    assert_eq!(by_name(org.id.clone(), "second").await, None);
    assert!(!store.rename_project(&second.id, "fourth").await.unwrap());
}

async fn list_projects_of_a_member_key(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let t = now();
    let a = project_in(&org, "a", t - secs(2));
    let b = project_in(&org, "b", t - secs(1));
    store.insert_project(&a).await.unwrap();
    store.insert_project(&b).await.unwrap();
    let key = api_key(&org, "member01", t);
    store.insert_api_key(&key).await.unwrap();
    store
        .set_api_key_project_roles(&key.id, &b.id, &[ProjectRole::GroupReadOnly])
        .await
        .unwrap();
    let listed = store
        .list_projects(&org.id, Some(&key.id), page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(listed.results, vec![b.clone()]);
    assert_eq!(listed.total_count, Some(1));
    let all = store
        .list_projects(&org.id, None, page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(all.results, vec![a, b]);
}

async fn delete_project_keeps_certificates_and_destroys_the_ca_key(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "doomed").await;
    let t = now();
    insert_ca(store.as_ref(), &project.id, &ca(1), t)
        .await
        .unwrap();
    let alice = database_user(&project, "alice", DatabaseName::External);
    store.insert_database_user(&alice).await.unwrap();
    let key = api_key(&org, "deleter1", t);
    store.insert_api_key(&key).await.unwrap();
    store
        .set_api_key_project_roles(&key.id, &project.id, &[ProjectRole::GroupOwner])
        .await
        .unwrap();
    store
        .set_customer_ca(&project.id, Some("-----BEGIN CERTIFICATE-----"))
        .await
        .unwrap();
    let record = certificate(&project, "alice", 42, t - secs(60));
    record_with_event(store.as_ref(), &record).await.unwrap();

    assert!(store.delete_project(&project.id, t).await.unwrap());
    assert!(
        !store.delete_project(&project.id, t).await.unwrap(),
        "a second delete finds nothing"
    );

    assert_eq!(store.project(&project.id).await.unwrap(), None);
    assert!(
        store
            .list_projects(&org.id, None, page(1, 10, true))
            .await
            .unwrap()
            .results
            .is_empty()
    );
    let stored = store
        .project_ca(&project.id)
        .await
        .unwrap()
        .expect("the CA certificate is kept");
    assert_eq!(stored.cert_der, ca(1).cert_der);
    assert_eq!(stored.sealed_key, None, "the CA key is destroyed");
    let listed = store
        .list_certificates(&project.id, "alice", t, page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(listed.results, vec![record], "certificate records are kept");
    assert_eq!(
        store
            .database_user(&project.id, DatabaseName::External, &user("alice"))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .api_key(&key.id)
            .await
            .unwrap()
            .unwrap()
            .project_roles
            .is_empty()
    );
    assert_eq!(
        store
            .user_security(&project.id)
            .await
            .unwrap()
            .customer_ca_pem,
        None
    );
}

async fn api_keys_round_trip(store: Arc<dyn Store>) {
    assert!(!store.any_api_key().await.unwrap());
    let org = new_org(store.as_ref()).await;
    let t = now();
    let keys: Vec<ApiKeyRecord> = (0..3)
        .map(|i| api_key(&org, &format!("pubkey{i:02}"), t - secs(10 - i)))
        .collect();
    for key in keys.iter().rev() {
        store.insert_api_key(key).await.unwrap();
    }
    assert!(store.any_api_key().await.unwrap());
    assert_eq!(
        store.api_key_by_public_key("pubkey01").await.unwrap(),
        Some(keys[1].clone())
    );
    assert_eq!(
        store.api_key(&keys[2].id).await.unwrap(),
        Some(keys[2].clone())
    );
    assert_eq!(store.api_key_by_public_key("nobody00").await.unwrap(), None);

    // The public key is unique, whatever the id.
    assert_conflict(store.insert_api_key(&api_key(&org, "pubkey00", t)).await);

    let listed = store
        .list_api_keys(&org.id, page(1, 2, true))
        .await
        .unwrap();
    assert_eq!(listed.results, keys[..2]);
    assert_eq!(listed.total_count, Some(3));
    assert!(listed.has_next_page);

    let other = new_org(store.as_ref()).await;
    assert!(
        !store.delete_api_key(&other.id, &keys[0].id).await.unwrap(),
        "another org's key"
    );
    assert!(store.delete_api_key(&org.id, &keys[0].id).await.unwrap());
    assert!(!store.delete_api_key(&org.id, &keys[0].id).await.unwrap());
    assert_eq!(store.api_key(&keys[0].id).await.unwrap(), None);
    // Its public key may be used again.
    store
        .insert_api_key(&api_key(&org, "pubkey00", t))
        .await
        .unwrap();
}

async fn api_key_access_lists_add_read_delete_and_cap(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let other = new_org(store.as_ref()).await;
    let t = now();
    let key = api_key(&org, "listkey0", t);
    store.insert_api_key(&key).await.unwrap();
    let cidr = |s: &str| AccessListEntry::parse_cidr_block(s).unwrap();
    let ip = |s: &str| AccessListEntry::parse_ip_address(s).unwrap();
    let blocks = |items: Vec<dbcert::domain::AccessListItem>| -> Vec<String> {
        items.iter().map(|i| i.entry.cidr_block()).collect()
    };
    assert!(store.api_key_access_list(&key.id).await.unwrap().is_empty());

    // Another organization's key id: nothing added.
    assert_eq!(
        store
            .add_api_key_access_list(&other.id, &key.id, &[ip("192.0.2.1")], t, 10)
            .await
            .unwrap(),
        AccessListAdd::NoSuchKey
    );
    assert!(store.api_key_access_list(&key.id).await.unwrap().is_empty());

    // Added oldest first; one already listed (or twice in a request) is kept once, with its
    // first time.
    let added = |entries: Vec<AccessListEntry>, at: OffsetDateTime, max: usize| {
        let store = store.clone();
        let (org, id) = (org.id.clone(), key.id.clone());
        async move {
            store
                .add_api_key_access_list(&org, &id, &entries, at, max)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        added(
            vec![cidr("198.51.100.0/24"), ip("2001:db8::7")],
            t - secs(5),
            10
        )
        .await,
        AccessListAdd::Added
    );
    assert_eq!(
        added(
            vec![ip("192.0.2.1"), ip("192.0.2.1"), cidr("198.51.100.0/24")],
            t,
            10
        )
        .await,
        AccessListAdd::Added
    );
    let list = store.api_key_access_list(&key.id).await.unwrap();
    assert_eq!(
        blocks(list.clone()),
        ["198.51.100.0/24", "2001:db8::7/128", "192.0.2.1/32"]
    );
    assert_eq!(list[0].created, t - secs(5));
    assert_eq!(list[2].created, t);

    // The cap counts what is there and what is new, and refuses the whole request.
    assert_eq!(
        added(vec![ip("192.0.2.2"), ip("192.0.2.1")], t, 4).await,
        AccessListAdd::Added
    );
    assert_eq!(
        added(vec![ip("192.0.2.3")], t, 4).await,
        AccessListAdd::Full
    );
    assert_eq!(store.api_key_access_list(&key.id).await.unwrap().len(), 4);

    assert!(
        store
            .delete_api_key_access_list_entry(&key.id, &cidr("198.51.100.0/24"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_api_key_access_list_entry(&key.id, &cidr("198.51.100.0/24"))
            .await
            .unwrap()
    );
    assert_eq!(
        blocks(store.api_key_access_list(&key.id).await.unwrap()),
        ["2001:db8::7/128", "192.0.2.1/32", "192.0.2.2/32"]
    );

    // Deleting the key takes its list.
    assert!(store.delete_api_key(&org.id, &key.id).await.unwrap());
    assert!(store.api_key_access_list(&key.id).await.unwrap().is_empty());
}

async fn due_crls_leave_out_claimed_ones_until_the_claim_lapses(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let t = now();
    let stored = |number: u64, refresh_at: OffsetDateTime| StoredCrl {
        number,
        der: vec![0x30, 0x00],
        this_update: t - secs(100),
        next_update: t + secs(100),
        refresh_at,
    };
    let mut projects = Vec::new();
    for (i, refresh_at) in [t - secs(20), t - secs(10)].into_iter().enumerate() {
        let project = new_project(store.as_ref(), &org, &format!("crl{i}")).await;
        let number = store.next_crl_number(&project.id, 1).await.unwrap();
        assert!(
            store
                .store_crl(&project.id, 1, &stored(number, refresh_at))
                .await
                .unwrap()
        );
        projects.push(project.id);
    }
    let due = |at: OffsetDateTime| {
        let store = store.clone();
        async move { store.crls_due(at, 10).await.unwrap() }
    };
    let both = vec![(projects[0].clone(), 1), (projects[1].clone(), 1)];
    assert_eq!(due(t).await, both, "oldest first");
    assert_eq!(store.crls_due(t, 1).await.unwrap(), both[..1]);

    // A claimed CRL (re-signed elsewhere, or failing) gives the next one its turn, until the
    // claim lapses.
    assert!(
        store
            .claim_crl_refresh(&projects[0], 1, t, t + secs(120))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_crl_refresh(&projects[0], 1, t, t + secs(120))
            .await
            .unwrap(),
        "one claim at a time"
    );
    assert_eq!(store.crls_due(t, 1).await.unwrap(), both[1..]);
    assert_eq!(due(t + secs(120)).await, both);

    // Storing a newer CRL releases the claim and moves its time on.
    let number = store.next_crl_number(&projects[0], 1).await.unwrap();
    assert!(
        store
            .store_crl(&projects[0], 1, &stored(number, t + secs(50)))
            .await
            .unwrap()
    );
    assert_eq!(due(t).await, both[1..]);
    assert_eq!(
        due(t + secs(50)).await,
        [both[1].clone(), both[0].clone()],
        "by re-signing time"
    );
}

async fn api_key_project_roles_are_replaced(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let (a, b) = (
        new_project(store.as_ref(), &org, "a").await,
        new_project(store.as_ref(), &org, "b").await,
    );
    let key = api_key(&org, "roles001", now());
    store.insert_api_key(&key).await.unwrap();
    let roles = |store: Arc<dyn Store>| {
        let id = key.id.clone();
        async move {
            let key = store.api_key(&id).await.unwrap().unwrap();
            key.project_roles
                .into_iter()
                .map(|(project, role)| (project.to_string(), role.as_str()))
                .collect::<BTreeSet<_>>()
        }
    };
    let set = |items: &[(&Project, ProjectRole)]| {
        items
            .iter()
            .map(|(project, role)| (project.id.to_string(), role.as_str()))
            .collect::<BTreeSet<_>>()
    };

    store
        .set_api_key_project_roles(
            &key.id,
            &a.id,
            &[ProjectRole::GroupOwner, ProjectRole::GroupReadOnly],
        )
        .await
        .unwrap();
    store
        .set_api_key_project_roles(&key.id, &b.id, &[ProjectRole::GroupReadOnly])
        .await
        .unwrap();
    assert_eq!(
        roles(store.clone()).await,
        set(&[
            (&a, ProjectRole::GroupOwner),
            (&a, ProjectRole::GroupReadOnly),
            (&b, ProjectRole::GroupReadOnly)
        ])
    );
    // A listed key has the same roles as the key read alone (the listing loads the roles of
    // the whole page at once), and another key of the page only its own.
    let other = api_key(&org, "roles003", now() + secs(1));
    store.insert_api_key(&other).await.unwrap();
    store
        .set_api_key_project_roles(&other.id, &b.id, &[ProjectRole::GroupOwner])
        .await
        .unwrap();
    let listed = store
        .list_api_keys(&org.id, page(1, 10, false))
        .await
        .unwrap()
        .results;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], store.api_key(&key.id).await.unwrap().unwrap());
    assert_eq!(
        listed[1].project_roles,
        [(b.id.clone(), ProjectRole::GroupOwner)]
    );
    assert!(store.delete_api_key(&org.id, &other.id).await.unwrap());
    // Replacing one project's roles leaves the other project's alone.
    store
        .set_api_key_project_roles(&key.id, &a.id, &[ProjectRole::GroupReadOnly])
        .await
        .unwrap();
    assert_eq!(
        roles(store.clone()).await,
        set(&[
            (&a, ProjectRole::GroupReadOnly),
            (&b, ProjectRole::GroupReadOnly)
        ])
    );
    // No roles removes the key from the project.
    store
        .set_api_key_project_roles(&key.id, &b.id, &[])
        .await
        .unwrap();
    assert_eq!(
        roles(store.clone()).await,
        set(&[(&a, ProjectRole::GroupReadOnly)])
    );
    // Deleting the key removes its roles with it.
    assert!(store.delete_api_key(&org.id, &key.id).await.unwrap());
    let again = api_key(&org, "roles002", now());
    store.insert_api_key(&again).await.unwrap();
    assert!(
        store
            .api_key(&again.id)
            .await
            .unwrap()
            .unwrap()
            .project_roles
            .is_empty()
    );
}

async fn api_key_secrets_are_updated_by_public_key(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let mut key = api_key(&org, "bootkey1", now());
    store.insert_api_key(&key).await.unwrap();
    key.ha1_md5 = "a".repeat(32);
    key.ha1_sha256 = "b".repeat(64);
    key.org_roles = vec![OrgRole::OrgReadOnly];
    assert!(store.update_api_key_secrets(&key).await.unwrap());
    assert_eq!(
        store.api_key_by_public_key("bootkey1").await.unwrap(),
        Some(key.clone())
    );
    let unknown = api_key(&org, "unknown1", now());
    assert!(!store.update_api_key_secrets(&unknown).await.unwrap());
    assert_eq!(store.api_key_by_public_key("unknown1").await.unwrap(), None);
}

async fn database_users_crud(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "users").await;
    let other = new_project(store.as_ref(), &org, "other").await;
    let bob = database_user(&project, "bob", DatabaseName::External);
    let alice = database_user(&project, "alice", DatabaseName::External);
    let alice_admin = DatabaseUser {
        x509_type: X509Type::None,
        ..database_user(&project, "alice", DatabaseName::Admin)
    };
    for u in [&bob, &alice, &alice_admin] {
        store.insert_database_user(u).await.unwrap();
    }
    // The key is (project, database, username).
    assert_conflict(store.insert_database_user(&bob).await);
    store
        .insert_database_user(&database_user(&other, "bob", DatabaseName::External))
        .await
        .unwrap();

    assert_eq!(
        store
            .database_user(&project.id, DatabaseName::External, &user("bob"))
            .await
            .unwrap(),
        Some(bob.clone())
    );
    assert_eq!(
        store
            .database_user(&project.id, DatabaseName::Admin, &user("bob"))
            .await
            .unwrap(),
        None
    );

    // Listed by username, then database, compared bytewise (`$external` < `admin`), paged.
    let first = store
        .list_database_users(&project.id, page(1, 2, true))
        .await
        .unwrap();
    assert_eq!(first.results, vec![alice.clone(), alice_admin.clone()]);
    assert_eq!(first.total_count, Some(3));
    assert!(first.has_next_page);
    let second = store
        .list_database_users(&project.id, page(2, 2, true))
        .await
        .unwrap();
    assert_eq!(second.results, vec![bob.clone()]);
    assert!(!second.has_next_page);

    let updated = DatabaseUser {
        x509_type: X509Type::Customer,
        roles: vec![DatabaseUserRole {
            database_name: "sales".into(),
            role_name: "read".into(),
            collection_name: "orders".into(),
        }],
        ..bob.clone()
    };
    assert!(store.update_database_user(&updated).await.unwrap());
    assert_eq!(
        store
            .database_user(&project.id, DatabaseName::External, &user("bob"))
            .await
            .unwrap(),
        Some(updated)
    );
    assert!(
        !store
            .update_database_user(&database_user(&project, "carol", DatabaseName::External))
            .await
            .unwrap()
    );

    assert!(
        store
            .delete_database_user(&project.id, DatabaseName::External, &user("bob"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_database_user(&project.id, DatabaseName::External, &user("bob"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .database_user(&project.id, DatabaseName::External, &user("bob"))
            .await
            .unwrap(),
        None
    );
    // The other project's bob is untouched.
    assert!(
        store
            .database_user(&other.id, DatabaseName::External, &user("bob"))
            .await
            .unwrap()
            .is_some()
    );
}

async fn concurrent_database_user_inserts_have_one_winner(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "race").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, u) = (
            store.clone(),
            database_user(&project, "racer", DatabaseName::External),
        );
        tasks.spawn(async move { store.insert_database_user(&u).await });
    }
    let (mut ok, mut conflict) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict) => conflict += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflict), (1, 7));
}

async fn user_security_round_trip(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "x509").await;
    assert_eq!(
        store
            .user_security(&project.id)
            .await
            .unwrap()
            .customer_ca_pem,
        None
    );
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    store.set_customer_ca(&project.id, Some(pem)).await.unwrap();
    assert_eq!(
        store
            .user_security(&project.id)
            .await
            .unwrap()
            .customer_ca_pem
            .as_deref(),
        Some(pem)
    );
    store.set_customer_ca(&project.id, None).await.unwrap();
    assert_eq!(
        store
            .user_security(&project.id)
            .await
            .unwrap()
            .customer_ca_pem,
        None
    );
    // An unknown project has the default settings.
    assert_eq!(
        store
            .user_security(&ProjectId::generate(now()))
            .await
            .unwrap()
            .customer_ca_pem,
        None
    );
}

async fn project_ca_is_insert_or_read(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "ca").await;
    assert!(store.project_ca(&project.id).await.unwrap().is_none());
    insert_ca(store.as_ref(), &project.id, &ca(1), now())
        .await
        .unwrap();
    assert_conflict(insert_ca(store.as_ref(), &project.id, &ca(2), now()).await);
    let stored = store.project_ca(&project.id).await.unwrap().unwrap();
    assert_eq!(stored.cert_der, ca(1).cert_der, "the first CA stays");
    assert_eq!(stored.sealed_key, ca(1).sealed_key);
}

async fn concurrent_project_ca_inserts_have_one_winner(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "ca-race").await;
    let mut tasks = tokio::task::JoinSet::new();
    for tag in 0..8u8 {
        let (store, id) = (store.clone(), project.id.clone());
        tasks.spawn(async move { (tag, insert_ca(store.as_ref(), &id, &ca(tag), now()).await) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (tag, Ok(())) => winners.push(tag),
            (_, Err(StoreError::Conflict)) => {}
            (_, Err(other)) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one CA insert wins: {winners:?}");
    let stored = store.project_ca(&project.id).await.unwrap().unwrap();
    assert_eq!(
        stored.cert_der,
        ca(winners[0]).cert_der,
        "the stored CA is the winner's"
    );
}

async fn certificate_serials_are_unique_per_project(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let (a, b) = (
        new_project(store.as_ref(), &org, "a").await,
        new_project(store.as_ref(), &org, "b").await,
    );
    let t = now();
    record_with_event(store.as_ref(), &certificate(&a, "alice", 7, t))
        .await
        .unwrap();
    assert_conflict(record_with_event(store.as_ref(), &certificate(&a, "bob", 7, t)).await);
    // Serials are per CA, so another project may use the same number.
    record_with_event(store.as_ref(), &certificate(&b, "alice", 7, t))
        .await
        .unwrap();
    // The largest serial (63 bits) round trips.
    record_with_event(store.as_ref(), &certificate(&a, "alice", i64::MAX, t))
        .await
        .unwrap();
    let listed = store
        .list_certificates(&a.id, "alice", t, page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(serials(&listed.results), vec![7, i64::MAX]);
}

/// A certificate the core issues needs its user still there when it is recorded: a user deleted
/// meanwhile (whose deletion revoked the certificates it saw) gets `UserGone`, nothing stored.
async fn a_certificate_of_a_deleted_user_is_not_recorded(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "gone").await;
    let t = now();
    let must_exist = |record: &CertificateRecord| NewCertificate {
        user_must_exist: true,
        ..unlimited(record, issued_event(record))
    };
    // No such user: refused, and neither the certificate nor its event is stored.
    let result = store
        .record_certificate(&must_exist(&certificate(&project, "alice", 1, t)))
        .await;
    assert!(matches!(result, Err(StoreError::UserGone)), "{result:?}");
    // A password user of that name on `admin` does not count: certificates are `$external`'s.
    store
        .insert_database_user(&database_user(&project, "alice", DatabaseName::Admin))
        .await
        .unwrap();
    let result = store
        .record_certificate(&must_exist(&certificate(&project, "alice", 2, t)))
        .await;
    assert!(matches!(result, Err(StoreError::UserGone)), "{result:?}");
    store
        .insert_database_user(&database_user(&project, "alice", DatabaseName::External))
        .await
        .unwrap();
    store
        .record_certificate(&must_exist(&certificate(&project, "alice", 3, t)))
        .await
        .unwrap();
    let listed = store
        .list_certificates(&project.id, "alice", t, page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(serials(&listed.results), vec![3]);
}

async fn list_certificates_only_unexpired_oldest_first(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "certs").await;
    let t = now();
    let newest = certificate(&project, "alice", 1, t - secs(10));
    let oldest = certificate(&project, "alice", 2, t - secs(30));
    // Same notBefore as `middle_b`: ties are ordered by serial.
    let middle_a = certificate(&project, "alice", 3, t - secs(20));
    let middle_b = certificate(&project, "alice", 4, t - secs(20));
    let expired = CertificateRecord {
        not_after: t - secs(1),
        ..certificate(&project, "alice", 5, t - secs(100))
    };
    let expires_now = CertificateRecord {
        not_after: t,
        ..certificate(&project, "alice", 6, t - secs(100))
    };
    let bobs = certificate(&project, "bob", 7, t - secs(40));
    for record in [
        &newest,
        &middle_b,
        &expired,
        &oldest,
        &expires_now,
        &middle_a,
        &bobs,
    ] {
        record_with_event(store.as_ref(), record).await.unwrap();
    }
    let listed = store
        .list_certificates(&project.id, "alice", t, page(1, 10, true))
        .await
        .unwrap();
    assert_eq!(
        listed.results,
        vec![oldest, middle_a, middle_b, newest.clone()]
    );
    assert_eq!(listed.total_count, Some(4));
    assert!(!listed.has_next_page);
    assert_eq!(
        store
            .count_unexpired_certificates(&project.id, "alice", t)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .count_unexpired_certificates(&project.id, "bob", t)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_unexpired_certificates(&project.id, "carol", t)
            .await
            .unwrap(),
        0
    );
    // A day later, everything has expired.
    let later = t + secs(86_400);
    assert_eq!(
        store
            .count_unexpired_certificates(&project.id, "alice", later)
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .list_certificates(&project.id, "alice", later, page(1, 10, true))
            .await
            .unwrap()
            .results
            .is_empty()
    );
}

async fn certificates_expiring_are_counted_over_every_project(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let first = new_project(store.as_ref(), &org, "expiring-a").await;
    let second = new_project(store.as_ref(), &org, "expiring-b").await;
    let t = now();
    let day = 86_400;
    // (project, serial, days until notAfter): expired, expiring now (expired at `t`), within
    // 7 days, exactly at 7 days (included), within 30, beyond 30.
    for (project, serial, not_after) in [
        (&first, 1, t - secs(1)),
        (&first, 2, t),
        (&first, 3, t + secs(3 * day)),
        (&second, 4, t + secs(7 * day)),
        (&second, 5, t + secs(20 * day)),
        (&first, 6, t + secs(40 * day)),
    ] {
        let record = CertificateRecord {
            not_after,
            ..certificate(project, "alice", serial, t - secs(day))
        };
        record_with_event(store.as_ref(), &record).await.unwrap();
    }
    let expiring = |days: i64| {
        let store = store.clone();
        async move {
            store
                .count_certificates_expiring(t, t + secs(days * day))
                .await
                .unwrap()
        }
    };
    assert_eq!(expiring(7).await, 2);
    assert_eq!(expiring(30).await, 3);
    assert_eq!(expiring(365).await, 4);
    assert_eq!(expiring(0).await, 0);
}

async fn certificate_paging(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "paging").await;
    let t = now();
    let records: Vec<CertificateRecord> = (0..5)
        .map(|i| certificate(&project, "alice", 100 + i, t - secs(50 - i)))
        .collect();
    for record in &records {
        record_with_event(store.as_ref(), record).await.unwrap();
    }
    let list = |num, include_count| {
        let store = store.clone();
        let id = project.id.clone();
        async move {
            store
                .list_certificates(&id, "alice", t, page(num, 2, include_count))
                .await
                .unwrap()
        }
    };
    let first = list(1, true).await;
    assert_eq!(first.results, records[0..2]);
    assert_eq!((first.total_count, first.has_next_page), (Some(5), true));
    let second = list(2, true).await;
    assert_eq!(second.results, records[2..4]);
    assert_eq!((second.total_count, second.has_next_page), (Some(5), true));
    let third = list(3, true).await;
    assert_eq!(third.results, records[4..5]);
    assert_eq!((third.total_count, third.has_next_page), (Some(5), false));
    let beyond = list(4, true).await;
    assert!(beyond.results.is_empty());
    assert_eq!((beyond.total_count, beyond.has_next_page), (Some(5), false));
    let uncounted = list(1, false).await;
    assert_eq!(
        (uncounted.total_count, uncounted.has_next_page),
        (None, true)
    );
}

async fn paging_edge_cases(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    // Nothing to list.
    let empty = store
        .list_projects(&org.id, None, page(1, 100, true))
        .await
        .unwrap();
    assert!(empty.results.is_empty());
    assert_eq!((empty.total_count, empty.has_next_page), (Some(0), false));
    let t = now();
    let projects: Vec<Project> = (0..4)
        .map(|i| project_in(&org, &format!("p{i}"), t - secs(10 - i)))
        .collect();
    for project in &projects {
        store.insert_project(project).await.unwrap();
    }
    // A full last page has no next page.
    let last = store
        .list_projects(&org.id, None, page(2, 2, true))
        .await
        .unwrap();
    assert_eq!(last.results, projects[2..4]);
    assert!(!last.has_next_page);
    // One item per page.
    let one = store
        .list_projects(&org.id, None, page(3, 1, false))
        .await
        .unwrap();
    assert_eq!(one.results, projects[2..3]);
    assert_eq!((one.total_count, one.has_next_page), (None, true));
    // The largest page size, and a page far beyond the end.
    let all = store
        .list_projects(&org.id, None, page(1, 500, true))
        .await
        .unwrap();
    assert_eq!(all.results, projects);
    let far = store
        .list_projects(&org.id, None, page(i32::MAX as u32, 500, true))
        .await
        .unwrap();
    assert!(far.results.is_empty());
    assert_eq!((far.total_count, far.has_next_page), (Some(4), false));
    // Users and keys page the same way.
    let users = store
        .list_database_users(&projects[0].id, page(1, 1, true))
        .await
        .unwrap();
    assert_eq!(
        (users.results.len(), users.total_count, users.has_next_page),
        (0, Some(0), false)
    );
    let keys = store
        .list_api_keys(&org.id, page(1, 1, true))
        .await
        .unwrap();
    assert_eq!(
        (keys.results.len(), keys.total_count, keys.has_next_page),
        (0, Some(0), false)
    );
}

async fn digest_nonce_uses_refuse_replays_and_purge(store: Arc<dyn Store>) {
    let t = now();
    assert!(
        store
            .record_nonce_use("nonce-a", "00000001", t + secs(300))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_nonce_use("nonce-a", "00000001", t + secs(300))
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        store
            .record_nonce_use("nonce-a", "00000002", t + secs(300))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_nonce_use("nonce-b", "00000001", t + secs(300))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_nonce_use("nonce-old", "00000001", t - secs(1))
            .await
            .unwrap()
    );

    assert_eq!(
        store.purge_nonce_uses(t).await.unwrap(),
        1,
        "only the expired use goes"
    );
    assert_eq!(store.purge_nonce_uses(t).await.unwrap(), 0);
    assert!(
        !store
            .record_nonce_use("nonce-a", "00000001", t + secs(300))
            .await
            .unwrap(),
        "still a replay"
    );
    assert_eq!(store.purge_nonce_uses(t + secs(301)).await.unwrap(), 3);
}

// === PostgreSQL only ===

#[test]
fn replaces_the_database_of_a_url() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_database("postgresql://u:p@h/test?sslmode=require", "x"),
        "postgresql://u:p@h/x?sslmode=require"
    );
}

/// Replicas starting together migrate one database once, under sqlx's advisory lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_starting_together_migrate_once() {
    let Some(db) = TestDatabase::create("postgres_replicas_starting_together_migrate_once").await
    else {
        return;
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url.clone();
        tasks.spawn(async move { dbcert::storage::open(&url).await.map(|_| ()) });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().expect("every replica opens the store");
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied, files as i64);
    pool.close().await;
}

/// The time index of the audit purge may be built by hand beforehand, without blocking writers
/// (`CREATE INDEX CONCURRENTLY`, as docs/deployment.md says for large tables): the migration
/// then finds it and does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_time_index_may_be_built_beforehand() {
    let Some(db) = TestDatabase::create("postgres_audit_time_index_may_be_built_beforehand").await
    else {
        return;
    };
    let store = PostgresStore::open(&db.url).await.unwrap();
    drop(store);
    // Back to the schema before migration 0005, then the operator's statement.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    for statement in [
        "DROP INDEX audit_events_occurred",
        "DELETE FROM _sqlx_migrations WHERE version = 5",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_occurred ON audit_events (occurred_at_us, id)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let (valid, definition): (bool, String) = sqlx::query_as(
        "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'audit_events_occurred'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(valid, "{definition}");
    assert!(definition.ends_with("(occurred_at_us, id)"), "{definition}");
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 5 AND success")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied, 1);
    pool.close().await;
    store.ping().await.unwrap();
}

/// Users are listed in bytewise order, as on SQLite, even in a database whose default
/// collation is linguistic (ICU en-US would put `_x` and `alice` before `Bob`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_users_bytewise_whatever_the_locale() {
    let Some(admin) = harness::pg::admin_url("postgres_lists_users_bytewise_whatever_the_locale")
    else {
        return;
    };
    let Some(db) = TestDatabase::create_with(
        &admin,
        "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    )
    .await
    else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "locale").await;
    for name in ["alice", "Bob", "_x"] {
        store
            .insert_database_user(&database_user(&project, name, DatabaseName::External))
            .await
            .unwrap();
    }
    let listed = store
        .list_database_users(&project.id, page(1, 10, true))
        .await
        .unwrap();
    let names: Vec<&str> = listed.results.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["Bob", "_x", "alice"]);
}

/// A server that refuses connections is `Unavailable` within the acquire timeout, not a hang.
#[tokio::test]
async fn postgres_unreachable_is_unavailable_fast() {
    if harness::pg::admin_url("postgres_unreachable_is_unavailable_fast").is_none() {
        return;
    }
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result = PostgresStore::open(&format!("postgres://postgres@127.0.0.1:{port}/none")).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < POSTGRES_ACQUIRE_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Errors other than unreachability are not retried at start: a missing database fails at once.
#[tokio::test]
async fn postgres_missing_database_fails_without_retrying() {
    let Some(admin) = harness::pg::admin_url("postgres_missing_database_fails_without_retrying")
    else {
        return;
    };
    let url = with_database(
        &admin,
        &format!("dbcert_missing_{}", uuid::Uuid::new_v4().simple()),
    );
    let started = Instant::now();
    let result = dbcert::storage::open(&url).await;
    assert!(
        matches!(result, Err(StoreError::Other(_))),
        "{:?}",
        result.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Connections cut under the pool (a restart, a failover) are replaced on the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recovers_when_connections_are_cut() {
    let Some(db) = TestDatabase::create("postgres_recovers_when_connections_are_cut").await else {
        return;
    };
    let store = PostgresStore::open(&db.url).await.unwrap();
    store.ping().await.unwrap();
    assert!(
        db.terminate_connections().await >= 1,
        "the pool held a connection"
    );
    store
        .ping()
        .await
        .expect("a fresh connection replaces the cut one");
    assert_eq!(
        store.put_meta_if_absent("after", "cut").await.unwrap(),
        "cut"
    );
}

// === batched certificate records ===

async fn certificates_are_recorded_in_batches_with_their_events(
    store: Arc<dyn Store>,
    url: String,
) {
    let org = new_org(store.as_ref()).await;
    let a = new_project(store.as_ref(), &org, "a").await;
    let t = now();
    let events = |store: Arc<dyn Store>| {
        let a = a.id.clone();
        async move {
            let listed = store
                .list_audit_events(
                    &AuditScope::Project(a),
                    &AuditFilter::default(),
                    page(1, 500, true),
                )
                .await
                .unwrap();
            let mut serials: Vec<i64> = listed.results.iter().filter_map(|e| e.serial).collect();
            serials.sort_unstable();
            serials
        }
    };

    let first = certificate(&a, "alice", 1, t);
    store
        .record_certificate(&unlimited(&first, issued_event(&first)))
        .await
        .unwrap();
    // One transaction: each record gets its own answer; a taken serial (before or within the
    // batch) is a conflict and its event is not stored.
    let batch: Vec<_> = [
        certificate(&a, "alice", 2, t),
        certificate(&a, "bob", 1, t),
        certificate(&a, "bob", 3, t),
        certificate(&a, "carol", 3, t),
    ]
    .into_iter()
    .map(|record| {
        let mut event = issued_event(&record);
        event.id = format!("{:012x}{:012x}", record.serial, record.username.len());
        unlimited(&record, event)
    })
    .collect();
    let results = store.record_certificates(&batch).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::Conflict)),
        "{results:?}"
    );
    assert!(
        matches!(results[3], Err(StoreError::Conflict)),
        "{results:?}"
    );
    assert_eq!(events(store.clone()).await, [1, 2, 3]);
    assert_eq!(
        serials(
            &store
                .list_certificates(&a.id, "bob", t, page(1, 100, false))
                .await
                .unwrap()
                .results
        ),
        [3]
    );

    // Through the group-commit writer: concurrent callers, each answered for its own record
    // after the commit holding it and its event.
    let batched = dbcert::storage::open(&url).await.unwrap();
    let calls = (100..120).chain([2]).map(|serial| {
        let batched = batched.clone();
        let record = certificate(&a, "dave", serial, t);
        tokio::spawn(async move {
            let result = batched
                .record_certificate(&unlimited(&record, issued_event(&record)))
                .await;
            (serial, result)
        })
    });
    for call in calls.collect::<Vec<_>>() {
        let (serial, result) = call.await.unwrap();
        if serial == 2 {
            assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        } else {
            result.unwrap();
        }
    }
    let mut expected = vec![1, 2, 3];
    expected.extend(100..120);
    assert_eq!(events(store.clone()).await, expected);
    assert_eq!(
        store
            .count_unexpired_certificates(&a.id, "dave", t)
            .await
            .unwrap(),
        20
    );
}

// === audit events: listing and retention ===

/// An event at `at` (microseconds matter: the stores keep them).
fn audit_event(
    n: u32,
    at: OffsetDateTime,
    action: AuditAction,
    org: Option<&Organization>,
    project: Option<&Project>,
) -> AuditEvent {
    AuditEvent {
        id: format!("{:016x}{n:08x}", rand::random::<u64>()),
        at,
        actor: Actor::ApiKey {
            id: None,
            public_key: Some("abcdefgh".into()),
        },
        client_address: Some("192.0.2.1:4000".parse().unwrap()),
        org_id: org.map(|o| o.id.clone()),
        project_id: project.map(|p| p.id.clone()),
        action,
        target: None,
        serial: None,
        outcome: AuditOutcome::Success,
    }
}

async fn listed(
    store: &dyn Store,
    scope: &AuditScope,
    filter: &AuditFilter,
) -> (Vec<AuditAction>, Option<u64>) {
    let page = store
        .list_audit_events(scope, filter, page(1, 500, true))
        .await
        .unwrap();
    (
        page.results.iter().map(|e| e.action).collect(),
        page.total_count,
    )
}

async fn audit_events_are_listed_by_scope_and_filter(store: Arc<dyn Store>) {
    use AuditAction::*;
    let (a, b) = (new_org(store.as_ref()).await, new_org(store.as_ref()).await);
    let p = new_project(store.as_ref(), &a, "p").await;
    let q = new_project(store.as_ref(), &a, "q").await;
    // Microsecond steps from a time with a fraction, so the bounds are checked to the
    // microsecond; inserted out of order, listed newest first (as Atlas lists events).
    let t0 = now() - secs(3600) + time::Duration::microseconds(250_001);
    let at = |n: i64| t0 + time::Duration::microseconds(n);
    let events = [
        audit_event(4, at(4), DatabaseUserCreated, Some(&a), Some(&p)),
        audit_event(0, at(0), ProjectCreated, Some(&a), Some(&p)),
        audit_event(1, at(1), ApiKeyCreated, Some(&a), None),
        audit_event(2, at(2), AuthenticationFailed, Some(&a), None),
        audit_event(3, at(3), ProjectCreated, Some(&a), Some(&q)),
        audit_event(5, at(5), ApiKeyCreated, Some(&b), None),
        audit_event(6, at(6), AuthenticationFailed, None, None),
    ];
    for event in &events {
        store.insert_audit_event(event).await.unwrap();
    }
    let all = AuditFilter::default();
    let org_a = AuditScope::Org(a.id.clone());
    assert_eq!(
        listed(store.as_ref(), &org_a, &all).await,
        (
            vec![
                DatabaseUserCreated,
                ProjectCreated,
                AuthenticationFailed,
                ApiKeyCreated,
                ProjectCreated,
            ],
            Some(5)
        )
    );
    assert_eq!(
        listed(store.as_ref(), &AuditScope::Org(b.id.clone()), &all).await,
        (vec![ApiKeyCreated], Some(1))
    );
    assert_eq!(
        listed(store.as_ref(), &AuditScope::Project(p.id.clone()), &all).await,
        (vec![DatabaseUserCreated, ProjectCreated], Some(2))
    );
    // The stored event reads back whole.
    let page_one = store
        .list_audit_events(&org_a, &all, page(1, 1, false))
        .await
        .unwrap();
    assert_eq!(page_one.results, [events[0].clone()]);
    assert!(page_one.has_next_page && page_one.total_count.is_none());
    // One event by id, whatever its scope; an unknown id is none.
    for event in &events {
        assert_eq!(
            store.audit_event(&event.id).await.unwrap().as_ref(),
            Some(event)
        );
    }
    assert_eq!(
        store.audit_event("0123456789abcdef01234567").await.unwrap(),
        None
    );

    // eventType: any of the given actions; dates: inclusive, to the microsecond.
    let filter = |actions: Vec<AuditAction>, min: Option<i64>, max: Option<i64>| AuditFilter {
        actions,
        no_action: false,
        min_date: min.map(at),
        max_date: max.map(at),
    };
    assert_eq!(
        listed(
            store.as_ref(),
            &org_a,
            &filter(vec![ApiKeyCreated, AuthenticationFailed], None, None)
        )
        .await,
        (vec![AuthenticationFailed, ApiKeyCreated], Some(2))
    );
    assert_eq!(
        listed(
            store.as_ref(),
            &org_a,
            &filter(Vec::new(), Some(1), Some(3))
        )
        .await,
        (
            vec![ProjectCreated, AuthenticationFailed, ApiKeyCreated],
            Some(3)
        )
    );
    assert_eq!(
        listed(
            store.as_ref(),
            &org_a,
            &filter(vec![ProjectCreated], Some(1), None)
        )
        .await,
        (vec![ProjectCreated], Some(1))
    );
    // A bound between two microseconds: the event before it is out, the one after it in.
    let half = time::Duration::nanoseconds(500);
    let between = AuditFilter {
        actions: Vec::new(),
        no_action: false,
        min_date: Some(at(1) - half),
        max_date: Some(at(3) + half),
    };
    assert_eq!(listed(store.as_ref(), &org_a, &between).await.1, Some(3));
    let between = AuditFilter {
        actions: Vec::new(),
        no_action: false,
        min_date: Some(at(1) + half),
        max_date: Some(at(3) - half),
    };
    assert_eq!(
        listed(store.as_ref(), &org_a, &between).await,
        (vec![AuthenticationFailed], Some(1))
    );
    // An empty range and a filter nothing matches.
    assert_eq!(
        listed(
            store.as_ref(),
            &org_a,
            &filter(Vec::new(), Some(4), Some(2))
        )
        .await,
        (Vec::new(), Some(0))
    );
    assert_eq!(
        listed(
            store.as_ref(),
            &AuditScope::Project(q.id.clone()),
            &filter(vec![CertificateIssued], None, None)
        )
        .await,
        (Vec::new(), Some(0))
    );
    // Event types dbcert never records (Atlas's, such as CLUSTER_CREATED): nothing matches.
    let none = AuditFilter {
        no_action: true,
        ..AuditFilter::default()
    };
    assert_eq!(
        listed(store.as_ref(), &org_a, &none).await,
        (Vec::new(), Some(0))
    );
    // The filter's own definition agrees with the stores'.
    let f = filter(vec![ProjectCreated, ApiKeyCreated], Some(1), Some(5));
    let expected: Vec<AuditAction> = {
        let mut matching: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.org_id.as_ref() == Some(&a.id) && f.matches(e))
            .collect();
        matching.sort_by_key(|e| std::cmp::Reverse(e.at));
        matching.iter().map(|e| e.action).collect()
    };
    assert_eq!(listed(store.as_ref(), &org_a, &f).await.0, expected);
}

async fn audit_purge_deletes_the_oldest_in_batches_and_keeps_certificates(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "p").await;
    let t = now();
    let cutoff = t - secs(86_400);
    // Five events before the cutoff (one a certificate's, recorded with its record), one at
    // it (not before it: kept) and two after.
    let old_cert = certificate(&project, "alice", 7, cutoff - secs(10));
    let mut old_cert_event = issued_event(&old_cert);
    old_cert_event.org_id = Some(org.id.clone());
    store
        .record_certificate(&unlimited(&old_cert, old_cert_event.clone()))
        .await
        .unwrap();
    for n in 1..=4 {
        let event = audit_event(
            n,
            cutoff - secs(i64::from(n) * 60),
            AuditAction::ApiKeyCreated,
            Some(&org),
            None,
        );
        store.insert_audit_event(&event).await.unwrap();
    }
    for (n, at) in [(10, cutoff), (11, cutoff + secs(1)), (12, t)] {
        let event = audit_event(
            n,
            at,
            AuditAction::ProjectCreated,
            Some(&org),
            Some(&project),
        );
        store.insert_audit_event(&event).await.unwrap();
    }
    let scope = AuditScope::Org(org.id.clone());
    let all = AuditFilter::default();
    assert_eq!(listed(store.as_ref(), &scope, &all).await.1, Some(8));

    // Batches of two, oldest first, until fewer than a batch is left.
    let mut old_times = vec![old_cert_event.at];
    old_times.extend((1..=4).map(|n| cutoff - secs(n * 60)));
    old_times.sort();
    let mut batches = Vec::new();
    let mut deleted_so_far = 0;
    loop {
        let deleted = store.purge_audit_events(cutoff, 2).await.unwrap();
        batches.push(deleted);
        deleted_so_far += deleted as usize;
        let left_old: Vec<OffsetDateTime> = store
            .list_audit_events(&scope, &all, page(1, 500, false))
            .await
            .unwrap()
            .results
            .iter()
            .rev()
            .map(|e| e.at)
            .filter(|at| *at < cutoff)
            .collect();
        assert_eq!(left_old, old_times[deleted_so_far..], "after {batches:?}");
        if deleted < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 2, 1]);
    assert_eq!(store.purge_audit_events(cutoff, 2).await.unwrap(), 0);
    let (left, count) = listed(store.as_ref(), &scope, &all).await;
    assert_eq!(count, Some(3));
    assert!(left.iter().all(|a| *a == AuditAction::ProjectCreated));
    // The certificate record is not an audit event: it stays, and is still listed.
    assert_eq!(
        serials(
            &store
                .list_certificates(&project.id, "alice", cutoff, page(1, 100, true))
                .await
                .unwrap()
                .results
        ),
        [7]
    );
    assert_eq!(
        store
            .count_unexpired_certificates(&project.id, "alice", cutoff)
            .await
            .unwrap(),
        1
    );
}

async fn concurrent_audit_purges_delete_each_event_once(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let cutoff = now() - secs(86_400);
    for n in 0..60 {
        let at = cutoff - secs(1000) + time::Duration::microseconds(i64::from(n % 7));
        let event = audit_event(n, at, AuditAction::AuthenticationFailed, Some(&org), None);
        store.insert_audit_event(&event).await.unwrap();
    }
    let kept = audit_event(
        99,
        cutoff + secs(1),
        AuditAction::ApiKeyCreated,
        Some(&org),
        None,
    );
    store.insert_audit_event(&kept).await.unwrap();
    // Four purgers at once, as four replicas would (each call takes its own connection).
    let purgers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                let deleted = store.purge_audit_events(cutoff, 7).await.unwrap();
                total += deleted;
                if deleted < 7 {
                    return total;
                }
            }
        })
    });
    let mut total = 0;
    for purger in purgers.collect::<Vec<_>>() {
        total += purger.await.unwrap();
    }
    assert_eq!(total, 60);
    let left = store
        .list_audit_events(
            &AuditScope::Org(org.id.clone()),
            &AuditFilter::default(),
            page(1, 500, true),
        )
        .await
        .unwrap();
    assert_eq!(left.results, [kept]);
}

async fn audit_purge_passes_through_the_decorators(store: Arc<dyn Store>, url: String) {
    let org = new_org(store.as_ref()).await;
    let cutoff = now() - secs(60);
    let old = audit_event(
        1,
        cutoff - secs(1),
        AuditAction::ApiKeyDeleted,
        Some(&org),
        None,
    );
    let new = audit_event(
        2,
        cutoff + secs(1),
        AuditAction::ApiKeyDeleted,
        Some(&org),
        None,
    );
    // Opened as the service opens it: group commit and a read cache.
    let decorated = dbcert::storage::open_with_cache(&url, Duration::from_secs(60))
        .await
        .unwrap();
    for event in [&old, &new] {
        decorated.insert_audit_event(event).await.unwrap();
    }
    let scope = AuditScope::Org(org.id.clone());
    let only_deletes = AuditFilter {
        actions: vec![AuditAction::ApiKeyDeleted],
        ..AuditFilter::default()
    };
    assert_eq!(
        listed(decorated.as_ref(), &scope, &only_deletes).await.1,
        Some(2)
    );
    assert_eq!(decorated.purge_audit_events(cutoff, 10).await.unwrap(), 1);
    // Read through the decorators and beside them: the same, nothing cached.
    for store in [&decorated, &store] {
        let left = store
            .list_audit_events(&scope, &only_deletes, page(1, 10, true))
            .await
            .unwrap();
        assert_eq!(left.results, std::slice::from_ref(&new));
    }
}
