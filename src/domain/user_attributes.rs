//! Atlas's descriptive attributes of a database user, stored and returned: `description`,
//! `labels`, `scopes` and `deleteAfterDate` (the time a background task deletes the user,
//! [`Core::delete_due_database_users`]). Limits are the v2 specification's (`CloudDatabaseUser`,
//! `ComponentLabel`, `UserScope`) where it has one, and dbcert's own bounds where it has none.

use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult};

/// The longest description (the spec's `maxLength`).
pub const MAX_DESCRIPTION_CHARS: usize = 100;
/// The longest label key or value (the spec's `maxLength`).
pub const MAX_LABEL_CHARS: usize = 255;
/// The most labels one user may carry (dbcert's bound; the spec sets none).
pub const MAX_LABELS: usize = 50;
/// The most scopes one user may carry (dbcert's bound; the spec sets none).
pub const MAX_SCOPES: usize = 100;
/// The longest scope name (Atlas's cluster name limit).
pub const MAX_SCOPE_NAME_CHARS: usize = 64;
/// How far ahead `deleteAfterDate` may be: "a future date that falls within one week of making
/// the API request" (the spec).
pub const MAX_DELETE_AFTER: Duration = Duration::weeks(1);
/// The scope types Atlas names.
pub const SCOPE_TYPES: &[&str] = &["CLUSTER", "DATA_LAKE", "STREAM"];

/// A user's descriptive attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserAttributes {
    /// The description; empty is none.
    pub description: String,
    /// Key-value labels.
    pub labels: Vec<UserLabel>,
    /// The clusters, data lakes and stream workspaces the user is limited to (empty: all).
    pub scopes: Vec<UserScope>,
    /// When the user is deleted (whole seconds).
    pub delete_after: Option<OffsetDateTime>,
}

/// One label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLabel {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// One scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserScope {
    /// The resource's name.
    pub name: String,
    /// `CLUSTER`, `DATA_LAKE` or `STREAM`.
    pub scope_type: String,
}

/// Attributes of a create or an update, as received; `None` leaves an attribute as it is
/// (on create: empty).
#[derive(Clone, Debug, Default)]
pub struct AttributeChanges {
    /// A description; `""` clears it (as Terraform sends).
    pub description: Option<String>,
    /// Labels (replace them all).
    pub labels: Option<Vec<UserLabel>>,
    /// Scopes (replace them all).
    pub scopes: Option<Vec<UserScope>>,
    /// A deletion time.
    pub delete_after: Option<OffsetDateTime>,
}

// === impl UserAttributes ===

impl UserAttributes {
    /// Applies checked changes at `now`: out-of-range values are 400 `INVALID_ATTRIBUTE` naming
    /// the attribute.
    pub fn apply(&mut self, changes: AttributeChanges, now: OffsetDateTime) -> AtlasResult<()> {
        if let Some(description) = changes.description {
            if description.chars().count() > MAX_DESCRIPTION_CHARS
                || description.chars().any(char::is_control)
            {
                return Err(AtlasError::invalid_attribute("description", "description"));
            }
            self.description = description;
        }
        if let Some(labels) = changes.labels {
            let valid = |s: &str| {
                !s.is_empty()
                    && s.chars().count() <= MAX_LABEL_CHARS
                    && !s.chars().any(char::is_control)
            };
            if labels.len() > MAX_LABELS || !labels.iter().all(|l| valid(&l.key) && valid(&l.value))
            {
                return Err(AtlasError::invalid_attribute("labels", "labels"));
            }
            self.labels = labels;
        }
        if let Some(scopes) = changes.scopes {
            if scopes.len() > MAX_SCOPES
                || !scopes
                    .iter()
                    .all(|s| valid_scope_name(&s.name) && SCOPE_TYPES.contains(&&*s.scope_type))
            {
                return Err(AtlasError::invalid_attribute("scopes", "scopes"));
            }
            self.scopes = scopes;
        }
        if let Some(at) = changes.delete_after {
            if at <= now || at > now + MAX_DELETE_AFTER {
                return Err(AtlasError::invalid_attribute(
                    "delete_after_date",
                    "deleteAfterDate",
                ));
            }
            self.delete_after = Some(at.replace_nanosecond(0).unwrap_or(at));
        }
        Ok(())
    }
}

/// The spec's `^[a-zA-Z0-9][a-zA-Z0-9-]*$`, bounded.
fn valid_scope_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.len() <= MAX_SCOPE_NAME_CHARS
}

impl Core {
    /// Deletes the database users whose `deleteAfterDate` has come, at most `limit` of them,
    /// each through the one deletion path (`remove_database_user`), with the service as the
    /// actor. Every replica runs it; the store's delete of a due user succeeds on one replica
    /// only, and only that one records the deletion. Returns how many it deleted.
    pub async fn delete_due_database_users(&self, limit: u32) -> AtlasResult<u64> {
        let now = self.clock.now();
        let due = self
            .store
            .due_database_users(now, limit)
            .await
            .map_err(store_error)?;
        let mut deleted = 0;
        for user in due {
            match self
                .remove_database_user(
                    None,
                    &user.project_id,
                    user.database_name,
                    &user.username,
                    Some(now),
                )
                .await
            {
                Ok(true) => {
                    deleted += 1;
                    info!(project_id = %user.project_id, username = %user.username, "deleted database user at its deleteAfterDate");
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(project_id = %user.project_id, username = %user.username, %error, "deleting a due database user failed; trying again later");
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(key: &str, value: &str) -> UserLabel {
        UserLabel {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn limits_are_the_specs() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10_000);
        let mut attributes = UserAttributes::default();
        let code = |attributes: &mut UserAttributes, changes| {
            attributes
                .apply(changes, now)
                .err()
                .map(|e| e.parameters().to_vec())
        };
        let ok = AttributeChanges {
            description: Some("d".repeat(MAX_DESCRIPTION_CHARS)),
            labels: Some(vec![label("k", &"v".repeat(MAX_LABEL_CHARS))]),
            scopes: Some(vec![UserScope {
                name: "Cluster0-a".into(),
                scope_type: "CLUSTER".into(),
            }]),
            delete_after: Some(now + MAX_DELETE_AFTER),
        };
        assert_eq!(code(&mut attributes, ok), None);
        assert_eq!(attributes.labels.len(), 1);
        for (changes, name) in [
            (
                AttributeChanges {
                    description: Some("d".repeat(MAX_DESCRIPTION_CHARS + 1)),
                    ..Default::default()
                },
                "description",
            ),
            (
                AttributeChanges {
                    labels: Some(vec![label("", "v")]),
                    ..Default::default()
                },
                "labels",
            ),
            (
                AttributeChanges {
                    labels: Some(vec![label("k", "v"); MAX_LABELS + 1]),
                    ..Default::default()
                },
                "labels",
            ),
            (
                AttributeChanges {
                    scopes: Some(vec![UserScope {
                        name: "-x".into(),
                        scope_type: "CLUSTER".into(),
                    }]),
                    ..Default::default()
                },
                "scopes",
            ),
            (
                AttributeChanges {
                    scopes: Some(vec![UserScope {
                        name: "x".into(),
                        scope_type: "SERVERLESS".into(),
                    }]),
                    ..Default::default()
                },
                "scopes",
            ),
            (
                AttributeChanges {
                    delete_after: Some(now),
                    ..Default::default()
                },
                "deleteAfterDate",
            ),
            (
                AttributeChanges {
                    delete_after: Some(now + MAX_DELETE_AFTER + Duration::seconds(1)),
                    ..Default::default()
                },
                "deleteAfterDate",
            ),
        ] {
            assert_eq!(code(&mut attributes, changes), Some(vec![name.to_owned()]));
        }
        // "" clears the description.
        let clear = AttributeChanges {
            description: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(code(&mut attributes, clear), None);
        assert_eq!(attributes.description, "");
        assert_eq!(attributes.labels.len(), 1, "untouched");
    }
}
