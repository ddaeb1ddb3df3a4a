//! Database users: `GET`/`POST /groups/{groupId}/databaseUsers` and `GET`/`PATCH`/`DELETE
//! /groups/{groupId}/databaseUsers/{databaseName}/{username}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson, Nested, NoItems, NotUsed, X509TypeName};
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, entity, list, rpc, segment, self_link};
use super::response::Reply;
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
/// attributes for authentication methods dbcert does not offer and for labels and scopes
/// (accepted only with their "not used" value, so a user read from Atlas's API can be sent
/// back), the read-only `links` (ignored), then the user.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewDatabaseUser {
    #[serde(rename = "awsIAMType")]
    aws_iam_type: Option<NotUsed>,
    ldap_auth_type: Option<NotUsed>,
    oidc_auth_type: Option<NotUsed>,
    labels: Option<NoItems>,
    scopes: Option<NoItems>,
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
    labels: Option<NoItems>,
    scopes: Option<NoItems>,
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

/// A database user as Atlas shows it: the attributes dbcert does not use at their "not used"
/// values.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseUser {
    #[serde(rename = "awsIAMType")]
    aws_iam_type: &'static str,
    database_name: String,
    group_id: String,
    labels: [(); 0],
    ldap_auth_type: &'static str,
    links: Vec<Link>,
    oidc_auth_type: &'static str,
    roles: Vec<UserRole>,
    scopes: [(); 0],
    username: String,
    x509_type: &'static str,
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
            group_id: user.group_id,
            labels: [],
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
            scopes: [],
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
