//! dbcert: a self-hosted, Atlas-compatible issuer of X.509 client certificates for database
//! users, as a gRPC service with an Atlas REST gateway.
//!
//! Layout: [`domain`] is the core (no transport, no SQL); [`storage`] implements its store;
//! [`grpc`] adapts it to `dbcert.v1`; [`gateway`] maps Atlas HTTP onto those RPCs; [`auth`]
//! authenticates the requests of both; [`app`] builds the application from the configuration
//! and serves it (with `secrets`, `http_server` and `background`); [`config`] and
//! [`telemetry`] serve `main.rs`; [`cli`] is the command-line client (`dbcert projects`,
//! `dbcert dbusers`).

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
mod background;
pub mod cli;
pub mod client_ca;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod grpc;
pub mod healthcheck;
mod http_server;
pub mod keep_alive;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod proto;
pub mod refusals;
pub mod rotate;
mod secrets;
pub mod storage;
pub mod telemetry;
pub mod tls;
