//! The PKI and account core of dbcert. It knows no transport (tonic, axum) and no SQL: the
//! adapters in `crate::grpc` call [`Core`], and `crate::storage` implements [`Store`].

mod access_list;
mod api_keys;
mod audit;
mod auth;
mod ca;
mod ca_rotation;
mod core;
mod crl;
mod csr;
mod database_users;
mod error;
mod issuer;
mod key_pool;
mod key_type;
mod model;
mod ocsp;
mod organizations;
mod projects;
mod revocation;
mod revocation_pointers;
mod roles;
mod rotation;
mod secret;
mod store;
mod user_attributes;
mod user_security;
mod validity;

pub use self::access_list::{
    AccessListAdd, AccessListEntry, AccessListItem, MAX_ACCESS_LIST_ENTRIES,
    MAX_ACCESS_LIST_ENTRIES_PER_REQUEST, not_on_access_list,
};
pub use self::audit::{Actor, AuditAction, AuditEvent, AuditFilter, AuditOutcome, AuditScope};
pub use self::auth::{
    Access, DIGEST_REALM, DigestSecrets, NewApiKey, Principal, is_private_key, is_public_key,
    masked_private_key,
};
pub use self::ca::{CA_LIFETIME, CaError, CaSubject, IssuedCertificate, ProjectCa, random_serial};
pub use self::ca_rotation::{CaBundle, CaCertificate, FIRST_GENERATION, IssuingCa, ca_key_context};
pub use self::core::{Clock, Core, CoreSettings, DIGEST_NONCE_LABEL, SystemClock};
pub use self::crl::{DEFAULT_CRL_VALIDITY, ProjectCrl, REVOCATION_REASONS};
pub use self::csr::{CsrPublicKey, MAX_CSR_PEM_BYTES};
pub use self::database_users::{MAX_ROLES, NewDatabaseUser};
pub use self::error::{AtlasError, AtlasResult, ErrorCode, ErrorKind};
pub use self::issuer::KeySource;
pub use self::key_pool::{KeyPool, KeyPoolConfig, KeyPoolStats, PooledKey};
pub use self::key_type::KeyType;
pub use self::model::*;
pub use self::ocsp::{MAX_OCSP_REQUEST_BYTES, MAX_REQUESTS as MAX_OCSP_REQUESTS};
pub use self::organizations::{Bootstrap, DEFAULT_ORG_NAME};
pub use self::revocation::{
    CertificateState, CertificateStatus, Revocation, RevocationReason, RevocationStore,
    RevokeOutcome, RevokeRequest, RevokedCertificate, invalid_serial, revocation_event,
};
pub use self::revocation_pointers::{
    DBCERT_API_PATH, RevocationPointerSettings, RevocationPointers,
};
pub use self::rotation::{
    MASTER_KEY_CHECK_META, RotationError, RotationReport, check_master_key, rotate_master_key,
};
pub use self::secret::{KEY_ID_LEN, Keyring, MASTER_KEY_LEN, MasterKey, SealError, SecretDer};
pub use self::store::{
    ApiKeyRecord, ApiKeyStore, AuditStore, CertificateLimit, CertificateStatusRecord,
    CertificateStore, CrlStore, CrlVersion, DatabaseUserStore, MetaStore, NewCertificate,
    NonceStore, ProjectCaStore, ProjectStore, RevokedSerial, Store, StoreError, StoreResult,
    StoredCa, StoredCrl, UserSecurityStore,
};
pub use self::user_attributes::{
    AttributeChanges, MAX_DELETE_AFTER, MAX_DESCRIPTION_CHARS, MAX_LABELS, MAX_SCOPES, SCOPE_TYPES,
    UserLabel, UserScope,
};
pub use self::user_security::MAX_CUSTOMER_CA_LEN;
pub use self::validity::{
    BACKDATE, DEFAULT_MONTHS, MAX_MONTHS, Months, Validity, add_calendar_months,
};
