//! The rows of the Atlas routes, each under `/api/atlas/v1.0` and `/api/atlas/v2` (paths after
//! the version prefix).

use super::{Operation, Query, READER, Status, Success, access_list_additions, assignment, schema};
use crate::gateway::api_key_access_list::AccessListEntry;
use crate::gateway::api_keys::{ApiKey, ApiKeyChanges, NewApiKey, NewProjectApiKey};
use crate::gateway::certificates::{Certificate, NewCertificate};
use crate::gateway::database_users::{DatabaseUser, DatabaseUserChanges, NewDatabaseUser};
use crate::gateway::events::Event;
use crate::gateway::organizations::{
    CreatedOrganization, NewOrganization, Organization, OrganizationChanges,
};
use crate::gateway::projects::{NewProject, Project, ProjectChanges};
use crate::gateway::resource::ListPage;
use crate::gateway::root::SystemStatus;
use crate::gateway::user_security::{UserSecurity, UserSecurityChanges};

/// The Atlas routes' operations.
pub const ATLAS: &[Operation] = &[
    Operation {
        method: "get",
        path: "",
        id: "getSystemStatus",
        tag: "Root",
        summary: "Return the calling key and the service",
        description: "Any key: its id, public key and roles and its `accessList` (`cidrBlock`, `ipAddress` for one address); \
                      `appName` is `dbcert`, `build` its version.",
        body: None,
        success: Success::Entity(Status::Always(200), schema::<SystemStatus>),
        query: Query::Flags,
        errors: &[],
    },
    Operation {
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
