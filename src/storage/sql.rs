//! The SQL both backends share. The schema and every statement are portable between SQLite
//! and PostgreSQL (numbered `$N` parameters, `ON CONFLICT`, partial unique indexes), so one
//! implementation is pasted for each backend's pool type by [`impl_store!`]; only connecting,
//! migrations and error classification differ (in `sqlite.rs` and `postgres.rs`).

use time::OffsetDateTime;

use crate::domain::{
    DatabaseName, DatabaseUserRole, KeyType, OrgRole, Page, Paged, ProjectRole, StoreError,
    StoreResult, X509Type,
};

/// Converts a time to the stored Unix seconds.
pub(super) fn to_secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Converts stored Unix seconds to a time.
pub(super) fn from_secs(secs: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StoreError::Other(e.into()))
}

/// Converts a time to the stored Unix microseconds.
pub(super) fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The first whole microsecond at or after `t`: an event stored at `m` microseconds is at or
/// after `t` exactly when `m >= micros_ceil(t)`, and before `t` when `m < micros_ceil(t)`.
pub(super) fn micros_ceil(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1000) + i128::from(nanos.rem_euclid(1000) != 0))
        .unwrap_or(i64::MAX)
}

/// The last whole microsecond at or before `t`: an event stored at `m` microseconds is at or
/// before `t` exactly when `m <= micros_floor(t)`.
pub(super) fn micros_floor(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// Converts stored Unix microseconds to a time.
pub(super) fn from_micros(micros: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|e| StoreError::Other(e.into()))
}

/// A stored value that does not parse back: the database was changed behind our back.
pub(super) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Other(format!("corrupt stored {what}").into())
}

pub(super) fn org_roles_to_text(roles: &[OrgRole]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn org_roles_from_text(text: &str) -> StoreResult<Vec<OrgRole>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| OrgRole::parse(s).map_err(|_| corrupt("org role")))
        .collect()
}

pub(super) fn project_role_from_text(text: &str) -> StoreResult<ProjectRole> {
    ProjectRole::parse(text).map_err(|_| corrupt("project role"))
}

pub(super) fn x509_type_from_text(text: &str) -> StoreResult<X509Type> {
    X509Type::parse(text).map_err(|_| corrupt("x509 type"))
}

pub(super) fn key_type_from_text(text: &str) -> StoreResult<KeyType> {
    KeyType::parse(text).ok_or_else(|| corrupt("key type"))
}

/// The most certificate rows in one INSERT statement (7 parameters each: far below SQLite's
/// 32766 and PostgreSQL's 65535 parameter limits).
pub(super) const CERTIFICATE_BATCH_CHUNK: usize = 512;

pub(super) fn database_name_from_text(text: &str) -> StoreResult<DatabaseName> {
    DatabaseName::parse(text).map_err(|_| corrupt("database name"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RoleJson {
    d: String,
    r: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    c: String,
}

pub(super) fn roles_to_json(roles: &[DatabaseUserRole]) -> String {
    let json: Vec<RoleJson> = roles
        .iter()
        .map(|r| RoleJson {
            d: r.database_name.clone(),
            r: r.role_name.clone(),
            c: r.collection_name.clone(),
        })
        .collect();
    serde_json::to_string(&json).expect("roles serialize")
}

pub(super) fn roles_from_json(text: &str) -> StoreResult<Vec<DatabaseUserRole>> {
    let json: Vec<RoleJson> = serde_json::from_str(text).map_err(|_| corrupt("roles"))?;
    Ok(json
        .into_iter()
        .map(|r| DatabaseUserRole {
            database_name: r.d,
            role_name: r.r,
            collection_name: r.c,
        })
        .collect())
}

/// Builds a page from rows fetched with `LIMIT items_per_page + 1`.
pub(super) fn paged<T>(mut rows: Vec<T>, page: Page, total_count: Option<i64>) -> Paged<T> {
    let has_next_page = rows.len() > page.items_per_page as usize;
    rows.truncate(page.items_per_page as usize);
    Paged {
        results: rows,
        total_count: total_count.map(|n| n.max(0) as u64),
        has_next_page,
    }
}

pub(super) fn limit(page: Page) -> i64 {
    i64::from(page.items_per_page) + 1
}

pub(super) fn offset(page: Page) -> i64 {
    i64::try_from(page.offset()).unwrap_or(i64::MAX)
}

/// Implements [`crate::domain::Store`] for a backend struct with a `pool` field, using the
/// portable SQL above. The backend module provides `fn map_err(sqlx::Error) -> StoreError`.
macro_rules! impl_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::domain::Store for $store {
            async fn put_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.try_get("value").map_err(map_err)
            }

            async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.map(|row| row.try_get("value").map_err(map_err)).transpose()
            }

            async fn replace_meta(&self, key: &str, expected: &str, value: &str) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3")
                    .bind(value)
                    .bind(key)
                    .bind(expected)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
                Ok(())
            }

            async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id.as_str())
                    .bind(&org.name)
                    .bind(to_secs(time::OffsetDateTime::now_utc()))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
                let row = sqlx::query("SELECT id, name FROM organizations WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.map(|row| {
                    let id: String = row.try_get("id").map_err(map_err)?;
                    Ok(Organization {
                        id: OrgId::parse(&id).map_err(|_| corrupt("org id"))?,
                        name: row.try_get("name").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn insert_project(&self, project: &Project) -> StoreResult<()> {
                sqlx::query("INSERT INTO projects (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(project.id.as_str())
                    .bind(project.org_id.as_str())
                    .bind(&project.name)
                    .bind(to_secs(project.created))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
                let row = sqlx::query(
                    "SELECT id, org_id, name, created_at FROM projects WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|row| project_from_row(&row)).transpose()
            }

            async fn list_projects(
                &self,
                org_id: &OrgId,
                member: Option<&ApiKeyId>,
                page: Page,
            ) -> StoreResult<Paged<Project>> {
                const LIVE: &str = "FROM projects WHERE org_id = $1 AND deleted_at IS NULL";
                const MEMBER: &str = " AND id IN (SELECT project_id FROM api_key_project_roles WHERE api_key_id = $2)";
                let filter = match member {
                    Some(_) => format!("{LIVE}{MEMBER}"),
                    None => LIVE.to_owned(),
                };
                let (lim, off) = if member.is_some() { ("$3", "$4") } else { ("$2", "$3") };
                let select = format!(
                    "SELECT id, org_id, name, created_at {filter} ORDER BY created_at, id LIMIT {lim} OFFSET {off}"
                );
                let mut query = sqlx::query(&select).bind(org_id.as_str());
                if let Some(member) = member {
                    query = query.bind(member.as_str());
                }
                let rows = query
                    .bind(limit(page))
                    .bind(offset(page))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                let projects = rows.iter().map(project_from_row).collect::<StoreResult<Vec<_>>>()?;
                let total = if page.include_count {
                    let count = format!("SELECT COUNT(*) AS n {filter}");
                    let mut query = sqlx::query(&count).bind(org_id.as_str());
                    if let Some(member) = member {
                        query = query.bind(member.as_str());
                    }
                    let row = query.fetch_one(&self.pool).await.map_err(map_err)?;
                    Some(row.try_get::<i64, _>("n").map_err(map_err)?)
                } else {
                    None
                };
                Ok(paged(projects, page, total))
            }

            async fn delete_project(&self, id: &ProjectId, now: time::OffsetDateTime) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let done = sqlx::query("UPDATE projects SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                    .bind(to_secs(now))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                for statement in [
                    "DELETE FROM database_users WHERE project_id = $1",
                    "DELETE FROM api_key_project_roles WHERE project_id = $1",
                    "UPDATE project_cas SET sealed_key = NULL WHERE project_id = $1",
                    "UPDATE projects SET customer_ca_pem = NULL WHERE id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys (id, org_id, public_key, description, ha1_md5, ha1_sha256, org_roles, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(key.id.as_str())
                .bind(key.org_id.as_str())
                .bind(&key.public_key)
                .bind(&key.desc)
                .bind(&key.ha1_md5)
                .bind(&key.ha1_sha256)
                .bind(org_roles_to_text(&key.org_roles))
                .bind(to_secs(key.created))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn update_api_key_secrets(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE api_keys SET org_id = $1, ha1_md5 = $2, ha1_sha256 = $3, org_roles = $4 WHERE public_key = $5",
                )
                .bind(key.org_id.as_str())
                .bind(&key.ha1_md5)
                .bind(&key.ha1_sha256)
                .bind(org_roles_to_text(&key.org_roles))
                .bind(&key.public_key)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn api_key_by_public_key(&self, public_key: &str) -> StoreResult<Option<ApiKeyRecord>> {
                let row = sqlx::query(&format!("{API_KEY_SELECT} WHERE public_key = $1"))
                    .bind(public_key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                match row {
                    Some(row) => Ok(Some(self.api_key_from_row(&row).await?)),
                    None => Ok(None),
                }
            }

            async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
                let row = sqlx::query(&format!("{API_KEY_SELECT} WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                match row {
                    Some(row) => Ok(Some(self.api_key_from_row(&row).await?)),
                    None => Ok(None),
                }
            }

            async fn list_api_keys(&self, org_id: &OrgId, page: Page) -> StoreResult<Paged<ApiKeyRecord>> {
                let rows = sqlx::query(&format!(
                    "{API_KEY_SELECT} WHERE org_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
                ))
                .bind(org_id.as_str())
                .bind(limit(page))
                .bind(offset(page))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in &rows {
                    keys.push(self.api_key_from_row(row).await?);
                }
                let total = if page.include_count {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE org_id = $1")
                        .bind(org_id.as_str())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Some(row.try_get::<i64, _>("n").map_err(map_err)?)
                } else {
                    None
                };
                Ok(paged(keys, page, total))
            }

            async fn delete_api_key(&self, org_id: &OrgId, id: &ApiKeyId) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM api_key_project_roles WHERE api_key_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND org_id = $2")
                    .bind(id.as_str())
                    .bind(org_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_api_key_project_roles(
                &self,
                id: &ApiKeyId,
                project_id: &ProjectId,
                roles: &[ProjectRole],
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM api_key_project_roles WHERE api_key_id = $1 AND project_id = $2")
                    .bind(id.as_str())
                    .bind(project_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for role in roles {
                    sqlx::query("INSERT INTO api_key_project_roles (api_key_id, project_id, role) VALUES ($1, $2, $3)")
                        .bind(id.as_str())
                        .bind(project_id.as_str())
                        .bind(role.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn any_api_key(&self) -> StoreResult<bool> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(row.try_get::<i64, _>("n").map_err(map_err)? > 0)
            }

            async fn insert_database_user(&self, user: &DatabaseUser) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO database_users (project_id, database_name, username, x509_type, roles) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.project_id.as_str())
                .bind(user.database_name.as_str())
                .bind(user.username.as_str())
                .bind(user.x509_type.as_str())
                .bind(roles_to_json(&user.roles))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn database_user(
                &self,
                project_id: &ProjectId,
                database_name: DatabaseName,
                username: &Username,
            ) -> StoreResult<Option<DatabaseUser>> {
                let row = sqlx::query(
                    "SELECT project_id, database_name, username, x509_type, roles FROM database_users \
                     WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id.as_str())
                .bind(database_name.as_str())
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|row| database_user_from_row(&row)).transpose()
            }

            async fn list_database_users(&self, project_id: &ProjectId, page: Page) -> StoreResult<Paged<DatabaseUser>> {
                let rows = sqlx::query(
                    "SELECT project_id, database_name, username, x509_type, roles FROM database_users \
                     WHERE project_id = $1 ORDER BY username, database_name LIMIT $2 OFFSET $3",
                )
                .bind(project_id.as_str())
                .bind(limit(page))
                .bind(offset(page))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let users = rows.iter().map(database_user_from_row).collect::<StoreResult<Vec<_>>>()?;
                let total = if page.include_count {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM database_users WHERE project_id = $1")
                        .bind(project_id.as_str())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Some(row.try_get::<i64, _>("n").map_err(map_err)?)
                } else {
                    None
                };
                Ok(paged(users, page, total))
            }

            async fn update_database_user(&self, user: &DatabaseUser) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE database_users SET x509_type = $1, roles = $2 \
                     WHERE project_id = $3 AND database_name = $4 AND username = $5",
                )
                .bind(user.x509_type.as_str())
                .bind(roles_to_json(&user.roles))
                .bind(user.project_id.as_str())
                .bind(user.database_name.as_str())
                .bind(user.username.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_database_user(
                &self,
                project_id: &ProjectId,
                database_name: DatabaseName,
                username: &Username,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "DELETE FROM database_users WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id.as_str())
                .bind(database_name.as_str())
                .bind(username.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn user_security(&self, project_id: &ProjectId) -> StoreResult<UserSecurity> {
                let row = sqlx::query("SELECT customer_ca_pem, ca_key_type FROM projects WHERE id = $1")
                    .bind(project_id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                let Some(row) = row else {
                    return Ok(UserSecurity::default());
                };
                let ca_key_type: String = row.try_get("ca_key_type").map_err(map_err)?;
                Ok(UserSecurity {
                    customer_ca_pem: row.try_get("customer_ca_pem").map_err(map_err)?,
                    ca_key_type: key_type_from_text(&ca_key_type)?,
                })
            }

            async fn set_ca_key_type(
                &self,
                project_id: &ProjectId,
                key_type: $crate::domain::KeyType,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE projects SET ca_key_type = $1 \
                     WHERE id = $2 AND deleted_at IS NULL AND ca_key_type_locked = 0",
                )
                .bind(key_type.as_str())
                .bind(project_id.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_customer_ca(&self, project_id: &ProjectId, pem: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE projects SET customer_ca_pem = $1 WHERE id = $2")
                    .bind(pem)
                    .bind(project_id.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn project_ca(&self, project_id: &ProjectId) -> StoreResult<Option<StoredCa>> {
                let row = sqlx::query("SELECT cert_der, sealed_key FROM project_cas WHERE project_id = $1")
                    .bind(project_id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.map(|row| {
                    Ok(StoredCa {
                        cert_der: row.try_get("cert_der").map_err(map_err)?,
                        sealed_key: row.try_get("sealed_key").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn insert_project_ca(
                &self,
                project_id: &ProjectId,
                ca: &StoredCa,
                created: time::OffsetDateTime,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query("UPDATE projects SET ca_key_type_locked = 1 WHERE id = $1")
                    .bind(project_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                insert_project_ca_row(&mut tx, project_id, ca, created).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn insert_project_ca_of_type(
                &self,
                project_id: &ProjectId,
                ca: &StoredCa,
                key_type: $crate::domain::KeyType,
                created: time::OffsetDateTime,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                // Locks the project's row (PostgreSQL) or the database (SQLite) against a
                // concurrent change of the setting, and fixes the setting.
                let locked = sqlx::query(
                    "UPDATE projects SET ca_key_type_locked = 1 WHERE id = $1 AND ca_key_type = $2",
                )
                .bind(project_id.as_str())
                .bind(key_type.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if locked.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_project_ca_row(&mut tx, project_id, ca, created).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn sealed_ca_keys(
                &self,
                after: Option<&ProjectId>,
                limit: u32,
            ) -> StoreResult<Vec<(ProjectId, Vec<u8>)>> {
                let rows = sqlx::query(
                    "SELECT project_id, sealed_key FROM project_cas \
                     WHERE sealed_key IS NOT NULL AND project_id > $1 ORDER BY project_id LIMIT $2",
                )
                .bind(after.map_or("", |id| id.as_str()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter()
                    .map(|row| {
                        let project_id: String = row.try_get("project_id").map_err(map_err)?;
                        Ok((
                            ProjectId::parse(&project_id).map_err(|_| corrupt("project id"))?,
                            row.try_get("sealed_key").map_err(map_err)?,
                        ))
                    })
                    .collect()
            }

            async fn replace_sealed_ca_key(
                &self,
                project_id: &ProjectId,
                expected: &[u8],
                sealed_key: &[u8],
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE project_cas SET sealed_key = $1 WHERE project_id = $2 AND sealed_key = $3",
                )
                .bind(sealed_key)
                .bind(project_id.as_str())
                .bind(expected)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_certificate(&self, record: &CertificateRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO certificates (project_id, serial, username, subject, not_before, not_after, sha256_fingerprint) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(record.project_id.as_str())
                .bind(record.serial)
                .bind(&record.username)
                .bind(&record.subject)
                .bind(to_secs(record.not_before))
                .bind(to_secs(record.not_after))
                .bind(&record.sha256_fingerprint)
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn insert_certificates(
                &self,
                records: &[CertificateRecord],
            ) -> StoreResult<Vec<StoreResult<()>>> {
                // One multi-row INSERT per chunk, in one transaction: one commit for the batch.
                // ON CONFLICT DO NOTHING keeps a taken serial from failing the others.
                let mut results: Vec<StoreResult<()>> = Vec::with_capacity(records.len());
                let mut tx = self.writer.begin().await.map_err(map_err)?;
                for chunk in records.chunks(CERTIFICATE_BATCH_CHUNK) {
                    let records: Vec<&CertificateRecord> = chunk.iter().collect();
                    let mut inserted = insert_certificate_rows(&mut tx, &records).await?;
                    // A key inserted once answers Ok once: a duplicate within the batch conflicts.
                    for record in chunk {
                        let key = (record.project_id.as_str().to_owned(), record.serial);
                        results.push(if inserted.remove(&key) {
                            Ok(())
                        } else {
                            Err(StoreError::Conflict)
                        });
                    }
                }
                tx.commit().await.map_err(map_err)?;
                Ok(results)
            }

            async fn record_certificates(
                &self,
                items: &[(CertificateRecord, AuditEvent)],
            ) -> StoreResult<Vec<StoreResult<()>>> {
                // Like insert_certificates, plus each inserted record's audit event in the same
                // transaction: one commit for every record and event of the batch. A record
                // whose serial is taken gets `Conflict` and its event is not stored.
                let mut results: Vec<StoreResult<()>> = Vec::with_capacity(items.len());
                let mut tx = self.writer.begin().await.map_err(map_err)?;
                for chunk in items.chunks(CERTIFICATE_BATCH_CHUNK) {
                    let records: Vec<&CertificateRecord> = chunk.iter().map(|(record, _)| record).collect();
                    let mut inserted = insert_certificate_rows(&mut tx, &records).await?;
                    let mut events = Vec::with_capacity(chunk.len());
                    for (record, event) in chunk {
                        let key = (record.project_id.as_str().to_owned(), record.serial);
                        if inserted.remove(&key) {
                            events.push(event);
                            results.push(Ok(()));
                        } else {
                            results.push(Err(StoreError::Conflict));
                        }
                    }
                    insert_audit_rows(&mut *tx, &events).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(results)
            }

            async fn record_certificate(
                &self,
                record: &CertificateRecord,
                event: &AuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.writer.begin().await.map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO certificates (project_id, serial, username, subject, not_before, not_after, sha256_fingerprint) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(record.project_id.as_str())
                .bind(record.serial)
                .bind(&record.username)
                .bind(&record.subject)
                .bind(to_secs(record.not_before))
                .bind(to_secs(record.not_after))
                .bind(&record.sha256_fingerprint)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                insert_audit_rows(&mut *tx, &[event]).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
                insert_audit_rows(&self.writer, &[event]).await
            }

            async fn list_audit_events(
                &self,
                scope: &AuditScope,
                filter: &AuditFilter,
                page: Page,
            ) -> StoreResult<Paged<AuditEvent>> {
                let mut select = sqlx::QueryBuilder::<Db>::new(AUDIT_SELECT);
                push_audit_conditions(&mut select, scope, filter);
                select
                    .push(" ORDER BY occurred_at_us, id LIMIT ")
                    .push_bind(limit(page))
                    .push(" OFFSET ")
                    .push_bind(offset(page));
                let rows = select
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                let events = rows.iter().map(audit_event_from_row).collect::<StoreResult<Vec<_>>>()?;
                let total = if page.include_count {
                    let mut count = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) AS n FROM audit_events");
                    push_audit_conditions(&mut count, scope, filter);
                    let row = count.build().fetch_one(&self.pool).await.map_err(map_err)?;
                    Some(row.try_get::<i64, _>("n").map_err(map_err)?)
                } else {
                    None
                };
                Ok(paged(events, page, total))
            }

            async fn purge_audit_events(&self, before: time::OffsetDateTime, limit: u32) -> StoreResult<u64> {
                if limit == 0 {
                    return Ok(0);
                }
                let before = micros_ceil(before);
                // The batch's last event: the limit-th oldest before the cutoff, found on the
                // (occurred_at_us, id) index. Then one DELETE of the range up to it, an index
                // range scan too: one short transaction however large the backlog (a DELETE
                // with `id IN (SELECT … LIMIT n)` reads the whole table on PostgreSQL). Replicas
                // purging at once walk the range in the same order; one waits for the other's
                // batch and finds its rows gone. The DELETE goes through the writer connection,
                // as every other write of audit events.
                let last = sqlx::query(
                    "SELECT occurred_at_us, id FROM audit_events WHERE occurred_at_us < $1 \
                     ORDER BY occurred_at_us, id LIMIT 1 OFFSET $2",
                )
                .bind(before)
                .bind(i64::from(limit) - 1)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                let done = match last {
                    Some(row) => {
                        let at: i64 = row.try_get("occurred_at_us").map_err(map_err)?;
                        let id: String = row.try_get("id").map_err(map_err)?;
                        sqlx::query(
                            "DELETE FROM audit_events WHERE occurred_at_us <= $1 AND (occurred_at_us < $1 OR id <= $2)",
                        )
                        .bind(at)
                        .bind(id)
                        .execute(&self.writer)
                        .await
                    }
                    // Fewer than a batch before the cutoff.
                    None => {
                        sqlx::query("DELETE FROM audit_events WHERE occurred_at_us < $1")
                            .bind(before)
                            .execute(&self.writer)
                            .await
                    }
                };
                Ok(done.map_err(map_err)?.rows_affected())
            }

            async fn list_certificates(
                &self,
                project_id: &ProjectId,
                username: &str,
                now: time::OffsetDateTime,
                page: Page,
            ) -> StoreResult<Paged<CertificateRecord>> {
                let rows = sqlx::query(
                    "SELECT project_id, serial, username, subject, not_before, not_after, sha256_fingerprint \
                     FROM certificates WHERE project_id = $1 AND username = $2 AND not_after > $3 \
                     ORDER BY not_before, serial LIMIT $4 OFFSET $5",
                )
                .bind(project_id.as_str())
                .bind(username)
                .bind(to_secs(now))
                .bind(limit(page))
                .bind(offset(page))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let records = rows.iter().map(certificate_from_row).collect::<StoreResult<Vec<_>>>()?;
                let total = if page.include_count {
                    Some(self.count_unexpired_certificates(project_id, username, now).await? as i64)
                } else {
                    None
                };
                Ok(paged(records, page, total))
            }

            async fn count_unexpired_certificates(
                &self,
                project_id: &ProjectId,
                username: &str,
                now: time::OffsetDateTime,
            ) -> StoreResult<u64> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM certificates WHERE project_id = $1 AND username = $2 AND not_after > $3",
                )
                .bind(project_id.as_str())
                .bind(username)
                .bind(to_secs(now))
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(row.try_get::<i64, _>("n").map_err(map_err)?.max(0) as u64)
            }

            async fn record_nonce_use(&self, nonce: &str, nc: &str, expires_at: time::OffsetDateTime) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO digest_nonce_uses (nonce, nc, expires_at) VALUES ($1, $2, $3) ON CONFLICT (nonce, nc) DO NOTHING",
                )
                .bind(nonce)
                .bind(nc)
                .bind(to_secs(expires_at))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge_nonce_uses(&self, now: time::OffsetDateTime) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM digest_nonce_uses WHERE expires_at < $1")
                    .bind(to_secs(now))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }
        }

        const AUDIT_SELECT: &str =
            "SELECT id, occurred_at_us, action, outcome, actor_key_id, actor_public_key, remote_address, \
             org_id, project_id, target, serial FROM audit_events";

        /// Appends the `WHERE` clause of a scope and a filter.
        fn push_audit_conditions<'q>(
            builder: &mut sqlx::QueryBuilder<'q, Db>,
            scope: &'q AuditScope,
            filter: &AuditFilter,
        ) {
            match scope {
                AuditScope::Project(id) => builder.push(" WHERE project_id = ").push_bind(id.as_str()),
                AuditScope::Org(id) => builder.push(" WHERE org_id = ").push_bind(id.as_str()),
            };
            if let Some(min) = filter.min_date {
                builder.push(" AND occurred_at_us >= ").push_bind(micros_ceil(min));
            }
            if let Some(max) = filter.max_date {
                builder.push(" AND occurred_at_us <= ").push_bind(micros_floor(max));
            }
            if !filter.actions.is_empty() {
                builder.push(" AND action IN (");
                let mut names = builder.separated(", ");
                for action in &filter.actions {
                    names.push_bind(action.as_str());
                }
                builder.push(")");
            }
        }

        fn audit_event_from_row(row: &<Db as sqlx::Database>::Row) -> StoreResult<AuditEvent> {
            let text = |name: &str| row.try_get::<Option<String>, _>(name).map_err(map_err);
            let key_id = text("actor_key_id")?
                .map(|id| ApiKeyId::parse(&id).map_err(|_| corrupt("api key id")))
                .transpose()?;
            let public_key = text("actor_public_key")?;
            let actor = if key_id.is_none() && public_key.is_none() {
                Actor::System
            } else {
                Actor::ApiKey { id: key_id, public_key }
            };
            let action: String = row.try_get("action").map_err(map_err)?;
            let outcome: String = row.try_get("outcome").map_err(map_err)?;
            Ok(AuditEvent {
                id: row.try_get("id").map_err(map_err)?,
                at: from_micros(row.try_get("occurred_at_us").map_err(map_err)?)?,
                actor,
                client_address: text("remote_address")?
                    .map(|a| a.parse().map_err(|_| corrupt("remote address")))
                    .transpose()?,
                org_id: text("org_id")?
                    .map(|id| OrgId::parse(&id).map_err(|_| corrupt("org id")))
                    .transpose()?,
                project_id: text("project_id")?
                    .map(|id| ProjectId::parse(&id).map_err(|_| corrupt("project id")))
                    .transpose()?,
                action: AuditAction::parse(&action).ok_or_else(|| corrupt("audit action"))?,
                target: text("target")?,
                serial: row.try_get("serial").map_err(map_err)?,
                outcome: AuditOutcome::parse(&outcome).ok_or_else(|| corrupt("audit outcome"))?,
            })
        }

        /// Inserts certificate records with one multi-row statement inside `tx`, skipping serials
        /// already taken (`ON CONFLICT DO NOTHING`); returns the (project, serial) keys that went in.
        ///
        /// When every row went in (all but once in 2^63 draws) the row count says so; otherwise
        /// each record is looked up by its key, user and fingerprint, which only the row it wrote
        /// has.
        /// (`RETURNING` would say it directly, but streams one message per row back from
        /// SQLite's worker thread on every batch, for a case that practically never happens.)
        async fn insert_certificate_rows(
            tx: &mut sqlx::Transaction<'_, Db>,
            records: &[&CertificateRecord],
        ) -> StoreResult<std::collections::HashSet<(String, i64)>> {
            let mut builder = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO certificates (project_id, serial, username, subject, not_before, not_after, sha256_fingerprint) ",
            );
            builder.push_values(records, |mut row, record| {
                row.push_bind(record.project_id.as_str())
                    .push_bind(record.serial)
                    .push_bind(record.username.as_str())
                    .push_bind(record.subject.as_str())
                    .push_bind(to_secs(record.not_before))
                    .push_bind(to_secs(record.not_after))
                    .push_bind(record.sha256_fingerprint.as_str());
            });
            builder.push(" ON CONFLICT (project_id, serial) DO NOTHING");
            let written = builder
                .build()
                .persistent(false)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?
                .rows_affected();
            let key = |record: &CertificateRecord| (record.project_id.as_str().to_owned(), record.serial);
            if written == records.len() as u64 {
                return Ok(records.iter().map(|record| key(record)).collect());
            }
            let mut inserted = std::collections::HashSet::with_capacity(records.len());
            for record in records {
                let ours = sqlx::query(
                    "SELECT 1 FROM certificates \
                     WHERE project_id = $1 AND serial = $2 AND username = $3 AND sha256_fingerprint = $4",
                )
                .bind(record.project_id.as_str())
                .bind(record.serial)
                .bind(record.username.as_str())
                .bind(record.sha256_fingerprint.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                if ours.is_some() {
                    inserted.insert(key(record));
                }
            }
            Ok(inserted)
        }

        /// Inserts audit events with one multi-row statement (one round trip to the database
        /// for a whole group commit instead of one per event).
        async fn insert_audit_rows<'e>(
            executor: impl sqlx::Executor<'e, Database = Db>,
            events: &[&AuditEvent],
        ) -> StoreResult<()> {
            if events.is_empty() {
                return Ok(());
            }
            let mut builder = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO audit_events (id, occurred_at_us, action, outcome, actor_key_id, actor_public_key, \
                 remote_address, org_id, project_id, target, serial) ",
            );
            builder.push_values(events, |mut row, event| {
                let (key_id, public_key) = match &event.actor {
                    Actor::ApiKey { id, public_key } => (id.as_ref().map(|id| id.as_str()), public_key.as_deref()),
                    Actor::System => (None, None),
                };
                row.push_bind(event.id.as_str())
                    .push_bind(to_micros(event.at))
                    .push_bind(event.action.as_str())
                    .push_bind(event.outcome.as_str())
                    .push_bind(key_id)
                    .push_bind(public_key)
                    .push_bind(event.client_address.map(|a| a.to_string()))
                    .push_bind(event.org_id.as_ref().map(|id| id.as_str()))
                    .push_bind(event.project_id.as_ref().map(|id| id.as_str()))
                    .push_bind(event.target.as_deref())
                    .push_bind(event.serial);
            });
            // A single-row statement is the same text every time and worth caching; batches
            // vary in length and would only churn the statement cache.
            builder
                .build()
                .persistent(events.len() == 1)
                .execute(executor)
                .await
                .map_err(map_err)?;
            Ok(())
        }

        const API_KEY_SELECT: &str =
            "SELECT id, org_id, public_key, description, ha1_md5, ha1_sha256, org_roles, created_at FROM api_keys";

        impl $store {
            async fn api_key_from_row(&self, row: &<Db as sqlx::Database>::Row) -> StoreResult<ApiKeyRecord> {
                let id: String = row.try_get("id").map_err(map_err)?;
                let org_id: String = row.try_get("org_id").map_err(map_err)?;
                let roles = sqlx::query("SELECT project_id, role FROM api_key_project_roles WHERE api_key_id = $1")
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                let mut project_roles = Vec::with_capacity(roles.len());
                for role in &roles {
                    let project_id: String = role.try_get("project_id").map_err(map_err)?;
                    let role: String = role.try_get("role").map_err(map_err)?;
                    project_roles.push((
                        ProjectId::parse(&project_id).map_err(|_| corrupt("project id"))?,
                        project_role_from_text(&role)?,
                    ));
                }
                Ok(ApiKeyRecord {
                    id: ApiKeyId::parse(&id).map_err(|_| corrupt("api key id"))?,
                    org_id: OrgId::parse(&org_id).map_err(|_| corrupt("org id"))?,
                    public_key: row.try_get("public_key").map_err(map_err)?,
                    desc: row.try_get("description").map_err(map_err)?,
                    ha1_md5: row.try_get("ha1_md5").map_err(map_err)?,
                    ha1_sha256: row.try_get("ha1_sha256").map_err(map_err)?,
                    org_roles: org_roles_from_text(&row.try_get::<String, _>("org_roles").map_err(map_err)?)?,
                    project_roles,
                    created: from_secs(row.try_get("created_at").map_err(map_err)?)?,
                })
            }
        }

        fn project_from_row(row: &<Db as sqlx::Database>::Row) -> StoreResult<Project> {
            let id: String = row.try_get("id").map_err(map_err)?;
            let org_id: String = row.try_get("org_id").map_err(map_err)?;
            Ok(Project {
                id: ProjectId::parse(&id).map_err(|_| corrupt("project id"))?,
                org_id: OrgId::parse(&org_id).map_err(|_| corrupt("org id"))?,
                name: row.try_get("name").map_err(map_err)?,
                created: from_secs(row.try_get("created_at").map_err(map_err)?)?,
            })
        }

        fn database_user_from_row(row: &<Db as sqlx::Database>::Row) -> StoreResult<DatabaseUser> {
            let project_id: String = row.try_get("project_id").map_err(map_err)?;
            let username: String = row.try_get("username").map_err(map_err)?;
            Ok(DatabaseUser {
                project_id: ProjectId::parse(&project_id).map_err(|_| corrupt("project id"))?,
                username: Username::parse(&username).map_err(|_| corrupt("username"))?,
                database_name: database_name_from_text(&row.try_get::<String, _>("database_name").map_err(map_err)?)?,
                x509_type: x509_type_from_text(&row.try_get::<String, _>("x509_type").map_err(map_err)?)?,
                roles: roles_from_json(&row.try_get::<String, _>("roles").map_err(map_err)?)?,
            })
        }

        async fn insert_project_ca_row(
            tx: &mut sqlx::Transaction<'_, Db>,
            project_id: &ProjectId,
            ca: &StoredCa,
            created: time::OffsetDateTime,
        ) -> StoreResult<()> {
            sqlx::query("INSERT INTO project_cas (project_id, cert_der, sealed_key, created_at) VALUES ($1, $2, $3, $4)")
                .bind(project_id.as_str())
                .bind(&ca.cert_der)
                .bind(&ca.sealed_key)
                .bind(to_secs(created))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            Ok(())
        }

        fn certificate_from_row(row: &<Db as sqlx::Database>::Row) -> StoreResult<CertificateRecord> {
            let project_id: String = row.try_get("project_id").map_err(map_err)?;
            Ok(CertificateRecord {
                serial: row.try_get("serial").map_err(map_err)?,
                project_id: ProjectId::parse(&project_id).map_err(|_| corrupt("project id"))?,
                username: row.try_get("username").map_err(map_err)?,
                subject: row.try_get("subject").map_err(map_err)?,
                not_before: from_secs(row.try_get("not_before").map_err(map_err)?)?,
                not_after: from_secs(row.try_get("not_after").map_err(map_err)?)?,
                sha256_fingerprint: row.try_get("sha256_fingerprint").map_err(map_err)?,
            })
        }
    };
}

pub(super) use impl_store;
