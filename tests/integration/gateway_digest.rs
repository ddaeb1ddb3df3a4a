//! HTTP Digest as Atlas does it: the recorded challenge and 401 body byte for byte, nonces
//! (stale, forged, replayed), algorithms, the request-target check, and the core's role checks
//! applying to the verified key (NOT_IN_GROUP, USER_UNAUTHORIZED).

#![allow(clippy::unwrap_used)]

use crate::harness::atlas::{self, Alg, Atlas, authorization, nonce_of};
use crate::harness::{Key, TestServer};

const CHALLENGE_BODY: &str = r#"{"error":401,"reason":"Unauthorized","detail":"You are not authorized for this resource.","errorCode":"UNEXPECTED_ERROR"}"#;

#[track_caller]
fn assert_challenge(resp: &atlas::Resp, stale: bool) -> String {
    assert_eq!(resp.status, 401, "{}", resp.body);
    let challenges: Vec<_> = resp.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1);
    let challenge = challenges[0].to_str().unwrap();
    let nonce = nonce_of(challenge);
    assert_eq!(nonce.len(), 32);
    assert!(
        nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    );
    assert_eq!(
        challenge,
        format!(
            "Digest realm=\"MMS Public API\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
        )
    );
    assert_eq!(resp.body, CHALLENGE_BODY);
    assert_eq!(resp.header("content-type"), "application/json");
    nonce
}

#[tokio::test]
async fn challenge_and_refusals() {
    // More refusals than the failed-auth throttle allows in a burst: throttling is off here
    // (tests/integration/limits_and_throttling.rs covers it).
    let server = TestServer::start_with(|config| config.throttle.burst = 0).await;
    let atlas = Atlas::new(&server);
    let target = "/api/atlas/v1.0/orgs";

    // No credentials: the recorded challenge; each challenge has a fresh nonce.
    let first = assert_challenge(&atlas.raw("GET", target, None, &[]).await, false);
    let second = assert_challenge(
        &atlas
            .raw("POST", "/api/atlas/v2/groups", Some("{}"), &[])
            .await,
        false,
    );
    assert_ne!(first, second);

    // Envelope and pretty apply to the 401 body too; the status stays 401 for the handshake.
    let resp = atlas
        .raw("GET", "/api/atlas/v1.0/orgs?envelope=true", None, &[])
        .await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.body,
        format!(r#"{{"status":401,"content":{CHALLENGE_BODY}}}"#)
    );

    // Good credentials work, and each (nonce, nc) is accepted once.
    let nonce = atlas.nonce().await;
    let auth = atlas.authorization("GET", target, &nonce, 1);
    let ok = atlas
        .raw("GET", target, None, &[("authorization", &auth)])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(!ok.header("x-request-id").is_empty());
    let replay = atlas
        .raw("GET", target, None, &[("authorization", &auth)])
        .await;
    assert_challenge(&replay, false);
    let next = atlas.authorization("GET", target, &nonce, 2);
    assert_eq!(
        atlas
            .raw("GET", target, None, &[("authorization", &next)])
            .await
            .status,
        200
    );

    // Wrong private key, unknown public key, wrong realm, foreign nonce, uri of another target,
    // other method, missing qop, oversized header, other schemes.
    let wrong = Key {
        public: server.key.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    let nonce = atlas.nonce().await;
    let bad_headers = [
        authorization(&wrong, Alg::Md5, "GET", target, &nonce, 1, "c1"),
        authorization(&Key::random(), Alg::Md5, "GET", target, &nonce, 1, "c2"),
        atlas
            .authorization("GET", target, &nonce, 3)
            .replace("MMS Public API", "Other"),
        atlas.authorization("GET", target, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1),
        atlas.authorization("GET", "/api/atlas/v1.0/groups", &nonce, 4),
        atlas.authorization("POST", target, &nonce, 5),
        atlas
            .authorization("GET", target, &nonce, 6)
            .replace(", qop=auth", ""),
        atlas
            .authorization("GET", target, &nonce, 7)
            .replace("nc=00000007", "nc=7"),
        format!(
            "{}, opaque=\"{}\"",
            atlas.authorization("GET", target, &nonce, 8),
            // Over the 12 KiB bound on Authorization, under the 16 KiB head limit.
            "x".repeat(13_000)
        ),
        format!("Basic {}", server.key.basic().trim_start_matches("Basic ")),
        "Digest garbage".to_owned(),
    ];
    for header in bad_headers {
        let resp = atlas
            .raw("GET", target, None, &[("authorization", &header)])
            .await;
        assert_challenge(&resp, false);
    }
}

#[tokio::test]
async fn stale_nonces_and_algorithms() {
    let server = TestServer::start().await;
    let mut atlas = Atlas::new(&server);
    let target = "/api/atlas/v1.0/groups?itemsPerPage=5";

    // A nonce made with the server's secret six minutes ago: right credentials, stale=true.
    let master = std::fs::read_to_string(server.data_dir.join("master-key")).unwrap();
    let secret = dbcert::domain::MasterKey::from_base64(master.trim())
        .unwrap()
        .derive_secret("dbcert/v1/digest-nonce");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let old = dbcert::auth::digest::new_nonce(&secret, now - 360);
    let auth = atlas.authorization("GET", target, &old, 1);
    assert_challenge(
        &atlas
            .raw("GET", target, None, &[("authorization", &auth)])
            .await,
        true,
    );
    // The same stale nonce with a wrong password is not told it is stale.
    let wrong = Key {
        public: server.key.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    };
    let auth = authorization(&wrong, Alg::Md5, "GET", target, &old, 1, "c");
    assert_challenge(
        &atlas
            .raw("GET", target, None, &[("authorization", &auth)])
            .await,
        false,
    );
    // A fresh nonce minted by another replica with the same master key is accepted.
    let fresh = dbcert::auth::digest::new_nonce(&secret, now);
    let auth = atlas.authorization("GET", target, &fresh, 1);
    assert_eq!(
        atlas
            .raw("GET", target, None, &[("authorization", &auth)])
            .await
            .status,
        200
    );

    // SHA-256 and MD5-sess responses are verified too.
    for alg in [Alg::Sha256, Alg::Md5Sess] {
        atlas.alg = alg;
        let resp = atlas.get(target).await;
        assert_eq!(resp.status, 200, "{alg:?}: {}", resp.body);
    }
}

#[tokio::test]
async fn the_core_role_checks_apply_to_the_verified_key() {
    let server = TestServer::start().await;
    let owner = Atlas::new(&server);
    let group = owner.create_project("roles").await;
    let org_id = owner.get("/api/atlas/v1.0/orgs").await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A read-only key of the organization: may read, may not write.
    let resp = owner
        .post(
            &format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys"),
            r#"{"desc":"reader","roles":["ORG_READ_ONLY"]}"#,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let created = resp.json();
    let reader = Atlas::with_key(
        &server,
        Key {
            public: created["publicKey"].as_str().unwrap().to_owned(),
            private: created["privateKey"].as_str().unwrap().to_owned(),
        },
    );
    assert_eq!(
        reader
            .get(&format!("/api/atlas/v1.0/groups/{group}"))
            .await
            .status,
        200
    );
    reader
        .post(
            &format!("/api/atlas/v1.0/groups/{group}/databaseUsers/u/certs"),
            "{}",
        )
        .await
        .assert_error(401, "USER_UNAUTHORIZED");

    // A key of another organization: NOT_IN_GROUP (401, as Atlas).
    let clients = server.clients().await;
    let other = clients
        .orgs()
        .create_organization(dbcert::proto::v1::CreateOrganizationRequest {
            name: "other".into(),
            api_key_desc: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let stranger = Atlas::with_key(
        &server,
        Key {
            public: other.public_key,
            private: other.private_key,
        },
    );
    let resp = stranger
        .get(&format!("/api/atlas/v1.0/groups/{group}"))
        .await;
    resp.assert_error(401, "NOT_IN_GROUP");
    assert!(resp.headers.get("www-authenticate").is_none());
}
