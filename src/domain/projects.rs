//! Projects (Atlas "groups").

use tracing::info;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{OrgRole, Page, Paged, Project, ProjectId, ProjectRole, parse_name};
use super::store::StoreError;

impl Core {
    /// Creates a project in the caller's organization (or `org_id`, which must be it).
    pub async fn create_project(
        &self,
        principal: &Principal,
        name: &str,
        org_id: &str,
    ) -> AtlasResult<Project> {
        let name = parse_name("name", "name", name)?;
        let org_id = if org_id.is_empty() {
            principal.org_id.to_string()
        } else {
            org_id.to_owned()
        };
        let org = self
            .authorized_org(principal, &org_id, Access::CreateProject)
            .await?;
        let now = self.clock.now();
        let project = Project {
            id: ProjectId::generate(now),
            name,
            org_id: org.id,
            created: now.replace_nanosecond(0).expect("0 is a valid nanosecond"),
        };
        match self.store.insert_project(&project).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(group_already_exists(&project.name)),
            Err(error) => return Err(store_error(error)),
        }
        if !principal.has_org_role(OrgRole::OrgOwner) {
            // As in Atlas, a project creator (ORG_GROUP_CREATOR) owns what it creates.
            self.store
                .set_api_key_project_roles(
                    &principal.key_id,
                    &project.id,
                    &[ProjectRole::GroupOwner],
                )
                .await
                .map_err(store_error)?;
        }
        info!(project_id = %project.id, key_id = %principal.key_id, "created project");
        self.audit(AuditEvent::by(
            principal,
            now,
            AuditAction::ProjectCreated,
            Some(&project.id),
        ))
        .await;
        Ok(project)
    }

    /// Returns a project.
    pub async fn project(&self, principal: &Principal, group_id: &str) -> AtlasResult<Project> {
        self.authorized_project(principal, group_id, Access::Read)
            .await
    }

    /// Lists the projects the caller can read: all of its organization's with an org role,
    /// else those it holds a project role on.
    pub async fn list_projects(
        &self,
        principal: &Principal,
        page: Page,
    ) -> AtlasResult<Paged<Project>> {
        let whole_org = principal.has_org_role(OrgRole::OrgOwner)
            || principal.has_org_role(OrgRole::OrgReadOnly);
        let member = (!whole_org).then_some(&principal.key_id);
        self.store
            .list_projects(&principal.org_id, member, page)
            .await
            .map_err(store_error)
    }

    /// Returns the caller's organization's project of that name; 404 `GROUP_NAME_NOT_FOUND`
    /// when there is none (Atlas's `GET /groups/byName/{groupName}`).
    pub async fn project_by_name(&self, principal: &Principal, name: &str) -> AtlasResult<Project> {
        let project = self
            .store
            .project_by_name(&principal.org_id, name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| group_name_not_found(name))?;
        principal.authorize_project(&project, Access::Read)?;
        Ok(project)
    }

    /// Lists the projects of organization `org_id` the caller can read: it must be the caller's
    /// own (Atlas's `GET /orgs/{orgId}/groups`), else `USER_UNAUTHORIZED`.
    pub async fn list_organization_projects(
        &self,
        principal: &Principal,
        org_id: &str,
        page: Page,
    ) -> AtlasResult<Paged<Project>> {
        self.organization(principal, org_id).await?;
        self.list_projects(principal, page).await
    }

    /// Renames a project (Atlas's `PATCH /groups/{groupId}`): the name follows the rules of a
    /// new project's, and is unique among the organization's live projects (409
    /// `GROUP_ALREADY_EXISTS`, as on create). The same name again changes nothing.
    pub async fn rename_project(
        &self,
        principal: &Principal,
        group_id: &str,
        name: &str,
    ) -> AtlasResult<Project> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let name = parse_name("name", "name", name)?;
        if name == project.name {
            return Ok(project);
        }
        match self.store.rename_project(&project.id, &name).await {
            Ok(true) => {}
            Ok(false) => return Err(AtlasError::group_not_found(project.id.as_str())),
            Err(StoreError::Conflict) => return Err(group_already_exists(&name)),
            Err(error) => return Err(store_error(error)),
        }
        info!(project_id = %project.id, key_id = %principal.key_id, "renamed project");
        Ok(Project { name, ..project })
    }

    /// Deletes a project: its users and settings go, its CA can sign no more, and the records
    /// of the certificates it issued are kept.
    pub async fn delete_project(&self, principal: &Principal, group_id: &str) -> AtlasResult<()> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let deleted = self
            .store
            .delete_project(&project.id, self.clock.now())
            .await
            .map_err(store_error)?;
        let forgot_ca_keys = self.forget_project_cas(&project.id).await;
        if !deleted {
            return Err(AtlasError::group_not_found(project.id.as_str()));
        }
        info!(project_id = %project.id, key_id = %principal.key_id, forgot_ca_keys, "deleted project");
        self.audit(AuditEvent::by(
            principal,
            self.clock.now(),
            AuditAction::ProjectDeleted,
            Some(&project.id),
        ))
        .await;
        Ok(())
    }
}

/// 409 `GROUP_ALREADY_EXISTS`: the organization has a live project of that name.
fn group_already_exists(name: &str) -> AtlasError {
    AtlasError::new(
        ErrorCode::GroupAlreadyExists,
        format!("A group with name \"{name}\" already exists."),
        vec![name.to_owned()],
    )
}

/// 404 `GROUP_NAME_NOT_FOUND`, Atlas's answer to a name no project of the organization has.
fn group_name_not_found(name: &str) -> AtlasError {
    AtlasError::new(
        ErrorCode::GroupNameNotFound,
        format!("No group with name \"{name}\" exists."),
        vec![name.to_owned()],
    )
}
