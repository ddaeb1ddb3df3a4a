//! The Atlas routes: each handler turns path, query and body into one gRPC request, calls the
//! service in-process with the Digest-verified key, and shapes the answer as Atlas does. Rules
//! (roles, limits, validation of values) are the core's; the handlers only translate.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::Gateway;
use super::extract::{AtlasPath, Authenticated, EventFilter, JsonBody, Paging, RequestContext};
use super::response::{ApiError, ApiVersion, Reply};
use crate::proto::v1;
use crate::proto::v1::api_key_service_server::ApiKeyService;
use crate::proto::v1::audit_service_server::AuditService;
use crate::proto::v1::certificate_service_server::CertificateService;
use crate::proto::v1::database_user_service_server::DatabaseUserService;
use crate::proto::v1::organization_service_server::OrganizationService;
use crate::proto::v1::project_service_server::ProjectService;
use crate::proto::v1::user_security_service_server::UserSecurityService;

type Handled = Result<Reply, Reply>;

/// The routes of one API version, paths under its prefix.
pub fn routes(version: ApiVersion) -> Router<Gateway> {
    let p = version.prefix();
    Router::new()
        .route(&format!("{p}/orgs"), get(list_orgs))
        .route(
            &format!("{p}/orgs/{{org_id}}/apiKeys"),
            get(list_api_keys).post(create_api_key),
        )
        .route(
            &format!("{p}/orgs/{{org_id}}/apiKeys/{{api_user_id}}"),
            axum::routing::delete(delete_api_key),
        )
        .route(&format!("{p}/orgs/{{org_id}}/events"), get(list_org_events))
        .route(
            &format!("{p}/groups"),
            get(list_projects).post(create_project),
        )
        .route(
            &format!("{p}/groups/{{group_id}}"),
            get(get_project).delete(delete_project),
        )
        .route(
            &format!("{p}/groups/{{group_id}}/apiKeys/{{api_user_id}}"),
            patch(assign_api_key).post(assign_api_key),
        )
        .route(
            &format!("{p}/groups/{{group_id}}/databaseUsers"),
            get(list_users).post(create_user),
        )
        .route(
            &format!("{p}/groups/{{group_id}}/databaseUsers/{{first}}/certs"),
            get(list_certificates).post(create_certificate),
        )
        .route(
            &format!("{p}/groups/{{group_id}}/databaseUsers/{{first}}/{{second}}"),
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route(&format!("{p}/groups/{{group_id}}/events"), get(list_events))
        .route(
            &format!("{p}/groups/{{group_id}}/userSecurity"),
            get(get_user_security).patch(update_user_security),
        )
        .route(
            &format!("{p}/groups/{{group_id}}/userSecurity/customerX509"),
            axum::routing::delete(delete_customer_x509),
        )
}

/// A gRPC request carrying the authenticated principal, so the service looks no key up again.
fn rpc<T>(auth: &Authenticated, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(auth.0.clone());
    request
}

/// The success status of a create: Atlas's v1 answers 201, the v2 spec 200 for these.
fn created(ctx: &RequestContext) -> StatusCode {
    match ctx.version {
        ApiVersion::V1 => StatusCode::CREATED,
        ApiVersion::V2 => StatusCode::OK,
    }
}

// === certificates ===

async fn create_certificate(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Handled {
    let mut body = Fields::object(body, &["monthsUntilExpiration"])?;
    let months = body.int("monthsUntilExpiration")?;
    let request = v1::CreateUserCertificateRequest {
        group_id,
        username,
        months_until_expiration: months,
        // The Atlas API has no key type: REST certificates stay RSA-4096.
        key_type: v1::KeyType::Unspecified as i32,
    };
    let mut issued =
        CertificateService::create_user_certificate(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    // One allocation of the final size, so no reallocation leaves a stray copy of the key;
    // the message's own copy is zeroized here. The body handed to hyper cannot be.
    let key = Zeroizing::new(std::mem::take(&mut issued.private_key_pem));
    let mut pem = String::with_capacity(issued.certificate_pem.len() + 1 + key.len());
    pem.push_str(&issued.certificate_pem);
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&key);
    Ok(Reply::Pem(StatusCode::CREATED, pem))
}

async fn list_certificates(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, username)): AtlasPath<(String, String)>,
    paging: Paging,
) -> Handled {
    let request = v1::ListUserCertificatesRequest {
        group_id,
        username,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = CertificateService::list_user_certificates(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|c| {
            json!({
                "_id": c.serial_number,
                "createdAt": timestamp(c.created_at),
                "groupId": c.group_id,
                "notAfter": timestamp(c.not_after),
                "subject": c.subject,
            })
        })
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

// === organizations and API keys ===

async fn list_orgs(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    paging: Paging,
) -> Handled {
    let request = v1::ListOrganizationsRequest {
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = OrganizationService::list_organizations(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|o| organization(&ctx, o))
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

async fn create_api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    JsonBody(body): JsonBody,
) -> Handled {
    let mut body = Fields::object(body, &["desc", "roles"])?;
    let request = v1::CreateApiKeyRequest {
        org_id: org_id.clone(),
        desc: body.string("desc")?.unwrap_or_default(),
        roles: body.strings("roles")?.unwrap_or_default(),
    };
    let created_key = ApiKeyService::create_api_key(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner()
        .api_key
        .unwrap_or_default();
    let self_path = format!(
        "/orgs/{}/apiKeys/{}",
        segment(&org_id),
        segment(&created_key.id)
    );
    Ok(Reply::Entity(
        created(&ctx),
        api_key(&ctx, created_key, &self_path),
    ))
}

async fn list_api_keys(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    paging: Paging,
) -> Handled {
    let request = v1::ListApiKeysRequest {
        org_id: org_id.clone(),
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = ApiKeyService::list_api_keys(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page
        .results
        .into_iter()
        .map(|k| {
            let self_path = format!("/orgs/{}/apiKeys/{}", segment(&org_id), segment(&k.id));
            api_key(&ctx, k, &self_path)
        })
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

async fn delete_api_key(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id)): AtlasPath<(String, String)>,
) -> Handled {
    let request = v1::DeleteApiKeyRequest { org_id, api_key_id };
    ApiKeyService::delete_api_key(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}

/// Assigns an organization key to a project. Both Atlas forms are accepted on both prefixes:
/// v1's `PATCH` with `{"roles":[…]}` and v2's `POST` with `[{"roles":[…]}]`.
async fn assign_api_key(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, api_key_id)): AtlasPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Handled {
    let items = match body {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(ApiError::invalid_json().into()),
    };
    let mut roles = Vec::new();
    for item in items {
        let mut item = Fields::object(item, &["roles"])?;
        roles.extend(item.strings("roles")?.unwrap_or_default());
    }
    let request = v1::AssignApiKeyToProjectRequest {
        group_id: group_id.clone(),
        api_key_id,
        roles,
    };
    let key = ApiKeyService::assign_api_key_to_project(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let self_path = format!(
        "/groups/{}/apiKeys/{}",
        segment(&group_id),
        segment(&key.id)
    );
    Ok(Reply::Entity(
        StatusCode::OK,
        api_key(&ctx, key, &self_path),
    ))
}

// === projects ===

async fn create_project(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    JsonBody(body): JsonBody,
) -> Handled {
    let mut body = Fields::object(body, &["name", "orgId", "withDefaultAlertsSettings"])?;
    // Alert settings have no meaning here; accepted (Atlas's own CLI sends it) and ignored.
    let _ = body.boolean("withDefaultAlertsSettings")?;
    let request = v1::CreateProjectRequest {
        name: body.string("name")?.unwrap_or_default(),
        org_id: body.string("orgId")?.unwrap_or_default(),
    };
    let created_project = ProjectService::create_project(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(Reply::Entity(created(&ctx), project(&ctx, created_project)))
}

async fn list_projects(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    paging: Paging,
) -> Handled {
    let request = v1::ListProjectsRequest {
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = ProjectService::list_projects(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page.results.into_iter().map(|p| project(&ctx, p)).collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

async fn get_project(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::GetProjectRequest { group_id };
    let found = ProjectService::get_project(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(Reply::Entity(StatusCode::OK, project(&ctx, found)))
}

async fn delete_project(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::DeleteProjectRequest { group_id };
    ProjectService::delete_project(&*gateway.services, rpc(&auth, request)).await?;
    Ok(Reply::Empty)
}

// === database users ===

/// Attributes of a database user body: those dbcert stores, Atlas's read-only `links`, and
/// Atlas attributes accepted only with the value meaning "not used".
const USER_ATTRIBUTES: &[&str] = &[
    "awsIAMType",
    "databaseName",
    "groupId",
    "labels",
    "ldapAuthType",
    "links",
    "oidcAuthType",
    "roles",
    "scopes",
    "username",
    "x509Type",
];

async fn create_user(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    JsonBody(body): JsonBody,
) -> Handled {
    let mut body = Fields::object(body, USER_ATTRIBUTES)?;
    body.unused_user_attributes()?;
    body.must_equal("groupId", &group_id)?;
    let x509_type = body
        .string("x509Type")?
        .map(|t| x509_type(&t))
        .transpose()?;
    let request = v1::CreateDatabaseUserRequest {
        group_id,
        username: body.string("username")?.unwrap_or_default(),
        database_name: body.string("databaseName")?.unwrap_or_default(),
        x509_type: x509_type.unwrap_or(v1::X509Type::None) as i32,
        roles: body.roles()?.unwrap_or_default(),
    };
    let user = DatabaseUserService::create_database_user(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(Reply::Entity(
        StatusCode::CREATED,
        database_user(&ctx, user),
    ))
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
        .map(|u| database_user(&ctx, u))
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
    Ok(Reply::Entity(StatusCode::OK, database_user(&ctx, user)))
}

async fn update_user(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, database_name, username)): AtlasPath<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> Handled {
    let mut body = Fields::object(body, USER_ATTRIBUTES)?;
    body.unused_user_attributes()?;
    body.must_equal("groupId", &group_id)?;
    body.must_equal("databaseName", &database_name)?;
    body.must_equal("username", &username)?;
    let x509_type = body
        .string("x509Type")?
        .map(|t| x509_type(&t))
        .transpose()?;
    let request = v1::UpdateDatabaseUserRequest {
        group_id,
        database_name,
        username,
        x509_type: x509_type.map(|t| t as i32),
        roles: body.roles()?.map(|roles| v1::DatabaseUserRoles { roles }),
    };
    let user = DatabaseUserService::update_database_user(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(Reply::Entity(StatusCode::OK, database_user(&ctx, user)))
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

// === user security ===

async fn get_user_security(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::GetUserSecurityRequest {
        group_id: group_id.clone(),
    };
    let security = UserSecurityService::get_user_security(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(Reply::Entity(
        StatusCode::OK,
        user_security(&ctx, &group_id, security),
    ))
}

/// `PATCH …/userSecurity`: 202 on v2 (as its spec records), 200 on v1. A body without
/// `customerX509` changes nothing (PATCH semantics) and answers the current settings.
async fn update_user_security(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    JsonBody(body): JsonBody,
) -> Handled {
    let mut body = Fields::object(body, &["customerX509", "links"])?;
    let customer_x509 = match body.take("customerX509") {
        None => None,
        Some(value) => {
            let mut x509 = Fields::object(value, &["cas"])
                .map_err(|_| ApiError::invalid_attribute("customerX509"))?;
            Some(v1::CustomerX509 {
                cas: x509.string("cas")?.unwrap_or_default(),
            })
        }
    };
    let security = match customer_x509 {
        Some(customer_x509) => {
            let request = v1::UpdateUserSecurityRequest {
                group_id: group_id.clone(),
                customer_x509: Some(customer_x509),
                // Unspecified leaves the CA key type setting unchanged.
                ca_key_type: v1::KeyType::Unspecified as i32,
            };
            UserSecurityService::update_user_security(&*gateway.services, rpc(&auth, request))
                .await?
        }
        None => {
            let request = v1::GetUserSecurityRequest {
                group_id: group_id.clone(),
            };
            UserSecurityService::get_user_security(&*gateway.services, rpc(&auth, request)).await?
        }
    }
    .into_inner();
    let status = match ctx.version {
        ApiVersion::V1 => StatusCode::OK,
        ApiVersion::V2 => StatusCode::ACCEPTED,
    };
    Ok(Reply::Entity(
        status,
        user_security(&ctx, &group_id, security),
    ))
}

async fn delete_customer_x509(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
) -> Handled {
    let request = v1::DeleteCustomerX509Request {
        group_id: group_id.clone(),
    };
    let security =
        UserSecurityService::delete_customer_x509(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    Ok(Reply::Entity(
        StatusCode::OK,
        user_security(&ctx, &group_id, security),
    ))
}

// === audit events ===

/// `GET …/groups/{groupId}/events`: the project's audit trail in the shape of Atlas's Events
/// API (oldest first; absent attributes omitted), filtered by `eventType`, `minDate` and
/// `maxDate`. Project owners only.
async fn list_events(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    paging: Paging,
    filter: EventFilter,
) -> Handled {
    let request = v1::ListAuditEventsRequest {
        group_id,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
        event_type: filter.event_types,
        min_date: filter.min_date,
        max_date: filter.max_date,
    };
    let page = AuditService::list_audit_events(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page.results.into_iter().map(audit_event).collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

/// `GET …/orgs/{orgId}/events`: the organization's audit trail (its keys', its own and its
/// projects' events), shaped and filtered as the project's. Organization owners only.
async fn list_org_events(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(org_id): AtlasPath<String>,
    paging: Paging,
    filter: EventFilter,
) -> Handled {
    let request = v1::ListOrganizationEventsRequest {
        org_id,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
        event_type: filter.event_types,
        min_date: filter.min_date,
        max_date: filter.max_date,
    };
    let page = AuditService::list_organization_events(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    let results = page.results.into_iter().map(audit_event).collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

fn audit_event(event: v1::AuditEvent) -> Value {
    let mut body = Map::new();
    let mut put = |name: &str, value: String| {
        if !value.is_empty() {
            body.insert(name.to_owned(), Value::String(value));
        }
    };
    put("apiKeyId", event.api_key_id);
    put(
        "created",
        timestamp(event.created)
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let target_name = match event.event_type_name.as_str() {
        name if name.starts_with("API_KEY_") => "targetApiKeyId",
        "AUTHENTICATION_FAILED" => "authScheme",
        "ORG_CREATED" => "targetOrgId",
        _ => "username",
    };
    put("eventTypeName", event.event_type_name);
    put("groupId", event.group_id);
    put("id", event.id);
    put("orgId", event.org_id);
    put("outcome", event.outcome);
    put("publicKey", event.public_key);
    put("remoteAddress", event.remote_address);
    put(target_name, event.target);
    if let Some(serial) = event.serial_number {
        body.insert("serialNumber".into(), Value::from(serial));
    }
    Value::Object(body)
}

// === Atlas shapes ===

fn links(href: String) -> Value {
    json!([{ "href": href, "rel": "self" }])
}

/// A list object: `links` (self echoing the query, previous/next when they apply), `results`,
/// and `totalCount` unless `includeCount=false`.
fn list(
    ctx: &RequestContext,
    paging: Paging,
    results: Vec<Value>,
    total_count: Option<i64>,
    has_next: bool,
) -> Reply {
    let page_num = u32::try_from(paging.page_num).unwrap_or(1).max(1);
    let mut link_list = vec![json!({ "href": ctx.self_href(), "rel": "self" })];
    if page_num > 1 {
        link_list.push(json!({ "href": ctx.page_href(page_num - 1), "rel": "previous" }));
    }
    if has_next {
        link_list.push(json!({ "href": ctx.page_href(page_num + 1), "rel": "next" }));
    }
    let mut body = Map::new();
    body.insert("links".into(), Value::Array(link_list));
    body.insert("results".into(), Value::Array(results));
    if let Some(total) = total_count {
        body.insert("totalCount".into(), Value::from(total));
    }
    Reply::List(StatusCode::OK, body)
}

fn organization(ctx: &RequestContext, org: v1::Organization) -> Value {
    json!({
        "id": org.id,
        "isDeleted": org.is_deleted,
        "links": links(ctx.resource_href(&format!("/orgs/{}", segment(&org.id)))),
        "name": org.name,
    })
}

fn project(ctx: &RequestContext, project: v1::Project) -> Value {
    json!({
        "clusterCount": project.cluster_count,
        "created": timestamp(project.created),
        "id": project.id,
        "links": links(ctx.resource_href(&format!("/groups/{}", segment(&project.id)))),
        "name": project.name,
        "orgId": project.org_id,
    })
}

fn database_user(ctx: &RequestContext, user: v1::DatabaseUser) -> Value {
    let x509_type = match v1::X509Type::try_from(user.x509_type) {
        Ok(v1::X509Type::Managed) => "MANAGED",
        Ok(v1::X509Type::Customer) => "CUSTOMER",
        _ => "NONE",
    };
    let roles: Vec<Value> = user
        .roles
        .into_iter()
        .map(|r| {
            let mut role = Map::new();
            if !r.collection_name.is_empty() {
                role.insert("collectionName".into(), Value::String(r.collection_name));
            }
            role.insert("databaseName".into(), Value::String(r.database_name));
            role.insert("roleName".into(), Value::String(r.role_name));
            Value::Object(role)
        })
        .collect();
    let href = ctx.resource_href(&format!(
        "/groups/{}/databaseUsers/{}/{}",
        segment(&user.group_id),
        segment(&user.database_name),
        segment(&user.username)
    ));
    json!({
        "awsIAMType": "NONE",
        "databaseName": user.database_name,
        "groupId": user.group_id,
        "labels": [],
        "ldapAuthType": "NONE",
        "links": links(href),
        "oidcAuthType": "NONE",
        "roles": roles,
        "scopes": [],
        "username": user.username,
        "x509Type": x509_type,
    })
}

fn api_key(ctx: &RequestContext, key: v1::ApiKey, self_path: &str) -> Value {
    let roles: Vec<Value> = key
        .roles
        .into_iter()
        .map(|r| {
            if r.group_id.is_empty() {
                json!({ "orgId": r.org_id, "roleName": r.role_name })
            } else {
                json!({ "groupId": r.group_id, "roleName": r.role_name })
            }
        })
        .collect();
    json!({
        "desc": key.desc,
        "id": key.id,
        "links": links(ctx.resource_href(self_path)),
        "privateKey": key.private_key,
        "publicKey": key.public_key,
        "roles": roles,
    })
}

fn user_security(ctx: &RequestContext, group_id: &str, security: v1::UserSecurity) -> Value {
    let cas = security.customer_x509.map(|c| c.cas).unwrap_or_default();
    let customer_x509 = if cas.is_empty() {
        json!({})
    } else {
        json!({ "cas": cas })
    };
    json!({
        "customerX509": customer_x509,
        "links": links(ctx.resource_href(&format!("/groups/{}/userSecurity", segment(group_id)))),
    })
}

/// An Atlas timestamp: UTC, seconds precision, `Z`.
fn timestamp(t: Option<prost_types::Timestamp>) -> Value {
    let Some(t) = t else {
        return Value::Null;
    };
    OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Maps an Atlas `x509Type` name to the RPC's enum.
fn x509_type(name: &str) -> Result<v1::X509Type, Reply> {
    match name {
        "NONE" => Ok(v1::X509Type::None),
        "MANAGED" => Ok(v1::X509Type::Managed),
        "CUSTOMER" => Ok(v1::X509Type::Customer),
        other => Err(ApiError::invalid_enum_value(other).into()),
    }
}

/// The attributes of a JSON object body, taken one by one with their types checked: an
/// unknown attribute or a value of the wrong JSON type is `INVALID_ATTRIBUTE`.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn object(value: Value, allowed: &[&str]) -> Result<Self, Reply> {
        let Value::Object(map) = value else {
            return Err(ApiError::invalid_json().into());
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::invalid_attribute(unknown).into());
        }
        Ok(Self { map })
    }

    /// Removes an attribute; JSON `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, Reply> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid_attribute(name).into()),
        }
    }

    fn int(&mut self, name: &str) -> Result<Option<i64>, Reply> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid_attribute(name).into()),
            Some(_) => Err(ApiError::invalid_attribute(name).into()),
        }
    }

    fn boolean(&mut self, name: &str) -> Result<Option<bool>, Reply> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(ApiError::invalid_attribute(name).into()),
        }
    }

    fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, Reply> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(ApiError::invalid_attribute(name).into()),
                })
                .collect::<Result<Vec<_>, Reply>>()
                .map(Some),
            Some(_) => Err(ApiError::invalid_attribute(name).into()),
        }
    }

    /// A path value repeated in the body must be the same.
    fn must_equal(&mut self, name: &str, expected: &str) -> Result<(), Reply> {
        match self.string(name)? {
            Some(value) if value != expected => Err(ApiError::invalid_attribute(name).into()),
            _ => Ok(()),
        }
    }

    /// Atlas attributes for authentication methods dbcert does not offer (AWS IAM, LDAP,
    /// OIDC) and for labels and scopes: accepted only with their "not used" value, so a user
    /// read from Atlas's API can be sent back; `links` is read-only and ignored.
    fn unused_user_attributes(&mut self) -> Result<(), Reply> {
        for name in ["awsIAMType", "ldapAuthType", "oidcAuthType"] {
            if self.string(name)?.is_some_and(|v| v != "NONE") {
                return Err(ApiError::invalid_attribute(name).into());
            }
        }
        for name in ["labels", "scopes"] {
            match self.take(name) {
                None => {}
                Some(Value::Array(items)) if items.is_empty() => {}
                Some(_) => return Err(ApiError::invalid_attribute(name).into()),
            }
        }
        let _ = self.take("links");
        Ok(())
    }

    fn roles(&mut self) -> Result<Option<Vec<v1::DatabaseUserRole>>, Reply> {
        let Some(value) = self.take("roles") else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(ApiError::invalid_attribute("roles").into());
        };
        let mut roles = Vec::with_capacity(items.len());
        for item in items {
            if !item.is_object() {
                return Err(ApiError::invalid_attribute("roles").into());
            }
            let mut role = Fields::object(item, &["collectionName", "databaseName", "roleName"])?;
            roles.push(v1::DatabaseUserRole {
                database_name: role.string("databaseName")?.unwrap_or_default(),
                role_name: role.string("roleName")?.unwrap_or_default(),
                collection_name: role.string("collectionName")?.unwrap_or_default(),
            });
        }
        Ok(Some(roles))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(segment("$external"), "%24external");
        assert_eq!(segment("x@y+z/ü"), "x%40y%2Bz%2F%C3%BC");
    }

    #[test]
    fn bodies_refuse_unknown_and_mistyped_attributes() {
        let code = |r: Result<Fields, Reply>| match r {
            Err(Reply::Error(e)) => (e.error_code, e.parameters),
            _ => panic!("expected an error"),
        };
        let (c, p) = code(Fields::object(
            json!({"monthsUntilExpiration": 1, "x": 2}),
            &["monthsUntilExpiration"],
        ));
        assert_eq!(c, "INVALID_ATTRIBUTE");
        assert_eq!(p, vec![json!("x")]);
        assert_eq!(code(Fields::object(json!([1]), &[])).0, "INVALID_JSON");
        let body: Value =
            serde_json::from_str(r#"{"m": "12", "n": 1.5, "o": 99999999999999999999, "p": null}"#)
                .unwrap();
        let mut f = Fields::object(body, &["m", "n", "o", "p"]).ok().unwrap();
        assert!(f.int("m").is_err());
        assert!(f.int("n").is_err());
        assert!(f.int("o").is_err());
        assert_eq!(f.int("p").ok().unwrap(), None);
    }

    #[test]
    fn timestamps_are_seconds_with_z() {
        let t = prost_types::Timestamp {
            seconds: 1_786_327_595,
            nanos: 5,
        };
        assert_eq!(timestamp(Some(t)), json!("2026-08-10T02:06:35Z"));
    }
}
