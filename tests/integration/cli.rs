//! The command-line client (`dbcert projects …`, `dbcert dbusers …`): the real binary run as a
//! user runs it, against a real server, with credentials from the environment or a profile
//! file. Issued certificates are checked with openssl against the project CA the client
//! fetched; exit codes are the documented ones (README, "Command-line client").

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dbcert::proto::v1::{KeyType, UpdateUserSecurityRequest};
use serde_json::Value;

use crate::harness::binary::BIN;
use crate::harness::{Key, TestServer, openssl};

/// The client binary with a clean environment: a HOME of its own (no profile unless a test
/// writes one), the server's URL and, unless removed, the server's bootstrap key.
struct Client {
    server: String,
    key: Key,
    home: tempfile::TempDir,
}

impl Client {
    fn new(server: &TestServer) -> Self {
        Self {
            server: format!("http://{}", server.grpc_addr),
            key: server.key.clone(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// A command with the environment's credentials.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare(args);
        command
            .env("DBCERT_PUBLIC_API_KEY", &self.key.public)
            .env("DBCERT_PRIVATE_API_KEY", &self.key.private);
        command
    }

    /// A command with no credentials and no server in its environment.
    fn bare(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("DBCERT_SERVER", &self.server)
            .stdin(Stdio::null());
        command
    }

    async fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args)).await
    }

    fn dir(&self) -> &Path {
        self.home.path()
    }
}

/// What a run printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    async fn of(mut command: Command) -> Self {
        let output: Output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("run dbcert");
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output otherwise.
    #[track_caller]
    fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Makes the project's CA an ECDSA P-256 one (an RSA-4096 CA costs a second of CPU; the
/// profile of CAs is not what these tests check).
async fn ecdsa_ca(server: &TestServer, group_id: &str) {
    server
        .clients()
        .await
        .security()
        .update_user_security(UpdateUserSecurityRequest {
            group_id: group_id.into(),
            customer_x509: None,
            ca_key_type: KeyType::EcdsaP256 as i32,
        })
        .await
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn manages_projects_users_and_certificates_like_the_atlas_cli() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);

    // projects create / list
    let created = cli
        .run(&["projects", "create", "cli-project", "-o", "json"])
        .await;
    let project = created.expect(0).json();
    let group_id = project["id"].as_str().unwrap().to_owned();
    assert_eq!(project["name"], "cli-project");
    ecdsa_ca(&server, &group_id).await;
    let listed = cli.run(&["projects", "list", "--output", "json"]).await;
    let projects = listed.expect(0).json();
    assert!(
        projects["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == group_id.as_str()),
        "{projects}"
    );
    let human = cli.run(&["projects", "list"]).await;
    assert!(
        human.expect(0).stdout.contains(&group_id),
        "{}",
        human.stdout
    );

    // dbusers create / list
    let user = cli
        .run(&[
            "dbusers",
            "create",
            "readAnyDatabase",
            "--username",
            "app-user",
            "--projectId",
            &group_id,
        ])
        .await;
    assert!(
        user.expect(0)
            .stdout
            .contains("Database user 'app-user' successfully created."),
        "{}",
        user.stdout
    );
    let users = cli
        .run(&["dbusers", "list", "--projectId", &group_id, "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(users["totalCount"], 1, "{users}");
    let listed_user = &users["results"][0];
    assert_eq!(listed_user["username"], "app-user");
    assert_eq!(listed_user["databaseName"], "$external");
    assert_eq!(listed_user["x509Type"], "MANAGED");
    assert_eq!(listed_user["roles"][0]["roleName"], "readAnyDatabase");

    // dbusers certs create: to a private file, checked with openssl against the project CA
    let pem = cli.dir().join("app-user.pem");
    let certs_create = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "app-user",
            "--monthsUntilExpiration",
            "2",
            "--keyType",
            "ECDSA_P256",
            "--out",
        ];
        args.push(path_str(out));
        args.extend_from_slice(extra);
        cli.command(&args)
    };
    let issued = Run::of(certs_create(&pem, &[])).await;
    issued.expect(0);
    assert!(issued.stdout.contains("written to"), "{}", issued.stdout);
    assert_eq!(
        mode(&pem),
        0o600,
        "the certificate and key file must be private"
    );
    let bundle = std::fs::read_to_string(&pem).unwrap();
    assert!(bundle.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(bundle.contains(concat!("-----BEGIN ", "PRIVATE KEY-----")));
    assert!(
        !issued.stdout.contains(concat!("PRIVATE", " KEY")),
        "the key must not be printed"
    );
    let ca = cli.dir().join("ca.pem");
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
    let (ok, subject) = openssl(&["x509", "-in", path_str(&pem), "-noout", "-subject"]);
    assert!(
        ok && (subject.contains("CN=app-user") || subject.contains("CN = app-user")),
        "{subject}"
    );
    let (ok, verified) = openssl(&[
        "verify",
        "-CAfile",
        path_str(&ca),
        "-purpose",
        "sslclient",
        path_str(&pem),
    ]);
    assert!(ok, "openssl verify: {verified}");
    let (ok, key_check) = openssl(&["pkey", "-in", path_str(&pem), "-noout", "-check"]);
    assert!(ok, "openssl pkey: {key_check}");

    // never over an existing file without --force, and nothing issued when refused
    let refused = Run::of(certs_create(&pem, &[])).await;
    refused.expect(5);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read_to_string(&pem).unwrap(),
        bundle,
        "the file must not change"
    );
    let replaced = Run::of(certs_create(&pem, &["--force", "-o", "json"])).await;
    let summary = replaced.expect(0).json();
    assert_eq!(summary["subject"], "CN=app-user");
    assert_ne!(
        std::fs::read_to_string(&pem).unwrap(),
        bundle,
        "--force replaces the file"
    );
    assert_eq!(mode(&pem), 0o600);
    // no --out: refused before anything is issued
    let no_out = cli
        .run(&[
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "app-user",
        ])
        .await;
    no_out.expect(2);
    assert!(no_out.stderr.contains("--out"), "{}", no_out.stderr);

    // dbusers certs list: Atlas's field names, the two certificates issued
    let certs = cli
        .run(&[
            "dbusers",
            "certs",
            "list",
            "app-user",
            "--projectId",
            &group_id,
            "-o",
            "json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(certs["totalCount"], 2, "{certs}");
    let results = certs["results"].as_array().unwrap();
    assert!(
        results.iter().any(|c| c["_id"] == summary["_id"]),
        "{certs}"
    );
    assert!(
        results.iter().all(|c| c["subject"] == "CN=app-user"),
        "{certs}"
    );

    // dbusers delete: a script must confirm with --force
    let unconfirmed = cli
        .run(&["dbusers", "delete", "app-user", "--projectId", &group_id])
        .await;
    unconfirmed.expect(2);
    assert!(
        unconfirmed.stderr.contains("--force"),
        "{}",
        unconfirmed.stderr
    );
    let deleted = cli
        .run(&[
            "dbusers",
            "delete",
            "app-user",
            "--force",
            "--projectId",
            &group_id,
        ])
        .await;
    assert!(
        deleted
            .expect(0)
            .stdout
            .contains("DB user 'app-user' deleted")
    );
    let users = cli
        .run(&["dbusers", "list", "--projectId", &group_id, "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(users["totalCount"], 0, "{users}");
    // not found: exit 4, the server's errorCode on stderr
    let again = cli
        .run(&[
            "dbusers",
            "delete",
            "app-user",
            "--force",
            "--projectId",
            &group_id,
        ])
        .await;
    again.expect(4);
    assert!(
        again.stderr.contains("error: USERNAME_NOT_FOUND: "),
        "{}",
        again.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_exit_with_the_documented_codes() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);

    // wrong credentials: 3, with the server's errorCode
    let mut wrong = cli.command(&["projects", "list"]);
    wrong.env("DBCERT_PRIVATE_API_KEY", "not-the-key");
    let run = Run::of(wrong).await;
    run.expect(3);
    assert!(run.stderr.contains("USER_UNAUTHORIZED"), "{}", run.stderr);
    // no credentials at all: 3, naming the variables
    let run = Run::of(cli.bare(&["projects", "list"])).await;
    run.expect(3);
    assert!(
        run.stderr.contains("DBCERT_PUBLIC_API_KEY"),
        "{}",
        run.stderr
    );

    // a project that does not exist: 4
    let run = cli
        .run(&["dbusers", "list", "--projectId", "0123456789abcdef01234567"])
        .await;
    run.expect(4);
    // a request the server refuses as invalid: 2
    let run = cli
        .run(&["dbusers", "list", "--projectId", "not-hex"])
        .await;
    run.expect(2);
    // an unknown flag: 2 (clap's usage error)
    cli.run(&["projects", "list", "--no-such-flag"])
        .await
        .expect(2);

    // an unreachable server: 6
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut unreachable = cli.command(&["projects", "list"]);
    unreachable.env("DBCERT_SERVER", format!("http://127.0.0.1:{port}"));
    let run = Run::of(unreachable).await;
    run.expect(6);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_supply_server_and_credentials_and_must_be_private() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    let group_id = server.clients().await.create_project("profiled").await;

    // The default profile of ~/.config/dbcert/config.toml, with nothing in the environment.
    let config_dir = cli.dir().join(".config").join("dbcert");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.toml");
    let write_config = |path: &PathBuf, mode: u32| {
        std::fs::write(
            path,
            format!(
                "[default]\nserver = \"{}\"\npublic_api_key = \"{}\"\nprivate_api_key = \"{}\"\n\
                 project_id = \"{group_id}\"\n\n[broken]\nserver = \"{}\"\n\
                 public_api_key = \"{}\"\nprivate_api_key = \"wrong\"\noutput = \"json\"\n",
                cli.server, cli.key.public, cli.key.private, cli.server, cli.key.public
            ),
        )
        .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write_config(&config, 0o600);
    let mut command = cli.bare(&["dbusers", "list", "-o", "json"]);
    command.env_remove("DBCERT_SERVER");
    let run = Run::of(command).await;
    assert_eq!(run.expect(0).json()["totalCount"], 0);

    // A named profile (-P): its wrong key is refused (3); the environment's key wins over it.
    let run = Run::of(cli.bare(&["projects", "list", "-P", "broken"])).await;
    run.expect(3);
    let run = Run::of(cli.command(&["projects", "list", "--profile", "broken"])).await;
    assert!(run.expect(0).json()["results"].is_array(), "{}", run.stdout);
    // An unknown profile: 2.
    Run::of(cli.bare(&["projects", "list", "-P", "nope"]))
        .await
        .expect(2);

    // A file others may read is refused, naming the fix.
    write_config(&config, 0o644);
    let run = Run::of(cli.bare(&["projects", "list"])).await;
    run.expect(2);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(&cli.key.private),
        "the key must not be printed"
    );
}

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

    /// Signs a leaf (server names, or a client CN) and writes `<name>.pem`, `<name>-key.pem`.
    fn leaf(
        &self,
        dir: &Path,
        name: &str,
        sans: &[&str],
        common_name: Option<&str>,
    ) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![match common_name {
            Some(cn) => {
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, cn);
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
            rule: PrincipalRule::Cn,
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

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_client_block_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```sh\nIFS=: read -r DBCERT_PUBLIC_API_KEY")
        .expect("the client block")
        + "```sh\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    std::fs::create_dir(cli.dir().join("dbcert-data")).unwrap();
    std::fs::write(
        cli.dir().join("dbcert-data/bootstrap-api-key"),
        format!("{}:{}\n", server.key.public, server.key.private),
    )
    .unwrap();
    // The binary first on PATH; the address through DBCERT_SERVER (the block uses the default).
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = Command::new("bash");
    bash.args(["-c", &format!("set -euo pipefail\n{block}")])
        .current_dir(cli.dir())
        .env_clear()
        .env("HOME", cli.dir())
        .env("PATH", path)
        .env("DBCERT_SERVER", &cli.server)
        .stdin(Stdio::null());
    let run = Run::of(bash).await;
    run.expect(0);
    assert!(run.stdout.contains("app-user.pem: OK"), "{}", run.stdout);
    assert!(
        run.stdout.contains("DB user 'app-user' deleted"),
        "{}",
        run.stdout
    );
    assert_eq!(mode(&cli.dir().join("app-user.pem")), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_limits_and_missing_roles_have_their_codes() {
    use dbcert::proto::v1::{AssignApiKeyToProjectRequest, CreateApiKeyRequest, GetProjectRequest};

    let server = TestServer::start_with(|config| config.core.max_certificates_per_user = 1).await;
    let clients = server.clients().await;
    let group_id = clients.create_project("limits").await;
    let cli = Client::new(&server);
    let create_user = [
        "dbusers",
        "create",
        "--username",
        "capped",
        "--projectId",
        &group_id,
    ];
    cli.run(&create_user).await.expect(0);
    // the same user again: 5
    let run = cli.run(&create_user).await;
    run.expect(5);
    assert!(
        run.stderr.contains("error: USER_ALREADY_EXISTS: "),
        "{}",
        run.stderr
    );

    // the per-user limit: 5, naming it
    let issue = |file: &str| {
        let out = cli.dir().join(file);
        let args = [
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "capped",
            "--keyType",
            "ECDSA_P256",
            "--out",
            path_str(&out),
        ];
        cli.command(&args)
    };
    Run::of(issue("first.pem")).await.expect(0);
    let run = Run::of(issue("second.pem")).await;
    run.expect(5);
    assert!(
        run.stderr.contains("ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED"),
        "{}",
        run.stderr
    );
    assert!(
        !cli.dir().join("second.pem").exists(),
        "nothing is written on failure"
    );

    // a key that may read the project but not change it: 7
    let org_id = clients
        .projects()
        .get_project(GetProjectRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .org_id;
    let reader = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id,
            desc: "reader".into(),
            roles: vec!["ORG_MEMBER".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    clients
        .api_keys()
        .assign_api_key_to_project(AssignApiKeyToProjectRequest {
            group_id: group_id.clone(),
            api_key_id: reader.id.clone(),
            roles: vec!["GROUP_READ_ONLY".into()],
        })
        .await
        .unwrap();
    let as_reader = |args: &[&str]| {
        let mut command = cli.bare(args);
        command
            .env("DBCERT_PUBLIC_API_KEY", &reader.public_key)
            .env("DBCERT_PRIVATE_API_KEY", &reader.private_key);
        command
    };
    Run::of(as_reader(&["dbusers", "list", "--projectId", &group_id]))
        .await
        .expect(0);
    let run = Run::of(as_reader(&[
        "dbusers",
        "delete",
        "capped",
        "--force",
        "--projectId",
        &group_id,
    ]))
    .await;
    run.expect(7);
    assert!(run.stderr.contains("USER_UNAUTHORIZED"), "{}", run.stderr);
}
