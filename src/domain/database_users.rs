//! Database users of a project.

use time::OffsetDateTime;
use tracing::info;

use super::audit::{Actor, AuditAction, AuditEvent, AuditOutcome};
use super::auth::{Access, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{
    ApiKeyId, DatabaseName, DatabaseUser, DatabaseUserRole, MAX_MANAGED_USERNAME_CHARS, Page,
    Paged, ProjectId, Username, X509Type,
};
use super::revocation::{Revocation, RevocationReason, RevokeRequest, log_revoked};
use super::store::StoreError;
use super::user_attributes::{AttributeChanges, UserAttributes};

/// A request to create a database user, as received (validated here).
#[derive(Clone, Debug)]
pub struct NewDatabaseUser<'a> {
    /// The project id.
    pub group_id: &'a str,
    /// The username.
    pub username: &'a str,
    /// `$external` or `admin`.
    pub database_name: &'a str,
    /// The X.509 mode.
    pub x509_type: X509Type,
    /// The MongoDB roles.
    pub roles: Vec<DatabaseUserRole>,
    /// Description, labels, scopes, deleteAfterDate.
    pub attributes: AttributeChanges,
}

/// The most roles one user may hold.
pub const MAX_ROLES: usize = 100;

impl Core {
    /// Creates a database user.
    pub async fn create_database_user(
        &self,
        principal: &Principal,
        new: NewDatabaseUser<'_>,
    ) -> AtlasResult<DatabaseUser> {
        let project = self
            .authorized_project(principal, new.group_id, Access::ManageDatabaseUsers)
            .await?;
        let mut attributes = UserAttributes::default();
        attributes.apply(new.attributes, self.clock.now())?;
        let user = DatabaseUser {
            project_id: project.id,
            username: Username::parse(new.username)?,
            database_name: DatabaseName::parse(new.database_name)?,
            x509_type: new.x509_type,
            roles: check_roles(new.roles)?,
            attributes,
        };
        check_database_name(&user)?;
        check_managed_username(&user)?;
        match self.store.insert_database_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(AtlasError::new(
                    ErrorCode::UserAlreadyExists,
                    "The specified database user already exists.",
                    Vec::new(),
                ));
            }
            Err(error) => return Err(store_error(error)),
        }
        info!(project_id = %user.project_id, username = %user.username, x509_type = user.x509_type.as_str(), key_id = %principal.key_id, "created database user");
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::DatabaseUserCreated,
                Some(&user.project_id),
            )
            .with_target(user.username.as_str()),
        )
        .await;
        Ok(user)
    }

    /// Returns a database user.
    pub async fn database_user(
        &self,
        principal: &Principal,
        group_id: &str,
        database_name: &str,
        username: &str,
    ) -> AtlasResult<DatabaseUser> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        let database_name = DatabaseName::parse(database_name)?;
        let username = Username::parse(username)?;
        self.store
            .database_user(&project.id, database_name, &username)
            .await
            .map_err(store_error)?
            .ok_or_else(|| AtlasError::username_not_found(username.as_str()))
    }

    /// Lists a project's database users.
    pub async fn list_database_users(
        &self,
        principal: &Principal,
        group_id: &str,
        page: Page,
    ) -> AtlasResult<Paged<DatabaseUser>> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        self.store
            .list_database_users(&project.id, page)
            .await
            .map_err(store_error)
    }

    /// Changes a user's x509Type, roles and/or attributes (`None` leaves a field unchanged).
    #[allow(clippy::too_many_arguments)]
    pub async fn update_database_user(
        &self,
        principal: &Principal,
        group_id: &str,
        database_name: &str,
        username: &str,
        x509_type: Option<X509Type>,
        roles: Option<Vec<DatabaseUserRole>>,
        attributes: AttributeChanges,
    ) -> AtlasResult<DatabaseUser> {
        let project = self
            .authorized_project(principal, group_id, Access::ManageDatabaseUsers)
            .await?;
        let database_name = DatabaseName::parse(database_name)?;
        let username = Username::parse(username)?;
        let mut user = self
            .store
            .database_user(&project.id, database_name, &username)
            .await
            .map_err(store_error)?
            .ok_or_else(|| AtlasError::username_not_found(username.as_str()))?;
        let was_managed = user.x509_type == X509Type::Managed;
        if let Some(x509_type) = x509_type {
            user.x509_type = x509_type;
        }
        if let Some(roles) = roles {
            user.roles = check_roles(roles)?;
        }
        user.attributes.apply(attributes, self.clock.now())?;
        check_database_name(&user)?;
        if !was_managed {
            // A user made MANAGED gets the CN bound; one that already was keeps its name.
            check_managed_username(&user)?;
        }
        if !self
            .store
            .update_database_user(&user)
            .await
            .map_err(store_error)?
        {
            return Err(AtlasError::username_not_found(username.as_str()));
        }
        info!(project_id = %user.project_id, username = %user.username, key_id = %principal.key_id, "updated database user");
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::DatabaseUserUpdated,
                Some(&user.project_id),
            )
            .with_target(user.username.as_str()),
        )
        .await;
        Ok(user)
    }

    /// Deletes a database user. Deleting a `$external` user (where MONGODB-X509 users live)
    /// revokes its unexpired certificates (`cessationOfOperation`) in the same transaction, so
    /// a user re-created with that name does not revive them; they stay in the status listing.
    pub async fn delete_database_user(
        &self,
        principal: &Principal,
        group_id: &str,
        database_name: &str,
        username: &str,
    ) -> AtlasResult<()> {
        let project = self
            .authorized_project(principal, group_id, Access::ManageDatabaseUsers)
            .await?;
        let database_name = DatabaseName::parse(database_name)?;
        let username = Username::parse(username)?;
        if !self
            .remove_database_user(Some(principal), &project.id, database_name, &username, None)
            .await?
        {
            return Err(AtlasError::username_not_found(username.as_str()));
        }
        Ok(())
    }

    /// The one deletion path of a database user, for a principal or (`None`) the service
    /// itself (its deleteAfterDate task, which passes `due`: the user is deleted only if it is
    /// still due then). Deleting a `$external` user (where MONGODB-X509 users live) revokes its
    /// unexpired certificates (`cessationOfOperation`) in the same transaction, so a user
    /// re-created with that name does not revive them; they stay in the status listing. Only
    /// the caller whose store delete succeeded records the deletion, so racing replicas record
    /// it once. Returns whether it deleted the user.
    pub(super) async fn remove_database_user(
        &self,
        principal: Option<&Principal>,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
        due: Option<OffsetDateTime>,
    ) -> AtlasResult<bool> {
        let now = self.clock.now();
        let event = |action, now: OffsetDateTime| -> AtlasResult<AuditEvent> {
            Ok(match principal {
                Some(principal) => AuditEvent::by(principal, now, action, Some(project_id)),
                None => AuditEvent {
                    id: ApiKeyId::generate(now).as_str().to_owned(),
                    at: now,
                    actor: Actor::System,
                    client_address: None,
                    org_id: None,
                    project_id: Some(project_id.clone()),
                    action,
                    target: None,
                    serial: None,
                    outcome: AuditOutcome::Success,
                },
            })
        };
        let org_id = match principal {
            Some(principal) => Some(principal.org_id.clone()),
            None => self
                .store
                .project(project_id)
                .await
                .map_err(store_error)?
                .map(|project| project.org_id),
        };
        let with_org = |mut event: AuditEvent| {
            event.org_id = org_id.clone();
            event
        };
        let revoke = if database_name == DatabaseName::External {
            Some(RevokeRequest {
                revocation: Revocation {
                    at: now.replace_nanosecond(0).unwrap_or(now),
                    reason: RevocationReason::CessationOfOperation,
                },
                event: with_org(event(AuditAction::CertificateRevoked, now)?),
            })
        } else {
            None
        };
        let Some(revoked) = self
            .store
            .delete_database_user_revoking(
                project_id,
                database_name,
                username,
                revoke.as_ref(),
                due,
            )
            .await
            .map_err(store_error)?
        else {
            return Ok(false);
        };
        let key_id = principal.map_or_else(String::new, |principal| principal.key_id.to_string());
        info!(project_id = %project_id, username = %username, key_id = %key_id, revoked = revoked.len(), "deleted database user");
        if let Some(request) = &revoke {
            for record in &revoked {
                log_revoked(request, record, &key_id);
            }
            // A project without a CA has no certificates (and no CRL) to refresh.
            if !revoked.is_empty() {
                self.crl_after_revocation(project_id).await;
            }
        }
        self.audit(
            // Timed after the delete, so it follows the revocations it made.
            with_org(event(AuditAction::DatabaseUserDeleted, self.clock.now())?)
                .with_target(username.as_str()),
        )
        .await;
        Ok(true)
    }
}

/// X.509 users authenticate against `$external`; password users against `admin`.
fn check_database_name(user: &DatabaseUser) -> AtlasResult<()> {
    match (user.x509_type, user.database_name) {
        (X509Type::Managed | X509Type::Customer, DatabaseName::Admin) => Err(AtlasError::new(
            ErrorCode::DatabaseNameInvalidExternal,
            "X.509 database users must use the $external authentication database.",
            Vec::new(),
        )
        .with_field("database_name")),
        (X509Type::None, DatabaseName::External) => Err(AtlasError::new(
            ErrorCode::DatabaseNameInvalidAdmin,
            "Database users without external authentication must use the admin database.",
            Vec::new(),
        )
        .with_field("database_name")),
        _ => Ok(()),
    }
}

/// A MANAGED user's username becomes its certificates' subject CN, which X.520 bounds at
/// [`MAX_MANAGED_USERNAME_CHARS`] characters (`ub-common-name`); other users keep the general
/// bound of [`Username`].
fn check_managed_username(user: &DatabaseUser) -> AtlasResult<()> {
    if user.x509_type == X509Type::Managed
        && user.username.as_str().chars().count() > MAX_MANAGED_USERNAME_CHARS
    {
        return Err(AtlasError::new(
            ErrorCode::InvalidAttribute,
            format!(
                "Invalid attribute username specified: the username of a MANAGED X.509 user \
                 becomes its certificates' common name, at most {MAX_MANAGED_USERNAME_CHARS} \
                 characters."
            ),
            vec!["username".to_owned()],
        )
        .with_field("username"));
    }
    Ok(())
}

fn check_roles(roles: Vec<DatabaseUserRole>) -> AtlasResult<Vec<DatabaseUserRole>> {
    if roles.len() > MAX_ROLES {
        return Err(AtlasError::invalid_attribute("roles", "roles"));
    }
    Ok(roles)
}
