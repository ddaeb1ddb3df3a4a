//! The source page's endpoint over HTTP: `POST/GET /groups/{id}/databaseUsers/{user}/certs` on
//! both API versions, the PEM layout, pretty and envelope, paging links, and body errors.

#![allow(clippy::unwrap_used)]

use x509_parser::prelude::*;

use crate::harness::TestServer;
use crate::harness::atlas::Atlas;

const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----\n";
const CERT_END: &str = "-----END CERTIFICATE-----\n";
const KEY_BEGIN: &str = concat!("-----BEGIN ", "PRIVATE KEY-----\n");
const KEY_END: &str = concat!("-----END ", "PRIVATE KEY-----\n");

/// Checks the layout of reference section 1 and returns the certificate's DER.
#[track_caller]
fn check_pem_layout(body: &str) -> Vec<u8> {
    assert!(body.starts_with(CERT_BEGIN), "{body}");
    assert!(body.ends_with(KEY_END));
    assert!(!body.contains('\r') && !body.contains("\n\n"));
    let split = body.find(KEY_BEGIN).expect("key block");
    let (cert, key) = body.split_at(split);
    assert!(cert.ends_with(CERT_END));
    for block in [cert, key] {
        let lines: Vec<&str> = block.lines().collect();
        let base64_lines = &lines[1..lines.len() - 1];
        for (i, line) in base64_lines.iter().enumerate() {
            if i + 1 < base64_lines.len() {
                assert_eq!(line.len(), 64, "{line}");
            } else {
                assert!(!line.is_empty() && line.len() <= 64);
            }
        }
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("certificate PEM");
    pem.contents
}

fn months_between(der: &[u8]) -> (String, i64) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let subject = cert.subject().to_string();
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    (subject, days)
}

#[tokio::test]
async fn creates_and_lists_certificates_on_v1_and_v2() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("certs").await;
    let user = "svc.app@x+y-z_w";
    atlas.create_managed_user(&group, user).await;
    let encoded = "svc.app%40x%2By-z_w";

    // v1, pretty: raw PEM (pretty has no effect), 201, application/json as the v1 spec says.
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/{encoded}/certs?pretty=true"),
            r#"{"monthsUntilExpiration":12}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(resp.header("content-type"), "application/json");
    let der = check_pem_layout(&resp.body);
    let (subject, days) = months_between(&der);
    assert_eq!(subject, format!("CN={user}"));
    assert!((365..=367).contains(&days), "{days}");

    // v2 with the versioned media type; an empty body means 3 months.
    let resp = atlas
        .send_v2(
            "POST",
            &format!("/api/atlas/v2/groups/{group}/databaseUsers/{user}/certs"),
            Some(""),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        "application/vnd.atlas.2023-01-01+json;charset=utf-8"
    );
    let (_, days) = months_between(&check_pem_layout(&resp.body));
    assert!((89..=93).contains(&days), "{days}");

    // Envelope around the PEM: a JSON string, with the status mirrored.
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/{encoded}/certs?envelope=true"),
            r#"{"monthsUntilExpiration":1}"#,
        )
        .await;
    assert_eq!(resp.status, 201);
    let body = resp.json();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["status", "content"]
    );
    assert_eq!(body["status"], 201);
    check_pem_layout(body["content"].as_str().unwrap());

    // The list: oldest first, _id a JSON number, links echoing the query, paging links.
    let list_path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/{encoded}/certs");
    let resp = atlas.get(&list_path).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["totalCount"], 3);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let serial = x509_parser::parse_x509_certificate(&der)
        .unwrap()
        .1
        .tbs_certificate
        .raw_serial_as_string();
    let serial = i64::from_str_radix(&serial.replace(':', ""), 16).unwrap();
    // Certificates issued within one second are listed by serial, so the one parsed above is
    // found by its serial, not assumed first.
    let first = results
        .iter()
        .find(|r| r["_id"] == serial)
        .unwrap_or_else(|| panic!("serial {serial} not listed: {results:?}"));
    assert!(first["_id"].is_i64());
    // RFC 4514 escapes the `+` in the subject string.
    assert_eq!(first["subject"], "CN=svc.app@x\\+y-z_w");
    assert_eq!(first["groupId"], group.as_str());
    assert!(first["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["_id", "createdAt", "groupId", "notAfter", "subject"]
    );

    let resp = atlas
        .get(&format!(
            "{list_path}?itemsPerPage=1&pageNum=2&includeCount=false"
        ))
        .await;
    let body = resp.json();
    // As recorded: `includeCount=false` answers `"totalCount":0`.
    assert_eq!(body["totalCount"], 0, "{body}");
    let base = format!("http://{}", server.http_addr);
    assert_eq!(
        body["links"],
        serde_json::json!([
            {"href": format!("{base}{list_path}?itemsPerPage=1&pageNum=2&includeCount=false"), "rel": "self"},
            {"href": format!("{base}{list_path}?itemsPerPage=1&includeCount=false&pageNum=1"), "rel": "previous"},
            {"href": format!("{base}{list_path}?itemsPerPage=1&includeCount=false&pageNum=3"), "rel": "next"},
        ])
    );

    // Pretty and envelope on a list.
    let resp = atlas
        .get(&format!(
            "{list_path}?itemsPerPage=1&pretty=true&envelope=true"
        ))
        .await;
    assert!(
        resp.body
            .starts_with("{\n  \"links\" : [ {\n    \"href\" : "),
        "{}",
        resp.body
    );
    let body = resp.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["links", "results", "status", "totalCount"]);
    assert_eq!(body["status"], 200);

    // v2 list: the versioned media type.
    let resp = atlas
        .send_v2(
            "GET",
            &format!("/api/atlas/v2/groups/{group}/databaseUsers/{encoded}/certs"),
            None,
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        "application/vnd.atlas.2023-01-01+json;charset=utf-8"
    );
    assert_eq!(resp.json()["totalCount"], 3);
}

#[tokio::test]
async fn body_errors_are_atlas_errors_and_issue_nothing() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("errors").await;
    atlas.create_managed_user(&group, "u1").await;
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/u1/certs");

    let cases: &[(&str, u16, &str)] = &[
        (
            r#"{"monthsUntilExpiration":25}"#,
            400,
            "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS",
        ),
        (r#"{"monthsUntilExpiration":0}"#, 400, "INVALID_ATTRIBUTE"),
        (r#"{"monthsUntilExpiration":-3}"#, 400, "INVALID_ATTRIBUTE"),
        (
            r#"{"monthsUntilExpiration":"12"}"#,
            400,
            "INVALID_ATTRIBUTE",
        ),
        (r#"{"monthsUntilExpiration":1.5}"#, 400, "INVALID_ATTRIBUTE"),
        (
            r#"{"monthsUntilExpiration":99999999999999999999999}"#,
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            r#"{"monthsUntilExpiration":9223372036854775807}"#,
            400,
            "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS",
        ),
        (
            r#"{"monthsUntilExpiration":3,"foo":1}"#,
            400,
            "INVALID_ATTRIBUTE",
        ),
        (r#"{"monthsUntilExpiration":"#, 400, "MALFORMED_JSON"),
        ("[]", 400, "INVALID_JSON"),
    ];
    for (body, status, code) in cases {
        let resp = atlas.post(&path, body).await;
        resp.assert_error(*status, code);
    }
    let resp = atlas.post(&path, r#"{"foo":1}"#).await;
    let body = resp.assert_error(400, "INVALID_ATTRIBUTE");
    assert_eq!(
        resp.body,
        r#"{"detail":"Invalid attribute foo specified.","error":400,"errorCode":"INVALID_ATTRIBUTE","parameters":["foo"],"reason":"Bad Request"}"#
    );
    assert_eq!(body["parameters"][0], "foo");

    // The core's errors, rendered from ErrorInfo.
    let resp = atlas
        .post(
            &format!(
                "/api/atlas/v1.0/groups/{}/databaseUsers/u1/certs",
                "a".repeat(24)
            ),
            "{}",
        )
        .await;
    assert_eq!(
        resp.body,
        format!(
            r#"{{"detail":"No group with ID {0} exists.","error":404,"errorCode":"GROUP_NOT_FOUND","parameters":["{0}"],"reason":"Not Found"}}"#,
            "a".repeat(24)
        )
    );
    atlas
        .post("/api/atlas/v1.0/groups/xyz/databaseUsers/u1/certs", "{}")
        .await
        .assert_error(404, "INVALID_GROUP_ID");
    atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/nobody/certs"),
            "{}",
        )
        .await
        .assert_error(404, "USERNAME_NOT_FOUND");

    // Pretty and envelope on an error.
    let resp = atlas
        .post(&format!("/api/atlas/v1.0/groups/{group}/databaseUsers/nobody/certs?envelope=true&pretty=true"), "{}")
        .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("x-error-code"), "USERNAME_NOT_FOUND");
    assert_eq!(
        resp.body,
        "{\n  \"status\" : 404,\n  \"content\" : {\n    \"detail\" : \"No user with username nobody exists.\",\n    \"error\" : 404,\n    \"errorCode\" : \"USERNAME_NOT_FOUND\",\n    \"parameters\" : [ \"nobody\" ],\n    \"reason\" : \"Not Found\"\n  }\n}"
    );

    // Nothing was issued by any of these.
    let resp = atlas.get(&format!("{path}?includeCount=true")).await;
    assert_eq!(resp.json()["totalCount"], 0, "{}", resp.body);
}

/// The Atlas API has no key type: a certificate issued over REST has an RSA-4096 key, and a
/// `keyType` attribute (the gRPC-only choice) is refused like any other unknown attribute.
#[tokio::test]
async fn rest_certificates_stay_rsa_4096() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("rsa").await;
    atlas.create_managed_user(&group, "u1").await;
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/u1/certs");

    let resp = atlas.post(&path, r#"{"monthsUntilExpiration":1}"#).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let der = check_pem_layout(&resp.body);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    match cert.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 4096),
        other => panic!("expected an RSA key, got {other:?}"),
    }
    // The private key in the body is the certificate's: PKCS#8 RSA of the same modulus size.
    let key_pem = &resp.body[resp.body.find("-----BEGIN PRIVATE").unwrap()..];
    let (_, key) = x509_parser::pem::parse_x509_pem(key_pem.as_bytes()).unwrap();
    assert!(key.contents.len() > 2000, "{}", key.contents.len());

    for body in [
        r#"{"monthsUntilExpiration":1,"keyType":"ECDSA_P256"}"#,
        r#"{"keyType":"KEY_TYPE_ECDSA_P256"}"#,
    ] {
        let resp = atlas.post(&path, body).await;
        let error = resp.assert_error(400, "INVALID_ATTRIBUTE");
        assert_eq!(error["parameters"][0], "keyType");
    }
    // Only the first request issued anything.
    let list = atlas.get(&path).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["totalCount"], 1);
}
