//! `dbcert projects ca` (the trust bundle, `GetProjectCaCertificate`) and `dbcert projects ca
//! rotate` (`RotateProjectCa`).

use std::path::PathBuf;

use serde_json::json;

use super::connection::Connection;
use super::output::{OutFile, print_json, timestamp, timestamp_text};
use super::profile::Settings;
use super::{CliError, OutputFormat, ProjectArg};
use crate::domain::KeyType;
use crate::proto::v1::certificate_service_client::CertificateServiceClient;
use crate::proto::v1::{self, GetProjectCaCertificateRequest, RotateProjectCaRequest};

/// `dbcert projects ca`: the trust bundle, PEM, on standard output or in `--out`.
pub async fn bundle(
    settings: &Settings,
    project: &ProjectArg,
    out: Option<PathBuf>,
    force: bool,
) -> Result<(), CliError> {
    let group_id = settings.project_id(&project.project_id)?;
    let out = out.map(|path| OutFile::check(&path, force)).transpose()?;
    let connection = Connection::open(settings).await?;
    let ca = CertificateServiceClient::new(connection.authed())
        .get_project_ca_certificate(GetProjectCaCertificateRequest {
            group_id: group_id.clone(),
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    if let Some(out) = &out {
        out.write(ca.bundle_pem.as_bytes())?;
    }
    match (settings.output, &out) {
        (OutputFormat::Json, _) => print_json(&json!({
            "groupId": group_id,
            "generation": ca.generation,
            "subject": ca.subject,
            "notBefore": timestamp(ca.not_before),
            "notAfter": timestamp(ca.not_after),
            "certificatePem": ca.certificate_pem,
            "trustBundle": ca.trust_bundle.iter().map(ca_json).collect::<Vec<_>>(),
            "bundlePem": ca.bundle_pem,
            "file": out.as_ref().map(|o| o.path().display().to_string()),
        })),
        (OutputFormat::Human, Some(out)) => {
            println!(
                "CA trust bundle of project '{group_id}' ({} CA{}; issuing: generation {}, {}, \
                 valid until {}) written to {}",
                ca.trust_bundle.len(),
                if ca.trust_bundle.len() == 1 { "" } else { "s" },
                ca.generation,
                ca.subject,
                timestamp_text(ca.not_after),
                out.path().display()
            );
            Ok(())
        }
        (OutputFormat::Human, None) => {
            print!("{}", ca.bundle_pem);
            Ok(())
        }
    }
}

/// `dbcert projects ca rotate`: a new issuing CA.
pub async fn rotate(
    settings: &Settings,
    project: &ProjectArg,
    ca_key_type: Option<KeyType>,
) -> Result<(), CliError> {
    let group_id = settings.project_id(&project.project_id)?;
    let ca_key_type = match ca_key_type {
        None => v1::KeyType::Unspecified,
        Some(key_type) => v1::KeyType::from_str_name(&format!("KEY_TYPE_{}", key_type.as_str()))
            .ok_or_else(|| {
                CliError::other(format!("no protocol key type {}", key_type.as_str()))
            })?,
    };
    let connection = Connection::open(settings).await?;
    let rotated = CertificateServiceClient::new(connection.authed())
        .rotate_project_ca(RotateProjectCaRequest {
            group_id: group_id.clone(),
            ca_key_type: ca_key_type as i32,
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    let ca = rotated.ca.unwrap_or_default();
    match settings.output {
        OutputFormat::Json => {
            let mut answer = ca_json(&ca);
            answer["groupId"] = json!(group_id);
            print_json(&answer)
        }
        OutputFormat::Human => {
            println!(
                "CA of project '{group_id}' rotated: generation {} ({}, valid until {}) issues \
                 from now on. Give mongod the new trust bundle: dbcert projects ca --projectId \
                 {group_id} --out FILE",
                ca.generation,
                ca.subject,
                timestamp_text(ca.not_after),
            );
            Ok(())
        }
    }
}

fn ca_json(ca: &v1::ProjectCaCertificate) -> serde_json::Value {
    json!({
        "generation": ca.generation,
        "subject": ca.subject,
        "notBefore": timestamp(ca.not_before),
        "notAfter": timestamp(ca.not_after),
        "certificatePem": ca.certificate_pem,
    })
}
