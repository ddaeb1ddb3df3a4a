//! The OpenAPI document against the route table: every route the gateway serves, with each
//! method it answers, is an operation of the document, and nothing else is. The routes come
//! from the gateway's own table (`dbcert::gateway::route_templates`, every path added through
//! `routes.rs`), their methods from the real router (the `Allow` of its 405 to a method no
//! route has), built from the configuration as `dbcert serve` builds it. Bodies and statuses
//! against a live server are schemathesis's (`.ci/schemathesis.sh`); that the committed
//! `openapi/dbcert.json` is this document is a unit test of `gateway::openapi`.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dbcert::app::App;
use dbcert::config::Config;
use dbcert::gateway::openapi;
use serde_json::Value;
use tower::ServiceExt as _;

/// A path template with its parameters unnamed (`/groups/{}`), so axum's and OpenAPI's
/// spellings compare.
fn unnamed(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `METHOD template` of every operation of the document.
fn documented(document: &Value) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert(format!("{} {}", method.to_uppercase(), unnamed(path)));
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_describes_every_route_and_nothing_else() {
    let temp = tempfile::tempdir().unwrap();
    crate::harness::private_dir(temp.path());
    let app = App::build(Config::for_test(temp.path().to_path_buf()))
        .await
        .unwrap();
    let router = app.http_router();

    let templates = dbcert::gateway::route_templates();
    assert!(templates.len() > 20, "{templates:?}");
    let mut served = BTreeSet::new();
    for template in &templates {
        // Any value fills a parameter: the method router answers before any extractor.
        let target = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let request = Request::builder()
            .method("TRACE")
            .uri(&target)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "TRACE {target}"
        );
        let allow = response.headers()[header::ALLOW].to_str().unwrap();
        for method in allow.split(',').map(str::trim) {
            // axum answers HEAD wherever GET is; the document says so once, in its description.
            if method != "HEAD" {
                served.insert(format!("{method} {}", unnamed(template)));
            }
        }
    }

    let documented = documented(openapi::document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "the route table and the OpenAPI document differ.\n\
         served but not documented (add them to src/gateway/openapi/operations/atlas.rs or dbcert.rs): \
         {undocumented:#?}\n\
         documented but not served: {unserved:#?}"
    );

    // The document is served as built, without a key.
    let request = Request::builder()
        .uri("/api/dbcert/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(&served, openapi::document());
    assert_eq!(served["openapi"], "3.1.0");
}
