//! Certificates dbcert issues never authenticate as API keys (issue 13, item 2), against the
//! real binary with real TLS handshakes: a client certificate names its key only by the SAN URI
//! `dbcert:api-key:<publicKey>` (a dbcert-issued leaf whose CN is the key's public key names
//! nothing), and a client-CA file holding a project CA is refused on SIGHUP (the old
//! configuration keeps serving) and at start, naming the file and the project.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dbcert::tls::PrincipalRule;
use nix::sys::signal::Signal;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tonic::transport::Channel;

use crate::harness::binary::{Spawned, run_to_exit, serve_command};
use crate::harness::{Clients, Key, tls_connect};
use crate::tls::{Ca, Leaf, client_config, health, list_orgs, tls_channel, write_leaf};

/// Whether the gRPC listener refuses the handshake of `client` (TLS 1.3: the client learns of
/// it on its first read).
async fn handshake_refused(addr: SocketAddr, server_ca: &Ca, client: &Leaf) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tls_connect(addr, client_config(server_ca, Some(client))).await else {
        return true;
    };
    let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the server answers or closes");
    !matches!(read, Ok(n) if n > 0)
}

/// Waits until the gRPC listener answers health over TLS; returns a channel (no client
/// certificate).
async fn tls_serving(addr: SocketAddr, server_ca: &Ca, log: impl Fn() -> String) -> Channel {
    for _ in 0..400 {
        if tls_connect(addr, client_config(server_ca, None))
            .await
            .is_ok()
        {
            let channel = tls_channel(addr, client_config(server_ca, None)).await;
            if health(channel.clone()).await.is_ok_and(|s| s == 1) {
                return channel;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dbcert did not become SERVING over TLS:\n{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn project_cas_never_become_client_cas_and_issued_leaves_name_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server_ca = Ca::new("server ca");
    let client_ca = Ca::new("operator client ca");
    let files = write_leaf(dir.path(), &server_ca.server_leaf());
    let client_ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca_file, &client_ca.cert_pem).unwrap();
    let key = Key::random();
    let command = || {
        let mut command = serve_command(&data);
        command
            .arg("--tls-cert-file")
            .arg(&files.cert)
            .arg("--tls-key-file")
            .arg(&files.key)
            .arg("--grpc-client-ca-file")
            .arg(&client_ca_file)
            .env(
                "DBCERT_BOOTSTRAP_API_KEY",
                format!("{}:{}", key.public, key.private),
            );
        command
    };
    let mut child = Spawned::start(command()).await;
    let addr = child.grpc_addr;
    let channel = tls_serving(addr, &server_ca, || child.log()).await;

    // The attack of the review: a MANAGED user named after the ORG_OWNER key's public key, a
    // certificate issued for it, and the project CA that signed it.
    let clients = Clients::new(channel, key.clone());
    let group_id = clients.create_project("mtls-guard").await;
    clients.create_managed_user(&group_id, &key.public).await;
    let issued = clients
        .issue(&group_id, &key.public, Some(1))
        .await
        .unwrap();
    assert_eq!(issued.subject, format!("CN={}", key.public));
    let project_ca = clients.project_ca_pem(&group_id).await;
    // A CA rotation: the CA that signed `issued` becomes an older generation, which the guard
    // below must refuse as it refuses the issuing one.
    clients
        .certificates()
        .rotate_project_ca(dbcert::proto::v1::RotateProjectCaRequest {
            group_id: group_id.clone(),
            ca_key_type: dbcert::proto::v1::KeyType::Unspecified as i32,
        })
        .await
        .unwrap();
    assert_ne!(clients.project_ca_pem(&group_id).await, project_ca);
    let issued_der = CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap();
    assert_eq!(
        PrincipalRule::SanUri.public_key(&issued_der),
        None,
        "a leaf dbcert issues must name no API key"
    );
    let issued_leaf = Leaf {
        cert_pem: issued.certificate_pem.clone(),
        cert_der: issued_der,
        key_pem: issued.private_key_pem.clone(),
    };

    // The operator's certificate for the key, with the SAN URI, acts as the key.
    let operator = client_ca.client_leaf(&key.public);
    let as_operator = || async {
        list_orgs(
            tls_channel(addr, client_config(&server_ca, Some(&operator))).await,
            None,
        )
        .await
    };
    assert_eq!(as_operator().await.unwrap(), 1);
    assert!(
        handshake_refused(addr, &server_ca, &issued_leaf).await,
        "the project CA is not trusted"
    );

    // The project CA added to the client-CA file: the reload is refused, the old
    // configuration serves on.
    std::fs::write(
        &client_ca_file,
        format!("{}{}", client_ca.cert_pem, project_ca),
    )
    .unwrap();
    child.signal(Signal::SIGHUP);
    let refusal = format!(
        "the client CA file {} holds the CA of project {group_id} (certificate 2 in the file)",
        client_ca_file.display()
    );
    assert!(child.wait_for_log(&refusal).await, "{}", child.log());
    assert!(child.log().contains("tls reload failed"), "{}", child.log());
    assert_eq!(as_operator().await.unwrap(), 1, "the old configuration");
    assert!(
        handshake_refused(addr, &server_ca, &issued_leaf).await,
        "a refused reload must not trust the project CA"
    );
    assert!(
        !child.log().contains("tls files reloaded"),
        "{}",
        child.log()
    );

    child.signal(Signal::SIGTERM);
    let status = child.wait_exit().await;
    assert!(status.success(), "{status:?}\n{}", child.log());

    // A start with that file is refused, naming the file and the project.
    let (status, log) = run_to_exit(command(), &dir.path().join("out")).await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&refusal) && log.contains("--grpc-client-ca-file"),
        "{log}"
    );
    assert!(!log.contains(concat!("PRIVATE", " KEY")), "{log}");
}

/// The README's client certificate for an API key, made with the openssl command line.
#[tokio::test(flavor = "multi_thread")]
async fn an_openssl_client_certificate_with_the_san_uri_acts_as_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server_ca = Ca::new("server ca");
    let files = write_leaf(dir.path(), &server_ca.server_leaf());
    let key = Key::random();
    let marker = format!("URI:dbcert:api-key:{}", key.public);
    let Some(client) = openssl_client_certificate(dir.path(), &marker) else {
        return;
    };
    // The same marker next to a `dbcert` URI in another case (URI schemes are case-insensitive)
    // names no key: "exactly one" cannot be got around by case.
    let other = Key::random();
    let uppercase = format!("URI:DBCERT:api-key:{},{marker}", other.public);
    let Some(ambiguous) = openssl_client_certificate(dir.path(), &uppercase) else {
        return;
    };
    let mut command = serve_command(&data);
    command
        .arg("--tls-cert-file")
        .arg(&files.cert)
        .arg("--tls-key-file")
        .arg(&files.key)
        .arg("--grpc-client-ca-file")
        .arg(dir.path().join("client-ca.pem"))
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        );
    let child = Spawned::start(command).await;
    let addr = child.grpc_addr;
    tls_serving(addr, &server_ca, || child.log()).await;
    let channel = tls_channel(addr, client_config(&server_ca, Some(&client))).await;
    assert_eq!(
        list_orgs(channel, None).await.unwrap(),
        1,
        "{}",
        child.log()
    );
    let channel = tls_channel(addr, client_config(&server_ca, Some(&ambiguous))).await;
    let refused = list_orgs(channel, None).await;
    assert_eq!(
        refused.as_ref().map_err(tonic::Status::code),
        Err(tonic::Code::Unauthenticated),
        "{refused:?}\n{}",
        child.log()
    );
}

/// Runs the README's openssl commands in `dir`: a client CA (`client-ca.pem`, made once) and a
/// client certificate with the subjectAltName `san` (`URI:dbcert:api-key:<publicKey>` in the
/// README). `None` when openssl is missing (and allowed to be).
fn openssl_client_certificate(dir: &Path, san: &str) -> Option<Leaf> {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
    };
    if !dir.join("client-ca.pem").exists() {
        let ca = run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client-ca.key",
            "-out",
            "client-ca.pem",
            "-days",
            "365",
            "-subj",
            "/CN=dbcert API key clients",
        ]);
        match ca {
            Err(error) => {
                crate::harness::skip_missing_tool("openssl", &error.to_string());
                return None;
            }
            Ok(output) => assert!(output.status.success(), "{output:?}"),
        }
    }
    let san = format!("subjectAltName={san}");
    for args in [
        vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=deploy-bot",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "client-ca.pem",
            "-CAkey",
            "client-ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "90",
            "-extfile",
            "client.ext",
        ],
    ] {
        if args[0] == "x509" {
            std::fs::write(
                dir.join("client.ext"),
                format!("{san}\nextendedKeyUsage=clientAuth\n"),
            )
            .unwrap();
        }
        let output = run(&args).unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let cert_pem = std::fs::read_to_string(dir.join("client.pem")).unwrap();
    Some(Leaf {
        cert_der: CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap(),
        cert_pem,
        key_pem: std::fs::read_to_string(dir.join("client.key")).unwrap(),
    })
}
