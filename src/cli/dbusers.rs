//! `dbcert dbusers create|list|delete` over `dbcert.v1.DatabaseUserService`, with the Atlas
//! CLI's arguments: built-in roles as positional arguments, `--role roleName[@dbName[.coll]]`,
//! `--x509Type`, `--description`, `--deleteAfter`, `--authDB`, `--force`. `dbcert dbusers certs …` is in `certs.rs`.

use std::io::IsTerminal as _;

use serde_json::json;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::connection::Connection;
use super::output::{list_json, print_json, print_table};
use super::profile::Settings;
use super::{CliError, CreateUserArgs, DbusersArgs, DbusersCommand, OutputFormat, PageArgs};
use crate::proto::v1::database_user_service_client::DatabaseUserServiceClient;
use crate::proto::v1::{
    CreateDatabaseUserRequest, DatabaseUser, DatabaseUserRole, DeleteDatabaseUserRequest,
    ListDatabaseUsersRequest, X509Type,
};

/// Atlas's built-in roles, which `atlas dbusers create` takes as arguments (granted on admin).
const BUILT_IN_ROLES: [&str; 3] = ["atlasAdmin", "readWriteAnyDatabase", "readAnyDatabase"];

/// Runs a `dbcert dbusers` subcommand.
pub async fn run(args: DbusersArgs) -> Result<(), CliError> {
    let settings = Settings::resolve(&args.client)?;
    match args.command {
        DbusersCommand::Create(create_args) => create(&settings, create_args).await,
        DbusersCommand::List { project, page } => {
            let group_id = settings.project_id(&project.project_id)?;
            list(&settings, group_id, &page).await
        }
        DbusersCommand::Delete {
            username,
            auth_db,
            force,
            project,
        } => {
            let group_id = settings.project_id(&project.project_id)?;
            // A "no" is not a success: a script's `dbcert dbusers delete … && next` stops.
            if !force && !confirm(&format!("Are you sure you want to delete: {username}"))? {
                return Err(CliError::usage(format!(
                    "not deleted: {username} not confirmed"
                )));
            }
            let connection = Connection::open(&settings).await?;
            DatabaseUserServiceClient::new(connection.authed())
                .delete_database_user(DeleteDatabaseUserRequest {
                    group_id: group_id.clone(),
                    database_name: auth_db.clone(),
                    username: username.clone(),
                })
                .await
                .map_err(|s| connection.error(&s))?;
            match settings.output {
                OutputFormat::Json => print_json(&json!({
                    "groupId": group_id,
                    "databaseName": auth_db,
                    "username": username,
                    "deleted": true,
                })),
                OutputFormat::Human => {
                    println!("DB user '{username}' deleted");
                    Ok(())
                }
            }
        }
        DbusersCommand::Certs { command } => super::certs::run(&settings, command).await,
    }
}

async fn create(settings: &Settings, args: CreateUserArgs) -> Result<(), CliError> {
    let group_id = settings.project_id(&args.project.project_id)?;
    let x509_type = X509Type::from_str_name(&args.x509_type)
        .ok_or_else(|| CliError::usage(format!("unknown --x509Type {}", args.x509_type)))?;
    let mut roles = Vec::new();
    for name in &args.built_in_roles {
        if !BUILT_IN_ROLES.contains(&name.as_str()) {
            return Err(CliError::usage(format!(
                "unknown built-in role {name:?}: expected one of {} (other roles go in --role)",
                BUILT_IN_ROLES.join(", ")
            )));
        }
        roles.push(role(name, "admin", ""));
    }
    for spec in &args.role {
        roles.push(parse_role(spec)?);
    }
    let delete_after_date = args
        .delete_after
        .as_deref()
        .map(|value| {
            OffsetDateTime::parse(value, &Rfc3339)
                .or_else(|_| {
                    PrimitiveDateTime::parse(value, &Iso8601::DEFAULT)
                        .map(PrimitiveDateTime::assume_utc)
                })
                .map(|at| prost_types::Timestamp {
                    seconds: at.unix_timestamp(),
                    nanos: 0,
                })
                .map_err(|_| CliError::usage(format!("--deleteAfter {value:?} is not ISO 8601")))
        })
        .transpose()?;
    let database_name = match x509_type {
        X509Type::None | X509Type::Unspecified => "admin",
        X509Type::Managed | X509Type::Customer => "$external",
    };
    let connection = Connection::open(settings).await?;
    let user = DatabaseUserServiceClient::new(connection.authed())
        .create_database_user(CreateDatabaseUserRequest {
            group_id,
            username: args.username,
            database_name: database_name.to_owned(),
            x509_type: x509_type as i32,
            roles,
            description: args.description.unwrap_or_default(),
            delete_after_date,
            ..Default::default()
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    match settings.output {
        OutputFormat::Json => print_json(&user_json(&user)),
        OutputFormat::Human => {
            println!("Database user '{}' successfully created.", user.username);
            Ok(())
        }
    }
}

async fn list(settings: &Settings, group_id: String, page: &PageArgs) -> Result<(), CliError> {
    let connection = Connection::open(settings).await?;
    let response = DatabaseUserServiceClient::new(connection.authed())
        .list_database_users(ListDatabaseUsersRequest {
            group_id,
            page_num: page.page,
            items_per_page: page.limit,
            include_count: Some(!page.omit_count),
        })
        .await
        .map_err(|s| connection.error(&s))?
        .into_inner();
    match settings.output {
        OutputFormat::Json => print_json(&list_json(
            response.results.iter().map(user_json).collect(),
            response.total_count,
        )),
        OutputFormat::Human => {
            let mut rows = vec![vec![
                "USERNAME".to_owned(),
                "DATABASE".to_owned(),
                "X509TYPE".to_owned(),
                "ROLES".to_owned(),
            ]];
            rows.extend(response.results.iter().map(|user| {
                vec![
                    user.username.clone(),
                    user.database_name.clone(),
                    x509_type_name(user.x509_type).to_owned(),
                    user.roles
                        .iter()
                        .map(role_text)
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            }));
            print_table(&rows);
            Ok(())
        }
    }
}

/// Asks on the terminal; without one, refuses (scripts say `--force`).
fn confirm(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "not deleting without confirmation: standard input is not a terminal; give --force",
        ));
    }
    eprint!("? {question}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::other(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Parses `roleName[@dbName[.collection]]`; the database defaults to admin.
fn parse_role(spec: &str) -> Result<DatabaseUserRole, CliError> {
    let (name, rest) = spec.split_once('@').unwrap_or((spec, "admin"));
    let (database, collection) = rest.split_once('.').unwrap_or((rest, ""));
    if name.is_empty() || database.is_empty() {
        return Err(CliError::usage(format!(
            "invalid --role {spec:?}: expected roleName[@dbName[.collection]]"
        )));
    }
    Ok(role(name, database, collection))
}

fn role(name: &str, database: &str, collection: &str) -> DatabaseUserRole {
    DatabaseUserRole {
        database_name: database.to_owned(),
        role_name: name.to_owned(),
        collection_name: collection.to_owned(),
    }
}

fn role_text(role: &DatabaseUserRole) -> String {
    if role.collection_name.is_empty() {
        format!("{}@{}", role.role_name, role.database_name)
    } else {
        format!(
            "{}@{}.{}",
            role.role_name, role.database_name, role.collection_name
        )
    }
}

fn x509_type_name(value: i32) -> &'static str {
    match X509Type::try_from(value).unwrap_or_default() {
        X509Type::Unspecified | X509Type::None => "NONE",
        X509Type::Managed => "MANAGED",
        X509Type::Customer => "CUSTOMER",
    }
}

/// A database user as the Atlas API shows it.
fn user_json(user: &DatabaseUser) -> serde_json::Value {
    let roles: Vec<serde_json::Value> = user
        .roles
        .iter()
        .map(|role| {
            let mut value = json!({
                "databaseName": role.database_name,
                "roleName": role.role_name,
            });
            if !role.collection_name.is_empty() {
                value["collectionName"] = json!(role.collection_name);
            }
            value
        })
        .collect();
    let mut value = json!({
        "groupId": user.group_id,
        "username": user.username,
        "databaseName": user.database_name,
        "x509Type": x509_type_name(user.x509_type),
        "roles": roles,
    });
    if !user.description.is_empty() {
        value["description"] = json!(user.description);
    }
    if let Some(at) = user
        .delete_after_date
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
    {
        value["deleteAfterDate"] = json!(at);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_as_the_atlas_cli_spells_them() {
        let r = parse_role("readWrite@sales.orders").unwrap();
        assert_eq!(
            (
                r.role_name.as_str(),
                r.database_name.as_str(),
                r.collection_name.as_str()
            ),
            ("readWrite", "sales", "orders")
        );
        let r = parse_role("readAnyDatabase").unwrap();
        assert_eq!(r.database_name, "admin");
        assert_eq!(role_text(&parse_role("read@db").unwrap()), "read@db");
        assert!(parse_role("@db").is_err());
        assert!(parse_role("read@").is_err());
    }
}
