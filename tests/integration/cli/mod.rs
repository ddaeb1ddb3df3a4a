//! The command-line client (`dbcert projects …`, `dbcert dbusers …`): the real binary run as a
//! user runs it, against a real server, with credentials from the environment or a profile
//! file. Issued certificates are checked with openssl against the project CA the client
//! fetched; exit codes are the documented ones (README, "Command-line client").
//!
//! This file holds the harness of the client and the whole flow; `errors.rs` the exit codes
//! and profiles, `tls.rs` TLS and mutual TLS.

mod ca_rotation;
mod csr;
mod errors;
mod revoke;
mod tls;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use dbcert::proto::v1::{KeyType, UpdateUserSecurityRequest};
use serde_json::Value;

use crate::harness::binary::BIN;
use crate::harness::{Key, TestServer, openssl};

/// The client binary with a clean environment: a HOME of its own (no profile unless a test
/// writes one), the server's URL and, unless removed, the server's bootstrap key.
pub(super) struct Client {
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
pub(super) struct Run {
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
    // (compared without printing: the file holds a private key)
    assert!(
        std::fs::read_to_string(&pem).unwrap() == bundle,
        "the file must not change"
    );
    let replaced = Run::of(certs_create(&pem, &["--force", "-o", "json"])).await;
    let summary = replaced.expect(0).json();
    assert_eq!(summary["subject"], "CN=app-user");
    assert!(
        std::fs::read_to_string(&pem).unwrap() != bundle,
        "--force replaces the file"
    );
    assert_eq!(mode(&pem), 0o600);
    // --out -: the PEM on standard output, only when asked (and not beside --output json)
    let to_stdout = Run::of(cli.command(&[
        "dbusers",
        "certs",
        "create",
        "--projectId",
        &group_id,
        "--username",
        "app-user",
        "--keyType",
        "ECDSA_P256",
        "--out",
        "-",
    ]))
    .await;
    assert_eq!(to_stdout.code, Some(0), "{}", to_stdout.stderr);
    assert!(
        to_stdout
            .stdout
            .starts_with("-----BEGIN CERTIFICATE-----\n")
            && to_stdout
                .stdout
                .contains(concat!("-----BEGIN ", "PRIVATE KEY-----")),
        "--out - writes the certificate, then the key"
    );
    let both = cli
        .run(&[
            "dbusers",
            "certs",
            "create",
            "--projectId",
            &group_id,
            "--username",
            "app-user",
            "--out",
            "-",
            "-o",
            "json",
        ])
        .await;
    // (stdout may hold a key if this regresses: not printed)
    assert_eq!(both.code, Some(2), "{}", both.stderr);
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
    assert_eq!(certs["totalCount"], 3, "{certs}");
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
async fn dbusers_create_takes_the_atlas_cli_description_and_delete_after() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    let group_id = cli
        .run(&["projects", "create", "expiring", "-o", "json"])
        .await
        .expect(0)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // What the Atlas CLI sends: a UTC time without an offset.
    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .replace_nanosecond(0)
        .unwrap();
    let naive = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let user = cli
        .run(&[
            "dbusers",
            "create",
            "readAnyDatabase",
            "--username",
            "temp-user",
            "--description",
            "for a week",
            "--deleteAfter",
            &naive,
            "--projectId",
            &group_id,
            "-o",
            "json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(user["description"], "for a week", "{user}");
    assert_eq!(user["deleteAfterDate"], format!("{naive}Z"), "{user}");
    // Not a time: refused before any call.
    let refused = cli
        .run(&[
            "dbusers",
            "create",
            "--username",
            "x",
            "--deleteAfter",
            "tomorrow",
            "--projectId",
            &group_id,
        ])
        .await;
    refused.expect(2);
    // A time in the past: the server's INVALID_ATTRIBUTE.
    let past = cli
        .run(&[
            "dbusers",
            "create",
            "--username",
            "y",
            "--deleteAfter",
            "2001-01-01T00:00:00Z",
            "--projectId",
            &group_id,
        ])
        .await;
    assert!(past.stderr.contains("INVALID_ATTRIBUTE"), "{}", past.stderr);
}
