//! The integration tests: one test crate, so the harness and the server's dependencies (tonic,
//! axum, sqlx, aws-lc) are compiled and linked once, with one module per topic.
//!
//! The modules run the real server, in-process on pre-bound `127.0.0.1:0` listeners
//! ([`harness::server`]) or as the real binary reporting the addresses it bound
//! ([`harness::binary`]); `storage_conformance` runs the stores alone and `dockerfile` reads
//! the Dockerfile. `cargo test --locked` runs them all; `cargo test --locked --test
//! integration <module>::` runs one topic.

// Tests and their harness unwrap: a panic is the test failing.
#![allow(clippy::unwrap_used)]

mod harness;

// Over gRPC (and both protocols where a limit or the audit trail spans them).
mod api_key_access_list;
mod atlas_events;
mod audit_retention;
mod audit_trail;
mod ca_rotation;
mod crl_ocsp;
mod deadlines;
mod grpc_create_user_certificate;
mod grpc_errors_and_roles;
mod health_and_reflection;
mod key_types_and_pool;
mod limits_and_throttling;
mod readme_quick_start;
mod sec_auth;
mod sec_cap;
mod sec_links;
mod sec_state;
mod trusted_proxies;

// The Atlas REST gateway (and dbcert's own routes beside it).
mod atlas_clients;
mod csr_issuance;
mod gateway_api_keys;
mod gateway_atlas_certs;
mod gateway_atlas_resources;
mod gateway_digest;
mod gateway_organizations;
mod gateway_real_clients;
mod gateway_resources;
mod gateway_router;
mod gateway_user_attributes;
mod hostile_inputs;
mod leaf_revocation_pointers;
mod openapi_contract;
mod proptest_gateway;
mod sec_input;
mod sec_keep_alive;

// TLS, the server's life, master keys, and the real binary.
mod ca_rotation_replicas;
mod cli;
mod crash;
mod lifecycle;
mod log_scan;
mod master_key_rotation;
mod metrics;
mod replicas;
mod revocation;
mod sec_files;
mod sec_mtls;
mod tls;

// Storage, operations and the repository.
mod deploy_proxy;
mod dockerfile;
mod operations_backup;
mod storage_conformance;
