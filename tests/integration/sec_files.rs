//! Secret files (issue 13, item 3), against the real binary: a SQLite database outside the data
//! directory is created 0600 with its `-wal` and `-shm`; a start is refused while the master
//! key file, the data directory or the SQLite file is open to group or others, naming the file
//! and the fix, unless `--allow-insecure-permissions`; the master key and the bootstrap key are
//! refused on the command line (where `ps` shows them) with an error naming the variable.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use dbcert::domain::MasterKey;

use crate::harness::binary::{BIN, Spawned, run_to_exit, serve_command};

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Refused with the file and the fix named, then accepted, loudly, with the override.
async fn refused_then_overridden(
    command: impl Fn() -> Command,
    out: &Path,
    file: &Path,
    fix: &str,
) {
    let (status, log) = run_to_exit(command(), out).await;
    assert!(!status.success(), "{log}");
    let named = format!("{fix} {}", file.display());
    assert!(
        log.contains(&named) && log.contains("--allow-insecure-permissions"),
        "the refusal does not say `{named}`:\n{log}"
    );

    let mut allowed = command();
    allowed.arg("--allow-insecure-permissions");
    let server = Spawned::start(allowed).await;
    let log = server.log();
    assert!(
        log.contains("WARN") && log.contains("INSECURE") && log.contains(&*file.to_string_lossy()),
        "the override was not logged as a warning naming the file:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_database_outside_the_data_dir_is_private_with_its_wal_and_shm() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let database = elsewhere.join("store.sqlite3");
    let mut command = serve_command(&dir.path().join("data"));
    command
        .arg("--database")
        .arg(format!("sqlite://{}", database.display()));
    let server = Spawned::start(command).await;
    server.wait_serving().await;
    for suffix in ["", "-wal", "-shm"] {
        let path = elsewhere.join(format!("store.sqlite3{suffix}"));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_readable_master_key_file_is_refused_unless_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(&key, MasterKey::generate().to_base64()).unwrap();
    chmod(&key, 0o644);
    let data = dir.path().join("data");
    let command = || {
        let mut command = serve_command(&data);
        command.arg("--master-key-file").arg(&key);
        command
    };
    refused_then_overridden(command, &dir.path().join("out"), &key, "chmod 600").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_readable_data_dir_is_refused_unless_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let command = || {
        // After `serve_command`, which makes an existing data directory private.
        let command = serve_command(&data);
        chmod(&data, 0o750);
        command
    };
    refused_then_overridden(command, &dir.path().join("out"), &data, "chmod 700").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_readable_sqlite_file_is_refused_unless_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("store.sqlite3");
    // An empty file is an empty SQLite database.
    std::fs::write(&database, b"").unwrap();
    chmod(&database, 0o644);
    let data = dir.path().join("data");
    let command = || {
        let mut command = serve_command(&data);
        command
            .arg("--database")
            .arg(format!("sqlite://{}", database.display()));
        command
    };
    refused_then_overridden(command, &dir.path().join("out"), &database, "chmod 600").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_on_the_command_line_are_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let master_key = MasterKey::generate().to_base64();
    for (flag, value, variable) in [
        ("--master-key", master_key.as_str(), "DBCERT_MASTER_KEY"),
        (
            "--bootstrap-api-key",
            "public:private",
            "DBCERT_BOOTSTRAP_API_KEY",
        ),
    ] {
        for args in [
            vec![flag.to_owned(), value.to_owned()],
            vec![format!("{flag}={value}")],
        ] {
            let mut command = serve_command(&data);
            command.args(&args);
            let (status, log) = run_to_exit(command, &dir.path().join("out")).await;
            assert!(!status.success(), "{args:?} was accepted:\n{log}");
            assert!(
                log.contains(variable) && log.contains(flag),
                "{args:?}: the error does not name {variable}:\n{log}"
            );
            assert!(
                !log.contains(value),
                "{args:?}: the error repeats the secret"
            );
        }
    }
    assert!(!data.exists(), "a refused command line started the server");

    // The variables still work, and the help documents them.
    let mut command = serve_command(&data);
    command.env("DBCERT_MASTER_KEY", &master_key);
    Spawned::start(command).await.wait_serving().await;
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for variable in ["DBCERT_MASTER_KEY", "DBCERT_BOOTSTRAP_API_KEY"] {
        assert!(
            help.contains(variable),
            "serve --help lacks {variable}:\n{help}"
        );
    }
}
