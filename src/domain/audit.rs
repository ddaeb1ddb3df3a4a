//! The audit trail: who did what, when, from which address. The core decides when an event is
//! recorded (in the operation that succeeded, or at a failed authentication); the store keeps
//! it; each event is also a structured log event of target `dbcert::audit`.
//!
//! Durability: a `MONGODB_USER_X509_CERT_CREATED` event is written in the same transaction as the
//! certificate's record, so no certificate is delivered without its audit event. The events of
//! other changes are written right after the change commits; if that write fails the change
//! stands, the failure is logged at `error` and the `dbcert::audit` log event is still emitted.
//!
//! Failed authentications are recorded when the authenticator asks: it bounds them per client
//! address (`auth/failure_log.rs`), so a flood of guesses cannot grow the store without bound
//! nor spend the budget of another address (its throttle slows the guesses themselves).
//!
//! Listings: a project's events go to its owners; an organization's events (its keys', its
//! projects' and failed authentications naming one of its keys) to its owners. A failed
//! authentication naming no key, or a key that does not exist, belongs to no organization: it is
//! in the store and the `dbcert::audit` log only. Events older than the retention are purged
//! in batches ([`Core::purge_audit_events`]).

use std::net::SocketAddr;

use time::OffsetDateTime;
use tracing::{error, info};

use super::auth::{Access, Principal, is_public_key};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{ApiKeyId, OrgId, Page, Paged, ProjectId};
use super::store::StoreResult;

/// What happened. Each action is shown under Atlas's event type name where Atlas has one
/// (its `EventTypeForNdsGroup` and `EventTypeForOrg` enums), and under dbcert's own name only
/// where Atlas has none ([`AuditAction::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// A key was given roles on a project it had none on (`API_KEY_ADDED_TO_GROUP`).
    ApiKeyAssigned,
    /// An organization API key was created (`API_KEY_CREATED`).
    ApiKeyCreated,
    /// An organization API key was deleted (`API_KEY_DELETED`).
    ApiKeyDeleted,
    /// An entry was added to an API key's access list (`API_KEY_ACCESS_LIST_ENTRY_ADDED`).
    ApiKeyAccessListEntryAdded,
    /// An entry was removed from an API key's access list
    /// (`API_KEY_ACCESS_LIST_ENTRY_DELETED`).
    ApiKeyAccessListEntryDeleted,
    /// An API key's description was changed (`API_KEY_DESCRIPTION_CHANGED`).
    ApiKeyDescriptionChanged,
    /// A key was removed from a project (`API_KEY_REMOVED_FROM_GROUP`).
    ApiKeyRemovedFromProject,
    /// A key's organization roles, or its roles on a project it was already on, were replaced
    /// (`API_KEY_ROLES_CHANGED`).
    ApiKeyRolesChanged,
    /// Credentials were presented and refused (dbcert's own `AUTHENTICATION_FAILED`: Atlas
    /// records no event for them).
    AuthenticationFailed,
    /// A client certificate was issued (`MONGODB_USER_X509_CERT_CREATED`).
    CertificateIssued,
    /// A client certificate was revoked (Atlas's `MONGODB_USER_X509_CERT_REVOKED`).
    CertificateRevoked,
    /// A database user was created (`MONGODB_USER_ADDED`).
    DatabaseUserCreated,
    /// A database user was deleted (`MONGODB_USER_DELETED`).
    DatabaseUserDeleted,
    /// A database user's X.509 type or roles were changed (`MONGODB_USER_UPDATED`).
    DatabaseUserUpdated,
    /// An organization was created, with its first ORG_OWNER key (`ORG_CREATED`).
    OrgCreated,
    /// An organization was deleted (`ORG_DELETED`).
    OrgDeleted,
    /// An organization was renamed (`ORG_RENAMED`).
    OrgRenamed,
    /// A project's CA was rotated: a new CA generation issues (dbcert's own
    /// `PROJECT_CA_ROTATED`; Atlas has no CA rotation).
    ProjectCaRotated,
    /// A project was created (`GROUP_CREATED`).
    ProjectCreated,
    /// A project was deleted (`GROUP_DELETED`).
    ProjectDeleted,
    /// A project's X.509 settings were changed: a customer CA set, or removed
    /// (`USER_SECURITY_SETTINGS_UPDATED`).
    UserSecuritySet,
}

/// Whether the action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It did.
    Success,
    /// It was refused.
    Failure,
}

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An API key: its id when the key exists, and its public key (for a failed
    /// authentication, the public key presented, if it had the shape of one).
    ApiKey {
        /// The key's id, when known.
        id: Option<ApiKeyId>,
        /// The public key, when known.
        public_key: Option<String>,
    },
    /// The service itself.
    System,
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Its id (ObjectId-shaped).
    pub id: String,
    /// When it happened (microsecond precision).
    pub at: OffsetDateTime,
    /// Who acted.
    pub actor: Actor,
    /// The client's address, when the call came from the network.
    pub client_address: Option<SocketAddr>,
    /// The organization concerned, when known.
    pub org_id: Option<OrgId>,
    /// The project concerned, if any.
    pub project_id: Option<ProjectId>,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to: a database username, or an API key id.
    pub target: Option<String>,
    /// The serial number of an issued certificate.
    pub serial: Option<i64>,
    /// Whether it succeeded.
    pub outcome: AuditOutcome,
}

/// Which events a listing covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditScope {
    /// The events of one project.
    Project(ProjectId),
    /// The events attributed to one organization (its projects' and its keys', failed
    /// authentications of its keys included).
    Org(OrgId),
}

/// Which events of a scope a listing keeps: Atlas's `eventType`, `minDate` and `maxDate`.
/// The default keeps every event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events of these actions (sorted, no duplicates); empty keeps every action, unless
    /// `no_action` is set.
    pub actions: Vec<AuditAction>,
    /// Event types were asked for, but none that dbcert records (Atlas event types such as
    /// `CLUSTER_CREATED`): nothing matches.
    pub no_action: bool,
    /// Only events at or after this time.
    pub min_date: Option<OffsetDateTime>,
    /// Only events at or before this time.
    pub max_date: Option<OffsetDateTime>,
}

// === impl AuditAction ===

impl AuditAction {
    /// Every action.
    pub const ALL: &[Self] = &[
        Self::ApiKeyAssigned,
        Self::ApiKeyCreated,
        Self::ApiKeyDeleted,
        Self::ApiKeyAccessListEntryAdded,
        Self::ApiKeyAccessListEntryDeleted,
        Self::ApiKeyDescriptionChanged,
        Self::ApiKeyRemovedFromProject,
        Self::ApiKeyRolesChanged,
        Self::AuthenticationFailed,
        Self::CertificateIssued,
        Self::CertificateRevoked,
        Self::DatabaseUserCreated,
        Self::DatabaseUserDeleted,
        Self::DatabaseUserUpdated,
        Self::OrgCreated,
        Self::OrgDeleted,
        Self::OrgRenamed,
        Self::ProjectCaRotated,
        Self::ProjectCreated,
        Self::ProjectDeleted,
        Self::UserSecuritySet,
    ];

    /// The event type name (Atlas's `eventTypeName`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeyAssigned => "API_KEY_ADDED_TO_GROUP",
            Self::ApiKeyCreated => "API_KEY_CREATED",
            Self::ApiKeyDeleted => "API_KEY_DELETED",
            Self::ApiKeyAccessListEntryAdded => "API_KEY_ACCESS_LIST_ENTRY_ADDED",
            Self::ApiKeyAccessListEntryDeleted => "API_KEY_ACCESS_LIST_ENTRY_DELETED",
            Self::ApiKeyDescriptionChanged => "API_KEY_DESCRIPTION_CHANGED",
            Self::ApiKeyRemovedFromProject => "API_KEY_REMOVED_FROM_GROUP",
            Self::ApiKeyRolesChanged => "API_KEY_ROLES_CHANGED",
            Self::AuthenticationFailed => "AUTHENTICATION_FAILED",
            Self::CertificateIssued => "MONGODB_USER_X509_CERT_CREATED",
            Self::CertificateRevoked => "MONGODB_USER_X509_CERT_REVOKED",
            Self::DatabaseUserCreated => "MONGODB_USER_ADDED",
            Self::DatabaseUserDeleted => "MONGODB_USER_DELETED",
            Self::DatabaseUserUpdated => "MONGODB_USER_UPDATED",
            Self::OrgCreated => "ORG_CREATED",
            Self::OrgDeleted => "ORG_DELETED",
            Self::OrgRenamed => "ORG_RENAMED",
            Self::ProjectCaRotated => "PROJECT_CA_ROTATED",
            Self::ProjectCreated => "GROUP_CREATED",
            Self::ProjectDeleted => "GROUP_DELETED",
            Self::UserSecuritySet => "USER_SECURITY_SETTINGS_UPDATED",
        }
    }

    /// Parses an event type name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }
}

impl AuditOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SUCCESS" => Some(Self::Success),
            "FAILURE" => Some(Self::Failure),
            _ => None,
        }
    }
}

// === impl AuditFilter ===

impl AuditFilter {
    /// Parses event type names (Atlas's repeatable `eventType`) and the date bounds. A name of
    /// an event type dbcert never records but shaped like one (upper-case letters, digits and
    /// underscores, as every Atlas event type) matches nothing, as in Atlas, where a project
    /// without clusters has no `CLUSTER_CREATED` event; any other value is refused with
    /// `INVALID_QUERY_PARAMETER`. A `min_date` after `max_date` is not an error: nothing
    /// matches it.
    pub fn parse(
        event_types: &[String],
        min_date: Option<OffsetDateTime>,
        max_date: Option<OffsetDateTime>,
    ) -> AtlasResult<Self> {
        let mut actions = Vec::new();
        for name in event_types {
            if let Some(action) = AuditAction::parse(name) {
                actions.push(action);
            } else if !is_event_type_name(name) {
                return Err(AtlasError::new(
                    ErrorCode::InvalidQueryParameter,
                    format!("Invalid query parameter eventType specified: {name}."),
                    vec!["eventType".to_owned()],
                )
                .with_field("event_type"));
            }
        }
        actions.sort_by_key(|a| a.as_str());
        actions.dedup();
        Ok(Self {
            no_action: !event_types.is_empty() && actions.is_empty(),
            actions,
            min_date,
            max_date,
        })
    }

    /// Whether an event passes the filter (the stores apply it in SQL; this is its
    /// definition).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        !self.no_action
            && (self.actions.is_empty() || self.actions.contains(&event.action))
            && self.min_date.is_none_or(|min| event.at >= min)
            && self.max_date.is_none_or(|max| event.at <= max)
    }
}

/// Whether `name` has the shape of an Atlas event type name: 1 to 100 upper-case ASCII
/// letters, digits and underscores, starting with a letter.
fn is_event_type_name(name: &str) -> bool {
    name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

// === impl AuditEvent ===

impl AuditEvent {
    /// An event of a principal's successful action.
    pub fn by(
        principal: &Principal,
        at: OffsetDateTime,
        action: AuditAction,
        project_id: Option<&ProjectId>,
    ) -> Self {
        Self {
            id: ApiKeyId::generate(at).as_str().to_owned(),
            at,
            actor: Actor::ApiKey {
                id: Some(principal.key_id.clone()),
                public_key: Some(principal.public_key.clone()),
            },
            client_address: principal.client_address,
            org_id: Some(principal.org_id.clone()),
            project_id: project_id.cloned(),
            action,
            target: None,
            serial: None,
            outcome: AuditOutcome::Success,
        }
    }

    /// Sets the target.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the organization (for an action on a project of another organization than the
    /// actor's, which roles do not allow today, or an organization-level action).
    pub fn with_org(mut self, org_id: OrgId) -> Self {
        self.org_id = Some(org_id);
        self
    }

    /// Emits the structured log event (target `dbcert::audit`).
    pub fn log(&self) {
        let (key_id, public_key) = match &self.actor {
            Actor::ApiKey { id, public_key } => (
                id.as_ref().map(|id| id.to_string()),
                public_key.as_deref().map(str::to_owned),
            ),
            Actor::System => (None, Some("system".to_owned())),
        };
        info!(
            target: "dbcert::audit",
            event_id = %self.id,
            action = self.action.as_str(),
            outcome = self.outcome.as_str(),
            api_key_id = key_id.as_deref().unwrap_or(""),
            public_key = public_key.as_deref().unwrap_or(""),
            remote_address = %self.client_address.map(|a| a.to_string()).unwrap_or_default(),
            org_id = %self.org_id.as_ref().map(|o| o.as_str()).unwrap_or(""),
            project_id = %self.project_id.as_ref().map(|p| p.as_str()).unwrap_or(""),
            target_name = self.target.as_deref().unwrap_or(""),
            serial = self.serial.unwrap_or(0),
            "audit event"
        );
    }
}

impl Core {
    /// Records an event of a change that committed: in the store and as a log event. A store
    /// failure does not undo the change, so it is logged rather than returned.
    pub(super) async fn audit(&self, event: AuditEvent) {
        event.log();
        if let Err(error) = self.store.insert_audit_event(&event).await {
            error!(
                %error,
                event_id = %event.id,
                action = event.action.as_str(),
                "failed to store an audit event"
            );
        }
    }

    /// Records a failed authentication (wrong key, wrong secret, malformed credentials) from
    /// `client`. `public_key` is kept only if it has the shape of a public key, so a mistyped
    /// secret is never stored. Unbounded here: the caller bounds how often it records them
    /// (the authenticator, per client address).
    pub async fn record_failed_authentication(
        &self,
        public_key: Option<&str>,
        client: Option<SocketAddr>,
        scheme: &str,
    ) {
        let public_key = public_key.filter(|k| is_public_key(k));
        let record = match public_key {
            Some(public_key) => self
                .api_key_for_credentials(public_key)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let at = self.clock.now();
        let event = AuditEvent {
            id: ApiKeyId::generate(at).as_str().to_owned(),
            at,
            actor: Actor::ApiKey {
                id: record.as_ref().map(|r| r.id.clone()),
                public_key: public_key.map(str::to_owned),
            },
            client_address: client,
            org_id: record.map(|r| r.org_id),
            project_id: None,
            action: AuditAction::AuthenticationFailed,
            target: Some(scheme.to_owned()),
            serial: None,
            outcome: AuditOutcome::Failure,
        };
        self.audit(event).await;
    }

    /// Lists a project's audit events, newest first. Project owners only.
    pub async fn list_audit_events(
        &self,
        principal: &Principal,
        group_id: &str,
        filter: &AuditFilter,
        page: Page,
    ) -> AtlasResult<Paged<AuditEvent>> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        self.store
            .list_audit_events(&AuditScope::Project(project.id), filter, page)
            .await
            .map_err(store_error)
    }

    /// Lists an organization's audit events, newest first: those of its keys (created,
    /// deleted, assigned, failed authentications naming them), of the organization itself and
    /// of its projects, deleted ones included. Organization owners only (Atlas lets any
    /// organization member read its organization's events; dbcert's events name every key
    /// and client address of the organization, and the projects' events, which members and
    /// read-only keys do not see, as the project listing needs a project owner).
    pub async fn list_organization_events(
        &self,
        principal: &Principal,
        org_id: &str,
        filter: &AuditFilter,
        page: Page,
    ) -> AtlasResult<Paged<AuditEvent>> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        self.store
            .list_audit_events(&AuditScope::Org(org.id), filter, page)
            .await
            .map_err(store_error)
    }

    /// Returns one event of a project. Project owners only; an event of another project, or
    /// none, is `RESOURCE_NOT_FOUND` (404), as Atlas answers an unknown event id.
    pub async fn audit_event(
        &self,
        principal: &Principal,
        group_id: &str,
        event_id: &str,
    ) -> AtlasResult<AuditEvent> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let path = format!("groups/{group_id}/events/{event_id}");
        self.scoped_event(event_id, &path, |event| {
            event.project_id.as_ref() == Some(&project.id)
        })
        .await
    }

    /// Returns one event of an organization (any event its listing shows). Organization
    /// owners only; otherwise as [`Core::audit_event`].
    pub async fn organization_event(
        &self,
        principal: &Principal,
        org_id: &str,
        event_id: &str,
    ) -> AtlasResult<AuditEvent> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        let path = format!("orgs/{org_id}/events/{event_id}");
        self.scoped_event(event_id, &path, |event| {
            event.org_id.as_ref() == Some(&org.id)
        })
        .await
    }

    /// The event of that id when `in_scope` holds for it; otherwise Atlas's 404 for `path`.
    async fn scoped_event(
        &self,
        event_id: &str,
        path: &str,
        in_scope: impl Fn(&AuditEvent) -> bool,
    ) -> AtlasResult<AuditEvent> {
        let not_found = || {
            AtlasError::new(
                ErrorCode::ResourceNotFound,
                format!("Cannot find resource {path}."),
                vec![path.to_owned()],
            )
            .with_field("event_id")
        };
        // Event ids are 24 lower-case hex digits; anything else is no event (and no query).
        if event_id.len() != 24
            || !event_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(not_found());
        }
        self.store
            .audit_event(event_id)
            .await
            .map_err(store_error)?
            .filter(|event| in_scope(event))
            .ok_or_else(not_found)
    }

    /// Deletes up to `batch` audit events that happened more than `retention` ago, oldest
    /// first, in short statements whatever the backlog; returns how many it deleted (fewer
    /// than `batch`: none is left). Several replicas may run it at once: a deleted event is simply not found by
    /// the others. Certificate records are not audit events and are never purged.
    pub async fn purge_audit_events(
        &self,
        retention: std::time::Duration,
        batch: u32,
    ) -> StoreResult<u64> {
        let Some(before) = time::Duration::try_from(retention)
            .ok()
            .and_then(|retention| self.clock.now().checked_sub(retention))
        else {
            // A retention reaching before the calendar's start: nothing is that old.
            return Ok(0);
        };
        self.store.purge_audit_events(before, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_atlas_names_and_match_nothing_for_types_dbcert_never_records() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let filter =
            AuditFilter::parse(&names(&["GROUP_CREATED", "CLUSTER_CREATED"]), None, None).unwrap();
        assert_eq!(filter.actions, [AuditAction::ProjectCreated]);
        assert!(!filter.no_action);
        let filter = AuditFilter::parse(&names(&["CLUSTER_CREATED"]), None, None).unwrap();
        assert!(filter.no_action);
        for bad in ["", "group_created", "1ABC", "A-B", &"A".repeat(101)] {
            let error = AuditFilter::parse(&names(&[bad]), None, None).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidQueryParameter, "{bad}");
        }
    }

    #[test]
    fn action_names_round_trip() {
        for &action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("NOPE"), None);
        // The old dbcert names are gone (migration 0012 renamed the stored ones).
        assert_eq!(AuditAction::parse("CERTIFICATE_ISSUED"), None);
        assert_eq!(
            AuditAction::CertificateIssued.as_str(),
            "MONGODB_USER_X509_CERT_CREATED"
        );
        for outcome in [AuditOutcome::Success, AuditOutcome::Failure] {
            assert_eq!(AuditOutcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}
