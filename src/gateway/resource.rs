//! What every resource file of the gateway shares: the gRPC request carrying the authenticated principal,
//! the status of a create, `links`, Atlas timestamps, percent-encoded path segments, and the
//! one list shape (`links` with self/previous/next, `results`, `totalCount`).

use axum::http::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::{Authenticated, Paging, RequestContext};
use super::response::{ApiVersion, Reply};

/// What a handler returns: the reply, or the refusal (also a reply).
pub type Handled = Result<Reply, Reply>;

/// A gRPC request carrying the authenticated principal, so the service looks no key up again.
pub fn rpc<T>(auth: &Authenticated, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(auth.0.clone());
    request
}

/// The success status of a create: Atlas's v1 answers 201, the v2 spec 200 for these.
pub fn created(ctx: &RequestContext) -> StatusCode {
    match ctx.version {
        ApiVersion::V1 => StatusCode::CREATED,
        ApiVersion::V2 => StatusCode::OK,
    }
}

/// One entity as a reply: `body` serialized in its fields' order.
pub fn entity<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    Reply::Entity(status, to_json(body))
}

/// Serializes a response type. Invariant: the response types are structs of strings, numbers,
/// lists and structs, which always serialize.
fn to_json<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).expect("a response type must serialize")
}

/// One entry of `links`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Link {
    href: String,
    rel: &'static str,
}

impl Link {
    /// A link to a related resource, `rel` being Atlas's URL naming the relation.
    pub fn related(href: String, rel: &'static str) -> Self {
        Self { href, rel }
    }
}

/// The `links` of an entity: its `self` URL.
pub fn self_link(href: String) -> Vec<Link> {
    vec![Link { href, rel: "self" }]
}

/// A list object, keys in Atlas's order; `totalCount` is 0 when `includeCount=false`, as
/// recorded (the Atlas CLI's e2e snapshot `TestEvents/List_Project_Events`: `includeCount=false`
/// in the self link, `"totalCount":0` in the body). Enveloped (`envelope=true`), it also has
/// `status`, the HTTP status.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}List")]
pub struct ListPage<T> {
    links: Vec<Link>,
    results: Vec<T>,
    total_count: i64,
}

/// The reply of every list: `links` (self echoing the query, previous/next when they apply),
/// `results`, and `totalCount` (0 when the service did not count).
pub fn list<T: Serialize>(
    ctx: &RequestContext,
    paging: Paging,
    results: Vec<T>,
    total_count: Option<i64>,
    has_next: bool,
) -> Reply {
    let page_num = u32::try_from(paging.page_num).unwrap_or(1).max(1);
    let mut links = self_link(ctx.self_href());
    if page_num > 1 {
        links.push(Link {
            href: ctx.page_href(page_num - 1),
            rel: "previous",
        });
    }
    if has_next {
        links.push(Link {
            href: ctx.page_href(page_num + 1),
            rel: "next",
        });
    }
    let page = ListPage {
        links,
        results,
        total_count: total_count.unwrap_or(0),
    };
    match to_json(&page) {
        Value::Object(body) => Reply::List(StatusCode::OK, body),
        // A struct serializes as an object.
        other => Reply::Entity(StatusCode::OK, other),
    }
}

/// An Atlas timestamp: UTC, seconds precision, `Z`; `None` when absent or out of range.
pub fn timestamp(t: Option<prost_types::Timestamp>) -> Option<String> {
    let t = t?;
    OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// Everything but RFC 3986's unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment (UTF-8, upper-case hex).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::{HeaderMap, header};
    use serde_json::json;

    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(segment("$external"), "%24external");
        assert_eq!(segment("x@y+z/ü"), "x%40y%2Bz%2F%C3%BC");
        assert_eq!(segment("a b%\u{0}"), "a%20b%25%00");
    }

    #[test]
    fn timestamps_are_seconds_with_z() {
        let t = prost_types::Timestamp {
            seconds: 1_786_327_595,
            nanos: 5,
        };
        assert_eq!(timestamp(Some(t)).as_deref(), Some("2026-08-10T02:06:35Z"));
        assert_eq!(timestamp(None), None);
        let far = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(timestamp(Some(far)), None);
    }

    fn context(uri: &str) -> RequestContext {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "h:1".parse().unwrap());
        RequestContext::of(&uri.parse().unwrap(), &headers).0
    }

    fn body(reply: Reply) -> String {
        match reply {
            Reply::List(StatusCode::OK, body) => Value::Object(body).to_string(),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn lists_link_self_previous_and_next() {
        let ctx = context("/api/atlas/v1.0/groups?pageNum=2&itemsPerPage=1");
        let paging = Paging {
            page_num: 2,
            items_per_page: 1,
            include_count: None,
        };
        let text = body(list(&ctx, paging, vec![json!({"id": "a"})], Some(3), true));
        assert_eq!(
            text,
            concat!(
                r#"{"links":[{"href":"http://h:1/api/atlas/v1.0/groups?pageNum=2&itemsPerPage=1","rel":"self"},"#,
                r#"{"href":"http://h:1/api/atlas/v1.0/groups?itemsPerPage=1&pageNum=1","rel":"previous"},"#,
                r#"{"href":"http://h:1/api/atlas/v1.0/groups?itemsPerPage=1&pageNum=3","rel":"next"}],"#,
                r#""results":[{"id":"a"}],"totalCount":3}"#
            )
        );
        let ctx = context("/api/atlas/v2/groups");
        let text = body(list::<Value>(&ctx, Paging::default(), vec![], None, false));
        assert_eq!(
            text,
            r#"{"links":[{"href":"http://h:1/api/atlas/v2/groups","rel":"self"}],"results":[],"totalCount":0}"#
        );
    }
}
