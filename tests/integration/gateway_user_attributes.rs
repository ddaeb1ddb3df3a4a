//! Database users' `description`, `labels`, `scopes` and `deleteAfterDate` over the Atlas routes:
//! stored and returned in the recorded shape, `""` clearing the description, the spec's limits,
//! and the user deleted at its `deleteAfterDate` by the background task, across a restart, and
//! once across two PostgreSQL replicas (one deletion event).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dbcert::domain::{Core, CoreSettings, MasterKey, SystemClock};
use dbcert::proto::v1::ListAuditEventsRequest;
use dbcert::storage::PostgresStore;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::atlas::Atlas;
use crate::harness::pg::TestDatabase;
use crate::harness::{Clients, Key, TestServer};

/// An RFC 3339 time `seconds` from now, whole seconds.
fn in_seconds(seconds: i64) -> String {
    let at = OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

fn user_body(username: &str, extra: Value) -> String {
    let mut body = json!({
        "databaseName": "$external",
        "username": username,
        "x509Type": "MANAGED",
        "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body.to_string()
}

#[tokio::test]
async fn attributes_are_stored_returned_and_checked() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("attributes").await;
    let users = format!("/api/atlas/v2/groups/{group}/databaseUsers");
    let delete_after = in_seconds(3 * 86_400);

    let resp = atlas
        .send_v2(
            "POST",
            &users,
            Some(&user_body(
                "tagged",
                json!({
                    "description": "ci runner",
                    "deleteAfterDate": delete_after,
                    "labels": [{"key": "team", "value": "platform"}],
                    "scopes": [{"name": "Cluster0", "type": "CLUSTER"}],
                }),
            )),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let created = resp.json();
    // The recorded key order, with the two optional attributes in place.
    assert_eq!(
        created.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "awsIAMType",
            "databaseName",
            "deleteAfterDate",
            "description",
            "groupId",
            "labels",
            "ldapAuthType",
            "links",
            "oidcAuthType",
            "roles",
            "scopes",
            "username",
            "x509Type"
        ]
    );
    assert_eq!(created["deleteAfterDate"], delete_after.as_str());
    assert_eq!(created["description"], "ci runner");
    assert_eq!(
        created["labels"],
        json!([{"key": "team", "value": "platform"}])
    );
    assert_eq!(
        created["scopes"],
        json!([{"name": "Cluster0", "type": "CLUSTER"}])
    );
    // Stored: read back on both versions.
    let read = atlas.get(&format!("{users}/$external/tagged")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let read = read.json();
    for name in ["deleteAfterDate", "description", "labels", "scopes"] {
        assert_eq!(read[name], created[name], "{name}");
    }

    // Terraform's `""` clears the description; labels are replaced; the rest stays.
    let resp = atlas
        .patch(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/$external/tagged"),
            r#"{"description":"","labels":[{"key":"env","value":"ci"},{"key":"team","value":"db"}]}"#,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let updated = resp.json();
    assert!(updated.get("description").is_none(), "{updated}");
    assert_eq!(
        updated["labels"],
        json!([{"key": "env", "value": "ci"}, {"key": "team", "value": "db"}])
    );
    assert_eq!(updated["scopes"], created["scopes"]);
    assert_eq!(updated["deleteAfterDate"], created["deleteAfterDate"]);
    // Without attributes a user shows empty lists and no optional keys (as recorded).
    let resp = atlas
        .post(&users.replace("v2", "v1.0"), &user_body("plain", json!({})))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let plain = resp.json();
    assert_eq!(plain["labels"], json!([]));
    assert_eq!(plain["scopes"], json!([]));
    assert!(plain.get("deleteAfterDate").is_none());
    assert!(plain.get("description").is_none());
    // A time without an offset is UTC (what Python's isoformat() gives).
    let naive = in_seconds(86_400).trim_end_matches('Z').to_owned();
    let resp = atlas
        .post(
            &users.replace("v2", "v1.0"),
            &user_body("naive", json!({"deleteAfterDate": naive})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(resp.json()["deleteAfterDate"], format!("{naive}Z"));

    // The spec's limits: 400 INVALID_ATTRIBUTE naming the attribute, nothing created.
    let long_label = "v".repeat(256);
    let many_labels: Vec<Value> = (0..51)
        .map(|n| json!({"key": format!("k{n}"), "value": "v"}))
        .collect();
    for (extra, name) in [
        (
            json!({"deleteAfterDate": in_seconds(-60)}),
            "deleteAfterDate",
        ),
        (
            json!({"deleteAfterDate": in_seconds(8 * 86_400)}),
            "deleteAfterDate",
        ),
        (
            json!({"deleteAfterDate": "next tuesday"}),
            "deleteAfterDate",
        ),
        (json!({"description": "d".repeat(101)}), "description"),
        (
            json!({"labels": [{"key": "k", "value": long_label}]}),
            "labels",
        ),
        (json!({"labels": [{"key": "", "value": "v"}]}), "labels"),
        (json!({"labels": many_labels}), "labels"),
        (
            json!({"scopes": [{"name": "Cluster0", "type": "SERVERLESS"}]}),
            "scopes",
        ),
        (
            json!({"scopes": [{"name": "-bad", "type": "CLUSTER"}]}),
            "scopes",
        ),
    ] {
        let resp = atlas
            .post(&users.replace("v2", "v1.0"), &user_body("refused", extra))
            .await;
        let error = resp.assert_error(400, "INVALID_ATTRIBUTE");
        assert!(
            error["detail"].as_str().unwrap().contains(name),
            "{name}: {error}"
        );
    }
    atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers/$external/refused"
        ))
        .await
        .assert_error(404, "USERNAME_NOT_FOUND");
}

/// Polls (bounded) until the user is gone; returns whether it went.
async fn gone(atlas: &Atlas, group: &str, username: &str) -> bool {
    for _ in 0..120 {
        let resp = atlas
            .get(&format!(
                "/api/atlas/v1.0/groups/{group}/databaseUsers/$external/{username}"
            ))
            .await;
        if resp.status == 404 {
            return true;
        }
        assert_eq!(resp.status, 200, "{}", resp.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// The deletion events of `username` in the project (the service as the actor).
async fn deletion_events(clients: &Clients, group: &str, username: &str) -> Vec<String> {
    let events = clients
        .audit()
        .list_audit_events(ListAuditEventsRequest {
            group_id: group.into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    events
        .into_iter()
        .filter(|e| e.target == username && e.event_type_name.contains("DELETED"))
        .map(|e| {
            assert_eq!(e.api_key_id, "", "the service acted, not a key: {e:?}");
            e.event_type_name
        })
        .collect()
}

#[tokio::test]
async fn users_are_deleted_at_their_delete_after_date_across_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let key = Key::random();
    let server = TestServer::start_in(temp.path(), key.clone(), |_| {}).await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("expiring").await;
    let users = format!("/api/atlas/v1.0/groups/{group}/databaseUsers");
    for (name, seconds) in [("soon", 2), ("later", 4), ("kept", 86_400)] {
        let resp = atlas
            .post(
                &users,
                &user_body(name, json!({"deleteAfterDate": in_seconds(seconds)})),
            )
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
    }
    // The running server deletes the first at its time.
    assert!(gone(&atlas, &group, "soon").await, "deleted while running");
    let clients = server.clients().await;
    assert_eq!(deletion_events(&clients, &group, "soon").await.len(), 1);
    // The second comes due while the server is down: the next start deletes it.
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let server = TestServer::start_in(temp.path(), key, |_| {}).await;
    let atlas = Atlas::new(&server);
    assert!(
        gone(&atlas, &group, "later").await,
        "deleted after the restart"
    );
    let clients = server.clients().await;
    assert_eq!(deletion_events(&clients, &group, "later").await.len(), 1);
    // The third is not due.
    let resp = atlas.get(&format!("{users}/$external/kept")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    server.stop().await;
}

/// Two replicas (two cores on one PostgreSQL database) run the deletion at the same moment:
/// both find every due user, each user is deleted by one of them, and recorded once.
#[tokio::test(flavor = "multi_thread")]
async fn two_postgres_replicas_delete_a_due_user_once() {
    let Some(db) = TestDatabase::create("due_users").await else {
        return;
    };
    let key = Key::random();
    let master_key = MasterKey::generate().to_base64();
    let with_db = |config: &mut dbcert::config::Config| {
        config.database_url = db.url.clone();
        config.master_key = dbcert::config::MasterKeySource::Inline(master_key.clone());
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), key.clone(), with_db).await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("replicated").await;
    let names: Vec<String> = (0..6).map(|n| format!("due-{n}")).collect();
    for name in &names {
        let resp = atlas
            .post(
                &format!("/api/atlas/v1.0/groups/{group}/databaseUsers"),
                &user_body(name, json!({"deleteAfterDate": in_seconds(2)})),
            )
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
    }
    // No server runs the task while the users come due.
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let core = || async {
        Core::new(
            Arc::new(PostgresStore::open(&db.url).await.unwrap()),
            MasterKey::from_base64(&master_key).unwrap(),
            Arc::new(SystemClock),
            CoreSettings::default(),
        )
    };
    let (a, b) = (core().await, core().await);
    let (deleted_a, deleted_b) = tokio::join!(
        a.delete_due_database_users(100),
        b.delete_due_database_users(100)
    );
    assert_eq!(deleted_a.unwrap() + deleted_b.unwrap(), 6);
    drop((a, b));

    // Each deletion is recorded exactly once.
    let server = TestServer::start_in(dir.path(), key, with_db).await;
    let clients = server.clients().await;
    for name in &names {
        assert!(gone(&Atlas::new(&server), &group, name).await, "{name}");
        assert_eq!(
            deletion_events(&clients, &group, name).await,
            ["MONGODB_USER_DELETED"],
            "{name}"
        );
    }
    server.stop().await;
}
