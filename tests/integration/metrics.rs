//! `/metrics`: the real binary is driven over gRPC and the Atlas REST gateway, then scraped, and
//! the exposition is parsed by the Prometheus project's own OpenMetrics parser (Python
//! `prometheus_client`, `tests/python/parse_openmetrics.py`), not by dbcert's code. Counters
//! must have moved by exactly the calls made, histograms must be there per RPC and per route
//! template, no label may carry an id, username, key or raw path, and the expiry gauges must
//! count what the store holds.
//!
//! A missing Python `prometheus_client` (named by `DBCERT_TEST_PYTHON`, or found as `python3`)
//! skips these tests, or fails them under `DBCERT_REQUIRE_TOOLS=1`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use dbcert::proto::v1::{CreateUserCertificateRequest, KeyType, ListProjectsRequest};

use crate::harness::atlas::{Alg, Atlas};
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::{Clients, Key, error_code, skip_missing_tool};

const CERTS_ROUTE: &str = "/api/atlas/v1.0/groups/{group_id}/databaseUsers/{first}/certs";
const DAY: i64 = 24 * 60 * 60;

/// One sample of the exposition, as the independent parser read it.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    family: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The Python with `prometheus_client`, or `None` when the test is to be skipped.
fn python() -> Option<String> {
    let python = std::env::var("DBCERT_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found
        && skip_missing_tool(
            "python prometheus_client",
            "DBCERT_TEST_PYTHON / python3 lacks prometheus_client (pip install prometheus-client)",
        )
    {
        return None;
    }
    Some(python)
}

/// Scrapes `http://{addr}/metrics` and parses it with the independent parser.
async fn scrape(python: &str, addr: std::net::SocketAddr) -> Vec<Sample> {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let python = python.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/parse_openmetrics.py"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        (child.wait_with_output().unwrap(), text)
    })
    .await
    .unwrap();
    let (output, text) = output;
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`; panics (listing the
/// family) if there is none or more than one.
#[track_caller]
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        matching.len() == 1,
        "{} samples {name}{labels:?}; the family has: {:#?}",
        matching.len(),
        samples
            .iter()
            .filter(|s| s.name.starts_with(name.trim_end_matches("_total")))
            .collect::<Vec<_>>()
    );
    matching[0].value
}

/// The sum of every sample named `name` (all label sets).
fn total(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// `dbcert serve` on `data` with `key` as its bootstrap key and `args`.
async fn spawn(data: &Path, key: &Key, args: &[&str]) -> Spawned {
    let mut command = serve_command(data);
    command.args(args).env(
        "DBCERT_BOOTSTRAP_API_KEY",
        format!("{}:{}", key.public, key.private),
    );
    Spawned::start(command).await
}

fn atlas(addr: std::net::SocketAddr, key: Key) -> Atlas {
    Atlas {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
        key,
        alg: Alg::Md5,
    }
}

async fn issue_ecdsa(clients: &Clients, group_id: &str) -> Result<i64, tonic::Status> {
    clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group_id.into(),
            username: "metrics-user".into(),
            months_until_expiration: Some(12),
            key_type: KeyType::EcdsaP256 as i32,
            csr_pem: None,
        })
        .await
        .map(|r| r.into_inner().serial_number)
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_histograms_and_gauges_follow_the_calls_made() {
    let Some(python) = python() else { return };
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let key = Key::random();
    let server = spawn(
        &data,
        &key,
        &["--key-pool-size", "2", "--key-pool-types", "ECDSA_P256"],
    )
    .await;
    let clients = server.clients(&key).await;
    let group_id = clients.create_project("metrics").await;
    clients.create_managed_user(&group_id, "metrics-user").await;

    // gRPC: two certificates, and one call with a key that does not exist.
    let first = issue_ecdsa(&clients, &group_id).await.unwrap();
    let second = issue_ecdsa(&clients, &group_id).await.unwrap();
    let stranger = Key::random();
    let refused = issue_ecdsa(&clients.as_key(&stranger), &group_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // REST: each Digest call first fetches a challenge (401 on GET /orgs).
    let rest = atlas(server.http_addr, key.clone());
    let certs = format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/metrics-user/certs");
    let created = rest.post(&certs, r#"{"monthsUntilExpiration":1}"#).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(rest.get(&certs).await.status, 200);
    let wrong = atlas(server.http_addr, stranger.clone());
    let wrong = wrong
        .get(&format!("/api/atlas/v1.0/groups/{group_id}"))
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let unrouted = rest
        .raw(
            "GET",
            &format!("/api/atlas/v1.0/nothing/{group_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(unrouted.status, 404);

    // Expiry: move the records as time would (one into 7 days, one into 30, one past), then
    // scrape for the first time (so the gauges are counted now).
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let db = sqlx::SqlitePool::connect(&dbcert::storage::SqliteStore::url_in(&data))
        .await
        .unwrap();
    for (serial, not_after) in [(first, now + 3 * DAY), (second, now - DAY)] {
        let moved = sqlx::query("UPDATE certificates SET not_after = $1 WHERE serial = $2")
            .bind(not_after)
            .bind(serial)
            .execute(&db)
            .await
            .unwrap();
        assert_eq!(moved.rows_affected(), 1);
    }
    let moved = sqlx::query("UPDATE certificates SET not_after = $1 WHERE serial NOT IN ($2, $3)")
        .bind(now + 20 * DAY)
        .bind(first)
        .bind(second)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1, "the REST certificate");
    db.close().await;

    let samples = scrape(&python, server.http_addr).await;

    // gRPC, per method and code.
    let create = [
        ("grpc_service", "dbcert.v1.CertificateService"),
        ("grpc_method", "CreateUserCertificate"),
    ];
    let with_code = |code| {
        let mut labels = create.to_vec();
        labels.push(("grpc_code", code));
        labels
    };
    assert_eq!(
        value(&samples, "dbcert_grpc_requests_total", &with_code("OK")),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "dbcert_grpc_requests_total",
            &with_code("UNAUTHENTICATED")
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "dbcert_grpc_request_duration_seconds_count",
            &create
        ),
        3.0
    );
    let mut inf = create.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(
            &samples,
            "dbcert_grpc_request_duration_seconds_bucket",
            &inf
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "dbcert_grpc_requests_total",
            &[("grpc_method", "CreateProject"), ("grpc_code", "OK")]
        ),
        1.0
    );

    // REST, per route template, method and status.
    let http = |route, method, status| {
        value(
            &samples,
            "dbcert_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(http(CERTS_ROUTE, "POST", "201"), 1.0);
    assert_eq!(http(CERTS_ROUTE, "GET", "200"), 1.0);
    assert_eq!(http("/api/atlas/v1.0/orgs", "GET", "401"), 3.0);
    assert_eq!(http("/api/atlas/v1.0/groups/{group_id}", "GET", "401"), 1.0);
    assert_eq!(http("unmatched", "GET", "404"), 1.0);
    assert_eq!(total(&samples, "dbcert_http_requests_total"), 7.0);
    for method in ["POST", "GET"] {
        let route = [("route", CERTS_ROUTE), ("method", method)];
        assert_eq!(
            value(
                &samples,
                "dbcert_http_request_duration_seconds_count",
                &route
            ),
            1.0
        );
        let buckets = samples
            .iter()
            .filter(|s| {
                s.name == "dbcert_http_request_duration_seconds_bucket"
                    && s.labels["route"] == CERTS_ROUTE
                    && s.labels["method"] == method
            })
            .count();
        assert!(
            buckets >= 10,
            "{buckets} latency buckets for {method} {CERTS_ROUTE}"
        );
    }
    // No label names a project, user, key or raw path.
    for sample in &samples {
        for value in sample.labels.values() {
            for secret in [
                group_id.as_str(),
                "metrics-user",
                "nothing",
                key.public.as_str(),
                stranger.public.as_str(),
            ] {
                assert!(!value.contains(secret), "{sample:?} names {secret:?}");
            }
        }
    }

    // Certificates issued per key type: two ECDSA over gRPC, one RSA-4096 over REST.
    let issued = |key_type| {
        value(
            &samples,
            "dbcert_certificates_issued_total",
            &[("key_type", key_type)],
        )
    };
    assert_eq!(issued("ECDSA_P256"), 2.0);
    assert_eq!(issued("RSA_4096"), 1.0);
    assert_eq!(issued("RSA_2048"), 0.0);

    // The key pool: the two ECDSA keys were taken from it or made inline.
    let pool = [("key_type", "ECDSA_P256")];
    assert_eq!(value(&samples, "dbcert_key_pool_capacity", &pool), 2.0);
    let depth = value(&samples, "dbcert_key_pool_depth", &pool);
    assert!((0.0..=2.0).contains(&depth), "{depth}");
    assert_eq!(
        value(&samples, "dbcert_key_pool_hits_total", &pool)
            + value(&samples, "dbcert_key_pool_misses_total", &pool),
        2.0
    );

    // Group commit: three records, in as many commits as the histograms saw.
    assert_eq!(
        value(&samples, "dbcert_certificate_records_total", &[]),
        3.0
    );
    assert_eq!(
        value(&samples, "dbcert_group_commit_batch_size_sum", &[]),
        3.0
    );
    let commits = value(&samples, "dbcert_certificate_commits_total", &[]);
    assert!((1.0..=3.0).contains(&commits), "{commits}");
    assert_eq!(
        value(&samples, "dbcert_group_commit_batch_size_count", &[]),
        commits
    );
    assert_eq!(
        value(&samples, "dbcert_store_commit_duration_seconds_count", &[]),
        commits
    );

    // Failed authentications: one per transport, nothing else.
    let failures = |transport, scheme, reason| {
        value(
            &samples,
            "dbcert_authentication_failures_total",
            &[
                ("transport", transport),
                ("scheme", scheme),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(failures("grpc", "basic", "invalid_credentials"), 1.0);
    assert_eq!(failures("rest", "digest", "invalid_credentials"), 1.0);
    assert_eq!(total(&samples, "dbcert_authentication_failures_total"), 2.0);

    // Expiring: 3 days (both windows), 20 days (30 only), expired (neither).
    let expiring = |days| {
        value(
            &samples,
            "dbcert_certificates_expiring",
            &[("within_days", days)],
        )
    };
    assert_eq!(expiring("7"), 1.0);
    assert_eq!(expiring("30"), 2.0);
    let refreshed = value(
        &samples,
        "dbcert_certificates_expiring_refreshed_timestamp_seconds",
        &[],
    );
    assert!(refreshed >= now as f64, "{refreshed} < {now}");

    // Every series the shipped alert rules use is one dbcert exposes.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts.yaml"
    ))
    .unwrap();
    let mut referenced = 0;
    for (at, _) in rules.match_indices("dbcert_") {
        let name: String = rules[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        referenced += 1;
        assert!(
            samples.iter().any(|s| s.name == name || s.family == name),
            "deploy/prometheus/alerts.yaml uses {name}, which /metrics does not expose"
        );
    }
    assert!(
        referenced >= 8,
        "{referenced} series referenced by the alert rules"
    );

    // Types as declared.
    for (family, kind) in [
        ("dbcert_grpc_requests", "counter"),
        ("dbcert_http_request_duration_seconds", "histogram"),
        ("dbcert_key_pool_depth", "gauge"),
        ("dbcert_certificates_expiring", "gauge"),
    ] {
        assert!(
            samples.iter().any(|s| s.family == family && s.kind == kind),
            "{family} is not a {kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_listener_of_their_own_and_throttling_counted() {
    let Some(python) = python() else { return };
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let key = Key::random();
    let server = spawn(
        &data,
        &key,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--auth-failure-burst",
            "1",
            "--auth-failure-refill",
            "10m",
            "--key-pool-size",
            "0",
        ],
    )
    .await;
    assert!(
        server
            .wait_for_log("metrics served on their own listener")
            .await
    );
    let log = server.log();
    let metrics_addr: std::net::SocketAddr = log
        .lines()
        .find(|line| line.contains("metrics served on their own listener"))
        .and_then(|line| {
            let start = line.find("metrics_addr=")? + "metrics_addr=".len();
            line[start..].split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no metrics_addr in the log:\n{log}"));
    // The HTTP listener no longer serves /metrics: an Atlas 404.
    let rest = atlas(server.http_addr, key.clone());
    rest.raw("GET", "/metrics", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");

    // One failure spends the burst of 127.0.0.1: the next attempt, gRPC or REST, is throttled.
    let stranger = Clients::new(server.channel().await, Key::random());
    let list = || async {
        stranger
            .projects()
            .list_projects(ListProjectsRequest::default())
            .await
            .unwrap_err()
    };
    assert_eq!(list().await.code(), tonic::Code::Unauthenticated);
    let throttled = list().await;
    assert_eq!(error_code(&throttled), "RATE_LIMITED", "{throttled:?}");
    let limited = rest.get("/api/atlas/v1.0/groups").await;
    assert_eq!(limited.status, 429, "{}", limited.body);

    let samples = scrape(&python, metrics_addr).await;
    let failures = |transport, scheme, reason| {
        value(
            &samples,
            "dbcert_authentication_failures_total",
            &[
                ("transport", transport),
                ("scheme", scheme),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(failures("grpc", "basic", "invalid_credentials"), 1.0);
    assert_eq!(failures("grpc", "basic", "rate_limited"), 1.0);
    assert_eq!(failures("rest", "digest", "rate_limited"), 1.0);
    assert_eq!(total(&samples, "dbcert_authentication_failures_total"), 3.0);
    let list_projects = |code| {
        value(
            &samples,
            "dbcert_grpc_requests_total",
            &[("grpc_method", "ListProjects"), ("grpc_code", code)],
        )
    };
    assert_eq!(list_projects("UNAUTHENTICATED"), 1.0);
    assert_eq!(list_projects(throttled_code(&throttled)), 1.0);
    assert_eq!(
        value(
            &samples,
            "dbcert_http_requests_total",
            &[("route", "/api/atlas/v1.0/groups"), ("status", "429")]
        ),
        1.0
    );
    // A disabled pool has no per-type samples, but the issued family is there from zero.
    assert!(!samples.iter().any(|s| s.name == "dbcert_key_pool_depth"));
    assert_eq!(total(&samples, "dbcert_certificates_issued_total"), 0.0);
    assert!(
        samples
            .iter()
            .any(|s| s.name == "dbcert_certificates_issued_total")
    );
}

/// The gRPC code name of a throttled call, as the metrics spell it.
fn throttled_code(status: &tonic::Status) -> &'static str {
    match status.code() {
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::Unavailable => "UNAVAILABLE",
        other => panic!("unexpected code for a throttled call: {other:?}"),
    }
}
