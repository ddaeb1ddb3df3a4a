//! The neighbouring resources over HTTP (orgs, projects, database users, userSecurity, API keys
//! and their project assignment), the core's error codes as Atlas errors, and the gateway's own
//! errors (404, 405, 413, query flags).

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::TestServer;
use crate::harness::atlas::Atlas;

fn ca_pem(expired: bool) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "customer ca");
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    params.self_signed(&key).unwrap().pem()
}

#[tokio::test]
async fn projects_orgs_users_and_keys() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);
    let base = format!("http://{}", server.http_addr);

    // Orgs.
    let orgs = atlas.get("/api/atlas/v1.0/orgs").await.json();
    let org = &orgs["results"][0];
    let org_id = org["id"].as_str().unwrap().to_owned();
    assert_eq!(org["isDeleted"], false);
    assert_eq!(
        org.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "isDeleted", "links", "name"]
    );

    // Projects: orgId defaults to the key's organization; v2 answers 201 (as recorded) with its
    // media type.
    let resp = atlas
        .post(
            "/api/atlas/v1.0/groups",
            r#"{"name":"p1","withDefaultAlertsSettings":true}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let project = resp.json();
    let group = project["id"].as_str().unwrap().to_owned();
    assert_eq!(project["orgId"], org_id.as_str());
    assert_eq!(project["clusterCount"], 0);
    assert!(project["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        project.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "clusterCount",
            "created",
            "id",
            "links",
            "name",
            "orgId",
            "tags"
        ]
    );
    assert_eq!(
        project["links"],
        json!([{"href": format!("{base}/api/atlas/v1.0/groups/{group}"), "rel": "self"}])
    );
    let resp = atlas
        .send_v2(
            "POST",
            "/api/atlas/v2/groups",
            Some(&format!(r#"{{"name":"p2","orgId":"{org_id}"}}"#)),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        "application/vnd.atlas.2023-01-01+json;charset=utf-8"
    );
    let group2 = resp.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        atlas
            .get(&format!("/api/atlas/v2/groups/{group}"))
            .await
            .json()["name"],
        "p1"
    );
    let list = atlas
        .get("/api/atlas/v1.0/groups?itemsPerPage=1")
        .await
        .json();
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["links"][1]["rel"], "next");
    let resp = atlas
        .delete(&format!("/api/atlas/v1.0/groups/{group2}"))
        .await;
    assert_eq!((resp.status, resp.body.as_str()), (204, ""));
    atlas
        .get(&format!("/api/atlas/v1.0/groups/{group2}"))
        .await
        .assert_error(404, "GROUP_NOT_FOUND");
    // Enveloped 204: HTTP 200 with the 204 inside (a 204 cannot carry a body).
    let group3 = atlas.create_project("p3").await;
    let resp = atlas
        .delete(&format!("/api/atlas/v1.0/groups/{group3}?envelope=true"))
        .await;
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (200, r#"{"status":204,"content":{}}"#)
    );

    // Database users, with names that need encoding in paths.
    for (username, encoded) in [
        ("a.b@c+d-e_f", "a.b%40c%2Bd-e_f"),
        ("percent%20user", "percent%2520user"),
        ("slash/user", "slash%2Fuser"),
        ("ünï", "%C3%BCn%C3%AF"),
    ] {
        atlas.create_managed_user(&group, username).await;
        let resp = atlas
            .get(&format!(
                "/api/atlas/v1.0/groups/{group}/databaseUsers/%24external/{encoded}"
            ))
            .await;
        assert_eq!(resp.status, 200, "{username}: {}", resp.body);
        let user = resp.json();
        assert_eq!(user["username"], username);
        assert_eq!(
            user["links"][0]["href"],
            format!("{base}/api/atlas/v1.0/groups/{group}/databaseUsers/%24external/{encoded}")
        );
    }
    let resp = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers/$external/a.b@c+d-e_f"
        ))
        .await;
    let user = resp.json();
    assert_eq!(
        user,
        json!({
            "awsIAMType": "NONE", "databaseName": "$external", "groupId": group, "labels": [],
            "ldapAuthType": "NONE", "links": user["links"].clone(), "oidcAuthType": "NONE",
            "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}], "scopes": [],
            "username": "a.b@c+d-e_f", "x509Type": "MANAGED",
        })
    );
    assert_eq!(
        user.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "awsIAMType",
            "databaseName",
            "groupId",
            "labels",
            "ldapAuthType",
            "links",
            "oidcAuthType",
            "roles",
            "scopes",
            "username",
            "x509Type"
        ]
    );
    // PATCH with the whole object read back (Atlas clients do this), changing the roles.
    let mut patch = user.clone();
    patch["roles"] = json!([{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]);
    let path = format!("/api/atlas/v1.0/groups/{group}/databaseUsers/%24external/a.b%40c%2Bd-e_f");
    let resp = atlas.patch(&path, &patch.to_string()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["roles"][0]["roleName"], "readWriteAnyDatabase");
    atlas
        .patch(&path, r#"{"username":"other"}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    atlas
        .patch(&path, r#"{"ldapAuthType":"GROUP"}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    atlas
        .patch(&path, r#"{"password":"x"}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    let list = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group}/databaseUsers?includeCount=false"
        ))
        .await
        .json();
    assert_eq!(list["results"].as_array().unwrap().len(), 4);
    assert_eq!(
        list["totalCount"], 0,
        "as recorded: includeCount=false answers 0"
    );
    let resp = atlas.delete(&path).await;
    assert_eq!(resp.status, 204);
    atlas
        .get(&path)
        .await
        .assert_error(404, "USERNAME_NOT_FOUND");

    // userSecurity: PATCH 202 on v2, 200 on v1; DELETE customerX509 202 (the spec's code).
    let security = atlas
        .get(&format!("/api/atlas/v1.0/groups/{group}/userSecurity"))
        .await
        .json();
    assert_eq!(
        security,
        json!({"customerX509": {}, "ldap": {"authenticationEnabled": false, "authorizationEnabled": false}, "links": [{"href": format!("{base}/api/atlas/v1.0/groups/{group}/userSecurity"), "rel": "self"}]})
    );
    let ca = ca_pem(false);
    let body = json!({"customerX509": {"cas": ca}}).to_string();
    let resp = atlas
        .send_v2(
            "PATCH",
            &format!("/api/atlas/v2/groups/{group}/userSecurity"),
            Some(&body),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json()["customerX509"]["cas"], ca.as_str());
    atlas
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/slash%2Fuser/certs"),
            "{}",
        )
        .await
        .assert_error(400, "CANNOT_GENERATE_CERT_IF_ADVANCED_X509");
    let resp = atlas
        .patch(
            &format!("/api/atlas/v1.0/groups/{group}/userSecurity"),
            "{}",
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["customerX509"]["cas"], ca.as_str());
    let resp = atlas
        .delete(&format!(
            "/api/atlas/v1.0/groups/{group}/userSecurity/customerX509"
        ))
        .await;
    assert_eq!(resp.status, 202);
    assert_eq!(resp.json()["customerX509"], json!({}));

    // API keys: create (private key shown once), list (masked), assign (both forms), delete.
    let resp = atlas
        .post(
            &format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"),
            r#"{"desc":"ci","roles":["ORG_READ_ONLY"]}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let key = resp.json();
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(
        key.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["desc", "id", "links", "privateKey", "publicKey", "roles"]
    );
    assert_eq!(
        key["roles"],
        json!([{"orgId": org_id, "roleName": "ORG_READ_ONLY"}])
    );
    let keys = atlas
        .get(&format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"))
        .await
        .json();
    let listed: Vec<&Value> = keys["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["id"] == key_id.as_str())
        .collect();
    assert_eq!(listed[0]["privateKey"], "********-****-****-************");
    let resp = atlas
        .patch(
            &format!("/api/atlas/v1.0/groups/{group}/apiKeys/{key_id}"),
            r#"{"roles":["GROUP_OWNER"]}"#,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.json()["roles"]
            .as_array()
            .unwrap()
            .contains(&json!({"groupId": group, "roleName": "GROUP_OWNER"}))
    );
    let resp = atlas
        .send_v2(
            "POST",
            &format!("/api/atlas/v2/groups/{group}/apiKeys/{key_id}"),
            Some(r#"[{"roles":["GROUP_READ_ONLY"]}]"#),
        )
        .await;
    // The spec's addGroupApiKey: 204 No Content; the key shows the role.
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert!(
        atlas
            .get(&format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys/{key_id}"))
            .await
            .json()["roles"]
            .as_array()
            .unwrap()
            .contains(&json!({"groupId": group, "roleName": "GROUP_READ_ONLY"}))
    );
    let resp = atlas
        .delete(&format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys/{key_id}"))
        .await;
    assert_eq!(resp.status, 204);
}

#[tokio::test]
async fn core_error_codes_over_http() {
    let server = TestServer::start_with(|config| config.core.max_certificates_per_user = 0).await;
    let atlas = Atlas::new(&server);
    let group = atlas.create_project("errors").await;
    let org_id = atlas.get("/api/atlas/v1.0/orgs").await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    atlas.create_managed_user(&group, "managed").await;
    let users = format!("/api/atlas/v1.0/groups/{group}/databaseUsers");
    let user = |name: &str, db: &str, t: &str| {
        json!({"username": name, "databaseName": db, "x509Type": t}).to_string()
    };

    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            format!("{users}/managed/certs"),
            "{}".into(),
            400,
            "ATLAS_GENERATED_CERTS_LIMIT_EXCEEDED",
        ),
        (
            "POST",
            users.clone(),
            user("n", "$external", "NONE"),
            400,
            "DATABASE_NAME_INVALID_ADMIN",
        ),
        (
            "POST",
            users.clone(),
            user("m", "admin", "MANAGED"),
            400,
            "DATABASE_NAME_INVALID_EXTERNAL",
        ),
        (
            "POST",
            users.clone(),
            user("managed", "$external", "MANAGED"),
            409,
            "USER_ALREADY_EXISTS",
        ),
        (
            "POST",
            users.clone(),
            user("x", "$external", "FOO"),
            400,
            "INVALID_ENUM_VALUE",
        ),
        (
            "POST",
            users.clone(),
            user("", "$external", "MANAGED"),
            400,
            "MISSING_ATTRIBUTE",
        ),
        (
            "POST",
            users.clone(),
            json!({"username": "g", "groupId": "b".repeat(24)}).to_string(),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            "POST",
            users.clone(),
            r#"{"roles":"admin"}"#.into(),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            "POST",
            "/api/atlas/v1.0/groups".into(),
            r#"{"name":"errors"}"#.into(),
            409,
            "GROUP_ALREADY_EXISTS",
        ),
        (
            "POST",
            "/api/atlas/v1.0/groups".into(),
            "{}".into(),
            400,
            "MISSING_ATTRIBUTE",
        ),
        (
            "POST",
            "/api/atlas/v1.0/groups".into(),
            r#"{"name":"x","regionUsageRestrictions":"NONE"}"#.into(),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups/nothex".into(),
            String::new(),
            404,
            "INVALID_GROUP_ID",
        ),
        (
            "GET",
            format!("/api/atlas/v1.0/groups/{}", "c".repeat(24)),
            String::new(),
            404,
            "GROUP_NOT_FOUND",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups?itemsPerPage=501".into(),
            String::new(),
            400,
            "INVALID_QUERY_PARAMETER",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups?itemsPerPage=abc".into(),
            String::new(),
            400,
            "INVALID_QUERY_PARAMETER",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups?pageNum=0".into(),
            String::new(),
            400,
            "INVALID_QUERY_PARAMETER",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups?includeCount=maybe".into(),
            String::new(),
            400,
            "INVALID_QUERY_PARAMETER",
        ),
        (
            "GET",
            "/api/atlas/v1.0/orgs/xyz/apiKeys".into(),
            String::new(),
            404,
            "INVALID_ORG_ID",
        ),
        (
            "POST",
            format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"),
            r#"{"desc":"d","roles":["NOPE"]}"#.into(),
            400,
            "INVALID_ENUM_VALUE",
        ),
        (
            "DELETE",
            format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys/xyz"),
            String::new(),
            404,
            "INVALID_API_KEY_ID",
        ),
        (
            "PATCH",
            format!("/api/atlas/v1.0/groups/{group}/userSecurity"),
            r#"{"customerX509":{"cas":"garbage"}}"#.into(),
            400,
            "INVALID_X509_CA_CERTIFICATE",
        ),
        (
            "PATCH",
            format!("/api/atlas/v1.0/groups/{group}/userSecurity"),
            json!({"customerX509": {"cas": ca_pem(true)}}).to_string(),
            400,
            "EXPIRED_X509_CA_CERTIFICATE",
        ),
        (
            "PATCH",
            format!("/api/atlas/v1.0/groups/{group}/userSecurity"),
            r#"{"ldap":{"hostname":"ldap.example.com"}}"#.into(),
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups?pretty=yes".into(),
            String::new(),
            400,
            "INVALID_QUERY_PARAMETER",
        ),
        (
            "GET",
            "/api/atlas/v1.0/groups?envelope=1".into(),
            String::new(),
            400,
            "INVALID_QUERY_PARAMETER",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let resp = atlas
            .send(method, &path, (!body.is_empty()).then_some(body.as_str()))
            .await;
        assert_eq!(resp.status, status, "{method} {path} {body}: {}", resp.body);
        resp.assert_error(status, code);
    }

    // USER_NOT_MANAGED_X509, on a password (NONE) user.
    let resp = atlas.post(&users, &user("plain", "admin", "NONE")).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    atlas
        .post(&format!("{users}/plain/certs"), "{}")
        .await
        .assert_error(400, "USER_NOT_MANAGED_X509");

    // Invalid flag values are refused before authentication.
    let resp = atlas
        .raw("GET", "/api/atlas/v1.0/groups?pretty=yes", None, &[])
        .await;
    let body = resp.assert_error(400, "INVALID_QUERY_PARAMETER");
    assert_eq!(body["parameters"], json!(["pretty"]));
}

#[tokio::test]
async fn routing_and_body_limits() {
    let server = TestServer::start().await;
    let atlas = Atlas::new(&server);

    let resp = atlas.raw("GET", "/api/atlas/v1.0/nothing", None, &[]).await;
    assert_eq!(
        resp.body,
        r#"{"detail":"Cannot find resource /api/atlas/v1.0/nothing.","error":404,"errorCode":"RESOURCE_NOT_FOUND","parameters":["/api/atlas/v1.0/nothing"],"reason":"Not Found"}"#
    );
    resp.assert_error(404, "RESOURCE_NOT_FOUND");
    atlas
        .raw("GET", "/", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    let resp = atlas
        .raw("GET", "/api/atlas/v2/nothing?envelope=true", None, &[])
        .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["status"], 404);
    let resp = atlas
        .raw("PUT", "/api/atlas/v1.0/groups", Some("{}"), &[])
        .await;
    resp.assert_error(405, "METHOD_NOT_ALLOWED");
    let allow = resp.header("allow");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    // 413 by Content-Length, answered before the body is sent.
    let target = "/api/atlas/v1.0/groups";
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let head = format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("REQUEST_TOO_LARGE"), "{text}");

    // 413 while streaming a chunked body past the bound (after authentication).
    let nonce = atlas.nonce().await;
    let auth = atlas.authorization("POST", target, &nonce, 1);
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..40 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}
