//! The command-line client: `dbcert projects …` and `dbcert dbusers …`, modelled on the Atlas
//! CLI (`atlas projects`, `atlas dbusers`, `atlas dbusers certs`, with its flag spellings),
//! calling a server's gRPC API like any other client.
//!
//! - `connection.rs`: the server URL, TLS and mutual TLS, the channel and the `authorization`
//!   metadata;
//! - `profile.rs`: credentials and defaults from the environment or a profile file;
//! - `exit.rs`: the exit codes scripts rely on, and the mapping from gRPC statuses;
//! - `output.rs`: human and JSON output, and writing PEM files (0600, never over a file
//!   without `--force`);
//! - `projects.rs`, `dbusers.rs`, `certs.rs`: one file per resource.

mod ca;
mod certs;
mod connection;
mod dbusers;
mod exit;
mod output;
mod profile;
mod projects;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

pub use exit::{CliError, Exit};

use crate::domain::KeyType;

/// Flags every client command takes (before or after the subcommand).
#[derive(Clone, Debug, Args)]
pub struct ClientArgs {
    /// The server's gRPC URL: `http://HOST:PORT`, or `https://HOST:PORT` for TLS.
    /// Default: the profile's `server`, else http://127.0.0.1:50051.
    #[arg(long, env = "DBCERT_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The profile of the configuration file to use (default: `default`).
    #[arg(short = 'P', long, env = "DBCERT_PROFILE", global = true)]
    pub profile: Option<String>,
    /// The configuration file (default: $XDG_CONFIG_HOME/dbcert/config.toml, else
    /// ~/.config/dbcert/config.toml). It must be private to its owner (mode 0600).
    #[arg(long, env = "DBCERT_CONFIG_FILE", global = true)]
    pub config_file: Option<PathBuf>,
    /// Output format: `human` (the default) or `json` (stable field names, Atlas's).
    #[arg(short = 'o', long, value_enum, env = "DBCERT_OUTPUT", global = true)]
    pub output: Option<OutputFormat>,
    /// PEM CA certificates to verify an https:// server against (default: the Mozilla roots).
    #[arg(long, env = "DBCERT_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must hold (default: the URL's host).
    #[arg(long, env = "DBCERT_SERVER_NAME", global = true)]
    pub server_name: Option<String>,
    /// PEM client certificate for mutual TLS; a server with `--grpc-client-ca-file` then acts
    /// as the API key its subjectAltName URI `dbcert:api-key:<publicKey>` names (the subject
    /// is not read), and no API key is needed.
    #[arg(long, env = "DBCERT_CLIENT_CERT_FILE", global = true)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of --client-cert-file.
    #[arg(long, env = "DBCERT_CLIENT_KEY_FILE", global = true)]
    pub client_key_file: Option<PathBuf>,
}

/// An output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Lines and tables for people.
    #[default]
    Human,
    /// One JSON document on standard output, with the Atlas API's field names.
    Json,
}

/// `dbcert projects`.
#[derive(Debug, Args)]
pub struct ProjectsArgs {
    /// Connection, credentials and output.
    #[command(flatten, next_help_heading = "Connection and output")]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ProjectsCommand,
}

/// The `dbcert projects` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Creates a project (needs ORG_OWNER) and prints its id.
    Create {
        /// The project's name.
        project_name: String,
        /// The organization (default: the API key's).
        #[arg(long = "orgId")]
        org_id: Option<String>,
    },
    /// Lists the projects the API key can read.
    List(PageArgs),
    /// Prints the project's CA trust bundle (PEM), the `net.tls.CAFile` of mongod: the
    /// issuing CA, then any older CA while certificates it signed are live. It exists from the
    /// project's first certificate on. `projects ca rotate` rotates it.
    #[command(args_conflicts_with_subcommands = true)]
    Ca {
        /// `rotate`, or nothing to print the bundle.
        #[command(subcommand)]
        command: Option<CaCommand>,
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// Writes the bundle to this file (created 0600) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replaces an existing --out file.
        #[arg(long)]
        force: bool,
    },
}

/// The `dbcert projects ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Rotates the project's CA (needs GROUP_OWNER): a new CA issues from now on; older CAs
    /// stay in the trust bundle until their last certificate expires or is revoked. Prints the
    /// new CA.
    Rotate {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// The new CA's key type: RSA_4096, ECDSA_P256 or ECDSA_P384 (default: the project's
        /// current one).
        #[arg(long = "caKeyType", value_parser = parse_key_type)]
        ca_key_type: Option<KeyType>,
    },
}

/// `dbcert dbusers`.
#[derive(Debug, Args)]
pub struct DbusersArgs {
    /// Connection, credentials and output.
    #[command(flatten, next_help_heading = "Connection and output")]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: DbusersCommand,
}

/// The `dbcert dbusers` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbusersCommand {
    /// Creates a database user (needs GROUP_OWNER). X.509 users (the default, MANAGED) live on
    /// `$external`, others on `admin`.
    Create(CreateUserArgs),
    /// Lists a project's database users.
    List {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Deletes a database user (its certificates stay listed).
    Delete {
        /// The user's username.
        username: String,
        /// The user's authentication database.
        #[arg(long = "authDB", default_value = "$external")]
        auth_db: String,
        /// Deletes without asking (needed when standard input is not a terminal).
        #[arg(long)]
        force: bool,
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Atlas-managed X.509 certificates of database users.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// Flags of `dbcert dbusers create`.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// Atlas built-in roles to grant (`atlasAdmin`, `readWriteAnyDatabase`, `readAnyDatabase`),
    /// on `admin`.
    pub built_in_roles: Vec<String>,
    /// The user's username (the CN of its certificates).
    #[arg(short = 'u', long)]
    pub username: String,
    /// `MANAGED` (certificates from dbcert), `CUSTOMER` (from your own CA) or `NONE`.
    #[arg(long = "x509Type", default_value = "MANAGED", value_parser = ["MANAGED", "CUSTOMER", "NONE"])]
    pub x509_type: String,
    /// Roles as `roleName[@dbName[.collection]]` (dbName defaults to admin); repeatable or
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub role: Vec<String>,
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
}

/// The `dbcert dbusers certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Issues a certificate and private key for a MANAGED user and writes them, as mongod's
    /// `tlsCertificateKeyFile` (certificate, then key), to --out.
    Create(CreateCertArgs),
    /// Lists a user's unexpired certificates, oldest first.
    List {
        /// The user's username.
        username: String,
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
}

/// Flags of `dbcert dbusers certs create`.
#[derive(Debug, Args)]
pub struct CreateCertArgs {
    /// The database user's username.
    #[arg(long)]
    pub username: String,
    /// Months until the certificate expires: 1 to 24 (default 3).
    #[arg(long = "monthsUntilExpiration", value_name = "N")]
    pub months_until_expiration: Option<i64>,
    /// The private key's type: RSA_4096 (the default, as Atlas), RSA_2048, RSA_3072,
    /// ECDSA_P256, ECDSA_P384.
    #[arg(long = "keyType", value_parser = parse_key_type)]
    pub key_type: Option<KeyType>,
    /// Where to write the certificate and private key: a file (created 0600, never over an
    /// existing one without --force), or `-` for standard output. Required: the key exists only
    /// in this answer.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replaces an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
}

/// The project a command acts on.
#[derive(Clone, Debug, Args)]
pub struct ProjectArg {
    /// The project (group) id, 24 hexadecimal characters. Default: the profile's `project_id`.
    #[arg(long = "projectId", env = "DBCERT_PROJECT_ID")]
    pub project_id: Option<String>,
}

/// Paging flags of list commands (Atlas's).
#[derive(Clone, Debug, Args)]
pub struct PageArgs {
    /// The page to return, from 1.
    #[arg(long, default_value_t = 1)]
    pub page: i32,
    /// Items per page, 1 to 500.
    #[arg(long, default_value_t = 100)]
    pub limit: i32,
    /// Does not count the results (no `totalCount`).
    #[arg(long = "omitCount")]
    pub omit_count: bool,
}

/// Runs `dbcert projects …`.
pub async fn run_projects(args: ProjectsArgs) -> ExitCode {
    finish(projects::run(args).await)
}

/// Runs `dbcert dbusers …`.
pub async fn run_dbusers(args: DbusersArgs) -> ExitCode {
    finish(dbusers::run(args).await)
}

/// Reports an error on stderr and turns the outcome into the process's exit code.
fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit().into()
        }
    }
}

fn parse_key_type(value: &str) -> Result<KeyType, String> {
    KeyType::ALL
        .iter()
        .copied()
        .find(|t| t.as_str().eq_ignore_ascii_case(value))
        .ok_or_else(|| {
            let names: Vec<&str> = KeyType::ALL.iter().map(|t| t.as_str()).collect();
            format!("expected one of {}", names.join(", "))
        })
}
