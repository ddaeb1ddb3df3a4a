//! Organizations and their projects. A project is deleted softly (`deleted_at`), so its CA
//! certificate and certificate records outlive it.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SqlStore;
use super::convert::{from_secs, limit, offset, org_id, paged, project_id, to_secs};
use super::db::{Backend, dispatch};
use crate::domain::{
    ApiKeyId, OrgId, Organization, Page, Paged, Project, ProjectId, ProjectStore, StoreError,
    StoreResult,
};

/// The columns of a project ([`ProjectRow`]).
const PROJECT_COLUMNS: &str = "id, org_id, name, created_at";
/// One live project by id.
const SELECT_LIVE_PROJECT: &str =
    "SELECT id, org_id, name, created_at FROM projects WHERE id = $1 AND deleted_at IS NULL";

#[async_trait]
impl ProjectStore for SqlStore {
    async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
        dispatch!(&self.db, |pools: DB| {
            sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(org.id.as_str())
                .bind(&org.name)
                .bind(to_secs(OffsetDateTime::now_utc()))
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?;
        });
        Ok(())
    }

    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let row: Option<(String, String)> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT id, name FROM organizations WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .fetch_optional(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        row.map(|(id, name)| {
            Ok(Organization {
                id: org_id(&id)?,
                name,
            })
        })
        .transpose()
    }

    async fn rename_organization(&self, id: &OrgId, name: &str) -> StoreResult<bool> {
        let done = dispatch!(&self.db, |pools: DB| {
            sqlx::query("UPDATE organizations SET name = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(name)
                .bind(id.as_str())
                .execute(&pools.read)
                .await
                .map_err(DB::map_err)?
                .rows_affected()
        });
        Ok(done > 0)
    }

    async fn delete_organization(&self, id: &OrgId, now: OffsetDateTime) -> StoreResult<bool> {
        let deleted: StoreResult<bool> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                // Marking the organization first takes its row's write lock (PostgreSQL) or the
                // database's (SQLite) before the projects are counted.
                let done = sqlx::query(
                    "UPDATE organizations SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                )
                .bind(to_secs(now))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                let (live,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM projects WHERE org_id = $1 AND deleted_at IS NULL",
                )
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                if live > 0 {
                    // Dropping the transaction rolls the mark back.
                    return Err(StoreError::Conflict);
                }
                for statement in [
                    "DELETE FROM api_key_project_roles WHERE api_key_id IN \
                     (SELECT id FROM api_keys WHERE org_id = $1)",
                    "DELETE FROM api_keys WHERE org_id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(DB::map_err)?;
                }
                tx.commit().await.map_err(DB::map_err)?;
                true
            }))
        }
        .await;
        // Its keys are gone: none may authenticate from the cache.
        self.cache.api_keys.clear();
        deleted
    }

    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        self.cache.forget_project(&project.id);
        dispatch!(&self.db, |pools: DB| {
            sqlx::query(
                "INSERT INTO projects (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(project.id.as_str())
            .bind(project.org_id.as_str())
            .bind(&project.name)
            .bind(to_secs(project.created))
            .execute(&pools.read)
            .await
            .map_err(DB::map_err)?;
        });
        Ok(())
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.cache
            .projects
            .get_or_read(id, || async {
                let row: Option<ProjectRow> = dispatch!(&self.db, |pools: DB| {
                    sqlx::query_as(SELECT_LIVE_PROJECT)
                        .bind(id.as_str())
                        .fetch_optional(&pools.read)
                        .await
                        .map_err(DB::map_err)?
                });
                row.map(ProjectRow::into_project).transpose()
            })
            .await
    }

    async fn project_by_name(&self, org_id: &OrgId, name: &str) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = dispatch!(&self.db, |pools: DB| {
            sqlx::query_as(
                "SELECT id, org_id, name, created_at FROM projects \
                 WHERE org_id = $1 AND name = $2 AND deleted_at IS NULL",
            )
            .bind(org_id.as_str())
            .bind(name)
            .fetch_optional(&pools.read)
            .await
            .map_err(DB::map_err)?
        });
        row.map(ProjectRow::into_project).transpose()
    }

    async fn rename_project(&self, id: &ProjectId, name: &str) -> StoreResult<bool> {
        let renamed: StoreResult<bool> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                // The unique index on live (org_id, name) turns a taken name into `Conflict`.
                sqlx::query("UPDATE projects SET name = $1 WHERE id = $2 AND deleted_at IS NULL")
                    .bind(name)
                    .bind(id.as_str())
                    .execute(&pools.read)
                    .await
                    .map_err(DB::map_err)?
                    .rows_affected()
                    > 0
            }))
        }
        .await;
        self.cache.forget_project(id);
        renamed
    }

    async fn list_projects(
        &self,
        org_id: &OrgId,
        member: Option<&ApiKeyId>,
        page: Page,
    ) -> StoreResult<Paged<Project>> {
        const LIVE: &str = "FROM projects WHERE org_id = $1 AND deleted_at IS NULL";
        const MEMBER: &str =
            " AND id IN (SELECT project_id FROM api_key_project_roles WHERE api_key_id = $2)";
        let filter = match member {
            Some(_) => format!("{LIVE}{MEMBER}"),
            None => LIVE.to_owned(),
        };
        let (lim, off) = if member.is_some() {
            ("$3", "$4")
        } else {
            ("$2", "$3")
        };
        let select = format!(
            "SELECT {PROJECT_COLUMNS} {filter} ORDER BY created_at, id LIMIT {lim} OFFSET {off}"
        );
        let count = format!("SELECT COUNT(*) AS n {filter}");
        let (rows, total): (Vec<ProjectRow>, Option<i64>) = dispatch!(&self.db, |pools: DB| {
            let mut query = sqlx::query_as(&select).bind(org_id.as_str());
            if let Some(member) = member {
                query = query.bind(member.as_str());
            }
            let rows = query
                .bind(limit(page))
                .bind(offset(page))
                .fetch_all(&pools.read)
                .await
                .map_err(DB::map_err)?;
            let total = if page.include_count {
                let mut query = sqlx::query_scalar(&count).bind(org_id.as_str());
                if let Some(member) = member {
                    query = query.bind(member.as_str());
                }
                Some(query.fetch_one(&pools.read).await.map_err(DB::map_err)?)
            } else {
                None
            };
            (rows, total)
        });
        let projects = rows
            .into_iter()
            .map(ProjectRow::into_project)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(projects, page, total))
    }

    async fn delete_project(&self, id: &ProjectId, now: OffsetDateTime) -> StoreResult<bool> {
        let deleted: StoreResult<bool> = async {
            Ok(dispatch!(&self.db, |pools: DB| {
                let mut tx = pools.read.begin().await.map_err(DB::map_err)?;
                let done = sqlx::query(
                    "UPDATE projects SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                )
                .bind(to_secs(now))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DB::map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                for statement in [
                    "DELETE FROM database_users WHERE project_id = $1",
                    "DELETE FROM api_key_project_roles WHERE project_id = $1",
                    "UPDATE project_ca_generations SET sealed_key = NULL WHERE project_id = $1",
                    "UPDATE projects SET customer_ca_pem = NULL WHERE id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(DB::map_err)?;
                }
                tx.commit().await.map_err(DB::map_err)?;
                true
            }))
        }
        .await;
        // Whatever happened: the users, roles and settings read before may be gone.
        self.cache.forget_project(id);
        deleted
    }
}

/// A row of `projects`.
#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: String,
    org_id: String,
    name: String,
    created_at: i64,
}

impl ProjectRow {
    fn into_project(self) -> StoreResult<Project> {
        Ok(Project {
            id: project_id(&self.id)?,
            org_id: org_id(&self.org_id)?,
            name: self.name,
            created: from_secs(self.created_at)?,
        })
    }
}
