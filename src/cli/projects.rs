//! `dbcert projects create|list|ca` over `dbcert.v1.ProjectService` and
//! `CertificateService/GetProjectCaCertificate`.

use serde_json::json;

use super::connection::Connection;
use super::output::{OutFile, list_json, print_json, print_table, timestamp, timestamp_text};
use super::profile::Settings;
use super::{CliError, OutputFormat, PageArgs, ProjectsArgs, ProjectsCommand};
use crate::proto::v1::certificate_service_client::CertificateServiceClient;
use crate::proto::v1::project_service_client::ProjectServiceClient;
use crate::proto::v1::{
    CreateProjectRequest, GetProjectCaCertificateRequest, ListProjectsRequest, Project,
};

/// Runs a `dbcert projects` subcommand.
pub async fn run(args: ProjectsArgs) -> Result<(), CliError> {
    let settings = Settings::resolve(&args.client)?;
    match args.command {
        ProjectsCommand::Create {
            project_name,
            org_id,
        } => {
            let connection = Connection::open(&settings).await?;
            let project = ProjectServiceClient::new(connection.authed())
                .create_project(CreateProjectRequest {
                    name: project_name,
                    org_id: org_id.unwrap_or_default(),
                })
                .await
                .map_err(|s| connection.error(&s))?
                .into_inner();
            match settings.output {
                OutputFormat::Json => print_json(&project_json(&project)),
                OutputFormat::Human => {
                    println!("Project '{}' created.", project.id);
                    Ok(())
                }
            }
        }
        ProjectsCommand::List(page) => list(&settings, &page).await,
        ProjectsCommand::Ca {
            project,
            out,
            force,
        } => {
            let group_id = settings.project_id(&project.project_id)?;
            let out = out.map(|path| OutFile::check(&path, force)).transpose()?;
            let connection = Connection::open(&settings).await?;
            let ca = CertificateServiceClient::new(connection.authed())
                .get_project_ca_certificate(GetProjectCaCertificateRequest {
                    group_id: group_id.clone(),
                })
                .await
                .map_err(|s| connection.error(&s))?
                .into_inner();
            if let Some(out) = &out {
                out.write(ca.certificate_pem.as_bytes())?;
            }
            match (settings.output, &out) {
                (OutputFormat::Json, _) => print_json(&json!({
                    "groupId": group_id,
                    "subject": ca.subject,
                    "notBefore": timestamp(ca.not_before),
                    "notAfter": timestamp(ca.not_after),
                    "certificatePem": ca.certificate_pem,
                    "file": out.as_ref().map(|o| o.path().display().to_string()),
                })),
                (OutputFormat::Human, Some(out)) => {
                    println!(
                        "CA certificate of project '{group_id}' ({}, valid until {}) written \
                         to {}",
                        ca.subject,
                        timestamp_text(ca.not_after),
                        out.path().display()
                    );
                    Ok(())
                }
                (OutputFormat::Human, None) => {
                    print!("{}", ca.certificate_pem);
                    Ok(())
                }
            }
        }
    }
}

async fn list(settings: &Settings, page: &PageArgs) -> Result<(), CliError> {
    let connection = Connection::open(settings).await?;
    let response = ProjectServiceClient::new(connection.authed())
        .list_projects(ListProjectsRequest {
            page_num: page.page,
            items_per_page: page.limit,
            include_count: Some(!page.omit_count),
            org_id: String::new(),
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    match settings.output {
        OutputFormat::Json => print_json(&list_json(
            response.results.iter().map(project_json).collect(),
            response.total_count,
        )),
        OutputFormat::Human => {
            let mut rows = vec![vec!["ID".to_owned(), "NAME".to_owned()]];
            rows.extend(
                response
                    .results
                    .into_iter()
                    .map(|project| vec![project.id, project.name]),
            );
            print_table(&rows);
            Ok(())
        }
    }
}

/// A project as the Atlas API shows it.
fn project_json(project: &Project) -> serde_json::Value {
    json!({
        "id": project.id,
        "name": project.name,
        "orgId": project.org_id,
        "created": timestamp(project.created),
        "clusterCount": project.cluster_count,
    })
}
