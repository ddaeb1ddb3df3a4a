//! A project's X.509 settings: the customer CA and the key type of its future CA, columns of
//! the project's row.

use async_trait::async_trait;

use super::SqlStore;
use super::convert::corrupt;
use super::db::{Backend, dispatch};
use crate::domain::{KeyType, ProjectId, StoreResult, UserSecurity, UserSecurityStore};

#[async_trait]
impl UserSecurityStore for SqlStore {
    async fn user_security(&self, project_id: &ProjectId) -> StoreResult<UserSecurity> {
        self.cache
            .security
            .get_or_read_value(project_id, || async {
                let row: Option<(Option<String>, String)> = dispatch!(&self.db, |pools: DB| {
                    sqlx::query_as(
                        "SELECT customer_ca_pem, ca_key_type FROM projects WHERE id = $1",
                    )
                    .bind(project_id.as_str())
                    .fetch_optional(&pools.read)
                    .await
                    .map_err(DB::map_err)?
                });
                let Some((customer_ca_pem, ca_key_type)) = row else {
                    return Ok(UserSecurity::default());
                };
                Ok(UserSecurity {
                    customer_ca_pem,
                    ca_key_type: KeyType::parse(&ca_key_type).ok_or_else(|| corrupt("key type"))?,
                })
            })
            .await
    }

    async fn set_customer_ca(&self, project_id: &ProjectId, pem: Option<&str>) -> StoreResult<()> {
        let set: StoreResult<()> = async {
            dispatch!(&self.db, |pools: DB| {
                sqlx::query("UPDATE projects SET customer_ca_pem = $1 WHERE id = $2")
                    .bind(pem)
                    .bind(project_id.as_str())
                    .execute(&pools.read)
                    .await
                    .map_err(DB::map_err)?;
            });
            Ok(())
        }
        .await;
        self.cache.security.remove(project_id);
        set
    }

    async fn set_ca_key_type(
        &self,
        project_id: &ProjectId,
        key_type: KeyType,
    ) -> StoreResult<bool> {
        let set: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "UPDATE projects SET ca_key_type = $1 \
                     WHERE id = $2 AND deleted_at IS NULL AND ca_key_type_locked = 0",
                )
                .bind(key_type.as_str())
                .bind(project_id.as_str())
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done == 1)
        }
        .await;
        self.cache.security.remove(project_id);
        set
    }
}
