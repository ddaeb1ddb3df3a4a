//! `deploy/compose/nginx.conf`, run by Debian's nginx in front of two real `dbcert serve`
//! processes on one PostgreSQL database, as compose.yaml runs it: TLS at the proxy, gRPC
//! (with reflection and health) over HTTP/2 to the replicas' gRPC port, the Atlas REST API to
//! their HTTP port. A real grpcurl and a real curl call through it, and the audit trail must
//! name the client, not the proxy: the replicas trust only the proxy's address (127.0.0.3
//! here, from which nginx connects) for `X-Forwarded-For`.
//!
//! The configuration is the committed file with only the compose network's addresses and
//! port replaced by loopback ones, and the proxy's outgoing address pinned (`proxy_bind`,
//! `grpc_bind`), so the client (127.0.0.1) and the proxy differ. The replicas get
//! compose.yaml's `DBCERT_PUBLIC_URL` (its port replaced by the proxy's), so a client forging
//! `Host` or `X-Forwarded-Host` must not see its host in `links`. Needs nginx, grpcurl and
//! `DBCERT_TEST_DATABASE_URL`; skipped without them (a failure under `DBCERT_REQUIRE_TOOLS=1`).

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use tokio::time::Instant;

use crate::harness::binary::{Spawned, serve_command};
use crate::harness::pg::TestDatabase;
use crate::harness::{Key, openssl, skip_missing_tool};

/// The address nginx connects to the replicas from: the one address they trust.
const PROXY_ADDRESS: &str = "127.0.0.3";

/// A running nginx, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master stops its workers and waits for them, where a killed
    /// master would leave them running (holding the test's stderr open).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `text` with `from` replaced by `to`, which must occur exactly `times` times (so a change of
/// the committed file fails here instead of silently testing something else).
fn replace(text: &str, from: &str, to: &str, times: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        times,
        "the committed deploy/compose file should contain {from:?} {times} time(s)"
    );
    text.replace(from, to)
}

/// A file of `deploy/compose/`.
fn compose_file(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/compose")
            .join(name),
    )
    .unwrap()
}

/// compose.yaml's `DBCERT_PUBLIC_URL` with the proxy's published port (8443) replaced by
/// `port`; `None` if compose.yaml sets none (the replicas then build `links` from the request,
/// and the forged-host check fails).
fn compose_public_url(port: u16) -> Option<String> {
    let compose = compose_file("compose.yaml");
    let value = compose
        .lines()
        .find_map(|line| line.trim().strip_prefix("DBCERT_PUBLIC_URL:"))?
        .trim()
        .trim_matches('"');
    Some(replace(value, ":8443", &format!(":{port}"), 1))
}

/// A port free on 127.0.0.1 a moment ago (nginx cannot report a port the kernel chose).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts nginx on `port` with the committed configuration, rendered for `replicas` (gRPC,
/// HTTP).
async fn start_nginx(dir: &Path, port: u16, replicas: [(String, String); 2]) -> Nginx {
    let committed = compose_file("nginx.conf");
    let mut conf = replace(
        &committed,
        "listen 8443 ssl http2;",
        &format!("listen 127.0.0.1:{port} ssl http2;"),
        1,
    );
    for ((grpc, http), compose_ip) in replicas.iter().zip(["172.28.0.11", "172.28.0.12"]) {
        conf = replace(&conf, &format!("{compose_ip}:50051"), grpc, 1);
        conf = replace(&conf, &format!("{compose_ip}:8080"), http, 1);
    }
    conf = replace(
        &conf,
        "\nhttp {\n",
        &format!("\nhttp {{\n    proxy_bind {PROXY_ADDRESS};\n    grpc_bind {PROXY_ADDRESS};\n"),
        1,
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    std::fs::create_dir(dir.join("tls")).unwrap();
    let (key, cert) = (dir.join("tls/proxy.key"), dir.join("tls/proxy.crt"));
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    assert!(ok, "openssl req: {out}");
    let child = Command::new("nginx")
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-g")
        .arg(format!(
            "daemon off; pid {};",
            dir.join("nginx.pid").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    let mut nginx = Nginx { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Some(status) = nginx.child.try_wait().unwrap() {
            panic!("nginx exited ({status}); its errors are on stderr above");
        }
        assert!(Instant::now() < deadline, "nginx did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nginx
}

/// A dbcert replica on the shared database, trusting only the proxy's address.
async fn replica(
    database_url: &str,
    master_key: &str,
    key: &Key,
    public_url: Option<&str>,
) -> (Spawned, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(data_dir.path());
    if let Some(url) = public_url {
        command.env("DBCERT_PUBLIC_URL", url);
    }
    command
        .env("DBCERT_DATABASE", database_url)
        .env("DBCERT_MASTER_KEY", master_key)
        .env(
            "DBCERT_BOOTSTRAP_API_KEY",
            format!("{}:{}", key.public, key.private),
        )
        .env("DBCERT_TRUSTED_PROXIES", PROXY_ADDRESS)
        .env("DBCERT_KEY_POOL_WORKERS", "0");
    let process = Spawned::start(command).await;
    process.wait_serving().await;
    (process, data_dir)
}

/// Runs a command to its end; panics with its output unless it succeeded.
fn run(command: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(
        status.success(),
        "{command:?} failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

/// A curl call through the proxy with Digest authentication and the curl `options` given;
/// returns the JSON body.
fn curl(
    nginx: &Nginx,
    cert: &Path,
    key: &Key,
    (method, path): (&str, &str),
    body: Option<&str>,
    options: &[&str],
) -> serde_json::Value {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail-with-body", "--digest"])
        .args(options)
        .arg("--user")
        .arg(format!("{}:{}", key.public, key.private))
        .arg("--cacert")
        .arg(cert)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", nginx.port)])
        .args([
            "--header",
            "Content-Type: application/json",
            "--request",
            method,
        ])
        .arg(format!("https://localhost:{}{path}", nginx.port));
    if let Some(body) = body {
        command.arg("--data").arg(body);
    }
    serde_json::from_str(&run(&mut command)).unwrap()
}

/// A grpcurl call through the proxy (TLS, the proxy's certificate as the only CA); the
/// request and the service descriptions go through it too (reflection).
fn grpcurl(nginx: &Nginx, cert: &Path, key: &Key, method: &str, data: &str) -> serde_json::Value {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", key.public, key.private));
    let out = run(Command::new("grpcurl")
        .arg("-cacert")
        .arg(cert)
        .args(["-H", &format!("authorization: Basic {basic}")])
        .args(["-d", data])
        .arg(format!("127.0.0.1:{}", nginx.port))
        .arg(method));
    serde_json::from_str(&out).unwrap()
}

fn tools_present() -> bool {
    for (tool, flag) in [("nginx", "-v"), ("grpcurl", "-version")] {
        if Command::new(tool).arg(flag).output().is_err() {
            return !skip_missing_tool(tool, "not on PATH");
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_proxy_forwards_grpc_and_rest_and_the_client_address() {
    if !tools_present() {
        return;
    }
    let Some(db) = TestDatabase::create("deploy_proxy").await else {
        return;
    };
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let key = Key::random();
    let port = free_port();
    let public_url = compose_public_url(port);
    let ((a, _a_dir), (b, _b_dir)) = tokio::join!(
        replica(&db.url, &master_key, &key, public_url.as_deref()),
        replica(&db.url, &master_key, &key, public_url.as_deref())
    );
    let dir = tempfile::tempdir().unwrap();
    let nginx = start_nginx(
        dir.path(),
        port,
        [
            (a.grpc_addr.to_string(), a.http_addr.to_string()),
            (b.grpc_addr.to_string(), b.http_addr.to_string()),
        ],
    )
    .await;
    let cert = dir.path().join("tls/proxy.crt");

    // gRPC health and reflection through the proxy.
    let health = grpcurl(&nginx, &cert, &key, "grpc.health.v1.Health/Check", "{}");
    assert_eq!(health["status"], "SERVING", "{health}");

    // REST: a project, with links naming the proxy's public URL.
    let project = curl(
        &nginx,
        &cert,
        &key,
        ("POST", "/api/atlas/v1.0/groups"),
        Some(r#"{"name":"behind-nginx"}"#),
        &[],
    );
    let group_id = project["id"].as_str().unwrap().to_owned();
    let self_href = format!(
        "https://localhost:{}/api/atlas/v1.0/groups/{group_id}",
        nginx.port
    );
    assert_eq!(project["links"][0]["href"], self_href.as_str(), "{project}");

    // A client forging its Host (which nginx passes on as Host and X-Forwarded-Host) or
    // X-Forwarded-Host gets the public URL in links, over HTTP/1.1 and HTTP/2 (:authority),
    // never its own host: links are not a way to point other readers at another server.
    for protocol in ["--http1.1", "--http2"] {
        let forged = curl(
            &nginx,
            &cert,
            &key,
            ("GET", &format!("/api/atlas/v1.0/groups/{group_id}")),
            None,
            &[
                protocol,
                "--header",
                "Host: evil.example",
                "--header",
                "X-Forwarded-Host: evil.example",
            ],
        );
        assert!(
            !forged.to_string().contains("evil.example"),
            "{protocol}: a forged Host reached the links: {forged}"
        );
        assert_eq!(forged["links"][0]["href"], self_href.as_str(), "{forged}");
    }

    // gRPC: a database user and a certificate.
    grpcurl(
        &nginx,
        &cert,
        &key,
        "dbcert.v1.DatabaseUserService/CreateDatabaseUser",
        &format!(
            r#"{{"groupId":"{group_id}","username":"app-user","databaseName":"$external","x509Type":"MANAGED","roles":[{{"databaseName":"admin","roleName":"readWriteAnyDatabase"}}]}}"#
        ),
    );
    let issued = grpcurl(
        &nginx,
        &cert,
        &key,
        "dbcert.v1.CertificateService/CreateUserCertificate",
        &format!(
            r#"{{"groupId":"{group_id}","username":"app-user","keyType":"KEY_TYPE_ECDSA_P256"}}"#
        ),
    );
    assert!(
        issued["certificatePem"]
            .as_str()
            .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")),
        "no certificate in the answer"
    );

    // The audit trail, read through the proxy: every event names the client (127.0.0.1), not
    // the proxy (127.0.0.3), whichever replica and protocol took the call.
    let events = curl(
        &nginx,
        &cert,
        &key,
        (
            "GET",
            &format!("/api/atlas/v1.0/groups/{group_id}/events?itemsPerPage=500"),
        ),
        None,
        &[],
    );
    let seen: Vec<(String, String)> = events["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["eventTypeName"].as_str().unwrap().to_owned(),
                e["remoteAddress"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    for expected in [
        "GROUP_CREATED",
        "MONGODB_USER_ADDED",
        "MONGODB_USER_X509_CERT_CREATED",
    ] {
        assert!(types.contains(&expected), "no {expected} in {seen:?}");
    }
    for (event, address) in &seen {
        assert!(
            address == "127.0.0.1",
            "{event} names {address:?}, not the client 127.0.0.1 behind the proxy: {seen:?}\nA:\n{}\nB:\n{}",
            a.log(),
            b.log()
        );
    }
    drop(nginx);
    drop(db);
}
