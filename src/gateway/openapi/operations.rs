//! The operations of the Atlas routes, one row per method and path (after the version prefix):
//! what the OpenAPI document says of each beyond its types. The request and response bodies
//! are the handlers' own serde types (their schemas are derived); the drift test checks that
//! these rows and the route table (`routes.rs`) name the same methods and paths.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::gateway::api_key_access_list::{AccessListEntry, NewAccessListEntry};
use crate::gateway::api_keys::{ApiKey, ApiKeyChanges, Assignment, NewApiKey, NewProjectApiKey};
use crate::gateway::ca::{CaRotation, ProjectCa};
use crate::gateway::certificates::{Certificate, NewCertificate};
use crate::gateway::csr::CsrCertificateRequest;
use crate::gateway::database_users::{DatabaseUser, DatabaseUserChanges, NewDatabaseUser};
use crate::gateway::events::Event;
use crate::gateway::organizations::{
    CreatedOrganization, NewOrganization, Organization, OrganizationChanges,
};
use crate::gateway::projects::{NewProject, Project, ProjectChanges};
use crate::gateway::resource::ListPage;
use crate::gateway::revocation::{CertificateStatus, Revoke, RevokedCertificates};
use crate::gateway::root::SystemStatus;
use crate::gateway::user_security::{UserSecurity, UserSecurityChanges};

/// A schema of a generator's types (a `$ref` to a component, or inline).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One operation of one route: an Atlas route under both version prefixes, or one of dbcert's
/// own under `/api/dbcert/v1` (what Atlas lacks, with the same authentication, roles, error
/// body, `pretty` and `envelope`; `GET /openapi.json` itself is described in `mod.rs`).
pub struct Operation {
    /// Which API the path is under.
    pub api: Api,
    /// The HTTP method, lower case.
    pub method: &'static str,
    /// The path template after the prefix, in OpenAPI syntax.
    pub path: &'static str,
    /// The operationId (v2's; v1's gets the suffix `V1`; dbcert's as it is).
    pub id: &'static str,
    /// The tag (the resource).
    pub tag: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The role the key needs, and what else a caller must know.
    pub description: &'static str,
    /// The request body's schema (read under the deserialize contract).
    pub body: Option<SchemaFn>,
    /// The successful answer.
    pub success: Success,
    /// The query parameters beyond `pretty` and `envelope`.
    pub query: Query,
    /// Statuses this operation answers beyond those of every request (see `mod.rs`).
    pub errors: &'static [u16],
}

/// The API of an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Under `/api/atlas/v1.0` and `/api/atlas/v2`.
    Atlas,
    /// Under `/api/dbcert/v1` (media type `application/json`, statuses as v1's).
    Dbcert,
}

/// A successful answer.
pub enum Success {
    /// One JSON entity of this schema (serialize contract), with this status.
    Entity(Status, SchemaFn),
    /// A list page (200): the schema of `ListPage<Item>`.
    List(SchemaFn),
    /// A list page answering a create: 201 on v1, 200 on v2 (the v2 spec's code).
    CreatedList(SchemaFn),
    /// The PEM text of a certificate and its key (201).
    Pem,
    /// The PEM text of a certificate alone (201): its key stayed with the caller.
    CertificatePem,
    /// The PEM text of a project's trust bundle (200).
    TrustBundle,
    /// No content (204; 200 when enveloped).
    Empty,
    /// A public answer (no Digest authentication, no `pretty`/`envelope`): 200 with a body of
    /// this media type; `request` is the media type of the request body, if it has one.
    Public {
        /// The media type of the answer.
        content_type: &'static str,
        /// What the answer is.
        description: &'static str,
        /// The media type of the request body.
        request: Option<&'static str>,
    },
}

/// The status of a successful entity.
#[derive(Clone, Copy)]
pub enum Status {
    /// The same on both versions.
    Always(u16),
    /// A create: 201 on v1, 200 on v2 (the v2 spec's code).
    Created,
    /// `PATCH userSecurity`: 200 on v1, 202 on v2 (as recorded).
    Accepted,
}

/// The query parameters an operation reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Only `pretty` and `envelope`.
    Flags,
    /// And `pageNum`, `itemsPerPage`, `includeCount`.
    Paging,
    /// And the paging and `eventType`, `minDate`, `maxDate`.
    Events,
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// The body of a key assignment: v1's object or v2's list of them (both accepted on both).
fn assignment(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Assignment>();
    json_schema!({"anyOf": [item, {"type": "array", "items": item}]})
}

/// The body of `POST …/accessList`: a list of entries (one object is taken as a list of one).
fn access_list_additions(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<NewAccessListEntry>();
    json_schema!({"anyOf": [{"type": "array", "items": item, "maxItems": 100}, item]})
}

const READER: &str = "Needs any project role (Atlas's Project Read Only), or ORG_OWNER or \
                      ORG_READ_ONLY.";

/// Every operation but `GET /api/dbcert/v1/openapi.json`.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "",
        id: "getSystemStatus",
        tag: "Root",
        summary: "Return the calling key and the service",
        description: "Any key: its id, public key and roles (`accessList` is always empty); \
                      `appName` is `dbcert`, `build` its version.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<SystemStatus>),
        query: Query::Flags,
        errors: &[],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}",
        id: "getOrganization",
        tag: "Organizations",
        summary: "Return the organization of the key",
        description: "Any key of the organization; another organization's id is 401 \
                      `USER_UNAUTHORIZED`.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<Organization>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/groups",
        id: "listOrganizationProjects",
        tag: "Organizations",
        summary: "Return the projects of the key's organization it can reach",
        description: "Any key of the organization: the projects it has a role on (all with an \
                      organization role); another organization's id is 401 `USER_UNAUTHORIZED`.",
        body: None,
        success: Success::List(schema::<ListPage<Project>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs",
        id: "listOrganizations",
        tag: "Organizations",
        summary: "Return the organizations of the key",
        description: "Any key: the one organization it belongs to.",
        body: None,
        success: Success::List(schema::<ListPage<Organization>>),
        query: Query::Paging,
        errors: &[],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/orgs",
        id: "createOrganization",
        tag: "Organizations",
        summary: "Create an organization with its first API key",
        description: "Needs ORG_OWNER of the operator's organization (other keys: 401 \
                      `USER_UNAUTHORIZED`). The answer carries the new organization and its \
                      ORG_OWNER key with its private key, shown only here; `apiKey.roles`, \
                      when sent, must be `[\"ORG_OWNER\"]`. `orgOwnerId`, \
                      `federationSettingsId` and `skipDefaultAlertsSettings` are accepted and \
                      ignored (no console users, federation or alerts).",
        body: Some(schema::<NewOrganization>),
        success: Success::Entity(Status::Always(201), schema::<CreatedOrganization>),
        query: Query::Flags,
        errors: &[],
    },
    Operation {
        api: Api::Atlas,
        method: "patch",
        path: "/orgs/{orgId}",
        id: "updateOrganization",
        tag: "Organizations",
        summary: "Rename an organization",
        description: "Needs ORG_OWNER of it, or of the operator's organization; without \
                      `name` nothing changes. The readOnly attributes of an organization are \
                      ignored.",
        body: Some(schema::<OrganizationChanges>),
        success: Success::Entity(Status::Always(200), schema::<Organization>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/orgs/{orgId}",
        id: "deleteOrganization",
        tag: "Organizations",
        summary: "Delete an organization and its API keys",
        description: "Needs ORG_OWNER of it, or of the operator's organization; the \
                      operator's own organization cannot be deleted (401 \
                      `USER_UNAUTHORIZED`). While it has projects: 409 \
                      `CANNOT_DELETE_ORG_ACTIVE_PROJECTS`.",
        body: None,
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/apiKeys",
        id: "listApiKeys",
        tag: "Programmatic API Keys",
        summary: "Return the API keys of an organization",
        description: "Needs any organization role (Atlas's Organization Member). Private keys \
                      are fully masked.",
        body: None,
        success: Success::List(schema::<ListPage<ApiKey>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/orgs/{orgId}/apiKeys",
        id: "createApiKey",
        tag: "Programmatic API Keys",
        summary: "Create an API key of an organization",
        description: "Needs ORG_OWNER. The answer is the only one that shows the private key.",
        body: Some(schema::<NewApiKey>),
        success: Success::Entity(Status::Created, schema::<ApiKey>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}",
        id: "getApiKey",
        tag: "Programmatic API Keys",
        summary: "Return one API key of an organization",
        description: "Needs any organization role (Atlas's Organization Member). The private \
                      key is fully masked.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<ApiKey>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "patch",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}",
        id: "updateApiKey",
        tag: "Programmatic API Keys",
        summary: "Change the description and/or organization roles of an API key",
        description: "Needs ORG_OWNER. Roles, when sent, replace the key's organization roles \
                      (at least one).",
        body: Some(schema::<ApiKeyChanges>),
        success: Success::Entity(Status::Always(200), schema::<ApiKey>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}",
        id: "deleteApiKey",
        tag: "Programmatic API Keys",
        summary: "Delete an API key of an organization",
        description: "Needs ORG_OWNER.",
        body: None,
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}/accessList",
        id: "listApiKeyAccessListsEntries",
        tag: "Programmatic API Keys",
        summary: "Return the access list of an organization's API key",
        description: "Needs any organization role (Atlas's Organization Member). A key with \
                      entries authenticates only from an address in one of them (403 \
                      `IP_ADDRESS_NOT_ON_ACCESS_LIST` otherwise); with none, from anywhere. \
                      `count`, `lastUsed` and `lastUsedAddress` are not given: requests are \
                      not counted per entry.",
        body: None,
        success: Success::List(schema::<ListPage<AccessListEntry>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}/accessList",
        id: "createApiKeyAccessList",
        tag: "Programmatic API Keys",
        summary: "Add entries to the access list of an organization's API key",
        description: "Needs ORG_OWNER. The body is a list of `{\"ipAddress\": …}` or \
                      `{\"cidrBlock\": …}` (IPv4 or IPv6; a block's host bits zero), at most \
                      100, and a key holds at most 100; an entry already listed stays as it \
                      was. The answer is the list's page asked for: 201 on v1, 200 on v2.",
        body: Some(access_list_additions),
        success: Success::CreatedList(schema::<ListPage<AccessListEntry>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}",
        id: "getApiKeyAccessList",
        tag: "Programmatic API Keys",
        summary: "Return one entry of the access list of an organization's API key",
        description: "Needs any organization role. `{ipAddress}` is an address or a CIDR \
                      block, its `/` percent-encoded (`192.0.2.0%2F24`); one not listed is 404 \
                      `RESOURCE_NOT_FOUND`.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<AccessListEntry>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ipAddress}",
        id: "deleteApiKeyAccessListEntry",
        tag: "Programmatic API Keys",
        summary: "Remove one entry of the access list of an organization's API key",
        description: "Needs ORG_OWNER. A key cannot remove from its own list the entry the \
                      caller's address needs while others remain (400 \
                      `CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST`); removing the last entry lifts \
                      the restriction.",
        body: None,
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/apiKeys",
        id: "listProjectApiKeys",
        tag: "Programmatic API Keys",
        summary: "Return the API keys assigned to a project",
        description: READER,
        body: None,
        success: Success::List(schema::<ListPage<ApiKey>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/groups/{groupId}/apiKeys",
        id: "createProjectApiKey",
        tag: "Programmatic API Keys",
        summary: "Create an API key of the project's organization, assigned to the project",
        description: "Needs GROUP_OWNER on the project. The key is an ORG_MEMBER of the \
                      organization with the given project roles; the answer is the only one \
                      that shows the private key.",
        body: Some(schema::<NewProjectApiKey>),
        success: Success::Entity(Status::Created, schema::<ApiKey>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "patch",
        path: "/groups/{groupId}/apiKeys/{apiUserId}",
        id: "updateApiKeyRoles",
        tag: "Programmatic API Keys",
        summary: "Set the roles of an organization's API key on a project",
        description: "Needs GROUP_OWNER on the project. The body is `{\"roles\":[…]}` (at \
                      least one role; they replace the key's roles on the project) with an \
                      optional `desc`, or v2's list of such objects.",
        body: Some(assignment),
        success: Success::Entity(Status::Always(200), schema::<ApiKey>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/groups/{groupId}/apiKeys/{apiUserId}",
        id: "addProjectApiKey",
        tag: "Programmatic API Keys",
        summary: "Assign an organization's API key to a project with roles",
        description: "Needs GROUP_OWNER on the project. The body is `[{\"roles\":[…]}]` or \
                      v1's single object. No content, as the spec says.",
        body: Some(assignment),
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/groups/{groupId}/apiKeys/{apiUserId}",
        id: "removeProjectApiKey",
        tag: "Programmatic API Keys",
        summary: "Remove an API key from a project",
        description: "Needs GROUP_OWNER on the project. All the key's roles on the project go; \
                      a key not assigned to the project is 404 `INVALID_API_KEY_ID`.",
        body: None,
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/events",
        id: "listOrganizationEvents",
        tag: "Events",
        summary: "Return the audit events of an organization and its projects, newest first",
        description: "Needs ORG_OWNER. Deleted projects' events are included.",
        body: None,
        success: Success::List(schema::<ListPage<Event>>),
        query: Query::Events,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/orgs/{orgId}/events/{eventId}",
        id: "getOrganizationEvent",
        tag: "Events",
        summary: "Return one audit event of an organization",
        description: "Needs ORG_OWNER. Any event the organization's listing shows; another id \
                      is 404 `RESOURCE_NOT_FOUND`.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<Event>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups",
        id: "listProjects",
        tag: "Projects",
        summary: "Return the projects the key can reach",
        description: "Any key: the projects of its organization it has a role on.",
        body: None,
        success: Success::List(schema::<ListPage<Project>>),
        query: Query::Paging,
        errors: &[],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/groups",
        id: "createProject",
        tag: "Projects",
        summary: "Create a project",
        description: "Needs ORG_OWNER or ORG_GROUP_CREATOR (which then owns the project). \
                      `orgId` defaults to the key's organization; \
                      `withDefaultAlertsSettings` is accepted and ignored, `tags` only empty; \
                      the readOnly `id`, `links`, `created`, `clusterCount` are ignored. 201 \
                      on both versions (as recorded on v2).",
        body: Some(schema::<NewProject>),
        success: Success::Entity(Status::Always(201), schema::<Project>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}",
        id: "getProject",
        tag: "Projects",
        summary: "Return a project",
        description: READER,
        body: None,
        success: Success::Entity(Status::Always(200), schema::<Project>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "patch",
        path: "/groups/{groupId}",
        id: "updateProject",
        tag: "Projects",
        summary: "Rename a project",
        description: "Needs GROUP_OWNER. The name is unique among the organization's projects \
                      (409 `GROUP_ALREADY_EXISTS`); without `name` nothing changes. `tags` only \
                      empty; the readOnly attributes of a project are ignored.",
        body: Some(schema::<ProjectChanges>),
        success: Success::Entity(Status::Always(200), schema::<Project>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/byName/{groupName}",
        id: "getProjectByName",
        tag: "Projects",
        summary: "Return a project by its name",
        description: "Needs GROUP_READ_ONLY on it. No project of that name in the key's \
                      organization: 404 `GROUP_NAME_NOT_FOUND`.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<Project>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/groups/{groupId}",
        id: "deleteProject",
        tag: "Projects",
        summary: "Delete a project",
        description: "Needs GROUP_OWNER. Certificate records and the CA certificate are kept; \
                      the CA's sealed private key is destroyed.",
        body: None,
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/databaseUsers",
        id: "listDatabaseUsers",
        tag: "Database Users",
        summary: "Return the database users of a project",
        description: READER,
        body: None,
        success: Success::List(schema::<ListPage<DatabaseUser>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/groups/{groupId}/databaseUsers",
        id: "createDatabaseUser",
        tag: "Database Users",
        summary: "Create a database user",
        description: "Needs GROUP_OWNER, GROUP_DATABASE_ACCESS_ADMIN or \
                      GROUP_STREAM_PROCESSING_OWNER. X.509 users (`MANAGED`, `CUSTOMER`) live on \
                      `$external`, others on `admin`; `password` is refused (dbcert stores no \
                      passwords).",
        body: Some(schema::<NewDatabaseUser>),
        success: Success::Entity(Status::Always(201), schema::<DatabaseUser>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/databaseUsers/{databaseName}/{username}",
        id: "getDatabaseUser",
        tag: "Database Users",
        summary: "Return a database user",
        description: READER,
        body: None,
        success: Success::Entity(Status::Always(200), schema::<DatabaseUser>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "patch",
        path: "/groups/{groupId}/databaseUsers/{databaseName}/{username}",
        id: "updateDatabaseUser",
        tag: "Database Users",
        summary: "Change a database user's x509Type or roles",
        description: "Needs GROUP_OWNER, GROUP_DATABASE_ACCESS_ADMIN or \
                      GROUP_STREAM_PROCESSING_OWNER. `groupId`, `databaseName` and `username` in the body, \
                      when present, must equal the path's.",
        body: Some(schema::<DatabaseUserChanges>),
        success: Success::Entity(Status::Always(200), schema::<DatabaseUser>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/groups/{groupId}/databaseUsers/{databaseName}/{username}",
        id: "deleteDatabaseUser",
        tag: "Database Users",
        summary: "Delete a database user",
        description: "Needs GROUP_OWNER, GROUP_DATABASE_ACCESS_ADMIN or \
                      GROUP_STREAM_PROCESSING_OWNER. Deleting a `$external` user revokes its \
                      unexpired certificates (`cessationOfOperation`, in the same transaction), \
                      so a re-created user of that name does not revive them; the records are \
                      kept.",
        body: None,
        success: Success::Empty,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/databaseUsers/{username}/certs",
        id: "listDatabaseUserCertificates",
        tag: "X.509 Authentication",
        summary: "Return the unexpired, unrevoked certificates of a database user, oldest first",
        description: READER,
        body: None,
        success: Success::List(schema::<ListPage<Certificate>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs",
        id: "createDatabaseUserCertificate",
        tag: "X.509 Authentication",
        summary: "Issue an X.509 client certificate to a MANAGED database user",
        description: "Needs GROUP_OWNER. `monthsUntilExpiration` is 1 to 24 (default 3). The \
                      project's CA is created with its first certificate.",
        body: Some(schema::<NewCertificate>),
        success: Success::Pem,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs",
        id: "createDatabaseUserCertificateFromCsr",
        tag: "X.509 Authentication",
        summary: "Issue an X.509 client certificate for the key of a certificate signing request",
        description: "Needs GROUP_OWNER. The Atlas route's rules (a MANAGED user, the per-user \
                      limit, `monthsUntilExpiration` 1 to 24, default 3, not in self-managed \
                      X.509 mode) and profile, for the public key of `csr`, a PEM PKCS#10 \
                      request (at most 16 KiB) whose signature must verify: RSA 2048/3072/4096 \
                      or ECDSA P-256/P-384, subject empty or exactly `CN=<username>`; its \
                      requested extensions are ignored. Refusals: `INVALID_CSR`, \
                      `CSR_SIGNATURE_INVALID`, `CSR_KEY_TYPE_NOT_SUPPORTED`, \
                      `CSR_SUBJECT_MISMATCH` (400); nothing is recorded.",
        body: Some(schema::<CsrCertificateRequest>),
        success: Success::CertificatePem,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/userSecurity",
        id: "getUserSecurity",
        tag: "LDAP Configuration",
        summary: "Return a project's self-managed X.509 settings",
        description: READER,
        body: None,
        success: Success::Entity(Status::Always(200), schema::<UserSecurity>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "patch",
        path: "/groups/{groupId}/userSecurity",
        id: "updateUserSecurity",
        tag: "LDAP Configuration",
        summary: "Set or clear the customer CA of self-managed X.509",
        description: "Needs GROUP_OWNER. A non-empty `customerX509.cas` turns self-managed mode \
                      on (no certificates are issued while it is); an empty one turns it off; \
                      a body without `customerX509` changes nothing.",
        body: Some(schema::<UserSecurityChanges>),
        success: Success::Entity(Status::Accepted, schema::<UserSecurity>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "delete",
        path: "/groups/{groupId}/userSecurity/customerX509",
        id: "disableCustomerX509",
        tag: "LDAP Configuration",
        summary: "Turn self-managed X.509 off",
        description: "Needs GROUP_OWNER. Answers the settings (202), as the spec says.",
        body: None,
        success: Success::Entity(Status::Always(202), schema::<UserSecurity>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/events",
        id: "listProjectEvents",
        tag: "Events",
        summary: "Return the audit events of a project, newest first",
        description: "Needs GROUP_OWNER (the events name every key and client address).",
        body: None,
        success: Success::List(schema::<ListPage<Event>>),
        query: Query::Events,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "get",
        path: "/groups/{groupId}/databaseUsers/{username}/certs",
        id: "listDatabaseUserCertificateStatuses",
        tag: "Certificate Revocation",
        summary: "Return every certificate of a database user with its status, oldest first",
        description: "Needs GROUP_READ_ONLY on the project (GROUP_OWNER, ORG_OWNER and \
                      ORG_READ_ONLY have it). Expired and revoked certificates too: `status` is \
                      `VALID`, `REVOKED` (with `revokedAt` and `revocationReason`) or `EXPIRED`.",
        body: None,
        success: Success::List(schema::<ListPage<CertificateStatus>>),
        query: Query::Paging,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs/revoke",
        id: "revokeDatabaseUserCertificates",
        tag: "Certificate Revocation",
        summary: "Revoke every unexpired certificate of a database user",
        description: "Needs GROUP_OWNER. `reason` is an RFC 5280 reason name (default \
                      `unspecified`). Answers the certificates it revoked (none is not an \
                      error); they leave the Atlas list and the per-user limit.",
        body: Some(schema::<Revoke>),
        success: Success::Entity(Status::Always(200), schema::<RevokedCertificates>),
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "post",
        path: "/groups/{groupId}/databaseUsers/{username}/certs/{serialNumber}/revoke",
        id: "revokeDatabaseUserCertificate",
        tag: "Certificate Revocation",
        summary: "Revoke one certificate of a database user",
        description: "Needs GROUP_OWNER. `reason` is an RFC 5280 reason name (default \
                      `unspecified`). 409 `CERTIFICATE_ALREADY_REVOKED`; 404 \
                      `CERTIFICATE_NOT_FOUND` (no such serial in the project) or \
                      `CERTIFICATE_NOT_ISSUED_TO_USER`; 400 `INVALID_SERIAL_NUMBER`. A refusal \
                      changes nothing.",
        body: Some(schema::<Revoke>),
        success: Success::Entity(Status::Always(200), schema::<CertificateStatus>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        api: Api::Dbcert,
        method: "get",
        path: "/groups/{groupId}/ca",
        id: "getProjectCaTrustBundle",
        tag: "dbcert",
        summary: "Return a project's CA trust bundle (PEM), mongod's net.tls.CAFile",
        description: "Needs GROUP_READ_ONLY on the project (GROUP_OWNER, ORG_OWNER and \
                      ORG_READ_ONLY have it). The issuing CA first, then each older CA (from \
                      earlier rotations) while a certificate it signed is unexpired and not \
                      revoked. 404 `PROJECT_CA_NOT_FOUND` before the project's first \
                      certificate (a read never creates the CA).",
        body: None,
        success: Success::TrustBundle,
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "post",
        path: "/groups/{groupId}/ca/rotate",
        id: "rotateProjectCa",
        tag: "dbcert",
        summary: "Rotate a project's CA: a new CA issues from now on",
        description: "Needs GROUP_OWNER. `caKeyType` (optional) is the new CA's key type; \
                      absent, the project's current one. Older CAs stay in the trust bundle \
                      until the last certificate each signed has expired or been revoked. 404 \
                      `PROJECT_CA_NOT_FOUND` before the project's first certificate; 409 \
                      `PROJECT_CA_ROTATION_CONFLICT` when another rotation came first (nothing \
                      changed).",
        body: Some(schema::<CaRotation>),
        success: Success::Entity(Status::Always(200), schema::<ProjectCa>),
        query: Query::Flags,
        errors: &[404, 409],
    },
    Operation {
        api: Api::Dbcert,
        method: "get",
        path: "/groups/{groupId}/crl",
        id: "getProjectCrl",
        tag: "Certificate Revocation",
        summary: "Return the issuing CA's certificate revocation list (DER)",
        description: "No key needed: a CRL is public. The CRL of the project's issuing CA \
                      (RFC 5280 v2: authority key identifier, CRL number, a reason code per \
                      entry), listing each revoked certificate until it expires; re-signed on \
                      every revocation and half-way through its validity (`--crl-validity`). \
                      `ETag` (304 on `If-None-Match`) and `Cache-Control: public, max-age=60`. \
                      404 `GROUP_NOT_FOUND`, or `PROJECT_CA_NOT_FOUND` before the project's \
                      first certificate.",
        body: None,
        success: Success::Public {
            content_type: "application/pkix-crl",
            description: "The CRL, DER.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "get",
        path: "/groups/{groupId}/crl/{generation}",
        id: "getProjectCrlOfGeneration",
        tag: "Certificate Revocation",
        summary: "Return the certificate revocation list of one CA generation (DER)",
        description: "No key needed: a CRL is public. The CRL signed by the project's CA of \
                      `{generation}` while that CA is in the project's trust bundle: the URL a \
                      leaf's CRL Distribution Point names under `--leaf-revocation-pointers \
                      crl` (after a rotation an older CA's leaves keep pointing at their own \
                      CA's CRL). Caching as `GET …/crl`. 404 `GROUP_NOT_FOUND`, \
                      `PROJECT_CA_NOT_FOUND` before the project's first certificate, or \
                      `RESOURCE_NOT_FOUND` for a generation not in the trust bundle (or not a \
                      positive decimal without leading zeros).",
        body: None,
        success: Success::Public {
            content_type: "application/pkix-crl",
            description: "The CRL, DER.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "get",
        path: "/groups/{groupId}/crl.pem",
        id: "getProjectCrlPem",
        tag: "Certificate Revocation",
        summary: "Return every current CA's certificate revocation list (PEM)",
        description: "No key needed: a CRL is public. One `X509 CRL` PEM block per current \
                      project CA, the issuing CA's first: the file for mongod's \
                      `net.tls.CRLFile`. Caching and errors as `GET …/crl`.",
        body: None,
        success: Success::Public {
            content_type: "application/x-pem-file",
            description: "The CRLs, PEM.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "post",
        path: "/groups/{groupId}/ocsp",
        id: "getOcspResponse",
        tag: "Certificate Revocation",
        summary: "Answer an OCSP request (RFC 6960)",
        description: "No key needed: the project's OCSP responder. The body is a DER \
                      OCSPRequest (at most 64 KiB, 16 certificates); the answer, signed by \
                      the project CA that issued the certificate, says `good`, `revoked` (time \
                      and reason) or `unknown`, and echoes the request's nonce. What does not \
                      parse is answered with the OCSP `malformedRequest` status (200); when \
                      too many answers are being signed, `tryLater`. 404 `GROUP_NOT_FOUND`, or \
                      `PROJECT_CA_NOT_FOUND` before the project's first certificate.",
        body: None,
        success: Success::Public {
            content_type: "application/ocsp-response",
            description: "The DER OCSPResponse.",
            request: Some("application/ocsp-request"),
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Dbcert,
        method: "get",
        path: "/groups/{groupId}/ocsp/{request}",
        id: "getOcspResponseByGet",
        tag: "Certificate Revocation",
        summary: "Answer an OCSP request sent in the path (RFC 6960 appendix A.1)",
        description: "No key needed. `{request}` is the DER OCSPRequest in base64 (standard, \
                      percent-encoded, or URL-safe); the answer as `POST …/ocsp`.",
        body: None,
        success: Success::Public {
            content_type: "application/ocsp-response",
            description: "The DER OCSPResponse.",
            request: None,
        },
        query: Query::Flags,
        errors: &[404],
    },
    Operation {
        api: Api::Atlas,
        method: "get",
        path: "/groups/{groupId}/events/{eventId}",
        id: "getProjectEvent",
        tag: "Events",
        summary: "Return one audit event of a project",
        description: "Needs GROUP_OWNER. Another project's event, or an unknown id, is 404 \
                      `RESOURCE_NOT_FOUND`.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<Event>),
        query: Query::Flags,
        errors: &[404],
    },
];
