//! An organization API key's access list (Atlas's "API Access List"): `GET`/`POST
//! /orgs/{orgId}/apiKeys/{apiUserId}/accessList` and `GET`/`DELETE
//! /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}`, where `{ipAddress}` is an address
//! or a CIDR block with its `/` percent-encoded (`192.0.2.0%2F24`). An entry's `self` link uses
//! that form. The rules (roles, parsing, limits, the caller's own entry) are the core's; the
//! list is enforced when a key authenticates (`src/auth`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Gateway;
use super::body::{self, AtlasBody};
use super::extract::{AtlasPath, Authenticated, JsonBody, Paging, RequestContext};
use super::resource::{Handled, Link, created, entity, list, rpc, segment, self_link, timestamp};
use super::response::{ApiError, Reply};
use super::routes::Routes;
use crate::domain::MAX_ACCESS_LIST_ENTRIES_PER_REQUEST;
use crate::proto::v1;
use crate::proto::v1::api_key_service_server::ApiKeyService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route(
            "/orgs/{org_id}/apiKeys/{api_user_id}/accessList",
            get(list_entries).post(add_entries),
        )
        .route(
            "/orgs/{org_id}/apiKeys/{api_user_id}/accessList/{ip_address}",
            get(entry).delete(delete_entry),
        )
}

/// One entry of the body of `POST …/accessList` (a list of them): an address or a CIDR block,
/// exactly one of the two.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewAccessListEntry {
    /// A network in CIDR notation, IPv4 or IPv6, host bits zero (`203.0.113.0/24`).
    cidr_block: Option<String>,
    /// One address, IPv4 or IPv6 (`203.0.113.10`).
    ip_address: Option<String>,
}

impl AtlasBody for NewAccessListEntry {
    /// readOnly in the spec's `UserAccessListResponse`, an entry as read.
    const READ_ONLY: &'static [&'static str] =
        &["count", "created", "lastUsed", "lastUsedAddress", "links"];
}

/// An entry as Atlas shows it. `count`, `lastUsed` and `lastUsedAddress` are absent: Atlas
/// gives them only once a request came from the entry's address, and dbcert does not count
/// requests per entry.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessListEntry {
    cidr_block: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    /// Set when the entry is one address.
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    links: Vec<Link>,
}

impl AccessListEntry {
    fn new(
        ctx: &RequestContext,
        org_id: &str,
        api_key_id: &str,
        e: v1::ApiKeyAccessListEntry,
    ) -> Self {
        // The entry's path form: its address when it is one, else the block, `/` encoded.
        let key = e.ip_address.as_deref().unwrap_or(&e.cidr_block);
        let path = format!(
            "/orgs/{}/apiKeys/{}/accessList/{}",
            segment(org_id),
            segment(api_key_id),
            segment(key)
        );
        Self {
            links: self_link(ctx.resource_href(&path)),
            cidr_block: e.cidr_block,
            created: timestamp(e.created),
            ip_address: e.ip_address,
        }
    }
}

/// A page of the list as answered.
fn entry_list(
    ctx: &RequestContext,
    paging: Paging,
    org_id: &str,
    api_key_id: &str,
    page: v1::ListApiKeyAccessListResponse,
) -> Reply {
    let results = page
        .results
        .into_iter()
        .map(|e| AccessListEntry::new(ctx, org_id, api_key_id, e))
        .collect();
    list(ctx, paging, results, page.total_count, page.has_next_page)
}

/// Reads the body of `POST …/accessList`: a list of entries (a single object is taken as a
/// list of one). Its length is bounded before any entry is read.
fn additions(body: Value) -> Result<Vec<v1::ApiKeyAccessListAddition>, ApiError> {
    let items = match body {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(ApiError::invalid_json()),
    };
    if items.len() > MAX_ACCESS_LIST_ENTRIES_PER_REQUEST {
        return Err(ApiError::invalid_attribute("accessList"));
    }
    items
        .into_iter()
        .map(|item| {
            let item: NewAccessListEntry = body::parse(item, &[])?;
            Ok(v1::ApiKeyAccessListAddition {
                ip_address: item.ip_address,
                cidr_block: item.cidr_block,
            })
        })
        .collect()
}

async fn list_entries(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id)): AtlasPath<(String, String)>,
    paging: Paging,
) -> Handled {
    let request = v1::ListApiKeyAccessListRequest {
        org_id: org_id.clone(),
        api_key_id: api_key_id.clone(),
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = ApiKeyService::list_api_key_access_list(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entry_list(&ctx, paging, &org_id, &api_key_id, page))
}

/// Adds entries; answered with the list (201 on v1, 200 on v2 as the spec says).
async fn add_entries(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id)): AtlasPath<(String, String)>,
    paging: Paging,
    JsonBody(body): JsonBody,
) -> Handled {
    let request = v1::AddApiKeyAccessListRequest {
        org_id: org_id.clone(),
        api_key_id: api_key_id.clone(),
        entries: additions(body)?,
        page_num: paging.page_num,
        items_per_page: paging.items_per_page,
        include_count: paging.include_count,
    };
    let page = ApiKeyService::add_api_key_access_list(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(match entry_list(&ctx, paging, &org_id, &api_key_id, page) {
        Reply::List(_, body) => Reply::List(created(&ctx), body),
        other => other,
    })
}

async fn entry(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id, ip_address)): AtlasPath<(String, String, String)>,
) -> Handled {
    let request = v1::ApiKeyAccessListEntryRequest {
        org_id: org_id.clone(),
        api_key_id: api_key_id.clone(),
        ip_address,
    };
    let found =
        ApiKeyService::get_api_key_access_list_entry(&*gateway.services, rpc(&auth, request))
            .await?
            .into_inner();
    Ok(entity(
        StatusCode::OK,
        &AccessListEntry::new(&ctx, &org_id, &api_key_id, found),
    ))
}

async fn delete_entry(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    AtlasPath((org_id, api_key_id, ip_address)): AtlasPath<(String, String, String)>,
) -> Handled {
    let request = v1::ApiKeyAccessListEntryRequest {
        org_id,
        api_key_id,
        ip_address,
    };
    ApiKeyService::delete_api_key_access_list_entry(&*gateway.services, rpc(&auth, request))
        .await?;
    Ok(Reply::Empty)
}
