//! Organization API keys and their project roles.

use tracing::info;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, NewApiKey, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{ApiKeyId, OrgRole, Page, Paged, ProjectRole, parse_name};
use super::store::ApiKeyRecord;

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
        let mut org_roles = roles
            .iter()
            .map(|r| OrgRole::parse(r))
            .collect::<AtlasResult<Vec<_>>>()?;
        org_roles.sort_by_key(|r| r.as_str());
        org_roles.dedup();
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

    /// Gives a key of the project's organization roles on the project, replacing its roles
    /// there (an empty list removes it from the project).
    pub async fn assign_api_key_to_project(
        &self,
        principal: &Principal,
        group_id: &str,
        api_key_id: &str,
        roles: &[String],
    ) -> AtlasResult<ApiKeyRecord> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let id = ApiKeyId::parse(api_key_id)?;
        let mut project_roles = roles
            .iter()
            .map(|r| ProjectRole::parse(r))
            .collect::<AtlasResult<Vec<_>>>()?;
        project_roles.sort_by_key(|r| r.as_str());
        project_roles.dedup();
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

fn api_key_not_found(id: &ApiKeyId) -> AtlasError {
    AtlasError::new(
        ErrorCode::InvalidApiKeyId,
        format!("No API key with ID {id} exists."),
        vec![id.to_string()],
    )
}
