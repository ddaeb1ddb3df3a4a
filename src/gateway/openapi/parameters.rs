//! The document's parameters: those of each path (named by the templates) and the shared
//! query parameters (`pretty`, `envelope`, paging, the events' filters).

use serde_json::{Value, json};

use crate::domain::{AuditAction, MAX_ITEMS_PER_PAGE};

pub(super) fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let description = match name {
                "groupId" => "The project's id: 24 hexadecimal characters.",
                "orgId" => "The organization's id: 24 hexadecimal characters.",
                "apiUserId" => "The API key's id: 24 hexadecimal characters.",
                "groupName" => "The project's name (percent-encoded).",
                "eventId" => "The event's id: 24 hexadecimal characters.",
                "databaseName" => "`$external` for X.509 users, `admin` for others.",
                "username" => "The database user's name (percent-encoded).",
                "ipAddress" => {
                    "An access list entry: an IPv4 or IPv6 address, or a CIDR block with its \
                                 `/` percent-encoded (`192.0.2.0%2F24`)."
                }
                "generation" => {
                    "A project CA generation: 1 for the project's first CA, one more \
                                 per rotation."
                }
                _ => "",
            };
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": description,
                "schema": {"type": "string"},
            })
        })
        .collect()
}

pub(super) fn component_parameter(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

pub(super) fn parameters() -> Value {
    let event_types: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    let flag = |name: &str, description: &str| {
        json!({
            "name": name,
            "in": "query",
            "required": false,
            "description": description,
            "schema": {"type": "boolean", "default": false},
        })
    };
    json!({
        "pretty": flag("pretty", "Jackson-style indented JSON. Given twice, or other than \
            `true`/`false` (any case): 400 `INVALID_QUERY_PARAMETER`, before authentication."),
        "envelope": flag("envelope", "Wrap the body as `{\"status\":…,\"content\":…}` (a list \
            gains `status`); the HTTP status is kept, except 204, sent as 200. Given twice, or \
            other than `true`/`false`: 400 `INVALID_QUERY_PARAMETER`."),
        "pageNum": {
            "name": "pageNum", "in": "query", "required": false,
            "description": "The page, from 1. Not a positive 32-bit integer, or given twice: \
                400 `INVALID_QUERY_PARAMETER`.",
            "schema": {"type": "integer", "format": "int32", "minimum": 1, "default": 1},
        },
        "itemsPerPage": {
            "name": "itemsPerPage", "in": "query", "required": false,
            "description": "Results per page. Out of range, or given twice: 400 \
                `INVALID_QUERY_PARAMETER`.",
            "schema": {"type": "integer", "format": "int32", "minimum": 1, "maximum": MAX_ITEMS_PER_PAGE, "default": 100},
        },
        "includeCount": flag("includeCount", "Whether `totalCount` is counted (default true \
            here); false answers 0, as recorded."),
        "eventType": {
            "name": "eventType", "in": "query", "required": false,
            "description": "Only events of these types, Atlas's event type names (repeat the \
                parameter for several). dbcert records the types listed in `examples`; another \
                name of that shape (an Atlas event type dbcert never records) matches nothing; \
                anything else is 400 `INVALID_QUERY_PARAMETER`.",
            "style": "form", "explode": true,
            "schema": {"type": "array", "items": {
                "type": "string", "pattern": "^[A-Z][A-Z0-9_]{0,99}$", "examples": event_types,
            }},
        },
        "minDate": date("minDate", "Only events at or after this time (inclusive)."),
        "maxDate": date("maxDate", "Only events at or before this time (inclusive)."),
    })
}

fn date(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "query", "required": false,
        "description": format!("{description} ISO 8601: a date-time with an offset \
            (`2026-08-10T02:06:35Z`, `…+02:00`, `…+0200`), a date-time without one, meaning \
            UTC (`2026-12-02T18:41:24.589048`), or a date (its midnight UTC); anything else, \
            or the parameter twice, is 400 `INVALID_QUERY_PARAMETER`."),
        "schema": {"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([+-]\\d{4})?$"},
            {"type": "string", "format": "date"},
        ]},
    })
}
