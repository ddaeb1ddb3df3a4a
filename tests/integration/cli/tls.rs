//! The client over TLS (the server's CA from --ca-file, names, the Mozilla roots refusing a
//! private CA) and mutual TLS (a client certificate standing for the API key).

use std::path::{Path, PathBuf};

use super::{Client, Run, path_str};
use crate::harness::{Key, TestServer};

/// A CA made at test time, and leaves it signs (written as PEM files into `dir`).
struct TestCa {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Signs a leaf (server names, or a client certificate naming an API key by its SAN URI
    /// `dbcert:api-key:<publicKey>`) and writes `<name>.pem`, `<name>-key.pem`.
    fn leaf(
        &self,
        dir: &Path,
        name: &str,
        sans: &[&str],
        api_key: Option<&str>,
    ) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![match api_key {
            Some(public_key) => {
                params.subject_alt_names = vec![rcgen::SanType::URI(
                    format!("dbcert:api-key:{public_key}").try_into().unwrap(),
                )];
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            }
            None => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn speaks_tls_and_authenticates_with_a_client_certificate() {
    use dbcert::tls::{ClientCertMode, MutualTls, PrincipalRule, TlsFiles, TlsSettings};
    use rustls::pki_types::pem::PemObject as _;

    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (TestCa::new("cli server ca"), TestCa::new("cli client ca"));
    let (cert, key) = server_ca.leaf(dir.path(), "server", &["localhost", "127.0.0.1"], None);
    let server_ca_file = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca_file, &server_ca.cert_pem).unwrap();
    let client_ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca_file, &client_ca.cert_pem).unwrap();
    let settings = TlsSettings {
        files: TlsFiles { cert, key },
        mutual: Some(MutualTls {
            client_ca: client_ca_file,
            mode: ClientCertMode::Optional,
            rule: PrincipalRule::SanUri,
        }),
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls::pki_types::CertificateDer::from_pem_slice(server_ca.cert_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
    let harness_client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server = TestServer::start_tls(settings, harness_client, Key::random()).await;
    let mut cli = Client::new(&server);
    cli.server = format!("https://127.0.0.1:{}", server.grpc_addr.port());
    let ca = path_str(&server_ca_file).to_owned();

    // https with the server's CA and the API key from the environment
    let run = cli
        .run(&["projects", "list", "--ca-file", &ca, "-o", "json"])
        .await;
    assert!(run.expect(0).json()["results"].is_array());
    // by name: the certificate holds localhost too
    let run = cli
        .run(&[
            "projects",
            "list",
            "--ca-file",
            &ca,
            "--server",
            &format!("https://localhost:{}", server.grpc_addr.port()),
        ])
        .await;
    run.expect(0);
    // without the CA (the Mozilla roots do not know it): the handshake fails, 6
    let run = cli.run(&["projects", "list"]).await;
    run.expect(6);
    assert!(run.stderr.contains("UnknownIssuer"), "{}", run.stderr);
    // plaintext gRPC against the TLS listener: 6
    let plain = format!("http://{}", server.grpc_addr);
    cli.run(&["projects", "list", "--server", &plain])
        .await
        .expect(6);

    // mutual TLS: a client certificate naming the key stands for it; no API key anywhere
    let (client_cert, client_key) =
        client_ca.leaf(dir.path(), "client", &[], Some(&server.key.public));
    let run = Run::of(cli.bare(&[
        "projects",
        "create",
        "over-mtls",
        "--ca-file",
        &ca,
        "--client-cert-file",
        path_str(&client_cert),
        "--client-key-file",
        path_str(&client_key),
    ]))
    .await;
    assert!(run.expect(0).stdout.contains("created"), "{}", run.stdout);
    // a certificate the client CA did not sign is refused
    let (stranger_cert, stranger_key) =
        server_ca.leaf(dir.path(), "stranger", &[], Some(&server.key.public));
    let run = Run::of(cli.bare(&[
        "projects",
        "list",
        "--ca-file",
        &ca,
        "--client-cert-file",
        path_str(&stranger_cert),
        "--client-key-file",
        path_str(&stranger_key),
    ]))
    .await;
    run.expect(6);
    assert!(run.stderr.contains("client certificate"), "{}", run.stderr);
}
