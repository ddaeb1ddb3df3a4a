//! The operations of the Atlas routes, one row per method and path (after the version prefix):
//! what the OpenAPI document says of each beyond its types. The request and response bodies
//! are the handlers' own serde types (their schemas are derived); the drift test checks that
//! these rows and the route table (`routes.rs`) name the same methods and paths.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::gateway::api_keys::{ApiKey, Assignment, NewApiKey};
use crate::gateway::certificates::{Certificate, NewCertificate};
use crate::gateway::database_users::{DatabaseUser, DatabaseUserChanges, NewDatabaseUser};
use crate::gateway::events::Event;
use crate::gateway::organizations::Organization;
use crate::gateway::projects::{NewProject, Project};
use crate::gateway::resource::ListPage;
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
    /// The PEM text of a certificate and its key (201).
    Pem,
    /// No content (204; 200 when enveloped).
    Empty,
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

const READER: &str =
    "Needs GROUP_READ_ONLY on the project (GROUP_OWNER, ORG_OWNER and ORG_READ_ONLY have it).";

/// Every operation but `GET /api/dbcert/v1/openapi.json`.
pub const OPERATIONS: &[Operation] = &[
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
        method: "get",
        path: "/orgs/{orgId}/apiKeys",
        id: "listApiKeys",
        tag: "Programmatic API Keys",
        summary: "Return the API keys of an organization",
        description: "Needs ORG_OWNER. Private keys are fully masked.",
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
        method: "patch",
        path: "/groups/{groupId}/apiKeys/{apiUserId}",
        id: "updateApiKeyRoles",
        tag: "Programmatic API Keys",
        summary: "Assign an organization's API key to a project with roles (v1 form)",
        description: "Needs GROUP_OWNER on the project. The body is `{\"roles\":[…]}` or v2's \
                      list of such objects; both forms work on both prefixes.",
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
        summary: "Assign an organization's API key to a project with roles (v2 form)",
        description: "Needs GROUP_OWNER on the project. The body is `[{\"roles\":[…]}]` or v1's \
                      single object; both forms work on both prefixes.",
        body: Some(assignment),
        success: Success::Entity(Status::Always(200), schema::<ApiKey>),
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
        description: "Needs ORG_OWNER. `orgId` defaults to the key's organization; \
                      `withDefaultAlertsSettings` is accepted and ignored.",
        body: Some(schema::<NewProject>),
        success: Success::Entity(Status::Created, schema::<Project>),
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
        description: "Needs GROUP_OWNER. X.509 users (`MANAGED`, `CUSTOMER`) live on \
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
        description: "Needs GROUP_OWNER. `groupId`, `databaseName` and `username` in the body, \
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
        description: "Needs GROUP_OWNER. Its certificate records are kept.",
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
        summary: "Return the unexpired certificates of a database user, oldest first",
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
        description: "Needs GROUP_OWNER. Answers the settings (200), as Atlas does.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<UserSecurity>),
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
