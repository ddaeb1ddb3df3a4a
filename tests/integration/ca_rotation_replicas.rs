//! Project CA rotation across two real `dbcert serve` processes on one PostgreSQL database:
//! rotations racing through both replicas end with exactly one new CA per generation they
//! started from (the losers get PROJECT_CA_ROTATION_CONFLICT and nothing changed), a replica
//! whose cached CA another replica rotated issues with the new CA, and both serve one trust
//! bundle that openssl checks.
//!
//! Needs `DBCERT_TEST_DATABASE_URL` (see `harness/pg.rs`); skipped without it.

use std::collections::BTreeMap;

use base64::Engine as _;
use dbcert::proto::v1::{KeyType, RotateProjectCaRequest};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::ca_rotation::{assert_refused, assert_verifies, ca, generations};
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::pg::TestDatabase;
use crate::harness::{Clients, Key, error_code};

/// Concurrent rotations through each replica.
const PER_REPLICA: usize = 2;

/// A replica on the shared database, with the read cache off so a test needs no waiting: with
/// the default `--cache-ttl` (1 s) a rotation made elsewhere is seen within that time.
async fn replica(database_url: &str, master_key: &str, key: &Key) -> (Spawned, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(data_dir.path());
    command
        .env("DBCERT_DATABASE", database_url)
        .env("DBCERT_MASTER_KEY", master_key)
        .env("DBCERT_CACHE_TTL", "0s")
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        );
    (Spawned::start(command).await, data_dir)
}

fn rotation(group_id: &str) -> RotateProjectCaRequest {
    RotateProjectCaRequest {
        group_id: group_id.into(),
        // RSA-4096: a second of key generation, so the racers all read the same generation.
        ca_key_type: KeyType::Rsa4096 as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_across_replicas_end_with_one_new_ca() {
    let Some(db) = TestDatabase::create("ca_rotation_replicas").await else {
        return;
    };
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let key = Key::random();
    let ((a, _dir_a), (b, _dir_b)) = tokio::join!(
        replica(&db.url, &master_key, &key),
        replica(&db.url, &master_key, &key)
    );
    let (via_a, via_b) = (a.clients(&key).await, b.clients(&key).await);
    let group_id = via_a.create_project("rotating-replicas").await;
    via_a.create_managed_user(&group_id, "alice").await;
    // Through b: b now holds generation 1 in its CA cache.
    let old = via_b.issue(&group_id, "alice", Some(1)).await.unwrap();

    // The race: rotations through both replicas at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2 * PER_REPLICA {
        let (clients, group_id): (Clients, String) = (
            if i % 2 == 0 { &via_a } else { &via_b }.clone(),
            group_id.clone(),
        );
        tasks.spawn(async move {
            clients
                .certificates()
                .rotate_project_ca(rotation(&group_id))
                .await
                .map(|r| r.into_inner().ca.unwrap())
        });
    }
    // Each generation a rotation started from has exactly one winner, which made the next
    // one; every loser started from a generation someone else won.
    let mut winners: BTreeMap<u32, String> = BTreeMap::new();
    let mut losers_from = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(new_ca) => {
                let started_from = new_ca.generation - 1;
                assert!(
                    winners
                        .insert(started_from, new_ca.certificate_pem)
                        .is_none(),
                    "two rotations from generation {started_from} both won\nA:\n{}\nB:\n{}",
                    a.log(),
                    b.log()
                );
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Aborted, "{status:?}");
                assert_eq!(error_code(&status), "PROJECT_CA_ROTATION_CONFLICT");
                // The parameters: the project and the generation the loser read.
                let info = status.get_error_details().error_info().cloned().unwrap();
                let parameters: Vec<String> =
                    serde_json::from_str(&info.metadata["parameters"]).unwrap();
                let read: u32 = parameters[1].parse().unwrap();
                losers_from.push(read);
            }
        }
    }
    assert!(!winners.is_empty());
    let expected: Vec<u32> = (1..=winners.len() as u32).collect();
    assert_eq!(
        winners.keys().copied().collect::<Vec<_>>(),
        expected,
        "the new generations follow one another"
    );
    for read in &losers_from {
        assert!(
            winners.contains_key(read),
            "a loser from {read} with no winner"
        );
    }
    let last = winners.len() as u32 + 1;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM project_ca_generations WHERE project_id = $1")
            .bind(&group_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(stored, i64::from(last), "one CA per generation, no more");

    // One more rotation, through a alone: b, whose cache may hold an older generation, issues
    // with the new CA at once (its read cache is off).
    let newest = via_a
        .certificates()
        .rotate_project_ca(rotation(&group_id))
        .await
        .unwrap()
        .into_inner()
        .ca
        .unwrap();
    assert_eq!(newest.generation, last + 1);
    let new = via_b.issue(&group_id, "alice", Some(1)).await.unwrap();
    assert_verifies(&newest.certificate_pem, &new.certificate_pem);
    for pem in winners.values() {
        assert_refused(pem, &new.certificate_pem);
    }

    // Both replicas serve one bundle: the newest CA and the first (alice's old certificate);
    // the generations in between signed nothing and are gone from it.
    let (from_a, from_b) = (ca(&via_a, &group_id).await, ca(&via_b, &group_id).await);
    assert_eq!(from_a, from_b);
    assert_eq!(generations(&from_a), vec![last + 1, 1]);
    assert_verifies(&from_a.bundle_pem, &old.certificate_pem);
    assert_verifies(&from_a.bundle_pem, &new.certificate_pem);
}
