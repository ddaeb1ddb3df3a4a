//! `dbcert.v1.AuditService`.

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::Services;
use super::convert::{page, page_parts, timestamp};
use super::status::to_status;
use crate::domain::{Actor, AuditEvent};
use crate::proto::v1::{
    self, ListAuditEventsRequest, ListAuditEventsResponse, audit_service_server::AuditService,
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
        let events = self
            .core
            .list_audit_events(&principal, &req.group_id, page)
            .await
            .map_err(to_status)?;
        let (results, total_count, has_next_page) = page_parts(events, audit_event);
        Ok(Response::new(ListAuditEventsResponse {
            results,
            total_count,
            has_next_page,
        }))
    }
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
