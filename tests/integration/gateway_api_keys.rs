//! API keys over the Atlas routes (an organization's keys: read and change one; a project's
//! keys: list, create, set roles, add, remove), with the shapes and status codes of the v2 spec
//! and of the Atlas CLI's recorded answers, and what every Atlas role lets a key do.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::harness::atlas::Atlas;
use crate::harness::{Key, TestServer};

/// The organization of the server's key.
async fn org_id(atlas: &Atlas) -> String {
    atlas.get("/api/atlas/v1.0/orgs").await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The key pair of a create answer.
fn key_of(created: &Value) -> Key {
    Key {
        public: created["publicKey"].as_str().unwrap().to_owned(),
        private: created["privateKey"].as_str().unwrap().to_owned(),
    }
}

/// Whether a key's `roles` hold exactly these (orgId or groupId, roleName) entries.
#[track_caller]
fn assert_roles(key: &Value, expected: &[Value]) {
    let mut roles = key["roles"].as_array().unwrap().clone();
    let mut expected = expected.to_vec();
    roles.sort_by_key(|r| r.to_string());
    expected.sort_by_key(|r| r.to_string());
    assert_eq!(roles, expected, "{key}");
}

#[tokio::test]
async fn project_api_keys_have_the_recorded_shapes_and_codes() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let org = org_id(&atlas).await;
    let group = atlas.create_project("keys").await;
    let base = &atlas.base;

    // Create and assign (v2: 200, as recorded): an ORG_MEMBER with the project roles, the
    // private key shown once, the self link at the organization path.
    let resp = atlas
        .send_v2(
            "POST",
            &format!("/api/atlas/v2/groups/{group}/apiKeys"),
            Some(r#"{"desc":"e2e-test","roles":["GROUP_READ_ONLY"]}"#),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let created = resp.json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["desc", "id", "links", "privateKey", "publicKey", "roles"]
    );
    assert_roles(
        &created,
        &[
            json!({"orgId": org, "roleName": "ORG_MEMBER"}),
            json!({"groupId": group, "roleName": "GROUP_READ_ONLY"}),
        ],
    );
    assert_eq!(
        created["links"],
        json!([{"href": format!("{base}/api/atlas/v2/orgs/{org}/apiKeys/{id}"), "rel": "self"}])
    );
    let new_key = key_of(&created);
    assert!(uuid::Uuid::parse_str(&new_key.private).is_ok());

    // The self link resolves (GET of one org key, once 405), private key masked.
    let resp = atlas
        .get(&format!("/api/atlas/v1.0/orgs/{org}/apiKeys/{id}"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let read = resp.json();
    assert_eq!(read["privateKey"], "********-****-****-************");
    assert_eq!(read["desc"], "e2e-test");
    assert_roles(&read, created["roles"].as_array().unwrap());

    // The project lists it (and only keys assigned to it).
    let other = atlas
        .post(
            &format!("/api/atlas/v1.0/orgs/{org}/apiKeys"),
            r#"{"desc":"unassigned","roles":["ORG_MEMBER"]}"#,
        )
        .await
        .json();
    let other_id = other["id"].as_str().unwrap().to_owned();
    let listed = atlas
        .get(&format!("/api/atlas/v1.0/groups/{group}/apiKeys"))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    assert_eq!(listed["totalCount"], 1);
    assert_eq!(listed["results"][0]["id"], id.as_str());
    assert_eq!(
        listed["results"][0]["privateKey"],
        "********-****-****-************"
    );

    // PATCH on the project: the roles replace the key's roles there (200, the key).
    let resp = atlas
        .send_v2(
            "PATCH",
            &format!("/api/atlas/v2/groups/{group}/apiKeys/{id}"),
            Some(r#"{"roles":["GROUP_DATA_ACCESS_READ_ONLY","GROUP_DATABASE_ACCESS_ADMIN"]}"#),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_roles(
        &resp.json(),
        &[
            json!({"orgId": org, "roleName": "ORG_MEMBER"}),
            json!({"groupId": group, "roleName": "GROUP_DATABASE_ACCESS_ADMIN"}),
            json!({"groupId": group, "roleName": "GROUP_DATA_ACCESS_READ_ONLY"}),
        ],
    );
    // No role, or an unknown one: 400.
    atlas
        .patch(
            &format!("/api/atlas/v1.0/groups/{group}/apiKeys/{id}"),
            r#"{"roles":[]}"#,
        )
        .await
        .assert_error(400, "MISSING_ATTRIBUTE");
    atlas
        .patch(
            &format!("/api/atlas/v1.0/groups/{group}/apiKeys/{id}"),
            r#"{"roles":["GROUP_PROJECT_OWNER"]}"#,
        )
        .await
        .assert_error(400, "INVALID_ENUM_VALUE");

    // POST on the project adds the other key (the spec's 204).
    let resp = atlas
        .send_v2(
            "POST",
            &format!("/api/atlas/v2/groups/{group}/apiKeys/{other_id}"),
            Some(r#"[{"roles":["GROUP_CLUSTER_MANAGER"]}]"#),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert_eq!(resp.body, "");
    let listed = atlas
        .get(&format!("/api/atlas/v1.0/groups/{group}/apiKeys"))
        .await
        .json();
    assert_eq!(listed["totalCount"], 2);

    // DELETE on the project removes it (204), the key itself stays in the organization.
    let resp = atlas
        .send_v2(
            "DELETE",
            &format!("/api/atlas/v2/groups/{group}/apiKeys/{other_id}"),
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let listed = atlas
        .get(&format!("/api/atlas/v1.0/groups/{group}/apiKeys"))
        .await
        .json();
    assert_eq!(listed["totalCount"], 1);
    assert_roles(
        &atlas
            .get(&format!("/api/atlas/v1.0/orgs/{org}/apiKeys/{other_id}"))
            .await
            .json(),
        &[json!({"orgId": org, "roleName": "ORG_MEMBER"})],
    );
    // Removing it again: it is not in the project.
    atlas
        .delete(&format!(
            "/api/atlas/v1.0/groups/{group}/apiKeys/{other_id}"
        ))
        .await
        .assert_error(404, "INVALID_API_KEY_ID");

    // PATCH of an org key: description and organization roles (200, as recorded).
    let resp = atlas
        .send_v2(
            "PATCH",
            &format!("/api/atlas/v2/orgs/{org}/apiKeys/{other_id}"),
            Some(r#"{"desc":"e2e-test-atlas-org-updated","roles":["ORG_READ_ONLY"]}"#),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let updated = resp.json();
    assert_eq!(updated["desc"], "e2e-test-atlas-org-updated");
    assert_roles(
        &updated,
        &[json!({"orgId": org, "roleName": "ORG_READ_ONLY"})],
    );
    atlas
        .patch(
            &format!("/api/atlas/v1.0/orgs/{org}/apiKeys/{other_id}"),
            r#"{"roles":["GROUP_OWNER"]}"#,
        )
        .await
        .assert_error(400, "INVALID_ENUM_VALUE");
    atlas
        .patch(
            &format!("/api/atlas/v1.0/orgs/{org}/apiKeys/{other_id}"),
            r#"{"roles":[]}"#,
        )
        .await
        .assert_error(400, "MISSING_ATTRIBUTE");
    atlas
        .get(&format!(
            "/api/atlas/v1.0/orgs/{org}/apiKeys/000000000000000000000000"
        ))
        .await
        .assert_error(404, "INVALID_API_KEY_ID");

    // The project key works, with its roles: it reads the project, does not write it.
    let as_new = Atlas::with_key(&server, new_key);
    let resp = as_new
        .get(&format!("/api/atlas/v1.0/groups/{group}/databaseUsers"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    as_new
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/apiKeys"),
            r#"{"desc":"x","roles":["GROUP_OWNER"]}"#,
        )
        .await
        .assert_error(401, "USER_UNAUTHORIZED");
    // Only its organization's member rights there: it reads the key list, changes no key.
    let resp = as_new
        .get(&format!("/api/atlas/v1.0/orgs/{org}/apiKeys/{id}"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    as_new
        .patch(
            &format!("/api/atlas/v1.0/orgs/{org}/apiKeys/{id}"),
            r#"{"roles":["ORG_OWNER"]}"#,
        )
        .await
        .assert_error(401, "USER_UNAUTHORIZED");
}

/// What each class of role may do: read the project's users, manage them, issue
/// certificates, create projects.
#[tokio::test]
async fn every_atlas_role_is_accepted_and_maps_to_its_rights() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let org = org_id(&atlas).await;
    let group = atlas.create_project("roles").await;
    atlas.create_managed_user(&group, "target").await;

    // One key per project role, each an ORG_MEMBER with that one role on the project.
    let project_roles = [
        "GROUP_OWNER",
        "GROUP_READ_ONLY",
        "GROUP_DATA_ACCESS_ADMIN",
        "GROUP_DATA_ACCESS_READ_WRITE",
        "GROUP_DATA_ACCESS_READ_ONLY",
        "GROUP_CLUSTER_MANAGER",
        "GROUP_SEARCH_INDEX_EDITOR",
        "GROUP_STREAM_PROCESSING_OWNER",
        "GROUP_DATABASE_ACCESS_ADMIN",
        "GROUP_BACKUP_MANAGER",
        "GROUP_OBSERVABILITY_VIEWER",
    ];
    for (n, role) in project_roles.into_iter().enumerate() {
        let resp = atlas
            .post(
                &format!("/api/atlas/v1.0/groups/{group}/apiKeys"),
                &json!({"desc": role, "roles": [role]}).to_string(),
            )
            .await;
        assert_eq!(resp.status, 201, "{role}: {}", resp.body);
        let key = Atlas::with_key(&server, key_of(&resp.json()));
        let users = format!("/api/atlas/v1.0/groups/{group}/databaseUsers");
        // Every project role reads (Atlas's "Project Read Only").
        let resp = key.get(&users).await;
        assert_eq!(resp.status, 200, "{role} reads users: {}", resp.body);
        let resp = key
            .get(&format!(
                "/api/atlas/v1.0/groups/{group}/databaseUsers/target/certs"
            ))
            .await;
        assert_eq!(resp.status, 200, "{role} lists certificates: {}", resp.body);
        // Database users: Project Owner, Database Access Admin, Stream Processing Owner.
        let manages_users = matches!(
            role,
            "GROUP_OWNER" | "GROUP_DATABASE_ACCESS_ADMIN" | "GROUP_STREAM_PROCESSING_OWNER"
        );
        let body = json!({
            "databaseName": "$external",
            "username": format!("user-{n}"),
            "x509Type": "MANAGED",
            "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
        });
        let resp = key.post(&users, &body.to_string()).await;
        if manages_users {
            assert_eq!(resp.status, 201, "{role} creates a user: {}", resp.body);
            let resp = key.delete(&format!("{users}/$external/user-{n}")).await;
            assert_eq!(resp.status, 204, "{role} deletes a user: {}", resp.body);
        } else {
            resp.assert_error(401, "USER_UNAUTHORIZED");
            key.delete(&format!("{users}/$external/target"))
                .await
                .assert_error(401, "USER_UNAUTHORIZED");
        }
        // Certificates: Project Owner only.
        let resp = key
            .post(
                &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/target/certs"),
                r#"{"monthsUntilExpiration":1}"#,
            )
            .await;
        if role == "GROUP_OWNER" {
            assert_eq!(resp.status, 201, "{role} issues: {}", resp.body);
        } else {
            resp.assert_error(401, "USER_UNAUTHORIZED");
        }
    }

    // Organization roles: every one is accepted; only ORG_OWNER and ORG_GROUP_CREATOR create
    // projects (the creator then owns its project); members other than ORG_OWNER and
    // ORG_READ_ONLY reach no project by their organization role.
    for role in [
        "ORG_OWNER",
        "ORG_READ_ONLY",
        "ORG_MEMBER",
        "ORG_GROUP_CREATOR",
        "ORG_BILLING_ADMIN",
        "ORG_BILLING_READ_ONLY",
    ] {
        let resp = atlas
            .post(
                &format!("/api/atlas/v1.0/orgs/{org}/apiKeys"),
                &json!({"desc": role, "roles": [role]}).to_string(),
            )
            .await;
        assert_eq!(resp.status, 201, "{role}: {}", resp.body);
        let key = Atlas::with_key(&server, key_of(&resp.json()));
        // Every organization role is a member: it reads the organization's keys.
        let resp = key
            .get(&format!("/api/atlas/v1.0/orgs/{org}/apiKeys"))
            .await;
        assert_eq!(resp.status, 200, "{role} lists keys: {}", resp.body);
        let resp = key
            .get(&format!("/api/atlas/v1.0/groups/{group}/databaseUsers"))
            .await;
        if matches!(role, "ORG_OWNER" | "ORG_READ_ONLY") {
            assert_eq!(resp.status, 200, "{role} reads the project: {}", resp.body);
        } else {
            resp.assert_error(401, "NOT_IN_GROUP");
        }
        let resp = key
            .post(
                "/api/atlas/v1.0/groups",
                &json!({"name": format!("by-{role}")}).to_string(),
            )
            .await;
        if matches!(role, "ORG_OWNER" | "ORG_GROUP_CREATOR") {
            assert_eq!(resp.status, 201, "{role} creates a project: {}", resp.body);
            let created = resp.json()["id"].as_str().unwrap().to_owned();
            // The creator owns what it created: it issues there.
            key.create_managed_user(&created, "mine").await;
        } else {
            resp.assert_error(401, "USER_UNAUTHORIZED");
        }
    }
}
