//! Organizations, and the bootstrap of the first organization and its first API key.

use tracing::info;
use zeroize::Zeroizing;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, NewApiKey, Principal, is_private_key, is_public_key};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::model::{ApiKeyId, OrgId, OrgRole, Organization, Page, Paged, parse_name};
use super::store::StoreError;

/// The meta key under which the default organization's id is kept.
const DEFAULT_ORG_META: &str = "default_org_id";
/// The name of the organization created on first start.
pub const DEFAULT_ORG_NAME: &str = "Default Organization";

/// What [`Core::bootstrap`] did about the first API key.
#[derive(Debug)]
pub enum Bootstrap {
    /// The configured key exists (created or updated).
    ConfiguredKey,
    /// The store had keys already; nothing was created.
    Existing,
    /// A random key was created; it must be handed to the operator.
    Generated(Box<NewApiKey>),
}

impl Core {
    /// Lists the organizations of the calling key (one: its own).
    pub async fn list_organizations(
        &self,
        principal: &Principal,
        page: Page,
    ) -> AtlasResult<Paged<Organization>> {
        let org = self
            .store
            .organization(&principal.org_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| org_not_found(&principal.org_id))?;
        let all = [org];
        let start = usize::try_from(page.offset())
            .unwrap_or(usize::MAX)
            .min(all.len());
        let end = start
            .saturating_add(page.items_per_page as usize)
            .min(all.len());
        Ok(Paged {
            results: all[start..end].to_vec(),
            total_count: page.include_count.then_some(all.len() as u64),
            has_next_page: end < all.len(),
        })
    }

    /// Returns organization `org_id`, which must be the calling key's own (any key of it may
    /// read it, as any may list it) unless the key is the operator's (ORG_OWNER of the
    /// operator's organization, which creates, renames and deletes organizations); another is
    /// `USER_UNAUTHORIZED`, a malformed id `INVALID_ORG_ID`, an unknown or deleted one
    /// `ORG_NOT_FOUND`.
    pub async fn organization(
        &self,
        principal: &Principal,
        org_id: &str,
    ) -> AtlasResult<Organization> {
        let org_id = OrgId::parse(org_id)?;
        if org_id != principal.org_id && !self.is_operator(principal).await? {
            return Err(AtlasError::user_unauthorized());
        }
        self.store
            .organization(&org_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| org_not_found(&org_id))
    }

    /// Creates an organization with a first ORG_OWNER key. Needs ORG_OWNER of the operator's
    /// organization (the default organization, whose first key is the bootstrap key).
    ///
    /// Other organizations are tenants: their owners cannot list or reach an organization
    /// they create, and the operator cannot see it either, so letting them create any would
    /// let a tenant grow the service without bound and out of the operator's sight. They get
    /// `USER_UNAUTHORIZED`, the code (and status) Atlas answers a key without the permission.
    pub async fn create_organization(
        &self,
        principal: &Principal,
        name: &str,
        api_key_desc: &str,
    ) -> AtlasResult<(Organization, NewApiKey)> {
        if !principal.has_org_role(OrgRole::OrgOwner) {
            return Err(AtlasError::user_unauthorized());
        }
        let operator = self
            .store
            .meta(DEFAULT_ORG_META)
            .await
            .map_err(store_error)?;
        if operator.as_deref() != Some(principal.org_id.as_str()) {
            return Err(AtlasError::new(
                ErrorCode::UserUnauthorized,
                "Current user is not authorized to perform this action: only the operator's \
                 organization may create organizations.",
                Vec::new(),
            ));
        }
        let name = parse_name("name", "name", name)?;
        let desc = if api_key_desc.trim().is_empty() {
            format!("{name} owner")
        } else {
            parse_name("api_key_desc", "apiKey.desc", api_key_desc)?
        };
        let now = self.clock.now();
        let org = Organization {
            id: OrgId::generate(now),
            name,
        };
        self.store
            .insert_organization(&org)
            .await
            .map_err(store_error)?;
        let key = self
            .insert_new_key(org.id.clone(), desc, vec![OrgRole::OrgOwner])
            .await?;
        info!(org_id = %org.id, key_id = %principal.key_id, "created organization");
        // In the new organization's trail (its creation, its first key) and in the creating
        // key's organization, whose owners cannot list the new one.
        let now = self.clock.now();
        let created = || {
            AuditEvent::by(principal, now, AuditAction::OrgCreated, None)
                .with_target(org.id.as_str())
        };
        self.audit(created()).await;
        self.audit(created().with_org(org.id.clone())).await;
        // Read again, so the key's event follows the creation in time, as listings show it.
        self.audit(
            AuditEvent::by(
                principal,
                self.clock.now(),
                AuditAction::ApiKeyCreated,
                None,
            )
            .with_org(org.id.clone())
            .with_target(key.record.id.as_str()),
        )
        .await;
        Ok((org, key))
    }

    /// Renames organization `org_id`; needs ORG_OWNER of it or the operator's key. The same
    /// name changes nothing.
    pub async fn rename_organization(
        &self,
        principal: &Principal,
        org_id: &str,
        name: &str,
    ) -> AtlasResult<Organization> {
        let org = self.owned_org(principal, org_id).await?;
        let name = parse_name("name", "name", name)?;
        if name == org.name {
            return Ok(org);
        }
        if !self
            .store
            .rename_organization(&org.id, &name)
            .await
            .map_err(store_error)?
        {
            return Err(org_not_found(&org.id));
        }
        info!(org_id = %org.id, key_id = %principal.key_id, "renamed organization");
        self.audit_org_change(principal, AuditAction::OrgRenamed, &org.id, None)
            .await;
        Ok(Organization { name, ..org })
    }

    /// Deletes organization `org_id` with its API keys; needs ORG_OWNER of it or the
    /// operator's key (which creates organizations, and so must be able to remove them). Refused with
    /// 409 `CANNOT_DELETE_ORG_ACTIVE_PROJECTS` while it has live projects (delete them first,
    /// as in Atlas), and for the operator's organization, which holds the bootstrap key.
    pub async fn delete_organization(
        &self,
        principal: &Principal,
        org_id: &str,
    ) -> AtlasResult<()> {
        let org = self.owned_org(principal, org_id).await?;
        let operator = self
            .store
            .meta(DEFAULT_ORG_META)
            .await
            .map_err(store_error)?;
        if operator.as_deref() == Some(org.id.as_str()) {
            return Err(AtlasError::new(
                ErrorCode::UserUnauthorized,
                "Current user is not authorized to perform this action: the operator's \
                 organization cannot be deleted.",
                Vec::new(),
            ));
        }
        match self
            .store
            .delete_organization(&org.id, self.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(org_not_found(&org.id)),
            Err(StoreError::Conflict) => {
                return Err(AtlasError::new(
                    ErrorCode::CannotDeleteOrgActiveProjects,
                    format!(
                        "Cannot delete organization {} because it has active projects.",
                        org.id
                    ),
                    vec![org.id.to_string()],
                ));
            }
            Err(error) => return Err(store_error(error)),
        }
        info!(org_id = %org.id, key_id = %principal.key_id, "deleted organization");
        // In the deleted organization's trail, and in the operator's, whose owners can still
        // read it (the deleted organization's keys are gone).
        let operator = operator.and_then(|id| OrgId::parse(&id).ok());
        self.audit_org_change(principal, AuditAction::OrgDeleted, &org.id, operator)
            .await;
        Ok(())
    }

    /// Records a change of organization `target` in its trail, in the calling key's and in
    /// `also`'s (each trail once).
    async fn audit_org_change(
        &self,
        principal: &Principal,
        action: AuditAction,
        target: &OrgId,
        also: Option<OrgId>,
    ) {
        let now = self.clock.now();
        let mut trails = vec![target.clone()];
        for org in [Some(principal.org_id.clone()), also].into_iter().flatten() {
            if !trails.contains(&org) {
                trails.push(org);
            }
        }
        for org in trails {
            self.audit(
                AuditEvent::by(principal, now, action, None)
                    .with_org(org)
                    .with_target(target.as_str()),
            )
            .await;
        }
    }

    /// Whether the key is the operator's: ORG_OWNER of the operator's organization.
    async fn is_operator(&self, principal: &Principal) -> AtlasResult<bool> {
        if !principal.has_org_role(OrgRole::OrgOwner) {
            return Ok(false);
        }
        let operator = self
            .store
            .meta(DEFAULT_ORG_META)
            .await
            .map_err(store_error)?;
        Ok(operator.as_deref() == Some(principal.org_id.as_str()))
    }

    /// Organization `org_id` when the key may change it: ORG_OWNER of it, or the operator's.
    async fn owned_org(&self, principal: &Principal, org_id: &str) -> AtlasResult<Organization> {
        let org = self.organization(principal, org_id).await?;
        if !principal.has_org_role(OrgRole::OrgOwner) {
            return Err(AtlasError::user_unauthorized());
        }
        Ok(org)
    }

    /// Generates and stores a key, drawing another public key on the (rare) collision.
    pub(super) async fn insert_new_key(
        &self,
        org_id: OrgId,
        desc: String,
        roles: Vec<OrgRole>,
    ) -> AtlasResult<NewApiKey> {
        for _ in 0..5 {
            let key = NewApiKey::generate(
                org_id.clone(),
                desc.clone(),
                roles.clone(),
                self.clock.now(),
            );
            match self.store.insert_api_key(&key.record).await {
                Ok(()) => return Ok(key),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(store_error(error)),
            }
        }
        Err(AtlasError::internal("public key collisions exhausted"))
    }

    /// Ensures the default organization exists and returns it (race-free across replicas).
    pub async fn default_organization(&self) -> AtlasResult<Organization> {
        let now = self.clock.now();
        let candidate = OrgId::generate(now);
        let id = self
            .store
            .put_meta_if_absent(DEFAULT_ORG_META, candidate.as_str())
            .await
            .map_err(store_error)?;
        let id = OrgId::parse(&id)?;
        if let Some(org) = self.store.organization(&id).await.map_err(store_error)? {
            return Ok(org);
        }
        let org = Organization {
            id,
            name: DEFAULT_ORG_NAME.to_owned(),
        };
        match self.store.insert_organization(&org).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(org),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Makes sure an operator can call the service: the configured `public:private` key exists
    /// as an ORG_OWNER key of the default organization (idempotent), or, without one, a random
    /// key is generated when the store has no key at all.
    pub async fn bootstrap(&self, configured: Option<(&str, &str)>) -> AtlasResult<Bootstrap> {
        let org = self.default_organization().await?;
        let Some((public_key, private_key)) = configured else {
            if self.store.any_api_key().await.map_err(store_error)? {
                return Ok(Bootstrap::Existing);
            }
            let key = self
                .insert_new_key(org.id, "bootstrap key".to_owned(), vec![OrgRole::OrgOwner])
                .await?;
            return Ok(Bootstrap::Generated(Box::new(key)));
        };
        if !is_public_key(public_key) || !is_private_key(private_key) {
            return Err(AtlasError::new(
                ErrorCode::InvalidAttribute,
                "The bootstrap API key must be <8 lowercase letters>:<lowercase UUID>.",
                Vec::new(),
            ));
        }
        let now = self.clock.now();
        let key = NewApiKey::from_pair(
            ApiKeyId::generate(now),
            org.id,
            public_key.to_owned(),
            Zeroizing::new(private_key.to_owned()),
            "bootstrap key".to_owned(),
            vec![OrgRole::OrgOwner],
            now,
        );
        match self.store.insert_api_key(&key.record).await {
            Ok(()) => Ok(Bootstrap::ConfiguredKey),
            Err(StoreError::Conflict) => {
                self.store
                    .update_api_key_secrets(&key.record)
                    .await
                    .map_err(store_error)?;
                Ok(Bootstrap::ConfiguredKey)
            }
            Err(error) => Err(store_error(error)),
        }
    }

    /// Checks that the principal may read or change an organization, which must exist.
    pub(super) async fn authorized_org(
        &self,
        principal: &Principal,
        org_id: &str,
        access: Access,
    ) -> AtlasResult<Organization> {
        let org_id = OrgId::parse(org_id)?;
        principal.authorize_org(&org_id, access)?;
        self.store
            .organization(&org_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| org_not_found(&org_id))
    }
}

fn org_not_found(id: &OrgId) -> AtlasError {
    AtlasError::new(
        ErrorCode::OrgNotFound,
        format!("No organization with ID {id} exists."),
        vec![id.to_string()],
    )
}
