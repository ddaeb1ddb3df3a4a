//! The audit trail over gRPC and REST: every change, issue and failed authentication is
//! recorded with its actor and client address, listed in order to project owners only.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

mod common;
mod gateway_support;

use common::{Clients, Key, TestServer, assert_error};
use dbcert::domain::{Actor, AuditAction, AuditScope, OrgId, Page};
use dbcert::proto::v1::{
    AssignApiKeyToProjectRequest, AuditEvent, CreateApiKeyRequest, CustomerX509,
    DeleteApiKeyRequest, DeleteCustomerX509Request, DeleteDatabaseUserRequest,
    DeleteProjectRequest, ListAuditEventsRequest, ListOrganizationsRequest,
    UpdateDatabaseUserRequest, UpdateUserSecurityRequest, X509Type,
    audit_service_client::AuditServiceClient,
};
use gateway_support::Atlas;
use tonic::Code;

async fn events(clients: &Clients, group_id: &str) -> Result<Vec<AuditEvent>, tonic::Status> {
    let channel = clients.channel.clone();
    let value: tonic::metadata::MetadataValue<_> = clients.key.basic().parse().unwrap();
    let mut client =
        AuditServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        });
    client
        .list_audit_events(ListAuditEventsRequest {
            group_id: group_id.into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().results)
}

async fn org_id(clients: &Clients) -> String {
    clients
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .results[0]
        .id
        .clone()
}

/// Creates an ORG_MEMBER key with `role` on the project.
async fn project_key(clients: &Clients, org_id: &str, group_id: &str, role: &str) -> Key {
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id: org_id.into(),
            desc: format!("{role} key"),
            roles: vec!["ORG_MEMBER".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    clients
        .api_keys()
        .assign_api_key_to_project(AssignApiKeyToProjectRequest {
            group_id: group_id.into(),
            api_key_id: created.id.clone(),
            roles: vec![role.into()],
        })
        .await
        .unwrap();
    Key {
        public: created.public_key,
        private: created.private_key,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_is_recorded_in_order_with_actor_and_address() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let org = org_id(&clients).await;
    let group_id = clients.create_project("audited").await;
    clients.create_managed_user(&group_id, "alice").await;
    clients
        .users()
        .update_database_user(UpdateDatabaseUserRequest {
            group_id: group_id.clone(),
            database_name: "$external".into(),
            username: "alice".into(),
            x509_type: Some(X509Type::Managed as i32),
            roles: None,
        })
        .await
        .unwrap();
    let issued = clients.issue(&group_id, "alice", Some(1)).await.unwrap();
    let ca = clients.project_ca_pem(&group_id).await;
    clients
        .security()
        .update_user_security(UpdateUserSecurityRequest {
            group_id: group_id.clone(),
            customer_x509: Some(CustomerX509 { cas: ca }),
            ca_key_type: 0,
        })
        .await
        .unwrap();
    clients
        .security()
        .delete_customer_x509(DeleteCustomerX509Request {
            group_id: group_id.clone(),
        })
        .await
        .unwrap();
    let reader = project_key(&clients, &org, &group_id, "GROUP_READ_ONLY").await;
    clients
        .users()
        .delete_database_user(DeleteDatabaseUserRequest {
            group_id: group_id.clone(),
            database_name: "$external".into(),
            username: "alice".into(),
        })
        .await
        .unwrap();

    let listed = events(&clients, &group_id).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|e| e.event_type_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "PROJECT_CREATED",
            "DATABASE_USER_CREATED",
            "DATABASE_USER_UPDATED",
            "CERTIFICATE_ISSUED",
            "USER_SECURITY_UPDATED",
            "CUSTOMER_X509_DELETED",
            "API_KEY_ASSIGNED",
            "DATABASE_USER_DELETED",
        ]
    );
    for event in &listed {
        assert_eq!(event.public_key, server.key.public, "{event:?}");
        assert!(!event.api_key_id.is_empty());
        assert!(event.remote_address.starts_with("127.0.0.1:"), "{event:?}");
        assert_eq!(event.group_id, group_id);
        assert_eq!(event.org_id, org);
        assert_eq!(event.outcome, "SUCCESS");
    }
    let times: Vec<_> = listed.iter().map(|e| e.created.unwrap().seconds).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let cert = &listed[3];
    assert_eq!(cert.serial_number, Some(issued.serial_number));
    assert_eq!(cert.target, "alice");

    // Project owners only: a GROUP_READ_ONLY key is refused.
    assert_error(
        events(&clients.as_key(&reader), &group_id).await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    let owner = project_key(&clients, &org, &group_id, "GROUP_OWNER").await;
    assert_eq!(
        events(&clients.as_key(&owner), &group_id)
            .await
            .unwrap()
            .len(),
        listed.len() + 1
    );

    // Organization-level changes are attributed to the organization.
    let keys = clients.api_keys();
    let created = keys
        .clone()
        .create_api_key(CreateApiKeyRequest {
            org_id: org.clone(),
            desc: "short-lived".into(),
            roles: vec!["ORG_READ_ONLY".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    keys.clone()
        .delete_api_key(DeleteApiKeyRequest {
            org_id: org.clone(),
            api_key_id: created.id.clone(),
        })
        .await
        .unwrap();
    clients
        .projects()
        .delete_project(DeleteProjectRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap();
    let store = dbcert::storage::open(&dbcert::storage::SqliteStore::url_in(&server.data_dir))
        .await
        .unwrap();
    let org_events = store
        .list_audit_events(
            &AuditScope::Org(OrgId::parse(&org).unwrap()),
            Page::parse(1, 500, Some(true)).unwrap(),
        )
        .await
        .unwrap()
        .results;
    let tail: Vec<(AuditAction, Option<String>)> = org_events
        .iter()
        .rev()
        .take(3)
        .map(|e| (e.action, e.target.clone()))
        .collect();
    assert_eq!(
        tail,
        [
            (AuditAction::ProjectDeleted, None),
            (AuditAction::ApiKeyDeleted, Some(created.id.clone())),
            (AuditAction::ApiKeyCreated, Some(created.id)),
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_authentications_are_recorded_over_grpc_and_rest() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let org = org_id(&clients).await;
    let wrong = Key {
        public: server.key.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    // gRPC Basic with a wrong secret.
    assert_error(
        clients
            .as_key(&wrong)
            .projects()
            .list_projects(dbcert::proto::v1::ListProjectsRequest::default())
            .await,
        Code::Unauthenticated,
        "USER_UNAUTHORIZED",
    );
    // REST: the first, credential-less challenge is not a failure; a wrong response is.
    let atlas = Atlas::with_key(&server, wrong.clone());
    let _ = atlas.nonce().await;
    assert_eq!(atlas.get("/api/atlas/v1.0/orgs").await.status, 401);

    let store = dbcert::storage::open(&dbcert::storage::SqliteStore::url_in(&server.data_dir))
        .await
        .unwrap();
    let failures: Vec<_> = store
        .list_audit_events(
            &AuditScope::Org(OrgId::parse(&org).unwrap()),
            Page::parse(1, 500, Some(true)).unwrap(),
        )
        .await
        .unwrap()
        .results
        .into_iter()
        .filter(|e| e.action == AuditAction::AuthenticationFailed)
        .collect();
    let schemes: Vec<_> = failures.iter().map(|e| e.target.clone().unwrap()).collect();
    assert_eq!(schemes, ["basic", "digest"]);
    for event in &failures {
        assert!(matches!(
            &event.actor,
            Actor::ApiKey { id: Some(_), public_key: Some(k) } if *k == server.key.public
        ));
        assert_eq!(event.client_address.unwrap().ip().to_string(), "127.0.0.1");
    }
    // The presented secret is stored nowhere.
    let db = std::fs::read(server.data_dir.join("dbcert.sqlite3")).unwrap();
    let wal = std::fs::read(server.data_dir.join("dbcert.sqlite3-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(36).any(|w| w == wrong.private.as_bytes()));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_lists_events_in_the_atlas_shape_for_owners_only() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let org = org_id(&clients).await;
    let atlas = Atlas::new(&server);
    let group_id = atlas.create_project("rest-audited").await;
    atlas.create_managed_user(&group_id, "bob").await;
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/bob/certs"),
            r#"{"monthsUntilExpiration": 1}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);

    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group_id}/events?itemsPerPage=2"
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["totalCount"], 3);
    assert_eq!(body["links"][1]["rel"], "next");
    let first = &body["results"][0];
    assert_eq!(first["eventTypeName"], "PROJECT_CREATED");
    assert_eq!(first["groupId"], group_id.as_str());
    assert_eq!(first["publicKey"], server.key.public.as_str());
    assert!(
        first["remoteAddress"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(first["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["results"][1]["username"], "bob");
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group_id}/events?pageNum=2&itemsPerPage=2"
        ))
        .await;
    let cert = &resp.json()["results"][0];
    assert_eq!(cert["eventTypeName"], "CERTIFICATE_ISSUED");
    assert!(cert["serialNumber"].as_i64().unwrap() > 0);

    let reader = project_key(&clients, &org, &group_id, "GROUP_READ_ONLY").await;
    Atlas::with_key(&server, reader)
        .get(&format!("/api/atlas/v1.0/groups/{group_id}/events"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED");
    server.stop().await;
}
