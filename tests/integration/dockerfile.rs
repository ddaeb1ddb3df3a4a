//! The Dockerfile cannot be built here (no Docker engine), so its invariants are checked:
//! the builder's toolchain is the one Cargo.toml pins, it builds `--locked`, the exposed ports
//! are the listen addresses, the volume is the data directory, and the HEALTHCHECK asks the
//! gRPC health service through `dbcert healthcheck`, which reads the same listen and TLS
//! variables as the server.

#![allow(clippy::unwrap_used)] // a panic fails the test

fn dockerfile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap()
}

fn env_value(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name} not set"))
        + name.len()
        + 1;
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn toolchain_matches_the_crate_and_builds_locked() {
    let docker = dockerfile();
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let pinned = env_value(&docker, "ARG RUST_VERSION");
    assert!(
        pinned.starts_with(&rust_version),
        "Dockerfile pins {pinned}, Cargo.toml {rust_version}"
    );
    assert!(docker.contains("cargo build --locked --release --bin dbcert"));
    assert!(docker.contains("cargo test --locked --lib"));
    assert!(
        !docker.contains("protobuf-compiler"),
        "protox needs no protoc"
    );
}

#[test]
fn ports_volume_user_and_healthcheck_agree_with_the_configuration() {
    let docker = dockerfile();
    let grpc = env_value(&docker, "DBCERT_GRPC_LISTEN");
    let http = env_value(&docker, "DBCERT_HTTP_LISTEN");
    let data = env_value(&docker, "DBCERT_DATA_DIR");
    assert!(
        grpc.starts_with("0.0.0.0:") && http.starts_with("0.0.0.0:"),
        "bind all interfaces in the container"
    );
    let expose = docker
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap();
    let ports: Vec<&str> = expose.split_whitespace().collect();
    assert!(ports.contains(&grpc.rsplit(':').next().unwrap()));
    assert!(ports.contains(&http.rsplit(':').next().unwrap()));
    assert!(docker.contains(&format!("VOLUME [\"{}\"]", data.trim_end_matches(" \\"))));
    assert!(docker.contains("USER 10001"), "runs as non-root");
    let healthcheck = docker
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .unwrap();
    assert!(healthcheck.contains(r#"CMD ["dbcert", "healthcheck"]"#));
    // `dbcert healthcheck` reads the server's own variables: DBCERT_GRPC_LISTEN (0.0.0.0 means
    // loopback) and DBCERT_TLS_CERT_FILE (with it, TLS), so the same environment serves both.
    let help = |command: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dbcert"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "dbcert {command} --help: {output:?}"
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let (check, serve) = (help("healthcheck"), help("serve"));
    for variable in ["DBCERT_GRPC_LISTEN", "DBCERT_TLS_CERT_FILE"] {
        assert!(check.contains(variable), "healthcheck reads {variable}");
        assert!(serve.contains(variable), "serve reads {variable}");
    }
    for variable in [
        "DBCERT_HEALTHCHECK_CLIENT_CERT_FILE",
        "DBCERT_HEALTHCHECK_CLIENT_KEY_FILE",
    ] {
        assert!(check.contains(variable), "healthcheck reads {variable}");
        assert!(docker.contains(variable), "the Dockerfile names {variable}");
    }
}
