//! The served-from-cache CRL phase of the benchmark (issue 11 item 2): a project of the release
//! `dbcert` server on SQLite holds `entries` revoked certificates, inserted in bulk straight into
//! its store (rows of the shape dbcert writes) while the server is stopped; then, over real HTTP,
//! - the first `GET /api/dbcert/v1/groups/{id}/crl` after the restart: the server reads the
//!   revoked rows, numbers, signs and stores the CRL (nothing cached, nothing stored before);
//! - one revocation over gRPC, which re-signs the CRL with one more entry before it answers;
//! - `requests` sequential `GET …/crl` and `GET …/crl.pem` answered from the cache (p50/p99);
//! - `requests` sequential OCSP POSTs for one revoked and one valid serial among them (p50/p99),
//!   the request made and the first answer read by `openssl ocsp`.
//!
//! `cargo bench --bench load -- --only-crl [--crl-entries N] [--crl-requests N]`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dbcert::proto::v1::{self, certificate_service_client::CertificateServiceClient};
use sqlx::Connection as _;

use super::{Server, authed, percentile, setup_project, user};

/// `dbcert serve` flags of this phase: no key pool, so no background key generation competes
/// with the measured CRL signing and answers.
const SERVER_ARGS: [&str; 2] = ["--key-pool-size", "0"];

/// Runs the phase on a fresh store in `data_dir` and prints its figures.
pub async fn served(data_dir: &Path, key: (String, String), entries: usize, requests: usize) {
    println!(
        "## CRL served from the cache: {entries} revoked certificates stored, RSA-4096 CA, SQLite, {requests} requests each, c=1"
    );
    let args = SERVER_ARGS.map(str::to_owned);
    let (server, _) = Server::start(data_dir, key.clone(), &args).await;
    let group_id = setup_project(&server, "bench-crl", v1::KeyType::Rsa4096).await;
    let mut certificates = CertificateServiceClient::new(server.channel().await);
    let mut issue = async |username: String| {
        certificates
            .create_user_certificate(authed(
                &server,
                v1::CreateUserCertificateRequest {
                    group_id: group_id.clone(),
                    username,
                    months_until_expiration: Some(3),
                    key_type: v1::KeyType::EcdsaP256 as i32,
                    csr_pem: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
    };
    let good = issue(user(1)).await;
    let revoked = issue(user(2)).await;
    let ca_pem = certificates
        .get_project_ca_certificate(authed(
            &server,
            v1::GetProjectCaCertificateRequest {
                group_id: group_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .certificate_pem;
    server.stop();

    let inserted = Instant::now();
    insert_revoked(data_dir, &group_id, entries).await;
    println!(
        "inserted {entries} revoked certificate rows in {:.1} s (server stopped, one transaction)",
        inserted.elapsed().as_secs_f64()
    );

    let (server, _) = Server::start(data_dir, key, &args).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let base = format!("{}/api/dbcert/v1/groups/{group_id}", server.http);
    let get = async |path: &str| {
        let response = http.get(format!("{base}/{path}")).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.bytes().await.unwrap()
    };

    let started = Instant::now();
    let first = get("crl").await;
    println!(
        "first GET crl (read {entries} rows + sign + store, nothing cached): {:.0} ms, {:.1} MiB DER",
        started.elapsed().as_secs_f64() * 1000.0,
        first.len() as f64 / (1024.0 * 1024.0)
    );
    let started = Instant::now();
    certificates = CertificateServiceClient::new(server.channel().await);
    certificates
        .revoke_user_certificate(authed(
            &server,
            v1::RevokeUserCertificateRequest {
                group_id: group_id.clone(),
                username: user(2),
                serial_number: revoked.serial_number,
                reason: v1::RevocationReason::KeyCompromise as i32,
            },
        ))
        .await
        .unwrap();
    println!(
        "one revocation over gRPC, the CRL re-signed with {} entries before the answer: {:.0} ms",
        entries + 1,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let crl = get("crl").await;
    let temp = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = temp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let ca = file("ca.pem", ca_pem.as_bytes());
    let crl_der = file("crl.der", &crl);
    println!(
        "openssl crl -verify: {}",
        openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            path(&crl_der),
            "-noout",
            "-verify",
            "-CAfile",
            path(&ca),
            "-crlnumber",
        ])
    );

    for path in ["crl", "crl.pem"] {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            std::hint::black_box(get(path).await);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        print_latency(&format!("GET {path} (cached)"), times);
    }

    for (status, certificate) in [("revoked", &revoked), ("good", &good)] {
        let leaf = file("leaf.pem", certificate.certificate_pem.as_bytes());
        let request = temp.path().join("request.der");
        openssl(&[
            "ocsp",
            "-issuer",
            path(&ca),
            "-cert",
            path(&leaf),
            "-no_nonce",
            "-reqout",
            path(&request),
        ]);
        let body = std::fs::read(&request).unwrap();
        let mut times = Vec::with_capacity(requests);
        let mut answer = Vec::new();
        for _ in 0..requests {
            let started = Instant::now();
            let response = http
                .post(format!("{base}/ocsp"))
                .header("content-type", "application/ocsp-request")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "OCSP: {}",
                response.status()
            );
            answer = response.bytes().await.unwrap().to_vec();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let answer = file("response.der", &answer);
        let said = openssl(&[
            "ocsp",
            "-respin",
            path(&answer),
            "-issuer",
            path(&ca),
            "-CAfile",
            path(&ca),
            "-cert",
            path(&leaf),
        ]);
        // "Response verify OK; <path>/leaf.pem: revoked; This Update: …"
        let said = said
            .split("; ")
            .find_map(|part| part.split_once("leaf.pem: ").map(|(_, status)| status))
            .unwrap_or(&said)
            .trim()
            .to_owned();
        print_latency(
            &format!("OCSP POST, {status} serial (openssl: {said})"),
            times,
        );
    }
    server.stop();
    println!();
}

/// Inserts `entries` revoked, unexpired certificates of the project's first CA, spread over the
/// bench users and the revocation reasons, in one transaction.
async fn insert_revoked(data_dir: &Path, group_id: &str, entries: usize) {
    let url = format!("sqlite://{}", data_dir.join("dbcert.sqlite3").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let reasons = [
        None,
        Some("keyCompromise"),
        Some("cessationOfOperation"),
        Some("superseded"),
    ];
    let mut tx = db.begin().await.unwrap();
    for i in 0..entries {
        let username = user(i);
        sqlx::query(
            "INSERT INTO certificates (project_id, serial, username, subject, not_before, \
             not_after, sha256_fingerprint, revoked_at, revocation_reason, ca_generation) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        )
        .bind(group_id)
        .bind(dbcert::domain::random_serial())
        .bind(username.clone())
        .bind(format!("CN={username}"))
        .bind(now - 86_400)
        .bind(now + 90 * 86_400)
        .bind(format!("{:064x}", rand::random::<u128>()))
        .bind(now - 3_600 - i as i64)
        .bind(reasons[i % reasons.len()])
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    db.close().await.unwrap();
}

fn print_latency(what: &str, mut times: Vec<f64>) {
    times.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(f64::NAN),
        times.len()
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `openssl` and returns its stdout and stderr; a failure stops the benchmark.
fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openssl {args:?}: {text}");
    text.trim().replace('\n', "; ")
}
