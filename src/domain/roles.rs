//! The Atlas roles an API key can hold, in its organization and on projects, and what each lets
//! it do with the resources dbcert has (projects, database users, certificates, API keys,
//! events).
//!
//! The names are Atlas's (the role enum of the Administration API's v2 specification); the
//! rights follow the `x-rolesRequirements` of each operation there: reading needs "Project Read
//! Only" (every project role includes it), managing database users "Project Database Access
//! Admin" or "Project Stream Processing Owner", everything else that changes a project
//! (certificates, X.509 settings, key assignments, rename, delete) "Project Owner". In the
//! organization, every role includes "Organization Member" (reads the organization and its
//! keys), ORG_GROUP_CREATOR creates projects, ORG_OWNER does everything and is GROUP_OWNER of
//! every project, ORG_READ_ONLY is GROUP_READ_ONLY of every project. The README's roles table
//! is this file in prose.

use super::auth::Access;
use super::error::{AtlasError, AtlasResult};

/// Declares a role enum with its Atlas names; `ALL` lists every variant in declaration order.
macro_rules! roles {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every role, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant,)+];

            /// Returns the Atlas role name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Parses the Atlas role name (another name: 400 `INVALID_ENUM_VALUE`).
            pub fn parse(s: &str) -> AtlasResult<Self> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(AtlasError::invalid_enum_value("roles", s)),
                }
            }
        }
    };
}

roles! {
    /// A role an API key holds in its organization.
    OrgRole {
        /// Full control of the organization and, implied, of all its projects.
        OrgOwner = "ORG_OWNER",
        /// Reads the organization and all its projects.
        OrgReadOnly = "ORG_READ_ONLY",
        /// Belongs to the organization; reaches only the projects it holds a role on.
        OrgMember = "ORG_MEMBER",
        /// A member that may also create projects.
        OrgGroupCreator = "ORG_GROUP_CREATOR",
        /// A member that manages billing (dbcert has none: a member).
        OrgBillingAdmin = "ORG_BILLING_ADMIN",
        /// A member that reads billing (dbcert has none: a member).
        OrgBillingReadOnly = "ORG_BILLING_READ_ONLY",
    }
}

roles! {
    /// A role an API key holds on one project.
    ProjectRole {
        /// Full control of the project.
        GroupOwner = "GROUP_OWNER",
        /// Reads the project.
        GroupReadOnly = "GROUP_READ_ONLY",
        /// Reads the project; in Atlas also administers its data (Data Explorer).
        GroupDataAccessAdmin = "GROUP_DATA_ACCESS_ADMIN",
        /// Reads the project; in Atlas also reads and writes its data.
        GroupDataAccessReadWrite = "GROUP_DATA_ACCESS_READ_WRITE",
        /// Reads the project; in Atlas also reads its data.
        GroupDataAccessReadOnly = "GROUP_DATA_ACCESS_READ_ONLY",
        /// Reads the project; in Atlas also manages its clusters.
        GroupClusterManager = "GROUP_CLUSTER_MANAGER",
        /// Reads the project; in Atlas also edits its search indexes.
        GroupSearchIndexEditor = "GROUP_SEARCH_INDEX_EDITOR",
        /// Reads the project and manages its database users.
        GroupStreamProcessingOwner = "GROUP_STREAM_PROCESSING_OWNER",
        /// Reads the project and manages its database users.
        GroupDatabaseAccessAdmin = "GROUP_DATABASE_ACCESS_ADMIN",
        /// Reads the project; in Atlas also manages its backups.
        GroupBackupManager = "GROUP_BACKUP_MANAGER",
        /// Reads the project; in Atlas also views its performance data.
        GroupObservabilityViewer = "GROUP_OBSERVABILITY_VIEWER",
    }
}

// === impl OrgRole ===

impl OrgRole {
    /// Whether the role allows `access` to its organization.
    pub fn allows_org(self, access: Access) -> bool {
        match access {
            // "Organization Member": every organization role includes it.
            Access::Read => true,
            Access::CreateProject => matches!(self, Self::OrgOwner | Self::OrgGroupCreator),
            Access::ManageDatabaseUsers | Access::Write => self == Self::OrgOwner,
        }
    }

    /// The project role this organization role implies on every project of the organization.
    pub fn implied_project_role(self) -> Option<ProjectRole> {
        match self {
            Self::OrgOwner => Some(ProjectRole::GroupOwner),
            Self::OrgReadOnly => Some(ProjectRole::GroupReadOnly),
            Self::OrgMember
            | Self::OrgGroupCreator
            | Self::OrgBillingAdmin
            | Self::OrgBillingReadOnly => None,
        }
    }
}

// === impl ProjectRole ===

impl ProjectRole {
    /// Whether the role allows `access` to its project.
    pub fn allows(self, access: Access) -> bool {
        match access {
            // "Project Read Only": every project role includes it.
            Access::Read => true,
            Access::ManageDatabaseUsers => matches!(
                self,
                Self::GroupOwner
                    | Self::GroupDatabaseAccessAdmin
                    | Self::GroupStreamProcessingOwner
            ),
            Access::CreateProject | Access::Write => self == Self::GroupOwner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for role in OrgRole::ALL {
            assert_eq!(OrgRole::parse(role.as_str()).ok(), Some(*role));
        }
        for role in ProjectRole::ALL {
            assert_eq!(ProjectRole::parse(role.as_str()).ok(), Some(*role));
        }
        let mut names: Vec<&str> = OrgRole::ALL.iter().map(|r| r.as_str()).collect();
        names.extend(ProjectRole::ALL.iter().map(|r| r.as_str()));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(OrgRole::ALL.len(), 6);
        assert_eq!(ProjectRole::ALL.len(), 11);
        assert!(ProjectRole::parse("group_owner").is_err());
        assert!(OrgRole::parse("GROUP_OWNER").is_err());
    }

    #[test]
    fn database_users_are_managed_by_the_roles_atlas_names() {
        let managers: Vec<&str> = ProjectRole::ALL
            .iter()
            .filter(|r| r.allows(Access::ManageDatabaseUsers))
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            managers,
            [
                "GROUP_OWNER",
                "GROUP_STREAM_PROCESSING_OWNER",
                "GROUP_DATABASE_ACCESS_ADMIN"
            ]
        );
        let owners: Vec<&str> = ProjectRole::ALL
            .iter()
            .filter(|r| r.allows(Access::Write))
            .map(|r| r.as_str())
            .collect();
        assert_eq!(owners, ["GROUP_OWNER"]);
        assert!(ProjectRole::ALL.iter().all(|r| r.allows(Access::Read)));
        let creators: Vec<&str> = OrgRole::ALL
            .iter()
            .filter(|r| r.allows_org(Access::CreateProject))
            .map(|r| r.as_str())
            .collect();
        assert_eq!(creators, ["ORG_OWNER", "ORG_GROUP_CREATOR"]);
    }
}
