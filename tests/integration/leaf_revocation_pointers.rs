//! Revocation pointers in leaves, the operator's opt-in (issue 11, `--leaf-revocation-pointers
//! crl,ocsp` on `--public-url`), checked on the real binary by openssl: `x509 -ext` shows the
//! CRL Distribution Point (the signing CA generation's CRL) and the AIA OCSP URL, non-critical;
//! `verify -crl_check -crl_download` fetches the CRL from the leaf's own URL (passes, then fails
//! with "certificate revoked" once the certificate is revoked); `ocsp -url $(x509 -ocsp_uri)`
//! answers good, then revoked. After a CA rotation a new leaf names the new generation's CRL
//! while an old leaf's URL keeps serving its own CA's CRL (`crl -verify` against the old CA).
//! Off (the default), leaves carry neither extension. With `--leaf-revocation-pointer-url`
//! the pointers start with it, not with an https `--public-url` (never fetched here): openssl
//! downloads the CRL through it. The pointers without either URL, or the pointer URL without
//! the pointers, refuse to start; https pointers start with a warning. The URL the pointers
//! name is a [`FrontDoor`] bound before the server starts.

use std::path::Path;

use dbcert::proto::v1::{CreateUserCertificateRequest, KeyType};

use crate::harness::atlas::{Alg, Atlas};
use crate::harness::binary::{Spawned, run_to_exit, serve_command};
use crate::harness::front_door::FrontDoor;
use crate::harness::{Clients, Key, TestServer, openssl, skip_missing_tool, write};

fn tools_missing() -> bool {
    let missing = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err();
    missing && skip_missing_tool("openssl", "not on PATH")
}

/// `openssl <args>`, which must succeed; its output.
#[track_caller]
fn openssl_ok(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?}: {out}");
    out
}

/// The CRL Distribution Points and Authority Information Access extensions as openssl prints
/// them ("No extensions in certificate" when there are neither).
fn pointer_extensions(leaf: &str) -> String {
    openssl_ok(&[
        "x509",
        "-noout",
        "-in",
        leaf,
        "-ext",
        "crlDistributionPoints,authorityInfoAccess",
    ])
}

/// The OID and criticality of each extension of a PEM certificate, in order.
fn extensions(pem: &str) -> Vec<(String, bool)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    cert.extensions()
        .iter()
        .map(|extension| (extension.oid.to_id_string(), extension.critical))
        .collect()
}

/// The URL of a leaf's CRL Distribution Point, as openssl reads it.
fn crl_url(leaf: &str) -> String {
    let text = pointer_extensions(leaf);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("no CRL distribution point URI in:\n{text}"))
        .to_owned()
}

/// `openssl verify -crl_check -crl_download`: openssl fetches the CRL at the leaf's CDP.
fn verify_downloading_the_crl(ca: &str, leaf: &str) -> (bool, String) {
    openssl(&["verify", "-crl_check", "-crl_download", "-CAfile", ca, leaf])
}

/// `openssl ocsp` at the URL the leaf names (`x509 -ocsp_uri`); its output.
fn ocsp_at_the_leafs_url(ca: &str, leaf: &str) -> String {
    let url = openssl_ok(&["x509", "-noout", "-ocsp_uri", "-in", leaf]);
    let url = url.trim();
    openssl_ok(&[
        "ocsp", "-issuer", ca, "-cert", leaf, "-url", url, "-CAfile", ca,
    ])
}

/// The binary with the pointers on (through the environment variable) behind `front`, the
/// public URL.
/// openssl, following the leaves' pointers: alice's CRL download verifies and OCSP says good;
/// after her certificate's revocation (keyCompromise, over REST) the downloaded CRL lists it and
/// the responder says revoked with the reason; bob's still verifies.
async fn revocation_is_seen_through_the_pointers(
    atlas: &Atlas,
    group_id: &str,
    alice_serial: i64,
    ca: &str,
    alice: &str,
    bob: &str,
) {
    let (ok, out) = verify_downloading_the_crl(ca, alice);
    assert!(ok && out.contains("OK"), "{out}");
    let out = ocsp_at_the_leafs_url(ca, alice);
    assert!(out.contains(&format!("{alice}: good")), "{out}");
    let revoke =
        format!("/api/dbcert/v1/groups/{group_id}/databaseUsers/alice/certs/{alice_serial}/revoke");
    let resp = atlas.post(&revoke, r#"{"reason":"keyCompromise"}"#).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let (ok, out) = verify_downloading_the_crl(ca, alice);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let out = ocsp_at_the_leafs_url(ca, alice);
    assert!(out.contains(&format!("{alice}: revoked")), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    let (ok, out) = verify_downloading_the_crl(ca, bob);
    assert!(ok, "bob is not revoked: {out}");
}

async fn start(dir: &Path, key: &Key, front: &FrontDoor, pointers: &str) -> Spawned {
    start_with(dir, key, front, pointers, &["--public-url", &front.url()]).await
}

/// The binary with the pointers on and `url_args` naming their base, `front` forwarding to it.
async fn start_with(
    dir: &Path,
    key: &Key,
    front: &FrontDoor,
    pointers: &str,
    url_args: &[&str],
) -> Spawned {
    let mut command = serve_command(dir);
    command
        .args(url_args)
        .args(["--key-pool-size", "0"])
        .env("DBCERT_LEAF_REVOCATION_POINTERS", pointers)
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        );
    let process = Spawned::start(command).await;
    front.forward_to(process.http_addr);
    process
}

/// Issues a P-256 certificate to `username`; returns its PEM and serial.
async fn issue(clients: &Clients, group_id: &str, username: &str, csr_pem: &str) -> (String, i64) {
    let issued = clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group_id.into(),
            username: username.into(),
            months_until_expiration: Some(3),
            key_type: if csr_pem.is_empty() {
                KeyType::EcdsaP256 as i32
            } else {
                KeyType::Unspecified as i32
            },
            csr_pem: (!csr_pem.is_empty()).then(|| csr_pem.to_owned()),
        })
        .await
        .unwrap()
        .into_inner();
    (issued.certificate_pem, issued.serial_number)
}

/// A P-256 key and a CSR for `CN=<username>`, made by openssl.
fn csr(dir: &Path, username: &str) -> String {
    let key = dir.join(format!("{username}.key"));
    let key = key.to_string_lossy();
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &key,
    ]);
    let csr = dir.join(format!("{username}.csr"));
    let csr = csr.to_string_lossy();
    let subject = format!("/CN={username}");
    openssl_ok(&["req", "-new", "-key", &key, "-subj", &subject, "-out", &csr]);
    std::fs::read_to_string(&*csr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_point_at_their_own_cas_crl_and_the_ocsp_responder() {
    if tools_missing() {
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = Key::random();
    let front = FrontDoor::bind();
    let process = start(data_dir.path(), &key, &front, "crl,ocsp").await;
    let clients = process.clients(&key).await;
    let atlas = Atlas {
        http: reqwest::Client::new(),
        base: format!("http://{}", process.http_addr),
        key: key.clone(),
        alg: Alg::Md5,
    };
    let group_id = clients
        .create_project_with_ca("pointers", KeyType::EcdsaP256)
        .await;
    for user in ["alice", "bob", "carol"] {
        clients.create_managed_user(&group_id, user).await;
    }
    let (alice_pem, alice_serial) = issue(&clients, &group_id, "alice", "").await;
    let (bob_pem, bob_serial) = issue(&clients, &group_id, "bob", "").await;
    let (carol_pem, carol_serial) =
        issue(&clients, &group_id, "carol", &csr(dir.path(), "carol")).await;
    let first_ca_pem = clients.project_ca_pem(&group_id).await;
    let first_ca = write(dir.path(), "ca-1.pem", &first_ca_pem);
    let alice = write(dir.path(), "alice.pem", &alice_pem);
    let bob = write(dir.path(), "bob.pem", &bob_pem);
    let carol = write(dir.path(), "carol.pem", &carol_pem);

    // The extensions, non-critical, with the URLs of the public URL; a CSR's leaf the same.
    let group_url = format!("{}/api/dbcert/v1/groups/{group_id}", front.url());
    let expected = format!(
        "X509v3 CRL Distribution Points: \n    Full Name:\n      URI:{group_url}/crl/1\n\
         Authority Information Access: \n    OCSP - URI:{group_url}/ocsp\n"
    );
    let printed = pointer_extensions(&alice);
    assert_eq!(printed.replace("\n\n", "\n"), expected, "{printed}");
    assert!(!printed.contains("critical"), "{printed}");
    assert_eq!(pointer_extensions(&carol), printed, "the CSR's leaf");
    // The Atlas profile is otherwise unchanged: key usage and extended key usage, critical.
    assert_eq!(
        extensions(&alice_pem),
        [
            ("2.5.29.15".to_owned(), true),
            ("2.5.29.31".to_owned(), false),
            ("2.5.29.37".to_owned(), true),
            ("1.3.6.1.5.5.7.1.1".to_owned(), false),
        ]
    );

    // openssl follows the leaf's pointers before and after alice's revocation.
    revocation_is_seen_through_the_pointers(
        &atlas,
        &group_id,
        alice_serial,
        &first_ca,
        &alice,
        &bob,
    )
    .await;

    // A rotation: a new leaf names generation 2's CRL, which its CA signs.
    let resp = atlas
        .post(&format!("/api/dbcert/v1/groups/{group_id}/ca/rotate"), "{}")
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let second_ca = write(
        dir.path(),
        "ca-2.pem",
        resp.json()["certificatePem"].as_str().unwrap(),
    );
    let (new_pem, _) = issue(&clients, &group_id, "carol", "").await;
    let new = write(dir.path(), "new.pem", &new_pem);
    assert_eq!(crl_url(&new), format!("{group_url}/crl/2"));
    assert!(pointer_extensions(&new).contains(&format!("OCSP - URI:{group_url}/ocsp")));
    let (ok, out) = verify_downloading_the_crl(&second_ca, &new);
    assert!(ok && out.contains("OK"), "{out}");
    let out = ocsp_at_the_leafs_url(&second_ca, &new);
    assert!(out.contains(": good"), "{out}");

    // The old leaves' URL still serves the old CA's CRL (bob keeps that CA in the bundle): it
    // verifies against the old CA, not the new one, and lists alice.
    let old_url = crl_url(&alice);
    assert_eq!(old_url, format!("{group_url}/crl/1"));
    let response = reqwest::get(&old_url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pkix-crl");
    let old_crl = dir.path().join("crl-1.der");
    std::fs::write(&old_crl, response.bytes().await.unwrap()).unwrap();
    let old_crl = old_crl.to_string_lossy();
    let verify_crl = |ca: &str| {
        openssl(&[
            "crl", "-inform", "DER", "-in", &old_crl, "-noout", "-CAfile", ca, "-verify",
        ])
    };
    let (ok, out) = verify_crl(&first_ca);
    assert!(ok && out.contains("verify OK"), "{out}");
    let (ok, out) = verify_crl(&second_ca);
    assert!(!ok || !out.contains("verify OK"), "{out}");
    let text = openssl_ok(&["crl", "-inform", "DER", "-in", &old_crl, "-noout", "-text"]);
    let alice_hex = openssl_ok(&["x509", "-noout", "-serial", "-in", &alice]);
    let alice_hex = alice_hex.trim().trim_start_matches("serial=");
    assert!(text.contains(alice_hex), "{alice_hex} in\n{text}");
    // And openssl, checking the old leaves against the whole bundle, fetches generation 1's.
    let bundle = write(
        dir.path(),
        "bundle.pem",
        &format!(
            "{}{first_ca_pem}",
            std::fs::read_to_string(&second_ca).unwrap()
        ),
    );
    let (ok, out) = verify_downloading_the_crl(&bundle, &alice);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = verify_downloading_the_crl(&bundle, &bob);
    assert!(ok, "{out}");

    // Generations that are not in the bundle, or not generations: Atlas-shaped 404s.
    for generation in ["3", "0", "01", "x"] {
        atlas
            .raw(
                "GET",
                &format!("/api/dbcert/v1/groups/{group_id}/crl/{generation}"),
                None,
                &[],
            )
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    atlas
        .raw(
            "GET",
            "/api/dbcert/v1/groups/0123456789abcdef01234567/crl/1",
            None,
            &[],
        )
        .await
        .assert_error(404, "GROUP_NOT_FOUND");

    // Once the last valid certificates of generation 1 (bob's, carol's first) are revoked, its
    // CA leaves the bundle and its CRL is no longer served.
    for (user, serial) in [("bob", bob_serial), ("carol", carol_serial)] {
        let resp = atlas
            .post(
                &format!(
                    "/api/dbcert/v1/groups/{group_id}/databaseUsers/{user}/certs/{serial}/revoke"
                ),
                r#"{"reason":"superseded"}"#,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    atlas
        .raw(
            "GET",
            &format!("/api/dbcert/v1/groups/{group_id}/crl/1"),
            None,
            &[],
        )
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_carry_only_the_pointers_asked_for_and_none_by_default() {
    if tools_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Off (the default), even with a public URL: neither extension, on both issue paths.
    let server = TestServer::start_with(|config| {
        config.public_url =
            Some(dbcert::gateway::PublicUrl::parse("https://dbcert.example.com").unwrap());
    })
    .await;
    let clients = server.clients().await;
    let group_id = clients
        .create_project_with_ca("atlas-profile", KeyType::EcdsaP256)
        .await;
    clients.create_managed_user(&group_id, "alice").await;
    let (pem, _) = issue(&clients, &group_id, "alice", "").await;
    let leaf = write(dir.path(), "default.pem", &pem);
    assert_eq!(
        pointer_extensions(&leaf).trim(),
        "No extensions in certificate"
    );
    let (pem, _) = issue(&clients, &group_id, "alice", &csr(dir.path(), "alice")).await;
    let leaf = write(dir.path(), "default-csr.pem", &pem);
    assert_eq!(
        pointer_extensions(&leaf).trim(),
        "No extensions in certificate"
    );

    // `ocsp` alone: the AIA extension and no distribution point.
    let data_dir = tempfile::tempdir().unwrap();
    let key = Key::random();
    let front = FrontDoor::bind();
    let process = start(data_dir.path(), &key, &front, "ocsp").await;
    let clients = process.clients(&key).await;
    let group_id = clients
        .create_project_with_ca("ocsp-only", KeyType::EcdsaP256)
        .await;
    clients.create_managed_user(&group_id, "alice").await;
    let (pem, _) = issue(&clients, &group_id, "alice", "").await;
    let leaf = write(dir.path(), "ocsp-only.pem", &pem);
    assert_eq!(
        pointer_extensions(&leaf).replace("\n\n", "\n"),
        format!(
            "Authority Information Access: \n    OCSP - URI:{}/api/dbcert/v1/groups/{group_id}/ocsp\n",
            front.url()
        )
    );
}

/// The warning logged at start when the pointers are https URLs.
const HTTPS_WARNING: &str = "the revocation pointers are https URLs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_http_pointer_url_behind_an_https_public_url() {
    if tools_missing() {
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = Key::random();
    // The API's public URL is https and never reached; the pointers name the front door.
    let front = FrontDoor::bind();
    let process = start_with(
        data_dir.path(),
        &key,
        &front,
        "crl,ocsp",
        &[
            "--public-url",
            "https://dbcert.invalid",
            "--leaf-revocation-pointer-url",
            &front.url(),
        ],
    )
    .await;
    let clients = process.clients(&key).await;
    let atlas = Atlas {
        http: reqwest::Client::new(),
        base: format!("http://{}", process.http_addr),
        key: key.clone(),
        alg: Alg::Md5,
    };
    let group_id = clients
        .create_project_with_ca("pointer-url", KeyType::EcdsaP256)
        .await;
    for user in ["alice", "bob"] {
        clients.create_managed_user(&group_id, user).await;
    }
    let (alice_pem, alice_serial) = issue(&clients, &group_id, "alice", "").await;
    let (bob_pem, _) = issue(&clients, &group_id, "bob", &csr(dir.path(), "bob")).await;
    let ca = write(
        dir.path(),
        "ca.pem",
        &clients.project_ca_pem(&group_id).await,
    );
    let alice = write(dir.path(), "alice.pem", &alice_pem);
    let bob = write(dir.path(), "bob.pem", &bob_pem);

    // Both extensions name the pointer URL (http), on both issue paths.
    let group_url = format!("{}/api/dbcert/v1/groups/{group_id}", front.url());
    assert!(group_url.starts_with("http://127.0.0.1:"), "{group_url}");
    let expected = format!(
        "X509v3 CRL Distribution Points: \n    Full Name:\n      URI:{group_url}/crl/1\n\
         Authority Information Access: \n    OCSP - URI:{group_url}/ocsp\n"
    );
    let printed = pointer_extensions(&alice);
    assert_eq!(printed.replace("\n\n", "\n"), expected, "{printed}");
    assert_eq!(pointer_extensions(&bob), printed, "the CSR's leaf");
    // The public URL still names the REST links.
    let resp = atlas
        .get(&format!("/api/atlas/v1.0/groups/{group_id}"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.body
            .contains("https://dbcert.invalid/api/atlas/v1.0/groups/"),
        "{}",
        resp.body
    );
    // http pointers: no warning.
    assert!(!process.log().contains(HTTPS_WARNING), "{}", process.log());

    // openssl downloads the CRL through the pointer URL, and asks the responder there.
    revocation_is_seen_through_the_pointers(&atlas, &group_id, alice_serial, &ca, &alice, &bob)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_pointers_start_with_a_warning() {
    let key = Key::random();
    // An https public URL alone, then an https pointer URL over an http public URL: both warn
    // (and start); an http pointer URL over an https public URL does not warn (the test above).
    for url_args in [
        &["--public-url", "https://dbcert.invalid"][..],
        &[
            "--public-url",
            "http://dbcert.invalid",
            "--leaf-revocation-pointer-url",
            "https://crl.invalid",
        ],
    ] {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = serve_command(data_dir.path());
        command
            .args(url_args)
            .args(["--leaf-revocation-pointers", "crl", "--key-pool-size", "0"])
            .env(
                "DBCERT_BOOTSTRAP_API_KEY",
                format!("{}:{}", key.public, key.private),
            );
        let process = Spawned::start(command).await;
        assert!(
            process.wait_for_log(HTTPS_WARNING).await,
            "{url_args:?}: {}",
            process.log()
        );
        assert!(process.log().contains("-crl_download"), "{}", process.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pointers_without_a_url_or_the_url_without_pointers_refuse_to_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = data_dir.path().join("out.log");
    let command = || serve_command(&data_dir.path().join("data"));
    // The pointers with neither URL: refused, naming both.
    let mut by_flag = command();
    by_flag.args(["--leaf-revocation-pointers", "crl"]);
    let mut by_env = command();
    by_env.env("DBCERT_LEAF_REVOCATION_POINTERS", "ocsp,crl");
    for command in [by_flag, by_env] {
        let (status, log) = run_to_exit(command, &out).await;
        assert!(!status.success(), "{log}");
        assert!(
            log.contains("--leaf-revocation-pointers (")
                && log.contains("needs --leaf-revocation-pointer-url")
                && log.contains("or --public-url"),
            "{log}"
        );
        assert!(!log.contains("dbcert serving"), "{log}");
    }
    // The pointer URL without the pointers would do nothing: refused, with or without a
    // public URL.
    let mut by_flag = command();
    by_flag.args(["--leaf-revocation-pointer-url", "http://crl.invalid"]);
    let mut by_env = command();
    by_env
        .args(["--public-url", "https://dbcert.invalid"])
        .env("DBCERT_LEAF_REVOCATION_POINTER_URL", "http://crl.invalid");
    for command in [by_flag, by_env] {
        let (status, log) = run_to_exit(command, &out).await;
        assert!(!status.success(), "{log}");
        assert!(
            log.contains("--leaf-revocation-pointer-url")
                && log.contains("only used with --leaf-revocation-pointers"),
            "{log}"
        );
        assert!(!log.contains("dbcert serving"), "{log}");
    }
}
