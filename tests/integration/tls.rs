//! TLS on both listeners and mutual TLS on gRPC, with real handshakes against certificates
//! generated here: REST over HTTPS (reqwest and curl `--cacert`), gRPC over TLS, a client
//! certificate standing for an API key by its SAN URI `dbcert:api-key:<publicKey>` (a CN alone
//! names nothing), unknown and unsigned client certificates refused, and
//! the real binary reloading its certificate on SIGHUP without dropping a connection (a bad file
//! keeps the old one), `dbcert healthcheck` over TLS and mutual TLS with the server's
//! environment, and Atlas errors for the requests hyper refuses over HTTPS.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dbcert::proto::v1::ListOrganizationsRequest;
use dbcert::proto::v1::organization_service_client::OrganizationServiceClient;
use dbcert::tls::{ClientCertMode, MutualTls, PrincipalRule, TlsFiles, TlsSettings};
use nix::sys::signal::Signal;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::atlas::{self, authorization, nonce_of};
use crate::harness::binary::{self, Spawned, serve_command};
use crate::harness::{self, Key, TestServer, skip_missing_tool, tls_connect};

/// A CA generated at test time.
pub(crate) struct Ca {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf generated at test time.
pub(crate) struct Leaf {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) key_pem: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    pub(crate) fn server_leaf(&self) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf(params)
    }

    /// A client certificate for the API key `public_key`: the SAN URI names it (the CN is
    /// another name, to show it is not read).
    pub(crate) fn client_leaf(&self, public_key: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "an api key's client");
        params.subject_alt_names = vec![SanType::URI(
            format!("dbcert:api-key:{public_key}").try_into().unwrap(),
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(params)
    }

    /// A client certificate with only a CN (no SAN): the shape of the leaves dbcert issues.
    pub(crate) fn client_leaf_cn_only(&self, common_name: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(params)
    }

    fn leaf(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub(crate) fn write_leaf(dir: &Path, leaf: &Leaf) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&files.cert, &leaf.cert_pem).unwrap();
    std::fs::write(&files.key, &leaf.key_pem).unwrap();
    files
}

pub(crate) fn client_config(ca: &Ca, client: Option<&Leaf>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.cert_der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// A gRPC channel over TLS (tokio-rustls under tonic's plain transport).
pub(crate) async fn tls_channel(addr: SocketAddr, config: rustls::ClientConfig) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(harness::tls_connector(addr, config))
        .await
        .unwrap()
}

async fn served_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let stream = tls_connect(addr, client_config(ca, None)).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

pub(crate) async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status)
}

pub(crate) async fn list_orgs(channel: Channel, key: Option<&Key>) -> Result<usize, tonic::Status> {
    let mut request = tonic::Request::new(ListOrganizationsRequest::default());
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", key.basic().parse().unwrap());
    }
    OrganizationServiceClient::new(channel)
        .list_organizations(request)
        .await
        .map(|r| r.into_inner().results.len())
}

struct TlsFixture {
    server_ca: Ca,
    client_ca: Ca,
    /// The server's certificate and key files.
    files: TlsFiles,
    _dir: tempfile::TempDir,
}

async fn start_tls(mode: ClientCertMode) -> (TestServer, TlsFixture) {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("test server ca");
    let client_ca = Ca::new("test client ca");
    let files = write_leaf(dir.path(), &server_ca.server_leaf());
    let client_ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca_file, &client_ca.cert_pem).unwrap();
    let settings = TlsSettings {
        files: files.clone(),
        mutual: Some(MutualTls {
            client_ca: client_ca_file,
            mode,
            rule: PrincipalRule::SanUri,
        }),
    };
    // The harness's own client presents a certificate naming the bootstrap key (for Required).
    let key = Key::random();
    let harness = client_config(&server_ca, Some(&client_ca.client_leaf(&key.public)));
    let server = TestServer::start_tls(settings, harness, key).await;
    (
        server,
        TlsFixture {
            server_ca,
            client_ca,
            files,
            _dir: dir,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_over_tls_with_basic_credentials_or_a_client_certificate() {
    let (server, fx) = start_tls(ClientCertMode::Optional).await;
    let addr = server.grpc_addr;

    // No client certificate (optional): Basic credentials as usual.
    let channel = tls_channel(addr, client_config(&fx.server_ca, None)).await;
    assert_eq!(health(channel.clone()).await.unwrap(), 1);
    assert_eq!(
        list_orgs(channel.clone(), Some(&server.key)).await.unwrap(),
        1
    );
    assert_eq!(
        list_orgs(channel, None).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    // A client certificate naming the bootstrap key acts as that key, no secret sent.
    let me = fx.client_ca.client_leaf(&server.key.public);
    let channel = tls_channel(addr, client_config(&fx.server_ca, Some(&me))).await;
    assert_eq!(list_orgs(channel.clone(), None).await.unwrap(), 1);
    let clients = harness::Clients::new(channel.clone(), server.key.clone());
    let group_id = clients.create_project("mtls").await;
    let mut request = tonic::Request::new(dbcert::proto::v1::GetProjectRequest {
        group_id: group_id.clone(),
    });
    request.metadata_mut().remove("authorization");
    dbcert::proto::v1::project_service_client::ProjectServiceClient::new(channel)
        .get_project(request)
        .await
        .expect("the certificate's key has the ORG_OWNER role");

    // A verified certificate naming no existing key: UNAUTHENTICATED.
    let stranger = fx.client_ca.client_leaf("zzzzzzzz");
    let channel = tls_channel(addr, client_config(&fx.server_ca, Some(&stranger))).await;
    assert_eq!(
        list_orgs(channel, None).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    // A verified certificate whose CN is the key's public key, without the SAN URI (what a
    // project CA issues for a database user named after a key): it names nothing.
    let cn_only = fx.client_ca.client_leaf_cn_only(&server.key.public);
    let channel = tls_channel(addr, client_config(&fx.server_ca, Some(&cn_only))).await;
    assert_eq!(
        list_orgs(channel, None).await.unwrap_err().code(),
        tonic::Code::Unauthenticated,
        "a CN alone must not name an API key"
    );

    // A certificate from another CA (here: a self-made one) is refused at the handshake.
    let rogue = Ca::new("rogue").client_leaf(&server.key.public);
    let result = tls_connect(addr, client_config(&fx.server_ca, Some(&rogue))).await;
    if let Ok(mut stream) = result {
        // TLS 1.3: the client learns of the refusal on its first read.
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("bounded");
        assert!(
            !matches!(read, Ok(n) if n > 0),
            "an unsigned client certificate must be refused"
        );
    }
    // The server is fine afterwards.
    let channel = tls_channel(addr, client_config(&fx.server_ca, None)).await;
    assert_eq!(health(channel).await.unwrap(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn required_client_certificates_refuse_connections_without_one() {
    let (server, fx) = start_tls(ClientCertMode::Required).await;
    let result = tls_connect(server.grpc_addr, client_config(&fx.server_ca, None)).await;
    if let Ok(mut stream) = result {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("bounded");
        assert!(!matches!(read, Ok(n) if n > 0), "no certificate: refused");
    }
    let me = fx.client_ca.client_leaf(&server.key.public);
    let channel = tls_channel(server.grpc_addr, client_config(&fx.server_ca, Some(&me))).await;
    assert_eq!(list_orgs(channel, None).await.unwrap(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_over_https_with_reqwest_and_curl() {
    let (server, fx) = start_tls(ClientCertMode::Optional).await;
    let base = format!("https://localhost:{}", server.http_addr.port());
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(fx.server_ca.cert_pem.as_bytes()).unwrap(),
        )
        .resolve("localhost", server.http_addr)
        .build()
        .unwrap();
    let target = "/api/atlas/v1.0/orgs";
    let challenge = http.get(format!("{base}{target}")).send().await.unwrap();
    assert_eq!(challenge.status(), 401);
    let nonce = nonce_of(challenge.headers()["www-authenticate"].to_str().unwrap());
    let auth = authorization(
        &server.key,
        atlas::Alg::Md5,
        "GET",
        target,
        &nonce,
        1,
        "0a4f113b",
    );
    let response = http
        .get(format!("{base}{target}"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Plain HTTP to the TLS listener gets no HTTP answer: the connection is closed, at most
    // after a TLS alert record (content type 21), where a plaintext server answers
    // `HTTP/1.1 401` to the same bytes.
    let answer = plain_http_answer(server.http_addr, target).await;
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "a TLS listener must not answer plain HTTP: {:?}",
        String::from_utf8_lossy(&answer)
    );

    let dir = tempfile::tempdir().unwrap();
    let ca_file = harness::write(dir.path(), "ca.pem", &fx.server_ca.cert_pem);
    let user = format!("{}:{}", server.key.public, server.key.private);
    let url = format!("{base}{target}");
    let output = Command::new("curl")
        .args([
            "-sS", "--fail", "--cacert", &ca_file, "--digest", "--user", &user,
        ])
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", server.http_addr.port()),
        ])
        .arg(&url)
        .output();
    match output {
        Err(error) => {
            skip_missing_tool("curl", &error.to_string());
        }
        Ok(output) => {
            assert!(output.status.success(), "{output:?}");
            let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(body["totalCount"], 1, "{body}");
        }
    }
    server.stop().await;
}

/// Sends a plain HTTP/1.1 request and returns every byte the server sends back until it
/// closes the connection.
async fn plain_http_answer(addr: SocketAddr, target: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // The server may close before reading it all: a failed write is no answer either.
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server must close the connection");
    bytes
}

/// A gRPC channel over TLS whose connector counts its dials: tonic re-dials a lost
/// connection by itself, so only a count of one shows that calls kept using the first.
async fn counted_tls_channel(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    dials: Arc<AtomicUsize>,
) -> Channel {
    use tower::ServiceExt as _;
    let connector = harness::tls_connector(addr, config);
    let counted = tower::service_fn(move |uri: http::Uri| {
        dials.fetch_add(1, Ordering::SeqCst);
        connector.clone().oneshot(uri)
    });
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(counted)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = Ca::new("reload ca");
    let first = ca.server_leaf();
    let files = write_leaf(dir.path(), &first);
    let mut command = serve_command(&data);
    command
        .arg("--tls-cert-file")
        .arg(&files.cert)
        .arg("--tls-key-file")
        .arg(&files.key);
    let mut child = Spawned::start(command).await;
    let (grpc_addr, http_addr) = (child.grpc_addr, child.http_addr);

    let mut old_channel = None;
    for _ in 0..200 {
        if tls_connect(grpc_addr, client_config(&ca, None))
            .await
            .is_ok()
        {
            let dials = Arc::new(AtomicUsize::new(0));
            let channel =
                counted_tls_channel(grpc_addr, client_config(&ca, None), dials.clone()).await;
            if health(channel.clone()).await.is_ok_and(|s| s == 1) {
                old_channel = Some((channel, dials));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (old_channel, old_dials) = old_channel.expect("dbcert did not become SERVING over TLS");
    assert_eq!(served_certificate(grpc_addr, &ca).await, first.cert_der);
    assert_eq!(served_certificate(http_addr, &ca).await, first.cert_der);

    // New files, SIGHUP: new connections get the new certificate.
    let second = ca.server_leaf();
    write_leaf(dir.path(), &second);
    child.signal(Signal::SIGHUP);
    let mut reloaded = false;
    for _ in 0..200 {
        if served_certificate(grpc_addr, &ca).await == second.cert_der {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloaded, "the gRPC listener must serve the new certificate");
    assert_eq!(served_certificate(http_addr, &ca).await, second.cert_der);
    // The connection opened before the reload still works: the same connection, not a new
    // one tonic dialled.
    assert_eq!(health(old_channel.clone()).await.unwrap(), 1);
    assert_eq!(
        old_dials.load(Ordering::SeqCst),
        1,
        "the old connection was lost"
    );

    // A broken file: the reload fails, is logged, and the last good certificate stays.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    child.signal(Signal::SIGHUP);
    assert!(
        child.wait_for_log("tls reload failed").await,
        "{}",
        child.log()
    );
    assert_eq!(served_certificate(grpc_addr, &ca).await, second.cert_der);
    assert_eq!(health(old_channel).await.unwrap(), 1);
    assert_eq!(
        old_dials.load(Ordering::SeqCst),
        1,
        "the old connection was lost"
    );

    child.signal(Signal::SIGTERM);
    let status = child.wait_exit().await;
    let log = child.log();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

/// Runs `dbcert healthcheck` with only `DBCERT_GRPC_LISTEN` and `env` in its environment, as the
/// container's HEALTHCHECK runs it beside the server.
async fn healthcheck(addr: SocketAddr, env: &[(&str, &Path)]) -> (bool, String, String) {
    let env: Vec<(String, std::path::PathBuf)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.to_path_buf()))
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary::BIN)
            .arg("healthcheck")
            .env_clear()
            .env("DBCERT_GRPC_LISTEN", addr.to_string())
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_healthcheck_speaks_tls_with_the_servers_environment() {
    let (server, fx) = start_tls(ClientCertMode::Optional).await;
    let addr = server.grpc_addr;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, &fx.server_ca.cert_pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, Ca::new("another ca").cert_pem).unwrap();
    let another_leaf = dir.path().join("another-leaf.pem");
    std::fs::write(&another_leaf, fx.server_ca.server_leaf().cert_pem).unwrap();
    let server_env = [
        ("DBCERT_TLS_CERT_FILE", fx.files.cert.as_path()),
        ("DBCERT_TLS_KEY_FILE", fx.files.key.as_path()),
    ];

    // The server's own variables: TLS, trusting exactly the configured certificate.
    let (ok, stdout, stderr) = healthcheck(addr, &server_env).await;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "SERVING");

    // A CA file: the chain and the name (the default name is the address, 127.0.0.1).
    let (ok, stdout, stderr) = healthcheck(
        addr,
        &[
            ("DBCERT_TLS_CERT_FILE", fx.files.cert.as_path()),
            ("DBCERT_HEALTHCHECK_CA_FILE", server_ca.as_path()),
        ],
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = healthcheck(
        addr,
        &[
            ("DBCERT_HEALTHCHECK_CA_FILE", server_ca.as_path()),
            ("DBCERT_HEALTHCHECK_SERVER_NAME", Path::new("localhost")),
        ],
    )
    .await;
    assert!(ok, "{stdout}{stderr}");

    // Failures say what is wrong: another CA, another name, another certificate, no TLS.
    let (ok, _, stderr) =
        healthcheck(addr, &[("DBCERT_HEALTHCHECK_CA_FILE", other_ca.as_path())]).await;
    assert!(!ok);
    assert!(
        stderr.contains("health check failed")
            && stderr.contains(&format!(
                "the server's certificate is not signed by a CA in {}",
                other_ca.display()
            )),
        "{stderr}"
    );
    let (ok, _, stderr) = healthcheck(
        addr,
        &[
            ("DBCERT_HEALTHCHECK_CA_FILE", server_ca.as_path()),
            (
                "DBCERT_HEALTHCHECK_SERVER_NAME",
                Path::new("dbcert.example"),
            ),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("dbcert.example") && stderr.contains("--server-name"),
        "{stderr}"
    );
    let (ok, _, stderr) =
        healthcheck(addr, &[("DBCERT_TLS_CERT_FILE", another_leaf.as_path())]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "the server's certificate is not the one in {}",
            another_leaf.display()
        )),
        "{stderr}"
    );
    let (ok, _, stderr) = healthcheck(addr, &[]).await;
    assert!(!ok);
    assert!(stderr.contains("DBCERT_TLS_CERT_FILE"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_healthcheck_presents_a_client_certificate_when_the_server_requires_one() {
    let (server, fx) = start_tls(ClientCertMode::Required).await;
    let addr = server.grpc_addr;
    let dir = tempfile::tempdir().unwrap();
    // Any certificate of the client CA passes the handshake; health needs no API key.
    let client = fx.client_ca.client_leaf_cn_only("healthcheck");
    let client_cert = dir.path().join("client.pem");
    let client_key = dir.path().join("client-key.pem");
    std::fs::write(&client_cert, &client.cert_pem).unwrap();
    std::fs::write(&client_key, &client.key_pem).unwrap();

    let (ok, _, stderr) =
        healthcheck(addr, &[("DBCERT_TLS_CERT_FILE", fx.files.cert.as_path())]).await;
    assert!(!ok);
    assert!(
        stderr.contains("the server asked for a client certificate and none was given"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = healthcheck(
        addr,
        &[
            ("DBCERT_TLS_CERT_FILE", fx.files.cert.as_path()),
            ("DBCERT_HEALTHCHECK_CLIENT_CERT_FILE", client_cert.as_path()),
            ("DBCERT_HEALTHCHECK_CLIENT_KEY_FILE", client_key.as_path()),
        ],
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "SERVING");

    // A certificate of another CA is refused at the handshake.
    let rogue = Ca::new("rogue client ca").client_leaf_cn_only("healthcheck");
    std::fs::write(&client_cert, &rogue.cert_pem).unwrap();
    std::fs::write(&client_key, &rogue.key_pem).unwrap();
    let (ok, _, stderr) = healthcheck(
        addr,
        &[
            ("DBCERT_TLS_CERT_FILE", fx.files.cert.as_path()),
            ("DBCERT_HEALTHCHECK_CLIENT_CERT_FILE", client_cert.as_path()),
            ("DBCERT_HEALTHCHECK_CLIENT_KEY_FILE", client_key.as_path()),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("if the server refused the client certificate"),
        "{stderr}"
    );
    server.stop().await;
}

/// Sends raw bytes over HTTPS (HTTP/1.1) and reads until the server closes.
async fn https_raw(addr: SocketAddr, ca: &Ca, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut config = client_config(ca, None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut stream = tls_connect(addr, config).await.unwrap();
    // The server closes lingering (reading what is sent) after refusing: the write completes.
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server must answer and close");
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn over_https_requests_hyper_refuses_get_atlas_errors() {
    let (server, fx) = start_tls(ClientCertMode::Optional).await;
    let addr = server.http_addr;
    // A request answered normally, then one hyper cannot parse, on one connection.
    let bytes = https_raw(
        addr,
        &fx.server_ca,
        b"GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /api/\xff HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    let responses = atlas::parse_responses(&bytes, &[]);
    assert_eq!(responses.len(), 2, "{responses:?}");
    assert_eq!(responses[0].status, 401);
    assert!(responses[0].head.contains("www-authenticate: digest"));
    responses[1].assert_error(400, "INVALID_REQUEST");
    // A head over the limit.
    let request = format!(
        "GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: localhost\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let bytes = https_raw(addr, &fx.server_ca, request.as_bytes()).await;
    let responses = atlas::parse_responses(&bytes, &[]);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses[0].assert_error(431, "REQUEST_HEADERS_TOO_LARGE");
    assert!(responses[0].head.contains("connection: close"));
    server.stop().await;
}
