//! Revocation over REST (`/api/dbcert/v1`): the routes, their refusals in the Atlas error
//! shape, the status listing's paging and envelope, and the Atlas list they change.

use super::{DBCERT, project_key};
use crate::harness::TestServer;
use crate::harness::atlas::Atlas;

#[tokio::test(flavor = "multi_thread")]
async fn rest_revokes_lists_and_refuses_in_the_atlas_shape() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let atlas = Atlas::new(&server);
    let group = clients.create_project("rest-revocation").await;
    clients.create_managed_user(&group, "frank").await;
    clients.create_managed_user(&group, "gina").await;
    let f1 = clients.issue(&group, "frank", None).await.unwrap();
    let f2 = clients.issue(&group, "frank", None).await.unwrap();
    let g1 = clients.issue(&group, "gina", None).await.unwrap();
    let users = format!("{DBCERT}/groups/{group}/databaseUsers");
    let one = |user: &str, serial: &str| format!("{users}/{user}/certs/{serial}/revoke");
    let f1_path = one("frank", &f1.serial_number.to_string());

    // Roles: a read-only key lists but cannot revoke, refused exactly as the Atlas routes
    // refuse it a write (the shared status table: USER_UNAUTHORIZED, with Atlas's status).
    let reader = Atlas::with_key(
        &server,
        project_key(&clients, &group, "GROUP_READ_ONLY").await,
    );
    let atlas_refusal = reader
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/frank/certs"),
            "{}",
        )
        .await;
    let refused = atlas_refusal.status;
    assert!(refused == 401 || refused == 403, "{}", atlas_refusal.body);
    atlas_refusal.assert_error(refused, "USER_UNAUTHORIZED");
    reader
        .post(&f1_path, r#"{"reason":"keyCompromise"}"#)
        .await
        .assert_error(refused, "USER_UNAUTHORIZED");
    let listed = reader.get(&format!("{users}/frank/certs")).await;
    assert_eq!(listed.status, 200, "{}", listed.body);

    // Bad input: each its own 400, nothing revoked.
    let body = atlas
        .post(&f1_path, r#"{"reason":"certificateHold"}"#)
        .await
        .assert_error(400, "INVALID_ENUM_VALUE");
    assert_eq!(body["parameters"][0], "certificateHold");
    atlas
        .post(&f1_path, r#"{"reason":"keyCompromise","when":"now"}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    atlas
        .post(&f1_path, r#"{"reason":5}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    for serial in ["abc", "0", "-1", "99999999999999999999", "1e3"] {
        atlas
            .post(&one("frank", serial), "{}")
            .await
            .assert_error(400, "INVALID_SERIAL_NUMBER");
    }
    let all_valid = |resp: &crate::harness::atlas::Resp| {
        resp.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "VALID")
    };
    assert!(all_valid(&atlas.get(&format!("{users}/frank/certs")).await));

    // Revoke one: 200, the certificate with its status.
    let resp = atlas.post(&f1_path, r#"{"reason":"keyCompromise"}"#).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let cert = resp.json();
    assert_eq!(cert["_id"], f1.serial_number);
    assert_eq!(cert["status"], "REVOKED");
    assert_eq!(cert["revocationReason"], "keyCompromise");
    assert_eq!(cert["subject"], "CN=frank");
    assert!(cert["revokedAt"].as_str().unwrap().ends_with('Z'));

    // Refusals, in the Atlas error shape.
    atlas
        .post(&f1_path, "{}")
        .await
        .assert_error(409, "CERTIFICATE_ALREADY_REVOKED");
    atlas
        .post(&one("frank", &g1.serial_number.to_string()), "{}")
        .await
        .assert_error(404, "CERTIFICATE_NOT_ISSUED_TO_USER");
    let unknown = (1..i64::MAX)
        .find(|s| ![f1.serial_number, f2.serial_number, g1.serial_number].contains(s))
        .unwrap();
    atlas
        .post(&one("frank", &unknown.to_string()), "{}")
        .await
        .assert_error(404, "CERTIFICATE_NOT_FOUND");
    assert!(all_valid(&atlas.get(&format!("{users}/gina/certs")).await));

    // The status listing: paged, counted, enveloped like the Atlas list (a list gains "status").
    let page = atlas
        .get(&format!("{users}/frank/certs?itemsPerPage=1&pageNum=1"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["totalCount"], 2);
    // Oldest first (by notBefore, then serial): each page's one certificate with its status.
    let status_of = |serial: &serde_json::Value| {
        if *serial == f1.serial_number {
            "REVOKED"
        } else {
            "VALID"
        }
    };
    let first = page["results"][0]["_id"].clone();
    assert_eq!(page["results"][0]["status"], status_of(&first));
    assert!(
        page["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "next")
    );
    let enveloped = atlas
        .get(&format!(
            "{users}/frank/certs?envelope=true&pageNum=2&itemsPerPage=1"
        ))
        .await
        .json();
    assert_eq!(enveloped["status"], 200);
    let second = enveloped["results"][0]["_id"].clone();
    let mut both = [first.as_i64().unwrap(), second.as_i64().unwrap()];
    both.sort_unstable();
    let mut issued = [f1.serial_number, f2.serial_number];
    issued.sort_unstable();
    assert_eq!(both, issued, "each certificate on one page");
    assert!(
        page["results"][0]["createdAt"].as_str() <= enveloped["results"][0]["createdAt"].as_str()
    );
    assert_eq!(enveloped["results"][0]["status"], status_of(&second));
    assert_eq!(
        enveloped["results"][0].get("revokedAt").is_some(),
        second == f1.serial_number
    );

    // The Atlas list shows only the unrevoked one.
    let atlas_certs = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers/frank/certs"
        ))
        .await
        .json();
    assert_eq!(atlas_certs["totalCount"], 1);
    assert_eq!(atlas_certs["results"][0]["_id"], f2.serial_number);

    // Revoke all (no body: reason unspecified).
    let resp = atlas.post(&format!("{users}/frank/certs/revoke"), "").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let revoked = resp.json()["revoked"].as_array().unwrap().clone();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["_id"], f2.serial_number);
    assert_eq!(revoked[0]["revocationReason"], "unspecified");
    reader
        .post(&format!("{users}/gina/certs/revoke"), "{}")
        .await
        .assert_error(refused, "USER_UNAUTHORIZED");
    assert!(all_valid(&atlas.get(&format!("{users}/gina/certs")).await));
    server.stop().await;
}
