//! The client's exit codes for failures (credentials, not found, invalid, unreachable,
//! conflicts, the per-user limit, a missing role) and its profile file.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{Client, Run, path_str};
use crate::harness::binary::BIN;
use crate::harness::{TestServer, skip_missing_tool};

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
    // a project without a CA yet (no certificate issued): 4, naming it
    let group_id = server.clients().await.create_project("no-ca-yet").await;
    let run = cli.run(&["projects", "ca", "--projectId", &group_id]).await;
    run.expect(4);
    assert!(
        run.stderr.contains("PROJECT_CA_NOT_FOUND"),
        "{}",
        run.stderr
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn a_key_pair_comes_from_one_source_and_a_profile_key_only_goes_to_its_server() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    let config = cli.dir().join("config.toml");
    let write_config = |server_line: &str| {
        std::fs::write(
            &config,
            format!(
                "[default]\n{server_line}public_api_key = \"{}\"\nprivate_api_key = \"{}\"\n",
                cli.key.public, cli.key.private
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_config(&format!("server = \"{}\"\n", cli.server));
    let list = || cli.bare(&["projects", "list", "--config-file", path_str(&config)]);
    // The profile's pair, to its own server (DBCERT_SERVER names the same one).
    Run::of(list()).await.expect(0);

    // Half a pair in the environment is not completed from the profile: refused, naming the
    // missing variable.
    for (set, missing) in [
        ("DBCERT_PUBLIC_API_KEY", "DBCERT_PRIVATE_API_KEY"),
        ("DBCERT_PRIVATE_API_KEY", "DBCERT_PUBLIC_API_KEY"),
    ] {
        let value = if set == "DBCERT_PUBLIC_API_KEY" {
            &cli.key.public
        } else {
            &cli.key.private
        };
        let mut command = list();
        command.env(set, value);
        let run = Run::of(command).await;
        run.expect(2);
        assert!(run.stderr.contains(missing), "{}", run.stderr);
    }

    // The profile's key is not sent to a server the profile does not name (here the same
    // server spelled otherwise, which would accept it).
    let elsewhere = cli.server.replace("127.0.0.1", "localhost");
    let mut command = list();
    command.env("DBCERT_SERVER", &elsewhere);
    let run = Run::of(command).await;
    run.expect(2);
    assert!(run.stderr.contains(&elsewhere), "{}", run.stderr);
    assert!(
        !run.stderr.contains(&cli.key.private),
        "the key must not be printed"
    );
    // The environment's own pair may go there.
    let mut command = cli.command(&["projects", "list", "--config-file", path_str(&config)]);
    command.env("DBCERT_SERVER", &elsewhere);
    Run::of(command).await.expect(0);
    // A profile that names no server binds its key to none: it goes to the server given.
    write_config("");
    let mut command = list();
    command.env("DBCERT_SERVER", &elsewhere);
    Run::of(command).await.expect(0);
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
            desc: None,
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

/// Runs the client on a pseudo-terminal (Python's `pty`, as a person at a shell), answers its
/// first `[y/N]` prompt with `answer`, and returns how it exited and all it printed.
async fn on_a_terminal(cli: &Client, args: &[&str], answer: &str) -> Option<Run> {
    const SCRIPT: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
def read():
    global out
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    out += chunk
    return bool(chunk)
while b"[y/N]" not in out and read():
    pass
if b"[y/N]" in out:
    os.write(fd, sys.argv[1].encode() + b"\n")
while read():
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let python = std::env::var("DBCERT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if Command::new(&python).arg("--version").output().is_err()
        && skip_missing_tool("python", "DBCERT_TEST_PYTHON unset and no python3")
    {
        return None;
    }
    let mut command = Command::new(python);
    command
        .args(["-c", SCRIPT, answer, BIN])
        .args(args)
        .env_clear()
        .env("HOME", cli.dir())
        .env("DBCERT_SERVER", &cli.server)
        .env("DBCERT_PUBLIC_API_KEY", &cli.key.public)
        .env("DBCERT_PRIVATE_API_KEY", &cli.key.private)
        .stdin(Stdio::null());
    Some(Run::of(command).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_declined_at_the_prompt_exits_2_and_deletes_nothing() {
    let server = TestServer::start().await;
    let cli = Client::new(&server);
    let group_id = server.clients().await.create_project("prompted").await;
    cli.run(&[
        "dbusers",
        "create",
        "--username",
        "kept",
        "--projectId",
        &group_id,
    ])
    .await
    .expect(0);
    let delete = ["dbusers", "delete", "kept", "--projectId", &group_id];
    let count = || async {
        cli.run(&["dbusers", "list", "-o", "json", "--projectId", &group_id])
            .await
            .expect(0)
            .json()["totalCount"]
            .clone()
    };

    // "n": nothing deleted, and a script's `&&` stops (exit 2, as a refused prompt).
    let Some(run) = on_a_terminal(&cli, &delete, "n").await else {
        return;
    };
    run.expect(2);
    assert!(run.stdout.contains("not confirmed"), "{}", run.stdout);
    assert_eq!(count().await, 1);
    // "y": deleted.
    let run = on_a_terminal(&cli, &delete, "y").await.unwrap();
    run.expect(0);
    assert!(run.stdout.contains("deleted"), "{}", run.stdout);
    assert_eq!(count().await, 0);
}
