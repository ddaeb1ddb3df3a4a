//! Audit events in the shape of Atlas's Events API: `GET /groups/{groupId}/events` (project
//! owners) and `GET /orgs/{orgId}/events` (organization owners), oldest first, filtered by
//! `eventType`, `minDate` and `maxDate`; absent attributes are left out.

use axum::extract::State;
use axum::routing::get;
use schemars::JsonSchema;
use serde::Serialize;

use super::Gateway;
use super::extract::{AtlasPath, Authenticated, EventFilter, Paging, RequestContext};
use super::resource::{Handled, list, rpc, timestamp};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::audit_service_server::AuditService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/orgs/{org_id}/events", get(list_org_events))
        .route("/groups/{group_id}/events", get(list_events))
}

/// An audit event as Atlas shows it; empty attributes are left out. The target of the event
/// is named after its kind (`targetApiKeyId`, `authScheme`, `targetOrgId` or `username`).
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(skip_serializing_if = "String::is_empty")]
    api_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    event_type_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    org_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    outcome: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    public_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    remote_address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    target_api_key_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    auth_scheme: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    target_org_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_number: Option<i64>,
}

impl From<v1::AuditEvent> for Event {
    fn from(event: v1::AuditEvent) -> Self {
        let mut shown = Self::default();
        let target = match event.event_type_name.as_str() {
            name if name.starts_with("API_KEY_") => &mut shown.target_api_key_id,
            "AUTHENTICATION_FAILED" => &mut shown.auth_scheme,
            "ORG_CREATED" => &mut shown.target_org_id,
            _ => &mut shown.username,
        };
        *target = event.target;
        Self {
            api_key_id: event.api_key_id,
            created: timestamp(event.created),
            event_type_name: event.event_type_name,
            group_id: event.group_id,
            id: event.id,
            org_id: event.org_id,
            outcome: event.outcome,
            public_key: event.public_key,
            remote_address: event.remote_address,
            serial_number: event.serial_number,
            ..shown
        }
    }
}

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
    let results = page.results.into_iter().map(Event::from).collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

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
    let results = page.results.into_iter().map(Event::from).collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(event_type_name: &str) -> String {
        let event = v1::AuditEvent {
            id: "e1".into(),
            created: Some(prost_types::Timestamp {
                seconds: 1_786_327_595,
                nanos: 0,
            }),
            event_type_name: event_type_name.into(),
            outcome: "SUCCESS".into(),
            group_id: "g".into(),
            target: "t".into(),
            serial_number: Some(7),
            ..Default::default()
        };
        serde_json::to_string(&Event::from(event)).unwrap_or_default()
    }

    #[test]
    fn events_name_their_target_after_their_kind_and_omit_empty_attributes() {
        assert_eq!(
            shown("CERT_ISSUED"),
            r#"{"created":"2026-08-10T02:06:35Z","eventTypeName":"CERT_ISSUED","groupId":"g","id":"e1","outcome":"SUCCESS","username":"t","serialNumber":7}"#
        );
        assert!(shown("API_KEY_CREATED").contains(r#""targetApiKeyId":"t""#));
        assert!(shown("AUTHENTICATION_FAILED").contains(r#""authScheme":"t""#));
        assert!(shown("ORG_CREATED").contains(r#""targetOrgId":"t""#));
    }
}
