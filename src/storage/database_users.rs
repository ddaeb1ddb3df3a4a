//! Database users of projects (`database_users`), keyed by (project, database, username); their
//! roles, labels and scopes are stored as compact JSON, deleteAfterDate as Unix seconds.

use async_trait::async_trait;

use super::SqlStore;
use super::convert::{corrupt, from_secs, limit, offset, paged, project_id, to_secs};
use super::db::{Backend, dispatch};
use time::OffsetDateTime;

use crate::domain::{
    DatabaseName, DatabaseUser, DatabaseUserRole, DatabaseUserStore, Page, Paged, ProjectId,
    StoreResult, UserAttributes, UserLabel, UserScope, Username, X509Type,
};

#[async_trait]
impl DatabaseUserStore for SqlStore {
    async fn insert_database_user(&self, user: &DatabaseUser) -> StoreResult<()> {
        let inserted: StoreResult<()> = async {
            dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "INSERT INTO database_users (project_id, database_name, username, x509_type, \
                     roles, description, labels, scopes, delete_after) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(user.project_id.as_str())
                .bind(user.database_name.as_str())
                .bind(user.username.as_str())
                .bind(user.x509_type.as_str())
                .bind(roles_to_json(&user.roles))
                .bind(&user.attributes.description)
                .bind(labels_to_json(&user.attributes.labels))
                .bind(scopes_to_json(&user.attributes.scopes))
                .bind(user.attributes.delete_after.map(to_secs))
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?;
            });
            Ok(())
        }
        .await;
        self.cache.users.clear();
        inserted
    }

    async fn database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<Option<DatabaseUser>> {
        let key = (project_id.clone(), database_name.as_str(), username.clone());
        self.cache
            .users
            .get_or_read(&key, || async {
                let row: Option<DatabaseUserRow> = dispatch!(&self.db, |pools: DB| {
                    sqlx::query_as(
                        "SELECT project_id, database_name, username, x509_type, roles, \
                         description, labels, scopes, delete_after FROM database_users \
                         WHERE project_id = $1 AND database_name = $2 AND username = $3",
                    )
                    .bind(project_id.as_str())
                    .bind(database_name.as_str())
                    .bind(username.as_str())
                    .fetch_optional(&pools.read)
                    .await
                    .map_err(DB::map_err)?
                });
                row.map(DatabaseUserRow::into_user).transpose()
            })
            .await
    }

    async fn list_database_users(
        &self,
        project_id: &ProjectId,
        page: Page,
    ) -> StoreResult<Paged<DatabaseUser>> {
        let (rows, total): (Vec<DatabaseUserRow>, Option<i64>) =
            dispatch!(&self.db, |pools: DB| {
                let rows = sqlx::query_as(
                    "SELECT project_id, database_name, username, x509_type, roles, description, \
                 labels, scopes, delete_after FROM database_users \
                 WHERE project_id = $1 ORDER BY username, database_name LIMIT $2 OFFSET $3",
                )
                .bind(project_id.as_str())
                .bind(limit(page))
                .bind(offset(page))
                .fetch_all(&pools.read)
                .await
                .map_err(DB::map_err)?;
                let total = if page.include_count {
                    Some(
                        sqlx::query_scalar(
                            "SELECT COUNT(*) AS n FROM database_users WHERE project_id = $1",
                        )
                        .bind(project_id.as_str())
                        .fetch_one(&pools.read)
                        .await
                        .map_err(DB::map_err)?,
                    )
                } else {
                    None
                };
                (rows, total)
            });
        let users = rows
            .into_iter()
            .map(DatabaseUserRow::into_user)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(users, page, total))
    }

    async fn update_database_user(&self, user: &DatabaseUser) -> StoreResult<bool> {
        let updated: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "UPDATE database_users SET x509_type = $1, roles = $2, description = $6, \
                     labels = $7, scopes = $8, delete_after = $9 \
                     WHERE project_id = $3 AND database_name = $4 AND username = $5",
                )
                .bind(user.x509_type.as_str())
                .bind(roles_to_json(&user.roles))
                .bind(user.project_id.as_str())
                .bind(user.database_name.as_str())
                .bind(user.username.as_str())
                .bind(&user.attributes.description)
                .bind(labels_to_json(&user.attributes.labels))
                .bind(scopes_to_json(&user.attributes.scopes))
                .bind(user.attributes.delete_after.map(to_secs))
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        self.cache.users.clear();
        updated
    }

    async fn delete_database_user(
        &self,
        project_id: &ProjectId,
        database_name: DatabaseName,
        username: &Username,
    ) -> StoreResult<bool> {
        let deleted: StoreResult<bool> = async {
            let done = dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "DELETE FROM database_users \
                     WHERE project_id = $1 AND database_name = $2 AND username = $3",
                )
                .bind(project_id.as_str())
                .bind(database_name.as_str())
                .bind(username.as_str())
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
            });
            Ok(done > 0)
        }
        .await;
        self.cache.users.clear();
        deleted
    }

    async fn due_database_users(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<DatabaseUser>> {
        let rows: Vec<DatabaseUserRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT project_id, database_name, username, x509_type, roles, description, \
                 labels, scopes, delete_after FROM database_users \
                 WHERE delete_after IS NOT NULL AND delete_after <= $1 \
                 ORDER BY delete_after LIMIT $2",
            )
            .bind(to_secs(now))
            .bind(i64::from(limit))
            .fetch_all(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        rows.into_iter().map(DatabaseUserRow::into_user).collect()
    }
}

/// A row of `database_users`.
#[derive(sqlx::FromRow)]
struct DatabaseUserRow {
    project_id: String,
    database_name: String,
    username: String,
    x509_type: String,
    roles: String,
    description: String,
    labels: String,
    scopes: String,
    delete_after: Option<i64>,
}

impl DatabaseUserRow {
    fn into_user(self) -> StoreResult<DatabaseUser> {
        Ok(DatabaseUser {
            project_id: project_id(&self.project_id)?,
            username: Username::parse(&self.username).map_err(|_| corrupt("username"))?,
            database_name: DatabaseName::parse(&self.database_name)
                .map_err(|_| corrupt("database name"))?,
            x509_type: X509Type::parse(&self.x509_type).map_err(|_| corrupt("x509 type"))?,
            roles: roles_from_json(&self.roles)?,
            attributes: UserAttributes {
                description: self.description,
                labels: labels_from_json(&self.labels)?,
                scopes: scopes_from_json(&self.scopes)?,
                delete_after: self.delete_after.map(from_secs).transpose()?,
            },
        })
    }
}

/// A role as stored: `d`atabase, `r`ole and, when not empty, `c`ollection.
#[derive(serde::Serialize, serde::Deserialize)]
struct RoleJson {
    d: String,
    r: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    c: String,
}

fn roles_to_json(roles: &[DatabaseUserRole]) -> String {
    let json: Vec<RoleJson> = roles
        .iter()
        .map(|r| RoleJson {
            d: r.database_name.clone(),
            r: r.role_name.clone(),
            c: r.collection_name.clone(),
        })
        .collect();
    // Strings in a struct always serialize.
    serde_json::to_string(&json).expect("roles serialize")
}

fn roles_from_json(text: &str) -> StoreResult<Vec<DatabaseUserRole>> {
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

/// A label as stored: `k`ey and `v`alue.
#[derive(serde::Serialize, serde::Deserialize)]
struct LabelJson {
    k: String,
    v: String,
}

fn labels_to_json(labels: &[UserLabel]) -> String {
    let json: Vec<LabelJson> = labels
        .iter()
        .map(|l| LabelJson {
            k: l.key.clone(),
            v: l.value.clone(),
        })
        .collect();
    // Strings in a struct always serialize.
    serde_json::to_string(&json).expect("labels serialize")
}

fn labels_from_json(text: &str) -> StoreResult<Vec<UserLabel>> {
    let json: Vec<LabelJson> = serde_json::from_str(text).map_err(|_| corrupt("labels"))?;
    Ok(json
        .into_iter()
        .map(|l| UserLabel {
            key: l.k,
            value: l.v,
        })
        .collect())
}

/// A scope as stored: `n`ame and `t`ype.
#[derive(serde::Serialize, serde::Deserialize)]
struct ScopeJson {
    n: String,
    t: String,
}

fn scopes_to_json(scopes: &[UserScope]) -> String {
    let json: Vec<ScopeJson> = scopes
        .iter()
        .map(|s| ScopeJson {
            n: s.name.clone(),
            t: s.scope_type.clone(),
        })
        .collect();
    // Strings in a struct always serialize.
    serde_json::to_string(&json).expect("scopes serialize")
}

fn scopes_from_json(text: &str) -> StoreResult<Vec<UserScope>> {
    let json: Vec<ScopeJson> = serde_json::from_str(text).map_err(|_| corrupt("scopes"))?;
    Ok(json
        .into_iter()
        .map(|s| UserScope {
            name: s.n,
            scope_type: s.t,
        })
        .collect())
}
