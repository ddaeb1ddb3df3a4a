//! The steps of [`super::atlas_clients`] whose server side is not on this branch yet: each
//! with the branch building it (issue 12's helpers `atlas-res`, `atlas-keys`,
//! `atlas-events`) or `unassigned` when issue 12 does not list it, and the behaviour missing.
//! A listed step that fails is reported on stderr; one that passes fails the test, so that
//! merging a branch shrinks this list to what is still missing.

/// One step awaiting its server side.
pub struct Pending {
    /// The client, as `atlas_clients` names it.
    pub client: &'static str,
    /// The step, exactly as the script reports it.
    pub call: &'static str,
    /// The branch that builds the server side, or `unassigned`.
    pub branch: &'static str,
    /// The missing route, attribute or status.
    pub missing: &'static str,
}

const fn pending(
    client: &'static str,
    call: &'static str,
    branch: &'static str,
    missing: &'static str,
) -> Pending {
    Pending {
        client,
        call,
        branch,
        missing,
    }
}

const UNASSIGNED: &str = "unassigned";

/// Every step awaiting its server side.
pub const PENDING: &[Pending] = &[
    // PyPI mongodb-atlas-api-sdk 0.1.0
    pending(
        "mongodb-atlas-api-sdk",
        "ApiKey.add_ip_address, bulk_add_ip_address_blocks, access_list, delete_ip_address",
        UNASSIGNED,
        "API key access lists, /orgs/{orgId}/apiKeys/{apiUserId}/accessList: 404 (not in issue 12's list)",
    ),
];
