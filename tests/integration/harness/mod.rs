//! The harness every integration test uses: the server in-process ([`server`]) or as the real
//! binary ([`binary`]), a TCP front door bound before a server starts ([`front_door`]), gRPC
//! clients with API keys ([`clients`]), an HTTP Digest client for the Atlas gateway
//! ([`atlas`]), fresh PostgreSQL databases ([`pg`]), and external tools with the rule for
//! skipping a test when one is missing ([`tools`]).

pub mod atlas;
pub mod binary;
pub mod clients;
pub mod front_door;
pub mod pg;
pub mod server;
pub mod tools;

pub use clients::{Clients, Key, assert_error, error_code};
pub use server::{TestServer, tls_connect, tls_connector};
pub use tools::{openssl, skip_missing_tool, write};

/// Takes group and other permissions away from `dir` if it exists: the server refuses a data
/// directory open to others, and `tempfile::tempdir()` follows the umask (often 0755).
pub fn private_dir(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if dir.is_dir() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
