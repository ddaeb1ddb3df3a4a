//! The scheme and host of `links`: forwarded headers (`X-Forwarded-Proto`, `X-Forwarded-Host`)
//! count only from a peer in `--trusted-proxies`, and `--public-url` overrides everything. A
//! direct client's own `Host` is echoed back to it (it names what that client used to reach us),
//! with `https` when the HTTP listener itself serves TLS.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dbcert::auth::TrustedProxies;
use dbcert::gateway::PublicUrl;
use dbcert::tls::{TlsFiles, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use crate::harness::TestServer;
use crate::harness::atlas::{Alg, Atlas, authorization};

/// The `self` link of `GET /api/atlas/v1.0/orgs` sent with these extra headers.
async fn self_link(server: &TestServer, headers: &[(&str, &str)]) -> String {
    let atlas = Atlas::new(server);
    let target = "/api/atlas/v1.0/orgs";
    let nonce = atlas.nonce().await;
    let auth = authorization(&atlas.key, Alg::Md5, "GET", target, &nonce, 1, "0a4f113b");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    let response = atlas.raw("GET", target, None, &all).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let json = response.json();
    let links = json["links"].as_array().unwrap();
    let own = links.iter().find(|l| l["rel"] == "self").unwrap();
    own["href"].as_str().unwrap().to_owned()
}

const FORWARDED: [(&str, &str); 3] = [
    ("host", "direct.example:8080"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
];

#[tokio::test]
async fn untrusted_peer_cannot_change_scheme_or_host() {
    let server = TestServer::start().await;
    // Plain: the client's own Host, http.
    assert_eq!(
        self_link(&server, &[("host", "direct.example:8080")]).await,
        "http://direct.example:8080/api/atlas/v1.0/orgs"
    );
    // Forwarded headers from a peer that is not a trusted proxy are ignored.
    assert_eq!(
        self_link(&server, &FORWARDED).await,
        "http://direct.example:8080/api/atlas/v1.0/orgs"
    );
    server.stop().await;
}

#[tokio::test]
async fn trusted_proxy_sets_scheme_and_host() {
    let server = TestServer::start_with(|config| {
        config.trusted_proxies =
            TrustedProxies::new(vec![TrustedProxies::parse_network("127.0.0.0/8").unwrap()]);
    })
    .await;
    let headers = [
        ("host", "internal:8080"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "dbcert.example.com"),
    ];
    assert_eq!(
        self_link(&server, &headers).await,
        "https://dbcert.example.com/api/atlas/v1.0/orgs"
    );
    // Only the protocol forwarded: the Host the proxy sent.
    assert_eq!(
        self_link(
            &server,
            &[("host", "internal:8080"), ("x-forwarded-proto", "https")]
        )
        .await,
        "https://internal:8080/api/atlas/v1.0/orgs"
    );
    // A forwarded host that is not a host name is ignored.
    assert_eq!(
        self_link(
            &server,
            &[("host", "internal:8080"), ("x-forwarded-host", "a/b@c")]
        )
        .await,
        "http://internal:8080/api/atlas/v1.0/orgs"
    );
    server.stop().await;
}

#[tokio::test]
async fn public_url_overrides_host_and_forwarded_headers() {
    let server = TestServer::start_with(|config| {
        config.trusted_proxies =
            TrustedProxies::new(vec![TrustedProxies::parse_network("127.0.0.0/8").unwrap()]);
        config.public_url = Some(PublicUrl::parse("https://dbcert.example.com/").unwrap());
    })
    .await;
    for headers in [&FORWARDED[..], &FORWARDED[..1]] {
        assert_eq!(
            self_link(&server, headers).await,
            "https://dbcert.example.com/api/atlas/v1.0/orgs"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_gives_https_links() {
    // A CA and a server certificate for localhost, generated here.
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "links test ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let files = TlsFiles {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server-key.pem"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let harness = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let settings = TlsSettings {
        files,
        mutual: None,
    };
    let server = TestServer::start_tls(settings, harness, crate::harness::Key::random()).await;

    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("localhost", server.http_addr)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", server.http_addr.port());
    let target = "/api/atlas/v1.0/orgs";
    let challenge = http.get(format!("{base}{target}")).send().await.unwrap();
    assert_eq!(challenge.status(), 401);
    let nonce =
        crate::harness::atlas::nonce_of(challenge.headers()["www-authenticate"].to_str().unwrap());
    let auth = authorization(&server.key, Alg::Md5, "GET", target, &nonce, 1, "0a4f113b");
    // A forwarded protocol from an untrusted peer does not turn the links into http either.
    let response = http
        .get(format!("{base}{target}"))
        .header("authorization", auth)
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        json["links"][0]["href"],
        format!(
            "https://localhost:{}/api/atlas/v1.0/orgs",
            server.http_addr.port()
        )
    );
    server.stop().await;
}
