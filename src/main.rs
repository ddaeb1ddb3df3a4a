//! The `dbcert` binary: parses the command line and runs a subcommand.

use std::process::ExitCode;

use clap::Parser as _;
use dbcert::config::{Cli, Command, LogFormat};
use dbcert::{app, cli, healthcheck, rotate, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let _log = telemetry::init(args.log_format);
            let (grpc_addr, http_addr) = (args.grpc_listen, args.http_listen);
            let metrics_addr = args.metrics_listen;
            let result = async {
                let config = args.into_config()?;
                let mut listeners = app::bind(grpc_addr, http_addr).await?;
                if let Some(addr) = metrics_addr {
                    listeners.metrics = Some(app::bind_metrics(addr).await?);
                }
                app::serve(config, listeners, app::shutdown_signal()).await
            }
            .await;
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "dbcert failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Healthcheck(args) => healthcheck::run(args).await,
        Command::RotateMasterKey(args) => {
            let _log = telemetry::init(LogFormat::Plain);
            rotate::run(args).await
        }
        Command::Projects(args) => cli::run_projects(args).await,
        Command::Dbusers(args) => cli::run_dbusers(args).await,
    }
}
