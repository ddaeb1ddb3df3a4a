//! Clients of a running server, in-process or spawned: API keys, tonic's generated clients
//! with a key's Basic credentials on every call, the calls most tests start with, and the
//! assertions on Atlas error codes carried by gRPC statuses.

use base64::Engine as _;
use dbcert::proto::v1::{
    KeyType, ListOrganizationsRequest, UpdateUserSecurityRequest,
    api_key_service_client::ApiKeyServiceClient, audit_service_client::AuditServiceClient,
    certificate_service_client::CertificateServiceClient,
    database_user_service_client::DatabaseUserServiceClient,
    organization_service_client::OrganizationServiceClient,
    project_service_client::ProjectServiceClient,
    user_security_service_client::UserSecurityServiceClient,
};
use tonic::transport::Channel;

/// An API key pair.
#[derive(Clone, Debug)]
pub struct Key {
    pub public: String,
    pub private: String,
}

impl Key {
    /// A random key of Atlas's shape, generated at test time.
    pub fn random() -> Self {
        let public: String = (0..8)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        Self {
            public,
            private: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The gRPC `authorization` metadata value.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.public, self.private);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// Generated clients that put a key's Basic credentials on every request.
#[derive(Clone)]
pub struct Clients {
    pub channel: Channel,
    pub key: Key,
}

type Authed = tonic::service::interceptor::InterceptedService<Channel, AuthInterceptor>;

/// Adds `authorization` metadata.
#[derive(Clone)]
pub struct AuthInterceptor(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Clients {
    pub fn new(channel: Channel, key: Key) -> Self {
        Self { channel, key }
    }

    /// The same channel as another key.
    pub fn as_key(&self, key: &Key) -> Self {
        Self::new(self.channel.clone(), key.clone())
    }

    fn interceptor(&self) -> AuthInterceptor {
        AuthInterceptor(Some(self.key.basic().parse().unwrap()))
    }

    pub fn certificates(&self) -> CertificateServiceClient<Authed> {
        CertificateServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn projects(&self) -> ProjectServiceClient<Authed> {
        ProjectServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn users(&self) -> DatabaseUserServiceClient<Authed> {
        DatabaseUserServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn orgs(&self) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn security(&self) -> UserSecurityServiceClient<Authed> {
        UserSecurityServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn api_keys(&self) -> ApiKeyServiceClient<Authed> {
        ApiKeyServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }
    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.interceptor())
    }

    /// Creates a project whose CA will have an ECDSA P-256 key, and returns its id. A CA's key
    /// is generated on the project's first certificate; an RSA-4096 one (the product's default,
    /// as Atlas) costs about a second of CPU, so tests take ECDSA where RSA is not what they
    /// test. Tests of RSA or of Atlas's exact profile use [`Self::create_project_with_ca`].
    /// The id of the first organization the key sees (the bootstrap key's own, in tests).
    pub async fn first_org_id(&self) -> String {
        self.orgs()
            .list_organizations(ListOrganizationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .results[0]
            .id
            .clone()
    }

    pub async fn create_project(&self, name: &str) -> String {
        self.create_project_with_ca(name, KeyType::EcdsaP256).await
    }

    /// Creates a project whose CA will have a key of `ca_key_type` (through the
    /// `UpdateUserSecurity` setting, which records no audit event), and returns its id.
    /// `KeyType::Unspecified` leaves the product's default, RSA-4096.
    pub async fn create_project_with_ca(&self, name: &str, ca_key_type: KeyType) -> String {
        let group_id = self
            .projects()
            .create_project(dbcert::proto::v1::CreateProjectRequest {
                name: name.into(),
                org_id: String::new(),
            })
            .await
            .expect("create project")
            .into_inner()
            .id;
        if ca_key_type != KeyType::Unspecified {
            self.security()
                .update_user_security(UpdateUserSecurityRequest {
                    group_id: group_id.clone(),
                    customer_x509: None,
                    ca_key_type: ca_key_type as i32,
                })
                .await
                .expect("set the project's CA key type");
        }
        group_id
    }

    /// Creates a MANAGED X.509 user on `$external`.
    pub async fn create_managed_user(&self, group_id: &str, username: &str) {
        self.create_user(
            group_id,
            username,
            dbcert::proto::v1::X509Type::Managed,
            "$external",
        )
        .await
        .expect("create managed user");
    }

    pub async fn create_user(
        &self,
        group_id: &str,
        username: &str,
        x509_type: dbcert::proto::v1::X509Type,
        database_name: &str,
    ) -> Result<dbcert::proto::v1::DatabaseUser, tonic::Status> {
        self.users()
            .create_database_user(dbcert::proto::v1::CreateDatabaseUserRequest {
                group_id: group_id.into(),
                username: username.into(),
                database_name: database_name.into(),
                x509_type: x509_type as i32,
                roles: vec![dbcert::proto::v1::DatabaseUserRole {
                    database_name: "admin".into(),
                    role_name: "readWriteAnyDatabase".into(),
                    collection_name: String::new(),
                }],
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn issue(
        &self,
        group_id: &str,
        username: &str,
        months: Option<i64>,
    ) -> Result<dbcert::proto::v1::CreateUserCertificateResponse, tonic::Status> {
        self.certificates()
            .create_user_certificate(dbcert::proto::v1::CreateUserCertificateRequest {
                group_id: group_id.into(),
                username: username.into(),
                months_until_expiration: months,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn project_ca_pem(&self, group_id: &str) -> String {
        self.certificates()
            .get_project_ca_certificate(dbcert::proto::v1::GetProjectCaCertificateRequest {
                group_id: group_id.into(),
            })
            .await
            .expect("get project ca")
            .into_inner()
            .certificate_pem
    }
}

/// The Atlas errorCode (`ErrorInfo.reason`) of a status.
#[track_caller]
pub fn error_code(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .unwrap_or_else(|| panic!("status without ErrorInfo: {status:?}"))
        .reason
        .clone()
}

/// Asserts a status's gRPC code and Atlas errorCode.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    error_code_expected: &str,
) {
    let status = result.expect_err("expected an error");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_code(&status), error_code_expected, "{status:?}");
}
