//! Issue 13, item 5: the per-user certificate limit (`--max-certificates-per-user`) holds under
//! concurrency and across replicas. Parallel creates, over the Atlas REST route on SQLite and
//! through two real replicas on one PostgreSQL database, give exactly the limit's number of
//! certificates; a crowd of gRPC issues shares group commits without passing it; and the
//! store itself (both backends) admits a batch's certificates of one user in order up to the
//! limit, frees the places of expired certificates, and starts each user's count from the
//! certificates already stored when it migrates.
//!
//! The PostgreSQL cases need `DBCERT_TEST_DATABASE_URL` (see `harness/pg.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use dbcert::domain::{
    Actor, AuditAction, AuditEvent, AuditOutcome, CertificateLimit, CertificateRecord,
    NewCertificate, OrgId, Organization, Page, Project, ProjectId, Store, StoreError,
};
use dbcert::proto::v1::{CreateUserCertificateRequest, KeyType};
use dbcert::storage::{PostgresStore, SqliteStore};
use time::OffsetDateTime;
use tonic::Code;

use crate::harness::atlas::{Alg, Atlas, Resp};
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::pg::TestDatabase;
use crate::harness::{Key, TestServer, error_code};

/// The limit the service cases run with.
const CAP: u64 = 3;
/// Parallel creates in the service cases.
const PARALLEL: usize = 8;
/// The error a create past the limit gets.
const LIMIT_CODE: &str = "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED";

// === over the service ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_rest_creates_on_sqlite_get_exactly_the_cap() {
    let server = TestServer::start_with(|c| c.core.max_certificates_per_user = CAP).await;
    let clients = server.clients().await;
    let group = clients.create_project("cap").await;
    clients.create_managed_user(&group, "alice").await;
    let atlas = Atlas::new(&server);

    let responses = parallel_creates(std::slice::from_ref(&atlas), &group, "alice").await;
    let issued = assert_exactly_the_cap(&responses);
    assert_eq!(listed_serials(&atlas, &group, "alice").await, issued);

    // In the database file itself.
    let url = format!(
        "{}?mode=ro",
        SqliteStore::url_in(&server.data_dir).replacen("sqlite://", "sqlite:", 1)
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM certificates WHERE project_id = $1 AND username = 'alice'",
    )
    .bind(&group)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(rows, CAP as i64, "certificate records of alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_rest_creates_on_two_postgres_replicas_get_exactly_the_cap() {
    let Some(db) = TestDatabase::create("sec_cap::two_replicas").await else {
        return;
    };
    let key = Key::random();
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = tokio::join!(
        Spawned::start(replica(dir_a.path(), &db.url, &master_key, &key)),
        Spawned::start(replica(dir_b.path(), &db.url, &master_key, &key)),
    );
    let clients = a.clients(&key).await;
    b.wait_serving().await;
    let group = clients.create_project("cap").await;
    clients.create_managed_user(&group, "alice").await;
    let atlas = |process: &Spawned| Atlas {
        http: reqwest::Client::new(),
        base: format!("http://{}", process.http_addr),
        key: key.clone(),
        alg: Alg::Md5,
    };
    let (via_a, via_b) = (atlas(&a), atlas(&b));

    // Half of the creates through each replica, all at once.
    let responses = parallel_creates(&[via_a.clone(), via_b.clone()], &group, "alice").await;
    let issued = if responses.iter().filter(|r| r.status == 201).count() == CAP as usize {
        assert_exactly_the_cap(&responses)
    } else {
        panic!(
            "statuses {:?}\nA:\n{}\nB:\n{}",
            statuses(&responses),
            a.log(),
            b.log()
        )
    };
    assert_eq!(listed_serials(&via_a, &group, "alice").await, issued);
    assert_eq!(listed_serials(&via_b, &group, "alice").await, issued);

    // In the shared database itself.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM certificates WHERE project_id = $1 AND username = 'alice'",
    )
    .bind(&group)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(rows, CAP as i64, "certificate records of alice");

    // A crowd of cheap ECDSA issues for another user through both replicas: their commits
    // overlap in time, and still exactly the limit's number of certificates are issued.
    clients.create_managed_user(&group, "bob").await;
    let via = [clients, b.clients(&key).await];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (clients, group) = (via[i % 2].clone(), group.clone());
        tasks.spawn(async move { issue_ecdsa(&clients, &group, "bob").await });
    }
    let mut issued = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(()) => issued += 1,
            Err(status) => assert_eq!(error_code(&status), LIMIT_CODE, "{status:?}"),
        }
    }
    assert_eq!(
        issued,
        CAP,
        "bob's certificates through two replicas\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    drop((a, b));
}

/// Many more issues than the limit, with cheap ECDSA keys, so they reach the writer together
/// and share commits: one user gets exactly the limit; another, in the same batches, gets
/// every certificate it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_grpc_issues_gets_exactly_the_cap_and_other_users_are_unaffected() {
    const ALICE: usize = 40;
    const BOB: usize = 4;
    const LIMIT: u64 = 5;
    let server = TestServer::start_with(|c| c.core.max_certificates_per_user = LIMIT).await;
    let clients = server.clients().await;
    let group = clients.create_project("crowd").await;
    for user in ["alice", "bob"] {
        clients.create_managed_user(&group, user).await;
    }
    // The project's CA first, so the crowd does not wait on its creation.
    clients.create_managed_user(&group, "carol").await;
    issue_ecdsa(&clients, &group, "carol").await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ALICE + BOB {
        let (clients, group) = (clients.clone(), group.clone());
        let user = if i % 11 == 3 && i / 11 < BOB {
            "bob"
        } else {
            "alice"
        };
        tasks.spawn(async move { (user, issue_ecdsa(&clients, &group, user).await) });
    }
    let (mut alice, mut bob, mut refused) = (0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            ("alice", Ok(_)) => alice += 1,
            ("bob", Ok(_)) => bob += 1,
            ("alice", Err(status)) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(error_code(&status), LIMIT_CODE);
                refused += 1;
            }
            (user, result) => panic!("{user}: {result:?}"),
        }
    }
    assert_eq!(
        (alice, refused, bob),
        (LIMIT as usize, ALICE - LIMIT as usize, BOB),
        "(alice's certificates, alice's refusals, bob's certificates)"
    );
}

// === the store, on both backends ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_admits_in_order_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteStore::url_in(dir.path()))
        .await
        .unwrap();
    admits_in_order_up_to_the_limit(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_admits_in_order_up_to_the_limit() {
    let Some(db) = TestDatabase::create("sec_cap::postgres_store").await else {
        return;
    };
    let store = PostgresStore::open(&db.url).await.unwrap();
    admits_in_order_up_to_the_limit(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_counts_the_certificates_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqliteStore::url_in(dir.path());
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
        .await
        .unwrap();
    migrate_before_counts(&pool, "sqlite").await;
    let project = stored_before_counts(&pool).await;
    pool.close().await;
    let store = SqliteStore::open(&url).await.unwrap();
    counts_start_from_what_was_stored(&store, &project).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_counts_the_certificates_already_stored() {
    let Some(db) = TestDatabase::create("sec_cap::postgres_migration").await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    migrate_before_counts(&pool, "postgres").await;
    let project = stored_before_counts(&pool).await;
    pool.close().await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    counts_start_from_what_was_stored(&store, &project).await;
}

/// The read cache of a store (the early check before signing) counts each record once, and a
/// refusal at the limit (another replica filled it) makes it answer the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_count_follows_records_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqliteStore::url_in(dir.path());
    let cached: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&url)
            .await
            .unwrap()
            .with_cache(std::time::Duration::from_secs(3600)),
    );
    // Another replica, writing to the same database.
    let other: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let t = now();
    let org = Organization {
        id: OrgId::generate(t),
        name: "org".into(),
    };
    cached.insert_organization(&org).await.unwrap();
    let project = new_project(cached.as_ref(), &org, "p", t).await;
    let count = |user: &'static str| {
        let (cached, project_id) = (cached.clone(), project.id.clone());
        async move {
            cached
                .count_unexpired_certificates(&project_id, user, t)
                .await
                .unwrap()
        }
    };
    let record = |serial| {
        new(
            certificate(&project, "alice", serial, t, t + time::Duration::days(1)),
            CertificateLimit { max: 3, now: t },
        )
    };

    assert_eq!(count("alice").await, 0);
    cached.record_certificate(&record(1)).await.unwrap();
    assert_eq!(count("alice").await, 1, "one record counted once");

    // The other replica fills alice's limit; the cache still says one...
    for serial in [2, 3] {
        other.record_certificate(&record(serial)).await.unwrap();
    }
    assert_eq!(count("alice").await, 1);
    // ...until a record here is refused at the limit.
    assert!(matches!(
        cached.record_certificate(&record(4)).await,
        Err(StoreError::LimitReached)
    ));
    assert_eq!(count("alice").await, 3, "a refusal shows the limit reached");
}

/// A user's certificates are admitted in order up to the limit, in one call and across
/// calls; expired certificates free their places; users and projects are counted apart; a
/// refused certificate leaves no record and no event.
async fn admits_in_order_up_to_the_limit(store: Arc<dyn Store>) {
    let t = now();
    let org = Organization {
        id: OrgId::generate(t),
        name: "org".into(),
    };
    store.insert_organization(&org).await.unwrap();
    let project = new_project(store.as_ref(), &org, "p", t).await;
    let other = new_project(store.as_ref(), &org, "q", t).await;
    let limit = |max, now| CertificateLimit { max, now };
    let secs = time::Duration::seconds;

    // Two that expire at t+100 fill a limit of 2; a third is refused at t...
    for serial in [1, 2] {
        let cert = certificate(&project, "alice", serial, t, t + secs(100));
        store
            .record_certificate(&new(cert, limit(2, t)))
            .await
            .unwrap();
    }
    let third = new(
        certificate(&project, "alice", 3, t, t + secs(1000)),
        limit(2, t),
    );
    assert!(
        matches!(
            store.record_certificate(&third).await,
            Err(StoreError::LimitReached)
        ),
        "a third certificate at a limit of two"
    );
    assert_eq!(serials(store.as_ref(), &project, "alice", t).await, [1, 2]);
    // ...and admitted once the first two have expired.
    let later = t + secs(150);
    let third = new(third.record, limit(2, later));
    store.record_certificate(&third).await.unwrap();
    assert_eq!(serials(store.as_ref(), &project, "alice", later).await, [3]);

    // One batch: alice has one place left, bob (and alice in another project) all theirs.
    let batch = [
        new(
            certificate(&project, "alice", 4, t, t + secs(1000)),
            limit(2, later),
        ),
        new(
            certificate(&project, "bob", 5, t, t + secs(1000)),
            limit(2, later),
        ),
        new(
            certificate(&project, "alice", 6, t, t + secs(1000)),
            limit(2, later),
        ),
        new(
            certificate(&other, "alice", 7, t, t + secs(1000)),
            limit(2, later),
        ),
        new(
            certificate(&project, "alice", 8, t, t + secs(1000)),
            limit(2, later),
        ),
        new(
            certificate(&project, "bob", 9, t, t + secs(1000)),
            limit(2, later),
        ),
    ];
    let results = store.record_certificates(&batch).await.unwrap();
    let outcome: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(()) => "ok",
            Err(StoreError::LimitReached) => "limit",
            Err(_) => "other",
        })
        .collect();
    assert_eq!(outcome, ["ok", "ok", "limit", "ok", "limit", "ok"]);
    assert_eq!(
        serials(store.as_ref(), &project, "alice", later).await,
        [3, 4]
    );
    assert_eq!(
        serials(store.as_ref(), &project, "bob", later).await,
        [5, 9]
    );
    assert_eq!(serials(store.as_ref(), &other, "alice", later).await, [7]);
    // A refused certificate's event is not stored: the project's events name admitted serials.
    let events = store
        .list_audit_events(
            &dbcert::domain::AuditScope::Project(project.id.clone()),
            &dbcert::domain::AuditFilter::default(),
            page(),
        )
        .await
        .unwrap();
    let mut evented: Vec<i64> = events.results.iter().filter_map(|e| e.serial).collect();
    evented.sort_unstable();
    assert_eq!(evented, [1, 2, 3, 4, 5, 9]);
}

/// Applies the migrations that come before the per-user counts (through 0006).
async fn migrate_before_counts<'a, A>(pool: A, dialect: &str)
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let before: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 6)
        .cloned()
        .collect();
    assert!(
        before.len() < migrator.migrations.len(),
        "the counts come after 0006"
    );
    migrator.migrations = before.into();
    migrator.run(pool).await.unwrap();
}

/// Stores, as an earlier version did, a project whose user alice has two unexpired and three
/// expired certificates; returns the project's id.
async fn stored_before_counts<'a, E>(pool: E) -> ProjectId
where
    E: sqlx::Executor<'a> + Copy,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
    for<'q> &'q str: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
    for<'q> i64: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
{
    let t = now();
    let org = OrgId::generate(t);
    let project = ProjectId::generate(t);
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'org', $2)")
        .bind(org.as_str())
        .bind(t.unix_timestamp())
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO projects (id, org_id, name, created_at) VALUES ($1, $2, 'p', $3)")
        .bind(project.as_str())
        .bind(org.as_str())
        .bind(t.unix_timestamp())
        .execute(pool)
        .await
        .unwrap();
    for serial in 1..=5i64 {
        // Serials 1 and 2 expire in a day; 3 to 5 expired an hour ago.
        let not_after = if serial <= 2 {
            t.unix_timestamp() + 86_400
        } else {
            t.unix_timestamp() - 3_600
        };
        sqlx::query(
            "INSERT INTO certificates (project_id, serial, username, subject, not_before, \
             not_after, sha256_fingerprint) VALUES ($1, $2, 'alice', 'CN=alice', $3, $4, $5)",
        )
        .bind(project.as_str())
        .bind(serial)
        .bind(t.unix_timestamp() - 86_400)
        .bind(not_after)
        .bind(format!("{serial:064x}").as_str())
        .execute(pool)
        .await
        .unwrap();
    }
    project
}

/// After the migration, alice's two unexpired certificates are counted: of two more at a
/// limit of three, one is admitted.
async fn counts_start_from_what_was_stored(store: &dyn Store, project_id: &ProjectId) {
    let t = now();
    let project = Project {
        id: project_id.clone(),
        name: "p".into(),
        org_id: OrgId::generate(t),
        created: t,
    };
    let batch: Vec<NewCertificate> = [10, 11]
        .into_iter()
        .map(|serial| {
            new(
                certificate(&project, "alice", serial, t, t + time::Duration::days(1)),
                CertificateLimit { max: 3, now: t },
            )
        })
        .collect();
    let results = store.record_certificates(&batch).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::LimitReached)),
        "{results:?}"
    );
    assert_eq!(serials(store, &project, "alice", t).await, [1, 2, 10]);
}

// === helpers ===

/// `dbcert serve` as a replica on the shared PostgreSQL database, with the limit at [`CAP`].
fn replica(dir: &Path, database_url: &str, master_key: &str, key: &Key) -> Command {
    let mut command = serve_command(dir);
    command
        .env("DBCERT_DATABASE", database_url)
        .env("DBCERT_MASTER_KEY", master_key)
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        )
        .env("DBCERT_MAX_CERTIFICATES_PER_USER", CAP.to_string());
    command
}

/// [`PARALLEL`] creates of `user`'s certificate over REST at once, spread over `atlases`.
async fn parallel_creates(atlases: &[Atlas], group: &str, user: &str) -> Vec<Resp> {
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/{user}/certs");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..PARALLEL {
        let (atlas, path) = (atlases[i % atlases.len()].clone(), path.clone());
        tasks.spawn(async move { atlas.post(&path, r#"{"monthsUntilExpiration":1}"#).await });
    }
    let mut responses = Vec::with_capacity(PARALLEL);
    while let Some(response) = tasks.join_next().await {
        responses.push(response.unwrap());
    }
    responses
}

/// The statuses of `responses`, sorted (a 201's body holds a private key: never printed).
fn statuses(responses: &[Resp]) -> Vec<u16> {
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    statuses
}

/// Asserts exactly [`CAP`] certificates and Atlas's limit error for every other create;
/// returns the certificates' serials, read from the PEM by an X.509 parser.
#[track_caller]
fn assert_exactly_the_cap(responses: &[Resp]) -> BTreeSet<i64> {
    let created: Vec<&Resp> = responses.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        created.len(),
        CAP as usize,
        "statuses {:?}",
        statuses(responses)
    );
    for refused in responses.iter().filter(|r| r.status != 201) {
        let body = refused.assert_error(400, LIMIT_CODE);
        assert_eq!(
            body["parameters"],
            serde_json::json!(["alice", CAP.to_string()])
        );
    }
    let serials: BTreeSet<i64> = created.iter().map(|r| pem_serial(&r.body)).collect();
    assert_eq!(serials.len(), CAP as usize, "distinct certificates");
    serials
}

/// The serial of the first certificate in a PEM bundle.
fn pem_serial(pem: &str) -> i64 {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    cert.raw_serial()
        .iter()
        .fold(0i64, |n, b| (n << 8) | i64::from(*b))
}

/// The serials the REST listing shows for a user; its `totalCount` must agree.
async fn listed_serials(atlas: &Atlas, group: &str, user: &str) -> BTreeSet<i64> {
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers/{user}/certs?itemsPerPage=500"
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    let serials: BTreeSet<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["_id"].as_i64().unwrap())
        .collect();
    assert_eq!(body["totalCount"], serials.len(), "{body}");
    serials
}

async fn issue_ecdsa(
    clients: &crate::harness::Clients,
    group: &str,
    user: &str,
) -> Result<(), tonic::Status> {
    clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group.into(),
            username: user.into(),
            months_until_expiration: Some(1),
            key_type: KeyType::EcdsaP256 as i32,
            csr_pem: None,
        })
        .await
        .map(drop)
}

/// Now, in whole seconds (the stores keep seconds).
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn page() -> Page {
    Page {
        num: 1,
        items_per_page: 500,
        include_count: false,
    }
}

async fn new_project(
    store: &dyn Store,
    org: &Organization,
    name: &str,
    t: OffsetDateTime,
) -> Project {
    let project = Project {
        id: ProjectId::generate(t),
        name: name.into(),
        org_id: org.id.clone(),
        created: t,
    };
    store.insert_project(&project).await.unwrap();
    project
}

fn certificate(
    project: &Project,
    username: &str,
    serial: i64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateRecord {
    CertificateRecord {
        serial,
        project_id: project.id.clone(),
        username: username.into(),
        subject: format!("CN={username}"),
        not_before,
        not_after,
        sha256_fingerprint: format!("{serial:064x}"),
        ca_generation: 1,
    }
}

/// The record with its `CERTIFICATE_ISSUED` event, under `limit`.
fn new(record: CertificateRecord, limit: CertificateLimit) -> NewCertificate {
    let event = AuditEvent {
        id: format!(
            "{:016x}{:08x}",
            rand::random::<u64>(),
            rand::random::<u32>()
        ),
        at: record.not_before,
        actor: Actor::System,
        client_address: None,
        org_id: None,
        project_id: Some(record.project_id.clone()),
        action: AuditAction::CertificateIssued,
        target: Some(record.username.clone()),
        serial: Some(record.serial),
        outcome: AuditOutcome::Success,
    };
    NewCertificate {
        record,
        event,
        limit,
        user_must_exist: false,
    }
}

/// A user's certificates unexpired at `at`, by serial.
async fn serials(store: &dyn Store, project: &Project, user: &str, at: OffsetDateTime) -> Vec<i64> {
    let mut serials: Vec<i64> = store
        .list_certificates(&project.id, user, at, page())
        .await
        .unwrap()
        .results
        .iter()
        .map(|c| c.serial)
        .collect();
    serials.sort_unstable();
    serials
}
