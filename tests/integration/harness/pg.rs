//! Fresh PostgreSQL databases for tests. `DBCERT_TEST_DATABASE_URL` names a server and a
//! database to connect to as an administrator; each test creates its own
//! `dbcert_t_<random>` database there and drops it at the end (best effort), so tests run in
//! parallel without seeing each other's rows.

use std::io::Write as _;

use sqlx::{Connection as _, Executor as _, PgConnection};

use super::tools::{REQUIRE_VAR, tools_required};

/// The variable naming the administrative PostgreSQL URL (CI exports it).
pub const URL_VAR: &str = "DBCERT_TEST_DATABASE_URL";

/// A database created for one test, dropped when this is dropped.
pub struct TestDatabase {
    /// The URL of the fresh database.
    pub url: String,
    /// Its name.
    pub name: String,
    admin_url: String,
}

/// The administrative URL, or `None` after printing a skip line (uncaptured, so it shows in
/// `cargo test` output). Panics when the URL is missing and [`REQUIRE_VAR`] is `1`.
pub fn admin_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if tools_required() {
                panic!("{URL_VAR} must be set when {REQUIRE_VAR}=1 ({test})");
            }
            // Written to the real stderr, not the test's captured output, so it is seen.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: {URL_VAR} not set");
            None
        }
    }
}

impl TestDatabase {
    /// Creates a fresh database, or returns `None` when PostgreSQL tests are skipped.
    pub async fn create(test: &str) -> Option<Self> {
        Self::create_with(&admin_url(test)?, "").await
    }

    /// Creates a fresh database with `CREATE DATABASE` options (locale, template).
    pub async fn create_with(admin_url: &str, options: &str) -> Option<Self> {
        let admin_url = admin_url.to_owned();
        let name = format!("dbcert_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name} {options}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = admin.close().await;
        Some(Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }

    /// Opens an administrative connection (to the server's admin database).
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url)
            .await
            .expect("admin connection")
    }

    /// Cuts every connection to this database, as a server restart or failover does; returns
    /// how many were cut.
    pub async fn terminate_connections(&self) -> i64 {
        let mut admin = self.admin().await;
        let cut: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .expect("terminate connections");
        let _ = admin.close().await;
        cut
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its
        // own with a runtime of its own. `WITH (FORCE)` cuts connections still in pools.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {}",
                self.name
            );
        }
    }
}

/// Replaces the database (path) of a PostgreSQL URL, keeping its query parameters.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// url");
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}
