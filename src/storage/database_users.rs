//! Database users of projects (`database_users`), keyed by (project, database, username); their
//! roles are stored as compact JSON.

use async_trait::async_trait;

use super::SqlStore;
use super::convert::{corrupt, limit, offset, paged, project_id};
use super::db::{Backend, dispatch};
use crate::domain::{
    DatabaseName, DatabaseUser, DatabaseUserRole, DatabaseUserStore, Page, Paged, ProjectId,
    StoreResult, Username, X509Type,
};

#[async_trait]
impl DatabaseUserStore for SqlStore {
    async fn insert_database_user(&self, user: &DatabaseUser) -> StoreResult<()> {
        let inserted: StoreResult<()> = async {
            dispatch!(&self.db, |pools: DB| {
                sqlx::query(
                    "INSERT INTO database_users (project_id, database_name, username, x509_type, \
                     roles) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.project_id.as_str())
                .bind(user.database_name.as_str())
                .bind(user.username.as_str())
                .bind(user.x509_type.as_str())
                .bind(roles_to_json(&user.roles))
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
                        "SELECT project_id, database_name, username, x509_type, roles \
                         FROM database_users \
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
                "SELECT project_id, database_name, username, x509_type, roles FROM database_users \
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
                    "UPDATE database_users SET x509_type = $1, roles = $2 \
                     WHERE project_id = $3 AND database_name = $4 AND username = $5",
                )
                .bind(user.x509_type.as_str())
                .bind(roles_to_json(&user.roles))
                .bind(user.project_id.as_str())
                .bind(user.database_name.as_str())
                .bind(user.username.as_str())
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
}

/// A row of `database_users`.
#[derive(sqlx::FromRow)]
struct DatabaseUserRow {
    project_id: String,
    database_name: String,
    username: String,
    x509_type: String,
    roles: String,
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
