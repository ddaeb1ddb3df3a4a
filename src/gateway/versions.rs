//! Atlas's v2 media-type versions. Every `/api/atlas/v2` operation is versioned by the date in
//! `Accept: application/vnd.atlas.YYYY-MM-DD+json`; Atlas's specification (the `x-xgen-version`
//! of each operation's response content types) lists the versions each operation publishes.
//! [`SERVED`] is that list for every v2 operation dbcert serves, and [`negotiate`] (a layer of the
//! matched routes) picks the version of each request:
//!
//! - `Accept` names a version this operation publishes (several media ranges: the first that
//!   does): the answer is in that version, and its `Content-Type` says which
//!   (`application/vnd.atlas.2023-01-01+json;charset=utf-8`); handlers can read it as a
//!   [`ServedVersion`] extension where two versions differ in shape.
//! - `Accept` names Atlas versions, none of them published for this operation: 406
//!   `INVALID_VERSION_DATE` when each is a well-formed date, 406 `NOT_ACCEPTABLE` when one is
//!   malformed (`application/vnd.atlas.latest+json`, `…2023-02-30+json`, no `+json`).
//! - `Accept` names no Atlas version (absent, `*/*`, `application/json`): the operation's first
//!   version, 2023-01-01. Atlas's own clients always send a version; this keeps curl, v1-era
//!   clients and the versionless tools working.
//!
//! Every operation dbcert serves publishes one version today (2023-01-01, in the specification of
//! mongodb/atlas-sdk-go, `openapi/atlas-api-transformed.yaml`), so no shape differs yet. A v2
//! route added without an entry here fails `versions::tests` and the integration test
//! `atlas_events::every_v2_operation_has_a_served_version`.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::{ApiError, ApiVersion, Reply, V2_CONTENT_TYPE};

/// The version answered when a request names none: the first version of every v2 operation.
pub const DEFAULT_VERSION: &str = "2023-01-01";

/// The versions Atlas publishes for each v2 operation dbcert serves, by method and path template
/// (axum syntax, after `/api/atlas/v2`), oldest first.
pub const SERVED: &[(&str, &str, &[&str])] = &[
    // The API root (`getSystemStatus`).
    ("GET", "", &["2023-01-01"]),
    ("GET", "/orgs", &["2023-01-01"]),
    ("GET", "/orgs/{org_id}", &["2023-01-01"]),
    ("POST", "/orgs", &["2023-01-01"]),
    ("PATCH", "/orgs/{org_id}", &["2023-01-01"]),
    ("DELETE", "/orgs/{org_id}", &["2023-01-01"]),
    ("GET", "/orgs/{org_id}/groups", &["2023-01-01"]),
    (
        "GET",
        "/orgs/{org_id}/apiKeys/{api_user_id}",
        &["2023-01-01"],
    ),
    (
        "PATCH",
        "/orgs/{org_id}/apiKeys/{api_user_id}",
        &["2023-01-01"],
    ),
    ("PATCH", "/groups/{group_id}", &["2023-01-01"]),
    ("GET", "/groups/byName/{group_name}", &["2023-01-01"]),
    ("GET", "/groups/{group_id}/apiKeys", &["2023-01-01"]),
    ("POST", "/groups/{group_id}/apiKeys", &["2023-01-01"]),
    (
        "DELETE",
        "/groups/{group_id}/apiKeys/{api_user_id}",
        &["2023-01-01"],
    ),
    ("GET", "/orgs/{org_id}/apiKeys", &["2023-01-01"]),
    ("POST", "/orgs/{org_id}/apiKeys", &["2023-01-01"]),
    (
        "DELETE",
        "/orgs/{org_id}/apiKeys/{api_user_id}",
        &["2023-01-01"],
    ),
    // API key access lists (listOrgAccessEntries, createOrgAccessEntry, getOrgAccessEntry,
    // deleteAccessEntry).
    (
        "GET",
        "/orgs/{org_id}/apiKeys/{api_user_id}/accessList",
        &["2023-01-01"],
    ),
    (
        "POST",
        "/orgs/{org_id}/apiKeys/{api_user_id}/accessList",
        &["2023-01-01"],
    ),
    (
        "GET",
        "/orgs/{org_id}/apiKeys/{api_user_id}/accessList/{ip_address}",
        &["2023-01-01"],
    ),
    (
        "DELETE",
        "/orgs/{org_id}/apiKeys/{api_user_id}/accessList/{ip_address}",
        &["2023-01-01"],
    ),
    ("GET", "/orgs/{org_id}/events", &["2023-01-01"]),
    ("GET", "/orgs/{org_id}/events/{event_id}", &["2023-01-01"]),
    ("GET", "/groups", &["2023-01-01"]),
    ("POST", "/groups", &["2023-01-01"]),
    ("GET", "/groups/{group_id}", &["2023-01-01"]),
    ("DELETE", "/groups/{group_id}", &["2023-01-01"]),
    (
        "PATCH",
        "/groups/{group_id}/apiKeys/{api_user_id}",
        &["2023-01-01"],
    ),
    (
        "POST",
        "/groups/{group_id}/apiKeys/{api_user_id}",
        &["2023-01-01"],
    ),
    ("GET", "/groups/{group_id}/databaseUsers", &["2023-01-01"]),
    ("POST", "/groups/{group_id}/databaseUsers", &["2023-01-01"]),
    (
        "GET",
        "/groups/{group_id}/databaseUsers/{first}/{second}",
        &["2023-01-01"],
    ),
    (
        "PATCH",
        "/groups/{group_id}/databaseUsers/{first}/{second}",
        &["2023-01-01"],
    ),
    (
        "DELETE",
        "/groups/{group_id}/databaseUsers/{first}/{second}",
        &["2023-01-01"],
    ),
    (
        "GET",
        "/groups/{group_id}/databaseUsers/{first}/certs",
        &["2023-01-01"],
    ),
    (
        "POST",
        "/groups/{group_id}/databaseUsers/{first}/certs",
        &["2023-01-01"],
    ),
    ("GET", "/groups/{group_id}/userSecurity", &["2023-01-01"]),
    ("PATCH", "/groups/{group_id}/userSecurity", &["2023-01-01"]),
    (
        "DELETE",
        "/groups/{group_id}/userSecurity/customerX509",
        &["2023-01-01"],
    ),
    ("GET", "/groups/{group_id}/events", &["2023-01-01"]),
    (
        "GET",
        "/groups/{group_id}/events/{event_id}",
        &["2023-01-01"],
    ),
];

/// The version a v2 request is answered in (a request and response extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedVersion(pub &'static str);

impl ServedVersion {
    /// The `Content-Type` of a successful JSON answer in this version.
    pub fn content_type(self) -> String {
        format!("application/vnd.atlas.{}+json;charset=utf-8", self.0)
    }
}

/// The versions published for `method` on `template` (a full path template, with or without
/// the `/api/atlas/v2` prefix); HEAD is GET's.
pub fn published(method: &Method, template: &str) -> Option<&'static [&'static str]> {
    let template = template
        .strip_prefix(ApiVersion::V2.prefix())
        .unwrap_or(template);
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    SERVED
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
        .map(|(_, _, versions)| *versions)
}

/// What the `Accept` header asks of a v2 operation.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// No Atlas version named.
    Nothing,
    /// The first of these published versions.
    Version(&'static str),
    /// Only well-formed versions the operation does not publish.
    Unpublished,
    /// A malformed Atlas media type, and no published version.
    Malformed,
}

/// Reads the Atlas versions of `accept` against `published`.
fn asked(accept: Option<&HeaderValue>, published: &[&'static str]) -> Asked {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return Asked::Nothing;
    };
    let mut named = false;
    let mut malformed = false;
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        let Some(rest) = strip_prefix_ignore_case(media, "application/vnd.atlas.") else {
            continue;
        };
        named = true;
        let date = strip_suffix_ignore_case(rest, "+json").filter(|d| is_date(d));
        match date.and_then(|d| published.iter().find(|v| **v == d)) {
            Some(version) => return Asked::Version(version),
            None => malformed |= date.is_none(),
        }
    }
    match (named, malformed) {
        (false, _) => Asked::Nothing,
        (true, true) => Asked::Malformed,
        (true, false) => Asked::Unpublished,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

/// `YYYY-MM-DD`, a real calendar date.
fn is_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    s.len() == 10 && time::Date::parse(s, format).is_ok()
}

/// The layer of the matched routes that picks the version of a v2 request (see the module's
/// documentation); v1 and dbcert's own routes pass untouched.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let Some(template) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    if !template.starts_with(ApiVersion::V2.prefix()) {
        return next.run(request).await;
    }
    // A method the route does not answer has no entry: the router answers it (405).
    let Some(versions) = published(request.method(), &template) else {
        return next.run(request).await;
    };
    let served = match asked(request.headers().get(header::ACCEPT), versions) {
        Asked::Version(version) => version,
        Asked::Nothing => versions.first().copied().unwrap_or(DEFAULT_VERSION),
        Asked::Unpublished => return not_acceptable("INVALID_VERSION_DATE", versions),
        Asked::Malformed => return not_acceptable("NOT_ACCEPTABLE", versions),
    };
    let served = ServedVersion(served);
    request.extensions_mut().insert(served);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(served);
    response
}

/// 406 with the Atlas error body; the detail names the versions the operation publishes.
fn not_acceptable(error_code: &str, versions: &[&str]) -> Response {
    let media: Vec<String> = versions
        .iter()
        .map(|v| format!("application/vnd.atlas.{v}+json"))
        .collect();
    let detail = format!(
        "Invalid accept header or version date. This resource is served as: {}.",
        media.join(", ")
    );
    Reply::from(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        error_code,
        detail,
        Vec::new(),
    ))
    .into_response()
}

/// Sets the `Content-Type` of a rendered v2 answer to the version it was served in (errors,
/// `application/json`, and PEM answers keep theirs).
pub fn stamp(response: &mut Response, served: Option<ServedVersion>) {
    let Some(served) = served else {
        return;
    };
    let is_v2_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == V2_CONTENT_TYPE);
    if let (true, Ok(value)) = (is_v2_json, HeaderValue::from_str(&served.content_type())) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn accept_headers_pick_a_published_version_or_refuse() {
        let published = &["2023-01-01", "2024-05-30"];
        let ask = |accept: &str| asked(Some(&HeaderValue::from_str(accept).unwrap()), published);
        assert_eq!(asked(None, published), Asked::Nothing);
        assert_eq!(ask("*/*"), Asked::Nothing);
        assert_eq!(ask("application/json"), Asked::Nothing);
        assert_eq!(
            ask("application/vnd.atlas.2024-05-30+json"),
            Asked::Version("2024-05-30")
        );
        assert_eq!(
            ask("application/VND.ATLAS.2023-01-01+JSON;charset=utf-8"),
            Asked::Version("2023-01-01")
        );
        assert_eq!(
            ask("application/vnd.atlas.2025-03-12+json, application/vnd.atlas.2023-01-01+json"),
            Asked::Version("2023-01-01")
        );
        assert_eq!(
            ask("application/vnd.atlas.2025-03-12+json"),
            Asked::Unpublished
        );
        for bad in [
            "application/vnd.atlas.latest+json",
            "application/vnd.atlas.2023-02-30+json",
            "application/vnd.atlas.2023-01-01",
            "application/vnd.atlas.2023-1-01+json",
            "application/vnd.atlas.+json",
        ] {
            assert_eq!(ask(bad), Asked::Malformed, "{bad}");
        }
    }

    /// Every v2 route of the table has an entry, and every entry a route (the methods are held
    /// to the table by the integration test, which asks the router).
    #[test]
    fn every_v2_route_has_a_served_version_and_nothing_else() {
        let routes: BTreeSet<String> = super::super::routes::templates()
            .into_iter()
            .filter_map(|t| t.strip_prefix(ApiVersion::V2.prefix()).map(str::to_owned))
            .collect();
        let entries: BTreeSet<String> = SERVED.iter().map(|(_, t, _)| (*t).to_owned()).collect();
        assert_eq!(
            routes.difference(&entries).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "v2 routes without an entry in gateway::versions::SERVED"
        );
        assert_eq!(
            entries.difference(&routes).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "entries of gateway::versions::SERVED without a route"
        );
        for (_, _, versions) in SERVED {
            assert!(!versions.is_empty() && versions.iter().all(|v| is_date(v)));
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        }
    }

    #[test]
    fn head_is_answered_as_get() {
        assert_eq!(
            published(&Method::HEAD, "/api/atlas/v2/groups"),
            Some(&["2023-01-01"][..])
        );
        assert_eq!(published(&Method::PUT, "/api/atlas/v2/groups"), None);
    }
}
