//! Events as Atlas has them (issue 12): Atlas's event type names, stored events renamed by
//! migration 0012 on both backends, the recorded shape and order, one event by id with links that
//! resolve, `eventType` with Atlas's names and `minDate` without an offset; and the v2 media-type
//! versions (`src/gateway/versions.rs`), with the drift test that holds every v2 route to an
//! entry of the versions table.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use dbcert::app::App;
use dbcert::config::Config;
use dbcert::domain::{AuditFilter, AuditScope, OrgId, Page};
use sqlx::Connection as _;
use tower::ServiceExt as _;

use crate::harness::TestServer;
use crate::harness::atlas::{Atlas, Resp};
use crate::harness::pg::TestDatabase;

/// GETs `target` with Digest credentials and the given `Accept` (none: no header).
async fn get_accepting(atlas: &Atlas, target: &str, accept: Option<&str>) -> Resp {
    let nonce = atlas.nonce().await;
    let auth = atlas.authorization("GET", target, &nonce, 1);
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(accept) = accept {
        headers.push(("accept", accept));
    }
    atlas.raw("GET", target, None, &headers).await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_listed_newest_first_in_the_recorded_shape_and_their_links_resolve() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let base = format!("http://{}", server.http_addr);
    let group_id = atlas.create_project("events-as-atlas").await;
    atlas.create_managed_user(&group_id, "CN=user389").await;
    let resp = atlas
        .post(
            &format!("/api/atlas/v2/groups/{group_id}/databaseUsers/CN%3Duser389/certs"),
            r#"{"monthsUntilExpiration": 1}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let org = atlas.get("/api/atlas/v1.0/orgs").await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = atlas
        .send_v2(
            "GET",
            &format!("/api/atlas/v2/groups/{group_id}/events"),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    let results = body["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|e| e["eventTypeName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "MONGODB_USER_X509_CERT_CREATED",
            "MONGODB_USER_ADDED",
            "GROUP_CREATED"
        ]
    );
    let added = &results[1];
    // The recorded keys of a MONGODB_USER_ADDED event, in Atlas's (alphabetical) order.
    let keys: Vec<&str> = added
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "apiKeyId",
            "created",
            "dbUserUsername",
            "eventTypeName",
            "groupId",
            "id",
            "isGlobalAdmin",
            "links",
            "outcome",
            "publicKey",
            "remoteAddress",
        ]
    );
    assert_eq!(added["dbUserUsername"], "CN=user389");
    assert_eq!(added["remoteAddress"], "127.0.0.1");
    assert_eq!(added["isGlobalAdmin"], false);
    assert_eq!(results[0]["dbUserUsername"], "CN=user389");

    // Every event's self link resolves to that event, as the by-id route shows it.
    for event in results {
        let href = event["links"][0]["href"].as_str().unwrap();
        assert_eq!(event["links"][0]["rel"], "self");
        let path = href.strip_prefix(&base).unwrap();
        assert_eq!(
            path,
            format!(
                "/api/atlas/v2/groups/{group_id}/events/{}",
                event["id"].as_str().unwrap()
            )
        );
        let one = atlas.send_v2("GET", path, None).await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(&one.json(), event);
        // And on v1.0, with its own prefix in the link.
        let v1 = path.replace("/api/atlas/v2/", "/api/atlas/v1.0/");
        let one = atlas.get(&v1).await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.json()["links"][0]["href"], format!("{base}{v1}"));
    }

    // The organization's listing: orgId shown, and links to organization-level events under
    // the organization (Atlas's `groups/null/…` resolves nowhere).
    let resp = atlas
        .send_v2("GET", &format!("/api/atlas/v2/orgs/{org}/events"), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let org_events = resp.json()["results"].as_array().unwrap().clone();
    assert!(org_events.iter().all(|e| e["orgId"] == org.as_str()));
    for event in &org_events {
        let href = event["links"][0]["href"].as_str().unwrap();
        let path = href.strip_prefix(&base).unwrap();
        let one = atlas.send_v2("GET", path, None).await;
        assert_eq!(one.status, 200, "{path}: {}", one.body);
        // Under a project: the project's view (no orgId); under the organization: the same.
        let mut expected = event.clone();
        if event.get("groupId").is_some() {
            expected.as_object_mut().unwrap().remove("orgId");
        }
        assert_eq!(one.json(), expected, "{path}");
        let by_org = format!(
            "/api/atlas/v2/orgs/{org}/events/{}",
            event["id"].as_str().unwrap()
        );
        let one = atlas.send_v2("GET", &by_org, None).await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.json()["id"], event["id"]);
    }

    // Unknown, malformed and other projects' event ids: 404 RESOURCE_NOT_FOUND.
    let other = atlas.create_project("events-elsewhere").await;
    let theirs = atlas
        .get(&format!("/api/atlas/v1.0/groups/{other}/events"))
        .await
        .json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for event_id in ["0123456789abcdef01234567", "not-an-id", theirs.as_str()] {
        atlas
            .get(&format!(
                "/api/atlas/v1.0/groups/{group_id}/events/{event_id}"
            ))
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    atlas
        .get(&format!(
            "/api/atlas/v2/orgs/{org}/events/0123456789abcdef01234567"
        ))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn event_filters_take_atlas_names_and_dates_without_an_offset() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group_id = atlas.create_project("events-filtered").await;
    atlas.create_managed_user(&group_id, "alice").await;
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/alice/certs"),
            r#"{"monthsUntilExpiration": 1}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let path = format!("/api/atlas/v1.0/groups/{group_id}/events");
    let names = |query: &'static str| {
        let atlas = &atlas;
        let path = path.clone();
        async move {
            let resp = atlas.get(&format!("{path}?{query}")).await;
            assert_eq!(resp.status, 200, "{query}: {}", resp.body);
            resp.json()["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["eventTypeName"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names("eventType=MONGODB_USER_X509_CERT_CREATED").await,
        ["MONGODB_USER_X509_CERT_CREATED"]
    );
    assert_eq!(
        names("eventType=GROUP_CREATED&eventType=MONGODB_USER_ADDED").await,
        ["MONGODB_USER_ADDED", "GROUP_CREATED"]
    );
    // An Atlas event type dbcert never records: nothing, as Atlas answers a project without it.
    assert!(names("eventType=CLUSTER_CREATED").await.is_empty());
    // dbcert's former names are no event types any more.
    assert!(names("eventType=CERTIFICATE_ISSUED").await.is_empty());
    // What Python's `datetime.utcnow().isoformat()` gives (UTC, no offset), and the Atlas
    // CLI's `-0700` offsets.
    assert_eq!(names("minDate=2000-12-02T18:41:24.589048").await.len(), 3);
    assert!(names("minDate=2999-12-02T18:41:24.589048").await.is_empty());
    assert_eq!(names("maxDate=2999-01-01T00:00:00%2B0000").await.len(), 3);
    assert!(names("maxDate=2000-01-01T00:00:00-0700").await.is_empty());
    for query in [
        "minDate=2026-12-02T18:41",
        "minDate=02/12/2026",
        "eventType=group_created",
    ] {
        atlas
            .get(&format!("{path}?{query}"))
            .await
            .assert_error(400, "INVALID_QUERY_PARAMETER");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_answers_in_the_version_asked_for_or_406() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group_id = atlas.create_project("versions").await;
    let target = format!("/api/atlas/v2/groups/{group_id}/events");

    for accept in [
        Some("application/vnd.atlas.2023-01-01+json"),
        Some("application/vnd.atlas.2025-03-12+json, application/vnd.atlas.2023-01-01+json;q=0.5"),
        // No Atlas version named: the operation's first version.
        None,
        Some("*/*"),
        Some("application/json"),
    ] {
        let resp = get_accepting(&atlas, &target, accept).await;
        assert_eq!(resp.status, 200, "{accept:?}: {}", resp.body);
        assert_eq!(
            resp.header("content-type"),
            "application/vnd.atlas.2023-01-01+json;charset=utf-8",
            "{accept:?}"
        );
    }
    // A date Atlas publishes for other operations (or none), but not for this one.
    for accept in [
        "application/vnd.atlas.2025-03-12+json",
        "application/vnd.atlas.2023-02-01+json",
    ] {
        let error = get_accepting(&atlas, &target, Some(accept))
            .await
            .assert_error(406, "INVALID_VERSION_DATE");
        assert!(
            error["detail"]
                .as_str()
                .unwrap()
                .contains("application/vnd.atlas.2023-01-01+json"),
            "{error}"
        );
    }
    for accept in [
        "application/vnd.atlas.latest+json",
        "application/vnd.atlas.2023-02-30+json",
        "application/vnd.atlas.2023-01-01",
    ] {
        get_accepting(&atlas, &target, Some(accept))
            .await
            .assert_error(406, "NOT_ACCEPTABLE");
    }
    // A create answers in the version too; v1.0 takes no version and ignores the header.
    let nonce = atlas.nonce().await;
    let auth = atlas.authorization("POST", "/api/atlas/v2/groups", &nonce, 1);
    let resp = atlas
        .raw(
            "POST",
            "/api/atlas/v2/groups",
            Some(r#"{"name":"versioned-create"}"#),
            &[
                ("authorization", &auth),
                ("accept", "application/vnd.atlas.2099-01-01+json"),
            ],
        )
        .await;
    assert_eq!(resp.status, 406, "{}", resp.body);
    let listed = atlas.get("/api/atlas/v1.0/groups").await.json();
    assert!(
        listed["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "versioned-create"),
        "a refused version created nothing"
    );
    let resp = get_accepting(
        &atlas,
        &format!("/api/atlas/v1.0/groups/{group_id}/events"),
        Some("application/vnd.atlas.2099-01-01+json"),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("content-type"), "application/json");
    server.stop().await;
}

/// A key added to a project, its roles there changed, then removed: Atlas's three events; and
/// the gRPC API gives the same names and the same event by id.
#[tokio::test(flavor = "multi_thread")]
async fn key_assignments_are_added_changed_and_removed_and_grpc_reads_events_by_id() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let atlas = Atlas::new(&server);
    let group_id = atlas.create_project("assignments").await;
    let org = atlas.get("/api/atlas/v1.0/orgs").await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/orgs/{org}/apiKeys"),
            r#"{"desc": "member", "roles": ["ORG_MEMBER"]}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let key_id = resp.json()["id"].as_str().unwrap().to_owned();
    let target = format!("/api/atlas/v1.0/groups/{group_id}/apiKeys/{key_id}");
    for roles in [r#"["GROUP_READ_ONLY"]"#, r#"["GROUP_OWNER"]"#] {
        let resp = atlas
            .patch(&target, &format!(r#"{{"roles":{roles}}}"#))
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    // Removed from the project: DELETE (a PATCH needs at least one role).
    let resp = atlas.delete(&target).await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let listed = clients
        .audit()
        .list_audit_events(dbcert::proto::v1::ListAuditEventsRequest {
            group_id: group_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|e| (e.event_type_name.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("API_KEY_REMOVED_FROM_GROUP", key_id.as_str()),
            ("API_KEY_ROLES_CHANGED", key_id.as_str()),
            ("API_KEY_ADDED_TO_GROUP", key_id.as_str()),
            ("GROUP_CREATED", ""),
        ]
    );
    for event in &listed {
        let one = clients
            .audit()
            .get_audit_event(dbcert::proto::v1::GetAuditEventRequest {
                group_id: group_id.clone(),
                event_id: event.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&one, event);
        let by_org = clients
            .audit()
            .get_organization_event(dbcert::proto::v1::GetOrganizationEventRequest {
                org_id: org.clone(),
                event_id: event.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&by_org, event);
    }
    let status = clients
        .audit()
        .get_audit_event(dbcert::proto::v1::GetAuditEventRequest {
            group_id,
            event_id: "0123456789abcdef01234567".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(crate::harness::error_code(&status), "RESOURCE_NOT_FOUND");
    server.stop().await;
}

/// The drift test of the versions table: every method of every v2 route (asked of the real
/// router, as `openapi_contract` does) has the versions Atlas publishes for it in
/// `src/gateway/versions.rs`. A route added without an entry fails here.
#[tokio::test(flavor = "multi_thread")]
async fn every_v2_operation_has_a_served_version() {
    let temp = tempfile::tempdir().unwrap();
    crate::harness::private_dir(temp.path());
    let app = App::build(Config::for_test(temp.path().to_path_buf()))
        .await
        .unwrap();
    let router = app.http_router();
    let mut missing = BTreeSet::new();
    let mut checked = 0;
    for template in dbcert::gateway::route_templates() {
        if !template.starts_with("/api/atlas/v2") {
            continue;
        }
        let target = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let request = Request::builder()
            .method("TRACE")
            .uri(&target)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{target}"
        );
        let allow = response.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .to_owned();
        for method in allow.split(',').map(str::trim) {
            let method: Method = method.parse().unwrap();
            checked += 1;
            if dbcert::gateway::versions::published(&method, &template).is_none() {
                missing.insert(format!("{method} {template}"));
            }
        }
    }
    assert!(checked > 20, "{checked}");
    assert!(
        missing.is_empty(),
        "v2 operations without the versions Atlas publishes for them (add them to \
         gateway::versions::SERVED, from the spec's x-xgen-version): {missing:#?}"
    );
}

/// Old events, stored under dbcert's former names, as an upgraded store finds them.
const OLD_NAMES: &[&str] = &[
    "CERTIFICATE_ISSUED",
    "DATABASE_USER_CREATED",
    "DATABASE_USER_UPDATED",
    "DATABASE_USER_DELETED",
    "PROJECT_CREATED",
    "PROJECT_DELETED",
    "API_KEY_ASSIGNED",
    "USER_SECURITY_UPDATED",
    "CUSTOMER_X509_DELETED",
    "API_KEY_CREATED",
    "AUTHENTICATION_FAILED",
    "ORG_CREATED",
];

/// What migration 0012 makes of [`OLD_NAMES`], newest (the last) first.
const NEW_NAMES: &[&str] = &[
    "ORG_CREATED",
    "AUTHENTICATION_FAILED",
    "API_KEY_CREATED",
    "USER_SECURITY_SETTINGS_UPDATED",
    "USER_SECURITY_SETTINGS_UPDATED",
    "API_KEY_ADDED_TO_GROUP",
    "GROUP_DELETED",
    "GROUP_CREATED",
    "MONGODB_USER_DELETED",
    "MONGODB_USER_UPDATED",
    "MONGODB_USER_ADDED",
    "MONGODB_USER_X509_CERT_CREATED",
];

const ORG: &str = "0123456789abcdef01234567";

fn old_event_rows() -> Vec<(String, i64, &'static str)> {
    OLD_NAMES
        .iter()
        .enumerate()
        .map(|(n, name)| {
            (
                format!("{:024x}", n + 1),
                1_700_000_000_000_000 + n as i64,
                *name,
            )
        })
        .collect()
}

/// Reads the organization's events through the store, as the service lists them.
async fn stored_names(url: &str) -> Vec<String> {
    let store = dbcert::storage::open(url)
        .await
        .expect("open the migrated store");
    store
        .list_audit_events(
            &AuditScope::Org(OrgId::parse(ORG).unwrap()),
            &AuditFilter::default(),
            Page::parse(1, 100, Some(true)).unwrap(),
        )
        .await
        .expect("every stored name is a known event type")
        .results
        .into_iter()
        .map(|e| e.action.as_str().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn migration_0012_renames_stored_events_on_postgres() {
    let Some(db) = TestDatabase::create("migration_0012_renames_stored_events_on_postgres").await
    else {
        return;
    };
    drop(dbcert::storage::open(&db.url).await.unwrap());
    // The events of a store before 0012: the old names, then 0012 pending again.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for (id, at, name) in old_event_rows() {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at_us, action, outcome, org_id) \
             VALUES ($1, $2, $3, 'SUCCESS', $4)",
        )
        .bind(id)
        .bind(at)
        .bind(name)
        .bind(ORG)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 12")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(stored_names(&db.url).await, NEW_NAMES);
}

#[tokio::test(flavor = "multi_thread")]
async fn migration_0012_renames_stored_events_on_sqlite() {
    let temp = tempfile::tempdir().unwrap();
    crate::harness::private_dir(temp.path());
    let url = dbcert::storage::SqliteStore::url_in(temp.path());
    drop(dbcert::storage::open(&url).await.unwrap());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for (id, at, name) in old_event_rows() {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at_us, action, outcome, org_id) \
             VALUES ($1, $2, $3, 'SUCCESS', $4)",
        )
        .bind(id)
        .bind(at)
        .bind(name)
        .bind(ORG)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 12")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(stored_names(&url).await, NEW_NAMES);
}
