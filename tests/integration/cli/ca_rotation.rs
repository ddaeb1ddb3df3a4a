//! `dbcert projects ca rotate` and the trust bundle `dbcert projects ca` writes, checked with
//! openssl.

use super::{Client, ecdsa_ca, path_str};
use crate::ca_rotation::{assert_verifies, pem_count};
use crate::harness::{TestServer, openssl};

#[tokio::test(flavor = "multi_thread")]
async fn rotates_the_ca_and_writes_the_trust_bundle() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let cli = Client::new(&server);
    let group_id = clients.create_project("cli-rotation").await;
    ecdsa_ca(&server, &group_id).await;
    clients.create_managed_user(&group_id, "u").await;

    // Nothing to rotate before the first certificate: exit 4.
    let run = cli
        .run(&["projects", "ca", "rotate", "--projectId", &group_id])
        .await;
    run.expect(4);
    assert!(
        run.stderr.contains("PROJECT_CA_NOT_FOUND"),
        "{}",
        run.stderr
    );

    let old = clients.issue(&group_id, "u", Some(1)).await.unwrap();
    let run = cli
        .run(&[
            "projects",
            "ca",
            "rotate",
            "--projectId",
            &group_id,
            "--caKeyType",
            "ECDSA_P384",
            "--output",
            "json",
        ])
        .await;
    run.expect(0);
    let rotated = run.json();
    assert_eq!(rotated["generation"], 2, "{rotated}");
    assert_eq!(rotated["groupId"], group_id.as_str());
    let second = rotated["certificatePem"].as_str().unwrap().to_owned();

    // A type the server refuses for a CA: exit 2, nothing rotated.
    let run = cli
        .run(&[
            "projects",
            "ca",
            "rotate",
            "--projectId",
            &group_id,
            "--caKeyType",
            "RSA_2048",
        ])
        .await;
    run.expect(2);
    assert!(run.stderr.contains("INVALID_ENUM_VALUE"), "{}", run.stderr);

    let new = clients.issue(&group_id, "u", Some(1)).await.unwrap();
    let bundle = cli.dir().join("bundle.pem");
    let run = cli
        .run(&[
            "projects",
            "ca",
            "--projectId",
            &group_id,
            "--out",
            path_str(&bundle),
        ])
        .await;
    run.expect(0);
    assert!(run.stdout.contains("2 CAs"), "{}", run.stdout);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(pem_count(&text), 2, "{text}");
    assert!(text.starts_with(&second), "the issuing CA first");
    for issued in [&old, &new] {
        assert_verifies(&text, &issued.certificate_pem);
    }
    let (ok, out) = openssl(&["x509", "-in", path_str(&bundle), "-noout", "-subject"]);
    assert!(ok && out.contains("dnQualifier"), "{out}");
    server.stop().await;
}
