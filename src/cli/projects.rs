//! `dbcert projects create|list|ca` over `dbcert.v1.ProjectService` (`projects ca` and
//! `projects ca rotate` are in `ca.rs`).

use serde_json::json;

use super::connection::Connection;
use super::output::{list_json, print_json, print_table, timestamp};
use super::profile::Settings;
use super::{CaCommand, CliError, OutputFormat, PageArgs, ProjectsArgs, ProjectsCommand};
use crate::proto::v1::project_service_client::ProjectServiceClient;
use crate::proto::v1::{CreateProjectRequest, ListProjectsRequest, Project};

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
            command:
                Some(CaCommand::Rotate {
                    project,
                    ca_key_type,
                }),
            ..
        } => super::ca::rotate(&settings, &project, ca_key_type).await,
        ProjectsCommand::Ca {
            command: None,
            project,
            out,
            force,
        } => super::ca::bundle(&settings, &project, out, force).await,
    }
}

async fn list(settings: &Settings, page: &PageArgs) -> Result<(), CliError> {
    let connection = Connection::open(settings).await?;
    let response = ProjectServiceClient::new(connection.authed())
        .list_projects(ListProjectsRequest {
            page_num: page.page,
            items_per_page: page.limit,
            include_count: Some(!page.omit_count),
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
