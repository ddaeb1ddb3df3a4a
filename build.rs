//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system `protoc` is
//! needed) and writes the encoded descriptor set into `OUT_DIR` for server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// The protos of the public API, in dependency order.
const PROTOS: &[&str] = &[
    "dbcert/v1/api_key_service.proto",
    "dbcert/v1/audit_service.proto",
    "dbcert/v1/certificate_service.proto",
    "dbcert/v1/database_user_service.proto",
    "dbcert/v1/organization_service.proto",
    "dbcert/v1/project_service.proto",
    "dbcert/v1/user_security_service.proto",
];

/// Messages that carry private keys: their `Debug` is written by hand in `src/proto.rs`.
const SECRET_MESSAGES: &[&str] = &[
    "dbcert.v1.ApiKey",
    "dbcert.v1.CreateUserCertificateResponse",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");

    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("dbcert_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES.iter().copied())
        .compile_fds(fds)?;
    Ok(())
}
