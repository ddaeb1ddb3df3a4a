//! API keys (`api_keys`) and their roles on projects (`api_key_project_roles`). A key is read
//! with its project roles: one more query for one key, and one more query for a whole page of
//! keys (not one per key).

use std::collections::HashMap;

use async_trait::async_trait;

use super::SqlStore;
use super::convert::{corrupt, from_secs, limit, offset, org_id, paged, project_id, to_secs};
use super::db::{Backend, dispatch};
use crate::domain::{
    AccessListAdd, AccessListEntry, AccessListItem, ApiKeyId, ApiKeyRecord, ApiKeyStore, OrgId,
    OrgRole, Page, Paged, ProjectId, ProjectRole, StoreResult, is_public_key,
};

/// The columns of a key ([`ApiKeyRow`]).
const API_KEY_COLUMNS: &str =
    "id, org_id, public_key, description, ha1_md5, ha1_sha256, org_roles, created_at";
/// One key by public key (authentication).
const SELECT_BY_PUBLIC_KEY: &str = "SELECT id, org_id, public_key, description, ha1_md5, \
     ha1_sha256, org_roles, created_at FROM api_keys WHERE public_key = $1";
/// One key by id.
const SELECT_BY_ID: &str = "SELECT id, org_id, public_key, description, ha1_md5, ha1_sha256, \
     org_roles, created_at FROM api_keys WHERE id = $1";
/// The project roles of one key.
const SELECT_ROLES: &str =
    "SELECT project_id, role FROM api_key_project_roles WHERE api_key_id = $1";

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let inserted: StoreResult<()> = async {
            dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                sqlx::query(
                    "INSERT INTO api_keys (id, org_id, public_key, description, ha1_md5, \
                     ha1_sha256, org_roles, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(key.id.as_str())
                .bind(key.org_id.as_str())
                .bind(&key.public_key)
                .bind(&key.desc)
                .bind(&key.ha1_md5)
                .bind(&key.ha1_sha256)
                .bind(org_roles_to_text(&key.org_roles))
                .bind(to_secs(key.created))
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                for (project, role) in &key.project_roles {
                    sqlx::query(
                        "INSERT INTO api_key_project_roles (api_key_id, project_id, role) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(key.id.as_str())
                    .bind(project.as_str())
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                }
                tx.commit().await.map_err(DB::map_err)?;
            });
            Ok(())
        }
        .await;
        self.cache.api_keys.clear();
        inserted
    }

    async fn update_api_key_secrets(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        let updated: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "UPDATE api_keys SET org_id = $1, ha1_md5 = $2, ha1_sha256 = $3, \
                     org_roles = $4 WHERE public_key = $5",
                )
                .bind(key.org_id.as_str())
                .bind(&key.ha1_md5)
                .bind(&key.ha1_sha256)
                .bind(org_roles_to_text(&key.org_roles))
                .bind(&key.public_key)
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        self.cache.api_keys.clear();
        updated
    }

    async fn update_api_key(
        &self,
        org_id: &OrgId,
        id: &ApiKeyId,
        desc: Option<&str>,
        org_roles: Option<&[OrgRole]>,
    ) -> StoreResult<bool> {
        let roles = org_roles.map(org_roles_to_text);
        let updated: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "UPDATE api_keys SET description = COALESCE($1, description), \
                     org_roles = COALESCE($2, org_roles) WHERE id = $3 AND org_id = $4",
                )
                .bind(desc)
                .bind(roles.as_deref())
                .bind(id.as_str())
                .bind(org_id.as_str())
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        self.cache.api_keys.clear();
        updated
    }

    async fn list_project_api_keys(
        &self,
        project_id: &ProjectId,
        page: Page,
    ) -> StoreResult<Paged<ApiKeyRecord>> {
        self.list_api_keys_where(
            "id IN (SELECT api_key_id FROM api_key_project_roles WHERE project_id = $1)",
            project_id.as_str(),
            page,
        )
        .await
    }

    async fn api_key_by_public_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
        if !is_public_key(public_key) {
            // No key has another shape; not cached, so junk cannot fill the cache.
            return self.api_key_where(SELECT_BY_PUBLIC_KEY, public_key).await;
        }
        // "No such key" is cached as a key is: an unknown key takes the same path and time as
        // a known one (authentication must not tell which public keys exist).
        self.cache
            .api_keys
            .get_or_read_value(public_key, || {
                self.api_key_where(SELECT_BY_PUBLIC_KEY, public_key)
            })
            .await
    }

    async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        self.api_key_where(SELECT_BY_ID, id.as_str()).await
    }

    async fn list_api_keys(&self, org_id: &OrgId, page: Page) -> StoreResult<Paged<ApiKeyRecord>> {
        self.list_api_keys_where("org_id = $1", org_id.as_str(), page)
            .await
    }

    async fn delete_api_key(&self, org_id: &OrgId, id: &ApiKeyId) -> StoreResult<bool> {
        let deleted: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                sqlx::query("DELETE FROM api_key_project_roles WHERE api_key_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND org_id = $2")
                    .bind(id.as_str())
                    .bind(org_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                tx.commit().await.map_err(DB::map_err)?;
                done.rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        self.cache.api_keys.clear();
        self.cache.access_lists.remove(&id.as_str().to_owned());
        deleted
    }

    async fn set_api_key_project_roles(
        &self,
        id: &ApiKeyId,
        project_id: &ProjectId,
        roles: &[ProjectRole],
    ) -> StoreResult<()> {
        let set: StoreResult<()> = async {
            dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                sqlx::query(
                    "DELETE FROM api_key_project_roles WHERE api_key_id = $1 AND project_id = $2",
                )
                .bind(id.as_str())
                .bind(project_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                for role in roles {
                    sqlx::query(
                        "INSERT INTO api_key_project_roles (api_key_id, project_id, role) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(id.as_str())
                    .bind(project_id.as_str())
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(DB::map_err)?;
                }
                tx.commit().await.map_err(DB::map_err)?;
            });
            Ok(())
        }
        .await;
        self.cache.api_keys.clear();
        set
    }

    async fn any_api_key(&self) -> StoreResult<bool> {
        let count: i64 = dispatch!(&self.db, |pools: DB| {
            sqlx::query_scalar("SELECT COUNT(*) AS n FROM api_keys")
                .fetch_one(&pools.read)
                .await
                .map_err(DB::map_err)?
        });
        Ok(count > 0)
    }

    async fn api_key_access_list(&self, id: &ApiKeyId) -> StoreResult<Vec<AccessListItem>> {
        self.read_access_list(id).await
    }

    async fn add_api_key_access_list(
        &self,
        org_id: &OrgId,
        id: &ApiKeyId,
        entries: &[AccessListEntry],
        now: time::OffsetDateTime,
        max: usize,
    ) -> StoreResult<AccessListAdd> {
        self.add_access_list(org_id, id, entries, now, max).await
    }

    async fn delete_api_key_access_list_entry(
        &self,
        id: &ApiKeyId,
        entry: &AccessListEntry,
    ) -> StoreResult<bool> {
        self.delete_access_list_entry(id, entry).await
    }
}

impl SqlStore {
    /// Lists the keys `filter` (a condition on `$1`) selects, with their project roles: one
    /// query for the keys, one for the roles of the whole page.
    async fn list_api_keys_where(
        &self,
        filter: &'static str,
        value: &str,
        page: Page,
    ) -> StoreResult<Paged<ApiKeyRecord>> {
        let select = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {filter} \
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        let count = format!("SELECT COUNT(*) AS n FROM api_keys WHERE {filter}");
        let (keys, roles, total): KeyPage = dispatch!(&self.db, |pools: DB| {
            let keys: Vec<ApiKeyRow> = sqlx::query_as(&select)
                .bind(value)
                .bind(limit(page))
                .bind(offset(page))
                .fetch_all(&pools.read)
                .await
                .map_err(DB::map_err)?;
            // The roles of the whole page in one query.
            let roles = if keys.is_empty() {
                Vec::new()
            } else {
                let mut query = sqlx::QueryBuilder::<DB>::new(
                    "SELECT api_key_id, project_id, role FROM api_key_project_roles \
                         WHERE api_key_id IN (",
                );
                let mut ids = query.separated(", ");
                for key in &keys {
                    ids.push_bind(key.id.as_str());
                }
                query.push(")");
                query
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&pools.read)
                    .await
                    .map_err(DB::map_err)?
            };
            let total = if page.include_count {
                Some(
                    sqlx::query_scalar(&count)
                        .bind(value)
                        .fetch_one(&pools.read)
                        .await
                        .map_err(DB::map_err)?,
                )
            } else {
                None
            };
            (keys, roles, total)
        });
        let mut roles_by_key: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (key_id, project, role) in roles {
            roles_by_key
                .entry(key_id)
                .or_default()
                .push((project, role));
        }
        let keys = keys
            .into_iter()
            .map(|key| {
                let roles = roles_by_key.remove(&key.id).unwrap_or_default();
                key.into_record(roles)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(keys, page, total))
    }

    /// Reads the key `select` finds by `value`, with its project roles.
    async fn api_key_where(
        &self,
        select: &'static str,
        value: &str,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        let found: Option<(ApiKeyRow, Vec<(String, String)>)> = dispatch!(&self.db, |pools: DB| {
            let key: Option<ApiKeyRow> = sqlx::query_as(select)
                .bind(value)
                .fetch_optional(&pools.read)
                .await
                .map_err(DB::map_err)?;
            match key {
                Some(key) => {
                    let roles = sqlx::query_as(SELECT_ROLES)
                        .bind(key.id.as_str())
                        .fetch_all(&pools.read)
                        .await
                        .map_err(DB::map_err)?;
                    Some((key, roles))
                }
                None => None,
            }
        });
        found.map(|(key, roles)| key.into_record(roles)).transpose()
    }
}

/// A page of keys, the (key id, project id, role) rows of their project roles, and the count.
type KeyPage = (Vec<ApiKeyRow>, Vec<(String, String, String)>, Option<i64>);

/// A row of `api_keys`.
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    org_id: String,
    public_key: String,
    description: String,
    ha1_md5: String,
    ha1_sha256: String,
    org_roles: String,
    created_at: i64,
}

impl ApiKeyRow {
    /// The record of this key with its (project id, role) rows.
    fn into_record(self, project_roles: Vec<(String, String)>) -> StoreResult<ApiKeyRecord> {
        Ok(ApiKeyRecord {
            id: ApiKeyId::parse(&self.id).map_err(|_| corrupt("api key id"))?,
            org_id: org_id(&self.org_id)?,
            public_key: self.public_key,
            desc: self.description,
            ha1_md5: self.ha1_md5,
            ha1_sha256: self.ha1_sha256,
            org_roles: org_roles_from_text(&self.org_roles)?,
            project_roles: project_roles
                .iter()
                .map(|(project, role)| Ok((project_id(project)?, project_role_from_text(role)?)))
                .collect::<StoreResult<_>>()?,
            created: from_secs(self.created_at)?,
        })
    }
}

/// Organization roles as stored: comma-separated names.
fn org_roles_to_text(roles: &[OrgRole]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn org_roles_from_text(text: &str) -> StoreResult<Vec<OrgRole>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| OrgRole::parse(s).map_err(|_| corrupt("org role")))
        .collect()
}

fn project_role_from_text(text: &str) -> StoreResult<ProjectRole> {
    ProjectRole::parse(text).map_err(|_| corrupt("project role"))
}
