//! Two real `dbcert serve` processes on one PostgreSQL database act as one service: the first
//! certificates of a new project, issued through both at once, chain to one project CA, every
//! certificate a client received is listed exactly once through either replica, and racing
//! creations of one database user give one success and one USER_ALREADY_EXISTS.
//!
//! Needs `DBCERT_TEST_DATABASE_URL` (see `harness/pg.rs`); skipped without it.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use dbcert::domain::{Core, CoreSettings, MasterKey, SystemClock};
use dbcert::proto::v1::{ListUserCertificatesRequest, X509Type};
use dbcert::storage::PostgresStore;
use tonic::Code;

use crate::harness::atlas;
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::pg::TestDatabase;
use crate::harness::{Clients, Key, assert_error, openssl, write};

/// Certificates issued through each replica.
const PER_REPLICA: usize = 3;

// === replicas ===

/// A `dbcert serve` child process, killed on drop.
struct Replica {
    name: &'static str,
    process: Spawned,
    http_addr: SocketAddr,
    _data_dir: tempfile::TempDir,
}

/// What every replica shares: the database, the master key and the bootstrap key.
struct Shared {
    database_url: String,
    master_key: String,
    key: Key,
}

impl Replica {
    /// Starts a replica on ephemeral ports and returns once it logged its addresses.
    async fn start(name: &'static str, shared: &Shared) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = serve_command(data_dir.path());
        command
            .env("DBCERT_LOG_FORMAT", "json")
            .env("DBCERT_DATABASE", &shared.database_url)
            .env("DBCERT_MASTER_KEY", &shared.master_key)
            .env(
                "DBCERT_BOOTSTRAP_API_KEY",
                format!("{}:{}", shared.key.public, shared.key.private),
            );
        let process = Spawned::start(command).await;
        Self {
            name,
            http_addr: process.http_addr,
            process,
            _data_dir: data_dir,
        }
    }

    fn log_text(&self) -> String {
        self.process.log()
    }

    async fn channel(&self) -> tonic::transport::Channel {
        self.process.channel().await
    }

    /// Polls gRPC health until SERVING (bounded).
    async fn wait_serving(&self) {
        self.process.wait_serving().await;
    }
}

async fn shared() -> Option<(TestDatabase, Shared)> {
    let db = TestDatabase::create("replicas").await?;
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let shared = Shared {
        database_url: db.url.clone(),
        master_key,
        key: Key::random(),
    };
    Some((db, shared))
}

/// Starts replicas "a" and "b" at the same moment (both migrate), waits until both serve, and
/// returns them with a gRPC client of each.
async fn two_replicas(shared: &Shared) -> (Replica, Replica, Clients, Clients) {
    let (a, b) = tokio::join!(Replica::start("a", shared), Replica::start("b", shared));
    tokio::join!(a.wait_serving(), b.wait_serving());
    let (via_a, via_b) = (
        Clients::new(a.channel().await, shared.key.clone()),
        Clients::new(b.channel().await, shared.key.clone()),
    );
    (a, b, via_a, via_b)
}

/// The serial number in a PEM certificate, read independently of the service.
fn pem_serial(pem: &str) -> i64 {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let bytes = cert.raw_serial();
    assert!(bytes.len() <= 8, "serial longer than 63 bits");
    bytes.iter().fold(0i64, |n, b| (n << 8) | i64::from(*b))
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_act_as_one_service() {
    let Some((db, shared)) = shared().await else {
        return;
    };
    // Both start (and migrate) at the same moment.
    let (a, b, via_a, via_b) = two_replicas(&shared).await;

    let group_id = via_a.create_project("replicated").await;
    via_a.create_managed_user(&group_id, "alice").await;

    // The project's first certificates, issued through both replicas at once: each replica
    // races to create the project CA.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2 * PER_REPLICA {
        let (clients, group_id) = (
            if i % 2 == 0 { &via_a } else { &via_b }.clone(),
            group_id.clone(),
        );
        tasks.spawn(async move { clients.issue(&group_id, "alice", Some(3)).await });
    }
    let mut received = BTreeMap::new();
    while let Some(result) = tasks.join_next().await {
        let issued = result.unwrap().unwrap_or_else(|status| {
            panic!(
                "issue failed: {status:?}\nA:\n{}\nB:\n{}",
                a.log_text(),
                b.log_text()
            )
        });
        assert_eq!(
            pem_serial(&issued.certificate_pem),
            issued.serial_number,
            "the returned serial is the certificate's"
        );
        assert!(
            received
                .insert(issued.serial_number, issued.certificate_pem)
                .is_none(),
            "serial {} handed out twice",
            issued.serial_number
        );
    }
    assert_eq!(received.len(), 2 * PER_REPLICA, "serials never collide");

    // One CA: both replicas serve the same one, and every certificate chains to it.
    let ca_pem = via_a.project_ca_pem(&group_id).await;
    assert_eq!(
        via_b.project_ca_pem(&group_id).await,
        ca_pem,
        "both replicas serve one project CA"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca_pem);
    for (serial, pem) in &received {
        let cert_file = write(dir.path(), &format!("{serial}.pem"), pem);
        let (ok, output) = openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            &ca_file,
            &cert_file,
        ]);
        assert!(
            ok,
            "certificate {serial} does not chain to the project CA: {output}"
        );
    }

    // Listed through either replica: every certificate a client received, exactly once.
    let expected: Vec<i64> = received.keys().copied().collect();
    for (name, clients) in [("a", &via_a), ("b", &via_b)] {
        let listed = clients
            .certificates()
            .list_user_certificates(ListUserCertificatesRequest {
                group_id: group_id.clone(),
                username: "alice".into(),
                page_num: 1,
                items_per_page: 500,
                include_count: Some(true),
            })
            .await
            .unwrap()
            .into_inner();
        let mut serials: Vec<i64> = listed.results.iter().map(|c| c.serial_number).collect();
        serials.sort_unstable();
        assert_eq!(serials, expected, "listed through {name}");
        assert_eq!(
            listed.total_count,
            Some(expected.len() as i64),
            "counted through {name}"
        );
    }

    // And in the shared database: one CA row, one record per certificate.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let cas: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM project_cas WHERE project_id = $1")
        .bind(&group_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let records: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE project_id = $1")
            .bind(&group_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!((cas, records), (1, expected.len() as i64));
    let created = [&a, &b]
        .iter()
        .map(|r| {
            r.log_text()
                .lines()
                .filter(|l| l.contains("created project ca"))
                .count()
        })
        .sum::<usize>();
    assert_eq!(created, 1, "exactly one replica stored a CA");

    // Creating one user through both replicas at once: one success, one USER_ALREADY_EXISTS.
    for round in 0..3 {
        let username = format!("bob{round}");
        let (from_a, from_b) = tokio::join!(
            via_a.create_user(&group_id, &username, X509Type::Managed, "$external"),
            via_b.create_user(&group_id, &username, X509Type::Managed, "$external"),
        );
        let (winner, loser) = match (from_a, from_b) {
            (Ok(user), Err(status)) | (Err(status), Ok(user)) => (user, status),
            (a, b) => panic!("expected one success and one failure, got {a:?} and {b:?}"),
        };
        assert_eq!(winner.username, username);
        assert_error(
            Err::<(), _>(loser),
            Code::AlreadyExists,
            "USER_ALREADY_EXISTS",
        );
    }

    drop((a, b));
}

/// A digest nonce authenticated by one replica is accepted by another (they derive the nonce
/// secret from the shared master key), and its use is recorded once for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_nonces_are_shared_between_replicas() {
    let Some((db, shared)) = shared().await else {
        return;
    };
    let core = |url: String, key: String| async move {
        let store = PostgresStore::open(&url).await.unwrap();
        Core::new(
            Arc::new(store),
            MasterKey::from_base64(&key).unwrap(),
            Arc::new(SystemClock),
            CoreSettings::default(),
        )
    };
    let a = core(db.url.clone(), shared.master_key.clone()).await;
    let b = core(db.url.clone(), shared.master_key.clone()).await;
    assert_eq!(
        a.digest_nonce_secret(),
        b.digest_nonce_secret(),
        "one nonce secret for all replicas"
    );
    let other = core(
        db.url.clone(),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .await;
    assert_ne!(a.digest_nonce_secret(), other.digest_nonce_secret());

    let expires = a.now() + time::Duration::minutes(5);
    assert!(
        a.record_digest_nonce_use("nonce-1", "00000001", expires)
            .await
            .unwrap()
    );
    assert!(
        !b.record_digest_nonce_use("nonce-1", "00000001", expires)
            .await
            .unwrap(),
        "a replay on another replica"
    );
    assert!(
        b.record_digest_nonce_use("nonce-1", "00000002", expires)
            .await
            .unwrap()
    );
    assert!(
        !a.record_digest_nonce_use("nonce-1", "00000002", expires)
            .await
            .unwrap()
    );
}

/// One HTTP request with an `Authorization: Digest` answer to `nonce` (count `nc`).
async fn digest_call(
    addr: SocketAddr,
    key: &Key,
    method: &str,
    path: &str,
    body: Option<&str>,
    nonce: &str,
    nc: u32,
) -> (u16, String) {
    let authorization =
        atlas::authorization(key, atlas::Alg::Md5, method, path, nonce, nc, "0a4f113b");
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), format!("http://{addr}{path}"))
        .header("authorization", authorization);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Over HTTP: a Digest nonce handed out by one replica is accepted by the other (no sticky
/// sessions), a replayed (nonce, nc) is refused on either, and racing creations of one user
/// through both replicas give one 201 and one 409 USER_ALREADY_EXISTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_digest_nonces_and_conflicts_across_replicas() {
    let Some((_db, shared)) = shared().await else {
        return;
    };
    let (a, b) = tokio::join!(Replica::start("a", &shared), Replica::start("b", &shared));
    a.wait_serving().await;
    b.wait_serving().await;
    let key = &shared.key;

    // The challenge comes from A.
    let challenge = reqwest::get(format!("http://{}/api/atlas/v1.0/groups", a.http_addr))
        .await
        .unwrap();
    assert_eq!(challenge.status().as_u16(), 401);
    let nonce = atlas::nonce_of(
        challenge
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
    );
    let path = "/api/atlas/v1.0/groups";
    // B accepts A's nonce.
    let (status, body) = digest_call(b.http_addr, key, "GET", path, None, &nonce, 1).await;
    assert_eq!(status, 200, "{body}");
    // The same (nonce, nc) replayed on A or B is refused.
    for replica in [&a, &b] {
        let (status, _) = digest_call(replica.http_addr, key, "GET", path, None, &nonce, 1).await;
        assert_eq!(status, 401, "replay on {}", replica.name);
    }
    // The next count works on A.
    let (status, body) = digest_call(a.http_addr, key, "GET", path, None, &nonce, 2).await;
    assert_eq!(status, 200, "{body}");

    // A project through A, then the same user through both at once.
    let (status, body) = digest_call(
        a.http_addr,
        key,
        "POST",
        path,
        Some(r#"{"name":"http-race"}"#),
        &nonce,
        3,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let group_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let users = format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers");
    let user = r#"{"databaseName":"$external","username":"racer","x509Type":"MANAGED","roles":[{"databaseName":"admin","roleName":"read"}]}"#;
    let (first, second) = tokio::join!(
        digest_call(a.http_addr, key, "POST", &users, Some(user), &nonce, 4),
        digest_call(b.http_addr, key, "POST", &users, Some(user), &nonce, 5),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{first:?} {second:?}");
    let conflict = if first.0 == 409 { &first.1 } else { &second.1 };
    let conflict: serde_json::Value = serde_json::from_str(conflict).unwrap();
    assert_eq!(conflict["errorCode"], "USER_ALREADY_EXISTS");
    assert_eq!(conflict["error"], 409);
}

/// A project deleted through one replica: the other forgets the unsealed CA keys it held for
/// the project (issuing, and signing its CRLs), as the store destroyed them; the replica that
/// deleted it forgets its own at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_projects_ca_keys_leave_every_replicas_memory() {
    let Some((_db, shared)) = shared().await else {
        return;
    };
    let (a, b, via_a, via_b) = two_replicas(&shared).await;
    let group_id = via_b.create_project("deleted-elsewhere").await;
    via_b.create_managed_user(&group_id, "alice").await;
    // Both replicas unseal the CA: each issues, and each serves the CRL.
    for clients in [&via_a, &via_b] {
        clients.issue(&group_id, "alice", Some(1)).await.unwrap();
    }
    for replica in [&a, &b] {
        let crl = reqwest::get(format!(
            "http://{}/api/dbcert/v1/groups/{group_id}/crl",
            replica.http_addr
        ))
        .await
        .unwrap();
        assert_eq!(crl.status(), 200, "{}", replica.name);
    }

    via_a
        .projects()
        .delete_project(dbcert::proto::v1::DeleteProjectRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap();
    // B learns of it from the store (its sweep), A forgot them when it deleted.
    let forgotten = "forgot the ca keys of a deleted project";
    assert!(
        b.process.wait_for_log(forgotten).await,
        "B kept the CA keys:\n{}",
        b.log_text()
    );
    let line = b
        .log_text()
        .lines()
        .find(|l| l.contains(forgotten))
        .unwrap()
        .to_owned();
    assert!(line.contains(&group_id), "{line}");
    // A dropped its own copies when it deleted the project (its sweep would log the line
    // above; the deletion's line says what it dropped).
    let deleted = a
        .log_text()
        .lines()
        .find(|l| l.contains("deleted project") && l.contains(&group_id))
        .unwrap_or_default()
        .to_owned();
    assert!(deleted.contains("\"forgot_ca_keys\":true"), "{deleted}");
}
