//! `dbcert dbusers certs revoke|revoke-all` over `dbcert.v1.CertificateService`
//! (`RevokeUserCertificate`, `RevokeUserCertificates`).

use serde_json::{Value, json};

use super::connection::Connection;
use super::output::{print_json, print_table, timestamp, timestamp_text};
use super::profile::Settings;
use super::{CliError, OutputFormat, RevokeAllArgs, RevokeCertArgs};
use crate::proto::v1::certificate_service_client::CertificateServiceClient;
use crate::proto::v1::{
    RevocationReason, RevokeUserCertificateRequest, RevokeUserCertificatesRequest,
    UserCertificateStatus,
};

/// `dbcert dbusers certs revoke`.
pub async fn revoke(settings: &Settings, args: RevokeCertArgs) -> Result<(), CliError> {
    let group_id = settings.project_id(&args.project.project_id)?;
    let reason = reason(&args.reason)?;
    let connection = Connection::open(settings).await?;
    let response = CertificateServiceClient::new(connection.authed())
        .revoke_user_certificate(RevokeUserCertificateRequest {
            group_id,
            username: args.username,
            serial_number: args.serial_number,
            reason: reason as i32,
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    let certificate = response
        .certificate
        .ok_or_else(|| CliError::other("the server answered no certificate"))?;
    match settings.output {
        OutputFormat::Json => print_json(&status_json(&certificate)),
        OutputFormat::Human => {
            println!(
                "Certificate {} of {} revoked ({}).",
                certificate.serial_number,
                certificate.subject,
                reason_name(certificate.reason)
            );
            Ok(())
        }
    }
}

/// `dbcert dbusers certs revoke-all`.
pub async fn revoke_all(settings: &Settings, args: RevokeAllArgs) -> Result<(), CliError> {
    let group_id = settings.project_id(&args.project.project_id)?;
    let reason = reason(&args.reason)?;
    let connection = Connection::open(settings).await?;
    let response = CertificateServiceClient::new(connection.authed())
        .revoke_user_certificates(RevokeUserCertificatesRequest {
            group_id,
            username: args.username.clone(),
            reason: reason as i32,
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    match settings.output {
        OutputFormat::Json => print_json(&json!({
            "revoked": response.revoked.iter().map(status_json).collect::<Vec<_>>(),
        })),
        OutputFormat::Human => {
            println!(
                "{} certificate(s) of {} revoked ({}).",
                response.revoked.len(),
                args.username,
                args.reason
            );
            if !response.revoked.is_empty() {
                let mut rows = vec![vec![
                    "ID".to_owned(),
                    "SUBJECT".to_owned(),
                    "NOT AFTER".to_owned(),
                    "REVOKED AT".to_owned(),
                ]];
                rows.extend(response.revoked.iter().map(|cert| {
                    vec![
                        cert.serial_number.to_string(),
                        cert.subject.clone(),
                        timestamp_text(cert.not_after),
                        timestamp_text(cert.revoked_at),
                    ]
                }));
                print_table(&rows);
            }
            Ok(())
        }
    }
}

/// The protocol reason of an RFC 5280 name (clap has checked it is one).
fn reason(name: &str) -> Result<RevocationReason, CliError> {
    let snake: String = name
        .chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['_', c]
            } else {
                vec![c.to_ascii_uppercase()]
            }
        })
        .collect();
    RevocationReason::from_str_name(&format!("REVOCATION_REASON_{snake}"))
        .ok_or_else(|| CliError::usage(format!("unknown revocation reason {name}")))
}

/// The RFC 5280 name of a protocol reason.
fn reason_name(reason: i32) -> &'static str {
    let names = super::REVOCATION_REASONS;
    match RevocationReason::try_from(reason) {
        Ok(RevocationReason::KeyCompromise) => names[1],
        Ok(RevocationReason::CaCompromise) => names[2],
        Ok(RevocationReason::AffiliationChanged) => names[3],
        Ok(RevocationReason::Superseded) => names[4],
        Ok(RevocationReason::CessationOfOperation) => names[5],
        Ok(RevocationReason::PrivilegeWithdrawn) => names[6],
        Ok(RevocationReason::Unspecified) | Err(_) => names[0],
    }
}

fn status_json(cert: &UserCertificateStatus) -> Value {
    json!({
        "_id": cert.serial_number,
        "subject": cert.subject,
        "groupId": cert.group_id,
        "createdAt": timestamp(cert.created_at),
        "notAfter": timestamp(cert.not_after),
        "revokedAt": timestamp(cert.revoked_at),
        "revocationReason": reason_name(cert.reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_name_maps_to_its_protocol_value_and_back() {
        for name in super::super::REVOCATION_REASONS {
            let value = reason(name).unwrap_or_else(|_| panic!("{name}"));
            assert_eq!(reason_name(value as i32), name);
        }
        assert_eq!(
            reason("caCompromise").ok(),
            Some(RevocationReason::CaCompromise)
        );
    }
}
