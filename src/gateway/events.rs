//! Audit events in the shape of Atlas's Events API: `GET /groups/{groupId}/events` (project
//! owners) and `GET /orgs/{orgId}/events` (organization owners), newest first, filtered by
//! `eventType`, `minDate` and `maxDate`, and one event by id (`.../events/{eventId}`). Each event
//! is shown as the Atlas CLI's recorded answers show it: attributes in alphabetical order, absent
//! ones left out, `isGlobalAdmin` and a `self` link always there.

use axum::extract::State;
use axum::routing::get;
use schemars::JsonSchema;
use serde::Serialize;

use super::Gateway;
use super::event_filter::EventFilter;
use super::extract::{AtlasPath, Authenticated, Paging, RequestContext};
use super::resource::{Handled, Link, entity, list, rpc, segment, self_link, timestamp};
use super::routes::Routes;
use crate::proto::v1;
use crate::proto::v1::audit_service_server::AuditService;

/// The routes under one API version's prefix.
pub fn routes(routes: Routes) -> Routes {
    routes
        .route("/orgs/{org_id}/events", get(list_org_events))
        .route("/orgs/{org_id}/events/{event_id}", get(get_org_event))
        .route("/groups/{group_id}/events", get(list_events))
        .route("/groups/{group_id}/events/{event_id}", get(get_event))
}

/// An audit event as Atlas shows it, attributes in Atlas's (alphabetical) order; empty ones are
/// left out. Database-user events name the user in `dbUserUsername` (Atlas's `username` is the
/// console user who acted, which dbcert does not have: it is never sent). dbcert adds what Atlas
/// has no attribute for: `authScheme` (failed authentications), `outcome`, `serialNumber`
/// (issued certificates), `targetApiKeyId` and `targetOrgId`.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(skip_serializing_if = "String::is_empty")]
    api_key_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    auth_scheme: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    db_user_username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    event_type_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    /// Whether a MongoDB employee acted: never, in dbcert.
    is_global_admin: bool,
    links: Vec<Link>,
    #[serde(skip_serializing_if = "String::is_empty")]
    org_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    outcome: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    public_key: String,
    /// The client's IP address, without the port.
    #[serde(skip_serializing_if = "String::is_empty")]
    remote_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_number: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    target_api_key_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    target_org_id: String,
}

/// Which listing shows an event: a project's shows no `orgId` (as recorded), an organization's
/// does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Project,
    Org,
}

impl Event {
    fn shown(event: v1::AuditEvent, ctx: &RequestContext, scope: Scope) -> Self {
        let mut shown = Self::default();
        let target = match event.event_type_name.as_str() {
            name if name.starts_with("API_KEY_") => &mut shown.target_api_key_id,
            "AUTHENTICATION_FAILED" => &mut shown.auth_scheme,
            "ORG_CREATED" | "ORG_DELETED" | "ORG_RENAMED" => &mut shown.target_org_id,
            _ => &mut shown.db_user_username,
        };
        *target = event.target;
        // The event's own URL: under its project when it has one, else under its organization
        // (Atlas links organization events to `groups/null/…`, which resolves nowhere).
        let href = if event.group_id.is_empty() {
            format!(
                "/orgs/{}/events/{}",
                segment(&event.org_id),
                segment(&event.id)
            )
        } else {
            format!(
                "/groups/{}/events/{}",
                segment(&event.group_id),
                segment(&event.id)
            )
        };
        Self {
            api_key_id: event.api_key_id,
            created: timestamp(event.created),
            event_type_name: event.event_type_name,
            group_id: event.group_id,
            id: event.id,
            is_global_admin: false,
            links: self_link(ctx.resource_href(&href)),
            org_id: match scope {
                Scope::Org => event.org_id,
                Scope::Project => String::new(),
            },
            outcome: event.outcome,
            public_key: event.public_key,
            remote_address: bare_ip(&event.remote_address),
            serial_number: event.serial_number,
            ..shown
        }
    }
}

/// The IP address of `ip:port` or `[ipv6]:port` (Atlas's `remoteAddress` has no port).
fn bare_ip(address: &str) -> String {
    address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| address.to_owned())
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
    let results = page
        .results
        .into_iter()
        .map(|e| Event::shown(e, &ctx, Scope::Project))
        .collect();
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
    let results = page
        .results
        .into_iter()
        .map(|e| Event::shown(e, &ctx, Scope::Org))
        .collect();
    Ok(list(
        &ctx,
        paging,
        results,
        page.total_count,
        page.has_next_page,
    ))
}

async fn get_event(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((group_id, event_id)): AtlasPath<(String, String)>,
) -> Handled {
    let request = v1::GetAuditEventRequest { group_id, event_id };
    let event = AuditService::get_audit_event(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(
        axum::http::StatusCode::OK,
        &Event::shown(event, &ctx, Scope::Project),
    ))
}

async fn get_org_event(
    State(gateway): State<Gateway>,
    ctx: RequestContext,
    auth: Authenticated,
    AtlasPath((org_id, event_id)): AtlasPath<(String, String)>,
) -> Handled {
    let request = v1::GetOrganizationEventRequest { org_id, event_id };
    let event = AuditService::get_organization_event(&*gateway.services, rpc(&auth, request))
        .await?
        .into_inner();
    Ok(entity(
        axum::http::StatusCode::OK,
        &Event::shown(event, &ctx, Scope::Org),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::{HeaderMap, header};

    use super::*;

    fn shown(event_type_name: &str, group_id: &str, scope: Scope) -> String {
        let event = v1::AuditEvent {
            id: "6a7940432c88faeba59beaf7".into(),
            created: Some(prost_types::Timestamp {
                seconds: 1_786_327_595,
                nanos: 0,
            }),
            event_type_name: event_type_name.into(),
            outcome: "SUCCESS".into(),
            org_id: "o".into(),
            group_id: group_id.into(),
            target: "t".into(),
            remote_address: "[2001:db8::1]:4711".into(),
            serial_number: Some(7),
            ..Default::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "h:1".parse().unwrap());
        let uri = "/api/atlas/v2/groups/g/events".parse().unwrap();
        let ctx = RequestContext::of(&uri, &headers).0;
        serde_json::to_string(&Event::shown(event, &ctx, scope)).unwrap()
    }

    #[test]
    fn events_are_shown_as_recorded() {
        assert_eq!(
            shown("MONGODB_USER_X509_CERT_CREATED", "g", Scope::Project),
            concat!(
                r#"{"created":"2026-08-10T02:06:35Z","dbUserUsername":"t","#,
                r#""eventTypeName":"MONGODB_USER_X509_CERT_CREATED","groupId":"g","#,
                r#""id":"6a7940432c88faeba59beaf7","isGlobalAdmin":false,"#,
                r#""links":[{"href":"http://h:1/api/atlas/v2/groups/g/events/6a7940432c88faeba59beaf7","rel":"self"}],"#,
                r#""outcome":"SUCCESS","remoteAddress":"2001:db8::1","serialNumber":7}"#
            )
        );
        assert!(shown("API_KEY_CREATED", "", Scope::Org).contains(r#""targetApiKeyId":"t""#));
        assert!(shown("API_KEY_CREATED", "", Scope::Org).contains(
            r#""href":"http://h:1/api/atlas/v2/orgs/o/events/6a7940432c88faeba59beaf7""#
        ));
        assert!(shown("AUTHENTICATION_FAILED", "", Scope::Org).contains(r#""authScheme":"t""#));
        assert!(shown("ORG_CREATED", "", Scope::Org).contains(r#""targetOrgId":"t""#));
        assert!(shown("GROUP_CREATED", "g", Scope::Org).contains(r#""orgId":"o""#));
        assert!(!shown("GROUP_CREATED", "g", Scope::Project).contains("orgId"));
    }

    #[test]
    fn remote_addresses_lose_their_port() {
        assert_eq!(bare_ip("192.0.2.7:4711"), "192.0.2.7");
        assert_eq!(bare_ip("[2001:db8::1]:80"), "2001:db8::1");
        assert_eq!(bare_ip(""), "");
    }
}
