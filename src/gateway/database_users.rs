//! Database users: `GET`/`POST /groups/{groupId}/databaseUsers` and `GET`/`PATCH`/`DELETE
//! /groups/{groupId}/databaseUsers/{databaseName}/{username}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson, Nested, NotUsed, X509TypeName};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, entity, list, rpc, segment, self_link, timestamp};
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::database_user_service_server::DatabaseUserService;

/// The routes under one API version's prefix. `{first}` is the database name here and the
/// username in the certificates' path: the router needs one name per position.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route(
            "/groups/{group_id}/databaseUsers",
            get(list_users).post(create_user),
        )
        .route(
            "/groups/{group_id}/databaseUsers/{first}/{second}",
            get(get_user).patch(update_user).delete(delete_user),
        )
}

/// The body of `POST …/databaseUsers`, attributes in the order they are checked: Atlas
/// attributes for authentication methods dbcert does not offer (accepted only with their "not
/// used" value, so a user read from Atlas's API can be sent back), the descriptive attributes
/// (stored and returned), the read-only `links` (ignored), then the user.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewDatabaseUser {
    #[serde(rename = "awsIAMType")]
    aws_iam_type: Option<NotUsed>,
    ldap_auth_type: Option<NotUsed>,
    oidc_auth_type: Option<NotUsed>,
    #[schemars(length(max = 100))]
    description: Option<String>,
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    delete_after_date: Option<String>,
    labels: Option<Vec<Nested<Label>>>,
    scopes: Option<Vec<Nested<Scope>>>,
    #[schemars(with = "Option<serde_json::Value>")]
    links: Option<IgnoredAny>,
    group_id: Option<String>,
    x509_type: Option<X509TypeName>,
    #[schemars(required, length(min = 1))]
    username: Option<String>,
    #[schemars(required)]
    database_name: Option<String>,
    roles: Option<Vec<Nested<Role>>>,
}

impl AtlasBody for NewDatabaseUser {
    const PATH_ATTRIBUTES: &'static [(&'static str, &'static str)] = &[("groupId", "group_id")];
    /// readOnly in the spec's `CloudDatabaseUser`.
    const READ_ONLY: &'static [&'static str] = &["links"];
}

/// The body of `PATCH …/databaseUsers/{databaseName}/{username}`: the attributes of
/// [`NewDatabaseUser`], those naming the user checked against the path before `x509Type`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct DatabaseUserChanges {
    #[serde(rename = "awsIAMType")]
    aws_iam_type: Option<NotUsed>,
    ldap_auth_type: Option<NotUsed>,
    oidc_auth_type: Option<NotUsed>,
    #[schemars(length(max = 100))]
    description: Option<String>,
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    delete_after_date: Option<String>,
    labels: Option<Vec<Nested<Label>>>,
    scopes: Option<Vec<Nested<Scope>>>,
    #[schemars(with = "Option<serde_json::Value>")]
    links: Option<IgnoredAny>,
    group_id: Option<String>,
    database_name: Option<String>,
    username: Option<String>,
    x509_type: Option<X509TypeName>,
    roles: Option<Vec<Nested<Role>>>,
}

impl AtlasBody for DatabaseUserChanges {
    const PATH_ATTRIBUTES: &'static [(&'static str, &'static str)] = &[
        ("groupId", "group_id"),
        ("databaseName", "first"),
        ("username", "second"),
    ];
    /// readOnly in the spec's `CloudDatabaseUser`.
    const READ_ONLY: &'static [&'static str] = &["links"];
}

/// A role in a database user body (the spec's `DatabaseUserRole` has no readOnly attribute).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    #[schemars(required, length(min = 1))]
    database_name: Option<String>,
    #[schemars(required, length(min = 1))]
    role_name: Option<String>,
    collection_name: Option<String>,
}

impl AtlasBody for Role {}

impl AtlasBody for Label {}

impl AtlasBody for Scope {}

/// A label in a database user body (Atlas's ComponentLabel).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Label {
    #[schemars(required, length(min = 1, max = 255))]
    key: Option<String>,
    #[schemars(required, length(min = 1, max = 255))]
    value: Option<String>,
}

/// A scope in a database user body (Atlas's UserScope).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    #[schemars(required, regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9-]*$"))]
    name: Option<String>,
    #[schemars(required, extend("enum" = ["CLUSTER", "DATA_LAKE", "STREAM"]))]
    r#type: Option<String>,
}

fn labels(labels: Vec<Nested<Label>>) -> Vec<v1::DatabaseUserLabel> {
    labels
        .into_iter()
        .map(|Nested(label)| v1::DatabaseUserLabel {
            key: label.key.unwrap_or_default(),
            value: label.value.unwrap_or_default(),
        })
        .collect()
}

fn scopes(scopes: Vec<Nested<Scope>>) -> Vec<v1::DatabaseUserScope> {
    scopes
        .into_iter()
        .map(|Nested(scope)| v1::DatabaseUserScope {
            name: scope.name.unwrap_or_default(),
            r#type: scope.r#type.unwrap_or_default(),
        })
        .collect()
}

/// Reads `deleteAfterDate`: ISO 8601 with an offset, or without one (UTC).
fn delete_after_date(value: Option<String>) -> Result<Option<prost_types::Timestamp>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let parsed = OffsetDateTime::parse(&value, &Rfc3339).or_else(|_| {
        PrimitiveDateTime::parse(&value, &Iso8601::DEFAULT).map(PrimitiveDateTime::assume_utc)
    });
    match parsed {
        Ok(at) => Ok(Some(prost_types::Timestamp {
            seconds: at.unix_timestamp(),
            nanos: 0,
        })),
        Err(_) => Err(ApiError::invalid_attribute("deleteAfterDate")),
    }
}

fn roles(roles: Vec<Nested<Role>>) -> Vec<v1::DatabaseUserRole> {
    roles
        .into_iter()
        .map(|Nested(role)| v1::DatabaseUserRole {
            database_name: role.database_name.unwrap_or_default(),
            role_name: role.role_name.unwrap_or_default(),
            collection_name: role.collection_name.unwrap_or_default(),
        })
        .collect()
}

/// A database user as Atlas shows it (keys in the recorded order): the attributes dbcert does
/// not use at their "not used" values, `deleteAfterDate` and `description` only when set.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUser {
    #[serde(rename = "awsIAMType")]
    aws_iam_type: &'static str,
    database_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete_after_date: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    group_id: String,
    labels: Vec<UserLabel>,
    ldap_auth_type: &'static str,
    links: Vec<Link>,
    oidc_auth_type: &'static str,
    roles: Vec<UserRole>,
    scopes: Vec<UserScope>,
    username: String,
    x509_type: &'static str,
}

/// A label of a database user as Atlas shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserLabel {
    key: String,
    value: String,
}

/// A scope of a database user as Atlas shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserScope {
    name: String,
    r#type: String,
}

/// A role of a database user as Atlas shows it (`collectionName` only when set).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRole {
    #[serde(skip_serializing_if = "String::is_empty")]
    collection_name: String,
    database_name: String,
    role_name: String,
}

impl DatabaseUser {
    fn new(ctx: &RequestContext, user: v1::DatabaseUser) -> Self {
        let x509_type = match v1::X509Type::try_from(user.x509_type) {
            Ok(v1::X509Type::Managed) => "MANAGED",
            Ok(v1::X509Type::Customer) => "CUSTOMER",
            _ => "NONE",
        };
        let href = ctx.resource_href(&format!(
            "/groups/{}/databaseUsers/{}/{}",
            segment(&user.group_id),
            segment(&user.database_name),
            segment(&user.username)
        ));
        Self {
            aws_iam_type: "NONE",
            database_name: user.database_name,
            delete_after_date: timestamp(user.delete_after_date),
            description: user.description,
            group_id: user.group_id,
            labels: user
                .labels
                .into_iter()
                .map(|l| UserLabel {
                    key: l.key,
                    value: l.value,
                })
                .collect(),
            ldap_auth_type: "NONE",
            links: self_link(href),
            oidc_auth_type: "NONE",
            roles: user
                .roles
                .into_iter()
                .map(|r| UserRole {
                    collection_name: r.collection_name,
                    database_name: r.database_name,
                    role_name: r.role_name,
                })
                .collect(),
            scopes: user
                .scopes
                .into_iter()
                .map(|s| UserScope {
                    name: s.name,
                    r#type: s.r#type,
                })
                .collect(),
            username: user.username,
            x509_type,
        }
    }
}

async fn create_user(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<NewDatabaseUser>,
) -> Handled {
    let request = v1::CreateDatabaseUserRequest {
        group_id,
        username: body.username.unwrap_or_default(),
        database_name: body.database_name.unwrap_or_default(),
        x509_type: body.x509_type.map_or(v1::X509Type::None, |t| t.0) as i32,
        roles: body.roles.map(roles).unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        labels: body.labels.map(labels).unwrap_or_default(),
        scopes: body.scopes.map(scopes).unwrap_or_default(),
        delete_after_date: delete_after_date(body.delete_after_date)?,
    };
    let user = DatabaseUserService::create_database_user(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::CREATED, &DatabaseUser::new(&ctx, user)))
}

async fn list_users(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    paging: Paging,
) -> Handled {
    let request = v1::ListDatabaseUsersRequest {
        group_id,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = DatabaseUserService::list_database_users(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|u| DatabaseUser::new(&ctx, u))
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

async fn get_user(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
) -> Handled {
    let request = v1::GetDatabaseUserRequest {
        group_id,
        database_name,
        username,
    };
    let user = DatabaseUserService::get_database_user(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &DatabaseUser::new(&ctx, user)))
}

async fn update_user(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
    AtlasJson(body): AtlasJson<DatabaseUserChanges>,
) -> Handled {
    let request = v1::UpdateDatabaseUserRequest {
        group_id,
        database_name,
        username,
        x509_type: body.x509_type.map(|t| t.0 as i32),
        roles: body
            .roles
            .map(|r| v1::DatabaseUserRoles { roles: roles(r) }),
        description: body.description,
        labels: body
            .labels
            .map(|l| v1::DatabaseUserLabels { labels: labels(l) }),
        scopes: body
            .scopes
            .map(|s| v1::DatabaseUserScopes { scopes: scopes(s) }),
        delete_after_date: delete_after_date(body.delete_after_date)?,
    };
    let user = DatabaseUserService::update_database_user(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(StatusCode::OK, &DatabaseUser::new(&ctx, user)))
}

async fn delete_user(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
) -> Handled {
    let request = v1::DeleteDatabaseUserRequest {
        group_id,
        database_name,
        username,
    };
    DatabaseUserService::delete_database_user(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}
