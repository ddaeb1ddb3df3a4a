//! The dbcert benchmark: `cargo bench --bench load [-- FLAGS]` (see `--help`).
//!
//! In one run on one machine it
//! 1. measures the raw limit: key generation + signing + PEM in a tight loop on every core, per
//!    key type, with dbcert's own signing code (`ProjectCa::issue`);
//! 2. starts the release `dbcert` binary on a fresh SQLite store (WAL, synchronous=FULL), restarts
//!    it on that existing store (timing start → SERVING), and drives it over gRPC and over the
//!    Atlas REST route with HTTP Digest, at fixed concurrencies and at a paced 1 request/s,
//!    reporting certificates/s, latency percentiles, server CPU per certificate (from
//!    `/proc/<pid>/stat`) and peak RSS (sampled from `/proc/<pid>/status`);
//! 3. prints the ratio of service throughput to the raw limit, and checks the issue-6 targets;
//! 4. restarts the server with throttling off and times failed authentications for an existing
//!    and an unknown public key over both transports (`auth_timing`, issue 13 item 7).
//!
//! `--only-crl` runs the CRL phases instead (issue 11 item 2): signing a CRL of `--crl-entries`
//! revoked entries (`crl`), then a project holding that many revoked certificates, its first
//! CRL and the cached answers over HTTP (`crl_served`).
//!
//! The load generator runs in this process, on the same cores as the server.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up has nothing to report
#![allow(missing_docs)]

#[path = "load/auth_timing.rs"]
mod auth_timing;
#[path = "load/crl.rs"]
mod crl;
#[path = "load/crl_served.rs"]
mod crl_served;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use dbcert::domain::{CaSubject, KeyType, Months, ProjectCa, ProjectId, Username, Validity};
use dbcert::proto::v1::{
    self, certificate_service_client::CertificateServiceClient,
    database_user_service_client::DatabaseUserServiceClient,
    project_service_client::ProjectServiceClient,
    user_security_service_client::UserSecurityServiceClient,
};
use md5::{Digest as _, Md5};
use tonic::transport::Channel;

/// Linux's USER_HZ: the unit of utime/stime in `/proc/<pid>/stat`.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
/// gRPC connections the load generator spreads its requests over.
const GRPC_CONNECTIONS: usize = 2;
/// Users per project the load is spread over.
const USERS: usize = 64;

// === flags ===

#[derive(Clone, Debug)]
struct Flags {
    /// Seconds of the RSA-4096 raw-limit measurement.
    raw_rsa_secs: f64,
    /// Seconds of each other raw-limit measurement.
    raw_secs: f64,
    /// Measured seconds of each saturated RSA phase.
    rsa_secs: f64,
    /// Unmeasured warm-up seconds before each saturated RSA phase (after the pool drained).
    rsa_warmup_secs: f64,
    /// Seconds of each paced (1 request/s) phase.
    paced_secs: f64,
    /// Measured seconds of each ECDSA phase.
    ecdsa_secs: f64,
    /// Concurrencies of the saturated phases.
    concurrency: Vec<usize>,
    /// Extra concurrency for the ECDSA phases, to find the saturated throughput.
    ecdsa_extra_concurrency: Vec<usize>,
    /// Skip the REST phases.
    no_rest: bool,
    /// Skip the RSA service phases.
    no_rsa: bool,
    /// Extra arguments for `dbcert serve`.
    server_args: Vec<String>,
    /// Failed authentications timed per key kind and transport (0: skip that phase).
    auth_samples: usize,
    /// Run only the failed-authentication timing (no raw limit, no issuing).
    only_auth_timing: bool,
    /// Run only the CRL signing phase.
    only_crl: bool,
    /// Revoked entries of the CRL phases.
    crl_entries: usize,
    /// Requests per measured CRL/OCSP answer latency.
    crl_requests: usize,
}

impl Flags {
    fn parse() -> Self {
        let mut flags = Self {
            raw_rsa_secs: 30.0,
            raw_secs: 3.0,
            rsa_secs: 20.0,
            rsa_warmup_secs: 4.0,
            paced_secs: 20.0,
            ecdsa_secs: 5.0,
            concurrency: vec![1, 2, 8],
            ecdsa_extra_concurrency: vec![64, 256],
            no_rest: false,
            no_rsa: false,
            server_args: Vec::new(),
            auth_samples: 2000,
            only_auth_timing: false,
            only_crl: false,
            crl_entries: 100_000,
            crl_requests: 200,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
            };
            match arg.as_str() {
                // cargo bench passes --bench to harness=false targets.
                "--bench" => {}
                "--raw-rsa-secs" => flags.raw_rsa_secs = number(&value()),
                "--raw-secs" => flags.raw_secs = number(&value()),
                "--rsa-secs" => flags.rsa_secs = number(&value()),
                "--rsa-warmup-secs" => flags.rsa_warmup_secs = number(&value()),
                "--paced-secs" => flags.paced_secs = number(&value()),
                "--ecdsa-secs" => flags.ecdsa_secs = number(&value()),
                "--concurrency" => flags.concurrency = list(&value()),
                "--ecdsa-extra-concurrency" => flags.ecdsa_extra_concurrency = list(&value()),
                "--no-rest" => flags.no_rest = true,
                "--no-rsa" => flags.no_rsa = true,
                "--server-arg" => flags.server_args.push(value()),
                "--auth-samples" => flags.auth_samples = number(&value()) as usize,
                "--only-auth-timing" => flags.only_auth_timing = true,
                "--only-crl" => flags.only_crl = true,
                "--crl-entries" => flags.crl_entries = number(&value()) as usize,
                "--crl-requests" => flags.crl_requests = number(&value()) as usize,
                "--quick" => {
                    flags.raw_rsa_secs = 8.0;
                    flags.raw_secs = 1.0;
                    flags.rsa_secs = 6.0;
                    flags.rsa_warmup_secs = 2.0;
                    flags.paced_secs = 6.0;
                    flags.ecdsa_secs = 2.0;
                    flags.auth_samples = 500;
                }
                "--help" | "-h" => usage(""),
                other => usage(&format!("unknown flag {other}")),
            }
        }
        flags
    }
}

fn usage(error: &str) -> ! {
    if !error.is_empty() {
        eprintln!("error: {error}");
    }
    eprintln!(
        "usage: cargo bench --bench load -- [--quick] [--raw-rsa-secs S] [--raw-secs S] [--rsa-secs S]\n\
         \x20      [--rsa-warmup-secs S] [--paced-secs S] [--ecdsa-secs S] [--concurrency 1,2,8]\n\
         \x20      [--ecdsa-extra-concurrency 64,256] [--no-rest] [--no-rsa] [--server-arg ARG]...\n\
         \x20      [--auth-samples N] [--only-auth-timing] [--only-crl] [--crl-entries N]\n\
         \x20      [--crl-requests N]"
    );
    std::process::exit(if error.is_empty() { 0 } else { 2 })
}

fn number(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn list(s: &str) -> Vec<usize> {
    s.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| usage(&format!("not a list of numbers: {s}")))
        })
        .collect()
}

// === raw limit ===

/// One raw-limit measurement.
#[derive(Clone, Copy, Debug)]
struct Raw {
    leaf: KeyType,
    ca: KeyType,
    threads: usize,
    per_sec: f64,
    /// CPU time per certificate (from the threads' own CPU clocks), milliseconds: unlike the
    /// rate, it does not depend on how much of the machine other processes take.
    cpu_ms_per_cert: f64,
}

/// Issues certificates (key generation + signing + PEM + fingerprint) in a tight loop on
/// `threads` threads for about `secs`. Each thread finishes the certificate it is on at the
/// deadline, and its rate is its count over its own elapsed time, so no work is lost.
fn raw_limit(leaf: KeyType, ca_type: KeyType, threads: usize, secs: f64) -> Raw {
    let now = time::OffsetDateTime::now_utc();
    let project_id = ProjectId::generate(now);
    let subject = CaSubject {
        organization: "bench".into(),
        organizational_unit: "bench".into(),
    };
    let ca = Arc::new(
        ProjectCa::generate(&project_id, &subject, ca_type, 1, now)
            .unwrap()
            .ca,
    );
    let validity = Validity::for_months(now, Months::parse(Some(3)).unwrap(), ca.not_after());
    let username = Username::parse("bench-user").unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (ca, username) = (ca.clone(), username.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let cpu_start = thread_cpu_secs();
                let mut n = 0u64;
                loop {
                    let issued = ca
                        .issue(
                            &username,
                            validity,
                            dbcert::domain::random_serial(),
                            leaf,
                            &dbcert::domain::RevocationPointers::NONE,
                        )
                        .unwrap();
                    std::hint::black_box(&issued);
                    n += 1;
                    if Instant::now() >= deadline {
                        let cpu = thread_cpu_secs() - cpu_start;
                        return (n as f64 / start.elapsed().as_secs_f64(), cpu, n);
                    }
                }
            })
        })
        .collect();
    let results: Vec<(f64, f64, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let per_sec = results.iter().map(|r| r.0).sum();
    let cpu: f64 = results.iter().map(|r| r.1).sum();
    let n: u64 = results.iter().map(|r| r.2).sum();
    Raw {
        leaf,
        ca: ca_type,
        threads,
        per_sec,
        cpu_ms_per_cert: cpu * 1000.0 / n as f64,
    }
}

/// The calling thread's CPU time (user + system), seconds, from `/proc/thread-self/stat`.
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    cpu_secs_of_stat(&stat)
}

/// utime + stime of a `/proc/…/stat` line, seconds.
fn cpu_secs_of_stat(stat: &str) -> f64 {
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from field 3 (the state) here.
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / CLOCK_TICKS_PER_SEC
}

fn ca_for_leaf(leaf: KeyType) -> KeyType {
    match leaf {
        KeyType::EcdsaP256 => KeyType::EcdsaP256,
        KeyType::EcdsaP384 => KeyType::EcdsaP384,
        _ => KeyType::Rsa4096,
    }
}

// === the server process ===

struct Server {
    child: Child,
    pid: u32,
    grpc: String,
    http: String,
    key: (String, String),
    data_dir: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// Starts `dbcert serve` and returns it with the time it took to answer SERVING.
    async fn start(data_dir: &Path, key: (String, String), extra: &[String]) -> (Self, Duration) {
        let grpc = free_port();
        let http = free_port();
        let mut args = vec![
            "serve".to_owned(),
            "--grpc-listen".to_owned(),
            grpc.clone(),
            "--http-listen".to_owned(),
            http.clone(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            // The load is spread over a few users; the per-user cap is not what is measured.
            "--max-certificates-per-user".to_owned(),
            "1000000000".to_owned(),
        ];
        // The ECDSA phases keep up to 256 calls in flight, more than the default global limit
        // (64) admits: raise it, so the saturated phases measure throughput, not load shedding.
        if !extra
            .iter()
            .any(|a| a.starts_with("--max-concurrent-requests"))
        {
            args.extend(["--max-concurrent-requests".to_owned(), "1024".to_owned()]);
        }
        args.extend(extra.iter().cloned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .unwrap();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_dbcert"))
            .args(&args)
            // Environment only: the server refuses secrets on the command line.
            .env("DBCERT_BOOTSTRAP_API_KEY", format!("{}:{}", key.0, key.1))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the dbcert binary must start");
        let pid = child.id();
        let server = Self {
            child,
            pid,
            grpc: format!("http://{grpc}"),
            http: format!("http://{http}"),
            key,
            data_dir: data_dir.to_owned(),
            args,
        };
        server.wait_serving().await;
        (server, started.elapsed())
    }

    async fn wait_serving(&self) {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(channel) = Channel::from_shared(self.grpc.clone())
                .unwrap()
                .connect()
                .await
            {
                let status = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if status.is_ok_and(|s| s.into_inner().status == 1) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "dbcert did not become SERVING; see {}",
            self.data_dir.join("server.log").display()
        );
    }

    /// Stops the server with SIGTERM and waits for it.
    fn stop(mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }

    /// The server's CPU time so far (user + system), seconds.
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        cpu_secs_of_stat(&stat)
    }

    /// The server's resident set size now, MiB.
    fn rss_mib(&self) -> f64 {
        status_kib(self.pid, "VmRSS:") / 1024.0
    }

    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.key.0, self.key.1);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// The key pool's depth of a type, from `GET /metrics` (None without the metric).
    async fn pool_depth(&self, http: &reqwest::Client, key_type: &str) -> Option<u64> {
        let text = http
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let prefix = format!("dbcert_key_pool_depth{{key_type=\"{key_type}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// (commits, records) of the group-commit writer, from `GET /metrics`.
    async fn commit_totals(&self, http: &reqwest::Client) -> Option<(u64, u64)> {
        let text = http
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Some((
            value("dbcert_certificate_commits_total ")?,
            value("dbcert_certificate_records_total ")?,
        ))
    }

    async fn wait_pool(&self, http: &reqwest::Client, full: bool, max: Duration) {
        let deadline = Instant::now() + max;
        let capacity = pool_capacity(&self.args);
        while Instant::now() < deadline {
            match self.pool_depth(http, "RSA_4096").await {
                None => return,
                Some(depth) if full && depth >= capacity => return,
                Some(0) if !full => return,
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        eprintln!("note: the key pool did not reach the wanted depth in {max:?}");
    }
}

fn pool_capacity(args: &[String]) -> u64 {
    args.windows(2)
        .find(|w| w[0] == "--key-pool-size")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(dbcert::config::DEFAULT_KEY_POOL_SIZE as u64)
}

fn status_kib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

// === setup over gRPC ===

fn authed<T>(server: &Server, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", server.basic().parse().unwrap());
    request
}

/// Creates a project whose CA has `ca_type`, `USERS` MANAGED users, and the CA itself (with a
/// first certificate).
async fn setup_project(server: &Server, name: &str, ca_type: v1::KeyType) -> String {
    let channel = server.channel().await;
    let group_id = ProjectServiceClient::new(channel.clone())
        .create_project(authed(
            server,
            v1::CreateProjectRequest {
                name: name.into(),
                org_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    UserSecurityServiceClient::new(channel.clone())
        .update_user_security(authed(
            server,
            v1::UpdateUserSecurityRequest {
                group_id: group_id.clone(),
                customer_x509: None,
                ca_key_type: ca_type as i32,
            },
        ))
        .await
        .unwrap();
    let mut users = DatabaseUserServiceClient::new(channel.clone());
    for i in 0..USERS {
        users
            .create_database_user(authed(
                server,
                v1::CreateDatabaseUserRequest {
                    group_id: group_id.clone(),
                    username: user(i),
                    database_name: "$external".into(),
                    x509_type: v1::X509Type::Managed as i32,
                    roles: vec![v1::DatabaseUserRole {
                        database_name: "admin".into(),
                        role_name: "readWriteAnyDatabase".into(),
                        collection_name: String::new(),
                    }],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    // The CA is created with the project's first certificate (a read does not create it).
    let mut certificates = CertificateServiceClient::new(channel);
    certificates
        .create_user_certificate(authed(
            server,
            v1::CreateUserCertificateRequest {
                group_id: group_id.clone(),
                username: user(0),
                months_until_expiration: Some(1),
                key_type: v1::KeyType::EcdsaP256 as i32,
                csr_pem: None,
            },
        ))
        .await
        .unwrap();
    certificates
        .get_project_ca_certificate(authed(
            server,
            v1::GetProjectCaCertificateRequest {
                group_id: group_id.clone(),
            },
        ))
        .await
        .unwrap();
    group_id
}

fn user(i: usize) -> String {
    format!("bench-user-{}", i % USERS)
}

// === load ===

/// How a phase offers load.
#[derive(Clone, Copy, Debug)]
enum Offered {
    /// `n` callers, each sending its next request when the previous one is answered.
    Concurrent(usize),
    /// One request per second, whatever the answers do.
    Paced,
}

impl Offered {
    fn label(self) -> String {
        match self {
            Self::Concurrent(n) => format!("c={n}"),
            Self::Paced => "1 req/s".to_owned(),
        }
    }
}

/// The transport a phase uses.
#[derive(Clone)]
enum Client {
    Grpc {
        channels: Vec<Channel>,
        authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        group_id: String,
        key_type: v1::KeyType,
    },
    Rest {
        http: reqwest::Client,
        base: String,
        group_id: String,
        key: (String, String),
    },
}

/// One caller's state (a REST caller keeps its Digest nonce and nonce count).
struct Caller {
    index: usize,
    sequence: usize,
    digest: Option<DigestState>,
}

struct DigestState {
    nonce: String,
    nc: u32,
}

impl Client {
    /// Fetches a REST caller's Digest challenge (an unauthenticated request answered 401, so
    /// no certificate is issued); nothing to do for gRPC.
    async fn prime(&self, caller: &mut Caller) {
        let Self::Rest {
            http,
            base,
            group_id,
            ..
        } = self
        else {
            return;
        };
        let path = format!(
            "/api/atlas/v1.0/groups/{group_id}/databaseUsers/{}/certs",
            user(caller.index)
        );
        let Ok(response) = http.post(format!("{base}{path}")).send().await else {
            return;
        };
        let nonce = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| digest_param(c, "nonce"));
        if let Some(nonce) = nonce {
            caller.digest = Some(DigestState { nonce, nc: 0 });
        }
    }

    async fn issue(&self, caller: &mut Caller) -> Result<(), String> {
        caller.sequence += 1;
        let username = user(caller.index * 7 + caller.sequence);
        match self {
            Self::Grpc {
                channels,
                authorization,
                group_id,
                key_type,
            } => {
                let channel = channels[caller.index % channels.len()].clone();
                let mut request = tonic::Request::new(v1::CreateUserCertificateRequest {
                    group_id: group_id.clone(),
                    username,
                    months_until_expiration: Some(3),
                    key_type: *key_type as i32,
                    csr_pem: None,
                });
                request
                    .metadata_mut()
                    .insert("authorization", authorization.clone());
                let response = CertificateServiceClient::new(channel)
                    .create_user_certificate(request)
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                if response.get_ref().certificate_pem.is_empty() {
                    return Err("empty certificate".into());
                }
                Ok(())
            }
            Self::Rest {
                http,
                base,
                group_id,
                key,
            } => {
                let path =
                    format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/{username}/certs");
                for _ in 0..3 {
                    let mut request = http
                        .post(format!("{base}{path}"))
                        .header("content-type", "application/json")
                        .body(r#"{"monthsUntilExpiration":3}"#);
                    if let Some(digest) = &mut caller.digest {
                        digest.nc += 1;
                        request = request.header(
                            "authorization",
                            digest_authorization(key, "POST", &path, &digest.nonce, digest.nc),
                        );
                    }
                    let response = request.send().await.map_err(|e| e.to_string())?;
                    match response.status().as_u16() {
                        201 => {
                            let body = response.text().await.map_err(|e| e.to_string())?;
                            if !body.contains("BEGIN CERTIFICATE") {
                                return Err("no certificate in the body".into());
                            }
                            return Ok(());
                        }
                        401 => {
                            let challenge = response
                                .headers()
                                .get("www-authenticate")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let nonce = digest_param(&challenge, "nonce")
                                .ok_or_else(|| "401 without a digest challenge".to_owned())?;
                            caller.digest = Some(DigestState { nonce, nc: 0 });
                        }
                        404 => return Err("REST unavailable (404)".into()),
                        status => {
                            let body = response.text().await.unwrap_or_default();
                            return Err(format!("HTTP {status}: {body}"));
                        }
                    }
                }
                Err("digest authentication kept failing".into())
            }
        }
    }
}

/// A Digest `Authorization` header (RFC 7616, MD5, qop=auth) for the Atlas realm.
fn digest_authorization(
    key: &(String, String),
    method: &str,
    uri: &str,
    nonce: &str,
    nc: u32,
) -> String {
    let md5 = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let realm = dbcert::domain::DIGEST_REALM;
    let cnonce = hex::encode(rand::random::<[u8; 8]>());
    let nc = format!("{nc:08x}");
    let ha1 = md5(format!("{}:{realm}:{}", key.0, key.1));
    let ha2 = md5(format!("{method}:{uri}"));
    let response = md5(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\"",
        key.0
    )
}

fn digest_param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_owned())
}

/// What one phase measured.
#[derive(Clone, Debug)]
struct Measured {
    scenario: String,
    transport: &'static str,
    offered: String,
    per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    cpu_ms_per_cert: f64,
    peak_rss_mib: f64,
    records_per_commit: f64,
    certificates: usize,
    errors: usize,
    first_error: Option<String>,
}

/// Runs one phase: warm-up (unmeasured), then a measured window. Completions inside the
/// window count; their latencies give the percentiles.
async fn run_phase(
    server: &Server,
    http: &reqwest::Client,
    client: &Client,
    offered: Offered,
    warmup: Duration,
    window: Duration,
    before_measuring: impl Future<Output = ()>,
) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let done: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let record = {
        let (done, errors, first_error) = (done.clone(), errors.clone(), first_error.clone());
        move |started: Instant, result: Result<(), String>| match result {
            Ok(()) => done
                .lock()
                .unwrap()
                .push((Instant::now(), started.elapsed())),
            Err(error) => {
                errors.fetch_add(1, Ordering::Relaxed);
                first_error.lock().unwrap().get_or_insert(error);
            }
        }
    };

    // Peak RSS during the phase, sampled every 50 ms.
    let peak_rss = Arc::new(Mutex::new(0f64));
    let sampler = {
        let (stop, peak_rss, pid) = (stop.clone(), peak_rss.clone(), server.pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = status_kib(pid, "VmRSS:") / 1024.0;
                {
                    let mut peak = peak_rss.lock().unwrap();
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let mut tasks = Vec::new();
    let (t0, t1, cpu0, cpu1, commits0, commits1);
    match offered {
        Offered::Concurrent(n) => {
            for index in 0..n {
                let (client, stop, record) = (client.clone(), stop.clone(), record.clone());
                tasks.push(tokio::spawn(async move {
                    let mut caller = Caller {
                        index,
                        sequence: 0,
                        digest: None,
                    };
                    client.prime(&mut caller).await;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let result = client.issue(&mut caller).await;
                        record(started, result);
                    }
                }));
            }
            tokio::time::sleep(warmup).await;
            before_measuring.await;
            commits0 = server.commit_totals(http).await;
            (t0, cpu0) = (Instant::now(), server.cpu_secs());
            tokio::time::sleep(window).await;
            (t1, cpu1) = (Instant::now(), server.cpu_secs());
            commits1 = server.commit_totals(http).await;
            stop.store(true, Ordering::Relaxed);
        }
        Offered::Paced => {
            before_measuring.await;
            commits0 = server.commit_totals(http).await;
            (t0, cpu0) = (Instant::now(), server.cpu_secs());
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            let mut index = 0;
            while t0.elapsed() < window {
                ticker.tick().await;
                let (client, record) = (client.clone(), record.clone());
                index += 1;
                tasks.push(tokio::spawn(async move {
                    let mut caller = Caller {
                        index,
                        sequence: 0,
                        digest: None,
                    };
                    // A fresh caller pays the Digest challenge round trip once: fetch it first,
                    // unmeasured, as a client that keeps its nonce would not pay it.
                    client.prime(&mut caller).await;
                    let started = Instant::now();
                    let result = client.issue(&mut caller).await;
                    record(started, result);
                }));
            }
            for task in tasks.drain(..) {
                let _ = task.await;
            }
            (t1, cpu1) = (Instant::now(), server.cpu_secs());
            commits1 = server.commit_totals(http).await;
            stop.store(true, Ordering::Relaxed);
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let _ = sampler.await;

    let done = done.lock().unwrap();
    let mut latencies: Vec<f64> = done
        .iter()
        .filter(|(at, _)| *at >= t0 && *at <= t1)
        .map(|(_, latency)| latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let certificates = latencies.len();
    let elapsed = match offered {
        Offered::Concurrent(_) => (t1 - t0).as_secs_f64(),
        Offered::Paced => window.as_secs_f64(),
    };
    let first_error = first_error.lock().unwrap().clone();
    Measured {
        scenario: String::new(),
        transport: match client {
            Client::Grpc { .. } => "gRPC",
            Client::Rest { .. } => "REST",
        },
        offered: offered.label(),
        per_sec: certificates as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        cpu_ms_per_cert: if certificates > 0 {
            (cpu1 - cpu0) * 1000.0 / certificates as f64
        } else {
            f64::NAN
        },
        peak_rss_mib: *peak_rss.lock().unwrap(),
        records_per_commit: match (commits0, commits1) {
            (Some((c0, r0)), Some((c1, r1))) if c1 > c0 => (r1 - r0) as f64 / (c1 - c0) as f64,
            _ => f64::NAN,
        },
        certificates,
        errors: errors.load(Ordering::Relaxed) as usize,
        first_error,
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

// === main ===

fn main() {
    let flags = Flags::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# dbcert benchmark");
    println!("machine: {}", machine());
    println!("load before: {}", uptime());
    println!("flags: {flags:?}");
    println!();
    if flags.only_crl {
        crl::sign_crls(flags.crl_entries, 3);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let temp = tempfile::tempdir().unwrap();
            std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            crl_served::served(
                temp.path(),
                random_key(),
                flags.crl_entries,
                flags.crl_requests,
            )
            .await;
        });
        println!("load after: {}", uptime());
        return;
    }
    if flags.only_auth_timing {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let temp = tempfile::tempdir().unwrap();
            std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            time_failed_authentications(temp.path(), random_key(), &flags).await;
        });
        println!("load after: {}", uptime());
        return;
    }

    // 1. The raw limit, before anything else runs.
    println!("## raw limit: key generation + signing + PEM, {cores} threads, no server");
    let mut raws = HashMap::new();
    for &leaf in KeyType::ALL {
        let secs = if leaf == KeyType::Rsa4096 {
            flags.raw_rsa_secs
        } else {
            flags.raw_secs
        };
        let raw = raw_limit(leaf, ca_for_leaf(leaf), cores, secs);
        println!(
            "raw {:<10} leaf, {:<10} CA: {:>9.1} certificates/s on {} threads, {:.3} ms CPU per certificate",
            raw.leaf.as_str(),
            raw.ca.as_str(),
            raw.per_sec,
            raw.threads,
            raw.cpu_ms_per_cert
        );
        raws.insert(leaf, raw);
    }
    println!();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(service(&flags));
    report(&raws, &rows);
}

struct ServiceRun {
    rows: Vec<Measured>,
    raw_rsa_again: Option<Raw>,
    start_to_serving: Duration,
    idle_rss_mib: f64,
    rest_available: bool,
    /// The failed-authentication timing's summary lines.
    auth_timing: Vec<String>,
}

async fn service(flags: &Flags) -> ServiceRun {
    let temp = tempfile::tempdir().unwrap();
    // The server refuses a data directory open to others; the tempdir follows the umask.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = random_key();

    // A first start creates the store; the measured start opens the existing one.
    let (first, _) = Server::start(temp.path(), key.clone(), &flags.server_args).await;
    let rsa_group = setup_project(&first, "bench-rsa", v1::KeyType::Rsa4096).await;
    let ecdsa_group = setup_project(&first, "bench-ecdsa", v1::KeyType::EcdsaP256).await;
    first.stop();
    let (server, start_to_serving) =
        Server::start(temp.path(), key.clone(), &flags.server_args).await;
    println!(
        "start to SERVING on the existing store: {:.0} ms",
        start_to_serving.as_secs_f64() * 1000.0
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    server
        .wait_pool(&http, true, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_mib = server.rss_mib();
    println!("idle RSS (key pool full): {idle_rss_mib:.1} MiB");

    let mut channels = Vec::new();
    for _ in 0..GRPC_CONNECTIONS {
        channels.push(server.channel().await);
    }
    let authorization: tonic::metadata::MetadataValue<_> = server.basic().parse().unwrap();
    let grpc = |group_id: &str, key_type: v1::KeyType| Client::Grpc {
        channels: channels.clone(),
        authorization: authorization.clone(),
        group_id: group_id.to_owned(),
        key_type,
    };
    let rest = Client::Rest {
        http: http.clone(),
        base: server.http.clone(),
        group_id: rsa_group.clone(),
        key: key.clone(),
    };
    let rest_available = !flags.no_rest && {
        let mut caller = Caller {
            index: 0,
            sequence: 0,
            digest: None,
        };
        match rest.issue(&mut caller).await {
            Ok(()) => true,
            Err(error) => {
                println!("REST: unavailable ({error})");
                false
            }
        }
    };

    let mut rows = Vec::new();
    let secs = Duration::from_secs_f64;
    let mut push = |mut row: Measured, scenario: &str| {
        row.scenario = scenario.to_owned();
        println!("{}", format_row(&row));
        rows.push(row);
    };
    println!();
    println!("{}", header());

    // RSA-4096 leaves from an RSA-4096 CA: paced with the pool warm, then saturated.
    let mut rsa_clients = Vec::new();
    if !flags.no_rsa {
        rsa_clients.push(grpc(&rsa_group, v1::KeyType::Unspecified));
        if rest_available {
            rsa_clients.push(rest.clone());
        }
    }
    for client in &rsa_clients {
        server
            .wait_pool(&http, true, Duration::from_secs(120))
            .await;
        let row = run_phase(
            &server,
            &http,
            client,
            Offered::Paced,
            Duration::ZERO,
            secs(flags.paced_secs),
            async {},
        )
        .await;
        push(row, "RSA-4096 leaf, RSA-4096 CA, pool warm");
        for &n in &flags.concurrency {
            let row = run_phase(
                &server,
                &http,
                client,
                Offered::Concurrent(n),
                secs(flags.rsa_warmup_secs),
                secs(flags.rsa_secs),
                // Saturation is measured with the pool drained: its stock is not throughput.
                server.wait_pool(&http, false, Duration::from_secs(120)),
            )
            .await;
            push(row, "RSA-4096 leaf, RSA-4096 CA, saturated");
        }
    }

    // ECDSA P-256 leaves from an ECDSA P-256 CA over gRPC, once the pool has refilled (its
    // RSA key generation would otherwise compete for the cores).
    server
        .wait_pool(&http, true, Duration::from_secs(120))
        .await;
    // The RSA-4096 raw limit once more, next to the service phases: the machine is shared, and
    // the ratio uses the mean of both measurements.
    let raw_rsa_again = if flags.no_rsa {
        None
    } else {
        let secs = flags.raw_rsa_secs;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let raw = tokio::task::spawn_blocking(move || {
            raw_limit(KeyType::Rsa4096, KeyType::Rsa4096, cores, secs)
        })
        .await
        .unwrap();
        println!(
            "(raw RSA_4096 again, server idle: {:.2} certificates/s, {:.0} ms CPU per certificate)",
            raw.per_sec, raw.cpu_ms_per_cert
        );
        Some(raw)
    };
    let ecdsa = grpc(&ecdsa_group, v1::KeyType::EcdsaP256);
    let mut levels = flags.concurrency.clone();
    levels.extend(&flags.ecdsa_extra_concurrency);
    for n in levels {
        let row = run_phase(
            &server,
            &http,
            &ecdsa,
            Offered::Concurrent(n),
            secs(1.0),
            secs(flags.ecdsa_secs),
            async {},
        )
        .await;
        push(row, "ECDSA P-256 leaf, P-256 CA");
    }
    server.stop();
    let auth_timing = if flags.auth_samples > 0 {
        time_failed_authentications(temp.path(), key, flags).await
    } else {
        Vec::new()
    };
    drop(temp);
    ServiceRun {
        rows,
        raw_rsa_again,
        start_to_serving,
        idle_rss_mib,
        rest_available,
        auth_timing,
    }
}

/// A random API key pair of Atlas's shape.
fn random_key() -> (String, String) {
    (
        (0..8)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect::<String>(),
        uuid::Uuid::new_v4().to_string(),
    )
}

/// Starts the server on `data_dir` with throttling off, times failed authentications for an
/// existing and an unknown key, prints them and returns the summary lines.
async fn time_failed_authentications(
    data_dir: &Path,
    key: (String, String),
    flags: &Flags,
) -> Vec<String> {
    let mut args = flags.server_args.clone();
    args.extend(["--auth-failure-burst".to_owned(), "0".to_owned()]);
    let (server, _) = Server::start(data_dir, key, &args).await;
    println!();
    println!(
        "## failed authentication, existing vs unknown public key (throttling off, c=1, {} each)",
        flags.auth_samples
    );
    let timings = auth_timing::measure(&server, flags.auth_samples).await;
    server.stop();
    auth_timing::print(&timings);
    auth_timing::summary(&timings)
}

fn header() -> String {
    format!(
        "| {:<36} | {:<9} | {:<7} | {:>9} | {:>8} | {:>8} | {:>8} | {:>12} | {:>9} | {:>10} | {:>7} | {:>6} |\n|{}|",
        "scenario",
        "transport",
        "load",
        "certs/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "CPU ms/cert",
        "peak RSS",
        "rec/commit",
        "n",
        "errors",
        "---|".repeat(12).trim_end_matches('|')
    )
}

fn format_row(row: &Measured) -> String {
    let mut line = format!(
        "| {:<36} | {:<9} | {:<7} | {:>9.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:>12.2} | {:>5.1} MiB | {:>10.1} | {:>7} | {:>6} |",
        row.scenario,
        row.transport,
        row.offered,
        row.per_sec,
        row.p50_ms,
        row.p90_ms,
        row.p99_ms,
        row.cpu_ms_per_cert,
        row.peak_rss_mib,
        row.records_per_commit,
        row.certificates,
        row.errors,
    );
    if let Some(error) = &row.first_error {
        line.push_str(&format!(" first error: {error}"));
    }
    line
}

fn report(raws: &HashMap<KeyType, Raw>, run: &ServiceRun) {
    println!();
    println!("## summary");
    println!("load after: {}", uptime());
    println!(
        "start to SERVING on an existing store: {:.0} ms (target ≤ 1000 ms)",
        run.start_to_serving.as_secs_f64() * 1000.0
    );
    println!(
        "idle RSS: {:.1} MiB (target ≤ 50 MB = 47.7 MiB)",
        run.idle_rss_mib
    );
    if !run.rest_available {
        println!("REST: unavailable");
    }
    // "Saturated" is the highest concurrency measured (not the best of the levels).
    let best = |scenario: &str, transport: &str| {
        run.rows
            .iter()
            .filter(|r| r.scenario.starts_with(scenario) && r.transport == transport)
            .filter_map(|r| Some((r.offered.strip_prefix("c=")?.parse::<usize>().ok()?, r)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, r)| r)
    };
    let rsa_raw = match &run.raw_rsa_again {
        Some(again) => (raws[&KeyType::Rsa4096].per_sec + again.per_sec) / 2.0,
        None => raws[&KeyType::Rsa4096].per_sec,
    };
    let ecdsa_raw = raws[&KeyType::EcdsaP256].per_sec;
    for transport in ["gRPC", "REST"] {
        if let Some(row) = best("RSA-4096 leaf, RSA-4096 CA, saturated", transport) {
            let ratio = row.per_sec / rsa_raw;
            println!(
                "RSA-4096 {transport} saturated: {:.2}/s ({}) = {ratio:.2} x raw {rsa_raw:.2}/s; \
                 server CPU per certificate {:.0} ms = {:.2} x raw {:.0} ms{}",
                row.per_sec,
                row.offered,
                row.cpu_ms_per_cert,
                row.cpu_ms_per_cert / raws[&KeyType::Rsa4096].cpu_ms_per_cert,
                raws[&KeyType::Rsa4096].cpu_ms_per_cert,
                if transport == "gRPC" {
                    verdict(ratio >= 0.95, "≥ 0.95")
                } else {
                    String::new()
                }
            );
        }
        if let Some(row) = run
            .rows
            .iter()
            .find(|r| r.transport == transport && r.offered == "1 req/s")
        {
            println!(
                "RSA-4096 {transport} paced 1 req/s, pool warm: p50 {:.1} ms, p99 {:.1} ms{}",
                row.p50_ms,
                row.p99_ms,
                if transport == "gRPC" {
                    verdict(
                        row.p50_ms <= 20.0 && row.p99_ms <= 100.0,
                        "p50 ≤ 20, p99 ≤ 100",
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(row) = best("ECDSA P-256", "gRPC") {
        let ratio = row.per_sec / ecdsa_raw;
        println!(
            "ECDSA P-256 gRPC saturated: {:.0}/s ({}) = {ratio:.2} x raw {ecdsa_raw:.0}/s; \
             server CPU per certificate {:.3} ms = {:.1} x raw {:.3} ms{}",
            row.per_sec,
            row.offered,
            row.cpu_ms_per_cert,
            row.cpu_ms_per_cert / raws[&KeyType::EcdsaP256].cpu_ms_per_cert,
            raws[&KeyType::EcdsaP256].cpu_ms_per_cert,
            verdict(
                row.per_sec >= 8000.0 && ratio >= 0.25,
                "≥ 8000/s and ≥ 0.25 x raw"
            )
        );
    }
    for line in &run.auth_timing {
        println!("{line}");
    }
}

fn verdict(ok: bool, target: &str) -> String {
    format!(" (target {target}: {})", if ok { "met" } else { "NOT met" })
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown cpu".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    format!(
        "{} x {model}, {:.0} GiB RAM, {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_kib / 1024.0 / 1024.0,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_default()
    )
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let parts: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {}", parts.join(", "))
        })
        .unwrap_or_default()
}
