//! A project's user security settings: `GET`/`PATCH /groups/{groupId}/userSecurity` (the
//! customer CA of self-managed X.509) and `DELETE …/userSecurity/customerX509`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::Gateway;
use super::body::{AtlasBody, AtlasJson, Whole};
use super::extract::{AtlasPath, Authenticated, RequestContext};
use super::resource::{Handled, Link, entity, rpc, segment, self_link};
use super::response::ApiVersion;
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::user_security_service_server::UserSecurityService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route(
            "/groups/{group_id}/userSecurity",
            get(get_user_security).patch(update_user_security),
        )
        .route(
            "/groups/{group_id}/userSecurity/customerX509",
            delete(delete_customer_x509),
        )
}

/// The body of `PATCH …/userSecurity` (the spec's `UserSecurity`; `links` is read-only and
/// ignored). What a `GET` answers, sent back, changes nothing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSecurityChanges {
    customer_x509: Option<Whole<CustomerX509Body>>,
    #[allow(dead_code)]
    ldap: Option<Whole<LdapBody>>,
}

impl AtlasBody for UserSecurityChanges {
    const READ_ONLY: &'static [&'static str] = &["links"];
}

/// `customerX509` in a body: the PEM of the customer's CA(s); empty removes it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerX509Body {
    cas: Option<String>,
}

impl AtlasBody for CustomerX509Body {
    const READ_ONLY: &'static [&'static str] = &["links"];
}

/// `ldap` in a body: dbcert has no LDAP, so only "off" is accepted, as every project reads
/// (`authenticationEnabled` and `authorizationEnabled` false). Another LDAP attribute names
/// `ldap` (`INVALID_ATTRIBUTE`); `true` names the flag.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct LdapBody {
    authentication_enabled: Option<Off>,
    authorization_enabled: Option<Off>,
}

impl AtlasBody for LdapBody {
    const READ_ONLY: &'static [&'static str] = &["links"];
}

/// A flag of a feature dbcert does not offer: accepted only as `false`.
#[derive(Debug)]
pub struct Off;

impl<'de> Deserialize<'de> for Off {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match bool::deserialize(deserializer)? {
            false => Ok(Self),
            true => Err(de::Error::custom("only false is accepted")),
        }
    }
}

impl JsonSchema for Off {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Off".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"const": false})
    }
}

/// The user security settings as Atlas shows them: `customerX509`, then `ldap` as recorded
/// (the Atlas CLI's e2e snapshot `TestLDAPWithFlags/Get`), always off here.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSecurity {
    customer_x509: CustomerX509,
    ldap: Ldap,
    links: Vec<Link>,
}

/// `ldap` as Atlas shows a project without LDAP.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ldap {
    authentication_enabled: bool,
    authorization_enabled: bool,
}

/// `customerX509` as Atlas shows it: `{}` when none is set.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CustomerX509 {
    #[serde(skip_serializing_if = "Option::is_none")]
    cas: Option<String>,
}

impl UserSecurity {
    fn new(ctx: &RequestContext, group_id: &str, security: v1::UserSecurity) -> Self {
        let cas = security.customer_x509.map(|c| c.cas).unwrap_or_default();
        Self {
            customer_x509: CustomerX509 {
                cas: (!cas.is_empty()).then_some(cas),
            },
            ldap: Ldap {
                authentication_enabled: false,
                authorization_enabled: false,
            },
            links: self_link(
                ctx.resource_href(&format!("/groups/{}/userSecurity", segment(group_id))),
            ),
        }
    }
}

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
    Ok(entity(
        StatusCode::OK,
        &UserSecurity::new(&ctx, &group_id, security),
    ))
}

/// `PATCH …/userSecurity`: 202 on v2 (as its spec records), 200 on v1. A body without
/// `customerX509` changes nothing (PATCH semantics) and answers the current settings.
async fn update_user_security(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath(group_id): AtlasPath<String>,
    AtlasJson(body): AtlasJson<UserSecurityChanges>,
) -> Handled {
    let security = match body.customer_x509 {
        Some(Whole(customer_x509)) => {
            let request = v1::UpdateUserSecurityRequest {
                group_id: group_id.clone(),
                customer_x509: Some(v1::CustomerX509 {
                    cas: customer_x509.cas.unwrap_or_default(),
                }),
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
    Ok(entity(
        status,
        &UserSecurity::new(&ctx, &group_id, security),
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
    // 202 with the settings on both versions: the v2 spec's `disableSecurityCustomerX509`
    // answers 202, and v1.0 is the same resource.
    Ok(entity(
        StatusCode::ACCEPTED,
        &UserSecurity::new(&ctx, &group_id, security),
    ))
}
