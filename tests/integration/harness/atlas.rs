//! A small HTTP Digest client (RFC 7616, qop=auth) over reqwest for the gateway tests, and
//! helpers to compare Atlas responses.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::{Key, TestServer};

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// Asserts an Atlas error: status, errorCode, the X-Error-Code header and the body shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["errorCode"], code, "{}", self.body);
        assert_eq!(self.header("x-error-code"), code);
        assert_eq!(self.header("content-type"), "application/json");
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["detail", "error", "errorCode", "parameters", "reason"],
            "{}",
            self.body
        );
        assert_eq!(body["error"], status);
        body
    }
}

/// Which digest algorithm the client answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Md5,
    Sha256,
    Md5Sess,
}

/// A Digest-authenticating Atlas client.
#[derive(Clone)]
pub struct Atlas {
    pub http: reqwest::Client,
    pub base: String,
    pub key: Key,
    pub alg: Alg,
}

impl Atlas {
    pub fn new(server: &TestServer) -> Self {
        Self::with_key(server, server.key.clone())
    }

    pub fn with_key(server: &TestServer, key: Key) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.http_addr),
            key,
            alg: Alg::Md5,
        }
    }

    /// Sends without credentials.
    pub async fn raw(
        &self,
        method: &str,
        target: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.base, target));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Gets a fresh challenge and returns its nonce.
    pub async fn nonce(&self) -> String {
        let challenge = self.raw("GET", "/api/atlas/v1.0/orgs", None, &[]).await;
        assert_eq!(challenge.status, 401);
        nonce_of(&challenge.header("www-authenticate"))
    }

    /// The Authorization value for a request.
    pub fn authorization(&self, method: &str, uri: &str, nonce: &str, nc: u32) -> String {
        authorization(&self.key, self.alg, method, uri, nonce, nc, "0a4f113b")
    }

    /// Sends with Digest credentials: one challenge round trip, then the request.
    pub async fn send(&self, method: &str, target: &str, body: Option<&str>) -> Resp {
        let nonce = self.nonce().await;
        let auth = self.authorization(method, target, &nonce, 1);
        self.raw(method, target, body, &[("authorization", &auth)])
            .await
    }

    /// Sends as the v2 clients do, with the versioned media type in `Accept` and `Content-Type`.
    pub async fn send_v2(&self, method: &str, target: &str, body: Option<&str>) -> Resp {
        let nonce = self.nonce().await;
        let auth = self.authorization(method, target, &nonce, 1);
        let media = "application/vnd.atlas.2023-01-01+json";
        self.raw(
            method,
            target,
            body,
            &[
                ("authorization", &auth),
                ("accept", media),
                ("content-type", media),
            ],
        )
        .await
    }

    pub async fn get(&self, target: &str) -> Resp {
        self.send("GET", target, None).await
    }

    pub async fn post(&self, target: &str, body: &str) -> Resp {
        self.send("POST", target, Some(body)).await
    }

    pub async fn patch(&self, target: &str, body: &str) -> Resp {
        self.send("PATCH", target, Some(body)).await
    }

    pub async fn delete(&self, target: &str) -> Resp {
        self.send("DELETE", target, None).await
    }

    /// Creates a project over REST and returns its id.
    pub async fn create_project(&self, name: &str) -> String {
        let resp = self
            .post("/api/atlas/v1.0/groups", &format!(r#"{{"name":"{name}"}}"#))
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        resp.json()["id"].as_str().unwrap().to_owned()
    }

    /// Creates a MANAGED X.509 user over REST.
    pub async fn create_managed_user(&self, group_id: &str, username: &str) {
        let body = serde_json::json!({
            "databaseName": "$external",
            "groupId": group_id,
            "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
            "username": username,
            "x509Type": "MANAGED",
        });
        let resp = self
            .post(
                &format!("/api/atlas/v1.0/groups/{group_id}/databaseUsers"),
                &body.to_string(),
            )
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
    }
}

/// The `nonce` of a challenge.
#[track_caller]
pub fn nonce_of(challenge: &str) -> String {
    let start = challenge.find("nonce=\"").expect("nonce") + 7;
    let end = challenge[start..].find('"').unwrap() + start;
    challenge[start..end].to_owned()
}

fn hash(alg: Alg, data: &str) -> String {
    match alg {
        Alg::Md5 | Alg::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
        Alg::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
    }
}

/// An RFC 7616 `Authorization: Digest` value with qop=auth.
pub fn authorization(
    key: &Key,
    alg: Alg,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let realm = "MMS Public API";
    let mut ha1 = hash(alg, &format!("{}:{realm}:{}", key.public, key.private));
    if alg == Alg::Md5Sess {
        ha1 = hash(alg, &format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = hash(alg, &format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = hash(alg, &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let algorithm = match alg {
        Alg::Md5 => "MD5",
        Alg::Sha256 => "SHA-256",
        Alg::Md5Sess => "MD5-sess",
    };
    format!(
        r#"Digest username="{}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm={algorithm}, response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}""#,
        key.public
    )
}

/// One HTTP/1.1 response cut out of a raw byte stream.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The head, lowercased (status line and headers).
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// Asserts an Atlas error: status, errorCode in the body and `X-Error-Code`, JSON, and the
    /// five keys of the Atlas body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.head
                .contains(&format!("x-error-code: {}", code.to_ascii_lowercase())),
            "{self:?}"
        );
        assert!(
            self.head.contains("content-type: application/json"),
            "{self:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["detail", "error", "errorCode", "parameters", "reason"],
            "{self:?}"
        );
        assert_eq!(body["error"], status, "{self:?}");
        assert_eq!(body["errorCode"], code, "{self:?}");
    }
}

/// Cuts pipelined responses out of `bytes` by their `Content-Length` (no body for the
/// responses to HEAD requests, marked in `head_requests`); panics on anything left over.
pub fn parse_responses(bytes: &[u8], head_requests: &[bool]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    let mut rest = bytes;
    let mut index = 0;
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("incomplete head: {:?}", String::from_utf8_lossy(rest)))
            + 4;
        let head = String::from_utf8(rest[..end].to_vec())
            .unwrap()
            .to_ascii_lowercase();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        let length = if head_requests.get(index).copied().unwrap_or(false) {
            0
        } else {
            length
        };
        assert!(rest.len() >= end + length, "truncated body: {head}");
        let body = String::from_utf8_lossy(&rest[end..end + length]).into_owned();
        responses.push(RawResponse { status, head, body });
        rest = &rest[end + length..];
        index += 1;
    }
    responses
}
