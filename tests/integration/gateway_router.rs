//! The real route table without a socket: the application is built from its configuration
//! (real SQLite in a temporary directory, `App::build`) and its HTTP router is called with
//! `tower::ServiceExt::oneshot`, the Digest handshake included. The mapping from HTTP to the
//! RPCs and back (status, headers, body) is checked here; what needs a connection (peers,
//! TLS, hyper's own refusals) is in the modules that run the server on listeners.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use dbcert::app::App;
use dbcert::config::Config;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::harness::Key;
use crate::harness::atlas::{Alg, authorization, nonce_of};

/// An application built but not served, and the key its bootstrap created.
struct Unserved {
    router: axum::Router,
    key: Key,
    _app: App,
    _temp: tempfile::TempDir,
}

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

impl Unserved {
    async fn build() -> Self {
        let temp = tempfile::tempdir().unwrap();
        crate::harness::private_dir(temp.path());
        let key = Key::random();
        let mut config = Config::for_test(temp.path().to_path_buf());
        config.bootstrap_api_key = Some((key.public.clone(), key.private.clone().into()));
        let app = App::build(config).await.unwrap();
        Self {
            router: app.http_router(),
            key,
            _app: app,
            _temp: temp,
        }
    }

    async fn call(
        &self,
        method: &str,
        target: &str,
        body: &str,
        authorization: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(target);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Sends with Digest credentials: the challenge, then the request.
    async fn send(&self, method: &str, target: &str, body: &str) -> Answer {
        let challenge = self.call("GET", "/api/atlas/v1.0/orgs", "", None).await;
        assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
        let nonce = nonce_of(challenge.header(header::WWW_AUTHENTICATE));
        let authorization = authorization(&self.key, Alg::Md5, method, target, &nonce, 1, "c1");
        self.call(method, target, body, Some(&authorization)).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_table_answers_without_a_socket() {
    let gateway = Unserved::build().await;

    // No credentials: Atlas's challenge and error body.
    let answer = gateway
        .call("GET", "/api/atlas/v1.0/groups", "", None)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .header(header::WWW_AUTHENTICATE)
            .starts_with("Digest realm=\"MMS Public API\", domain=\"\", nonce=\""),
        "{:?}",
        answer.headers
    );
    // Atlas's recorded body of the challenge (see `gateway_digest`).
    assert_eq!(
        answer.body,
        r#"{"error":401,"reason":"Unauthorized","detail":"You are not authorized for this resource.","errorCode":"UNEXPECTED_ERROR"}"#
    );

    // A project, a MANAGED user, a certificate and the list, as an Atlas client makes them.
    let answer = gateway
        .send("POST", "/api/atlas/v1.0/groups", r#"{"name":"oneshot"}"#)
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.header(header::CONTENT_TYPE), "application/json");
    let group_id = answer.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(answer.json()["name"], "oneshot");

    let user = serde_json::json!({
        "databaseName": "$external",
        "groupId": group_id,
        "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
        "username": "oneshot",
        "x509Type": "MANAGED",
    });
    let users = format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers");
    let answer = gateway.send("POST", &users, &user.to_string()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.json()["username"], "oneshot");

    let certs = format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers/oneshot/certs");
    let answer = gateway
        .send("POST", &certs, r#"{"monthsUntilExpiration":1}"#)
        .await;
    // Only the first line on failure: an error is one line of JSON, a success holds a key.
    let first_line = answer.body.lines().next().unwrap_or_default();
    assert_eq!(answer.status, StatusCode::CREATED, "{first_line}");
    let pem = pem_blocks(&answer.body);
    assert_eq!(
        pem,
        ["CERTIFICATE", concat!("PRIVATE", " KEY")],
        "{first_line}"
    );
    let der = der_of_first_block(&answer.body);
    let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(certificate.subject().to_string(), "CN=oneshot");

    let answer = gateway
        .send("GET", &format!("{certs}?pretty=true"), "")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("\n  \"links\" : ["), "{}", answer.body);
    let list = answer.json();
    assert_eq!(list["totalCount"], 1);
    assert_eq!(
        list["results"][0]["_id"].as_i64().unwrap().to_string(),
        certificate.tbs_certificate.serial.to_string(),
        "{list}"
    );

    // An error of the core (the user does not exist) in Atlas's shape, in the v2 envelope.
    let answer = gateway
        .send(
            "POST",
            &format!("/api/atlas/v2/groups/{group_id}/databaseUsers/nobody/certs?envelope=true"),
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    let envelope = answer.json();
    assert_eq!(envelope["status"], 404, "{envelope}");
    assert_eq!(
        envelope["content"]["errorCode"], "USERNAME_NOT_FOUND",
        "{envelope}"
    );
}

/// The labels of the PEM blocks in `text`, in order.
fn pem_blocks(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.strip_prefix("-----BEGIN "))
        .filter_map(|rest| rest.strip_suffix("-----"))
        .collect()
}

/// The DER of the first PEM block in `text`.
fn der_of_first_block(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END "))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
