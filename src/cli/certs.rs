//! `dbcert dbusers certs create|list` (`revoke`, `revoke-all`: `revoke.rs`) over `dbcert.v1.CertificateService`.
//!
//! `create` writes the certificate and then the private key (mongod's
//! `tlsCertificateKeyFile`) to `--out FILE`, created 0600 and never over an existing file
//! without `--force`, or to standard output with `--out -`. The key is never printed
//! otherwise, and never in the JSON or human summary. With `--csr FILE` the certificate is for
//! the request's key and is written alone, the same way.

use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::json;
use tonic_types::StatusExt as _;
use zeroize::Zeroizing;

use super::connection::Connection;
use super::output::{OutFile, list_json, print_json, print_table, timestamp, timestamp_text};
use super::profile::Settings;
use super::{CertsCommand, CliError, CreateCertArgs, Exit, OutputFormat};
use crate::domain::MAX_CSR_PEM_BYTES;
use crate::proto::v1::certificate_service_client::CertificateServiceClient;
use crate::proto::v1::{CreateUserCertificateRequest, KeyType, ListUserCertificatesRequest};

/// Runs a `dbcert dbusers certs` subcommand.
pub async fn run(settings: &Settings, command: CertsCommand) -> Result<(), CliError> {
    match command {
        CertsCommand::Create(args) => create(settings, args).await,
        CertsCommand::Revoke(args) => super::revoke::revoke(settings, args).await,
        CertsCommand::RevokeAll(args) => super::revoke::revoke_all(settings, args).await,
        CertsCommand::List {
            username,
            project,
            page,
        } => {
            let group_id = settings.project_id(&project.project_id)?;
            let connection = Connection::open(settings).await?;
            let response = CertificateServiceClient::new(connection.authed())
                .list_user_certificates(ListUserCertificatesRequest {
                    group_id,
                    username,
                    page_num: page.page,
                    items_per_page: page.limit,
                    include_count: Some(!page.omit_count),
                })
                .await
                .map_err(|s| connection.error(&s))?
                .into_inner();
            match settings.output {
                OutputFormat::Json => print_json(&list_json(
                    response
                        .results
                        .iter()
                        .map(|cert| {
                            json!({
                                "_id": cert.serial_number,
                                "createdAt": timestamp(cert.created_at),
                                "groupId": cert.group_id,
                                "notAfter": timestamp(cert.not_after),
                                "subject": cert.subject,
                            })
                        })
                        .collect(),
                    response.total_count,
                )),
                OutputFormat::Human => {
                    let mut rows = vec![vec![
                        "ID".to_owned(),
                        "SUBJECT".to_owned(),
                        "CREATED AT".to_owned(),
                        "NOT AFTER".to_owned(),
                    ]];
                    rows.extend(response.results.iter().map(|cert| {
                        vec![
                            cert.serial_number.to_string(),
                            cert.subject.clone(),
                            timestamp_text(cert.created_at),
                            timestamp_text(cert.not_after),
                        ]
                    }));
                    print_table(&rows);
                    Ok(())
                }
            }
        }
    }
}

/// Where the certificate and key go.
enum Destination {
    File(OutFile),
    Stdout,
}

async fn create(settings: &Settings, args: CreateCertArgs) -> Result<(), CliError> {
    let group_id = settings.project_id(&args.project.project_id)?;
    // Checked before the call: a certificate issued with nowhere to put its key would count
    // against the user's limit for nothing.
    let destination = match args.out.as_deref() {
        None if args.csr.is_some() => {
            return Err(CliError::usage(
                "no --out: give --out FILE (created 0600) or --out - (standard output) for the \
                 certificate",
            ));
        }
        None => {
            return Err(CliError::usage(
                "no --out: the private key exists only in this answer; give --out FILE (created \
                 0600) or --out - (standard output)",
            ));
        }
        Some(path) if path.as_os_str() == "-" => {
            if settings.output == OutputFormat::Json {
                return Err(CliError::usage(
                    "--out - puts the PEM on standard output, where --output json would go: \
                     give --out FILE",
                ));
            }
            Destination::Stdout
        }
        Some(path) => Destination::File(OutFile::check(path, args.force)?),
    };
    let key_type = match args.key_type {
        None => KeyType::Unspecified,
        Some(key_type) => KeyType::from_str_name(&format!("KEY_TYPE_{}", key_type.as_str()))
            .ok_or_else(|| {
                CliError::other(format!("no protocol key type {}", key_type.as_str()))
            })?,
    };
    let csr_pem = args.csr.as_deref().map(read_csr).transpose()?;
    let connection = Connection::open(settings).await?;
    let response = CertificateServiceClient::new(connection.authed())
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group_id.clone(),
            username: args.username.clone(),
            months_until_expiration: args.months_until_expiration,
            key_type: key_type as i32,
            csr_pem,
        })
        .await
        .map_err(|status| {
            let error = connection.error(&status);
            if !may_have_issued(&status) {
                return error;
            }
            CliError::new(
                error.exit(),
                format!(
                    "{error} (the server may have issued the certificate before the answer was \
                     lost: check `dbcert dbusers certs list {} --projectId {group_id}` before \
                     retrying, as each certificate counts against the user's limit)",
                    args.username
                ),
            )
        })?
        .into_inner();
    let mut pem = Zeroizing::new(String::with_capacity(
        response.certificate_pem.len() + response.private_key_pem.len() + 1,
    ));
    pem.push_str(&response.certificate_pem);
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&response.private_key_pem);
    let file = match &destination {
        Destination::Stdout => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(pem.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::other(format!("cannot write to standard output: {e}")))?;
            return Ok(());
        }
        Destination::File(out) => {
            out.write(pem.as_bytes()).map_err(|failure| {
                let fate = if failure.kept().is_some() {
                    "keep that file private"
                } else {
                    "its key is lost, so issue another"
                };
                CliError::new(
                    failure.error().exit(),
                    format!(
                        "{} (certificate {} was issued; {fate})",
                        failure.error(),
                        response.serial_number
                    ),
                )
            })?;
            out.path().display().to_string()
        }
    };
    match settings.output {
        OutputFormat::Json => print_json(&json!({
            "_id": response.serial_number,
            "subject": response.subject,
            "groupId": group_id,
            "username": args.username,
            "notBefore": timestamp(response.not_before),
            "notAfter": timestamp(response.not_after),
            "file": file,
        })),
        OutputFormat::Human => {
            let what = if response.private_key_pem.is_empty() {
                ""
            } else {
                " and its private key"
            };
            println!(
                "Certificate {} for {} (valid until {}){what} written to {file}",
                response.serial_number,
                response.subject,
                timestamp_text(response.not_after)
            );
            Ok(())
        }
    }
}

/// Reads a `--csr` file, refusing one larger than the server accepts before reading it all.
fn read_csr(path: &Path) -> Result<String, CliError> {
    let unreadable =
        |e: std::io::Error| CliError::usage(format!("cannot read --csr {}: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(MAX_CSR_PEM_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() > MAX_CSR_PEM_BYTES {
        return Err(CliError::usage(format!(
            "--csr {} is larger than {MAX_CSR_PEM_BYTES} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// Whether a failed `CreateUserCertificate` may still have issued a certificate: a failure of
/// the transport or a timeout (exit 6) can come after the server committed it, unless the server
/// answered that it throttled the call (`RATE_LIMITED`), which it decides first.
fn may_have_issued(status: &tonic::Status) -> bool {
    let throttled = status
        .get_error_details()
        .error_info()
        .is_some_and(|info| info.reason == "RATE_LIMITED");
    !throttled && CliError::from_status(status, "").exit() == Exit::Unavailable
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn a_lost_answer_may_have_issued_a_certificate_a_refusal_did_not() {
        let with_code = |code: Code, error_code: &str| {
            let details = ErrorDetails::with_error_info(error_code, "dbcert", []);
            Status::with_error_details(code, "detail", details)
        };
        assert!(may_have_issued(&Status::deadline_exceeded("timeout")));
        assert!(may_have_issued(&Status::unavailable("connection reset")));
        assert!(may_have_issued(&with_code(
            Code::DeadlineExceeded,
            "TIMEOUT"
        )));
        assert!(!may_have_issued(&with_code(
            Code::ResourceExhausted,
            "RATE_LIMITED"
        )));
        assert!(!may_have_issued(&with_code(
            Code::NotFound,
            "USER_NOT_FOUND"
        )));
        assert!(!may_have_issued(&with_code(
            Code::ResourceExhausted,
            "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED"
        )));
    }
}
