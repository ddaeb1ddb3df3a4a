//! Every Atlas error code of the core over gRPC (gRPC code + `ErrorInfo.reason`), and the role
//! matrix of API keys.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic fails the test

use std::net::SocketAddr;

use dbcert::proto::v1::{
    AssignApiKeyToProjectRequest, CreateApiKeyRequest, CreateOrganizationRequest,
    CreateProjectRequest, CustomerX509, DeleteApiKeyRequest, GetProjectRequest, ListApiKeysRequest,
    ListDatabaseUsersRequest, ListOrganizationsRequest, ListProjectsRequest,
    ListUserCertificatesRequest, UpdateDatabaseUserRequest, UpdateUserSecurityRequest, X509Type,
};
use sqlx::Connection as _;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::harness::{self, Clients, Key, TestServer, assert_error, error_code};

fn key_of(api_key: &dbcert::proto::v1::ApiKey) -> Key {
    Key {
        public: api_key.public_key.clone(),
        private: api_key.private_key.clone(),
    }
}

async fn org_key(clients: &Clients, org_id: &str, role: &str) -> (Key, String) {
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id: org_id.into(),
            desc: format!("{role} key"),
            roles: vec![role.into()],
        })
        .await
        .expect("create api key")
        .into_inner()
        .api_key
        .unwrap();
    (key_of(&created), created.id)
}

async fn own_org_id(clients: &Clients) -> String {
    clients.first_org_id().await
}

/// A self-signed customer CA certificate made at test time with rcgen, valid or expired.
fn customer_ca(expired: bool) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "customer ca");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    (params.not_before, params.not_after) = if expired {
        (
            now - time::Duration::days(400),
            now - time::Duration::days(30),
        )
    } else {
        (
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        )
    };
    params.self_signed(&key).unwrap().pem()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_core_error_code_over_grpc() {
    let server = TestServer::start_with(|c| c.core.max_certificates_per_user = 1).await;
    let clients = server.clients().await;
    let group_id = clients.create_project("errors").await;
    clients.create_managed_user(&group_id, "managed").await;
    clients
        .create_user(&group_id, "plain", X509Type::None, "admin")
        .await
        .unwrap();

    // INVALID_GROUP_ID, with a field violation.
    let status = clients.issue("not-hex", "managed", None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(error_code(&status), "INVALID_GROUP_ID");
    let details = status.get_error_details();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "group_id"
    );
    let info = details.error_info().unwrap();
    assert_eq!(info.metadata["httpStatus"], "404");
    assert_eq!(info.metadata["parameters"], "[\"not-hex\"]");
    // GROUP_NOT_FOUND.
    assert_error(
        clients
            .issue("0123456789abcdef01234567", "managed", None)
            .await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
    );
    // USERNAME_NOT_FOUND.
    assert_error(
        clients.issue(&group_id, "nobody", None).await,
        Code::NotFound,
        "USERNAME_NOT_FOUND",
    );
    // USER_NOT_MANAGED_X509.
    assert_error(
        clients.issue(&group_id, "plain", None).await,
        Code::FailedPrecondition,
        "USER_NOT_MANAGED_X509",
    );
    // CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS; 0 and negative months are invalid too.
    assert_error(
        clients.issue(&group_id, "managed", Some(25)).await,
        Code::InvalidArgument,
        "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS",
    );
    for bad in [0, -1, i64::MIN] {
        assert_error(
            clients.issue(&group_id, "managed", Some(bad)).await,
            Code::InvalidArgument,
            "INVALID_ATTRIBUTE",
        );
    }
    // USER_ALREADY_EXISTS.
    assert_error(
        clients
            .create_user(&group_id, "managed", X509Type::Managed, "$external")
            .await,
        Code::AlreadyExists,
        "USER_ALREADY_EXISTS",
    );
    // DATABASE_NAME_INVALID_EXTERNAL.
    assert_error(
        clients
            .create_user(&group_id, "x509-on-admin", X509Type::Managed, "admin")
            .await,
        Code::InvalidArgument,
        "DATABASE_NAME_INVALID_EXTERNAL",
    );
    assert_error(
        clients
            .create_user(&group_id, "customer-on-admin", X509Type::Customer, "admin")
            .await,
        Code::InvalidArgument,
        "DATABASE_NAME_INVALID_EXTERNAL",
    );
    // ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED (the cap is 1 here).
    clients
        .issue(&group_id, "managed", Some(1))
        .await
        .expect("first certificate");
    assert_error(
        clients.issue(&group_id, "managed", Some(1)).await,
        Code::ResourceExhausted,
        "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED",
    );

    // Self-managed mode: CANNOT_GENERATE_CERT_IF_ADVANCED_X509; expired CA refused.
    let expired = customer_ca(true);
    let set_ca = |cas: String| UpdateUserSecurityRequest {
        group_id: group_id.clone(),
        customer_x509: Some(CustomerX509 { cas }),
        ..Default::default()
    };
    assert_error(
        clients
            .security()
            .update_user_security(set_ca(expired))
            .await,
        Code::InvalidArgument,
        "EXPIRED_X509_CA_CERTIFICATE",
    );
    assert_error(
        clients
            .security()
            .update_user_security(set_ca("not a pem".into()))
            .await,
        Code::InvalidArgument,
        "INVALID_X509_CA_CERTIFICATE",
    );
    let valid = customer_ca(false);
    let security = clients
        .security()
        .update_user_security(set_ca(valid.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(security.customer_x509.unwrap().cas, valid);
    clients.create_managed_user(&group_id, "second").await;
    assert_error(
        clients.issue(&group_id, "second", None).await,
        Code::FailedPrecondition,
        "CANNOT_GENERATE_CERT_IF_ADVANCED_X509",
    );
    // Clearing it returns to managed mode.
    clients
        .security()
        .delete_customer_x509(dbcert::proto::v1::DeleteCustomerX509Request {
            group_id: group_id.clone(),
        })
        .await
        .unwrap();
    clients
        .issue(&group_id, "second", Some(1))
        .await
        .expect("managed mode again");

    // INVALID_ENUM_VALUE, MISSING_ATTRIBUTE, INVALID_QUERY_PARAMETER.
    let org_id = own_org_id(&clients).await;
    assert_error(
        clients
            .api_keys()
            .create_api_key(CreateApiKeyRequest {
                org_id: org_id.clone(),
                desc: "d".into(),
                roles: vec!["ROOT".into()],
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ENUM_VALUE",
    );
    assert_error(
        clients
            .projects()
            .create_project(CreateProjectRequest {
                name: " ".into(),
                org_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "MISSING_ATTRIBUTE",
    );
    assert_error(
        clients
            .projects()
            .create_project(CreateProjectRequest {
                name: "errors".into(),
                org_id: String::new(),
            })
            .await,
        Code::AlreadyExists,
        "GROUP_ALREADY_EXISTS",
    );
    assert_error(
        clients
            .certificates()
            .list_user_certificates(ListUserCertificatesRequest {
                group_id: group_id.clone(),
                username: "managed".into(),
                items_per_page: 501,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_QUERY_PARAMETER",
    );
    // A username too long or with control characters.
    assert_error(
        clients.issue(&group_id, &"u".repeat(2000), None).await,
        Code::InvalidArgument,
        "INVALID_ATTRIBUTE",
    );
    assert_error(
        clients.issue(&group_id, "a\0b", None).await,
        Code::InvalidArgument,
        "INVALID_ATTRIBUTE",
    );
    // Updating a user onto an invalid combination is refused too.
    assert_error(
        clients
            .users()
            .update_database_user(UpdateDatabaseUserRequest {
                group_id: group_id.clone(),
                database_name: "admin".into(),
                username: "plain".into(),
                x509_type: Some(X509Type::Managed as i32),
                roles: None,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "DATABASE_NAME_INVALID_EXTERNAL",
    );

    // INVALID_API_KEY_ID for a well-formed id that names no key.
    let unknown_key_id = "0123456789abcdef01234567";
    assert_error(
        clients
            .api_keys()
            .delete_api_key(DeleteApiKeyRequest {
                org_id: org_id.clone(),
                api_key_id: unknown_key_id.into(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_API_KEY_ID",
    );
    assert_error(
        clients
            .api_keys()
            .assign_api_key_to_project(AssignApiKeyToProjectRequest {
                group_id: group_id.clone(),
                api_key_id: unknown_key_id.into(),
                roles: vec!["GROUP_OWNER".into()],
                desc: None,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_API_KEY_ID",
    );

    // The store as left by an outside hand (a partial restore, a manual edit), written here
    // through SQLite behind the server's back: no RPC deletes an organization or writes a
    // malformed row.
    let mut db = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(server.data_dir.join("dbcert.sqlite3"))
            .foreign_keys(false),
    )
    .await
    .unwrap();
    // ORG_NOT_FOUND: a key whose organization is gone. A key's organization always exists
    // otherwise, and a key reaches no other organization.
    let created = clients
        .orgs()
        .create_organization(CreateOrganizationRequest {
            name: "vanishing".into(),
            api_key_desc: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let orphan = clients.as_key(&key_of(&created.api_key.unwrap()));
    let vanished = created.organization.unwrap().id;
    let deleted = sqlx::query("DELETE FROM organizations WHERE id = ?")
        .bind(&vanished)
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    assert_error(
        orphan
            .orgs()
            .list_organizations(ListOrganizationsRequest::default())
            .await,
        Code::NotFound,
        "ORG_NOT_FOUND",
    );
    assert_error(
        orphan
            .api_keys()
            .list_api_keys(ListApiKeysRequest {
                org_id: vanished,
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "ORG_NOT_FOUND",
    );
    // UNEXPECTED_ERROR: a stored row the server cannot read (roles that are not JSON).
    let corrupted = sqlx::query("UPDATE database_users SET roles = 'not json' WHERE username = ?")
        .bind("second")
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(corrupted.rows_affected(), 1);
    db.close().await.unwrap();
    let status = clients
        .users()
        .list_database_users(ListDatabaseUsersRequest {
            group_id: group_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(error_code(&status), "UNEXPECTED_ERROR");
    assert!(
        !status.message().contains("roles"),
        "the cause stays in the log: {status:?}"
    );
}

/// A TCP relay to PostgreSQL that the test can cut: while cut, it closes the connections it
/// carries and every new one at once, as a database behind a failed network path is.
struct Relay {
    addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue;
                }
                let (upstream, mut cut_rx) = (upstream.clone(), cut_rx.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// The `host:port` of a PostgreSQL URL, and the URL with `addr` in its place.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (format!("{userinfo}@"), host),
        None => (String::new(), authority),
    };
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (upstream, format!("{scheme}://{userinfo}{addr}/{path}"))
}

/// SERVICE_UNAVAILABLE: the store cannot be reached (PostgreSQL behind a cut relay); calls
/// work again once it can.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_store_is_service_unavailable() {
    let Some(db) =
        harness::pg::TestDatabase::create("an_unreachable_store_is_service_unavailable").await
    else {
        return;
    };
    let relay_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let (upstream, _) = through(&db.url, relay_addr);
    let relay = Relay::start(upstream).await;
    let (_, url) = through(&db.url, relay.addr);
    let server = TestServer::start_with(|config| config.database_url = url).await;
    let clients = server.clients().await;
    let list = || async {
        clients
            .projects()
            .list_projects(ListProjectsRequest::default())
            .await
    };
    list().await.unwrap();

    relay.set_cut(true);
    let status = list().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(error_code(&status), "SERVICE_UNAVAILABLE");
    assert_eq!(
        status.get_error_details().error_info().unwrap().metadata["httpStatus"],
        "503"
    );

    relay.set_cut(false);
    list().await.expect("the store is reachable again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_is_required_and_checked() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    // No credentials: UNAUTHENTICATED.
    let mut anonymous =
        dbcert::proto::v1::project_service_client::ProjectServiceClient::new(channel.clone());
    let status = anonymous
        .list_projects(ListProjectsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_code(&status), "USER_UNAUTHORIZED");
    // Wrong private key, unknown public key, malformed header: UNAUTHENTICATED.
    let clients = server.clients().await;
    let wrong = Key {
        public: server.key.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    for key in [wrong, Key::random()] {
        let status = clients
            .as_key(&key)
            .projects()
            .list_projects(ListProjectsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let mut request = tonic::Request::new(ListProjectsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Basic %%%".parse().unwrap());
    assert_eq!(
        anonymous.list_projects(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn role_matrix() {
    let server = TestServer::start().await;
    let owner = server.clients().await;
    let org_id = own_org_id(&owner).await;
    let group_id = owner.create_project("roles").await;
    let other_group = owner.create_project("elsewhere").await;
    owner.create_managed_user(&group_id, "target").await;

    let (org_ro, _) = org_key(&owner, &org_id, "ORG_READ_ONLY").await;
    // ORG_MEMBER keys reach only the projects they are assigned to.
    let (group_owner, group_owner_id) = org_key(&owner, &org_id, "ORG_MEMBER").await;
    let (group_ro, group_ro_id) = org_key(&owner, &org_id, "ORG_MEMBER").await;
    let (member, _) = org_key(&owner, &org_id, "ORG_MEMBER").await;
    for (id, role) in [
        (&group_owner_id, "GROUP_OWNER"),
        (&group_ro_id, "GROUP_READ_ONLY"),
    ] {
        owner
            .api_keys()
            .assign_api_key_to_project(AssignApiKeyToProjectRequest {
                group_id: group_id.clone(),
                api_key_id: id.clone(),
                roles: vec![role.into()],
                desc: None,
            })
            .await
            .expect("assign");
    }
    // A key of another organization, even an owner there.
    let created = owner
        .orgs()
        .create_organization(CreateOrganizationRequest {
            name: "other org".into(),
            api_key_desc: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let foreign = key_of(&created.api_key.unwrap());

    let read = |key: &Key| {
        let clients = owner.as_key(key);
        let group_id = group_id.clone();
        async move {
            clients
                .certificates()
                .list_user_certificates(ListUserCertificatesRequest {
                    group_id,
                    username: "target".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        }
    };
    let write = |key: &Key| {
        let clients = owner.as_key(key);
        let group_id = group_id.clone();
        async move {
            clients
                .issue(&group_id, "target", Some(1))
                .await
                .map(|_| ())
        }
    };

    // ORG_OWNER: everything.
    read(&owner.key).await.unwrap();
    write(&owner.key).await.unwrap();
    // ORG_READ_ONLY: read only.
    read(&org_ro).await.unwrap();
    assert_error(
        write(&org_ro).await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    // GROUP_OWNER on the project (plus ORG_READ_ONLY): writes.
    write(&group_owner).await.unwrap();
    // GROUP_READ_ONLY: read only.
    read(&group_ro).await.unwrap();
    assert_error(
        write(&group_ro).await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    // A member of the organization without a role on the project: NOT_IN_GROUP.
    assert_error(read(&member).await, Code::PermissionDenied, "NOT_IN_GROUP");
    assert_error(write(&member).await, Code::PermissionDenied, "NOT_IN_GROUP");
    // Another organization's key: NOT_IN_GROUP for reads and writes.
    assert_error(read(&foreign).await, Code::PermissionDenied, "NOT_IN_GROUP");
    assert_error(
        write(&foreign).await,
        Code::PermissionDenied,
        "NOT_IN_GROUP",
    );
    assert_error(
        owner
            .as_key(&foreign)
            .projects()
            .get_project(GetProjectRequest {
                group_id: group_id.clone(),
            })
            .await,
        Code::PermissionDenied,
        "NOT_IN_GROUP",
    );
    // GROUP_OWNER of one project is not an owner of another.
    assert_error(
        owner
            .as_key(&group_owner)
            .issue(&other_group, "x", None)
            .await,
        Code::PermissionDenied,
        "NOT_IN_GROUP",
    );
    // Only ORG_OWNER creates projects and keys; READ_ONLY lists keys, the foreign key cannot.
    assert_error(
        owner
            .as_key(&org_ro)
            .projects()
            .create_project(CreateProjectRequest {
                name: "nope".into(),
                org_id: String::new(),
            })
            .await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    assert_error(
        owner
            .as_key(&org_ro)
            .api_keys()
            .create_api_key(CreateApiKeyRequest {
                org_id: org_id.clone(),
                desc: "d".into(),
                roles: vec!["ORG_OWNER".into()],
            })
            .await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    let listed = owner
        .as_key(&org_ro)
        .api_keys()
        .list_api_keys(ListApiKeysRequest {
            org_id: org_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_count, Some(5));
    for key in &listed.results {
        assert_eq!(
            key.private_key, "********-****-****-************",
            "private keys are never shown again"
        );
    }
    assert_error(
        owner
            .as_key(&foreign)
            .api_keys()
            .list_api_keys(ListApiKeysRequest {
                org_id: org_id.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    // A deleted key stops working at once.
    owner
        .api_keys()
        .delete_api_key(DeleteApiKeyRequest {
            org_id: org_id.clone(),
            api_key_id: group_ro_id,
        })
        .await
        .unwrap();
    assert_eq!(
        read(&group_ro).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn project_only_keys_see_only_their_projects() {
    let server = TestServer::start().await;
    let owner = server.clients().await;
    let org_id = own_org_id(&owner).await;
    let mine = owner.create_project("mine").await;
    let _theirs = owner.create_project("theirs").await;
    let (key, key_id) = org_key(&owner, &org_id, "ORG_MEMBER").await;
    owner
        .api_keys()
        .assign_api_key_to_project(AssignApiKeyToProjectRequest {
            group_id: mine.clone(),
            api_key_id: key_id,
            roles: vec!["GROUP_OWNER".into()],
            desc: None,
        })
        .await
        .unwrap();
    // A member lists only the project it is assigned to; the owner lists all.
    let listed = owner
        .as_key(&key)
        .projects()
        .list_projects(ListProjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_count, Some(1));
    assert_eq!(listed.results[0].id, mine);
    let all = owner
        .projects()
        .list_projects(ListProjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total_count, Some(2));
    // Deleting a project makes it GROUP_NOT_FOUND and drops it from lists.
    owner
        .projects()
        .delete_project(dbcert::proto::v1::DeleteProjectRequest {
            group_id: mine.clone(),
        })
        .await
        .unwrap();
    assert_error(
        owner
            .projects()
            .get_project(GetProjectRequest { group_id: mine })
            .await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
    );
    let all = owner
        .projects()
        .list_projects(ListProjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total_count, Some(1));
}
