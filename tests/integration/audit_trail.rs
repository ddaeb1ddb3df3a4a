//! The audit trail over gRPC and REST: every change, issue and failed authentication is
//! recorded with its actor and client address, listed in order to project owners (a project's
//! events) and organization owners (an organization's events) only, filtered by event type and
//! date.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure is the test failing

use dbcert::domain::{Actor, AuditAction, AuditFilter, AuditScope, OrgId, Page};
use dbcert::proto::v1::{
    AssignApiKeyToProjectRequest, AuditEvent, CreateApiKeyRequest, CreateOrganizationRequest,
    CustomerX509, DeleteApiKeyRequest, DeleteCustomerX509Request, DeleteDatabaseUserRequest,
    DeleteProjectRequest, ListAuditEventsRequest, ListOrganizationEventsRequest,
    ListOrganizationEventsResponse, ListProjectsRequest, UpdateDatabaseUserRequest,
    UpdateUserSecurityRequest, X509Type, audit_service_client::AuditServiceClient,
};
use tonic::Code;

use crate::harness::atlas::Atlas;
use crate::harness::{self, Clients, Key, TestServer, assert_error};

type AuditClient = AuditServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

fn audit_client(clients: &Clients) -> AuditClient {
    let value: tonic::metadata::MetadataValue<_> = clients.key.basic().parse().unwrap();
    AuditServiceClient::with_interceptor(
        clients.channel.clone(),
        Box::new(move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        }),
    )
}

async fn org_events(
    clients: &Clients,
    request: ListOrganizationEventsRequest,
) -> Result<ListOrganizationEventsResponse, tonic::Status> {
    audit_client(clients)
        .list_organization_events(request)
        .await
        .map(tonic::Response::into_inner)
}

/// All of an organization's events (one page of 500).
async fn all_org_events(clients: &Clients, org_id: &str) -> Vec<AuditEvent> {
    org_events(
        clients,
        ListOrganizationEventsRequest {
            org_id: org_id.into(),
            items_per_page: 500,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .results
}

async fn events(clients: &Clients, group_id: &str) -> Result<Vec<AuditEvent>, tonic::Status> {
    audit_client(clients)
        .list_audit_events(ListAuditEventsRequest {
            group_id: group_id.into(),
            items_per_page: 500,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().results)
}

pub(crate) async fn org_id(clients: &Clients) -> String {
    clients.first_org_id().await
}

/// Creates an ORG_MEMBER key with `role` on the project.
pub(crate) async fn project_key(
    clients: &Clients,
    org_id: &str,
    group_id: &str,
    role: &str,
) -> Key {
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
            desc: None,
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
            ..Default::default()
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
        // Newest first, under Atlas's names.
        [
            "MONGODB_USER_DELETED",
            // Deleting the user revoked its certificate (issue 11), in the delete's transaction.
            "MONGODB_USER_X509_CERT_REVOKED",
            "API_KEY_ADDED_TO_GROUP",
            "USER_SECURITY_SETTINGS_UPDATED",
            "USER_SECURITY_SETTINGS_UPDATED",
            "MONGODB_USER_X509_CERT_CREATED",
            "MONGODB_USER_UPDATED",
            "MONGODB_USER_ADDED",
            "GROUP_CREATED",
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
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
    let cert = &listed[5];
    assert_eq!(cert.serial_number, Some(issued.serial_number));
    assert_eq!(cert.target, "alice");
    let revoked = &listed[1];
    assert_eq!(revoked.serial_number, Some(issued.serial_number));
    assert_eq!(revoked.target, "alice");

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
            &AuditFilter::default(),
            Page::parse(1, 500, Some(true)).unwrap(),
        )
        .await
        .unwrap()
        .results;
    let tail: Vec<(AuditAction, Option<String>)> = org_events
        .iter()
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
            &AuditFilter::default(),
            Page::parse(1, 500, Some(true)).unwrap(),
        )
        .await
        .unwrap()
        .results
        .into_iter()
        .filter(|e| e.action == AuditAction::AuthenticationFailed)
        .collect();
    let schemes: Vec<_> = failures.iter().map(|e| e.target.clone().unwrap()).collect();
    assert_eq!(schemes, ["digest", "basic"]);
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
    // Newest first, as Atlas lists them: the certificate, the user, then the project.
    let cert = &body["results"][0];
    assert_eq!(cert["eventTypeName"], "MONGODB_USER_X509_CERT_CREATED");
    assert!(cert["serialNumber"].as_i64().unwrap() > 0);
    assert_eq!(cert["dbUserUsername"], "bob");
    assert_eq!(body["results"][1]["eventTypeName"], "MONGODB_USER_ADDED");
    assert_eq!(body["results"][1]["dbUserUsername"], "bob");
    assert!(body["results"][1].get("username").is_none());
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group_id}/events?pageNum=2&itemsPerPage=2"
        ))
        .await;
    let first = &resp.json()["results"][0];
    assert_eq!(first["eventTypeName"], "GROUP_CREATED");
    assert_eq!(first["groupId"], group_id.as_str());
    assert_eq!(first["publicKey"], server.key.public.as_str());
    assert_eq!(first["remoteAddress"], "127.0.0.1");
    assert_eq!(first["isGlobalAdmin"], false);
    assert!(first["created"].as_str().unwrap().ends_with('Z'));

    let reader = project_key(&clients, &org, &group_id, "GROUP_READ_ONLY").await;
    Atlas::with_key(&server, reader)
        .get(&format!("/api/atlas/v1.0/groups/{group_id}/events"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED");
    server.stop().await;
}

/// Creates a key of the organization with `roles` (org roles only).
async fn org_key(clients: &Clients, org_id: &str, roles: &[&str]) -> (Key, String) {
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id: org_id.into(),
            desc: "org key".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    (
        Key {
            public: created.public_key,
            private: created.private_key,
        },
        created.id,
    )
}

/// Whether the service user running the tests sees `AUTHENTICATION_FAILED` rows attributed to
/// no organization for `public_key` in the SQLite store.
async fn unattributed_failures(server: &TestServer, public_key: &str) -> i64 {
    use sqlx::Connection as _;
    let url = dbcert::storage::SqliteStore::url_in(&server.data_dir);
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE org_id IS NULL \
         AND action = 'AUTHENTICATION_FAILED' AND actor_public_key = $1",
    )
    .bind(public_key)
    .fetch_one(&mut db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn organization_events_are_listed_to_organization_owners_only() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let org = org_id(&clients).await;
    let group_id = clients.create_project("org-audited").await;
    let (reader, reader_id) = org_key(&clients, &org, &["ORG_READ_ONLY"]).await;
    let member = project_key(&clients, &org, &group_id, "GROUP_OWNER").await;

    // A refused secret for one of the organization's keys is the organization's event; one
    // for a key that does not exist belongs to no organization.
    let wrong_secret = Key {
        public: reader.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    let unknown = Key::random();
    for key in [&wrong_secret, &unknown] {
        assert_error(
            clients
                .as_key(key)
                .projects()
                .list_projects(ListProjectsRequest::default())
                .await,
            Code::Unauthenticated,
            "USER_UNAUTHORIZED",
        );
    }
    let created = clients
        .orgs()
        .create_organization(CreateOrganizationRequest {
            name: "second".into(),
            api_key_desc: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let second = created.organization.unwrap().id;
    let second_key = created.api_key.unwrap();
    clients
        .projects()
        .delete_project(DeleteProjectRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap();

    let listed = all_org_events(&clients, &org).await;
    let summary: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|e| {
            (
                e.event_type_name.as_str(),
                e.group_id.as_str(),
                e.target.as_str(),
            )
        })
        .collect();
    let member_id = &listed[3].target;
    assert_eq!(
        summary,
        [
            // Deleted: its events stay listed here, where its owners still see them.
            ("GROUP_DELETED", group_id.as_str(), ""),
            ("ORG_CREATED", "", second.as_str()),
            ("AUTHENTICATION_FAILED", "", "basic"),
            (
                "API_KEY_ADDED_TO_GROUP",
                group_id.as_str(),
                member_id.as_str()
            ),
            ("API_KEY_CREATED", "", member_id.as_str()),
            ("API_KEY_CREATED", "", reader_id.as_str()),
            ("GROUP_CREATED", group_id.as_str(), ""),
        ]
    );
    for event in &listed {
        assert_eq!(event.org_id, org, "{event:?}");
        assert!(event.remote_address.starts_with("127.0.0.1:"), "{event:?}");
    }
    let failure = &listed[2];
    assert_eq!(failure.public_key, reader.public);
    assert_eq!(failure.api_key_id, reader_id);
    assert_eq!(failure.outcome, "FAILURE");
    // The unknown key's failure is in no organization's listing, only in the store and the
    // `dbcert::audit` log.
    assert!(listed.iter().all(|e| e.public_key != unknown.public));
    assert_eq!(unattributed_failures(&server, &unknown.public).await, 1);

    // The new organization's trail: its creation and its first key, by the creating key.
    let second_owner = clients.as_key(&Key {
        public: second_key.public_key.clone(),
        private: second_key.private_key.clone(),
    });
    let theirs = all_org_events(&second_owner, &second).await;
    let names: Vec<(&str, &str)> = theirs
        .iter()
        .map(|e| (e.event_type_name.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("API_KEY_CREATED", second_key.id.as_str()),
            ("ORG_CREATED", second.as_str()),
        ]
    );
    assert!(theirs.iter().all(|e| e.public_key == server.key.public));

    // Owners of that organization only: read-only and member keys, and another
    // organization's owner, are refused.
    let request = |org_id: &str| ListOrganizationEventsRequest {
        org_id: org_id.into(),
        ..Default::default()
    };
    for (key, org_id) in [
        (&reader, org.as_str()),
        (&member, org.as_str()),
        (&server.key, second.as_str()),
    ] {
        assert_error(
            org_events(&clients.as_key(key), request(org_id)).await,
            Code::PermissionDenied,
            "USER_UNAUTHORIZED",
        );
    }
    assert_error(
        org_events(&second_owner, request(&org)).await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    let status = org_events(&clients, request("not-an-org"))
        .await
        .unwrap_err();
    assert_eq!(harness::error_code(&status), "INVALID_ORG_ID");

    // Paging as elsewhere.
    let page = org_events(
        &clients,
        ListOrganizationEventsRequest {
            org_id: org.clone(),
            page_num: 3,
            items_per_page: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.total_count, Some(7));
    assert!(!page.has_next_page);
    assert_eq!(page.results.len(), 1);
    assert_eq!(page.results[0].event_type_name, "GROUP_CREATED");

    // Filters: event types (any of them), dates (inclusive); unknown types and impossible
    // timestamps are refused.
    let filtered = |event_type: Vec<&str>, min: Option<i64>, max: Option<i64>| {
        let clients = clients.clone();
        let org = org.clone();
        let event_type: Vec<String> = event_type.into_iter().map(str::to_owned).collect();
        async move {
            org_events(
                &clients,
                ListOrganizationEventsRequest {
                    org_id: org,
                    event_type,
                    min_date: min.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                    max_date: max.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                    ..Default::default()
                },
            )
            .await
        }
    };
    let types = |r: ListOrganizationEventsResponse| -> Vec<String> {
        r.results.into_iter().map(|e| e.event_type_name).collect()
    };
    assert_eq!(
        types(
            filtered(vec!["GROUP_DELETED", "API_KEY_ADDED_TO_GROUP"], None, None)
                .await
                .unwrap()
        ),
        ["GROUP_DELETED", "API_KEY_ADDED_TO_GROUP"]
    );
    // An Atlas event type dbcert never records matches nothing, as in a project without it.
    assert_eq!(
        filtered(vec!["CLUSTER_CREATED"], None, None)
            .await
            .unwrap()
            .total_count,
        Some(0)
    );
    let first = listed[6].created.unwrap().seconds;
    let last = listed[0].created.unwrap();
    let last_ceiling = last.seconds + i64::from(last.nanos > 0);
    assert_eq!(
        filtered(Vec::new(), Some(first), Some(last_ceiling))
            .await
            .unwrap()
            .total_count,
        Some(7)
    );
    assert_eq!(
        filtered(Vec::new(), Some(last_ceiling + 1), None)
            .await
            .unwrap()
            .total_count,
        Some(0)
    );
    assert_eq!(
        filtered(Vec::new(), None, Some(first - 1))
            .await
            .unwrap()
            .total_count,
        Some(0)
    );
    let status = filtered(vec!["GROUP_CREATED", "not-an-event"], None, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(harness::error_code(&status), "INVALID_QUERY_PARAMETER");
    let status = org_events(
        &clients,
        ListOrganizationEventsRequest {
            org_id: org.clone(),
            min_date: Some(prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(harness::error_code(&status), "INVALID_QUERY_PARAMETER");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_lists_organization_events_in_the_atlas_shape() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let org = org_id(&clients).await;
    let atlas = Atlas::new(&server);
    let group_id = atlas.create_project("rest-org-audited").await;
    atlas.create_managed_user(&group_id, "carol").await;
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/orgs/{org}/apiKeys"),
            r#"{"desc": "reader", "roles": ["ORG_READ_ONLY"]}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let reader_id = resp.json()["id"].as_str().unwrap().to_owned();
    let reader = Key {
        public: resp.json()["publicKey"].as_str().unwrap().to_owned(),
        private: resp.json()["privateKey"].as_str().unwrap().to_owned(),
    };
    // A wrong Digest response for the reader's key.
    let wrong = Atlas::with_key(
        &server,
        Key {
            public: reader.public.clone(),
            private: uuid::Uuid::new_v4().to_string(),
        },
    );
    assert_eq!(wrong.get("/api/atlas/v1.0/orgs").await.status, 401);

    let path = format!("/api/atlas/v1.0/orgs/{org}/events");
    let resp = atlas.get(&format!("{path}?itemsPerPage=2")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("content-type"), "application/json");
    let body = resp.json();
    assert_eq!(body["totalCount"], 4, "{body}");
    let links = body["links"].as_array().unwrap();
    assert_eq!(links[0]["rel"], "self");
    assert!(
        links[0]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{path}?itemsPerPage=2"))
    );
    assert_eq!(links[1]["rel"], "next");
    assert!(
        links[1]["href"]
            .as_str()
            .unwrap()
            .ends_with("itemsPerPage=2&pageNum=2")
    );
    // Newest first: the failed authentication, then the key's creation.
    assert_eq!(body["results"][0]["eventTypeName"], "AUTHENTICATION_FAILED");
    assert_eq!(body["results"][1]["eventTypeName"], "API_KEY_CREATED");
    let resp = atlas.get(&format!("{path}?itemsPerPage=2&pageNum=2")).await;
    let body = resp.json();
    assert_eq!(body["results"][0]["eventTypeName"], "MONGODB_USER_ADDED");
    assert_eq!(body["results"][0]["dbUserUsername"], "carol");
    let first = &body["results"][1];
    assert_eq!(first["eventTypeName"], "GROUP_CREATED");
    assert_eq!(first["orgId"], org.as_str());
    assert_eq!(first["groupId"], group_id.as_str());
    assert_eq!(first["publicKey"], server.key.public.as_str());
    assert!(first["created"].as_str().unwrap().ends_with('Z'));

    // The v2 path, a filter on two types, and the Atlas field names of key events and failed
    // authentications (absent attributes omitted).
    let resp = atlas
        .send_v2(
            "GET",
            &format!(
                "/api/atlas/v2/orgs/{org}/events?eventType=AUTHENTICATION_FAILED&eventType=API_KEY_CREATED&includeCount=false"
            ),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.header("content-type")
            .starts_with("application/vnd.atlas.2023-01-01+json")
    );
    let body = resp.json();
    // As recorded: `includeCount=false` answers `"totalCount":0`.
    assert_eq!(body["totalCount"], 0, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(results[1]["eventTypeName"], "API_KEY_CREATED");
    assert_eq!(results[1]["targetApiKeyId"], reader_id.as_str());
    assert!(results[1].get("groupId").is_none());
    assert_eq!(results[0]["eventTypeName"], "AUTHENTICATION_FAILED");
    assert_eq!(results[0]["authScheme"], "digest");
    assert_eq!(results[0]["outcome"], "FAILURE");
    assert_eq!(results[0]["publicKey"], reader.public.as_str());
    assert_eq!(results[0]["apiKeyId"], reader_id.as_str());

    // Dates: ISO 8601 with an offset, or a date (midnight UTC); inclusive.
    let count = |query: String| {
        let atlas = &atlas;
        let path = path.clone();
        async move {
            let resp = atlas.get(&format!("{path}?{query}")).await;
            assert_eq!(resp.status, 200, "{}", resp.body);
            resp.json()["totalCount"].as_i64().unwrap()
        }
    };
    assert_eq!(
        count("minDate=2000-01-01&maxDate=2999-12-31T23:59:59Z".into()).await,
        4
    );
    assert_eq!(count("maxDate=2000-01-01T00:00:00%2B02:00".into()).await, 0);
    assert_eq!(count("minDate=2999-01-01".into()).await, 0);
    // The project listing takes the same filters.
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group_id}/events?eventType=MONGODB_USER_ADDED&minDate=2000-01-01"
        ))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["totalCount"], 1);

    // Bad values: 400 INVALID_QUERY_PARAMETER naming the parameter.
    for (query, parameter) in [
        ("eventType=not_an_event", "eventType"),
        ("eventType=", "eventType"),
        ("minDate=yesterday", "minDate"),
        ("maxDate=2026-08-10T02:06", "maxDate"),
        ("minDate=2026-01-01&minDate=2026-01-02", "minDate"),
        ("pageNum=0", "pageNum"),
    ] {
        let error = atlas
            .get(&format!("{path}?{query}"))
            .await
            .assert_error(400, "INVALID_QUERY_PARAMETER");
        assert_eq!(
            error["parameters"],
            serde_json::json!([parameter]),
            "{query}"
        );
    }

    // Organization owners only; an unknown organization id is refused as elsewhere.
    Atlas::with_key(&server, reader)
        .get(&path)
        .await
        .assert_error(401, "USER_UNAUTHORIZED");
    atlas
        .get("/api/atlas/v1.0/orgs/xyz/events")
        .await
        .assert_error(404, "INVALID_ORG_ID");
    server.stop().await;
}
