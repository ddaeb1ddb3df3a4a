//! Issue 13, items 6 and 9: reads do not create state (a CA read on a project without a CA
//! neither creates it nor fixes its key type), and only the operator's organization creates
//! organizations.

use dbcert::proto::v1::{
    CreateApiKeyRequest, CreateOrganizationRequest, GetProjectCaCertificateRequest, KeyType,
    ListOrganizationsRequest, UpdateUserSecurityRequest,
};
use tonic::Code;

use crate::harness::{self, Clients, Key, TestServer, assert_error};

async fn own_org_id(clients: &Clients) -> String {
    clients
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0)
        .id
}

async fn new_key(clients: &Clients, org_id: &str, role: &str) -> Key {
    let created = clients
        .api_keys()
        .create_api_key(CreateApiKeyRequest {
            org_id: org_id.into(),
            desc: format!("{role} key"),
            roles: vec![role.into()],
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    Key {
        public: created.public_key,
        private: created.private_key,
    }
}

async fn set_ca_key_type(
    clients: &Clients,
    group_id: &str,
    key_type: KeyType,
) -> Result<tonic::Response<dbcert::proto::v1::UserSecurity>, tonic::Status> {
    clients
        .security()
        .update_user_security(UpdateUserSecurityRequest {
            group_id: group_id.into(),
            customer_x509: None,
            ca_key_type: key_type as i32,
        })
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_read_before_the_first_certificate_creates_nothing() {
    let server = TestServer::start().await;
    let owner = server.clients().await;
    let group_id = owner.create_project("ca-read").await;
    let reader = owner.as_key(&new_key(&owner, &own_org_id(&owner).await, "ORG_READ_ONLY").await);

    // The read-only key's read, and the owner's, answer NOT_FOUND with a code of its own.
    for clients in [&reader, &owner] {
        let status = clients
            .certificates()
            .get_project_ca_certificate(GetProjectCaCertificateRequest {
                group_id: group_id.clone(),
            })
            .await;
        assert_error(status, Code::NotFound, "PROJECT_CA_NOT_FOUND");
    }

    // The key type is still the owner's to change, and the CA is created with it.
    set_ca_key_type(&owner, &group_id, KeyType::EcdsaP384)
        .await
        .unwrap();
    owner.create_managed_user(&group_id, "first").await;
    owner.issue(&group_id, "first", Some(1)).await.unwrap();
    let ca_pem = reader.project_ca_pem(&group_id).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = harness::write(dir.path(), "ca.pem", &ca_pem);
    let (ok, text) = harness::openssl(&["x509", "-in", &ca_path, "-noout", "-text"]);
    assert!(ok && text.contains("secp384r1"), "{text}");

    // From now on the key type is fixed.
    assert_error(
        set_ca_key_type(&owner, &group_id, KeyType::EcdsaP256).await,
        Code::FailedPrecondition,
        "CA_KEY_TYPE_IMMUTABLE",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_operators_organization_creates_organizations() {
    let server = TestServer::start().await;
    let operator = server.clients().await;
    let create = |clients: &Clients, name: &str| {
        let clients = clients.clone();
        let name = name.to_owned();
        async move {
            clients
                .orgs()
                .create_organization(CreateOrganizationRequest {
                    name,
                    api_key_desc: String::new(),
                })
                .await
        }
    };

    // The operator's ORG_OWNER (the bootstrap key) creates a tenant, and another owner of the
    // operator's organization may too.
    let tenant = create(&operator, "tenant").await.unwrap().into_inner();
    let second_owner =
        operator.as_key(&new_key(&operator, &own_org_id(&operator).await, "ORG_OWNER").await);
    create(&second_owner, "tenant two").await.unwrap();

    // The tenant's ORG_OWNER is refused, with Atlas's code for a missing permission.
    let api_key = tenant.api_key.unwrap();
    let tenant_owner = operator.as_key(&Key {
        public: api_key.public_key,
        private: api_key.private_key,
    });
    let refused = create(&tenant_owner, "sub-tenant").await;
    assert_error(refused, Code::PermissionDenied, "USER_UNAUTHORIZED");
}
