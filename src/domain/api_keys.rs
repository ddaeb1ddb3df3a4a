//! Organization API keys and their project roles: the organization's keys (create, read,
//! change, delete) and a project's keys (list, create one for the project, assign, unassign).

use tracing::info;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, NewApiKey, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{ApiKeyId, OrgRole, Page, Paged, ProjectRole, parse_name};
use super::store::{ApiKeyRecord, StoreError};

impl Core {
    /// Creates an organization API key; the private key is returned only here.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        org_id: &str,
        desc: &str,
        roles: &[String],
    ) -> AtlasResult<NewApiKey> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        let desc = parse_name("desc", "desc", desc)?;
        if roles.is_empty() {
            return Err(AtlasError::missing_attribute("roles", "roles"));
        }
        let org_roles = parse_org_roles(roles)?;
        let key = self.insert_new_key(org.id, desc, org_roles).await?;
        info!(new_key_id = %key.record.id, public_key = %key.record.public_key, key_id = %principal.key_id, "created api key");
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::ApiKeyCreated,
                None,
            )
            .with_org(key.record.org_id.clone())
            .with_target(key.record.id.as_str()),
        )
        .await;
        Ok(key)
    }

    /// Lists an organization's keys (private keys are not stored, so never shown).
    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        org_id: &str,
        page: Page,
    ) -> AtlasResult<Paged<ApiKeyRecord>> {
        let org = self.authorized_org(principal, org_id, Access::Read).await?;
        self.store
            .list_api_keys(&org.id, page)
            .await
            .map_err(store_error)
    }

    /// Deletes an organization's key.
    pub async fn delete_api_key(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
    ) -> AtlasResult<()> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        let id = ApiKeyId::parse(api_key_id)?;
        if !self
            .store
            .delete_api_key(&org.id, &id)
            .await
            .map_err(store_error)?
        {
            return Err(api_key_not_found(&id));
        }
        info!(deleted_key_id = %id, key_id = %principal.key_id, "deleted api key");
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::ApiKeyDeleted,
                None,
            )
            .with_org(org.id.clone())
            .with_target(id.as_str()),
        )
        .await;
        Ok(())
    }

    /// Returns one key of an organization (any member reads them).
    pub async fn api_key(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
    ) -> AtlasResult<ApiKeyRecord> {
        let org = self.authorized_org(principal, org_id, Access::Read).await?;
        let id = ApiKeyId::parse(api_key_id)?;
        self.store
            .api_key(&id)
            .await
            .map_err(store_error)?
            .filter(|k| k.org_id == org.id)
            .ok_or_else(|| api_key_not_found(&id))
    }

    /// Changes a key's description and/or organization roles (`None` leaves it unchanged; a
    /// role list, when given, holds at least one role).
    pub async fn update_api_key(
        &self,
        principal: &Principal,
        org_id: &str,
        api_key_id: &str,
        desc: Option<&str>,
        roles: Option<&[String]>,
    ) -> AtlasResult<ApiKeyRecord> {
        let org = self
            .authorized_org(principal, org_id, Access::Write)
            .await?;
        let id = ApiKeyId::parse(api_key_id)?;
        let desc = desc.map(|d| parse_name("desc", "desc", d)).transpose()?;
        let org_roles = roles.map(parse_org_roles).transpose()?;
        if !self
            .store
            .update_api_key(&org.id, &id, desc.as_deref(), org_roles.as_deref())
            .await
            .map_err(store_error)?
        {
            return Err(api_key_not_found(&id));
        }
        info!(updated_key_id = %id, key_id = %principal.key_id, "updated api key");
        let changes = [
            (desc.is_some(), AuditAction::ApiKeyDescriptionChanged),
            (org_roles.is_some(), AuditAction::ApiKeyRolesChanged),
        ];
        for (_, action) in changes.into_iter().filter(|(changed, _)| *changed) {
            self.audit(
                AuditEvent::by(principal, self.clock.now(), action, None)
                    .with_org(org.id.clone())
                    .with_target(id.as_str()),
            )
            .await;
        }
        self.api_key(principal, org.id.as_str(), id.as_str()).await
    }

    /// Lists the keys assigned to a project (any role on the project reads them).
    pub async fn list_project_api_keys(
        &self,
        principal: &Principal,
        group_id: &str,
        page: Page,
    ) -> AtlasResult<Paged<ApiKeyRecord>> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        self.store
            .list_project_api_keys(&project.id, page)
            .await
            .map_err(store_error)
    }

    /// Creates a key of the project's organization, an ORG_MEMBER there with `roles` on the
    /// project, as Atlas's project key creation does; the private key is returned only here.
    pub async fn create_project_api_key(
        &self,
        principal: &Principal,
        group_id: &str,
        desc: &str,
        roles: &[String],
    ) -> AtlasResult<NewApiKey> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let desc = parse_name("desc", "desc", desc)?;
        if roles.is_empty() {
            return Err(AtlasError::missing_attribute("roles", "roles"));
        }
        let project_roles = parse_project_roles(roles)?;
        let mut attempts = 0;
        let key = loop {
            let mut key = NewApiKey::generate(
                project.org_id.clone(),
                desc.clone(),
                vec![OrgRole::OrgMember],
                self.clock.now(),
            );
            key.record.project_roles = project_roles
                .iter()
                .map(|role| (project.id.clone(), *role))
                .collect();
            match self.store.insert_api_key(&key.record).await {
                Ok(()) => break key,
                Err(StoreError::Conflict) if attempts < 5 => attempts += 1,
                Err(StoreError::Conflict) => {
                    return Err(AtlasError::internal("public key collisions exhausted"));
                }
                Err(error) => return Err(store_error(error)),
            }
        };
        info!(project_id = %project.id, new_key_id = %key.record.id, public_key = %key.record.public_key, key_id = %principal.key_id, "created project api key");
        let now = self.clock.now();
        self.audit(
            AuditEvent::by(principal, now, AuditAction::ApiKeyCreated, None)
                .with_org(project.org_id.clone())
                .with_target(key.record.id.as_str()),
        )
        .await;
        self.audit(
            AuditEvent::by(
                principal,
                now,
                AuditAction::ApiKeyAssigned,
                Some(&project.id),
            )
            .with_target(key.record.id.as_str()),
        )
        .await;
        Ok(key)
    }

    /// Removes a key from a project: all its roles there go. A key of the organization that
    /// is not assigned to the project is `INVALID_API_KEY_ID` (404), as a key that does not
    /// exist.
    pub async fn unassign_api_key_from_project(
        &self,
        principal: &Principal,
        group_id: &str,
        api_key_id: &str,
    ) -> AtlasResult<()> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let id = ApiKeyId::parse(api_key_id)?;
        let key = self
            .store
            .api_key(&id)
            .await
            .map_err(store_error)?
            .filter(|k| {
                k.org_id == project.org_id && k.project_roles.iter().any(|(p, _)| *p == project.id)
            })
            .ok_or_else(|| api_key_not_found(&id))?;
        self.store
            .set_api_key_project_roles(&key.id, &project.id, &[])
            .await
            .map_err(store_error)?;
        info!(project_id = %project.id, unassigned_key_id = %key.id, key_id = %principal.key_id, "removed api key from project");
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::ApiKeyRemovedFromProject,
                Some(&project.id),
            )
            .with_target(key.id.as_str()),
        )
        .await;
        Ok(())
    }

    /// Gives a key of the project's organization roles on the project, replacing its roles
    /// there (an empty list removes it from the project), and optionally a new description.
    pub async fn assign_api_key_to_project(
        &self,
        principal: &Principal,
        group_id: &str,
        api_key_id: &str,
        roles: &[String],
        desc: Option<&str>,
    ) -> AtlasResult<ApiKeyRecord> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let id = ApiKeyId::parse(api_key_id)?;
        let project_roles = parse_project_roles(roles)?;
        let desc = desc.map(|d| parse_name("desc", "desc", d)).transpose()?;
        let key = self
            .store
            .api_key(&id)
            .await
            .map_err(store_error)?
            .filter(|k| k.org_id == project.org_id)
            .ok_or_else(|| api_key_not_found(&id))?;
        let had_roles = key.project_roles.iter().any(|(p, _)| *p == project.id);
        self.store
            .set_api_key_project_roles(&key.id, &project.id, &project_roles)
            .await
            .map_err(store_error)?;
        if let Some(desc) = desc.as_deref() {
            self.store
                .update_api_key(&project.org_id, &key.id, Some(desc), None)
                .await
                .map_err(store_error)?;
        }
        // Atlas's three events: added to the project, roles changed there, removed from it.
        let action = match (had_roles, project_roles.is_empty()) {
            (_, true) => AuditAction::ApiKeyRemovedFromProject,
            (true, false) => AuditAction::ApiKeyRolesChanged,
            (false, false) => AuditAction::ApiKeyAssigned,
        };
        info!(project_id = %project.id, assigned_key_id = %key.id, key_id = %principal.key_id, "assigned api key to project");
        self.audit(
            AuditEvent::by(principal, self.clock.now(), action, Some(&project.id))
                .with_target(key.id.as_str()),
        )
        .await;
        self.store
            .api_key(&id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| api_key_not_found(&id))
    }
}

/// Parses organization role names: at least one, duplicates dropped.
fn parse_org_roles(roles: &[String]) -> AtlasResult<Vec<OrgRole>> {
    if roles.is_empty() {
        return Err(AtlasError::missing_attribute("roles", "roles"));
    }
    let mut org_roles = roles
        .iter()
        .map(|r| OrgRole::parse(r))
        .collect::<AtlasResult<Vec<_>>>()?;
    org_roles.sort_by_key(|r| r.as_str());
    org_roles.dedup();
    Ok(org_roles)
}

/// Parses project role names, duplicates dropped.
fn parse_project_roles(roles: &[String]) -> AtlasResult<Vec<ProjectRole>> {
    if roles.len() > ProjectRole::ALL.len() * 4 {
        return Err(AtlasError::invalid_attribute("roles", "roles"));
    }
    let mut project_roles = roles
        .iter()
        .map(|r| ProjectRole::parse(r))
        .collect::<AtlasResult<Vec<_>>>()?;
    project_roles.sort_by_key(|r| r.as_str());
    project_roles.dedup();
    Ok(project_roles)
}

pub(super) fn api_key_not_found(id: &ApiKeyId) -> AtlasError {
    AtlasError::new(
        ErrorCode::InvalidApiKeyId,
        format!("No API key with ID {id} exists."),
        vec![id.to_string()],
    )
}
