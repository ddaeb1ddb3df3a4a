//! The operations of the REST routes, one row per method and path: what the OpenAPI document
//! says of each beyond its types. The request and response bodies are the handlers' own serde
//! types (their schemas are derived); the drift test checks that these rows and the route table
//! (`routes.rs`) name the same methods and paths. The rows are in two files: `atlas.rs` for the
//! Atlas routes (after the version prefix, under both versions) and `dbcert.rs` for dbcert's own
//! under `/api/dbcert/v1`; this file holds what a row is made of.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::gateway::api_key_access_list::NewAccessListEntry;
use crate::gateway::api_keys::Assignment;

mod atlas;
mod dbcert;

pub use self::atlas::ATLAS;
pub use self::dbcert::DBCERT;

/// A schema of a generator's types (a `$ref` to a component, or inline).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One operation of one route: an Atlas route under both version prefixes, or one of dbcert's
/// own under `/api/dbcert/v1` (what Atlas lacks, with the same authentication, roles, error
/// body, `pretty` and `envelope`; `GET /openapi.json` itself is described in `mod.rs`).
pub struct Operation {
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

/// Every operation but `GET /api/dbcert/v1/openapi.json`: the Atlas routes', then dbcert's.
pub fn all() -> impl Iterator<Item = &'static Operation> {
    ATLAS.iter().chain(DBCERT)
}
