//! Property tests of the gateway's path and body parsing against the real server: whatever the
//! path segments and the body, an authenticated request gets an Atlas-shaped answer below 500,
//! never a panic, a 500 or a hang. (The Digest parser's properties are unit tests in
//! `src/auth/digest.rs`, the query's in `src/gateway/extract.rs`.)

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::harness::TestServer;
use crate::harness::atlas::Atlas;

/// Percent-encodes every byte outside the unreserved set, so any string travels as one segment.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("monthsUntilExpiration".to_owned()),
                    Just("username".to_owned()),
                    Just("databaseName".to_owned()),
                    Just("x509Type".to_owned()),
                    Just("roles".to_owned()),
                    Just("name".to_owned()),
                    "\\PC{0,10}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,100}".prop_map(String::into_bytes),
    ]
}

#[track_caller]
fn assert_atlas_answer(status: u16, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{status}: {text}");
    if status >= 400 {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| TestCaseError::fail(format!("{status} not JSON ({e}): {text}")))?;
        prop_assert!(json["errorCode"].is_string(), "{status}: {text}");
    }
    Ok(())
}

/// A 2xx answer has its route's shape: the certificate and its key as PEM (route 0), the
/// created or updated database user of the project (1, 2), a list, the project's user
/// security, or the project itself (3: an empty segment is the trailing slash of
/// `/groups/{groupId}/`, which is the project).
fn assert_success_shape(route: usize, group_id: &str, text: &str) -> Result<(), TestCaseError> {
    if route == 0 {
        prop_assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"), "{text}");
        prop_assert!(
            text.ends_with(concat!("-----END ", "PRIVATE KEY-----\n")),
            "{text}"
        );
        return Ok(());
    }
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("2xx not JSON ({e}): {text}")))?;
    prop_assert!(json.get("errorCode").is_none(), "{text}");
    prop_assert!(json["links"].is_array(), "{text}");
    if route == 3 {
        prop_assert!(
            json["results"].is_array()
                || json["customerX509"].is_object()
                || (json["id"].as_str() == Some(group_id) && json["name"].is_string()),
            "{text}"
        );
    } else {
        prop_assert_eq!(json["groupId"].as_str(), Some(group_id), "{}", text);
        prop_assert!(
            json["username"].is_string()
                && json["databaseName"].is_string()
                && json["x509Type"].is_string()
                && json["roles"].is_array(),
            "{text}"
        );
    }
    Ok(())
}

#[test]
fn any_path_and_body_gets_an_atlas_answer_below_500() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, group_id) = runtime.block_on(async {
        let server = TestServer::start_with(|config| {
            config.throttle.burst = 0;
            config.limits.request_timeout = Duration::from_secs(20);
        })
        .await;
        let clients = server.clients().await;
        let group_id = clients.create_project("props").await;
        (server, group_id)
    });
    let atlas = Atlas::new(&server);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    // The project's id and the resources under it are drawn often enough that 2xx answers
    // (lists, user security, created users) come up and have their shapes checked.
    let strategy = (
        prop_oneof![3 => Just(group_id.clone()), 1 => "\\PC{0,30}"],
        prop_oneof![
            "\\PC{0,40}",
            prop_oneof![
                Just("databaseUsers".to_owned()),
                Just("events".to_owned()),
                Just("userSecurity".to_owned()),
            ],
        ],
        body(),
        0usize..4,
    );
    runner
        .run(&strategy, |(group, segment, body, route)| {
            let group = encode_segment(&group);
            let segment = encode_segment(&segment);
            // POST to a user that does not exist: bodies are parsed, no certificate is signed.
            let (method, target) = match route {
                0 => (
                    "POST",
                    format!("/api/atlas/v1.0/groups/{group}/databaseUsers/ghost{segment}/certs"),
                ),
                1 => (
                    "POST",
                    format!("/api/atlas/v1.0/groups/{group}/databaseUsers"),
                ),
                2 => (
                    "PATCH",
                    format!("/api/atlas/v2/groups/{group}/databaseUsers/admin/{segment}"),
                ),
                _ => ("GET", format!("/api/atlas/v1.0/groups/{group}/{segment}")),
            };
            let response = runtime.block_on(async {
                let nonce = atlas.nonce().await;
                let auth = atlas.authorization(method, &target, &nonce, 1);
                let request = atlas
                    .http
                    .request(method.parse().unwrap(), format!("{}{target}", atlas.base))
                    .header("authorization", auth)
                    .body(body.clone());
                let response = tokio::time::timeout(Duration::from_secs(30), request.send())
                    .await
                    .expect("bounded")
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap())
            });
            assert_atlas_answer(response.0, &response.1)?;
            if (200..300).contains(&response.0) {
                assert_success_shape(route, &group_id, &response.1)?;
            }
            Ok(())
        })
        .unwrap();
    runtime.block_on(server.stop());
}
