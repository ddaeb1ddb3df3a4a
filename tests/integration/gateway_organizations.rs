//! Organizations made, renamed and deleted over REST against the real server (`POST /orgs`,
//! `PATCH`/`DELETE /orgs/{orgId}`, on both API versions): who may, Atlas's shapes and codes,
//! a deletion refused while projects live, the deleted organization's keys gone, and the
//! `ORG_RENAMED`/`ORG_DELETED` events in the trails that can still be read.

use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::harness::atlas::Atlas;
use crate::harness::clients::Key;

/// The key pair of an `apiKey` in a create answer.
fn key_of(created: &Value) -> Key {
    Key {
        public: created["publicKey"].as_str().unwrap().to_owned(),
        private: created["privateKey"].as_str().unwrap().to_owned(),
    }
}

/// The event types of an organization's trail, newest first.
async fn event_types(atlas: &Atlas, org_id: &str) -> Vec<(String, String)> {
    let resp = atlas
        .get(&format!("/api/atlas/v2/orgs/{org_id}/events"))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["eventTypeName"].as_str().unwrap_or_default().to_owned(),
                e["targetOrgId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn organizations_created_renamed_and_deleted() {
    let server = TestServer::start().await;
    let operator = Atlas::new(&server);
    let operator_org = operator.get("/api/atlas/v1.0/orgs").await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Create, v2, with what generated SDKs send: 201, the organization and its first key.
    let body = json!({
        "name": "tenant",
        "apiKey": {"desc": "first key", "roles": ["ORG_OWNER"]},
        "orgOwnerId": "0123456789abcdef01234567",
        "skipDefaultAlertsSettings": true,
    })
    .to_string();
    let resp = operator
        .send_v2("POST", "/api/atlas/v2/orgs", Some(&body))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let made = resp.json();
    assert_eq!(
        made.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["apiKey", "organization"]
    );
    let org_id = made["organization"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["organization"]["name"], "tenant");
    assert_eq!(made["organization"]["isDeleted"], false);
    assert_eq!(made["apiKey"]["desc"], "first key");
    assert_eq!(
        made["apiKey"]["roles"],
        json!([{"orgId": org_id, "roleName": "ORG_OWNER"}])
    );
    let tenant = Atlas::with_key(&server, key_of(&made["apiKey"]));
    assert_eq!(
        tenant
            .get(&format!("/api/atlas/v2/orgs/{org_id}"))
            .await
            .json()["name"],
        "tenant"
    );

    // Create, v1, without a key description; and the refusals.
    let resp = operator
        .post("/api/atlas/v1.0/orgs", r#"{"name":"other"}"#)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let other = resp.json();
    let other_id = other["organization"]["id"].as_str().unwrap().to_owned();
    let stranger = Atlas::with_key(&server, key_of(&other["apiKey"]));
    operator
        .post("/api/atlas/v1.0/orgs", "{}")
        .await
        .assert_error(400, "MISSING_ATTRIBUTE");
    operator
        .post(
            "/api/atlas/v1.0/orgs",
            r#"{"name":"x","apiKey":{"roles":["ORG_READ_ONLY"]}}"#,
        )
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    operator
        .post("/api/atlas/v1.0/orgs", r#"{"name":"x","teams":[]}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    // Only the operator's organization creates organizations.
    tenant
        .post("/api/atlas/v1.0/orgs", r#"{"name":"grandchild"}"#)
        .await
        .assert_error(401, "USER_UNAUTHORIZED");

    // Rename: by its own owner (v1), by the operator (v2, sending back what it read).
    let resp = tenant
        .patch(
            &format!("/api/atlas/v1.0/orgs/{org_id}"),
            r#"{"name":"renamed"}"#,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["name"], "renamed");
    assert_eq!(resp.json()["id"], org_id.as_str());
    let mut read = operator
        .get(&format!("/api/atlas/v2/orgs/{org_id}"))
        .await
        .json();
    assert_eq!(read["name"], "renamed");
    read["name"] = json!("renamed again");
    let resp = operator
        .send_v2(
            "PATCH",
            &format!("/api/atlas/v2/orgs/{org_id}"),
            Some(&read.to_string()),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        tenant
            .get(&format!("/api/atlas/v2/orgs/{org_id}"))
            .await
            .json()["name"],
        "renamed again"
    );
    // Without a name nothing changes; an empty one is refused.
    let resp = tenant
        .patch(&format!("/api/atlas/v2/orgs/{org_id}"), "{}")
        .await;
    assert_eq!(resp.json()["name"], "renamed again", "{}", resp.body);
    tenant
        .patch(&format!("/api/atlas/v2/orgs/{org_id}"), r#"{"name":" "}"#)
        .await
        .assert_error(400, "MISSING_ATTRIBUTE");
    // Neither another tenant nor a read-only key of the organization may rename or delete it.
    let resp = tenant
        .post(
            &format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"),
            r#"{"desc":"reader","roles":["ORG_READ_ONLY"]}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let reader = Atlas::with_key(&server, key_of(&resp.json()));
    for denied in [&stranger, &reader] {
        denied
            .patch(&format!("/api/atlas/v2/orgs/{org_id}"), r#"{"name":"no"}"#)
            .await
            .assert_error(401, "USER_UNAUTHORIZED");
        denied
            .delete(&format!("/api/atlas/v2/orgs/{org_id}"))
            .await
            .assert_error(401, "USER_UNAUTHORIZED");
    }
    // The operator's own organization stays.
    operator
        .delete(&format!("/api/atlas/v1.0/orgs/{operator_org}"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED");

    // Delete: refused while a project lives, then 204; its keys are gone with it.
    let group_id = tenant.create_project("live").await;
    operator
        .delete(&format!("/api/atlas/v2/orgs/{org_id}"))
        .await
        .assert_error(409, "CANNOT_DELETE_ORG_ACTIVE_PROJECTS");
    let resp = tenant
        .get(&format!("/api/atlas/v1.0/groups/{group_id}"))
        .await;
    assert_eq!(
        resp.status, 200,
        "refused deletion changed something: {}",
        resp.body
    );
    let resp = tenant
        .delete(&format!("/api/atlas/v1.0/groups/{group_id}"))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let events = event_types(&tenant, &org_id).await;
    assert!(
        events.contains(&("ORG_RENAMED".to_owned(), org_id.clone())),
        "{events:?}"
    );
    let resp = operator
        .delete(&format!("/api/atlas/v2/orgs/{org_id}"))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert!(resp.body.is_empty());
    for gone in [&tenant, &reader] {
        let resp = gone.get("/api/atlas/v1.0/orgs").await;
        assert_eq!(resp.status, 401, "a deleted organization's key still works");
    }
    operator
        .get(&format!("/api/atlas/v1.0/orgs/{org_id}"))
        .await
        .assert_error(404, "ORG_NOT_FOUND");
    operator
        .delete(&format!("/api/atlas/v1.0/orgs/{org_id}"))
        .await
        .assert_error(404, "ORG_NOT_FOUND");
    operator
        .patch(&format!("/api/atlas/v1.0/orgs/{org_id}"), r#"{"name":"x"}"#)
        .await
        .assert_error(404, "ORG_NOT_FOUND");
    let events = event_types(&operator, &operator_org).await;
    assert_eq!(
        events.first(),
        Some(&("ORG_DELETED".to_owned(), org_id.clone())),
        "{events:?}"
    );

    // A tenant deletes its own organization too (v1, no projects).
    let resp = stranger
        .delete(&format!("/api/atlas/v1.0/orgs/{other_id}"))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    operator
        .get(&format!("/api/atlas/v2/orgs/{other_id}"))
        .await
        .assert_error(404, "ORG_NOT_FOUND");
}
