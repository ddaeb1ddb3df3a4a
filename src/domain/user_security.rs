//! A project's X.509 settings: self-managed mode with a customer CA.

use tracing::info;
use x509_parser::pem::Pem;

use super::audit::{AuditAction, AuditEvent};
use super::auth::{Access, Principal};
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::key_type::KeyType;
use super::model::UserSecurity;

/// The largest customer CA bundle accepted (bytes).
pub const MAX_CUSTOMER_CA_LEN: usize = 256 * 1024;

impl Core {
    /// Returns a project's X.509 settings.
    pub async fn user_security(
        &self,
        principal: &Principal,
        group_id: &str,
    ) -> AtlasResult<UserSecurity> {
        let project = self
            .authorized_project(principal, group_id, Access::Read)
            .await?;
        self.store
            .user_security(&project.id)
            .await
            .map_err(store_error)
    }

    /// Sets the customer CA (self-managed mode) or, with an empty PEM, clears it.
    pub async fn set_customer_ca(
        &self,
        principal: &Principal,
        group_id: &str,
        cas_pem: &str,
    ) -> AtlasResult<UserSecurity> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        let pem = if cas_pem.trim().is_empty() {
            None
        } else {
            self.check_customer_ca(cas_pem)?;
            Some(cas_pem)
        };
        self.store
            .set_customer_ca(&project.id, pem)
            .await
            .map_err(store_error)?;
        info!(project_id = %project.id, self_managed = pem.is_some(), key_id = %principal.key_id, "set customer x509 ca");
        // Atlas has one event type for both: USER_SECURITY_SETTINGS_UPDATED.
        let action = AuditAction::UserSecuritySet;
        self.audit(AuditEvent::by(
            principal,
            self.clock.now(),
            action,
            Some(&project.id),
        ))
        .await;
        self.store
            .user_security(&project.id)
            .await
            .map_err(store_error)
    }

    /// Sets the key type of the project's CA (RSA-4096, ECDSA P-256 or P-384). Allowed until
    /// the CA exists (it is created with the first certificate; a CA read does not create it);
    /// afterwards only the CA's own type is accepted (a no-op), anything else is
    /// `CA_KEY_TYPE_IMMUTABLE`.
    pub async fn set_ca_key_type(
        &self,
        principal: &Principal,
        group_id: &str,
        key_type: KeyType,
    ) -> AtlasResult<UserSecurity> {
        let project = self
            .authorized_project(principal, group_id, Access::Write)
            .await?;
        if !key_type.allowed_for_ca() {
            return Err(AtlasError::invalid_enum_value(
                "ca_key_type",
                key_type.as_str(),
            ));
        }
        let changed = self
            .store
            .set_ca_key_type(&project.id, key_type)
            .await
            .map_err(store_error)?;
        let security = self
            .store
            .user_security(&project.id)
            .await
            .map_err(store_error)?;
        if !changed && security.ca_key_type != key_type {
            return Err(AtlasError::new(
                ErrorCode::CaKeyTypeImmutable,
                format!(
                    "The project's CA exists with key type {}; its key type cannot change.",
                    security.ca_key_type
                ),
                vec![security.ca_key_type.to_string()],
            )
            .with_field("ca_key_type"));
        }
        if changed {
            info!(project_id = %project.id, %key_type, key_id = %principal.key_id, "set project ca key type");
        }
        Ok(security)
    }

    /// Validates a customer CA bundle: PEM certificates only, none expired.
    fn check_customer_ca(&self, cas_pem: &str) -> AtlasResult<()> {
        let invalid = || {
            AtlasError::new(
                ErrorCode::InvalidX509CaCertificate,
                "The customer CA must be one or more PEM-encoded X.509 certificates.",
                Vec::new(),
            )
            .with_field("customer_x509.cas")
        };
        if cas_pem.len() > MAX_CUSTOMER_CA_LEN {
            return Err(invalid());
        }
        let now = self.clock.now();
        let mut count = 0;
        for pem in Pem::iter_from_buffer(cas_pem.as_bytes()) {
            let pem = pem.map_err(|_| invalid())?;
            if pem.label != "CERTIFICATE" {
                return Err(invalid());
            }
            let cert = pem.parse_x509().map_err(|_| invalid())?;
            let not_after = cert.validity().not_after.to_datetime();
            if not_after < now {
                return Err(AtlasError::new(
                    ErrorCode::ExpiredX509CaCertificate,
                    format!(
                        "The X.509 CA certificate {} expired on {not_after}.",
                        cert.subject()
                    ),
                    vec![cert.subject().to_string()],
                )
                .with_field("customer_x509.cas"));
            }
            count += 1;
        }
        if count == 0 {
            return Err(invalid());
        }
        Ok(())
    }
}
