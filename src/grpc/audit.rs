//! `dbcert.v1.AuditService`.

use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{page, page_parts, timestamp};
use super::status::to_status;
use crate::domain::{Actor, AtlasError, AtlasResult, AuditEvent, AuditFilter, ErrorCode};
use crate::proto::v1::{
    self, GetAuditEventRequest, GetOrganizationEventRequest, ListAuditEventsRequest,
    ListAuditEventsResponse, ListOrganizationEventsRequest, ListOrganizationEventsResponse,
    audit_service_server::AuditService,
};

#[tonic::async_trait]
impl AuditService for Services {
    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let filter = filter(&req.event_type, req.min_date, req.max_date).map_err(to_status)?;
        let events = self
            .core
            .list_audit_events(&principal, &req.group_id, &filter, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(events, audit_event);
        Ok(Response::new(ListAuditEventsResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn list_organization_events(
        &self,
        request: Request<ListOrganizationEventsRequest>,
    ) -> Result<Response<ListOrganizationEventsResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let page = page(req.page_num, req.items_per_page, req.include_count).map_err(to_status)?;
        let filter = filter(&req.event_type, req.min_date, req.max_date).map_err(to_status)?;
        let events = self
            .core
            .list_organization_events(&principal, &req.org_id, &filter, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(events, audit_event);
        Ok(Response::new(ListOrganizationEventsResponse {
            results,
            total_count,
            has_next_page,
        }))
    }

    #[instrument(skip_all, fields(group_id = %request.get_ref().group_id))]
    async fn get_audit_event(
        &self,
        request: Request<GetAuditEventRequest>,
    ) -> Result<Response<v1::AuditEvent>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let event = self
            .core
            .audit_event(&principal, &req.group_id, &req.event_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(audit_event(event)))
    }

    #[instrument(skip_all, fields(org_id = %request.get_ref().org_id))]
    async fn get_organization_event(
        &self,
        request: Request<GetOrganizationEventRequest>,
    ) -> Result<Response<v1::AuditEvent>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        let event = self
            .core
            .organization_event(&principal, &req.org_id, &req.event_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(audit_event(event)))
    }
}

/// Parses the filter fields of a listing.
fn filter(
    event_types: &[String],
    min_date: Option<prost_types::Timestamp>,
    max_date: Option<prost_types::Timestamp>,
) -> AtlasResult<AuditFilter> {
    let min_date = min_date
        .map(|t| time_of(t, "minDate", "min_date"))
        .transpose()?;
    let max_date = max_date
        .map(|t| time_of(t, "maxDate", "max_date"))
        .transpose()?;
    AuditFilter::parse(event_types, min_date, max_date)
}

/// A protobuf timestamp as a time; one out of range (or with nanos outside 0..1e9) is refused
/// as the query parameter it stands for.
fn time_of(
    t: prost_types::Timestamp,
    name: &str,
    field: &'static str,
) -> AtlasResult<OffsetDateTime> {
    let nanos = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .map(i128::from);
    nanos
        .and_then(|nanos| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.seconds) * 1_000_000_000 + nanos)
                .ok()
        })
        .ok_or_else(|| {
            AtlasError::new(
                ErrorCode::InvalidQueryParameter,
                format!(
                    "Invalid query parameter {name} specified: {}s {}ns.",
                    t.seconds, t.nanos
                ),
                vec![name.to_owned()],
            )
            .with_field(field)
        })
}

fn audit_event(event: AuditEvent) -> v1::AuditEvent {
    let (api_key_id, public_key) = match event.actor {
        Actor::ApiKey { id, public_key } => (
            id.map(|id| id.to_string()).unwrap_or_default(),
            public_key.unwrap_or_default(),
        ),
        Actor::System => (String::new(), String::new()),
    };
    v1::AuditEvent {
        id: event.id,
        created: Some(timestamp(event.at)),
        event_type_name: event.action.as_str().to_owned(),
        outcome: event.outcome.as_str().to_owned(),
        api_key_id,
        public_key,
        remote_address: event
            .client_address
            .map(|a| a.to_string())
            .unwrap_or_default(),
        org_id: event.org_id.map(|id| id.to_string()).unwrap_or_default(),
        group_id: event
            .project_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        target: event.target.unwrap_or_default(),
        serial_number: event.serial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_out_of_range_are_invalid_query_parameters() {
        let at = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        assert_eq!(
            time_of(at(1, 5), "minDate", "min_date").unwrap(),
            OffsetDateTime::from_unix_timestamp_nanos(1_000_000_005).unwrap()
        );
        for bad in [
            at(0, -1),
            at(0, 1_000_000_000),
            at(i64::MAX, 0),
            at(i64::MIN, 0),
        ] {
            let error = time_of(bad, "maxDate", "max_date").unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidQueryParameter);
            assert_eq!(error.parameters(), ["maxDate"]);
            assert_eq!(error.field(), Some("max_date"));
        }
        let error = filter(&["not-an-event".to_owned()], None, None).unwrap_err();
        assert_eq!(error.parameters(), ["eventType"]);
        // An Atlas event type dbcert never records is no error: it matches nothing.
        let none = filter(&["CLUSTER_CREATED".to_owned()], None, None).unwrap();
        assert!(none.no_action && none.actions.is_empty());
    }
}
