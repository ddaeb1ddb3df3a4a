//! The four Atlas clients people use, pointed at a live server with only the base URL changed:
//! PyPI `atlasapi==2.0.11`, `mongodbatlas==0.2.6`, `mongodb-atlas-api-sdk==0.1.0` and npm
//! `mongodb-atlas-api-client@4.19.0` (`.ci/run` installs them; `tests/node` pins the npm one).
//!
//! One server per client, and one script per client (`tests/python/client_*.py`,
//! `tests/node/client_*.js`) making every call the client offers for organizations, projects,
//! database users, certificates, events and API keys (its own transport where it has no call
//! for a resource), checking each result. A script reports each call as one step; this test
//! holds the steps to the client's table below, in order, so a call that goes missing from a
//! script fails too. Where the client itself is wrong against Atlas, the step is named
//! `[client bug: …]` and checks that the client fails while dbcert answers what Atlas answers.
//!
//! Every step must pass: issue 12's work listed the steps awaiting their server side as
//! pending while it was being built, and none is left.
//!
//! A missing client (a Python without the package, named by `DBCERT_TEST_PYTHON` or found as
//! `python3`; `node` or `tests/node/node_modules`) skips the test with a line on stderr,
//! unless `DBCERT_REQUIRE_TOOLS=1`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::harness::{TestServer, skip_missing_tool};

/// How long one script may run (each makes a few dozen calls, a few certificates).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
const CALL_PREFIX: &str = "ATLAS-CLIENT-CALL ";
const DONE: &str = "ATLAS-CLIENT-DONE";

/// PyPI `atlasapi==2.0.11`: every step of `tests/python/client_atlasapi.py`.
const ATLASAPI: &[&str] = &[
    "Organizations.organizations",
    "Organizations.count [client bug: reads TotalCount]",
    "Organizations.organization_by_name",
    "Organizations.organization_by_id",
    "network.post /groups (the client has no project create)",
    "Organizations.get_all_projects_for_org",
    "Projects.projects",
    "Projects.project_by_name",
    "Projects.project_by_id",
    "DatabaseUsers.create_a_database_user [client lacks x509Type]",
    "DatabaseUsers.get_all_database_users",
    "DatabaseUsers.get_all_database_users(iterable=True)",
    "DatabaseUsers.get_a_single_database_user [client bug: admin database]",
    "DatabaseUsers.update_a_database_user [client bugs: admin database, spec constructor]",
    "network.post …/certs [client bug: parses the PEM answer as JSON]",
    "network.get …/certs",
    "network.get /orgs/{orgId}/apiKeys",
    "network.get /orgs/{orgId}/apiKeys/{apiUserId}",
    "network.get /groups/{groupId}/apiKeys",
    "Events.all",
    "Events.since",
    "Events.all_by_type",
    "Events.since_by_type",
    "DatabaseUsers.delete_a_database_user [client bug: admin database]",
    "network.delete /groups/{groupId} (the client has no project delete)",
];

/// PyPI `mongodbatlas==0.2.6`: every step of `tests/python/client_mongodbatlas.py`.
const MONGODBATLAS: &[&str] = &[
    "AtlasAPI.get_organizations",
    "AtlasAPI.get_this_organization",
    "AtlasAPI.get_one_organization",
    "AtlasAPI.get_one_cached_organization [client bug: no base URL]",
    "OPCAPI.get_this_organization",
    "AtlasAPI.create_project",
    "AtlasAPI.get_projects",
    "AtlasAPI.get_project_ids",
    "AtlasAPI.get_one_project",
    "AtlasAPI.get_one_cached_project",
    "OPCAPI.get_projects, get_one_project",
    "OPCAPI.get_organization_and_projects",
    "AtlasRequests.get_names, get_ids, get_resource_by_page",
    "AtlasRequests.get_resource_by_item (pages)",
    "atlas_post …/databaseUsers",
    "atlas_get …/databaseUsers, …/databaseUsers/$external/{username}",
    "atlas_patch …/databaseUsers/$external/{username}",
    "atlas_post …/certs [client bug: parses the PEM answer as JSON]",
    "atlas_get …/certs",
    "atlas_get /groups/{groupId}/events, …/events/{eventId}",
    "atlas_get /orgs/{orgId}/events, …/events/{eventId}",
    "atlas_post, atlas_get, atlas_delete /orgs/{orgId}/apiKeys[/{id}]",
    "atlas_delete …/databaseUsers/$external/{username} [client bug: 204 as JSON]",
    "AtlasAPI.create_organization, delete_organization [client bug: no base URL], atlas_delete /orgs/{orgId} [client bug: 204 as JSON]",
    "AtlasAPI.delete_project [client bug: 204 as JSON]",
];

/// PyPI `mongodb-atlas-api-sdk==0.1.0`: every step of
/// `tests/python/client_mongodb_atlas_api_sdk.py`.
const MONGODB_ATLAS_API_SDK: &[&str] = &[
    "get_raw /orgs",
    "post_raw /groups",
    "DatabaseUser.create, exists, read",
    "AtlasProject.users",
    "DatabaseUser.create twice [client bug: 409 raised as DatabaseUserNotFound]",
    "DatabaseUser.update",
    "DatabaseUser.add_scope, create (scopes stored)",
    "DatabaseUser.exists (unknown user)",
    "post_raw, get_raw …/certs",
    "get_raw /groups/{groupId}/events?eventType=…&minDate=(no offset)",
    "ApiKey(public_id=…), href, exists [client bug: roles kept as a bool]",
    "ApiKey(key_id=…) [client bug: href never set]",
    "ApiKey.add_ip_address, bulk_add_ip_address_blocks, access_list, delete_ip_address",
    "DatabaseUser.delete",
    "delete_raw /groups/{groupId}",
];

/// npm `mongodb-atlas-api-client@4.19.0`: every step of
/// `tests/node/client_mongodb_atlas_api_client.js`.
const MONGODB_ATLAS_API_CLIENT: &[&str] = &[
    "organization.getAll",
    "organization.getById",
    "organization.rename",
    "project.create",
    "project.getAll (itemsPerPage, pageNum)",
    "project.getById",
    "project.getByName",
    "organization.getAllProjectsForOrganization",
    "user.create",
    "user.getAll",
    "user.get [client bug: admin database]",
    "user.update [client bug: admin database]",
    "user.create with description (an Atlas attribute)",
    "transport POST …/certs [client bug: parses the PEM answer as JSON]",
    "transport GET …/certs",
    "event.getAll",
    "event.get",
    "event.getAllByOrganizationId",
    "event.getByOrganizationId",
    "transport POST, GET, PATCH, DELETE /orgs/{orgId}/apiKeys[/{id}]",
    "user.delete [client bug: admin database]",
    "project.delete",
    "organization.delete (an organization made with POST /orgs)",
];

#[tokio::test]
async fn atlasapi_2_0_11() {
    drive_python("atlasapi", "atlasapi", "client_atlasapi.py", ATLASAPI).await;
}

#[tokio::test]
async fn mongodbatlas_0_2_6() {
    drive_python(
        "mongodbatlas",
        "mongodbatlas",
        "client_mongodbatlas.py",
        MONGODBATLAS,
    )
    .await;
}

#[tokio::test]
async fn mongodb_atlas_api_sdk_0_1_0() {
    drive_python(
        "mongodb-atlas-api-sdk",
        "mongodb_atlas_api_sdk",
        "client_mongodb_atlas_api_sdk.py",
        MONGODB_ATLAS_API_SDK,
    )
    .await;
}

#[tokio::test]
async fn npm_mongodb_atlas_api_client_4_19_0() {
    let node_dir = repository().join("tests/node");
    let installed = node_dir.join("node_modules/mongodb-atlas-api-client/package.json");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node && skip_missing_tool("node", "node --version failed") {
        return;
    }
    if !installed.is_file()
        && skip_missing_tool(
            "mongodb-atlas-api-client",
            "tests/node/node_modules is not installed (npm ci in tests/node)",
        )
    {
        return;
    }
    let mut command = Command::new("node");
    command.arg(node_dir.join("client_mongodb_atlas_api_client.js"));
    drive(
        "mongodb-atlas-api-client",
        command,
        MONGODB_ATLAS_API_CLIENT,
    )
    .await;
}

// === The runner

/// One step as a script reports it.
#[derive(Debug, Deserialize)]
struct Step {
    call: String,
    ok: bool,
    detail: String,
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a Python client script, or skips when that Python lacks the client's package.
async fn drive_python(client: &str, module: &str, script: &str, calls: &[&str]) {
    let python = std::env::var("DBCERT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let importable = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable && skip_missing_tool(client, &format!("{python} cannot import {module}")) {
        return;
    }
    let mut command = Command::new(python);
    command.arg(repository().join("tests/python").join(script));
    drive(client, command, calls).await;
}

/// Starts a server, runs `command BASE_URL PUBLIC PRIVATE`, and holds its steps to `calls`,
/// each of which must pass.
async fn drive(client: &str, mut command: Command, calls: &[&str]) {
    let server = TestServer::start().await;
    command
        .arg(format!("http://{}", server.http_addr))
        .arg(&server.key.public)
        .arg(&server.key.private);
    let (success, stdout, stderr) = tokio::task::spawn_blocking(move || run(command))
        .await
        .unwrap();
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(success, "the {client} script failed\n{context}");
    assert!(
        stdout.lines().any(|l| l == DONE),
        "the {client} script did not finish\n{context}"
    );
    let steps: Vec<Step> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(CALL_PREFIX))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let reported: Vec<&str> = steps.iter().map(|s| s.call.as_str()).collect();
    assert_eq!(reported, calls, "the {client} script's calls\n{context}");
    let problems = judge(&steps);
    assert!(
        problems.is_empty(),
        "{client}: {} step(s) wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The steps that failed, each with what the script saw.
fn judge(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter(|step| !step.ok)
        .map(|step| format!("  {}: {}", step.call, step.detail))
        .collect()
}

/// Runs a command to its end (killed after [`SCRIPT_TIMEOUT`]); returns whether it exited 0,
/// its stdout and its stderr.
fn run(mut command: Command) -> (bool, String, String) {
    let mut child = command
        .current_dir(repository())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client script");
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        Some(status) => (status.success(), stdout, stderr),
        None => (
            false,
            stdout,
            format!("killed after {SCRIPT_TIMEOUT:?}\n{stderr}"),
        ),
    }
}

/// Reads a pipe to its end on a thread of its own (so neither pipe fills and blocks the child).
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

// === What the Python clients tripped on

/// Python's `http.client` writes a request's head, then its body: the Digest challenge to such
/// a POST is answered before the body is read, and hyper then closes the connection. The 401
/// must say so (`Connection: close`), or a pooling client (requests, and the three PyPI
/// clients above) sends its retry on the closing connection when the machine is loaded:
/// "Remote end closed connection without response".
#[tokio::test]
async fn a_challenge_before_the_body_is_read_says_connection_close() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::start().await;
    let body = br#"{"name":"split"}"#;
    let head = format!(
        "POST /api/atlas/v1.0/groups HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        server.http_addr,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body in a write of its own, after the server has the head (as http.client sends it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes this connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 401 "), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    // A request without a body keeps its connection, and says nothing of closing it.
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let get = format!(
        "GET /api/atlas/v1.0/groups HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.http_addr
    );
    let mut buffer = vec![0; 4096];
    for _ in 0..2 {
        stream.write_all(get.as_bytes()).await.unwrap();
        let read = stream.read(&mut buffer).await.unwrap();
        let answer = String::from_utf8_lossy(&buffer[..read]).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 401 "), "{answer}");
        assert!(!answer.contains("\r\nconnection: close\r\n"), "{answer}");
    }
}
