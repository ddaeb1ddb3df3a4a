//! CRLs and the OCSP responder (issue 11 items 2 and 3), checked with independent tools:
//! `openssl crl -verify` and `-text` (number, dates, authority key identifier, reasons),
//! `openssl verify -crl_check` (a revoked certificate fails with "certificate revoked", others
//! pass) and `openssl ocsp` as the OCSP client (good, revoked with time and reason, unknown,
//! the answer's signature and nonce verified). The routes need no credentials.

use std::path::Path;

use dbcert::proto::v1::certificate_service_client::CertificateServiceClient;
use dbcert::proto::v1::{GetOcspResponseRequest, GetProjectCrlRequest, KeyType};
use tonic::Code;

use crate::harness::atlas::{Alg, Atlas};
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::pg::TestDatabase;
use crate::harness::{Clients, TestServer, openssl, skip_missing_tool, write};

/// A server with a project whose CA exists (one certificate issued to `alice`).
struct Setup {
    server: TestServer,
    clients: Clients,
    group_id: String,
    dir: tempfile::TempDir,
    ca: String,
    leaf: String,
    leaf_pem: String,
}

async fn setup(ca_key_type: KeyType) -> Setup {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let group_id = clients.create_project_with_ca("crl", ca_key_type).await;
    clients.create_managed_user(&group_id, "alice").await;
    let issued = clients.issue(&group_id, "alice", Some(3)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = clients.project_ca_pem(&group_id).await;
    let ca = write(dir.path(), "ca.pem", &ca_pem);
    let leaf = write(dir.path(), "leaf.pem", &issued.certificate_pem);
    Setup {
        server,
        clients,
        group_id,
        dir,
        ca,
        leaf,
        leaf_pem: issued.certificate_pem,
    }
}

/// A GET without credentials: status, headers, body.
async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("http://{}{path}", server.http_addr));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn post(server: &TestServer, path: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}{path}", server.http_addr))
        .header("content-type", "application/ocsp-request")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn tools_missing() -> bool {
    let missing = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err();
    missing && skip_missing_tool("openssl", "not on PATH")
}

/// The value printed after `label` by `openssl … -text` (the rest of that line, or the next
/// line when the label ends its line).
fn text_value(text: &str, label: &str) -> String {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.trim().strip_prefix(label) {
            let rest = rest.trim();
            if rest.is_empty() {
                return lines.next().unwrap_or_default().trim().to_owned();
            }
            return rest.to_owned();
        }
    }
    panic!("{label} not in:\n{text}")
}

/// An `openssl` date (`Dec  3 18:20:00 2026 GMT`) as Unix seconds.
fn openssl_date(text: &str) -> i64 {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    let text = text.split_whitespace().collect::<Vec<_>>();
    // Re-space the day so `Dec 13` and `Dec  3` both parse.
    let normal = format!(
        "{} {:>2} {} {} {}",
        text[0], text[1], text[2], text[3], text[4]
    );
    time::PrimitiveDateTime::parse(&normal, format)
        .unwrap_or_else(|e| panic!("{normal}: {e}"))
        .assume_utc()
        .unix_timestamp()
}

/// The CRL's text as openssl prints it, after checking its signature against the CA.
fn verified_crl_text(dir: &Path, ca: &str, der: &[u8]) -> String {
    let path = dir.join(format!("crl-{}.der", rand::random::<u32>()));
    std::fs::write(&path, der).unwrap();
    let path = path.to_string_lossy().into_owned();
    let (ok, out) = openssl(&[
        "crl", "-inform", "DER", "-in", &path, "-CAfile", ca, "-verify", "-noout",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    let (ok, text) = openssl(&["crl", "-inform", "DER", "-in", &path, "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

fn crl_number(text: &str) -> u64 {
    text_value(text, "X509v3 CRL Number:")
        .trim_start_matches("0x")
        .parse()
        .unwrap_or_else(|e| panic!("crl number: {e}\n{text}"))
}

/// `openssl ocsp` against the responder; returns its output.
fn ocsp(setup: &Setup, args: &[&str]) -> (bool, String) {
    let url = format!(
        "http://{}/api/dbcert/v1/groups/{}/ocsp",
        setup.server.http_addr, setup.group_id
    );
    let mut all = vec![
        "ocsp", "-issuer", &setup.ca, "-url", &url, "-CAfile", &setup.ca,
    ];
    all.extend_from_slice(args);
    all.push("-resp_text");
    openssl(&all)
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crl_is_public_signed_by_the_project_ca_and_lets_valid_certificates_verify() {
    if tools_missing() {
        return;
    }
    let s = setup(KeyType::EcdsaP256).await;
    let path = format!("/api/dbcert/v1/groups/{}/crl", s.group_id);

    let response = get(&s.server, &path, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pkix-crl");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"),
    );
    let der = response.bytes().await.unwrap().to_vec();
    let text = verified_crl_text(s.dir.path(), &s.ca, &der);
    assert!(text.contains("No Revoked Certificates"), "{text}");
    assert!(crl_number(&text) >= 1, "{text}");
    // Version 2 with the authority key identifier of the CA's subject key identifier.
    assert!(text.contains("Version 2"), "{text}");
    let (_, ca_text) = openssl(&["x509", "-in", &s.ca, "-noout", "-text"]);
    let ski = text_value(&ca_text, "X509v3 Subject Key Identifier:");
    let aki = text_value(&text, "X509v3 Authority Key Identifier:");
    assert_eq!(aki.trim_start_matches("keyid:"), ski, "{text}");
    // nextUpdate is thisUpdate plus the default validity, seven days.
    let last = openssl_date(&text_value(&text, "Last Update:"));
    let next = openssl_date(&text_value(&text, "Next Update:"));
    assert_eq!(next - last, 7 * 86_400, "{text}");

    // The same CRL again, from the cache: same version; a revalidation is 304 without body.
    let again = get(&s.server, &path, &[]).await;
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(again.bytes().await.unwrap().to_vec(), der);
    let not_modified = get(&s.server, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status(), 304);

    // The PEM file for mongod: openssl checks the certificate against it.
    let pem = get(&s.server, &format!("{path}.pem"), &[]).await;
    assert_eq!(pem.status(), 200);
    let pem = pem.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN X509 CRL-----\n"), "{pem}");
    let crl_pem = write(s.dir.path(), "crl.pem", &pem);
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &crl_pem,
        "-CAfile",
        &s.ca,
        &s.leaf,
    ]);
    assert!(ok && out.contains(": OK"), "{out}");

    // gRPC, without credentials, answers the same CRL.
    let mut anonymous = CertificateServiceClient::new(s.server.channel().await);
    let answer = anonymous
        .get_project_crl(GetProjectCrlRequest {
            group_id: s.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.crls.len(), 1);
    assert_eq!(answer.crls[0].crl_der, der);
    assert_eq!(answer.crls[0].ca_generation, 1);
    assert_eq!(answer.crl_pem, pem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_projects_and_projects_without_a_ca_are_atlas_404s() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let no_ca = clients.create_project("no-ca").await;
    let unknown = "0123456789abcdef01234567";
    for (group, code) in [
        (unknown, "GROUP_NOT_FOUND"),
        (no_ca.as_str(), "PROJECT_CA_NOT_FOUND"),
    ] {
        for path in ["crl", "crl.pem"] {
            let response = get(
                &server,
                &format!("/api/dbcert/v1/groups/{group}/{path}"),
                &[],
            )
            .await;
            assert_eq!(response.status(), 404, "{path}");
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            assert_eq!(body["errorCode"], code, "{body}");
            assert_eq!(body["error"], 404, "{body}");
        }
        let response = post(
            &server,
            &format!("/api/dbcert/v1/groups/{group}/ocsp"),
            b"x".to_vec(),
        )
        .await;
        assert_eq!(response.status(), 404);
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(body["errorCode"], code, "{body}");

        let mut anonymous = CertificateServiceClient::new(server.channel().await);
        let status = anonymous
            .get_project_crl(GetProjectCrlRequest {
                group_id: group.to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(crate::harness::error_code(&status), code);
    }
    // A malformed project id is Atlas's INVALID_GROUP_ID, as on the Atlas routes.
    let response = get(&server, "/api/dbcert/v1/groups/not-an-id/crl", &[]).await;
    assert!(response.status().is_client_error(), "{}", response.status());
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errorCode"], "INVALID_GROUP_ID", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_answers_good_and_unknown_signed_by_the_ca_with_the_nonce() {
    if tools_missing() {
        return;
    }
    // RSA-4096, the default CA key (sha256WithRSAEncryption answers).
    let s = setup(KeyType::Unspecified).await;
    let (ok, out) = ocsp(&s, &["-cert", &s.leaf]);
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", s.leaf)), "{out}");
    // openssl sends a nonce and warns when the answer lacks it.
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");

    // A serial the project never issued.
    let (ok, out) = ocsp(&s, &["-serial", "0x1234"]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": unknown"), "{out}");

    // The GET form: the request in the path, base64 then percent-encoded.
    let req = s.dir.path().join("req.der").to_string_lossy().into_owned();
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        &s.ca,
        "-cert",
        &s.leaf,
        "-no_nonce",
        "-reqout",
        &req,
    ]);
    assert!(ok, "{out}");
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&req).unwrap());
    let encoded: String =
        percent_encoding::utf8_percent_encode(&encoded, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let response = get(
        &s.server,
        &format!("/api/dbcert/v1/groups/{}/ocsp/{encoded}", s.group_id),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/ocsp-response"
    );
    let resp = write_bytes(s.dir.path(), "resp.der", &response.bytes().await.unwrap());
    let (ok, out) = openssl(&[
        "ocsp", "-respin", &resp, "-issuer", &s.ca, "-cert", &s.leaf, "-CAfile", &s.ca,
    ]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": good"), "{out}");

    // A body that is no OCSP request: the OCSP malformedRequest status, not an error page.
    let response = post(
        &s.server,
        &format!("/api/dbcert/v1/groups/{}/ocsp", s.group_id),
        b"\x30\x03garbage".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let resp = write_bytes(s.dir.path(), "bad.der", &response.bytes().await.unwrap());
    let (_, out) = openssl(&["ocsp", "-respin", &resp, "-resp_text", "-noverify"]);
    assert!(out.contains("malformedrequest"), "{out}");

    // An oversized body is refused before it is read whole.
    let response = post(
        &s.server,
        &format!("/api/dbcert/v1/groups/{}/ocsp", s.group_id),
        vec![0x30; 100 * 1024],
    )
    .await;
    assert_eq!(response.status(), 413);

    // gRPC answers the same way without credentials.
    let mut anonymous = CertificateServiceClient::new(s.server.channel().await);
    let answer = anonymous
        .get_ocsp_response(GetOcspResponseRequest {
            group_id: s.group_id.clone(),
            ocsp_request: std::fs::read(&req).unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    let resp = write_bytes(s.dir.path(), "grpc.der", &answer.ocsp_response);
    let (ok, out) = openssl(&[
        "ocsp", "-respin", &resp, "-issuer", &s.ca, "-cert", &s.leaf, "-CAfile", &s.ca,
    ]);
    assert!(
        ok && out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    let _ = (&s.clients, &s.leaf_pem);
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// The serial number of a PEM certificate, read by openssl (hex, upper case).
fn openssl_serial(pem_path: &str) -> String {
    let (ok, out) = openssl(&["x509", "-in", pem_path, "-noout", "-serial"]);
    assert!(ok, "{out}");
    out.trim().trim_start_matches("serial=").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_certificates_are_revoked_in_the_next_crl_and_ocsp_answer() {
    if tools_missing() {
        return;
    }
    let s = setup(KeyType::EcdsaP256).await;
    s.clients.create_managed_user(&s.group_id, "bob").await;
    let bob = s.clients.issue(&s.group_id, "bob", Some(3)).await.unwrap();
    let bob_leaf = write(s.dir.path(), "bob.pem", &bob.certificate_pem);
    let path = format!("/api/dbcert/v1/groups/{}/crl", s.group_id);
    let before = get(&s.server, &path, &[]).await.bytes().await.unwrap();
    let before = crl_number(&verified_crl_text(s.dir.path(), &s.ca, &before));

    // Deleting bob (a $external user) revokes his certificate: cessationOfOperation.
    let atlas = crate::harness::atlas::Atlas::new(&s.server);
    let deleted = atlas
        .delete(&format!(
            "/api/atlas/v1.0/groups/{}/databaseUsers/%24external/bob",
            s.group_id
        ))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);

    let der = get(&s.server, &path, &[]).await.bytes().await.unwrap();
    let text = verified_crl_text(s.dir.path(), &s.ca, &der);
    assert!(crl_number(&text) > before, "{text}");
    let serial = openssl_serial(&bob_leaf);
    assert!(
        text.contains(&format!("Serial Number: {serial}")),
        "{serial} not in\n{text}"
    );
    assert!(text.contains("Cessation Of Operation"), "{text}");
    assert!(!text.contains(&openssl_serial(&s.leaf)), "{text}");

    // mongod's check: bob's certificate is refused, alice's still verifies.
    let pem = get(&s.server, &format!("{path}.pem"), &[])
        .await
        .text()
        .await
        .unwrap();
    let crl_pem = write(s.dir.path(), "crl.pem", &pem);
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &crl_pem,
        "-CAfile",
        &s.ca,
        &bob_leaf,
    ]);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &crl_pem,
        "-CAfile",
        &s.ca,
        &s.leaf,
    ]);
    assert!(ok && out.contains(": OK"), "{out}");

    // OCSP: revoked, with its time and reason; alice's still good.
    let (ok, out) = ocsp(&s, &["-cert", &bob_leaf, "-cert", &s.leaf]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{bob_leaf}: revoked")), "{out}");
    assert!(out.contains("Reason: cessationOfOperation"), "{out}");
    assert!(out.contains("Revocation Time:"), "{out}");
    assert!(out.contains(&format!("{}: good", s.leaf)), "{out}");
}

/// A `dbcert serve` process on a shared PostgreSQL database.
async fn replica(
    database_url: &str,
    master_key: &str,
    key: &crate::harness::Key,
) -> (Spawned, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(data_dir.path());
    command
        .env("DBCERT_DATABASE", database_url)
        .env("DBCERT_MASTER_KEY", master_key)
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        );
    let process = Spawned::start(command).await;
    process.wait_serving().await;
    (process, data_dir)
}

async fn replica_crl(process: &Spawned, group_id: &str, dir: &Path, ca: &str) -> String {
    let response = reqwest::get(format!(
        "http://{}/api/dbcert/v1/groups/{group_id}/crl",
        process.http_addr
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    verified_crl_text(dir, ca, &response.bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_serve_each_others_revocations_with_growing_crl_numbers() {
    if tools_missing() {
        return;
    }
    let Some(db) = TestDatabase::create("crl_replicas").await else {
        return;
    };
    use base64::Engine as _;
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let key = crate::harness::Key::random();
    let ((a, _a_dir), (b, b_dir)) = tokio::join!(
        replica(&db.url, &master_key, &key),
        replica(&db.url, &master_key, &key)
    );
    let via_a = Clients::new(a.channel().await, key.clone());
    let group_id = via_a.create_project("crl-replicas").await;
    for user in ["alice", "bob", "carol"] {
        via_a.create_managed_user(&group_id, user).await;
    }
    let dir = tempfile::tempdir().unwrap();
    via_a.issue(&group_id, "alice", Some(3)).await.unwrap();
    let ca = write(dir.path(), "ca.pem", &via_a.project_ca_pem(&group_id).await);
    let bob = via_a.issue(&group_id, "bob", Some(3)).await.unwrap();
    let carol = via_a.issue(&group_id, "carol", Some(3)).await.unwrap();
    let bob_leaf = write(dir.path(), "bob.pem", &bob.certificate_pem);
    let carol_leaf = write(dir.path(), "carol.pem", &carol.certificate_pem);

    // B serves (and caches) the first CRL; then bob is revoked through A.
    let first = replica_crl(&b, &group_id, dir.path(), &ca).await;
    assert!(first.contains("No Revoked Certificates"), "{first}");
    let delete = |process: &Spawned, user: &str| {
        let atlas = Atlas {
            http: reqwest::Client::new(),
            base: format!("http://{}", process.http_addr),
            key: key.clone(),
            alg: Alg::Md5,
        };
        let path = format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/%24external/{user}");
        async move { atlas.delete(&path).await }
    };
    assert_eq!(delete(&a, "bob").await.status, 204);
    let second = replica_crl(&b, &group_id, dir.path(), &ca).await;
    assert!(
        crl_number(&second) > crl_number(&first),
        "{first}\n{second}"
    );
    assert!(second.contains(&openssl_serial(&bob_leaf)), "{second}");
    // B's OCSP answer knows it too.
    let url = format!(
        "http://{}/api/dbcert/v1/groups/{group_id}/ocsp",
        b.http_addr
    );
    let (ok, out) = openssl(&[
        "ocsp", "-issuer", &ca, "-cert", &bob_leaf, "-url", &url, "-CAfile", &ca,
    ]);
    assert!(ok && out.contains(": revoked"), "{out}");

    // A restart: a new replica continues the numbers, and a revocation through it is newer.
    drop((b, b_dir));
    let (c, _c_dir) = replica(&db.url, &master_key, &key).await;
    let third = replica_crl(&c, &group_id, dir.path(), &ca).await;
    assert!(
        crl_number(&third) >= crl_number(&second),
        "{second}\n{third}"
    );
    assert!(third.contains(&openssl_serial(&bob_leaf)), "{third}");
    assert_eq!(delete(&c, "carol").await.status, 204);
    let fourth = replica_crl(&a, &group_id, dir.path(), &ca).await;
    assert!(
        crl_number(&fourth) > crl_number(&third),
        "{third}\n{fourth}"
    );
    assert!(fourth.contains(&openssl_serial(&carol_leaf)), "{fourth}");
    assert!(fourth.contains(&openssl_serial(&bob_leaf)), "{fourth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_numbers_and_revocations_survive_a_restart_on_sqlite() {
    if tools_missing() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let key = crate::harness::Key::random();
    let server = TestServer::start_in(data.path(), key.clone(), |_| {}).await;
    let clients = server.clients().await;
    let group_id = clients.create_project("restart").await;
    clients.create_managed_user(&group_id, "bob").await;
    clients.create_managed_user(&group_id, "alice").await;
    let bob = clients.issue(&group_id, "bob", Some(3)).await.unwrap();
    clients.issue(&group_id, "alice", Some(3)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(
        dir.path(),
        "ca.pem",
        &clients.project_ca_pem(&group_id).await,
    );
    let bob_leaf = write(dir.path(), "bob.pem", &bob.certificate_pem);
    let path = format!("/api/dbcert/v1/groups/{group_id}/crl");
    // Two CRLs before the restart (the first read, then alice's revocation).
    get(&server, &path, &[]).await;
    let atlas = crate::harness::atlas::Atlas::new(&server);
    let deleted = atlas
        .delete(&format!(
            "/api/atlas/v1.0/groups/{group_id}/databaseUsers/%24external/alice"
        ))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let first = crl_number(&verified_crl_text(
        dir.path(),
        &ca,
        &get(&server, &path, &[]).await.bytes().await.unwrap(),
    ));
    assert!(first >= 2, "{first}");
    drop(clients);
    server.stop().await;

    let server = TestServer::start_in(data.path(), key, |_| {}).await;
    let atlas = crate::harness::atlas::Atlas::new(&server);
    let deleted = atlas
        .delete(&format!(
            "/api/atlas/v1.0/groups/{group_id}/databaseUsers/%24external/bob"
        ))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let text = verified_crl_text(
        dir.path(),
        &ca,
        &get(&server, &path, &[]).await.bytes().await.unwrap(),
    );
    assert!(crl_number(&text) > first, "{first}\n{text}");
    assert!(text.contains(&openssl_serial(&bob_leaf)), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_ca_rotation_each_ca_has_its_own_crl_and_signs_its_own_ocsp_answers() {
    if tools_missing() {
        return;
    }
    let s = setup(KeyType::EcdsaP256).await;
    let old_ca = s.ca.clone();
    s.clients
        .certificates()
        .rotate_project_ca(dbcert::proto::v1::RotateProjectCaRequest {
            group_id: s.group_id.clone(),
            ca_key_type: KeyType::EcdsaP384 as i32,
        })
        .await
        .unwrap();
    s.clients.create_managed_user(&s.group_id, "bob").await;
    let bob = s.clients.issue(&s.group_id, "bob", Some(3)).await.unwrap();
    let bob_leaf = write(s.dir.path(), "bob.pem", &bob.certificate_pem);
    let ca_answer = s
        .clients
        .certificates()
        .get_project_ca_certificate(dbcert::proto::v1::GetProjectCaCertificateRequest {
            group_id: s.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let new_ca = write(s.dir.path(), "new-ca.pem", &ca_answer.certificate_pem);
    let bundle = write(s.dir.path(), "bundle.pem", &ca_answer.bundle_pem);

    // Revoke bob (new CA), keep alice (old CA): one CRL per CA, each signed by its own CA.
    let atlas = crate::harness::atlas::Atlas::new(&s.server);
    let deleted = atlas
        .delete(&format!(
            "/api/atlas/v1.0/groups/{}/databaseUsers/%24external/bob",
            s.group_id
        ))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let mut anonymous = CertificateServiceClient::new(s.server.channel().await);
    let answer = anonymous
        .get_project_crl(GetProjectCrlRequest {
            group_id: s.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let generations: Vec<u32> = answer.crls.iter().map(|c| c.ca_generation).collect();
    assert_eq!(generations, [2, 1]);
    let new_text = verified_crl_text(s.dir.path(), &new_ca, &answer.crls[0].crl_der);
    assert!(new_text.contains(&openssl_serial(&bob_leaf)), "{new_text}");
    let old_text = verified_crl_text(s.dir.path(), &old_ca, &answer.crls[1].crl_der);
    assert!(old_text.contains("No Revoked Certificates"), "{old_text}");
    // The DER route answers the issuing CA's (possibly re-signed since: a CRL signed in the
    // second of a revocation is signed again on the next read).
    let der = get(
        &s.server,
        &format!("/api/dbcert/v1/groups/{}/crl", s.group_id),
        &[],
    )
    .await
    .bytes()
    .await
    .unwrap();
    let text = verified_crl_text(s.dir.path(), &new_ca, &der);
    assert!(text.contains(&openssl_serial(&bob_leaf)), "{text}");

    // mongod's files: the bundle as CAFile, both CRLs as CRLFile.
    let crl_pem = write(s.dir.path(), "crls.pem", &answer.crl_pem);
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &crl_pem,
        "-CAfile",
        &bundle,
        &bob_leaf,
    ]);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &crl_pem,
        "-CAfile",
        &bundle,
        &s.leaf,
    ]);
    assert!(ok && out.contains(": OK"), "{out}");

    // OCSP: each certificate answered by (and verified against) the CA that issued it.
    let url = format!(
        "http://{}/api/dbcert/v1/groups/{}/ocsp",
        s.server.http_addr, s.group_id
    );
    let (ok, out) = openssl(&[
        "ocsp", "-issuer", &new_ca, "-cert", &bob_leaf, "-url", &url, "-CAfile", &new_ca,
    ]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": revoked"), "{out}");
    let (ok, out) = openssl(&[
        "ocsp", "-issuer", &old_ca, "-cert", &s.leaf, "-url", &url, "-CAfile", &old_ca,
    ]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": good"), "{out}");
    // Asked with the wrong issuer, the serial is unknown (no CA of the project matches).
    let (ok, out) = openssl(&[
        "ocsp", "-issuer", &new_ca, "-cert", &s.leaf, "-url", &url, "-CAfile", &new_ca,
    ]);
    assert!(ok && out.contains(": unknown"), "{out}");
}
