//! `dbcert dbusers certs create --csr FILE`: the certificate for the key of an `openssl req`
//! request, written alone (no key), checked by openssl against the project CA and the CSR.

use super::{Client, ecdsa_ca, mode, path_str};
use crate::harness::{TestServer, openssl};

#[tokio::test(flavor = "multi_thread")]
async fn certs_create_with_a_csr_writes_the_certificate_for_the_callers_key() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    let dir = cli.dir().to_owned();
    let project = cli
        .run(&["projects", "create", "csr-project", "-o", "json"])
        .await
        .expect(0)
        .json();
    let group_id = project["id"].as_str().unwrap().to_owned();
    ecdsa_ca(&server, &group_id).await;
    cli.run(&[
        "dbusers",
        "create",
        "readAnyDatabase",
        "--username",
        "app-user",
        "--projectId",
        &group_id,
    ])
    .await
    .expect(0);

    let key = dir.join("app-user.key");
    let csr = dir.join("app-user.csr");
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        path_str(&key),
        "-subj",
        "/CN=app-user",
        "-out",
        path_str(&csr),
    ]);
    assert!(ok, "{out}");

    // --csr and --keyType together: a usage error, nothing issued.
    let cert = dir.join("app-user.crt");
    let both = cli
        .run(&[
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "app-user",
            "--csr",
            path_str(&csr),
            "--keyType",
            "ECDSA_P256",
            "--out",
            path_str(&cert),
        ])
        .await;
    both.expect(2);
    assert!(!cert.exists());

    // A request for another user is refused with its code, and no file is written.
    let bob = dir.join("bob.csr");
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-key",
        path_str(&key),
        "-subj",
        "/CN=bob",
        "-out",
        path_str(&bob),
    ]);
    assert!(ok, "{out}");
    let refused = cli
        .run(&[
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "app-user",
            "--csr",
            path_str(&bob),
            "--out",
            path_str(&cert),
        ])
        .await;
    refused.expect(2);
    assert!(
        refused.stderr.contains("CSR_SUBJECT_MISMATCH"),
        "{}",
        refused.stderr
    );
    assert!(!cert.exists());

    let created = cli
        .run(&[
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "app-user",
            "--csr",
            path_str(&csr),
            "--monthsUntilExpiration",
            "2",
            "--out",
            path_str(&cert),
        ])
        .await;
    created.expect(0);
    assert!(
        created.stdout.contains("written to") && !created.stdout.contains("private key"),
        "{}",
        created.stdout
    );
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert_eq!(pem.matches("-----BEGIN ").count(), 1, "{pem}");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert_eq!(mode(&cert), 0o600);

    let ca = dir.join("ca.pem");
    cli.run(&[
        "projects",
        "ca",
        "--projectId",
        &group_id,
        "--out",
        path_str(&ca),
    ])
    .await
    .expect(0);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        path_str(&ca),
        "-purpose",
        "sslclient",
        path_str(&cert),
    ]);
    assert!(ok, "{out}");
    let (_, cert_key) = openssl(&["x509", "-in", path_str(&cert), "-noout", "-pubkey"]);
    let (_, csr_key) = openssl(&["req", "-in", path_str(&csr), "-noout", "-pubkey"]);
    assert!(cert_key.contains("BEGIN PUBLIC KEY"));
    assert_eq!(cert_key, csr_key);
}
